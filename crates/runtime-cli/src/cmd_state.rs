//! `runtime state show|reset`: read or clear the incremental state.

use std::process::ExitCode;

use connector_runtime::host;

use crate::args::StateAction;

/// Runs `runtime state ...`.
pub fn run(action: StateAction) -> ExitCode {
    match action {
        StateAction::Show { common, out, state } => {
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
        } => {
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
