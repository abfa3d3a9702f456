//! `runtime push`: send JSON lines to a push target with idempotency keys.

use std::path::PathBuf;
use std::process::ExitCode;

use connector_runtime::push::{self, PushOptions};

use crate::args::Common;

/// Runs `runtime push`; exit 1 when a record was not created or the run stopped early.
pub fn run(
    common: Common,
    target: String,
    input: String,
    results: Option<PathBuf>,
    max_line: usize,
) -> ExitCode {
    let (prepared, engine) = match crate::engine(&common, None) {
        Ok(pe) => pe,
        Err(code) => return code,
    };
    let out_dir = prepared.out_dir(None);
    let opts = PushOptions {
        results: results.unwrap_or_else(|| push::default_results(&out_dir, &target)),
        target,
        input: (input != "-").then(|| PathBuf::from(input)),
        max_line,
    };
    let summary = match crate::block_on(push::push(&engine, &opts)) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return crate::usage_error(&e.0),
        Err(code) => return code,
    };
    println!(
        "push {}: {} read, {} created, {} already done, {} conflicts, {} failed, {} not sent, {} duplicates, {} invalid, {} too long; {} requests, {} retries",
        opts.target,
        summary.read,
        summary.created,
        summary.skipped_done,
        summary.conflicts,
        summary.failed,
        summary.not_sent,
        summary.duplicates,
        summary.invalid,
        summary.too_long,
        summary.requests,
        summary.retries
    );
    println!("results: {}", opts.results.display());
    if let Some(why) = &summary.stopped {
        eprintln!("error: {why}");
        return ExitCode::from(1);
    }
    let bad =
        summary.conflicts + summary.failed + summary.not_sent + summary.invalid + summary.too_long;
    if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
