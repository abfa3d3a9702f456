//! The threads a database sink runs on: pages arrive through a bounded channel (so memory
//! stays flat and the async engine never waits on the database inside its runtime except
//! for that bound), are read on one thread ([`crate::reader`]), then evolve the staging
//! table's columns and are staged on another; a checkpoint moves the staged rows and the
//! state in one transaction.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::reader::{self, Msg, Read, ReadPage};
use crate::scan::{Page, Scanner};
use crate::table::{Change, Table};

/// Pages waiting to be read: two, so the engine hands one over while another is read.
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
        let name = what.to_owned();
        let handle = std::thread::Builder::new()
            .name(format!("sink {what}"))
            .spawn(move || {
                let started = connect().and_then(|(backend, model)| {
                    let reading = Reading::start(&name, &backend, model.clone(), load_id, rx)?;
                    Ok((backend, model, reading))
                });
                match started {
                    Ok((backend, model, reading)) => {
                        let _ = ready_tx.send(Ok(()));
                        run(backend, model, &reading, shared);
                        reading.join();
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
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

/// The reading stage's thread and the channels between it and the database stage.
struct Reading {
    pages: Receiver<Read>,
    free: SyncSender<Page>,
    handle: JoinHandle<()>,
}

impl Reading {
    /// Starts the reading thread on the sink's channel.
    fn start<B: Backend>(
        what: &str,
        backend: &B,
        model: Table,
        load_id: String,
        rx: Receiver<Msg>,
    ) -> Result<Self, LoadError> {
        let (out, pages) = sync_channel::<Read>(1);
        // Room for every page in flight, so a staged page always goes back.
        let (free, spare) = sync_channel::<Page>(QUEUE + 2);
        let scanner = Scanner::new(backend.refuses_nul());
        let handle = std::thread::Builder::new()
            .name(format!("read {what}"))
            .spawn(move || reader::run(model, scanner, load_id, rx, out, spare))
            .map_err(|e| LoadError(format!("cannot start the {what} sink's reader: {e}")))?;
        Ok(Self {
            pages,
            free,
            handle,
        })
    }

    /// Waits for the reading thread (it ends once the sink's channel is closed).
    fn join(self) {
        drop(self.pages);
        let _ = self.handle.join();
    }
}

/// The database stage's loop: the first error is kept and answers every later publish.
fn run<B: Backend>(mut backend: B, mut model: Table, reading: &Reading, shared: Shared) {
    let mut failed: Option<LoadError> = None;
    let mut finished = false;
    let fail = |failed: &mut Option<LoadError>, e: &LoadError| {
        failed.get_or_insert(e.clone());
        if let Ok(mut g) = shared.lock() {
            g.get_or_insert(e.clone());
        }
    };
    while let Ok(read) = reading.pages.recv() {
        match read {
            Read::Page(_) | Read::Failed(_) if failed.is_some() => {}
            Read::Page(read) => {
                let ReadPage {
                    page,
                    changes,
                    model: changed,
                    meta,
                } = *read;
                if let Some(changed) = changed {
                    model = changed;
                }
                if let Err(e) = stage(&mut backend, &model, &page, &changes, &meta) {
                    fail(&mut failed, &e);
                }
                let _ = reading.free.try_send(page);
            }
            Read::Failed(e) => fail(&mut failed, &e),
            Read::Publish {
                state,
                finish,
                reply,
            } => {
                let result = match &failed {
                    Some(e) => Err(e.clone()),
                    None => backend.publish(&model, state.as_deref(), finish),
                };
                if let Err(e) = &result {
                    fail(&mut failed, e);
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

/// Evolves the staging columns for a read page, then stages its rows.
fn stage<B: Backend>(
    backend: &mut B,
    model: &Table,
    page: &Page,
    changes: &[Change],
    meta: &Meta,
) -> Result<(), LoadError> {
    if !changes.is_empty() {
        backend.evolve(model, changes)?;
    }
    backend.stage(model, page, meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a backend was asked to do, in order.
    #[derive(Debug, Clone, PartialEq)]
    enum Call {
        Evolve(Vec<String>),
        Stage(i64, usize),
        Publish(Option<String>),
    }

    struct Record(Arc<Mutex<Vec<Call>>>);

    impl Backend for Record {
        fn evolve(&mut self, model: &Table, _: &[Change]) -> Result<(), LoadError> {
            let names = model.columns().iter().map(|c| c.name.clone()).collect();
            self.0.lock().unwrap().push(Call::Evolve(names));
            Ok(())
        }
        fn stage(&mut self, model: &Table, page: &Page, meta: &Meta) -> Result<(), LoadError> {
            // The model a page is staged with has every column the page fills.
            assert!(
                page.row(0)
                    .iter()
                    .all(|r| (r.col as usize) < model.columns().len())
            );
            self.0
                .lock()
                .unwrap()
                .push(Call::Stage(meta.first_row, page.len()));
            Ok(())
        }
        fn publish(&mut self, _: &Table, state: Option<&str>, _: bool) -> Result<(), LoadError> {
            self.0
                .lock()
                .unwrap()
                .push(Call::Publish(state.map(str::to_owned)));
            Ok(())
        }
    }

    fn worker() -> (Worker, Arc<Mutex<Vec<Call>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let backend = Record(calls.clone());
        let w = Worker::start("t", "l".into(), move || Ok((backend, Table::default()))).unwrap();
        (w, calls)
    }

    #[test]
    fn pages_are_read_ahead_but_staged_and_published_in_order() {
        let (mut w, calls) = worker();
        for i in 0..50 {
            let lines = if i == 20 {
                format!("{{\"id\":{i},\"extra\":true}}\n{{\"id\":{i}}}\n")
            } else {
                format!("{{\"id\":{i}}}\n")
            };
            w.write(lines.as_bytes(), "t".into()).unwrap();
            if i % 10 == 9 {
                w.publish(Some(format!("{i}")), false).unwrap();
            }
        }
        drop(w);
        let calls = calls.lock().unwrap().clone();
        let mut expected = vec![Call::Evolve(vec!["id".into()])];
        let mut row = 0;
        for i in 0..50 {
            if i == 20 {
                expected.push(Call::Evolve(vec!["id".into(), "extra".into()]));
            }
            let n = if i == 20 { 2 } else { 1 };
            expected.push(Call::Stage(row, n));
            row += n as i64;
            if i % 10 == 9 {
                expected.push(Call::Publish(Some(format!("{i}"))));
            }
        }
        assert_eq!(calls, expected);
    }

    #[test]
    fn a_page_that_cannot_be_read_fails_the_next_publish_and_nothing_after_it_is_staged() {
        let (mut w, calls) = worker();
        w.write(b"{\"id\":1}\n", "t".into()).unwrap();
        w.write(b"{\"id\":\n", "t".into()).unwrap();
        // Written before the reader got to the bad page, or refused after: either way
        // nothing of it is staged.
        let _ = w.write(b"{\"id\":3}\n", "t".into());
        let err = w.publish(Some("s".into()), true).unwrap_err();
        assert!(err.0.contains("record 2 of the load is not JSON"), "{err}");
        assert!(w.write(b"{\"id\":4}\n", "t".into()).is_err());
        drop(w);
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls, [Call::Evolve(vec!["id".into()]), Call::Stage(0, 1)]);
    }
}
