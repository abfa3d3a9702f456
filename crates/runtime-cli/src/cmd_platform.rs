//! `runtime airbyte`, `runtime singer`, `runtime wrap`: routes to `platform-protocols`.

use std::process::ExitCode;

use platform_protocols::commands::{self, AirbyteCommand, Inputs, SingerCommand};

use crate::args::{AirbyteCmd, AirbyteFiles, Command};

/// Runs a platform command; `None` for the other commands.
pub fn run(command: &Command) -> Option<ExitCode> {
    let stdout = || Box::new(std::io::stdout()) as Box<dyn std::io::Write + Send>;
    let code = match command {
        Command::Airbyte { command } => {
            let (cmd, files) = match command {
                AirbyteCmd::Spec { files } => (AirbyteCommand::Spec, files),
                AirbyteCmd::Check { files } => (AirbyteCommand::Check, files),
                AirbyteCmd::Discover { files } => (AirbyteCommand::Discover, files),
                AirbyteCmd::Read { files } => (AirbyteCommand::Read, files),
            };
            commands::airbyte(cmd, &inputs(files), stdout())
        }
        Command::Singer {
            spec,
            config,
            catalog,
            properties,
            state,
            discover,
            about,
            format: _,
        } => {
            let cmd = match (about, discover) {
                (true, _) => SingerCommand::About,
                (_, true) => SingerCommand::Discover,
                _ => SingerCommand::Sync,
            };
            let inputs = Inputs {
                spec: spec.clone(),
                config: config.clone(),
                catalog: catalog.clone().or_else(|| properties.clone()),
                state: state.clone(),
            };
            commands::singer(cmd, &inputs, stdout())
        }
        Command::Wrap {
            spec,
            airbyte,
            singer: _,
            output,
        } => match platform_protocols::wrapper::write(spec, *airbyte, output) {
            Ok(path) => {
                eprintln!("wrote {}", path.display());
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        },
        _ => return None,
    };
    Some(ExitCode::from(code))
}

fn inputs(f: &AirbyteFiles) -> Inputs {
    Inputs {
        spec: f.spec.clone(),
        config: f.config.clone(),
        catalog: f.catalog.clone(),
        state: f.state.clone(),
    }
}
