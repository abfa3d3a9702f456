//! One stream's load into PostgreSQL: text `COPY` into a staging table, then one
//! transaction that evolves the target, moves the rows in and saves the state.

use std::io::Write;

use postgres::{Client, NoTls};
use serde_json::{Map, Value};
use sink_sql::table::{EXTRACTED_AT, LOAD_ID, ROW, quote, short_name};
use sink_sql::{Backend, Cell, Change, Dialect, LoadError, Meta, Mode, Table, TableSpec, Target};

use crate::target::PgTarget;

const SQL: Dialect = Dialect::Postgres;

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
    client: Client,
    shown: String,
    t: Target,
    /// Rows encoded for `copy`, not sent yet.
    buf: Vec<u8>,
    copy: Option<String>,
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
        client
            .batch_execute("SET lock_timeout = '10min'")
            .map_err(err)?;
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
            client,
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
            buf: Vec::with_capacity(COPY_BYTES + (1 << 20)),
            copy: None,
        };
        Ok((loader, model))
    }

    fn err(&self, e: postgres::Error) -> LoadError {
        pg_err(&self.shown, &e)
    }
}

impl Backend for PgLoader {
    fn refuses_nul(&self) -> bool {
        true
    }

    fn evolve(&mut self, _model: &Table, changes: &[Change]) -> Result<(), LoadError> {
        // Rows encoded for the old columns go first.
        self.flush()?;
        let sql = SQL.alter(&self.t.stage, changes).join("; ");
        self.client.batch_execute(&sql).map_err(|e| self.err(e))
    }

    fn stage(
        &mut self,
        model: &Table,
        rows: &[Map<String, Value>],
        meta: &Meta,
    ) -> Result<(), LoadError> {
        if rows.is_empty() {
            return Ok(());
        }
        let replace = self.t.is_replace();
        let copy = copy_statement(&self.t.stage, model, replace);
        if self.copy.as_ref().is_some_and(|c| *c != copy) {
            self.flush()?;
        }
        // The metadata columns are the same for the whole page: encoded once.
        let mut tail = Vec::with_capacity(64);
        tail.push(b'\t');
        put_text(&mut tail, &meta.load_id);
        tail.push(b'\t');
        put_text(&mut tail, &meta.extracted_at);
        let mut slots = Vec::with_capacity(model.columns().len());
        for (i, r) in rows.iter().enumerate() {
            model.fill(r, &mut slots);
            for (n, (c, v)) in model.columns().iter().zip(&slots).enumerate() {
                if n > 0 {
                    self.buf.push(b'\t');
                }
                match v {
                    Some(v) => put_cell(&mut self.buf, &Cell::new(c.ty, v)),
                    None => self.buf.extend_from_slice(b"\\N"),
                }
            }
            if model.columns().is_empty() {
                // No data column: the tail's leading tab would open an empty one.
                self.buf.extend_from_slice(&tail[1..]);
            } else {
                self.buf.extend_from_slice(&tail);
            }
            if !replace {
                self.buf.push(b'\t');
                let _ = write!(self.buf, "{}", meta.first_row + i as i64);
            }
            self.buf.push(b'\n');
        }
        self.copy = Some(copy);
        self.t.staged += rows.len() as u64;
        if self.buf.len() >= COPY_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn publish(
        &mut self,
        model: &Table,
        state: Option<&str>,
        finish: bool,
    ) -> Result<(), LoadError> {
        self.flush()?;
        let sql = self.t.statements(SQL, model, state, finish);
        if sql.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| pg_err(&self.shown, &e))?;
        for s in &sql {
            tx.batch_execute(s).map_err(|e| pg_err(&self.shown, &e))?;
        }
        tx.commit().map_err(|e| pg_err(&self.shown, &e))?;
        self.t.published(model);
        Ok(())
    }

    fn abandon(&mut self) {
        if self.t.is_replace() {
            let _ = self
                .client
                .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.t.stage));
        }
    }
}

/// Rows go to the server in `COPY`s of about this many bytes: several pages each, so
/// fewer statements and round trips than one per page, memory still bounded.
const COPY_BYTES: usize = 4 << 20;

/// The `COPY` of the staging table's columns in the model's order.
fn copy_statement(stage: &str, model: &Table, replace: bool) -> String {
    let mut names: Vec<String> = model.columns().iter().map(|c| quote(&c.name)).collect();
    names.push(quote(LOAD_ID));
    names.push(quote(EXTRACTED_AT));
    if !replace {
        names.push(quote(ROW));
    }
    format!("COPY {stage} ({}) FROM STDIN", names.join(", "))
}

impl PgLoader {
    /// Sends the encoded rows (one `COPY`).
    fn flush(&mut self) -> Result<(), LoadError> {
        let Some(copy) = self.copy.take() else {
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut w = self
            .client
            .copy_in(&copy)
            .map_err(|e| pg_err(&self.shown, &e))?;
        w.write_all(&self.buf)
            .map_err(|e| LoadError(format!("{}: COPY: {e}", self.shown)))?;
        w.finish().map_err(|e| pg_err(&self.shown, &e))?;
        self.buf.clear();
        Ok(())
    }
}

/// One cell in `COPY ... FROM STDIN` text format.
fn put_cell(buf: &mut Vec<u8>, cell: &Cell<'_>) {
    match cell {
        Cell::Null => buf.extend_from_slice(b"\\N"),
        Cell::Int(i) => {
            let _ = write!(buf, "{i}");
        }
        Cell::Float(f) => {
            let _ = write!(buf, "{f}");
        }
        Cell::Bool(b) => buf.push(if *b { b't' } else { b'f' }),
        Cell::Timestamp(s) => put_text(buf, s),
        Cell::Text(s) => put_text(buf, s),
        Cell::Json(s) => put_text(buf, s),
    }
}

/// Text escaped for `COPY`: backslash, tab, newline and carriage return.
fn put_text(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(esc);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_is_escaped() {
        let mut b = Vec::new();
        put_text(&mut b, "a\tb\\c\nd\re");
        assert_eq!(b, b"a\\tb\\\\c\\nd\\re");
        b.clear();
        put_cell(&mut b, &Cell::Float(0.1));
        assert_eq!(b, b"0.1");
    }
}
