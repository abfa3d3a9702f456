//! One stream's load into PostgreSQL: binary `COPY` into a staging table, then one
//! transaction that evolves the target, moves the rows in and saves the state.

use postgres::{Client, NoTls};
use sink_sql::table::{EXTRACTED_AT, LOAD_ID, ROW, quote, short_name};
use sink_sql::{Backend, Change, Dialect, LoadError, Meta, Mode, Page, Table, TableSpec, Target};

use crate::copy::{CHUNK, CopyIn};
use crate::encode;
use crate::merge;
use crate::target::PgTarget;

const SQL: Dialect = Dialect::Postgres;

/// The session's `temp_buffers`: local buffers are allocated as the staging table grows,
/// up to this (PostgreSQL's default, 8MB, wrote a large checkpoint's staging table out
/// and read it back).
const TEMP_BUFFERS: &str = "256MB";

/// The session's `work_mem`: the sort of a large checkpoint's staged rows by key.
const WORK_MEM: &str = "256MB";

/// A PostgreSQL error with what was being done; the server's message, never the password.
pub(crate) fn pg_err(what: &str, e: &postgres::Error) -> LoadError {
    let detail = match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            s
        }
        None => e.to_string(),
    };
    LoadError(format!("{what}: {detail}"))
}

/// Connects (on the calling thread, which must not be inside an async runtime).
pub(crate) fn connect(target: &PgTarget) -> Result<Client, LoadError> {
    let mut client = target
        .config()
        .connect(NoTls)
        .map_err(|e| pg_err(&format!("cannot connect to {}", target.shown()), &e))?;
    client
        .batch_execute("SET TIME ZONE 'UTC'; SET client_min_messages = warning")
        .map_err(|e| pg_err(&target.shown(), &e))?;
    Ok(client)
}

/// `"schema"."table"`.
pub(crate) fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

/// The data columns of a table as the catalog has them (empty: no such table).
fn read_columns(
    client: &mut Client,
    schema: &str,
    table: &str,
) -> Result<(Table, bool), LoadError> {
    let rows = client
        .query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema, &table],
        )
        .map_err(|e| pg_err(&format!("cannot read the columns of {schema}.{table}"), &e))?;
    let exists = !rows.is_empty();
    let table = SQL.catalog_table(rows.iter().map(|r| (r.get(0), r.get(1))));
    Ok((table, exists))
}

/// One stream's connection and tables.
pub struct PgLoader {
    /// The connection, unless a COPY's thread has it (or lost it).
    client: Option<Client>,
    shown: String,
    t: Target,
    /// Rows encoded for the COPY, not sent yet.
    buf: Vec<u8>,
    /// The COPY in progress, which holds the connection.
    copy: Option<CopyIn>,
    /// Each column's value in the record being encoded.
    slots: Vec<u32>,
    /// Whether the server has `MERGE` (PostgreSQL 15 or later).
    merge_command: bool,
}

impl PgLoader {
    /// Connects, takes the table's advisory lock, creates what is missing, and prepares
    /// the staging table; returns the loader and the column model to start from.
    pub fn open(
        target: &PgTarget,
        connector: &str,
        spec: &TableSpec,
        load_id: &str,
    ) -> Result<(Self, Table), LoadError> {
        let mut client = connect(target)?;
        let shown = target.shown();
        let table = short_name(&spec.stream);
        let at = format!("{shown}: table {}.{table}", target.schema);
        let err = |e: postgres::Error| pg_err(&at, &e);
        // One run per table: a second one would interleave its swaps and merges. The wait
        // is bounded (a killed run's session may take a moment to be noticed); DDL waits
        // for readers are bounded too.
        let key = format!("runtime:{}.{table}", target.schema);
        let locked = client
            .batch_execute("SET lock_timeout = '20s'")
            .and_then(|()| client.execute("SELECT pg_advisory_lock(hashtext($1))", &[&key]));
        if let Err(e) = locked {
            let busy = e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE);
            return Err(if busy {
                LoadError(format!(
                    "{at}: another run has been loading this table for 20 s; wait for it to finish"
                ))
            } else {
                pg_err(&at, &e)
            });
        }
        // Server memory of this session (not the runtime's): the temporary staging table's
        // pages (set before the session first uses one) and the sort that picks each
        // key's newest version, kept in memory for a checkpoint of a million rows.
        client
            .batch_execute(&format!(
                "SET lock_timeout = '10min'; SET temp_buffers = '{TEMP_BUFFERS}'; SET work_mem = '{WORK_MEM}'"
            ))
            .map_err(err)?;
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .map_err(err)?
            .get(0);
        let (physical, target_exists) = read_columns(&mut client, &target.schema, &table)?;
        let declared = Table::from_schema(spec.schema.as_ref());
        let qualified_target = qualified(&target.schema, &table);
        let key_name = short_name(&format!("{table}_runtime_key"));
        let (model, stage, target_cols) = match &spec.mode {
            Mode::Replace => {
                let stage = qualified(
                    &target.schema,
                    &short_name(&format!("_runtime_new_{}", spec.stream)),
                );
                let sql = format!(
                    "DROP TABLE IF EXISTS {stage}; {}",
                    SQL.create_table(&stage, &declared, None, false)
                );
                client.batch_execute(&sql).map_err(err)?;
                (declared, stage, physical)
            }
            mode => {
                let mut model = declared;
                model.absorb(&physical);
                let key = match mode {
                    Mode::Merge { key, .. } => Some(key.as_slice()),
                    _ => None,
                };
                let mut sql = String::new();
                if let (Some(k), true) = (key, target_exists) {
                    // A table that was appended to before has no key yet.
                    sql.push_str(&format!(
                        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {qualified_target} ({}); ",
                        quote(&key_name),
                        sink_sql::sql::list(k)
                    ));
                }
                if *mode == Mode::Append && target_exists {
                    // A table an earlier run merged into: appended rows repeat keys, so
                    // its key (constraint or unique index) goes; the rows stay.
                    sql.push_str(&format!(
                        "ALTER TABLE {qualified_target} DROP CONSTRAINT IF EXISTS {k}; DROP INDEX IF EXISTS {}; ",
                        qualified(&target.schema, &key_name),
                        k = quote(&key_name),
                    ));
                }
                let target_cols = physical;
                let stage = quote("_runtime_stage");
                sql.push_str(&SQL.create_table(&format!("pg_temp.{stage}"), &model, None, true));
                client.batch_execute(&sql).map_err(err)?;
                (model, format!("pg_temp.{stage}"), target_cols)
            }
        };
        let loader = Self {
            client: Some(client),
            shown: at,
            t: Target {
                table,
                target: qualified_target,
                stage,
                state_table: qualified(&target.schema, sink_sql::STATE_TABLE),
                mode: spec.mode.clone(),
                key_name,
                cols: target_cols,
                exists: target_exists,
                connector: connector.to_owned(),
                stream: spec.stream.clone(),
                load_id: load_id.to_owned(),
                staged: 0,
            },
            buf: Vec::with_capacity(CHUNK + (64 << 10)),
            copy: None,
            slots: Vec::new(),
            merge_command: version >= 150_000,
        };
        Ok((loader, model))
    }

    /// The connection, once the COPY in progress has ended.
    fn client(&mut self) -> Result<&mut Client, LoadError> {
        self.end_copy()?;
        let shown = &self.shown;
        self.client
            .as_mut()
            .ok_or_else(|| LoadError(format!("{shown}: the connection was lost")))
    }

    /// Ends the COPY in progress (its rows are in the staging table then).
    fn end_copy(&mut self) -> Result<(), LoadError> {
        let Some(copy) = self.copy.take() else {
            return Ok(());
        };
        let mut last = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + (64 << 10)));
        last.extend_from_slice(encode::TRAILER);
        let (client, result) = copy.end(last);
        self.client = client;
        result
    }

    /// The COPY for `statement`, started when none is in progress (or another is).
    fn copy_for(&mut self, statement: String) -> Result<&CopyIn, LoadError> {
        if self.copy.as_ref().is_some_and(|c| c.statement != statement) {
            self.end_copy()?;
        }
        if self.copy.is_none() {
            let client = self
                .client
                .take()
                .ok_or_else(|| LoadError(format!("{}: the connection was lost", self.shown)))?;
            self.copy = Some(CopyIn::start(client, statement, &self.shown)?);
            // The buffer is empty here: the last COPY took it.
            self.buf.extend_from_slice(encode::HEADER);
        }
        self.copy
            .as_ref()
            .ok_or_else(|| LoadError(format!("{}: no COPY in progress", self.shown)))
    }

    /// Hands the encoded rows to the COPY's thread when a chunk is full.
    fn send_full(&mut self) -> Result<(), LoadError> {
        if self.buf.len() < CHUNK {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf);
        let sent = self.copy.as_ref().map(|c| c.send(chunk));
        match sent {
            Some(Ok(next)) => {
                self.buf = next;
                Ok(())
            }
            // The COPY failed: its error says why.
            _ => Err(self
                .end_copy()
                .err()
                .unwrap_or_else(|| LoadError(format!("{}: the COPY stopped", self.shown)))),
        }
    }
}

impl Backend for PgLoader {
    fn refuses_nul(&self) -> bool {
        true
    }

    fn evolve(&mut self, _model: &Table, changes: &[Change]) -> Result<(), LoadError> {
        // Rows encoded for the old columns go first.
        let sql = SQL.alter(&self.t.stage, changes).join("; ");
        let shown = self.shown.clone();
        self.client()?
            .batch_execute(&sql)
            .map_err(|e| pg_err(&shown, &e))
    }

    fn stage(&mut self, model: &Table, page: &Page, meta: &Meta) -> Result<(), LoadError> {
        if page.is_empty() {
            return Ok(());
        }
        let replace = self.t.is_replace();
        self.copy_for(copy_statement(&self.t.stage, model, replace))?;
        // The metadata columns are the same for the whole page: encoded once.
        let tail = encode::tail(&meta.load_id, &meta.extracted_at)?;
        for i in 0..page.len() {
            let row = (!replace).then_some(meta.first_row + i as i64);
            encode::put_row(&mut self.buf, model, page, i, &tail, row, &mut self.slots)?;
            self.send_full()?;
        }
        self.t.staged += page.len() as u64;
        Ok(())
    }

    fn publish(
        &mut self,
        model: &Table,
        state: Option<&str>,
        finish: bool,
    ) -> Result<(), LoadError> {
        self.end_copy()?;
        let sql = merge::statements(&self.t, model, state, finish, self.merge_command);
        if sql.is_empty() {
            return Ok(());
        }
        let shown = self.shown.clone();
        let mut tx = self
            .client()?
            .transaction()
            .map_err(|e| pg_err(&shown, &e))?;
        for s in &sql {
            tx.batch_execute(s).map_err(|e| pg_err(&shown, &e))?;
        }
        tx.commit().map_err(|e| pg_err(&shown, &e))?;
        self.t.published(model);
        Ok(())
    }

    fn abandon(&mut self) {
        // The COPY ends first: its rows reach only the staging table, which goes.
        let _ = self.end_copy();
        if self.t.is_replace() {
            let sql = format!("DROP TABLE IF EXISTS {}", self.t.stage);
            if let Some(c) = self.client.as_mut() {
                let _ = c.batch_execute(&sql);
            }
        }
    }
}

/// The `COPY` of the staging table's columns in the model's order.
fn copy_statement(stage: &str, model: &Table, replace: bool) -> String {
    let mut names: Vec<String> = model.columns().iter().map(|c| quote(&c.name)).collect();
    names.push(quote(LOAD_ID));
    names.push(quote(EXTRACTED_AT));
    if !replace {
        names.push(quote(ROW));
    }
    format!(
        "COPY {stage} ({}) FROM STDIN (FORMAT binary)",
        names.join(", ")
    )
}
