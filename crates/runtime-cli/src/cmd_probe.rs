//! `runtime check` and `runtime discover`: one page per stream.

use std::process::ExitCode;
use std::sync::Arc;

use connector_runtime::engine::Engine;
use connector_runtime::printable::escape;
use connector_runtime::probe;

use crate::args::Common;

/// The engine of a spec, and the first page of each of its streams.
fn first_pages(common: &Common) -> Result<(Arc<Engine>, Vec<probe::Probe>), ExitCode> {
    let (_, engine) = crate::engine(common, None)?;
    let probes = crate::block_on(probe::probe_all(&engine))?;
    Ok((engine, probes))
}

/// Runs `runtime check`: prints what works and what fails; exit 1 if anything failed.
pub fn check(common: Common) -> ExitCode {
    let (_, probes) = match first_pages(&common) {
        Ok(ep) => ep,
        Err(code) => return code,
    };
    let mut failed = 0;
    for p in &probes {
        match &p.error {
            None => println!(
                "ok    {:<20} {} records on the first page ({})",
                p.stream,
                p.records,
                p.request.as_deref().unwrap_or("")
            ),
            Some(e) => {
                failed += 1;
                println!("FAIL  {:<20} {}", p.stream, escape(e));
            }
        }
        if let Some(w) = &p.warning {
            println!("      {:<20} warning: {}", "", escape(w));
        }
    }
    println!("{} streams checked, {} failed", probes.len(), failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Runs `runtime discover`: prints the catalog as JSON.
pub fn discover(common: Common) -> ExitCode {
    let (engine, probes) = match first_pages(&common) {
        Ok(ep) => ep,
        Err(code) => return code,
    };
    for p in probes.iter().filter(|p| p.error.is_some()) {
        eprintln!(
            "warning: {}: {}",
            p.stream,
            escape(p.error.as_deref().unwrap_or(""))
        );
    }
    let doc = probe::catalog(&common.spec, &engine, &probes);
    match serde_json::to_string_pretty(&doc) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
