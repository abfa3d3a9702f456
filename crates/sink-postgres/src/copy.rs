//! A `COPY ... FROM STDIN` that stays open while pages arrive: a thread of its own owns
//! the connection for the COPY's length and sends the chunks the loader encodes, so the
//! loader encodes the next rows while the server stores the last ones. The COPY ends
//! (and the connection comes back) before anything else is said on the connection.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use postgres::Client;
use sink_sql::LoadError;

use crate::load::pg_err;

/// Encoded rows go to the COPY's thread in chunks of about this many bytes.
pub(crate) const CHUNK: usize = 256 << 10;

/// Chunks on their way to the server: the memory a COPY holds is about this many
/// chunks, plus the one being encoded and the one being sent.
const QUEUE: usize = 2;

/// A COPY in progress.
pub(crate) struct CopyIn {
    /// The statement, to tell whether the next rows belong to this COPY.
    pub(crate) statement: String,
    tx: SyncSender<Vec<u8>>,
    /// Chunks sent, emptied, for reuse.
    spent: Receiver<Vec<u8>>,
    handle: JoinHandle<(Client, Result<(), LoadError>)>,
}

impl CopyIn {
    /// Starts `statement` on its own thread, which owns `client` until [`CopyIn::end`]
    /// (the client is lost if the thread cannot start: the load fails then anyway).
    pub(crate) fn start(
        mut client: Client,
        statement: String,
        shown: &str,
    ) -> Result<Self, LoadError> {
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        let (spent_tx, spent) = sync_channel::<Vec<u8>>(QUEUE + 2);
        let sql = statement.clone();
        let at = shown.to_owned();
        let spawned = std::thread::Builder::new()
            .name("sink copy".into())
            .spawn(move || {
                let result = send(&mut client, &sql, &at, &rx, &spent_tx);
                (client, result)
            });
        match spawned {
            Ok(handle) => Ok(Self {
                statement,
                tx,
                spent,
                handle,
            }),
            Err(e) => Err(LoadError(format!(
                "{shown}: cannot start the COPY thread: {e}"
            ))),
        }
    }

    /// Hands a chunk of encoded rows over; returns an empty buffer to encode into next.
    /// Fails when the COPY has failed (its error comes from [`CopyIn::end`]).
    pub(crate) fn send(&self, chunk: Vec<u8>) -> Result<Vec<u8>, ()> {
        self.tx.send(chunk).map_err(|_| ())?;
        Ok(self
            .spent
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK + (64 << 10))))
    }

    /// Sends the last chunk, ends the COPY and gives the connection back.
    pub(crate) fn end(self, last: Vec<u8>) -> (Option<Client>, Result<(), LoadError>) {
        if !last.is_empty() {
            // A failed COPY has stopped reading; its error comes from the join.
            let _ = self.tx.send(last);
        }
        drop(self.tx);
        match self.handle.join() {
            Ok((client, result)) => (Some(client), result),
            Err(_) => (
                None,
                Err(LoadError("the PostgreSQL COPY thread panicked".into())),
            ),
        }
    }
}

/// The COPY's thread: every chunk in order, then the end of the COPY.
fn send(
    client: &mut Client,
    statement: &str,
    shown: &str,
    chunks: &Receiver<Vec<u8>>,
    spent: &SyncSender<Vec<u8>>,
) -> Result<(), LoadError> {
    let mut w = client.copy_in(statement).map_err(|e| pg_err(shown, &e))?;
    for mut chunk in chunks {
        let written = w.write_all(&chunk).and_then(|()| w.flush());
        if let Err(e) = written {
            // The server's own message when it has one.
            let msg = match e
                .get_ref()
                .and_then(|e| e.downcast_ref::<postgres::Error>())
            {
                Some(pg) => pg_err(shown, pg),
                None => LoadError(format!("{shown}: COPY: {e}")),
            };
            return Err(msg);
        }
        chunk.clear();
        let _ = spent.try_send(chunk);
    }
    w.finish().map(|_| ()).map_err(|e| pg_err(shown, &e))
}
