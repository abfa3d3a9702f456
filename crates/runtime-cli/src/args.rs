//! The command line's shape: subcommands and their options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use webhook_receiver::{Limits, Retention};

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
        /// Where records go: `duckdb:PATH`, `postgres://USER@HOST:PORT/DB?schema=S`
        /// (password from PGPASSWORD), or `jsonl` (the default: files in --out).
        #[arg(long, value_name = "DESTINATION")]
        to: Option<String>,
        /// A stream's write mode in a database, overriding the spec's default:
        /// STREAM=append|merge|replace (repeatable).
        #[arg(long, value_name = "STREAM=MODE")]
        write_mode: Vec<String>,
    },
    /// Run one read-only SQL query on a DuckDB file loaded by `sync --to duckdb:PATH`.
    Query {
        /// The database, `duckdb:PATH`.
        to: String,
        /// The SQL.
        sql: String,
        /// At most this many rows are printed.
        #[arg(long, default_value_t = 1000)]
        max_rows: usize,
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
        /// Limits against slow and greedy senders, and the store's retention.
        #[command(flatten)]
        limits: ServeLimits,
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
    /// Serve the spec as an Airbyte source: `spec`, `check`, `discover`, `read`.
    Airbyte {
        /// The Airbyte command.
        #[command(subcommand)]
        command: AirbyteCmd,
    },
    /// Serve the spec as a Singer tap (`--discover`, `--about`, or a sync).
    Singer {
        /// The connector spec (YAML).
        #[arg(long, env = "RUNTIME_SPEC")]
        spec: PathBuf,
        /// Configuration (JSON) with values for the spec's `config`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The catalog: which streams, how (Meltano SDK's flag).
        #[arg(long, conflicts_with = "properties")]
        catalog: Option<PathBuf>,
        /// The catalog, older taps' name for it.
        #[arg(long)]
        properties: Option<PathBuf>,
        /// The state of the previous run (`{"bookmarks": ...}`).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Print the catalog.
        #[arg(long, conflicts_with = "about")]
        discover: bool,
        /// Print what the tap is and its settings.
        #[arg(long)]
        about: bool,
        /// `--about`'s format; only `json` is written.
        #[arg(long, hide = true)]
        format: Option<String>,
    },
    /// Write an executable that serves one spec as an Airbyte source or a Singer tap.
    Wrap {
        /// The connector spec (YAML); its absolute path is baked in.
        spec: PathBuf,
        /// An Airbyte source (`source-<name> spec|check|discover|read ...`).
        #[arg(long, required_unless_present = "singer", conflicts_with = "singer")]
        airbyte: bool,
        /// A Singer tap (`tap-<name> --config ... --catalog ... --state ...`).
        #[arg(long)]
        singer: bool,
        /// Where to write the executable.
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
}

/// Airbyte's source commands; the spec comes from `--spec` or `RUNTIME_SPEC`.
#[derive(Debug, Subcommand)]
pub enum AirbyteCmd {
    /// Print the connection specification.
    Spec {
        #[command(flatten)]
        files: AirbyteFiles,
    },
    /// Check the configuration against the API.
    Check {
        #[command(flatten)]
        files: AirbyteFiles,
    },
    /// Print the catalog.
    Discover {
        #[command(flatten)]
        files: AirbyteFiles,
    },
    /// Emit the records of a configured catalog.
    Read {
        #[command(flatten)]
        files: AirbyteFiles,
    },
}

/// The files an Airbyte command takes.
#[derive(Debug, Args)]
pub struct AirbyteFiles {
    /// The connector spec (YAML).
    #[arg(long, env = "RUNTIME_SPEC")]
    pub spec: PathBuf,
    /// Configuration (JSON).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// ConfiguredAirbyteCatalog (JSON).
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// State of the previous run (JSON list of STREAM states).
    #[arg(long)]
    pub state: Option<PathBuf>,
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
        /// A database destination: refused, with the SQL that shows its state instead.
        #[arg(long)]
        to: Option<String>,
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
        /// A database destination: refused, with the SQL that resets its state instead.
        #[arg(long)]
        to: Option<String>,
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

/// `runtime serve`'s limits (docs/webhooks.md, "Limits"); defaults are the receiver's.
#[derive(Debug, Args)]
pub struct ServeLimits {
    /// Deliveries verified and stored at once, once their bodies are in; more wait.
    #[arg(long, value_name = "N", value_parser = positive, default_value_t = Limits::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Open connections from one address (an IPv6 /64); more are closed at once. 0: no cap.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections_per_peer)]
    pub max_connections_per_peer: usize,
    /// Deliveries from one address being received at once; more get 429. 0: no cap.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_requests_per_peer)]
    pub max_requests_per_peer: usize,
    /// Least average rate of a body after a 5 s grace, in bytes per second. 0: no rule.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().body_min_rate)]
    pub body_min_rate: u64,
    /// Longest a body may take to arrive, whatever its rate.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "30s")]
    pub body_timeout: Duration,
    /// Delete written-out events from the store once they are this old (`off`: never);
    /// their ids are kept at least 30 days, so redeliveries are still duplicates.
    #[arg(long, value_name = "DURATION", value_parser = retention, default_value = "30d")]
    pub retention: RetentionArg,
}

impl ServeLimits {
    /// The receiver's limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_in_flight: self.max_in_flight,
            max_connections_per_peer: self.max_connections_per_peer,
            max_requests_per_peer: self.max_requests_per_peer,
            body_min_rate: self.body_min_rate,
            body_timeout: self.body_timeout,
            ..Limits::default()
        }
    }

    /// The store's retention.
    pub fn retention(&self) -> Retention {
        Retention {
            keep: self.retention.0,
            ..Retention::default()
        }
    }
}

/// `--retention`: a duration, or `off` (`None`).
#[derive(Debug, Clone, Copy)]
pub struct RetentionArg(pub Option<Duration>);

fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) | Err(_) => Err(format!("`{text}` is not a whole number of at least 1")),
        Ok(n) => Ok(n),
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    let d = connector_spec::Duration::new(text).parse()?;
    if d.is_zero() {
        return Err(format!("`{text}` is zero; give a duration such as `30s`"));
    }
    Ok(d)
}

fn retention(text: &str) -> Result<RetentionArg, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(RetentionArg(None));
    }
    duration(text)
        .map(|d| RetentionArg(Some(d)))
        .map_err(|e| format!("{e}, or `off` to keep events forever"))
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
