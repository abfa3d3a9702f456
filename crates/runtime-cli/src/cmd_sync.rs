//! `runtime sync`: prepare, run, print the summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use connector_runtime::report::{Reporter, summary_table};
use connector_runtime::sink::{Destination, JsonlFolder};
use connector_runtime::sync::{self, SyncOptions};

use crate::args::Common;

/// The options of `runtime sync`.
pub struct SyncArgs {
    pub common: Common,
    pub out: Option<PathBuf>,
    pub streams: Vec<String>,
    pub concurrency: usize,
    pub limit: Option<u64>,
    pub state: Option<PathBuf>,
    pub full_refresh: bool,
    pub to: Option<String>,
    pub write_mode: Vec<String>,
}

/// Runs `runtime sync`.
pub fn run(args: SyncArgs, reporter: Arc<dyn Reporter>) -> ExitCode {
    let (prepared, engine) = match crate::engine(&args.common, args.out.as_deref()) {
        Ok(pe) => pe,
        Err(code) => return code,
    };
    let out_dir = prepared.out_dir(args.out.as_deref());
    if let Some(state) = &args.state {
        engine.http.keep_tokens_beside(state);
    }
    // The destination is opened (connected, its state read) before any request to the API.
    let spec = &prepared.loaded.spec;
    let chosen = destinations::To::parse(args.to.as_deref())
        .and_then(|to| Ok((destinations::write_modes(&args.write_mode, spec)?, to)))
        .and_then(|(modes, to)| {
            destinations::open(
                &to,
                &spec.name,
                modes,
                &args.common.spec,
                args.state.is_some(),
            )
        });
    let (destination, shown): (Arc<dyn Destination>, String) = match chosen {
        Ok(Some((db, shown))) => (db, shown),
        Ok(None) => match JsonlFolder::open(&out_dir, &spec.name, args.state.as_deref()) {
            Ok(d) => (Arc::new(d), out_dir.display().to_string()),
            Err(e) => return crate::usage_error(&e.0),
        },
        Err(e) => return crate::usage_error(&e.0),
    };
    let opts = SyncOptions {
        streams: args.streams,
        concurrency: args.concurrency,
        limit: args.limit,
        destination,
        full_refresh: args.full_refresh,
    };
    let report = match crate::block_on(sync::run(engine, opts, reporter)) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return crate::usage_error(&e.0),
        Err(code) => return code,
    };
    print!("{}", summary_table(&report.outcomes));
    let failed: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .collect();
    for o in &failed {
        eprintln!(
            "error: stream {} failed: {}",
            o.stream,
            connector_runtime::printable::escape(o.error.as_deref().unwrap_or(""))
        );
    }
    if failed.is_empty() {
        println!("output: {shown}");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
