//! The reading stage of a sink: a thread of its own that turns each queued page of JSON
//! lines into a [`Page`] (and the column changes it needs) while the database stage
//! stages the one before, so reading and writing use two cores instead of taking turns.

use std::sync::mpsc::{Receiver, SyncSender};

use crate::scan::{Page, Scanner};
use crate::table::{Change, Table};
use crate::worker::{LoadError, Meta};

/// What the sink's channel carries to the reading stage.
pub(crate) enum Msg {
    /// Complete JSON lines and when they arrived (RFC 3339).
    Write(Vec<u8>, String),
    /// Publish what was written before, with this state.
    Publish {
        state: Option<String>,
        finish: bool,
        reply: SyncSender<Result<(), LoadError>>,
    },
}

/// What the reading stage hands the database stage, in the order the sink received it.
pub(crate) enum Read {
    /// A page read.
    Page(Box<ReadPage>),
    /// A page could not be read: the sink fails with this, and stages nothing after it.
    Failed(LoadError),
    /// Publish, passed on after every page before it.
    Publish {
        state: Option<String>,
        finish: bool,
        reply: SyncSender<Result<(), LoadError>>,
    },
}

/// A page read, with the columns it added or widened and the model they make (boxed: a
/// page is large, and the other messages small).
pub(crate) struct ReadPage {
    pub(crate) page: Page,
    pub(crate) changes: Vec<Change>,
    pub(crate) model: Option<Table>,
    pub(crate) meta: Meta,
}

/// The reading stage's loop: reads pages until the sink's channel closes or the database
/// stage goes away. Pages come back through `free` once staged, so their buffers are
/// reused and at most a few exist at once.
pub(crate) fn run(
    mut model: Table,
    mut scanner: Scanner,
    load_id: String,
    rx: Receiver<Msg>,
    out: SyncSender<Read>,
    free: Receiver<Page>,
) {
    let mut rows: i64 = 0;
    let mut failed = false;
    while let Ok(msg) = rx.recv() {
        let read = match msg {
            Msg::Write(..) if failed => continue,
            Msg::Write(lines, extracted_at) => {
                let meta = Meta {
                    load_id: load_id.clone(),
                    extracted_at,
                    first_row: rows,
                };
                let mut page = free.try_recv().unwrap_or_default();
                match scanner.scan(&mut model, lines, rows, &mut page) {
                    Ok(changes) => {
                        rows += page.len() as i64;
                        let model = (!changes.is_empty()).then(|| model.clone());
                        Read::Page(Box::new(ReadPage {
                            page,
                            changes,
                            model,
                            meta,
                        }))
                    }
                    Err(e) => {
                        failed = true;
                        Read::Failed(e)
                    }
                }
            }
            Msg::Publish {
                state,
                finish,
                reply,
            } => Read::Publish {
                state,
                finish,
                reply,
            },
        };
        if out.send(read).is_err() {
            break;
        }
    }
}
