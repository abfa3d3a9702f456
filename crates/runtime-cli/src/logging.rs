//! Where log lines and progress go: bars on a terminal, plain or JSON lines otherwise.

use std::io::IsTerminal;
use std::sync::Arc;

use connector_runtime::printable;
use connector_runtime::progress::TerminalReporter;
use connector_runtime::report::{LogReporter, Reporter};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::field::delimited::Delimited;
use tracing_subscriber::fmt::format::{FieldFn, Writer, debug_fn};

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
                .fmt_fields(escaped_fields())
                .with_target(false)
                .without_time()
                .with_writer(move || writer.clone())
                .try_init();
            Arc::new(reporter)
        }
        LogFormat::Text => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .fmt_fields(escaped_fields())
                .with_target(false)
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .try_init();
            Arc::new(LogReporter)
        }
    }
}

type FieldFormat =
    fn(&mut Writer<'_>, &tracing::field::Field, &dyn std::fmt::Debug) -> std::fmt::Result;

/// Text log fields as the default formatter writes them, with control and bidi characters
/// escaped: the last line of defence against API text that forges lines or terminal
/// sequences (JSON lines are escaped by serde already).
fn escaped_fields() -> Delimited<&'static str, FieldFn<FieldFormat>> {
    let write: FieldFormat = |w, field, value| {
        let text = format!("{value:?}");
        let text = printable::escape(&text);
        match field.name() {
            "message" => write!(w, "{text}"),
            name if name.starts_with("log.") => Ok(()),
            name => write!(w, "{name}={text}"),
        }
    };
    debug_fn(write).delimited(" ")
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_log_fields_are_escaped() {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(escaped_fields())
            .with_target(false)
            .with_ansi(false)
            .without_time()
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let api = "x\u{1b}[2J\nFORGED\u{202e}";
            tracing::warn!(stream = %api, "got {api}");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            " WARN got x\\u{1b}[2J\\nFORGED\\u{202e} stream=x\\u{1b}[2J\\nFORGED\\u{202e}\n"
        );
    }
}
