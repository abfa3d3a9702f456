//! The command line's shape: subcommands and their options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Declarative API connectors: validate, sync, serve webhooks, push.
#[derive(Debug, Parser)]
#[command(name = "runtime", version, about)]
pub struct Cli {
    /// Log lines as text (default) or JSON, for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check spec files (or folders of them) and print every mistake with file:line:col.
    Validate {
        /// Files or folders; folders are searched for *.yaml and *.yml.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Print the JSON Schema of the connector format.
    Schema,
    /// Pull every stream of a spec into JSON lines.
    Sync {
        #[command(flatten)]
        common: Common,
        /// Output folder (default: output/<connector name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// State file (default: <out>/state.json).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Only these streams (comma-separated); parents they need are run too.
        #[arg(long, value_delimiter = ',')]
        streams: Vec<String>,
        /// Streams run at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// At most this many records per stream, for a quick look.
        #[arg(long)]
        limit: Option<u64>,
        /// Ignore saved incremental state and fetch everything.
        #[arg(long)]
        full_refresh: bool,
    },
    /// Fetch one page of each stream and say what works and what fails.
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// Print each stream's JSON schema, declared or inferred from a sample page.
    Discover {
        #[command(flatten)]
        common: Common,
    },
    /// Read or clear the incremental state.
    State {
        /// What to do with the state.
        #[command(subcommand)]
        action: StateAction,
    },
    /// Receive the spec's signed webhooks.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8780")]
        listen: String,
        /// Output folder (default: output/<connector name>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Send records (JSON lines) to a push target with idempotency keys.
    Push {
        #[command(flatten)]
        common: Common,
        /// Name of the push target in the spec.
        #[arg(long)]
        target: String,
        /// JSON lines to send; `-` for standard input.
        #[arg(long, default_value = "-")]
        input: String,
        /// Results file (default: output/<connector>/push-<target>.results.jsonl).
        #[arg(long)]
        results: Option<PathBuf>,
        /// Longest input line (e.g. 512KiB, 16MiB); a longer line is skipped and reported.
        #[arg(long, default_value = "16MiB", value_parser = connector_runtime::push::parse_size)]
        max_line_size: usize,
    },
}

/// Read or clear state.
#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Print the state.
    Show {
        #[command(flatten)]
        common: Common,
        /// Output folder (default: output/<connector name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// State file (default: <out>/state.json).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Clear the state of all streams, or of some.
    Reset {
        #[command(flatten)]
        common: Common,
        /// Output folder (default: output/<connector name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// State file (default: <out>/state.json).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Only these streams (comma-separated).
        #[arg(long, value_delimiter = ',')]
        streams: Vec<String>,
    },
}

/// Options every command that runs a spec takes.
#[derive(Debug, Args)]
pub struct Common {
    /// The connector spec (YAML).
    pub spec: PathBuf,
    /// Configuration file (YAML or JSON) with values for the spec's `config`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A configuration value, `key=value`; repeatable; wins over --config and the environment.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// How `validate` reports.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    /// file:line:col with the source line and a caret.
    Text,
    /// One JSON document.
    Json,
    /// GitHub Actions annotations.
    Github,
}
