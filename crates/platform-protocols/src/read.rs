//! `read` (Airbyte) and the sync mode (Singer): the engine's sync with a protocol
//! destination. The folder and state-file locks of `runtime sync` do not apply: the
//! platform owns the state and nothing is written to disk.

use std::collections::BTreeMap;
use std::sync::Arc;

use connector_runtime::report::{Reporter, summary_table};
use connector_runtime::sync::{self, SyncOptions, SyncReport};
use serde_json::{Map, Value};

use crate::ProtocolError;
use crate::airbyte::Message;
use crate::commands::{AirbyteOut, Inputs, SingerOut, block_on, prepare, selection, with};
use crate::destination::{AirbyteDestination, SingerDestination};
use crate::incoming::{self, Selection};
use crate::reporter::AirbyteReporter;

/// Top-level streams read at once, as `runtime sync`'s default.
const CONCURRENCY: usize = 4;

/// Airbyte `read`: exit 0 when every selected stream completed, 1 otherwise.
pub fn airbyte_read(inputs: &Inputs, w: &AirbyteOut) -> Result<u8, ProtocolError> {
    let prepared = prepare(inputs)?;
    let spec = prepared.loaded.spec.clone();
    let sel = selection(&spec, inputs.catalog.as_deref(), incoming::airbyte_catalog)?;
    let prior = match &inputs.state {
        None => BTreeMap::new(),
        Some(p) => incoming::airbyte_state(&spec, &incoming::read_json(p, "state")?)?,
    };
    let dest = AirbyteDestination::new(spec, sel.clone(), prior, w.clone());
    let reporter: Arc<dyn Reporter> = Arc::new(AirbyteReporter::new(w.clone(), sel.clone()));
    let report = run(&prepared, &sel, Arc::new(dest), reporter)?;
    let summary = summary_table(&report.outcomes);
    with(w, |w| w.message(&Message::log("INFO", summary.trim_end())))?;
    Ok(if report.ok() { 0 } else { 1 })
}

/// Singer sync mode: SCHEMA, RECORD and STATE messages of the selected streams.
pub fn singer_read(inputs: &Inputs, w: &SingerOut) -> Result<(), ProtocolError> {
    let prepared = prepare(inputs)?;
    let spec = prepared.loaded.spec.clone();
    let (sel, schemas) = match &inputs.catalog {
        Some(p) => {
            let doc = incoming::read_json(p, "catalog")?;
            let sel = incoming::singer_catalog(&spec, &doc)?;
            (sel, catalog_schemas(&doc))
        }
        None => {
            let streams = crate::commands::discover_streams(inputs, &prepared)?;
            let schemas = streams.into_iter().map(|s| (s.name, s.schema)).collect();
            (Selection::all(&spec), schemas)
        }
    };
    let (prior, bookmarks) = match &inputs.state {
        None => (BTreeMap::new(), Map::new()),
        Some(p) => {
            let doc = incoming::read_json(p, "state")?;
            let prior = incoming::singer_state(&spec, &doc)?;
            let inner = doc.get("singer_state").unwrap_or(&doc);
            let marks = inner
                .get("bookmarks")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            (prior, marks)
        }
    };
    let dest = SingerDestination::new(spec, sel.clone(), prior, schemas, bookmarks, w.clone());
    let reporter: Arc<dyn Reporter> = Arc::new(connector_runtime::report::LogReporter);
    let report = run(&prepared, &sel, Arc::new(dest), reporter)?;
    with(w, |w| w.flush())?;
    tracing::info!("\n{}", summary_table(&report.outcomes).trim_end());
    match report.outcomes.iter().find(|o| o.error.is_some()) {
        None => Ok(()),
        Some(o) => Err(ProtocolError::transient(format!(
            "stream {} failed: {}",
            o.stream,
            o.error.as_deref().unwrap_or("")
        ))),
    }
}

/// Each stream's schema as the catalog gives it.
fn catalog_schemas(doc: &Value) -> BTreeMap<String, Value> {
    doc.get("streams")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    let name = e
                        .get("tap_stream_id")
                        .or_else(|| e.get("stream"))?
                        .as_str()?;
                    Some((name.to_owned(), e.get("schema")?.clone()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the selected streams (and the parents they need) into `dest`.
fn run(
    prepared: &connector_runtime::host::Prepared,
    sel: &Selection,
    dest: Arc<dyn connector_runtime::sink::Destination>,
    reporter: Arc<dyn Reporter>,
) -> Result<SyncReport, ProtocolError> {
    let names: Vec<String> = sel.streams.keys().cloned().collect();
    if names.is_empty() {
        return Ok(SyncReport {
            outcomes: Vec::new(),
        });
    }
    let engine = prepared
        .engine(std::env::temp_dir())
        .map_err(|e| ProtocolError::config(e.0))?;
    let opts = SyncOptions {
        streams: names,
        concurrency: CONCURRENCY,
        limit: None,
        full_refresh: false,
        destination: dest,
    };
    block_on(sync::run(engine, opts, reporter))?.map_err(|e| ProtocolError::config(e.0))
}
