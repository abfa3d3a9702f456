//! One stream's load into DuckDB: the appender into a staging table, then one
//! transaction that evolves the target, moves the rows in and saves the state.

use duckdb::Connection;
use duckdb::types::{TimeUnit, ToSqlOutput, Value as DValue, ValueRef};
use serde_json::{Map, Value};
use sink_sql::table::{EXTRACTED_AT, LOAD_ID, ROW, quote, short_name};
use sink_sql::{Backend, Cell, Change, Dialect, LoadError, Meta, Mode, Table, TableSpec, Target};

const SQL: Dialect = Dialect::DuckDb;

/// A DuckDB error with what was being done.
pub(crate) fn db_err(what: &str, e: &duckdb::Error) -> LoadError {
    LoadError(format!("{what}: {e}"))
}

/// `"schema"."table"`.
pub(crate) fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

/// The data columns of a table as the catalog has them (empty: no such table).
fn read_columns(conn: &Connection, schema: &str, table: &str) -> Result<(Table, bool), LoadError> {
    let what = format!("cannot read the columns of {schema}.{table}");
    let mut stmt = conn
        .prepare("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position")
        .map_err(|e| db_err(&what, &e))?;
    let rows = stmt
        .query_map([schema, table], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(|e| db_err(&what, &e))?;
    let rows = rows
        .collect::<Result<Vec<(String, String)>, _>>()
        .map_err(|e| db_err(&what, &e))?;
    let exists = !rows.is_empty();
    Ok((SQL.catalog_table(rows), exists))
}

/// One stream's connection (a clone of the destination's) and tables.
pub struct DuckLoader {
    conn: Connection,
    shown: String,
    schema: String,
    stage_name: String,
    t: Target,
}

impl DuckLoader {
    /// Creates what is missing and a fresh staging table; returns the loader and the
    /// column model to start from.
    pub fn open(
        conn: Connection,
        shown: &str,
        schema: &str,
        connector: &str,
        spec: &TableSpec,
        load_id: &str,
    ) -> Result<(Self, Table), LoadError> {
        let table = short_name(&spec.stream);
        let at = format!("{shown}: table {schema}.{table}");
        let err = |e: duckdb::Error| db_err(&at, &e);
        // Timestamps are appended as UTC instants; a session in another zone would
        // shift them on their way into `timestamptz`.
        conn.execute_batch("SET TimeZone = 'UTC'").map_err(err)?;
        let (physical, target_exists) = read_columns(&conn, schema, &table)?;
        let declared = Table::from_schema(spec.schema.as_ref());
        let target = qualified(schema, &table);
        // A dead run's staging table holds nothing that was published: it goes.
        let stage_name = short_name(&format!("_runtime_stage_{}", spec.stream));
        let stage = qualified(schema, &stage_name);
        let (model, target_cols) = match &spec.mode {
            Mode::Replace => {
                let sql = format!(
                    "DROP TABLE IF EXISTS {stage}; {}",
                    SQL.create_table(&stage, &declared, None, false)
                );
                conn.execute_batch(&sql).map_err(err)?;
                (declared, physical)
            }
            _ => {
                let mut model = declared;
                model.absorb(&physical);
                let mut sql = format!("DROP TABLE IF EXISTS {stage}; ");
                let target_cols = physical;
                sql.push_str(&SQL.create_table(&stage, &model, None, true));
                conn.execute_batch(&sql).map_err(err)?;
                (model, target_cols)
            }
        };
        let loader = Self {
            conn,
            shown: at,
            schema: schema.to_owned(),
            stage_name,
            t: Target {
                table,
                target,
                stage,
                state_table: qualified(schema, sink_sql::STATE_TABLE),
                mode: spec.mode.clone(),
                key_name: String::new(),
                cols: target_cols,
                exists: target_exists,
                connector: connector.to_owned(),
                stream: spec.stream.clone(),
                load_id: load_id.to_owned(),
                staged: 0,
            },
        };
        Ok((loader, model))
    }

    fn err(&self, e: duckdb::Error) -> LoadError {
        db_err(&self.shown, &e)
    }
}

/// A cell as the appender takes it; text is borrowed from the record.
fn to_sql<'a>(cell: &'a Cell<'a>) -> ToSqlOutput<'a> {
    match cell {
        Cell::Null => ToSqlOutput::Owned(DValue::Null),
        Cell::Int(i) => ToSqlOutput::Owned(DValue::BigInt(*i)),
        Cell::Float(f) => ToSqlOutput::Owned(DValue::Double(*f)),
        Cell::Bool(b) => ToSqlOutput::Owned(DValue::Boolean(*b)),
        // As a value: the appender's own cast from text would drop the UTC offset.
        Cell::Timestamp(s) => match sink_sql::timestamp_micros(s) {
            Some(us) => ToSqlOutput::Owned(DValue::Timestamp(TimeUnit::Microsecond, us)),
            None => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        },
        Cell::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        Cell::Json(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
    }
}

impl DuckLoader {
    /// Runs the statements in one transaction (rolled back on any error).
    fn transaction(&mut self, sql: &[String]) -> Result<(), LoadError> {
        let shown = self.shown.clone();
        let tx = self.conn.transaction().map_err(|e| db_err(&shown, &e))?;
        for s in sql {
            tx.execute_batch(s).map_err(|e| db_err(&shown, &e))?;
        }
        tx.commit().map_err(|e| db_err(&shown, &e))
    }
}

impl Backend for DuckLoader {
    fn evolve(&mut self, _model: &Table, changes: &[Change]) -> Result<(), LoadError> {
        let sql = SQL.alter(&self.t.stage, changes).join("; ");
        self.conn.execute_batch(&sql).map_err(|e| self.err(e))
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
        // Named columns: evolution adds columns after the metadata ones, so the staging
        // table's order is not the model's.
        let mut names: Vec<&str> = model.columns().iter().map(|c| c.name.as_str()).collect();
        names.extend([LOAD_ID, EXTRACTED_AT]);
        if !replace {
            names.push(ROW);
        }
        let mut app = self
            .conn
            .appender_with_columns_to_db(&self.stage_name, &self.schema, &names)
            .map_err(|e| db_err(&self.shown, &e))?;
        let mut slots = Vec::with_capacity(model.columns().len());
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(model.columns().len() + 3);
        for (i, r) in rows.iter().enumerate() {
            model.fill(r, &mut slots);
            cells.clear();
            for (c, v) in model.columns().iter().zip(&slots) {
                cells.push(v.map_or(Cell::Null, |v| Cell::new(c.ty, v)));
            }
            cells.push(Cell::Text(meta.load_id.as_str().into()));
            cells.push(Cell::Timestamp(&meta.extracted_at));
            if !replace {
                cells.push(Cell::Int(meta.first_row + i as i64));
            }
            app.append_row(duckdb::appender_params_from_iter(cells.iter().map(to_sql)))
                .map_err(|e| db_err(&self.shown, &e))?;
        }
        app.flush().map_err(|e| db_err(&self.shown, &e))?;
        self.t.staged += rows.len() as u64;
        Ok(())
    }

    fn publish(
        &mut self,
        model: &Table,
        state: Option<&str>,
        finish: bool,
    ) -> Result<(), LoadError> {
        let sql = self.t.statements(SQL, model, state, finish);
        if sql.is_empty() {
            return Ok(());
        }
        // Two streams' transactions can meet on the state table; DuckDB then refuses the
        // later one as a conflict, which is retried (nothing of it was kept).
        let mut attempt = 0;
        loop {
            match self.transaction(&sql) {
                Err(e) if attempt < 5 && e.0.to_ascii_lowercase().contains("conflict") => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
                }
                other => break other?,
            }
        }
        self.t.published(model);
        Ok(())
    }

    fn abandon(&mut self) {
        let _ = self
            .conn
            .execute_batch(&format!("DROP TABLE IF EXISTS {}", self.t.stage));
    }
}
