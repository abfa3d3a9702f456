//! One stream's load into DuckDB: the appender into a staging table, then one
//! transaction that evolves the target, moves the rows in and saves the state.

use std::sync::{Arc, Mutex};

use duckdb::Connection;
use sink_sql::table::{EXTRACTED_AT, LOAD_ID, ROW, quote, short_name};
use sink_sql::{Backend, Change, Dialect, LoadError, Meta, Mode, Page, Table, TableSpec, Target};

use crate::columns;

const SQL: Dialect = Dialect::DuckDb;

/// DuckDB's catalog of the connection's temporary tables.
const TEMP: &str = "temp";

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
    /// The staging table's catalog: `temp` for merge (its rows reach the file once, by
    /// the merge), else the file's own (replace: the staging table becomes the target).
    stage_catalog: Option<&'static str>,
    t: Target,
    /// Whether a staging transaction is open: pages are appended in one transaction per
    /// checkpoint, not one commit (and WAL sync) per page.
    staging: bool,
    /// Staged rows a merge holds before merging them ahead of the checkpoint.
    merge_batch: u64,
    /// Bytes of JSON staged since the last merge.
    staged_bytes: usize,
    /// Held while publishing: one publishing transaction at a time in the file (see
    /// [`DuckLoader::configured`]).
    publishing: Arc<Mutex<()>>,
}

/// A merge's staged rows live in memory (a temporary table, and DuckDB's `MERGE` joins
/// them there): past this many (unless the destination names another number), they are
/// merged at once, without the state.
pub const MERGE_BATCH: u64 = 100_000;

/// The same bound in bytes of JSON, for wide records: the batch must fit in DuckDB's
/// memory limit with its join.
const MERGE_BATCH_BYTES: usize = 32 << 20;

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
        // A dead run's staging table holds nothing that was published: it goes (a
        // temporary one went with its connection; one in the file is dropped here).
        let stage_name = short_name(&format!("_runtime_stage_{}", spec.stream));
        let file_stage = qualified(schema, &stage_name);
        let (model, target_cols, stage, stage_catalog) = match &spec.mode {
            Mode::Replace => {
                let sql = format!(
                    "DROP TABLE IF EXISTS {file_stage}; {}",
                    SQL.create_table(&file_stage, &declared, None, false)
                );
                conn.execute_batch(&sql).map_err(err)?;
                (declared, physical, file_stage, None)
            }
            _ => {
                let mut model = declared;
                model.absorb(&physical);
                let (sql, stage, catalog) = if matches!(spec.mode, Mode::Merge { .. }) {
                    // A temporary table (the connection's own, in memory, spilled to the
                    // temp directory past the memory limit): merge reads the staged rows
                    // once, into a join that holds them in memory anyway, so they are not
                    // compressed into the file and its WAL first. Append stages in the
                    // file, whose row groups are written out as they fill, so its memory
                    // stays flat however many rows a checkpoint stages.
                    let stage = format!("{}.{}", quote(TEMP), qualified("main", &stage_name));
                    let sql = format!(
                        "DROP TABLE IF EXISTS {file_stage}; {}",
                        fresh_temp_stage(&stage, &model)
                    );
                    (sql, stage, Some(TEMP))
                } else {
                    let create = SQL.create_table(&file_stage, &model, None, true);
                    let sql = format!("DROP TABLE IF EXISTS {file_stage}; {create}");
                    (sql, file_stage, None)
                };
                conn.execute_batch(&sql).map_err(err)?;
                (model, physical, stage, catalog)
            }
        };
        let loader = Self {
            conn,
            shown: at,
            schema: schema.to_owned(),
            stage_name,
            stage_catalog,
            staging: false,
            merge_batch: MERGE_BATCH,
            staged_bytes: 0,
            publishing: Arc::default(),
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

    /// Publishes under `lock`, shared by every stream of the destination, and merges
    /// early every `merge_batch` staged rows. Two merges at once each pinned their batch
    /// and join in DuckDB's one memory limit, and one of them failed out of memory;
    /// taking turns keeps one batch's worth pinned, and two transactions no longer meet
    /// on the state table.
    pub fn configured(mut self, lock: Arc<Mutex<()>>, merge_batch: u64) -> Self {
        self.publishing = lock;
        self.merge_batch = merge_batch.max(1);
        self
    }

    fn err(&self, e: duckdb::Error) -> LoadError {
        db_err(&self.shown, &e)
    }
}

/// Drops and creates a temporary staging table. A temporary table keeps the rows that
/// `DELETE` removed (in memory: the temporary catalog is never checkpointed), so a merge
/// that only emptied its stage after each batch grew by every batch it had merged.
fn fresh_temp_stage(stage: &str, model: &Table) -> String {
    format!(
        "DROP TABLE IF EXISTS {stage}; {}",
        SQL.create_table(stage, model, None, true)
            .replacen("CREATE TABLE", "CREATE TEMP TABLE", 1)
    )
}

impl DuckLoader {
    /// Opens the staging transaction unless one is open.
    fn begin_staging(&mut self) -> Result<(), LoadError> {
        if !self.staging {
            self.conn
                .execute_batch("BEGIN TRANSACTION")
                .map_err(|e| db_err(&self.shown, &e))?;
            self.staging = true;
        }
        Ok(())
    }

    /// Commits the staged rows (only into the staging table: the target and the state
    /// move in the publishing transaction, which a conflict may make retry).
    fn commit_staging(&mut self) -> Result<(), LoadError> {
        if self.staging {
            self.staging = false;
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| db_err(&self.shown, &e))?;
        }
        Ok(())
    }

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
        // DuckDB alters no table with rows appended in the same transaction.
        self.commit_staging()?;
        let sql = SQL.alter(&self.t.stage, changes).join("; ");
        self.conn.execute_batch(&sql).map_err(|e| self.err(e))
    }

    fn stage(&mut self, model: &Table, page: &Page, meta: &Meta) -> Result<(), LoadError> {
        if page.is_empty() {
            return Ok(());
        }
        self.begin_staging()?;
        let replace = self.t.is_replace();
        // Named columns: evolution adds columns after the metadata ones, so the staging
        // table's order is not the model's.
        let mut names: Vec<&str> = model.columns().iter().map(|c| c.name.as_str()).collect();
        names.extend([LOAD_ID, EXTRACTED_AT]);
        if !replace {
            names.push(ROW);
        }
        let app = match self.stage_catalog {
            Some(catalog) => self.conn.appender_with_columns_to_catalog_and_db(
                &self.stage_name,
                catalog,
                "main",
                &names,
            ),
            None => self
                .conn
                .appender_with_columns_to_db(&self.stage_name, &self.schema, &names),
        };
        let mut app = app.map_err(|e| db_err(&self.shown, &e))?;
        let batch = columns::record_batch(model, page, meta, !replace)?;
        app.append_record_batch(batch)
            .map_err(|e| db_err(&self.shown, &e))?;
        app.flush().map_err(|e| db_err(&self.shown, &e))?;
        drop(app);
        self.t.staged += page.len() as u64;
        self.staged_bytes += page.size();
        // Merged early, the rows are where the checkpoint would put them; the state moves
        // only at the checkpoint, so a killed run merges them again on its rerun, which
        // leaves each key once with its newest version (an upsert is idempotent). Append
        // and replace never publish early: their output must appear with the state.
        let full = self.t.staged >= self.merge_batch || self.staged_bytes >= MERGE_BATCH_BYTES;
        if matches!(self.t.mode, Mode::Merge { .. }) && full {
            self.publish(model, None, false)?;
        }
        Ok(())
    }

    fn publish(
        &mut self,
        model: &Table,
        state: Option<&str>,
        finish: bool,
    ) -> Result<(), LoadError> {
        self.commit_staging()?;
        let sql = self.t.statements(SQL, model, state, finish);
        if sql.is_empty() {
            return Ok(());
        }
        let publishing = self.publishing.clone();
        let _turn = publishing
            .lock()
            .map_err(|_| LoadError(format!("{}: publishing lock poisoned", self.shown)))?;
        // Another stream's staging transaction can still meet ours in DuckDB's catalog;
        // DuckDB then refuses ours as a conflict, which is retried (nothing was kept).
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
        let merged = self.t.staged > 0;
        self.t.published(model);
        self.staged_bytes = 0;
        if merged && self.stage_catalog == Some(TEMP) && !finish {
            let sql = fresh_temp_stage(&self.t.stage, model);
            self.conn.execute_batch(&sql).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn abandon(&mut self) {
        if self.staging {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let _ = self
            .conn
            .execute_batch(&format!("DROP TABLE IF EXISTS {}", self.t.stage));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT database_name, table_name FROM duckdb_tables() ORDER BY ALL")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn merge_stages_in_a_temporary_table_append_in_the_file() {
        let dir = std::env::temp_dir().join(format!("sink-duckdb-stage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conn = Connection::open(dir.join("t.duckdb")).unwrap();
        let spec = |stream: &str, mode| TableSpec {
            stream: stream.into(),
            mode,
            schema: None,
        };
        let merge = Mode::Merge {
            key: vec!["id".into()],
            cursor: None,
        };
        let opened = |s: TableSpec| {
            DuckLoader::open(conn.try_clone().unwrap(), "t", "main", "c", &s, "l").unwrap()
        };
        let (m, _) = opened(spec("m", merge));
        let (a, _) = opened(spec("a", Mode::Append));
        let (r, _) = opened(spec("r", Mode::Replace));
        // The temporary table is its connection's: the merge loader sees it.
        assert!(tables(&m.conn).contains(&("temp".into(), "_runtime_stage_m".into())));
        let file: Vec<String> = tables(&conn)
            .into_iter()
            .filter(|(db, _)| db != "temp")
            .map(|(_, t)| t)
            .collect();
        assert_eq!(file, ["_runtime_stage_a", "_runtime_stage_r"]);
        drop((m, a, r, conn));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A merge loader on a fresh file, fed pages of JSON lines.
    struct Merging {
        dir: std::path::PathBuf,
        conn: Connection,
        loader: DuckLoader,
        model: Table,
        scanner: sink_sql::scan::Scanner,
        page: Page,
        row: i64,
    }

    impl Merging {
        fn new(name: &str, cursor: Option<&str>, batch: u64) -> Self {
            let dir =
                std::env::temp_dir().join(format!("sink-duckdb-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let conn = Connection::open(dir.join("t.duckdb")).unwrap();
            conn.execute_batch(&SQL.create_state(&qualified("main", sink_sql::STATE_TABLE)))
                .unwrap();
            let spec = TableSpec {
                stream: "m".into(),
                mode: Mode::Merge {
                    key: vec!["id".into()],
                    cursor: cursor.map(str::to_owned),
                },
                schema: None,
            };
            let (loader, model) =
                DuckLoader::open(conn.try_clone().unwrap(), "t", "main", "c", &spec, "l").unwrap();
            let loader = loader.configured(Arc::default(), batch);
            Self {
                dir,
                conn,
                loader,
                model,
                scanner: sink_sql::scan::Scanner::new(false),
                page: Page::default(),
                row: 0,
            }
        }

        fn stage(&mut self, lines: &[u8]) {
            let changes = self
                .scanner
                .scan(&mut self.model, lines.to_vec(), self.row, &mut self.page)
                .unwrap();
            if !changes.is_empty() {
                self.loader.evolve(&self.model, &changes).unwrap();
            }
            let meta = Meta {
                load_id: "l".into(),
                extracted_at: "2026-12-02T00:00:00Z".into(),
                first_row: self.row,
            };
            self.loader.stage(&self.model, &self.page, &meta).unwrap();
            self.row += self.page.len() as i64;
        }

        fn count(&self, sql: &str) -> i64 {
            self.conn.query_row(sql, [], |r| r.get(0)).unwrap()
        }

        fn finish(self) {
            let dir = self.dir.clone();
            drop(self);
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn a_merge_past_its_batch_merges_early_and_the_state_waits_for_the_checkpoint() {
        let mut m = Merging::new("batch", Some("v"), 2);
        let pages: [&[u8]; 3] = [
            b"{\"id\":1,\"v\":1}\n{\"id\":2,\"v\":5}\n",
            // An older version of 2 (a lookback) must not win over the one merged early.
            b"{\"id\":2,\"v\":3}\n{\"id\":3,\"v\":1}\n",
            b"{\"id\":1,\"v\":2}\n",
        ];
        for (i, lines) in pages.iter().enumerate() {
            m.stage(lines);
            // Two staged rows are merged at once: after each of the first two pages.
            let merged = if i < 2 { [2, 3][i] } else { 3 };
            assert_eq!(
                m.count("SELECT count(*) FROM main.m"),
                merged,
                "after page {i}"
            );
            assert_eq!(m.count("SELECT count(*) FROM main._runtime_state"), 0);
        }
        m.loader.publish(&m.model, Some("{}"), true).unwrap();
        assert_eq!(m.count("SELECT count(*) FROM main._runtime_state"), 1);
        let rows: Vec<(i64, i64)> = m
            .conn
            .prepare("SELECT id, v FROM main.m ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, [(1, 2), (2, 5), (3, 1)]);
        m.finish();
    }

    #[test]
    fn a_merge_frees_each_merged_batch() {
        let mut m = Merging::new("free", None, 1_000);
        // 40 batches of 1,000 rows with 1 KB of text each: 40 MB staged in all.
        let text = "x".repeat(1_000);
        for _ in 0..40 {
            let lines: String = (0..1_000)
                .map(|i| format!("{{\"id\":{},\"t\":\"{text}{i}\"}}\n", m.row + i))
                .collect();
            m.stage(lines.as_bytes());
        }
        let held = m.count(
            "SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'",
        );
        // One batch is about 1 MB; all of them would be 40.
        assert!(held < 8 << 20, "temporary tables hold {held} bytes");
        m.loader.publish(&m.model, Some("{}"), true).unwrap();
        assert_eq!(m.count("SELECT count(*) FROM main.m"), 40_000);
        m.finish();
    }
}
