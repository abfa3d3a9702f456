//! Incremental state: per stream, the highest cursor written, the keys at exactly that
//! value, and the output length at the checkpoint. One versioned JSON file, replaced
//! atomically at every checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::sink::write_atomic;

/// The state format this build writes and reads.
pub const VERSION: u32 = 1;

/// The whole state file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateDoc {
    /// Format version.
    pub version: u32,
    /// The connector the state belongs to.
    pub connector: String,
    /// Per stream.
    #[serde(default)]
    pub streams: BTreeMap<String, StreamState>,
}

/// Where one stream (or one partition of a child stream) stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// Highest cursor value written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The records written at exactly `cursor`: primary key (a JSON array) -> a hash of
    /// the record as sent, so a new version at the same cursor value is told apart.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub boundary: BTreeMap<String, String>,
}

/// The state of one stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamState {
    /// The stream's position (top-level streams).
    #[serde(flatten)]
    pub position: Position,
    /// Per parent record, for child streams.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<String, Position>,
    /// Length of `<stream>.jsonl` when this state was saved; anything after it is redone.
    pub output_bytes: u64,
    /// When the checkpoint was taken (RFC 3339, for people).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub saved_at: String,
    /// A windowed run's progress while some of its date windows are unfinished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<crate::date_windows::WindowsState>,
    /// Per partition (a partition's key, or a parent key for a child stream), the
    /// progress of its date windows while some of them are unfinished.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partition_windows: BTreeMap<String, crate::date_windows::WindowsState>,
}

/// A state file that cannot be used; nothing was overwritten.
#[derive(Debug, Clone, thiserror::Error)]
#[error("state file {path}: {message}")]
pub struct StateError {
    /// The file.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// The state file of a run, shared by its streams.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    doc: Mutex<StateDoc>,
}

impl StateStore {
    /// Reads the state file (an absent file is an empty state); refuses a corrupt file,
    /// a newer format, or another connector's state.
    pub fn open(path: &Path, connector: &str) -> Result<Self, StateError> {
        Self::read(path, connector, None)
    }

    /// Like [`open`](Self::open), for `state reset`: the entries of the streams to reset
    /// (all when empty) are accepted even when malformed, so a reset can clear them.
    pub fn open_for_reset(
        path: &Path,
        connector: &str,
        streams: &[String],
    ) -> Result<Self, StateError> {
        Self::read(path, connector, Some(streams))
    }

    fn read(path: &Path, connector: &str, reset: Option<&[String]>) -> Result<Self, StateError> {
        let err = |message: String| StateError {
            path: path.display().to_string(),
            message,
        };
        let doc = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateDoc {
                version: VERSION,
                connector: connector.to_owned(),
                streams: BTreeMap::new(),
            },
            Err(e) => return Err(err(format!("cannot read it: {e}"))),
            Ok(bytes) => {
                let mut probe: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| {
                        err(format!(
                            "it is not valid JSON ({e}); it was left as it is: restore it from a backup, or delete it (or run `runtime state reset`) to start over"
                        ))
                    })?;
                let version = probe.get("version").and_then(serde_json::Value::as_u64);
                if version.is_some_and(|v| v > u64::from(VERSION)) {
                    return Err(err(format!(
                        "it is version {}, written by a newer runtime (this one reads version {VERSION}); upgrade the runtime",
                        version.unwrap_or_default()
                    )));
                }
                if let Some(names) = reset {
                    blank_malformed(&mut probe, names);
                }
                let doc: StateDoc = serde_json::from_value(probe.clone())
                    .map_err(|e| err(shape_message(&probe, path, &e)))?;
                if doc.connector != connector {
                    return Err(err(format!(
                        "it belongs to connector `{}`, not `{connector}`; pass --state or --out to use a separate file",
                        doc.connector
                    )));
                }
                doc
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            doc: Mutex::new(doc),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of the whole state.
    pub fn snapshot(&self) -> StateDoc {
        self.doc.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// The saved state of one stream.
    pub fn stream(&self, name: &str) -> Option<StreamState> {
        self.doc.lock().ok()?.streams.get(name).cloned()
    }

    /// Saves a stream's new state durably (the caller has already synced its output).
    pub fn checkpoint(&self, name: &str, mut state: StreamState) -> Result<(), StateError> {
        state.saved_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut doc = self.doc.lock().map_err(|_| StateError {
            path: self.path.display().to_string(),
            message: "state lock poisoned".into(),
        })?;
        doc.streams.insert(name.to_owned(), state);
        self.write(&doc)
    }

    /// Clears the state of the named streams (all when empty); returns the names cleared.
    pub fn reset(&self, streams: &[String]) -> Result<Vec<String>, StateError> {
        let mut doc = self.doc.lock().map_err(|_| StateError {
            path: self.path.display().to_string(),
            message: "state lock poisoned".into(),
        })?;
        let cleared: Vec<String> = doc
            .streams
            .keys()
            .filter(|k| streams.is_empty() || streams.contains(k))
            .cloned()
            .collect();
        for k in &cleared {
            doc.streams.remove(k);
        }
        self.write(&doc)?;
        Ok(cleared)
    }

    fn write(&self, doc: &StateDoc) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(doc).map_err(|e| StateError {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes).map_err(|e| StateError {
            path: self.path.display().to_string(),
            message: format!("cannot save it: {e}"),
        })
    }
}

/// Replaces the malformed entries of the named streams (all when empty) by an empty state.
fn blank_malformed(probe: &mut serde_json::Value, names: &[String]) {
    let Some(streams) = probe
        .get_mut("streams")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for (name, entry) in streams.iter_mut() {
        let named = names.is_empty() || names.contains(name);
        if named && serde_json::from_value::<StreamState>(entry.clone()).is_err() {
            *entry = serde_json::json!({ "output_bytes": 0 });
        }
    }
}

/// Why a file does not have the shape of a state file, naming the stream at fault.
fn shape_message(probe: &serde_json::Value, path: &Path, e: &serde_json::Error) -> String {
    let bad = probe
        .get("streams")
        .and_then(serde_json::Value::as_object)
        .and_then(|m| {
            m.iter().find_map(|(name, entry)| {
                serde_json::from_value::<StreamState>(entry.clone())
                    .err()
                    .map(|e| (name, e))
            })
        });
    match bad {
        Some((name, e)) => format!(
            "the state of stream `{}` does not have the expected shape ({e}); it was left as it is: start that stream over with `runtime state reset <spec> --state {} --streams {}`, or restore the file from a backup",
            crate::window::shown(name),
            path.display(),
            crate::window::shown(name)
        ),
        None => format!("it does not have the shape of a state file ({e}); it was left as it is"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let s = StateStore::open(&p, "orders").unwrap();
        let st = StreamState {
            position: Position {
                cursor: Some("2024-01-01T00:00:00Z".into()),
                boundary: [("[1]".to_owned(), "ab".to_owned())].into(),
            },
            output_bytes: 10,
            ..Default::default()
        };
        s.checkpoint("orders", st.clone()).unwrap();
        let again = StateStore::open(&p, "orders").unwrap();
        assert_eq!(again.stream("orders").unwrap().position, st.position);

        let e = StateStore::open(&p, "other").unwrap_err().to_string();
        assert!(e.contains("belongs to connector `orders`"), "{e}");

        std::fs::write(&p, "{\"version\": 9, \"connector\": \"orders\"}").unwrap();
        let e = StateStore::open(&p, "orders").unwrap_err().to_string();
        assert!(e.contains("newer runtime"), "{e}");

        std::fs::write(&p, "{not json").unwrap();
        let e = StateStore::open(&p, "orders").unwrap_err().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{not json",
            "a refused file is left alone"
        );
    }

    #[test]
    fn a_malformed_stream_is_named_and_can_be_reset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let text = r#"{"version": 1, "connector": "c", "streams": {
            "good": {"cursor": "2024-01-01T00:00:00Z", "output_bytes": 3},
            "orders": {"cursor": {"a": 1}, "output_bytes": 0}}}"#;
        std::fs::write(&p, text).unwrap();
        let e = StateStore::open(&p, "c").unwrap_err().to_string();
        assert!(e.contains("stream `orders`"), "{e}");
        assert!(e.contains("runtime state reset <spec> --state"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
        let e = StateStore::open_for_reset(&p, "c", &["good".into()]).unwrap_err();
        assert!(e.to_string().contains("stream `orders`"), "{e}");
        let s = StateStore::open_for_reset(&p, "c", &["orders".into()]).unwrap();
        assert_eq!(s.reset(&["orders".into()]).unwrap(), vec!["orders"]);
        let again = StateStore::open(&p, "c").unwrap();
        assert!(again.stream("orders").is_none());
        assert_eq!(again.stream("good").unwrap().output_bytes, 3);
    }

    #[test]
    fn a_reset_blanks_only_malformed_entries_and_clears_all_when_unnamed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let text = r#"{"version": 1, "connector": "c", "streams": {
            "good": {"cursor": "2024-01-01T00:00:00Z", "output_bytes": 3},
            "orders": {"cursor": {"a": 1}, "output_bytes": 0}}}"#;
        std::fs::write(&p, text).unwrap();
        // Named, but well formed: kept as it is until the reset itself.
        let s = StateStore::open_for_reset(&p, "c", &["good".into(), "orders".into()]).unwrap();
        assert_eq!(
            s.stream("good").unwrap().position.cursor.as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
        assert_eq!(s.stream("orders").unwrap().output_bytes, 0);
        // No names: every malformed entry is accepted, and the reset clears everything.
        let s = StateStore::open_for_reset(&p, "c", &[]).unwrap();
        assert_eq!(s.path(), p.as_path());
        assert_eq!(s.snapshot().streams.len(), 2);
        assert_eq!(s.reset(&[]).unwrap(), vec!["good", "orders"]);
        let again = StateStore::open(&p, "c").unwrap();
        assert!(again.snapshot().streams.is_empty());
        assert_eq!(again.snapshot().connector, "c");
    }

    #[test]
    fn an_unreadable_state_file_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the file should be: not "absent", so not an empty state.
        let e = StateStore::open(dir.path(), "c").unwrap_err().to_string();
        assert!(e.contains("cannot read it"), "{e}");
        // Version 1 (this one) is read; an absent version too.
        let p = dir.path().join("state.json");
        std::fs::write(&p, r#"{"version": 1, "connector": "c", "streams": {}}"#).unwrap();
        assert!(StateStore::open(&p, "c").is_ok());
    }
}
