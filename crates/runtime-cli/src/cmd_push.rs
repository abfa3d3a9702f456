//! `runtime push`: send JSON lines to a push target with idempotency keys.

use std::path::PathBuf;
use std::process::ExitCode;

use connector_runtime::push::{self, PushOptions};

use crate::args::Common;

/// Runs `runtime push`; exit 1 when a record failed or conflicted.
pub fn run(common: Common, target: String, input: String, results: Option<PathBuf>) -> ExitCode {
    let (prepared, engine) = match crate::engine(&common, None) {
        Ok(pe) => pe,
        Err(code) => return code,
    };
    let out_dir = prepared.out_dir(None);
    let opts = PushOptions {
        results: results.unwrap_or_else(|| push::default_results(&out_dir, &target)),
        target,
        input: (input != "-").then(|| PathBuf::from(input)),
    };
    let summary = match crate::block_on(push::push(&engine, &opts)) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return crate::usage_error(&e.0),
        Err(code) => return code,
    };
    println!(
        "push {}: {} read, {} created, {} already done, {} conflicts, {} failed, {} not sent; {} requests, {} retries",
        opts.target,
        summary.read,
        summary.created,
        summary.skipped_done,
        summary.conflicts,
        summary.failed,
        summary.not_sent,
        summary.requests,
        summary.retries
    );
    println!("results: {}", opts.results.display());
    if summary.conflicts + summary.failed + summary.not_sent == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
