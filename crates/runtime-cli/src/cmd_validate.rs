//! `runtime validate`: check spec files and print every finding.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use connector_spec::report::{self, Format};

use crate::args::ReportFormat;

/// Validates `paths` and prints the report; exit 0 when nothing is an error, 2 otherwise.
pub fn run(paths: &[PathBuf], format: ReportFormat) -> ExitCode {
    let format = match format {
        ReportFormat::Text => Format::Text,
        ReportFormat::Json => Format::Json,
        ReportFormat::Github => Format::Github,
    };
    let report = report::validate(paths);
    // A closed pipe (`| head`) is not worth a panic message.
    let _ = std::io::stdout()
        .lock()
        .write_all(report.render(format).as_bytes());
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
