//! What a platform hands the runtime: a configured catalog (which streams, which sync
//! mode) and the state it kept from the previous run. Both are checked against the spec
//! before anything is fetched; a mismatch is a config error in plain words.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use connector_runtime::state::StreamState;
use connector_spec::Spec;
use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::ProtocolError;

/// Largest catalog or state file read; more is refused, not buffered.
pub const MAX_FILE: u64 = 64 * 1024 * 1024;

/// The version of the state blob inside a platform's state.
pub const STATE_VERSION: u64 = 1;

/// How one selected stream is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything, from the start.
    FullRefresh,
    /// What changed since the incoming state.
    Incremental,
}

/// The streams a run emits, in spec order, with their modes.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Selected stream -> mode.
    pub streams: IndexMap<String, Mode>,
}

impl Selection {
    /// Every stream, incremental where it can be (no catalog given).
    pub fn all(spec: &Spec) -> Self {
        Self {
            streams: spec
                .streams
                .iter()
                .map(|(n, s)| {
                    let mode = if crate::catalog::appends(spec, s) {
                        Mode::Incremental
                    } else {
                        Mode::FullRefresh
                    };
                    (n.clone(), mode)
                })
                .collect(),
        }
    }

    /// Whether the stream's records are emitted.
    pub fn selected(&self, stream: &str) -> bool {
        self.streams.contains_key(stream)
    }

    /// The state a stream resumes from: none when it, or any selected stream of its
    /// family (same top-level ancestor), is read in full, because a child only sees the
    /// parent records that changed, so a full child needs a full parent.
    pub fn prior(
        &self,
        spec: &Spec,
        stream: &str,
        states: &BTreeMap<String, StreamState>,
    ) -> Option<StreamState> {
        let roots = roots_of(spec, stream);
        let full = self.streams.iter().any(|(n, m)| {
            *m == Mode::FullRefresh && roots_of(spec, n).iter().any(|r| roots.contains(r))
        });
        if full {
            return None;
        }
        states.get(stream).cloned()
    }
}

/// A stream's top-level ancestors (itself when it waits for no other stream); a stream
/// with several parent or partition streams may have several.
fn roots_of<'a>(spec: &'a Spec, stream: &'a str) -> Vec<&'a str> {
    let Some(s) = spec.streams.get(stream) else {
        return vec![stream];
    };
    let roots: Vec<&str> = spec
        .ancestors_of(s)
        .into_iter()
        .filter(|n| {
            spec.streams
                .get(*n)
                .is_none_or(|a| a.upstreams().is_empty())
        })
        .collect();
    if roots.is_empty() {
        vec![stream]
    } else {
        roots
    }
}

/// Reads a JSON file of at most [`MAX_FILE`] bytes.
pub fn read_json(path: &Path, what: &str) -> Result<Value, ProtocolError> {
    let shown = path.display();
    let file = std::fs::File::open(path)
        .map_err(|e| ProtocolError::config(format!("cannot read the {what} file {shown}: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ProtocolError::config(format!("cannot read the {what} file {shown}: {e}")))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(ProtocolError::config(format!(
            "the {what} file {shown} is larger than {} MiB; it cannot be a {what} of this connector",
            MAX_FILE / 1024 / 1024
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ProtocolError::config(format!("the {what} file {shown} is not valid JSON: {e}"))
    })
}

/// Names a stream the spec does not have, with the ones it does.
fn unknown_stream(spec: &Spec, what: &str, name: &str) -> ProtocolError {
    let have: Vec<&str> = spec.streams.keys().map(String::as_str).collect();
    ProtocolError::config(format!(
        "the {what} names stream `{}`, which connector `{}` does not have; its streams are: {}",
        connector_runtime::printable::escape(name),
        spec.name,
        have.join(", ")
    ))
}

/// Airbyte's `ConfiguredAirbyteCatalog`: `{"streams": [{"stream": {"name"}, "sync_mode"}]}`.
pub fn airbyte_catalog(spec: &Spec, doc: &Value) -> Result<Selection, ProtocolError> {
    let what = "configured catalog";
    let list = doc
        .get("streams")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ProtocolError::config(format!(
                "the {what} has no `streams` list; pass the ConfiguredAirbyteCatalog the platform made from `discover`"
            ))
        })?;
    let mut chosen: IndexMap<String, Mode> = IndexMap::new();
    for (i, entry) in list.iter().enumerate() {
        let name = entry
            .pointer("/stream/name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ProtocolError::config(format!("the {what}'s streams[{i}] has no stream.name"))
            })?;
        let stream = spec
            .streams
            .get(name)
            .ok_or_else(|| unknown_stream(spec, what, name))?;
        let mode = match entry.get("sync_mode").and_then(Value::as_str) {
            Some("incremental") if crate::catalog::appends(spec, stream) => Mode::Incremental,
            // Like Airbyte's CDK: a stream that cannot be incremental is read in full.
            Some("incremental") | Some("full_refresh") => Mode::FullRefresh,
            other => {
                return Err(ProtocolError::config(format!(
                    "the {what}'s stream `{name}` has sync_mode {}; use `full_refresh` or `incremental`",
                    other.map_or("missing".to_owned(), |o| format!(
                        "`{}`",
                        connector_runtime::printable::escape(o)
                    ))
                )));
            }
        };
        chosen.insert(name.to_owned(), mode);
    }
    Ok(in_spec_order(spec, chosen))
}

/// A Singer catalog (`--catalog` or `--properties`): streams whose top-level metadata
/// (or, in older catalogs, `schema.selected`) says `selected: true`, read as their
/// `replication-method` says.
pub fn singer_catalog(spec: &Spec, doc: &Value) -> Result<Selection, ProtocolError> {
    let what = "catalog";
    let list = doc
        .get("streams")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ProtocolError::config(format!(
                "the {what} has no `streams` list; make one with --discover"
            ))
        })?;
    let mut chosen: IndexMap<String, Mode> = IndexMap::new();
    for (i, entry) in list.iter().enumerate() {
        let name = entry
            .get("tap_stream_id")
            .or_else(|| entry.get("stream"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ProtocolError::config(format!("the {what}'s streams[{i}] has no tap_stream_id"))
            })?;
        let stream = spec
            .streams
            .get(name)
            .ok_or_else(|| unknown_stream(spec, what, name))?;
        let top = entry
            .get("metadata")
            .and_then(Value::as_array)
            .and_then(|m| {
                m.iter().find(|x| {
                    x.get("breadcrumb")
                        .and_then(Value::as_array)
                        .is_some_and(Vec::is_empty)
                })
            })
            .and_then(|x| x.get("metadata"));
        let selected = top
            .and_then(|t| t.get("selected"))
            .or_else(|| entry.pointer("/schema/selected"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !selected {
            continue;
        }
        let method = top
            .and_then(|t| t.get("replication-method"))
            .or_else(|| entry.get("replication_method"))
            .and_then(Value::as_str);
        let mode = match method {
            None | Some("INCREMENTAL") if crate::catalog::appends(spec, stream) => {
                Mode::Incremental
            }
            None | Some("INCREMENTAL") | Some("FULL_TABLE") => Mode::FullRefresh,
            Some(other) => {
                return Err(ProtocolError::config(format!(
                    "the {what}'s stream `{name}` has replication-method `{}`; use FULL_TABLE or INCREMENTAL",
                    connector_runtime::printable::escape(other)
                )));
            }
        };
        chosen.insert(name.to_owned(), mode);
    }
    Ok(in_spec_order(spec, chosen))
}

fn in_spec_order(spec: &Spec, mut chosen: IndexMap<String, Mode>) -> Selection {
    let mut streams = IndexMap::new();
    for name in spec.streams.keys() {
        if let Some(m) = chosen.shift_remove(name) {
            streams.insert(name.clone(), m);
        }
    }
    Selection { streams }
}

/// The blob a platform keeps for one stream: the connector's name (so another
/// connector's state is refused), the format version, and the engine's position.
pub fn state_blob(connector: &str, state: &StreamState) -> Value {
    let mut position = state.clone();
    // The byte length of a JSONL file means nothing to a platform.
    position.output_bytes = 0;
    position.saved_at = String::new();
    json!({
        "connector": connector,
        "version": STATE_VERSION,
        "position": position,
    })
}

/// Reads a blob made by [`state_blob`]; `where_` says where it sits, for the message.
fn read_blob(spec: &Spec, where_: &str, blob: &Value) -> Result<StreamState, ProtocolError> {
    let shape = || {
        ProtocolError::config(format!(
            "{where_} is not a state this runtime wrote (expected {{\"connector\", \"version\", \"position\"}}); it may come from another connector or an older setup: reset the connection's state"
        ))
    };
    let connector = blob
        .get("connector")
        .and_then(Value::as_str)
        .ok_or_else(shape)?;
    if connector != spec.name {
        return Err(ProtocolError::config(format!(
            "{where_} belongs to connector `{}`, not `{}`: the platform passed another connector's state; reset this connection's state",
            connector_runtime::printable::escape(connector),
            spec.name
        )));
    }
    match blob.get("version").and_then(Value::as_u64) {
        Some(STATE_VERSION) => {}
        Some(v) => {
            return Err(ProtocolError::config(format!(
                "{where_} is version {v}; this runtime reads version {STATE_VERSION}: upgrade the runtime or reset the state"
            )));
        }
        None => return Err(shape()),
    }
    let position = blob.get("position").ok_or_else(shape)?;
    serde_json::from_value(position.clone()).map_err(|e| {
        ProtocolError::config(format!(
            "{where_}: the position is malformed ({e}); reset the state"
        ))
    })
}

/// Airbyte's incoming state: a list of per-stream `STREAM` states (an empty list or
/// `{}` means none). Legacy and `GLOBAL` states are refused.
pub fn airbyte_state(
    spec: &Spec,
    doc: &Value,
) -> Result<BTreeMap<String, StreamState>, ProtocolError> {
    let mut out = BTreeMap::new();
    let list: Vec<&Value> = match doc {
        Value::Array(items) => items.iter().collect(),
        Value::Object(m) if m.is_empty() => Vec::new(),
        Value::Object(m) if m.get("type").is_some() => vec![doc],
        _ => {
            return Err(ProtocolError::config(
                "the state file is not a list of per-stream STREAM states; it may be a legacy state of another connector: reset the connection's state",
            ));
        }
    };
    for (i, item) in list.iter().enumerate() {
        match item.get("type").and_then(Value::as_str) {
            Some("STREAM") => {}
            Some(other) => {
                return Err(ProtocolError::config(format!(
                    "the state's entry {i} is a `{}` state; this source keeps per-stream STREAM state: reset the connection's state",
                    connector_runtime::printable::escape(other)
                )));
            }
            None => {
                return Err(ProtocolError::config(format!(
                    "the state's entry {i} has no `type`; expected per-stream STREAM states: reset the connection's state"
                )));
            }
        }
        let name = item
            .pointer("/stream/stream_descriptor/name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ProtocolError::config(format!(
                    "the state's entry {i} has no stream.stream_descriptor.name"
                ))
            })?;
        if !spec.streams.contains_key(name) {
            return Err(unknown_stream(spec, "state", name));
        }
        let blob = item.pointer("/stream/stream_state").unwrap_or(&Value::Null);
        // A stream read in full keeps no position.
        if blob.is_null() || blob.as_object().is_some_and(serde_json::Map::is_empty) {
            continue;
        }
        let st = read_blob(spec, &format!("the state of stream `{name}`"), blob)?;
        out.insert(name.to_owned(), st);
    }
    Ok(out)
}

/// Singer's incoming state: `{"bookmarks": {stream: {..., "runtime": blob}}}`.
pub fn singer_state(
    spec: &Spec,
    doc: &Value,
) -> Result<BTreeMap<String, StreamState>, ProtocolError> {
    let mut out = BTreeMap::new();
    let doc = match doc.get("singer_state") {
        Some(inner) => inner,
        None => doc,
    };
    let Some(obj) = doc.as_object() else {
        return Err(ProtocolError::config(
            "the state file is not a JSON object with `bookmarks`; it is not a Singer state of this tap",
        ));
    };
    let Some(bookmarks) = obj.get("bookmarks") else {
        if obj.is_empty() {
            return Ok(out);
        }
        return Err(ProtocolError::config(
            "the state file has no `bookmarks`; it is not a Singer state of this tap: clear the state (`meltano state clear`) and run again",
        ));
    };
    let Some(bookmarks) = bookmarks.as_object() else {
        return Err(ProtocolError::config(
            "the state's `bookmarks` is not an object",
        ));
    };
    for (name, mark) in bookmarks {
        if !spec.streams.contains_key(name) {
            return Err(unknown_stream(spec, "state", name));
        }
        let blob = mark.get("runtime").ok_or_else(|| {
            ProtocolError::config(format!(
                "the bookmark of stream `{}` was not written by this runtime (no `runtime` entry); it may come from another tap: clear the state and run again",
                connector_runtime::printable::escape(name)
            ))
        })?;
        let st = read_blob(spec, &format!("the bookmark of stream `{name}`"), blob)?;
        out.insert(name.clone(), st);
    }
    Ok(out)
}

/// One Singer bookmark: the conventional replication key and value for people and
/// tools, and the runtime's own position, which is what a rerun reads.
pub fn singer_bookmark(spec: &Spec, stream: &str, state: &StreamState) -> Value {
    let mut mark = json!({ "runtime": state_blob(&spec.name, state) });
    if let Some(inc) = spec
        .streams
        .get(stream)
        .and_then(|s| s.incremental.as_ref())
    {
        mark["replication_key"] = json!(inc.cursor_field);
        if let Some(c) = &state.position.cursor {
            mark["replication_key_value"] = json!(c);
        }
    }
    mark
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "version: 1\nname: shop\nhttp: { base_url: \"https://x\" }\nstreams:\n  orders: { path: /o, records: \"$[*]\", primary_key: id, incremental: { cursor_field: u, start: \"2024-01-01T00:00:00Z\" } }\n  items: { path: \"/o/{{ parent.id }}\", records: \"$[*]\", parent: { stream: orders, key: id } }\n  products: { path: /p, records: \"$[*]\" }\n";

    fn spec() -> Spec {
        connector_spec::load_str(Path::new("t.yaml"), SPEC)
            .unwrap()
            .spec
    }

    fn st(cursor: &str) -> StreamState {
        StreamState {
            position: connector_runtime::state::Position {
                cursor: Some(cursor.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn airbyte_catalog_modes_and_unknown_streams() {
        let spec = spec();
        let sel = airbyte_catalog(
            &spec,
            &json!({"streams": [
                {"stream": {"name": "products"}, "sync_mode": "incremental"},
                {"stream": {"name": "orders"}, "sync_mode": "incremental"}]}),
        )
        .unwrap();
        assert_eq!(
            sel.streams.keys().collect::<Vec<_>>(),
            ["orders", "products"]
        );
        assert_eq!(sel.streams["products"], Mode::FullRefresh);
        assert_eq!(sel.streams["orders"], Mode::Incremental);
        let e = airbyte_catalog(
            &spec,
            &json!({"streams": [{"stream": {"name": "nope"}, "sync_mode": "full_refresh"}]}),
        )
        .unwrap_err();
        assert!(
            e.message.contains("`nope`") && e.message.contains("orders, items, products"),
            "{e}"
        );
    }

    #[test]
    fn a_full_child_reads_its_parent_in_full() {
        let spec = spec();
        let states: BTreeMap<String, StreamState> = [("orders".to_owned(), st("x"))].into();
        let sel = airbyte_catalog(
            &spec,
            &json!({"streams": [
                {"stream": {"name": "orders"}, "sync_mode": "incremental"},
                {"stream": {"name": "items"}, "sync_mode": "full_refresh"}]}),
        )
        .unwrap();
        assert!(sel.prior(&spec, "orders", &states).is_none());
        let sel = Selection::all(&spec);
        assert!(sel.prior(&spec, "orders", &states).is_some());
    }

    #[test]
    fn state_round_trips_and_refuses_strangers() {
        let spec = spec();
        let blob = state_blob("shop", &st("2024-05-01"));
        let doc = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "orders"}, "stream_state": blob}}]);
        let got = airbyte_state(&spec, &doc).unwrap();
        assert_eq!(got["orders"].position.cursor.as_deref(), Some("2024-05-01"));

        let other = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "orders"}, "stream_state": state_blob("github", &st("x"))}}]);
        let e = airbyte_state(&spec, &other).unwrap_err();
        assert!(e.message.contains("belongs to connector `github`"), "{e}");
        let e = airbyte_state(&spec, &json!({"cursor": "x"})).unwrap_err();
        assert!(e.message.contains("legacy"), "{e}");
        let e = airbyte_state(&spec, &json!([{"type": "GLOBAL", "global": {}}])).unwrap_err();
        assert!(e.message.contains("`GLOBAL`"), "{e}");
        let foreign = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "orders"}, "stream_state": {"updated_at": "x"}}}]);
        assert!(
            airbyte_state(&spec, &foreign)
                .unwrap_err()
                .message
                .contains("not a state this runtime wrote")
        );

        let mark = singer_bookmark(&spec, "orders", &st("2024-05-01"));
        assert_eq!(mark["replication_key"], "u");
        let got = singer_state(&spec, &json!({"bookmarks": {"orders": mark}})).unwrap();
        assert_eq!(got["orders"].position.cursor.as_deref(), Some("2024-05-01"));
        let e = singer_state(
            &spec,
            &json!({"bookmarks": {"orders": {"replication_key_value": "x"}}}),
        )
        .unwrap_err();
        assert!(e.message.contains("not written by this runtime"), "{e}");
    }

    #[test]
    fn singer_selection_follows_metadata() {
        let spec = spec();
        let doc = json!({"streams": [
            {"tap_stream_id": "orders", "metadata": [{"breadcrumb": [], "metadata": {"selected": true, "replication-method": "FULL_TABLE"}}]},
            {"tap_stream_id": "products", "metadata": [{"breadcrumb": [], "metadata": {"selected": false}}]},
            {"tap_stream_id": "items", "schema": {"selected": true}, "metadata": []}]});
        let sel = singer_catalog(&spec, &doc).unwrap();
        assert_eq!(sel.streams.keys().collect::<Vec<_>>(), ["orders", "items"]);
        assert_eq!(sel.streams["orders"], Mode::FullRefresh);
        assert_eq!(sel.streams["items"], Mode::Incremental);
    }
}
