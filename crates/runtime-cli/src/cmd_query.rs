//! `runtime query`: one read-only SQL query on a DuckDB file, printed as tab-separated
//! lines under a header.

use std::process::ExitCode;

/// Runs `runtime query`.
pub fn run(to: &str, sql: &str, max_rows: usize) -> ExitCode {
    match destinations::query(to, sql, max_rows) {
        Ok((names, rows)) => {
            println!("{}", names.join("\t"));
            for r in rows {
                let cells: Vec<String> = r
                    .iter()
                    .map(|c| connector_runtime::printable::escape(c).into_owned())
                    .collect();
                println!("{}", cells.join("\t"));
            }
            ExitCode::SUCCESS
        }
        Err(e) => crate::usage_error(&e.0),
    }
}
