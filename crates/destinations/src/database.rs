//! The engine's `Destination` and `RecordSink` for the databases: a thin translation of
//! the engine's streams and states to the sink crates' tables and JSON text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use connector_runtime::sink::{Destination, RecordSink, SinkError, StreamTarget, WriteMode};
use connector_runtime::state::StreamState;
use sink_sql::{LoadError, TableSpec, Worker};

/// One of the database destinations.
enum Inner {
    #[cfg(feature = "postgres")]
    Pg(sink_postgres::PgDestination),
    #[cfg(feature = "duckdb-linked")]
    Duck(sink_duckdb::DuckDestination),
}

/// A database destination for one run.
pub struct DbDestination {
    inner: Inner,
    forced: BTreeMap<String, String>,
    spec_dir: PathBuf,
    shown: String,
}

fn sink_err(e: LoadError) -> SinkError {
    SinkError(e.0)
}

impl DbDestination {
    /// Opens the destination `to` for `connector`: connects, creates the state table,
    /// reads the saved states. `forced` holds `--write-mode` values; `spec` locates
    /// `schema_file`s.
    pub fn open(
        to: &crate::To,
        connector: &str,
        forced: BTreeMap<String, String>,
        spec: &Path,
    ) -> Result<Option<Self>, LoadError> {
        let (inner, shown) = match to {
            crate::To::Jsonl => return Ok(None),
            #[cfg(feature = "postgres")]
            crate::To::Postgres(t) => (
                Inner::Pg(sink_postgres::PgDestination::open(t.clone(), connector)?),
                t.shown(),
            ),
            #[cfg(feature = "duckdb-linked")]
            crate::To::DuckDb(t) => (
                Inner::Duck(sink_duckdb::DuckDestination::open(t.clone(), connector)?),
                t.shown(),
            ),
        };
        let spec_dir = spec
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Some(Self {
            inner,
            forced,
            spec_dir,
            shown,
        }))
    }

    /// The destination as logs show it (no password).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn prior_text(&self, stream: &str) -> Option<&str> {
        match &self.inner {
            #[cfg(feature = "postgres")]
            Inner::Pg(d) => d.prior_state(stream),
            #[cfg(feature = "duckdb-linked")]
            Inner::Duck(d) => d.prior_state(stream),
        }
    }

    fn open_sink(&self, spec: TableSpec) -> Result<Worker, LoadError> {
        match &self.inner {
            #[cfg(feature = "postgres")]
            Inner::Pg(d) => d.open_sink(spec),
            #[cfg(feature = "duckdb-linked")]
            Inner::Duck(d) => d.open_sink(spec),
        }
    }
}

/// The stream's declared schema: inline, or its `schema_file` beside the spec.
fn declared_schema(dir: &Path, stream: &connector_spec::Stream) -> Option<serde_json::Value> {
    if let Some(s) = &stream.schema {
        return Some(s.clone());
    }
    let f = stream.schema_file.as_ref()?;
    let bytes = std::fs::read(dir.join(f)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Destination for DbDestination {
    fn prior_state(&self, stream: &str) -> Result<Option<StreamState>, SinkError> {
        let Some(text) = self.prior_text(stream) else {
            return Ok(None);
        };
        serde_json::from_str(text).map(Some).map_err(|e| {
            SinkError(format!(
                "{}: the saved state of stream `{stream}` in {} cannot be read ({e}); delete that row to start the stream over",
                self.shown,
                sink_sql::STATE_TABLE
            ))
        })
    }

    fn open(&self, target: &StreamTarget<'_>) -> Result<Box<dyn RecordSink>, SinkError> {
        let appends = matches!(target.mode, WriteMode::Append);
        let forced = self.forced.get(target.name).map(String::as_str);
        let mode =
            sink_sql::mode_for(target.name, target.stream, appends, forced).map_err(sink_err)?;
        let spec = TableSpec {
            stream: target.name.to_owned(),
            mode,
            schema: declared_schema(&self.spec_dir, target.stream),
        };
        let worker = self.open_sink(spec).map_err(sink_err)?;
        Ok(Box::new(DbSink { worker }))
    }

    fn location(&self, stream: &str) -> String {
        match &self.inner {
            #[cfg(feature = "postgres")]
            Inner::Pg(d) => d.location(stream),
            #[cfg(feature = "duckdb-linked")]
            Inner::Duck(d) => d.location(stream),
        }
    }
}

/// One stream's rows on their way to the database's thread.
struct DbSink {
    worker: Worker,
}

/// The state as stored in `_runtime_state`: no file length, the time it was saved.
fn state_text(state: &mut StreamState) -> Result<String, SinkError> {
    state.output_bytes = 0;
    state.saved_at = sink_sql::now_rfc3339();
    serde_json::to_string(state).map_err(|e| SinkError(format!("cannot encode the state: {e}")))
}

impl RecordSink for DbSink {
    fn write(&mut self, lines: &[u8]) -> Result<(), SinkError> {
        self.worker
            .write(lines, sink_sql::now_rfc3339())
            .map_err(sink_err)
    }

    fn checkpoint(&mut self, state: &mut StreamState) -> Result<(), SinkError> {
        let text = state_text(state)?;
        self.worker.publish(Some(text), false).map_err(sink_err)
    }

    fn commit(mut self: Box<Self>, state: Option<&mut StreamState>) -> Result<(), SinkError> {
        let text = state.map(state_text).transpose()?;
        self.worker.publish(text, true).map_err(sink_err)
    }
}
