//! Where log lines and progress go: bars on a terminal, plain or JSON lines otherwise.

use std::io::IsTerminal;
use std::sync::Arc;

use connector_runtime::progress::TerminalReporter;
use connector_runtime::report::{LogReporter, Reporter};
use tracing_subscriber::EnvFilter;

use crate::args::LogFormat;

/// Installs the log subscriber and returns the progress reporter to use.
pub fn init(format: LogFormat) -> Arc<dyn Reporter> {
    let filter = EnvFilter::try_from_env("RUNTIME_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal() && matches!(format, LogFormat::Text);
    match format {
        LogFormat::Json => {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
            Arc::new(LogReporter)
        }
        LogFormat::Text if terminal => {
            let reporter = TerminalReporter::new();
            let writer = reporter.log_writer();
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_target(false)
                .without_time()
                .with_writer(move || writer.clone())
                .try_init();
            Arc::new(reporter)
        }
        LogFormat::Text => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_target(false)
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .try_init();
            Arc::new(LogReporter)
        }
    }
}
