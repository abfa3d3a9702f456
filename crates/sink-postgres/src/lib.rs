//! Loads a run's records into PostgreSQL: one table per stream in the schema the URL
//! names, text `COPY` into a staging table, then one transaction per checkpoint that
//! evolves the table, moves the rows in (append, merge, or the replace swap) and saves
//! the stream's state in `_runtime_state`, so rows and state never disagree.
//!
//! Owns the connection, the catalog reads and the PostgreSQL side of each write mode.
//! Must not decide types, names or modes (that is `sink-sql`'s), must not run the
//! blocking client inside an async runtime (every connection lives on its own thread),
//! and must never print a password (it never has one in a URL: it is refused).

mod copy;
mod encode;
pub mod load;
mod merge;
pub mod target;

use std::collections::HashMap;

use sink_sql::{Dialect, LoadError, TableSpec, Worker};

pub use target::{PASSWORD_ENV, PgTarget};

/// A PostgreSQL destination for one run: checked, its state table created, every
/// stream's saved state read.
#[derive(Debug)]
pub struct PgDestination {
    target: PgTarget,
    connector: String,
    load_id: String,
    states: HashMap<String, String>,
}

impl PgDestination {
    /// Connects (on a thread of its own), creates the schema and the state table when
    /// missing, and reads the connector's saved states.
    pub fn open(target: PgTarget, connector: &str) -> Result<Self, LoadError> {
        let t = target.clone();
        let c = connector.to_owned();
        let states = std::thread::spawn(move || read_states(&t, &c))
            .join()
            .map_err(|_| LoadError("the PostgreSQL setup thread panicked".into()))??;
        Ok(Self {
            target,
            connector: connector.to_owned(),
            load_id: sink_sql::load_id(),
            states,
        })
    }

    /// The stream's saved state (JSON text), as read when the destination opened.
    pub fn prior_state(&self, stream: &str) -> Option<&str> {
        self.states.get(stream).map(String::as_str)
    }

    /// Opens one stream's sink: its own connection, on its own thread.
    pub fn open_sink(&self, spec: TableSpec) -> Result<Worker, LoadError> {
        let target = self.target.clone();
        let connector = self.connector.clone();
        let load_id = self.load_id.clone();
        Worker::start(&spec.stream.clone(), self.load_id.clone(), move || {
            load::PgLoader::open(&target, &connector, &spec, &load_id)
        })
    }

    /// Where a stream's rows go, for the summary: `schema.table`.
    pub fn location(&self, stream: &str) -> String {
        format!(
            "{}.{}",
            self.target.schema,
            sink_sql::table::short_name(stream)
        )
    }

    /// The destination as logs show it (no password).
    pub fn shown(&self) -> String {
        self.target.shown()
    }
}

fn read_states(target: &PgTarget, connector: &str) -> Result<HashMap<String, String>, LoadError> {
    let mut client = load::connect(target)?;
    let state = load::qualified(&target.schema, sink_sql::STATE_TABLE);
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {}; {}",
        sink_sql::table::quote(&target.schema),
        Dialect::Postgres.create_state(&state)
    );
    // Two runs creating the schema at once can race; the loser sees it exists on retry.
    if let Err(e) = client.batch_execute(&sql) {
        client
            .batch_execute(&sql)
            .map_err(|_| load::pg_err(&target.shown(), &e))?;
    }
    let rows = client
        .query(
            &format!("SELECT stream, state::text FROM {state} WHERE connector = $1"),
            &[&connector],
        )
        .map_err(|e| load::pg_err(&target.shown(), &e))?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}
