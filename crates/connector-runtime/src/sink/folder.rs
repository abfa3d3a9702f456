//! The default destination: a folder of `<stream>.jsonl` files beside a state file.
//!
//! One writer per folder (an advisory lock held for the life of the destination) and
//! per state file (locked when first needed, so a run without incremental streams never
//! reads it). A full-refresh stream's file is replaced when the stream completes; an
//! appending stream's file is fsynced before the state that covers it is saved.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::jsonl::{AppendSink, JsonlSink, check_resume, remove_stale_temps};
use super::{Destination, RecordSink, SinkError, StreamTarget, WriteMode};
use crate::state::{StateStore, StreamState};

/// A folder of JSON-lines files and the state file of the streams that append to them.
pub struct JsonlFolder {
    dir: PathBuf,
    connector: String,
    state_path: PathBuf,
    state: OnceLock<Result<Locked, SinkError>>,
    _lock: folder_lock::Lock,
}

/// The state store with its lock, held as long as the destination.
struct Locked {
    store: Arc<StateStore>,
    _lock: folder_lock::Lock,
}

impl JsonlFolder {
    /// Creates and locks `dir` for `connector`; the state file defaults to
    /// `<dir>/state.json`.
    pub fn open(dir: &Path, connector: &str, state_path: Option<&Path>) -> Result<Self, SinkError> {
        let lock = lock_folder(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            connector: connector.to_owned(),
            state_path: state_path
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dir.join("state.json")),
            state: OnceLock::new(),
            _lock: lock,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file, locked and read on first use.
    fn store(&self) -> Result<&Arc<StateStore>, SinkError> {
        let locked = self.state.get_or_init(|| {
            let lock = lock_state(&self.state_path)?;
            let store = StateStore::open(&self.state_path, &self.connector)
                .map_err(|e| SinkError(e.to_string()))?;
            Ok(Locked {
                store: Arc::new(store),
                _lock: lock,
            })
        });
        match locked {
            Ok(l) => Ok(&l.store),
            Err(e) => Err(e.clone()),
        }
    }

    fn file(&self, stream: &str) -> PathBuf {
        self.dir.join(format!("{stream}.jsonl"))
    }
}

impl Destination for JsonlFolder {
    fn prior_state(&self, stream: &str) -> Result<Option<StreamState>, SinkError> {
        Ok(self.store()?.stream(stream))
    }

    fn check_resume(&self, stream: &str, prior: &StreamState) -> Result<(), SinkError> {
        check_resume(&self.file(stream), prior.output_bytes).map_err(|e| SinkError(e.to_string()))
    }

    fn resume_refused(&self, stream: &str, problem: &str) -> String {
        let state = self.state_path.display();
        format!(
            "state file {state}: stream `{stream}`: {problem}. The state was left as it is and no output file was changed. To start this stream over (its output is rewritten): `runtime state reset <spec> --state {state} --streams {stream}`, or run with --full-refresh; or restore the state and the output together from a backup"
        )
    }

    fn open(&self, target: &StreamTarget<'_>) -> Result<Box<dyn RecordSink>, SinkError> {
        let cannot = |e: std::io::Error| {
            SinkError(format!(
                "cannot write to {}: {e}",
                self.file(target.name).display()
            ))
        };
        Ok(match target.mode {
            WriteMode::Replace => Box::new(Replacing(
                JsonlSink::create(&self.dir, target.name).map_err(cannot)?,
            )),
            WriteMode::Append => Box::new(Appending {
                sink: AppendSink::open(&self.dir, target.name, target.prior.output_bytes)
                    .map_err(cannot)?,
                store: self.store()?.clone(),
                name: target.name.to_owned(),
            }),
        })
    }

    fn location(&self, stream: &str) -> String {
        self.file(stream).display().to_string()
    }
}

/// A full-refresh stream's new file, swapped in at commit.
struct Replacing(JsonlSink);

impl RecordSink for Replacing {
    fn write(&mut self, lines: &[u8]) -> Result<(), SinkError> {
        self.0
            .write(lines)
            .map_err(|e| SinkError(format!("cannot write the output: {e}")))
    }

    fn checkpoint(&mut self, _state: &mut StreamState) -> Result<(), SinkError> {
        Err(SinkError(
            "a full-refresh output has no checkpoints (this is a bug in the runtime)".into(),
        ))
    }

    fn commit(self: Box<Self>, _state: Option<&mut StreamState>) -> Result<(), SinkError> {
        self.0
            .commit()
            .map(|_| ())
            .map_err(|e| SinkError(format!("cannot finish the output file: {e}")))
    }
}

/// An appending stream's file and the state file its checkpoints go to.
struct Appending {
    sink: AppendSink,
    store: Arc<StateStore>,
    name: String,
}

impl Appending {
    fn sync(&mut self) -> Result<u64, SinkError> {
        self.sink
            .sync()
            .map_err(|e| SinkError(format!("cannot sync {}: {e}", self.sink.path().display())))
    }
}

impl RecordSink for Appending {
    fn write(&mut self, lines: &[u8]) -> Result<(), SinkError> {
        self.sink
            .write(lines)
            .map_err(|e| SinkError(format!("cannot write the output: {e}")))
    }

    fn checkpoint(&mut self, state: &mut StreamState) -> Result<(), SinkError> {
        state.output_bytes = self.sync()?;
        self.store
            .checkpoint(&self.name, state.clone())
            .map_err(|e| SinkError(e.to_string()))
    }

    fn commit(mut self: Box<Self>, state: Option<&mut StreamState>) -> Result<(), SinkError> {
        match state {
            Some(s) => self.checkpoint(s),
            None => self.sync().map(|_| ()),
        }
    }
}

/// Creates the output folder and locks it.
fn lock_folder(dir: &Path) -> Result<folder_lock::Lock, SinkError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        SinkError(format!(
            "cannot create the output folder {}: {e}",
            dir.display()
        ))
    })?;
    folder_lock::Lock::folder(dir, Some("--out")).map_err(|e| SinkError(e.to_string()))
}

/// Locks the state file (through its own lock file, wherever `--state` puts it, so
/// `state reset` and a sync with another `--out` but the same `--state` are kept out too)
/// and removes the temp files that dead runs' atomic writes of it left behind.
pub(crate) fn lock_state(path: &Path) -> Result<folder_lock::Lock, SinkError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| {
        SinkError(format!(
            "cannot create the folder of the state file {}: {e}",
            path.display()
        ))
    })?;
    let lock =
        folder_lock::Lock::file(path, Some("--state")).map_err(|e| SinkError(e.to_string()))?;
    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
        remove_stale_temps(&dir, &format!(".{name}."));
    }
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> connector_spec::Stream {
        serde_json::from_value(serde_json::json!({"path": "/x", "records": "$.items"}))
            .expect("a minimal stream")
    }

    #[test]
    fn an_appending_sink_saves_state_only_for_what_is_synced() {
        let dir = tempfile::tempdir().unwrap();
        let dest = JsonlFolder::open(dir.path(), "c", None).unwrap();
        let spec = stream();
        let prior = StreamState::default();
        let target = StreamTarget {
            name: "s",
            stream: &spec,
            mode: WriteMode::Append,
            prior: &prior,
        };
        let mut sink = dest.open(&target).unwrap();
        sink.write(b"{\"a\":1}\n").unwrap();
        let mut st = StreamState::default();
        sink.checkpoint(&mut st).unwrap();
        assert_eq!(st.output_bytes, 8);
        sink.write(b"{\"a\":2}\n").unwrap();
        drop(sink);
        let saved = dest.prior_state("s").unwrap().unwrap();
        assert_eq!(saved.output_bytes, 8, "the unsaved tail is not covered");
        assert_eq!(
            dest.location("s"),
            dir.path().join("s.jsonl").display().to_string()
        );
    }

    #[test]
    fn a_replacing_sink_keeps_the_old_file_until_commit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.jsonl"), "old\n").unwrap();
        let dest = JsonlFolder::open(dir.path(), "c", None).unwrap();
        let spec = stream();
        let prior = StreamState::default();
        let target = StreamTarget {
            name: "s",
            stream: &spec,
            mode: WriteMode::Replace,
            prior: &prior,
        };
        let mut sink = dest.open(&target).unwrap();
        sink.write(b"new\n").unwrap();
        assert!(sink.checkpoint(&mut StreamState::default()).is_err());
        drop(sink);
        let read = || std::fs::read_to_string(dir.path().join("s.jsonl")).unwrap();
        assert_eq!(read(), "old\n", "abandoned: the old file stays");
        let mut sink = dest.open(&target).unwrap();
        sink.write(b"new\n").unwrap();
        sink.commit(None).unwrap();
        assert_eq!(read(), "new\n");
    }

    #[test]
    fn a_second_destination_on_the_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = JsonlFolder::open(dir.path(), "c", None).unwrap();
        let second = JsonlFolder::open(dir.path(), "c", None);
        assert!(second.is_err());
    }
}
