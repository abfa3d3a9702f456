//! The protocols as destinations of the engine: each stream's sink turns its lines into
//! RECORD messages (the API's bytes spliced in) and its checkpoints into STATE messages,
//! written after the records they cover have been flushed.

use std::collections::BTreeMap;
use std::sync::Arc;

use connector_runtime::state::StreamState;
use connector_spec::Spec;
use serde_json::{Map, Value};

use crate::commands::{AirbyteOut, SingerOut, with};
use crate::incoming::{self, Selection};
use crate::{airbyte, singer};
use connector_runtime::sink::{Destination, RecordSink, SinkError, StreamTarget};

/// What both protocols' destinations share: the spec, the selection, the incoming state.
#[derive(Debug)]
struct Plan {
    spec: Spec,
    selection: Selection,
    prior: BTreeMap<String, StreamState>,
}

impl Plan {
    fn prior_state(&self, stream: &str) -> Option<StreamState> {
        self.selection.prior(&self.spec, stream, &self.prior)
    }
}

fn sink_error(e: crate::ProtocolError) -> SinkError {
    SinkError(e.message)
}

/// Airbyte's `read` as a destination.
pub struct AirbyteDestination {
    plan: Arc<Plan>,
    out: AirbyteOut,
}

impl AirbyteDestination {
    /// Emits the selected streams through `out`, resuming from `prior`.
    pub fn new(
        spec: Spec,
        selection: Selection,
        prior: BTreeMap<String, StreamState>,
        out: AirbyteOut,
    ) -> Self {
        Self {
            plan: Arc::new(Plan {
                spec,
                selection,
                prior,
            }),
            out,
        }
    }
}

impl Destination for AirbyteDestination {
    fn prior_state(&self, stream: &str) -> Result<Option<StreamState>, SinkError> {
        Ok(self.plan.prior_state(stream))
    }

    fn open(&self, target: &StreamTarget<'_>) -> Result<Box<dyn RecordSink>, SinkError> {
        Ok(Box::new(AirbyteSink {
            plan: self.plan.clone(),
            out: self.out.clone(),
            stream: target.name.to_owned(),
            selected: self.plan.selection.selected(target.name),
            since_state: 0,
            running: false,
        }))
    }

    fn location(&self, _stream: &str) -> String {
        "standard output (Airbyte protocol)".into()
    }
}

/// One stream's RECORD and STATE messages.
struct AirbyteSink {
    plan: Arc<Plan>,
    out: AirbyteOut,
    stream: String,
    /// A parent run only to feed a selected child emits nothing.
    selected: bool,
    /// Records since the last STATE, for `sourceStats.recordCount`.
    since_state: u64,
    /// Whether the RUNNING status was sent (before the first record).
    running: bool,
}

impl RecordSink for AirbyteSink {
    fn write(&mut self, lines: &[u8]) -> Result<(), SinkError> {
        if !self.selected {
            return Ok(());
        }
        let at = crate::now_millis();
        let first = !self.running && !lines.is_empty();
        let n = with(&self.out, |w| {
            if first {
                w.message(&airbyte::Message::status(
                    &self.stream,
                    airbyte::Status::Running,
                ))?;
            }
            w.records(&self.stream, lines, at)
        })
        .map_err(sink_error)?;
        self.running |= first;
        self.since_state += n;
        Ok(())
    }

    fn checkpoint(&mut self, state: &mut StreamState) -> Result<(), SinkError> {
        if !self.selected {
            return Ok(());
        }
        let blob = incoming::state_blob(&self.plan.spec.name, state);
        let n = std::mem::take(&mut self.since_state);
        // `message` flushes the records buffered before it first: same buffer, in order.
        with(&self.out, |w| {
            w.message(&airbyte::Message::state(&self.stream, &blob, n))
        })
        .map_err(sink_error)
    }

    fn commit(mut self: Box<Self>, state: Option<&mut StreamState>) -> Result<(), SinkError> {
        match state {
            Some(st) => self.checkpoint(st),
            None => with(&self.out, |w| w.flush()).map_err(sink_error),
        }
    }
}

/// A Singer tap's output as a destination: SCHEMA before a stream's first record, and
/// STATE with every stream's bookmarks (Singer's state is one document).
pub struct SingerDestination {
    plan: Arc<Plan>,
    out: SingerOut,
    schemas: BTreeMap<String, Value>,
    bookmarks: Arc<std::sync::Mutex<Map<String, Value>>>,
}

impl SingerDestination {
    /// Emits the selected streams with their `schemas`; `bookmarks` are the incoming
    /// state's, kept for streams that do not run.
    pub fn new(
        spec: Spec,
        selection: Selection,
        prior: BTreeMap<String, StreamState>,
        schemas: BTreeMap<String, Value>,
        bookmarks: Map<String, Value>,
        out: SingerOut,
    ) -> Self {
        Self {
            plan: Arc::new(Plan {
                spec,
                selection,
                prior,
            }),
            out,
            schemas,
            bookmarks: Arc::new(std::sync::Mutex::new(bookmarks)),
        }
    }
}

impl Destination for SingerDestination {
    fn prior_state(&self, stream: &str) -> Result<Option<StreamState>, SinkError> {
        Ok(self.plan.prior_state(stream))
    }

    fn open(&self, target: &StreamTarget<'_>) -> Result<Box<dyn RecordSink>, SinkError> {
        let selected = self.plan.selection.selected(target.name);
        if selected {
            let empty = Value::Object(Map::new());
            let schema = self.schemas.get(target.name).unwrap_or(&empty);
            let keys: Vec<String> = target
                .stream
                .primary_key
                .as_ref()
                .map(|k| k.fields().into_iter().map(str::to_owned).collect())
                .unwrap_or_default();
            let marks: Vec<String> = target
                .stream
                .incremental
                .as_ref()
                .map(|i| vec![i.cursor_field.clone()])
                .unwrap_or_default();
            with(&self.out, |w| {
                w.message(&singer::Message::Schema {
                    stream: target.name,
                    schema,
                    key_properties: &keys,
                    bookmark_properties: &marks,
                })
            })
            .map_err(sink_error)?;
        }
        Ok(Box::new(SingerSink {
            plan: self.plan.clone(),
            out: self.out.clone(),
            bookmarks: self.bookmarks.clone(),
            stream: target.name.to_owned(),
            selected,
        }))
    }

    fn location(&self, _stream: &str) -> String {
        "standard output (Singer)".into()
    }
}

/// One stream's Singer RECORD messages and its share of the STATE.
struct SingerSink {
    plan: Arc<Plan>,
    out: SingerOut,
    bookmarks: Arc<std::sync::Mutex<Map<String, Value>>>,
    stream: String,
    selected: bool,
}

impl RecordSink for SingerSink {
    fn write(&mut self, lines: &[u8]) -> Result<(), SinkError> {
        if !self.selected {
            return Ok(());
        }
        let at = crate::now_rfc3339();
        with(&self.out, |w| w.records(&self.stream, lines, &at))
            .map(|_| ())
            .map_err(sink_error)
    }

    fn checkpoint(&mut self, state: &mut StreamState) -> Result<(), SinkError> {
        if !self.selected {
            return Ok(());
        }
        let mark = incoming::singer_bookmark(&self.plan.spec, &self.stream, state);
        let mut marks = self
            .bookmarks
            .lock()
            .map_err(|_| SinkError("the bookmarks' lock was poisoned".into()))?;
        marks.insert(self.stream.clone(), mark);
        let value = serde_json::json!({ "bookmarks": Value::Object(marks.clone()) });
        // Under the bookmarks' lock, so two streams' STATEs go out in the order they were made.
        with(&self.out, |w| {
            w.message(&singer::Message::State { value: &value })
        })
        .map_err(sink_error)
    }

    fn commit(mut self: Box<Self>, state: Option<&mut StreamState>) -> Result<(), SinkError> {
        match state {
            Some(st) => self.checkpoint(st),
            None => with(&self.out, |w| w.flush()).map_err(sink_error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufWriter, Write};
    use std::sync::{Arc, Mutex};

    use connector_runtime::sink::WriteMode;

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const SPEC: &str = "version: 1\nname: shop\nhttp: { base_url: \"https://x\" }\nstreams:\n  orders: { path: /o, records: \"$[*]\", primary_key: id, incremental: { cursor_field: u, start: \"2024-01-01T00:00:00Z\" } }\n  other: { path: /p, records: \"$[*]\" }\n";

    #[test]
    fn state_follows_its_records_and_unselected_streams_are_silent() {
        let spec = connector_spec::load_str(std::path::Path::new("t.yaml"), SPEC)
            .unwrap()
            .spec;
        let mut sel = Selection::all(&spec);
        sel.streams.shift_remove("other");
        let buf = Shared::default();
        // A large buffer: records reach `buf` only when a message flushes them.
        let out: AirbyteOut = Arc::new(Mutex::new(airbyte::Writer::new(BufWriter::with_capacity(
            1 << 20,
            Box::new(buf.clone()) as Box<dyn Write + Send>,
        ))));
        let dest = AirbyteDestination::new(spec.clone(), sel, BTreeMap::new(), out);
        let prior = StreamState::default();
        let open = |name: &str| {
            dest.open(&StreamTarget {
                name,
                stream: &spec.streams[name],
                mode: WriteMode::Append,
                prior: &prior,
            })
            .unwrap()
        };
        let mut orders = open("orders");
        let mut other = open("other");
        other.write(b"{\"id\":9}\n").unwrap();
        orders.write(b"{\"id\":1}\n{\"id\":2}\n").unwrap();
        let early = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            !early.contains("RECORD"),
            "records wait in the buffer: {early}"
        );
        let mut st = StreamState::default();
        orders.checkpoint(&mut st).unwrap();
        other.commit(Some(&mut st)).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let kinds: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect();
        assert_eq!(kinds.len(), 4, "{text}");
        assert_eq!(kinds[0]["trace"]["stream_status"]["status"], "RUNNING");
        assert_eq!(kinds[1]["record"]["data"]["id"], 1);
        assert_eq!(kinds[2]["record"]["data"]["id"], 2);
        assert_eq!(kinds[3]["type"], "STATE");
        assert_eq!(kinds[3]["state"]["sourceStats"]["recordCount"], 2.0);
        assert!(
            !text.contains("\"id\":9"),
            "an unselected stream emits nothing"
        );
    }
}
