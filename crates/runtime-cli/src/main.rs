//! The `runtime` command: parses arguments, calls the library crates, prints results.
//!
//! It holds no logic of its own: every decision lives in `connector-spec` or
//! `connector-runtime`, so the same behaviour is reachable from tests and other hosts.

mod args;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match cli.command {
        args::Command::Schema => {
            println!("{}", connector_spec::schema::schema_json());
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("error: this command is not built yet");
            ExitCode::from(2)
        }
    }
}
