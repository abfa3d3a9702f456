//! The protocols' commands, end to end: load the spec and the platform's files, run,
//! write messages through the protocol's one writer. A failure is a TRACE error
//! (Airbyte) or a line on standard error (Singer), and a non-zero exit status.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use connector_runtime::engine::Engine;
use connector_runtime::host::Prepared;
use connector_runtime::probe::{self, Probe};
use serde_json::Value;

use crate::airbyte::{self, Message};
use crate::catalog::{self, StreamInfo};
use crate::incoming::{self, Selection};
use crate::{ProtocolError, connection, singer};

/// Size of the stdout buffer: a typical page's records leave in one write.
const OUT_BUFFER: usize = 256 * 1024;

/// The files a platform hands a protocol command.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The connector spec.
    pub spec: PathBuf,
    /// The configuration (JSON), for every command but `spec`/`--about`.
    pub config: Option<PathBuf>,
    /// The configured catalog (Airbyte) or catalog (Singer).
    pub catalog: Option<PathBuf>,
    /// The state kept from the previous run.
    pub state: Option<PathBuf>,
}

/// Airbyte's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AirbyteCommand {
    /// The connection specification.
    Spec,
    /// Can the API be reached with this config?
    Check,
    /// The streams.
    Discover,
    /// The records.
    Read,
}

/// Singer's modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingerCommand {
    /// `--about`.
    About,
    /// `--discover`.
    Discover,
    /// The records (no mode flag).
    Sync,
}

/// The shared Airbyte writer over standard output (or any sink, in tests).
pub type AirbyteOut = Arc<Mutex<airbyte::Writer<BufWriter<Box<dyn Write + Send>>>>>;
/// The shared Singer writer.
pub type SingerOut = Arc<Mutex<singer::Writer<BufWriter<Box<dyn Write + Send>>>>>;

/// Runs one Airbyte command, writing to `out`; returns the exit status.
pub fn airbyte(cmd: AirbyteCommand, inputs: &Inputs, out: Box<dyn Write + Send>) -> u8 {
    let w: AirbyteOut = Arc::new(Mutex::new(airbyte::Writer::new(BufWriter::with_capacity(
        OUT_BUFFER, out,
    ))));
    let result = match cmd {
        AirbyteCommand::Spec => airbyte_spec(inputs, &w),
        AirbyteCommand::Check => airbyte_check(inputs, &w),
        AirbyteCommand::Discover => airbyte_discover(inputs, &w),
        AirbyteCommand::Read => crate::read::airbyte_read(inputs, &w),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{}", e.message);
            let _ = with(&w, |w| {
                w.message(&Message::error(&e.message, e.failure, None))
            });
            1
        }
    }
}

/// Runs one Singer mode, writing to `out`; returns the exit status.
pub fn singer(cmd: SingerCommand, inputs: &Inputs, out: Box<dyn Write + Send>) -> u8 {
    let w: SingerOut = Arc::new(Mutex::new(singer::Writer::new(BufWriter::with_capacity(
        OUT_BUFFER, out,
    ))));
    let result = match cmd {
        SingerCommand::About => {
            load_spec(&inputs.spec).and_then(|spec| json_line(&w, &connection::singer_about(&spec)))
        }
        SingerCommand::Discover => prepare(inputs)
            .and_then(|p| discover_streams(inputs, &p))
            .and_then(|streams| json_line(&w, &catalog::singer_catalog(&streams))),
        SingerCommand::Sync => crate::read::singer_read(inputs, &w),
    };
    match result {
        Ok(()) => {
            let _ = with(&w, |w| w.flush());
            0
        }
        Err(e) => {
            // Singer has no error message: the cause goes to standard error.
            let _ = with(&w, |w| w.flush());
            tracing::error!("{}", e.message);
            1
        }
    }
}

/// Runs `f` on the locked writer; an I/O error (a closed pipe) is a system error.
pub fn with<W, T>(
    w: &Arc<Mutex<W>>,
    f: impl FnOnce(&mut W) -> std::io::Result<T>,
) -> Result<T, ProtocolError> {
    let mut g = w
        .lock()
        .map_err(|_| ProtocolError::system("the output writer's lock was poisoned"))?;
    f(&mut g).map_err(|e| ProtocolError::system(format!("cannot write to standard output: {e}")))
}

/// One JSON document on one line (Singer's `--about` and `--discover` print a document,
/// not a message).
fn json_line(w: &SingerOut, doc: &Value) -> Result<(), ProtocolError> {
    with(w, |w| {
        let mut line = serde_json::to_vec(doc)?;
        line.push(b'\n');
        w.raw(&line)
    })
}

/// Loads and checks the spec alone (no configuration needed).
pub fn load_spec(path: &Path) -> Result<connector_spec::Spec, ProtocolError> {
    connector_runtime::host::prepare_spec(path).map_err(|e| ProtocolError::config(e.0))
}

/// The spec with the configuration from `inputs.config`.
pub fn prepare(inputs: &Inputs) -> Result<Prepared, ProtocolError> {
    connector_runtime::host::prepare(&inputs.spec, inputs.config.as_deref(), &[])
        .map_err(|e| ProtocolError::config(e.0))
}

/// An engine for probing (it writes nothing).
fn probe_engine(p: &Prepared) -> Result<Arc<Engine>, ProtocolError> {
    p.engine(std::env::temp_dir())
        .map_err(|e| ProtocolError::config(e.0))
}

/// Runs a future on a fresh multi-threaded runtime.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, ProtocolError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(f))
        .map_err(|e| ProtocolError::system(format!("cannot start the async runtime: {e}")))
}

fn airbyte_spec(inputs: &Inputs, w: &AirbyteOut) -> Result<u8, ProtocolError> {
    let spec = load_spec(&inputs.spec)?;
    let doc = connection::airbyte_spec(&spec);
    with(w, |w| w.message(&Message::Spec { spec: &doc }))?;
    Ok(0)
}

/// One page of each stream, as `runtime check` does: SUCCEEDED when every stream
/// answered, FAILED (exit 0, as the protocol wants) with each failure otherwise.
fn airbyte_check(inputs: &Inputs, w: &AirbyteOut) -> Result<u8, ProtocolError> {
    let prepared = prepare(inputs)?;
    let engine = probe_engine(&prepared)?;
    let probes = block_on(probe::probe_all(&engine))?;
    let failures: Vec<String> = probes
        .iter()
        .filter_map(|p| {
            p.error
                .as_ref()
                .map(|e| format!("stream {}: {e}", p.stream))
        })
        .collect();
    let message = if failures.is_empty() {
        None
    } else {
        Some(failures.join("; "))
    };
    let status = airbyte::ConnectionStatus {
        status: if message.is_none() {
            "SUCCEEDED"
        } else {
            "FAILED"
        },
        message: message.as_deref(),
    };
    with(w, |w| {
        w.message(&Message::ConnectionStatus {
            connection_status: status,
        })
    })?;
    Ok(0)
}

fn airbyte_discover(inputs: &Inputs, w: &AirbyteOut) -> Result<u8, ProtocolError> {
    let prepared = prepare(inputs)?;
    let streams = discover_streams(inputs, &prepared)?;
    let doc = catalog::airbyte_catalog(&streams);
    with(w, |w| w.message(&Message::Catalog { catalog: &doc }))?;
    Ok(0)
}

/// Every stream's description; the first page of each is fetched only when some stream
/// has no declared schema. A stream whose schema must be inferred but whose page
/// failed fails the whole discovery: an empty schema would be a wrong answer.
pub fn discover_streams(inputs: &Inputs, p: &Prepared) -> Result<Vec<StreamInfo>, ProtocolError> {
    let spec = &p.loaded.spec;
    let needs_sample = spec
        .streams
        .values()
        .any(|s| s.schema.is_none() && s.schema_file.is_none());
    let probes: Vec<Probe> = if needs_sample {
        let engine = probe_engine(p)?;
        block_on(probe::probe_all(&engine))?
    } else {
        Vec::new()
    };
    for pr in &probes {
        let declared = spec
            .streams
            .get(&pr.stream)
            .is_some_and(|s| s.schema.is_some() || s.schema_file.is_some());
        if let (Some(e), false) = (&pr.error, declared) {
            return Err(ProtocolError::transient(format!(
                "stream {}: its schema is inferred from its first page, which failed: {e}",
                pr.stream
            )));
        }
    }
    Ok(catalog::describe(&inputs.spec, spec, &probes))
}

/// The selection of a configured catalog file, or every stream without one.
pub fn selection(
    spec: &connector_spec::Spec,
    path: Option<&Path>,
    parse: fn(&connector_spec::Spec, &Value) -> Result<Selection, ProtocolError>,
) -> Result<Selection, ProtocolError> {
    match path {
        None => Ok(Selection::all(spec)),
        Some(p) => parse(spec, &incoming::read_json(p, "catalog")?),
    }
}
