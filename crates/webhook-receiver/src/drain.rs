//! The drain worker: writes stored events to their output files in arrival order, keeps
//! the latest view, and marks the events done; after a restart it goes on with what was
//! left, writing nothing twice.
//!
//! Per batch: append the records to each file and fsync, then commit in one transaction
//! "these events are done, these files now have these lengths, these are the new newest
//! versions". A crash between the two leaves lines in a file past its committed length;
//! at the next start [`crate::sink::recover`] recognises them as the first pending events
//! of that file, so they are marked done without being written again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::RunError;
use crate::fault::Faults;
use crate::latest;
use crate::sink::{self, SinkFile};
use crate::store::{Commit, LatestRow, Pending, Reader, Writer};
use crate::wake::Wake;

/// Events written per transaction.
const BATCH: usize = 1000;

/// Longest a latest view's file lags behind its table under continuous load.
const MATERIALISE_EVERY: Duration = Duration::from_secs(1);

/// Wait before retrying after a failed batch (disk full, ...): the events are safe in the store.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The drain worker's state.
pub struct Drainer {
    reader: Reader,
    writer: Writer,
    out: PathBuf,
    wake: Arc<Wake>,
    files: HashMap<String, SinkFile>,
    registered: HashSet<String>,
    present: HashMap<String, usize>,
    dirty: BTreeSet<String>,
    last_materialised: Instant,
    faults: Faults,
    written: Arc<AtomicU64>,
}

impl Drainer {
    /// A worker over the store read by `reader` and written by `writer`, writing into `out`;
    /// `written` counts the events it writes out.
    pub fn new(
        reader: Reader,
        writer: Writer,
        out: PathBuf,
        wake: Arc<Wake>,
        written: Arc<AtomicU64>,
    ) -> Self {
        Self {
            reader,
            writer,
            out,
            wake,
            files: HashMap::new(),
            registered: HashSet::new(),
            present: HashMap::new(),
            dirty: BTreeSet::new(),
            last_materialised: Instant::now(),
            faults: Faults::from_env(),
            written,
        }
    }

    /// Reconciles the output files with the store after a restart; call before [`Drainer::run`].
    pub fn recover(&mut self) -> Result<(), RunError> {
        // Lengths and counts known in memory may be stale after a failed batch.
        self.files.clear();
        self.present.clear();
        for (stem, committed) in self.reader.sinks().map_err(worker)? {
            let pending: Vec<String> = self
                .reader
                .pending(Some(&stem), BATCH)
                .map_err(worker)?
                .into_iter()
                .map(|p| p.record)
                .collect();
            let path = self.out.join(format!("{stem}.jsonl"));
            let r = sink::recover(&path, committed, &pending).map_err(|source| RunError::Io {
                path: path.clone(),
                source,
            })?;
            if let Some(w) = &r.warning {
                tracing::warn!("{w}");
            }
            if r.present > 0 {
                tracing::info!(
                    file = %path.display(),
                    events = r.present,
                    "events written just before a crash are marked done, not written again"
                );
                self.present.insert(stem.clone(), r.present);
            }
            if r.len != committed {
                self.writer
                    .commit_blocking(Commit {
                        sinks: vec![(stem.clone(), r.len)],
                        ..Commit::default()
                    })
                    .map_err(worker)?;
            }
            self.registered.insert(stem);
        }
        // A crash may have come between a commit and the rewrite of a view's file.
        for view in self.reader.views().map_err(worker)? {
            latest::materialise(&self.reader, &self.out, &view)?;
        }
        Ok(())
    }

    /// Drains until closed: after `close`, everything stored is written before it returns.
    pub fn run(mut self) -> Result<(), RunError> {
        if self.faults.hold || self.faults.exit_after_append {
            while !self.wake.wait(None) {}
            if self.faults.hold {
                return Ok(());
            }
        }
        let mut closing = false;
        let mut recover = false;
        loop {
            let result = if recover {
                self.recover().and_then(|()| self.drain_all())
            } else {
                self.drain_all()
            };
            match result {
                Ok(()) => {
                    recover = false;
                    if closing {
                        return Ok(());
                    }
                    closing = self.wake.wait(None);
                }
                Err(e) => {
                    tracing::error!(error = %e, "writing webhook events out failed; they stay in the store and are retried");
                    if self.wake.is_closing() {
                        return Err(e);
                    }
                    // Part of the batch may be in some files: compare them with the store
                    // again before the next attempt, as after a crash.
                    recover = true;
                    closing = self.wake.wait(Some(RETRY_AFTER));
                }
            }
        }
    }

    fn drain_all(&mut self) -> Result<(), RunError> {
        loop {
            let batch = self.reader.pending(None, BATCH).map_err(worker)?;
            if batch.is_empty() {
                break;
            }
            self.process(&batch)?;
            if self.last_materialised.elapsed() >= MATERIALISE_EVERY {
                self.materialise()?;
            }
        }
        self.materialise()
    }

    fn materialise(&mut self) -> Result<(), RunError> {
        while let Some(view) = self.dirty.pop_first() {
            if let Err(e) = latest::materialise(&self.reader, &self.out, &view) {
                self.dirty.insert(view);
                return Err(e);
            }
        }
        self.last_materialised = Instant::now();
        Ok(())
    }

    fn process(&mut self, batch: &[Pending]) -> Result<(), RunError> {
        // Files in order of first appearance; each file's lines in arrival order.
        let mut order: Vec<&str> = Vec::new();
        let mut lines: HashMap<&str, Vec<u8>> = HashMap::new();
        // Events already in their file (see `recover`); consumed only once the batch commits.
        let mut skipped: HashMap<&str, usize> = HashMap::new();
        for ev in batch {
            if !lines.contains_key(ev.sink.as_str()) {
                order.push(&ev.sink);
                lines.insert(&ev.sink, Vec::new());
            }
            let present = self.present.get(&ev.sink).copied().unwrap_or(0);
            let skip = skipped.entry(ev.sink.as_str()).or_insert(0);
            if *skip < present {
                *skip += 1;
                continue;
            }
            if let Some(buf) = lines.get_mut(ev.sink.as_str()) {
                buf.extend_from_slice(ev.record.as_bytes());
                buf.push(b'\n');
            }
        }
        let mut sinks = Vec::with_capacity(order.len());
        for stem in order {
            let bytes = lines.get(stem).map(Vec::as_slice).unwrap_or_default();
            let len = self.append(stem, bytes)?;
            sinks.push((stem.to_owned(), len));
        }
        self.faults.after_append();
        let latest = self.newest(batch)?;
        let views: Vec<String> = latest.iter().map(|r| r.view.clone()).collect();
        self.writer
            .commit_blocking(Commit {
                done: batch.iter().map(|e| e.seq).collect(),
                sinks,
                latest,
            })
            .map_err(worker)?;
        for (stem, n) in skipped {
            if let Some(p) = self.present.get_mut(stem) {
                *p -= n.min(*p);
            }
        }
        self.dirty.extend(views);
        self.written
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Appends to `<out>/<stem>.jsonl`, registering the file in the store before its first
    /// append so a crash right after that append is recognised at the next start.
    fn append(&mut self, stem: &str, bytes: &[u8]) -> Result<u64, RunError> {
        if !self.files.contains_key(stem) {
            let file = SinkFile::open(&self.out, stem).map_err(|source| RunError::Io {
                path: self.out.join(format!("{stem}.jsonl")),
                source,
            })?;
            self.files.insert(stem.to_owned(), file);
        }
        let Some(file) = self.files.get_mut(stem) else {
            return Err(RunError::Worker(format!("output file {stem} is not open")));
        };
        if !self.registered.contains(stem) {
            self.writer
                .commit_blocking(Commit {
                    sinks: vec![(stem.to_owned(), file.size())],
                    ..Commit::default()
                })
                .map_err(worker)?;
            self.registered.insert(stem.to_owned());
        }
        if bytes.is_empty() {
            return Ok(file.size());
        }
        let path = file.path().to_path_buf();
        file.append(bytes).map_err(|source| {
            // The file may now hold part of the batch: reopen it at the next attempt, and
            // let recovery sort it out if the process dies first.
            RunError::Io { path, source }
        })
    }

    /// The rows of the latest view that this batch changes: a version replaces the kept
    /// one only when it is strictly newer.
    fn newest(&self, batch: &[Pending]) -> Result<Vec<LatestRow>, RunError> {
        let mut winners: HashMap<(String, String), LatestRow> = HashMap::new();
        for ev in batch {
            let (Some(view), Some(key), Some(version)) = (&ev.view, &ev.key, &ev.version) else {
                continue;
            };
            let slot = (view.clone(), key.clone());
            let kept = match winners.get(&slot) {
                Some(row) => Some(row.version.clone()),
                None => self.reader.latest_version(view, key).map_err(worker)?,
            };
            if latest::replaces(version, kept.as_deref()) {
                winners.insert(
                    slot,
                    LatestRow {
                        view: view.clone(),
                        key: key.clone(),
                        version: version.clone(),
                        record: ev.record.clone(),
                        seq: ev.seq,
                    },
                );
            } else {
                tracing::debug!(view = %view, key = %key, "an older or equal version arrived late; the newer one stays");
            }
        }
        let mut rows: Vec<LatestRow> = winners.into_values().collect();
        rows.sort_by_key(|r| r.seq);
        Ok(rows)
    }
}

fn worker(e: impl std::fmt::Display) -> RunError {
    RunError::Worker(e.to_string())
}
