//! The event store: one SQLite database (`<out>/webhooks.sqlite3`) in WAL mode with
//! `synchronous=FULL`, so a commit is on disk when it returns and a 2xx can follow.
//!
//! One writer thread owns the only writing connection and commits whatever requests are
//! waiting in one transaction (group commit): under load, many deliveries share one
//! fsync, and no writer ever waits on SQLite's busy lock. The drain worker reads through
//! its own connection and sends its writes (done marks, file lengths, latest versions)
//! through the same writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::error::RunError;
use crate::wake::Wake;

/// File name of the store inside the output folder.
pub const STORE_FILE: &str = "webhooks.sqlite3";

/// Most requests committed in one transaction.
const MAX_GROUP: usize = 512;

/// Requests waiting for the writer before senders wait too (back-pressure).
const QUEUE: usize = 4096;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook        TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    sink           TEXT NOT NULL,
    view           TEXT,
    key            TEXT,
    version        TEXT,
    record         TEXT NOT NULL,
    body           BLOB NOT NULL,
    done           INTEGER NOT NULL DEFAULT 0,
    UNIQUE (webhook, event_id)
);
CREATE INDEX IF NOT EXISTS events_pending ON events (seq) WHERE done = 0;
CREATE TABLE IF NOT EXISTS sinks (
    file          TEXT PRIMARY KEY,
    committed_len INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_written ON events (received_at_ms) WHERE done = 1;
CREATE TABLE IF NOT EXISTS expired_ids (
    webhook        TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (webhook, event_id)
);
CREATE INDEX IF NOT EXISTS expired_ids_age ON expired_ids (received_at_ms);
CREATE TABLE IF NOT EXISTS latest (
    view    TEXT NOT NULL,
    key     TEXT NOT NULL,
    version TEXT NOT NULL,
    record  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (view, key)
);
";

/// The store failed; the text is SQLite's, shared by every request of the failed commit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("event store: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// A verified delivery to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Webhook name.
    pub webhook: String,
    /// Deduplication id, unique per webhook.
    pub event_id: String,
    /// Receipt time, Unix milliseconds.
    pub received_at_ms: i64,
    /// Output file stem.
    pub sink: String,
    /// Latest view, if any.
    pub view: Option<String>,
    /// Primary key (JSON array) for the latest view.
    pub key: Option<String>,
    /// Version (JSON) for the latest view.
    pub version: Option<String>,
    /// The record, one line of JSON.
    pub record: String,
    /// The raw body as received, kept for audit and replay.
    pub body: Vec<u8>,
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored with this arrival number.
    Stored(i64),
    /// The webhook already has this event id; nothing stored.
    Duplicate,
}

/// One stored event not yet written out.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Arrival number.
    pub seq: i64,
    /// Output file stem.
    pub sink: String,
    /// Latest view, if any.
    pub view: Option<String>,
    /// Primary key for the latest view.
    pub key: Option<String>,
    /// Version for the latest view.
    pub version: Option<String>,
    /// The record line.
    pub record: String,
}

/// A row of the latest view.
#[derive(Debug, Clone)]
pub struct LatestRow {
    /// View name.
    pub view: String,
    /// Primary key.
    pub key: String,
    /// Version (JSON).
    pub version: String,
    /// The record.
    pub record: String,
    /// Arrival number of the event it came from.
    pub seq: i64,
}

/// The drain worker's writes, committed together so they hold or fail as one.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// Events now in their output file.
    pub done: Vec<i64>,
    /// Output files and their length once these events are in.
    pub sinks: Vec<(String, u64)>,
    /// New newest versions.
    pub latest: Vec<LatestRow>,
}

/// One bounded round of retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prune {
    /// Written-out events received before this (Unix ms) are deleted.
    pub events_before_ms: i64,
    /// Ids of deleted events received before this are forgotten; later ones are kept so
    /// a redelivery is still a duplicate.
    pub ids_before_ms: i64,
    /// Most events, and most ids, deleted in this round.
    pub limit: usize,
}

/// What a round of retention deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events deleted.
    pub events: usize,
    /// Kept ids forgotten.
    pub ids: usize,
}

enum Command {
    Insert(NewEvent, oneshot::Sender<Result<Inserted, StoreError>>),
    Commit(Commit, oneshot::Sender<Result<(), StoreError>>),
    Prune(Prune, oneshot::Sender<Result<Pruned, StoreError>>),
    Close,
}

enum Outcome {
    Inserted(Inserted),
    Committed,
    Pruned(Pruned),
}

/// A handle to the writer thread; clones share it.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Command>,
}

fn gone() -> StoreError {
    StoreError("the store's writer thread has stopped".into())
}

impl Writer {
    /// Stores an event unless its id is known; returns once the commit is on disk.
    pub async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Insert(event, reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Stops the writer thread once the requests before this one are done, even if
    /// handles remain (a request still in flight after the shutdown grace gets a 503).
    pub async fn close(&self) {
        let _ = self.tx.send(Command::Close).await;
    }

    /// Runs one bounded round of retention; returns once it is committed.
    pub async fn prune(&self, prune: Prune) -> Result<Pruned, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Prune(prune, reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Commits the drain worker's writes, from a plain thread.
    pub fn commit_blocking(&self, commit: Commit) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .blocking_send(Command::Commit(commit, reply))
            .map_err(|_| gone())?;
        answer.blocking_recv().map_err(|_| gone())?
    }
}

/// Path of the store in `out`.
pub fn path_in(out: &Path) -> PathBuf {
    out.join(STORE_FILE)
}

fn connect(path: &Path) -> Result<Connection, RunError> {
    let err = |source| RunError::Store {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(err)?;
    // WAL: readers never block the writer; FULL: the WAL is fsynced at every commit,
    // which is what makes "stored" mean "on disk".
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(RunError::Worker(format!(
            "{}: SQLite refused WAL mode (got `{mode}`); put --out on a local disk",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(err)?;
    Ok(conn)
}

/// Opens (or creates) the store and starts its writer thread, which rings `wake` after
/// each commit that stored something.
pub fn open(path: &Path, wake: Arc<Wake>) -> Result<(Writer, JoinHandle<()>), RunError> {
    let conn = connect(path)?;
    conn.execute_batch(SCHEMA)
        .map_err(|source| RunError::Store {
            path: path.to_path_buf(),
            source,
        })?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let thread = std::thread::Builder::new()
        .name("webhook-store".into())
        .spawn(move || write_loop(conn, rx, &wake))
        .map_err(|e| RunError::Worker(format!("cannot start the store thread: {e}")))?;
    Ok((Writer { tx }, thread))
}

fn write_loop(mut conn: Connection, mut rx: mpsc::Receiver<Command>, wake: &Wake) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut closing = false;
    while !closing {
        match rx.blocking_recv() {
            Some(Command::Close) | None => break,
            Some(first) => group.push(first),
        }
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Command::Close) => {
                    closing = true;
                    break;
                }
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let result = apply(&mut conn, &group);
        let mut stored = false;
        match result {
            Ok(outcomes) => {
                for (cmd, outcome) in group.drain(..).zip(outcomes) {
                    match (cmd, outcome) {
                        (Command::Insert(_, reply), Outcome::Inserted(i)) => {
                            stored |= matches!(i, Inserted::Stored(_));
                            let _ = reply.send(Ok(i));
                        }
                        (Command::Commit(_, reply), _) => {
                            let _ = reply.send(Ok(()));
                        }
                        (Command::Prune(_, reply), Outcome::Pruned(p)) => {
                            let _ = reply.send(Ok(p));
                        }
                        (Command::Insert(_, reply), _) => {
                            let _ = reply.send(Err(StoreError("internal mismatch".into())));
                        }
                        (Command::Prune(_, reply), _) => {
                            let _ = reply.send(Err(StoreError("internal mismatch".into())));
                        }
                        (Command::Close, _) => {}
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "event store commit failed; the requests are answered 503");
                for cmd in group.drain(..) {
                    match cmd {
                        Command::Insert(_, reply) => {
                            let _ = reply.send(Err(e.clone()));
                        }
                        Command::Commit(_, reply) => {
                            let _ = reply.send(Err(e.clone()));
                        }
                        Command::Prune(_, reply) => {
                            let _ = reply.send(Err(e.clone()));
                        }
                        Command::Close => {}
                    }
                }
            }
        }
        if stored {
            wake.notify();
        }
    }
}

fn apply(conn: &mut Connection, group: &[Command]) -> Result<Vec<Outcome>, StoreError> {
    let tx = conn.transaction()?;
    let mut outcomes = Vec::with_capacity(group.len());
    for cmd in group {
        match cmd {
            Command::Insert(e, _) => {
                // The id of an event deleted by retention still makes a duplicate.
                let mut expired = tx.prepare_cached(
                    "SELECT 1 FROM expired_ids WHERE webhook = ?1 AND event_id = ?2",
                )?;
                if expired.exists(params![e.webhook, e.event_id])? {
                    outcomes.push(Outcome::Inserted(Inserted::Duplicate));
                    continue;
                }
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO events (webhook, event_id, received_at_ms, sink, view, key, version, record, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (webhook, event_id) DO NOTHING",
                )?;
                let changed = stmt.execute(params![
                    e.webhook,
                    e.event_id,
                    e.received_at_ms,
                    e.sink,
                    e.view,
                    e.key,
                    e.version,
                    e.record,
                    e.body
                ])?;
                outcomes.push(Outcome::Inserted(if changed == 1 {
                    Inserted::Stored(tx.last_insert_rowid())
                } else {
                    Inserted::Duplicate
                }));
            }
            Command::Commit(c, _) => {
                let mut done = tx.prepare_cached("UPDATE events SET done = 1 WHERE seq = ?1")?;
                for seq in &c.done {
                    done.execute([seq])?;
                }
                let mut sink = tx.prepare_cached(
                    "INSERT INTO sinks (file, committed_len) VALUES (?1, ?2)
                     ON CONFLICT (file) DO UPDATE SET committed_len = excluded.committed_len",
                )?;
                for (file, len) in &c.sinks {
                    sink.execute(params![file, i64::try_from(*len).unwrap_or(i64::MAX)])?;
                }
                let mut latest = tx.prepare_cached(
                    "INSERT INTO latest (view, key, version, record, seq) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (view, key) DO UPDATE SET
                       version = excluded.version, record = excluded.record, seq = excluded.seq",
                )?;
                for r in &c.latest {
                    latest.execute(params![r.view, r.key, r.version, r.record, r.seq])?;
                }
                outcomes.push(Outcome::Committed);
            }
            Command::Prune(p, _) => outcomes.push(Outcome::Pruned(prune(&tx, p)?)),
            // Never grouped: the loop stops at it.
            Command::Close => outcomes.push(Outcome::Committed),
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Deletes written-out events older than the cutoff, moving the ids still inside the
/// dedupe window to `expired_ids`, then forgets ids past that window. Events not yet
/// written out (`done = 0`) are never selected.
fn prune(tx: &rusqlite::Transaction<'_>, p: &Prune) -> Result<Pruned, StoreError> {
    let limit = i64::try_from(p.limit).unwrap_or(i64::MAX);
    let mut old = tx.prepare_cached(
        "SELECT seq, webhook, event_id, received_at_ms FROM events
         WHERE done = 1 AND received_at_ms < ?1 ORDER BY received_at_ms LIMIT ?2",
    )?;
    let rows = old
        .query_map(params![p.events_before_ms, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut keep = tx.prepare_cached(
        "INSERT INTO expired_ids (webhook, event_id, received_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (webhook, event_id) DO NOTHING",
    )?;
    let mut delete = tx.prepare_cached("DELETE FROM events WHERE seq = ?1")?;
    for (seq, webhook, event_id, at) in &rows {
        if *at >= p.ids_before_ms {
            keep.execute(params![webhook, event_id, at])?;
        }
        delete.execute([seq])?;
    }
    let ids = tx.execute(
        "DELETE FROM expired_ids WHERE rowid IN
           (SELECT rowid FROM expired_ids WHERE received_at_ms < ?1 LIMIT ?2)",
        params![p.ids_before_ms, limit],
    )?;
    Ok(Pruned {
        events: rows.len(),
        ids,
    })
}

/// A read-only view of the store for the drain worker.
pub struct Reader {
    conn: Connection,
}

impl Reader {
    /// Opens a second connection to the store at `path` (after [`open`] created it).
    pub fn open(path: &Path) -> Result<Self, RunError> {
        Ok(Self {
            conn: connect(path)?,
        })
    }

    /// The oldest events not yet written out, in arrival order; only of `sink` when given.
    pub fn pending(&self, sink: Option<&str>, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let map = |r: &rusqlite::Row<'_>| {
            Ok(Pending {
                seq: r.get(0)?,
                sink: r.get(1)?,
                view: r.get(2)?,
                key: r.get(3)?,
                version: r.get(4)?,
                record: r.get(5)?,
            })
        };
        let rows = match sink {
            None => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT seq, sink, view, key, version, record FROM events
                     WHERE done = 0 ORDER BY seq LIMIT ?1",
                )?;
                stmt.query_map(params![limit], map)?
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(s) => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT seq, sink, view, key, version, record FROM events
                     WHERE done = 0 AND sink = ?1 ORDER BY seq LIMIT ?2",
                )?;
                stmt.query_map(params![s, limit], map)?
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(rows)
    }

    /// Every output file the worker has written to, with its length after the last commit.
    pub fn sinks(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT file, committed_len FROM sinks ORDER BY file")?;
        let rows = stmt
            .query_map([], |r| {
                let len: i64 = r.get(1)?;
                Ok((r.get::<_, String>(0)?, u64::try_from(len).unwrap_or(0)))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The version kept for a record of a view.
    pub fn latest_version(&self, view: &str, key: &str) -> Result<Option<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT version FROM latest WHERE view = ?1 AND key = ?2")?;
        Ok(stmt
            .query_row(params![view, key], |r| r.get(0))
            .optional()?)
    }

    /// Every view with at least one record.
    pub fn views(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT view FROM latest ORDER BY view")?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Calls `f` with each record of a view, ordered by primary key.
    pub fn each_latest(
        &self,
        view: &str,
        mut f: impl FnMut(&str) -> std::io::Result<()>,
    ) -> Result<(), LatestError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record FROM latest WHERE view = ?1 ORDER BY key")?;
        let mut rows = stmt.query(params![view])?;
        while let Some(row) = rows.next()? {
            let record: String = row.get(0)?;
            f(&record)?;
        }
        Ok(())
    }

    /// Events stored and not yet written out.
    pub fn pending_count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            self.conn
                .query_row("SELECT count(*) FROM events WHERE done = 0", [], |r| {
                    r.get(0)
                })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// Writing a view's file failed, in the store or on disk.
#[derive(Debug, thiserror::Error)]
pub enum LatestError {
    /// Reading the view failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<rusqlite::Error> for LatestError {
    fn from(e: rusqlite::Error) -> Self {
        LatestError::Store(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600 * 1000;

    fn event(id: &str, at: i64) -> NewEvent {
        NewEvent {
            webhook: "orders".into(),
            event_id: id.into(),
            received_at_ms: at,
            sink: "orders".into(),
            view: None,
            key: None,
            version: None,
            record: format!("{{\"id\":\"{id}\"}}"),
            body: b"{}".to_vec(),
        }
    }

    /// `PRAGMA synchronous` is per connection and not stored in the file: each connection
    /// the receiver opens (the writer's and the drain worker's, both through `connect`) must
    /// set FULL (2) itself, or a commit may be lost on power loss although a 2xx was sent.
    /// A kill -9 cannot tell FULL from NORMAL (the OS keeps the data), so this is checked here.
    #[test]
    fn every_connection_is_wal_with_synchronous_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let conn = connect(&path).unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            sync, 2,
            "synchronous is not FULL on the writer's connection"
        );
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute_batch(SCHEMA).unwrap();
        let reader = Reader::open(&path).unwrap();
        let sync: i64 = reader
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            sync, 2,
            "synchronous is not FULL on the drain worker's connection"
        );
    }

    fn count(path: &Path, sql: &str) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn retention_deletes_only_written_out_old_events_and_keeps_their_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let (w, thread) = open(&path, Arc::new(Wake::default())).unwrap();
        let mut seqs = Vec::new();
        for (id, at) in [
            ("old_done", DAY),
            ("old_pending", DAY),
            ("new_done", 9 * DAY),
        ] {
            match w.insert(event(id, at)).await.unwrap() {
                Inserted::Stored(s) => seqs.push(s),
                Inserted::Duplicate => panic!("{id} is new"),
            }
        }
        let (w2, done) = (w.clone(), vec![seqs[0], seqs[2]]);
        tokio::task::spawn_blocking(move || {
            w2.commit_blocking(Commit {
                done,
                ..Commit::default()
            })
        })
        .await
        .unwrap()
        .unwrap();

        // Now is day 10, retention 7 days, ids kept 30 days.
        let round = Prune {
            events_before_ms: 3 * DAY,
            ids_before_ms: -20 * DAY,
            limit: 10,
        };
        assert_eq!(w.prune(round).await.unwrap(), Pruned { events: 1, ids: 0 });
        assert_eq!(count(&path, "SELECT count(*) FROM events"), 2);
        assert_eq!(
            count(
                &path,
                "SELECT count(*) FROM events WHERE event_id = 'old_pending' AND done = 0"
            ),
            1,
            "an event not yet written out is never deleted"
        );
        assert_eq!(
            w.insert(event("old_done", 10 * DAY)).await.unwrap(),
            Inserted::Duplicate,
            "a redelivery after the payload is gone is still a duplicate"
        );
        assert_eq!(
            w.prune(round).await.unwrap(),
            Pruned::default(),
            "nothing more is due"
        );

        // Day 32: the kept id is past the 30-day window and is forgotten.
        let later = Prune {
            events_before_ms: 25 * DAY,
            ids_before_ms: 2 * DAY,
            limit: 10,
        };
        assert_eq!(w.prune(later).await.unwrap(), Pruned { events: 1, ids: 1 });
        assert_eq!(
            count(&path, "SELECT count(*) FROM expired_ids"),
            1,
            "new_done's id is kept"
        );
        assert!(matches!(
            w.insert(event("old_done", 32 * DAY)).await.unwrap(),
            Inserted::Stored(_)
        ));
        w.close().await;
        drop(w);
        thread.join().unwrap();
    }

    #[tokio::test]
    async fn retention_works_in_bounded_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let (w, thread) = open(&path, Arc::new(Wake::default())).unwrap();
        let mut done = Vec::new();
        for i in 0..25 {
            if let Inserted::Stored(s) = w.insert(event(&format!("e{i}"), DAY)).await.unwrap() {
                done.push(s);
            }
        }
        let w2 = w.clone();
        tokio::task::spawn_blocking(move || {
            w2.commit_blocking(Commit {
                done,
                ..Commit::default()
            })
        })
        .await
        .unwrap()
        .unwrap();
        let round = Prune {
            events_before_ms: 2 * DAY,
            ids_before_ms: 0,
            limit: 10,
        };
        let got: Vec<usize> = [
            w.prune(round).await.unwrap().events,
            w.prune(round).await.unwrap().events,
            w.prune(round).await.unwrap().events,
        ]
        .into();
        assert_eq!(got, [10, 10, 5]);
        assert_eq!(count(&path, "SELECT count(*) FROM expired_ids"), 25);
        w.close().await;
        drop(w);
        thread.join().unwrap();
    }
}
