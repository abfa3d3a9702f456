//! `runtime serve`: receive the spec's signed webhooks until SIGTERM or SIGINT.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use connector_runtime::host;
use webhook_receiver::{Receiver, shutdown_signal};

use crate::args::{Common, ServeLimits};

/// Runs `runtime serve`; prints `listening on http://ADDR` once deliveries are accepted.
pub fn run(common: Common, listen: String, out: Option<PathBuf>, limits: &ServeLimits) -> ExitCode {
    let prepared = match host::prepare(&common.spec, common.config.as_deref(), &common.set) {
        Ok(p) => p,
        Err(e) => return crate::usage_error(&e.0),
    };
    let redact = |text: String| prepared.config.redact(&text);
    let receiver = match Receiver::new(&prepared.loaded.spec, &prepared.config.context()) {
        Ok(r) => r
            .with_limits(limits.limits())
            .with_retention(limits.retention()),
        Err(e) => {
            return crate::usage_error(&redact(format!("{}: {e}", common.spec.display())));
        }
    };
    let out_dir = prepared.out_dir(out.as_deref());
    let on_listening = |addr| {
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "listening on http://{addr}");
        let _ = stdout.flush();
    };
    match crate::block_on(receiver.run(&out_dir, &listen, on_listening, shutdown_signal())) {
        Err(code) => code,
        Ok(Err(e)) if e.is_usage() => crate::usage_error(&e.to_string()),
        Ok(Err(e)) => {
            eprintln!(
                "error: {}",
                connector_runtime::printable::escape(&redact(e.to_string()))
            );
            ExitCode::from(1)
        }
        Ok(Ok(s)) => {
            println!(
                "serve: {} stored, {} already processed, {} refused, {} not stored (503); {} written to {}",
                s.stored,
                s.duplicates,
                s.rejected,
                s.failed,
                s.written,
                out_dir.display()
            );
            ExitCode::SUCCESS
        }
    }
}
