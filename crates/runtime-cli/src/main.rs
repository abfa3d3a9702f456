//! The `runtime` command: parses arguments, calls the library crates, prints results.
//!
//! It holds no logic of its own: every decision lives in `connector-spec` or
//! `connector-runtime`, so the same behaviour is reachable from tests and other hosts.

mod args;
mod cmd_platform;
mod cmd_probe;
mod cmd_push;
mod cmd_query;
mod cmd_serve;
mod cmd_state;
mod cmd_sync;
mod cmd_validate;
mod logging;

use std::future::Future;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A bug must still end in one clear line, not a Rust backtrace (RUST_BACKTRACE may be
    // set in the user's environment).
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error ({info}); this is a bug in the runtime, please report it");
    }));
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let reporter = logging::init(cli.log_format);
    if let Some(code) = cmd_platform::run(&cli.command) {
        return code;
    }
    match cli.command {
        args::Command::Validate { paths, format } => cmd_validate::run(&paths, format),
        args::Command::Schema => {
            println!("{}", connector_spec::schema::schema_json().trim_end());
            ExitCode::SUCCESS
        }
        args::Command::Sync {
            common,
            out,
            state,
            streams,
            concurrency,
            limit,
            full_refresh,
            to,
            write_mode,
        } => cmd_sync::run(
            cmd_sync::SyncArgs {
                common,
                out,
                streams,
                concurrency,
                limit,
                state,
                full_refresh,
                to,
                write_mode,
            },
            reporter,
        ),
        args::Command::Query { to, sql, max_rows } => cmd_query::run(&to, &sql, max_rows),
        args::Command::Check { common } => cmd_probe::check(common),
        args::Command::Discover { common } => cmd_probe::discover(common),
        args::Command::State { action } => cmd_state::run(action),
        args::Command::Push {
            common,
            target,
            input,
            results,
            max_line_size,
        } => cmd_push::run(common, target, input, results, max_line_size),
        args::Command::Serve {
            common,
            listen,
            out,
            limits,
        } => cmd_serve::run(common, listen, out, &limits),
        args::Command::Airbyte { .. }
        | args::Command::Singer { .. }
        | args::Command::Wrap { .. } => ExitCode::from(2),
    }
}

/// Loads the spec, resolves its configuration and builds the engine writing to `out`
/// (default `output/<name>`); on failure, the error is printed and exit status 2 returned.
pub fn engine(
    common: &args::Common,
    out: Option<&std::path::Path>,
) -> Result<
    (
        connector_runtime::host::Prepared,
        std::sync::Arc<connector_runtime::engine::Engine>,
    ),
    ExitCode,
> {
    let prepared =
        connector_runtime::host::prepare(&common.spec, common.config.as_deref(), &common.set)
            .map_err(|e| usage_error(&e.0))?;
    let out_dir = prepared.out_dir(out);
    let engine = prepared
        .engine(out_dir.clone())
        .map_err(|e| usage_error(&e.0))?;
    // Rotated refresh tokens go beside the default state file; `sync --state` moves them.
    engine.http.keep_tokens_beside(&out_dir.join("state.json"));
    Ok((prepared, engine))
}

/// Prints a usage, spec or config error and returns exit status 2.
pub fn usage_error(message: &str) -> ExitCode {
    // Diagnostics about a spec file already say `file:line:col: error:`.
    // Diagnostics span several lines of our own making; anything else is one line.
    if message
        .lines()
        .next()
        .is_some_and(|l| l.contains(": error: "))
    {
        eprintln!("{}", connector_runtime::printable::escape_lines(message));
    } else {
        eprintln!("error: {}", connector_runtime::printable::escape(message));
    }
    ExitCode::from(2)
}

/// Runs a future on a multi-threaded runtime; exit status 1 if the runtime cannot start.
pub fn block_on<F: Future>(f: F) -> Result<F::Output, ExitCode> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Ok(rt.block_on(f)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            Err(ExitCode::from(1))
        }
    }
}
