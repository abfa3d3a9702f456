//! `runtime sync`: prepare, run, print the summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use connector_runtime::report::{Reporter, summary_table};
use connector_runtime::sink::JsonlFolder;
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
}

/// Runs `runtime sync`.
pub fn run(args: SyncArgs, reporter: Arc<dyn Reporter>) -> ExitCode {
    let (prepared, engine) = match crate::engine(&args.common, args.out.as_deref()) {
        Ok(pe) => pe,
        Err(code) => return code,
    };
    let out_dir = prepared.out_dir(args.out.as_deref());
    let destination =
        match JsonlFolder::open(&out_dir, &prepared.loaded.spec.name, args.state.as_deref()) {
            Ok(d) => Arc::new(d),
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
        println!("output: {}", out_dir.display());
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
