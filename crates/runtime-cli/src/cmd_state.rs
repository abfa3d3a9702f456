//! `runtime state show|reset`: read or clear the incremental state.

use std::process::ExitCode;

use connector_runtime::host;

use crate::args::StateAction;

/// Runs `runtime state ...`.
pub fn run(action: StateAction) -> ExitCode {
    match action {
        StateAction::Show {
            common,
            out,
            state,
            to,
        } => {
            if let Some(message) = database(to.as_deref(), false) {
                return crate::usage_error(&message);
            }
            let store = match host::open_state(&common.spec, out.as_deref(), state.as_deref()) {
                Ok(s) => s,
                Err(e) => return crate::usage_error(&e.0),
            };
            match serde_json::to_string_pretty(&store.snapshot()) {
                Ok(s) => {
                    println!("{s}");
                    ExitCode::SUCCESS
                }
                Err(e) => crate::usage_error(&e.to_string()),
            }
        }
        StateAction::Reset {
            common,
            out,
            state,
            streams,
            to,
        } => {
            if let Some(message) = database(to.as_deref(), true) {
                return crate::usage_error(&message);
            }
            let (store, _lock) = match host::open_state_for_reset(
                &common.spec,
                out.as_deref(),
                state.as_deref(),
                &streams,
            ) {
                Ok(s) => s,
                Err(e) => return crate::usage_error(&e.0),
            };
            match store.reset(&streams) {
                Ok(cleared) if cleared.is_empty() => {
                    println!("nothing to reset in {}", store.path().display());
                    ExitCode::SUCCESS
                }
                Ok(cleared) => {
                    println!("reset {} in {}", cleared.join(", "), store.path().display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// The refusal for a database destination, whose state is a table `runtime state` does
/// not read; the destination itself is not echoed (a URL may hold a password).
fn database(to: Option<&str>, reset: bool) -> Option<String> {
    let to = to.filter(|t| *t != "jsonl")?;
    let kind = if to.starts_with("duckdb:") {
        "a DuckDB destination"
    } else {
        "a database destination"
    };
    let sql = if reset {
        "DELETE FROM _runtime_state WHERE connector = '<name>' AND stream = '<stream>' (or run `runtime sync --full-refresh`)"
    } else {
        "SELECT stream, state FROM _runtime_state WHERE connector = '<name>'"
    };
    Some(format!(
        "--to: the state of {kind} is its table _runtime_state (one row per connector and stream, written in the same transaction as the rows); `runtime state` reads JSON state files only. Use SQL instead: {sql}"
    ))
}
