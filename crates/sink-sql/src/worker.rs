//! The thread a database sink runs on: pages arrive through a bounded channel (so memory
//! stays flat and the async engine never waits on the database inside its runtime except
//! for that bound), are parsed there, evolve the staging table's columns, and are
//! staged; a checkpoint moves the staged rows and the state in one transaction.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::scan::{Page, Scanner};
use crate::table::{Change, Table};

/// Pages waiting for the database: two, so one is parsed while the other is loaded.
const QUEUE: usize = 2;

/// Longest wait for a connection to open or a checkpoint to finish before giving up
/// (a load of a whole stream's staged rows happens inside a checkpoint: generous).
const REPLY_WAIT: Duration = Duration::from_secs(3600);

/// A database operation failed; the message is fit to print (no password in it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// What every staged row carries besides the record.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The run's load id.
    pub load_id: String,
    /// When the page arrived (RFC 3339).
    pub extracted_at: String,
    /// The staging order of the batch's first row.
    pub first_row: i64,
}

/// One database's side of a sink: staging, then the transaction that publishes.
pub trait Backend: Send + 'static {
    /// Whether strings must be free of NUL characters (PostgreSQL refuses them).
    fn refuses_nul(&self) -> bool {
        false
    }
    /// Applies changes to the staging table's columns (before rows that need them).
    fn evolve(&mut self, model: &Table, changes: &[Change]) -> Result<(), LoadError>;
    /// Appends a page's rows to the staging table (the model has every column they need).
    fn stage(&mut self, model: &Table, page: &Page, meta: &Meta) -> Result<(), LoadError>;
    /// One transaction: the target's columns brought to the model, the staged rows moved
    /// in (for replace with `finish`: the new table swapped in), `state` saved with them.
    fn publish(
        &mut self,
        model: &Table,
        state: Option<&str>,
        finish: bool,
    ) -> Result<(), LoadError>;
    /// The run gave up on the stream: drop what was staged (the target is untouched).
    fn abandon(&mut self) {}
}

enum Msg {
    Write(Vec<u8>, String),
    Publish {
        state: Option<String>,
        finish: bool,
        reply: SyncSender<Result<(), LoadError>>,
    },
}

/// A sink's thread and the channel to it.
pub struct Worker {
    tx: Option<SyncSender<Msg>>,
    handle: Option<JoinHandle<()>>,
    failed: Shared,
}

/// The thread's first error, seen by the next write.
type Shared = Arc<Mutex<Option<LoadError>>>;

impl Worker {
    /// Starts the thread, connects there (blocking clients must not run inside an async
    /// runtime), and waits for the connection.
    pub fn start<B, F>(what: &str, load_id: String, connect: F) -> Result<Self, LoadError>
    where
        B: Backend,
        F: FnOnce() -> Result<(B, Table), LoadError> + Send + 'static,
    {
        let (tx, rx) = sync_channel::<Msg>(QUEUE);
        let (ready_tx, ready_rx) = sync_channel::<Result<(), LoadError>>(1);
        let failed: Shared = Arc::default();
        let shared = failed.clone();
        let handle = std::thread::Builder::new()
            .name(format!("sink {what}"))
            .spawn(move || match connect() {
                Ok((backend, model)) => {
                    let _ = ready_tx.send(Ok(()));
                    run(backend, model, load_id, rx, shared);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| LoadError(format!("cannot start the {what} sink's thread: {e}")))?;
        match ready_rx.recv_timeout(REPLY_WAIT) {
            Ok(Ok(())) => Ok(Self {
                tx: Some(tx),
                handle: Some(handle),
                failed,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LoadError(format!(
                "the {what} sink did not start (its thread ended or timed out)"
            ))),
        }
    }

    /// Queues complete JSON lines; waits only while the queue is full. An error of an
    /// earlier page is reported here.
    pub fn write(&mut self, lines: &[u8], extracted_at: String) -> Result<(), LoadError> {
        self.check()?;
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(Msg::Write(lines.to_vec(), extracted_at)));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self.stopped()),
        }
    }

    /// Waits for every queued page, then publishes them with `state` in one transaction.
    pub fn publish(&mut self, state: Option<String>, finish: bool) -> Result<(), LoadError> {
        self.check()?;
        let (reply, answer) = sync_channel(1);
        let sent = self.tx.as_ref().map(|tx| {
            tx.send(Msg::Publish {
                state,
                finish,
                reply,
            })
        });
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.stopped());
        }
        match answer.recv_timeout(REPLY_WAIT) {
            Ok(result) => result,
            Err(_) => Err(self.stopped()),
        }
    }

    /// The thread's first error, if it had one.
    fn check(&self) -> Result<(), LoadError> {
        match self.failed.lock().ok().and_then(|g| g.clone()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The error to report once the thread is gone.
    fn stopped(&self) -> LoadError {
        self.check()
            .err()
            .unwrap_or_else(|| LoadError("the database sink stopped unexpectedly".into()))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channel ends the thread: it abandons what was staged unless committed.
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The thread's loop: the first error is kept and answers every later publish.
fn run<B: Backend>(
    mut backend: B,
    mut model: Table,
    load_id: String,
    rx: Receiver<Msg>,
    shared: Shared,
) {
    let mut failed: Option<LoadError> = None;
    let mut rows: i64 = 0;
    let mut scanner = Scanner::new(backend.refuses_nul());
    let mut page = Page::default();
    let mut finished = false;
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Write(lines, extracted_at) => {
                if failed.is_some() {
                    continue;
                }
                let meta = Meta {
                    load_id: load_id.clone(),
                    extracted_at,
                    first_row: rows,
                };
                match stage(
                    &mut backend,
                    &mut scanner,
                    &mut page,
                    &mut model,
                    lines,
                    &meta,
                ) {
                    Ok(n) => rows += n,
                    Err(e) => {
                        if let Ok(mut g) = shared.lock() {
                            *g = Some(e.clone());
                        }
                        failed = Some(e);
                    }
                }
            }
            Msg::Publish {
                state,
                finish,
                reply,
            } => {
                let result = match &failed {
                    Some(e) => Err(e.clone()),
                    None => backend.publish(&model, state.as_deref(), finish),
                };
                if let Err(e) = &result {
                    failed.get_or_insert(e.clone());
                    if let Ok(mut g) = shared.lock() {
                        g.get_or_insert(e.clone());
                    }
                }
                finished |= finish && result.is_ok();
                let _ = reply.send(result);
            }
        }
    }
    if !finished {
        backend.abandon();
    }
}

/// Reads a page (into `page`, whose buffers are reused), evolves the staging columns,
/// stages the rows; returns how many.
fn stage<B: Backend>(
    backend: &mut B,
    scanner: &mut Scanner,
    page: &mut Page,
    model: &mut Table,
    lines: Vec<u8>,
    meta: &Meta,
) -> Result<i64, LoadError> {
    let changes = scanner.scan(model, lines, meta.first_row, page)?;
    if !changes.is_empty() {
        backend.evolve(model, &changes)?;
    }
    backend.stage(model, page, meta)?;
    Ok(page.len() as i64)
}
