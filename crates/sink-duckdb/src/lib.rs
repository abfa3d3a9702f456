//! Loads a run's records into a DuckDB file: one table per stream, the appender into a
//! staging table, then one transaction per checkpoint that evolves the table, moves the
//! rows in (append, merge, or the replace swap) and saves the stream's state in
//! `_runtime_state`, so rows and state never disagree.
//!
//! Owns the database file, the catalog reads and the DuckDB side of each write mode.
//! Must not decide types, names or modes (that is `sink-sql`'s) and must not be linked by
//! `connector-runtime` (DuckDB is a large C++ build; only the command line pulls it in).

mod columns;
pub mod load;
pub mod query;

pub use query::{QueryResult, query};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use duckdb::Connection;
use sink_sql::{Dialect, LoadError, TableSpec, Worker};

/// Settings of the loading process's database instance (not kept in the file). FSST
/// string compression took about a quarter of a load's CPU (the bench's 1,000,000 orders:
/// a mean of 6.8 s of CPU with it, 5.2 s without); the other methods (dictionary, RLE,
/// bit-packing, ALP, ...) stay, so strings are stored dictionary-compressed or plain (that
/// file: 29 MB instead of 16 MB). Readers need no setting: every DuckDB reads either.
const WRITE_SETTINGS: &str = "SET disabled_compression_methods = 'fsst'";

/// DuckDB's memory limit for the load unless the destination names one. DuckDB keeps
/// every block it wrote cached up to its limit (80% of the machine's memory by default),
/// so without one the process grew with the file: 236 MiB after 2,000,000 orders
/// replaced, 680 MiB merged. With 128 MB it stays under 270 MiB in both modes; 64 MB is
/// too little for a merge's batch of 100,000 rows (its join and staged rows).
const MEMORY_LIMIT: &str = "128MB";

/// A DuckDB file and the schema the tables go in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuckTarget {
    /// The database file (created when missing).
    pub path: PathBuf,
    /// Schema (default `main`).
    pub schema: String,
    /// DuckDB's `memory_limit` for the load, e.g. `512MB` (default [`MEMORY_LIMIT`]).
    pub memory_limit: String,
    /// Staged rows a merge merges at once, ahead of its checkpoint (default
    /// [`load::MERGE_BATCH`]).
    pub merge_batch: u64,
}

impl DuckTarget {
    /// Parses `duckdb:PATH` (or `duckdb://PATH`), with optional `?schema=NAME`,
    /// `memory_limit=SIZE` and `merge_batch=ROWS` (joined by `&`).
    pub fn parse(text: &str) -> Result<Self, LoadError> {
        let rest = text.strip_prefix("duckdb:").ok_or_else(|| {
            LoadError(format!("--to {text}: a DuckDB destination is duckdb:PATH"))
        })?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(LoadError(format!(
                "--to {text}: no file; write duckdb:path/to/file.duckdb"
            )));
        }
        let mut schema = "main".to_owned();
        let mut memory_limit = MEMORY_LIMIT.to_owned();
        let mut merge_batch = load::MERGE_BATCH;
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("schema", s)) if !s.is_empty() => schema = s.to_owned(),
                Some(("memory_limit", m)) => memory_limit = memory_size(text, m)?,
                Some(("merge_batch", n)) => {
                    merge_batch = n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        LoadError(format!(
                            "--to {text}: merge_batch={n:?} is not a number of rows above 0; write e.g. merge_batch=20000"
                        ))
                    })?;
                }
                _ => {
                    return Err(LoadError(format!(
                        "--to {text}: unsupported parameter {pair:?}; schema=NAME, memory_limit=SIZE and merge_batch=ROWS are read"
                    )));
                }
            }
        }
        Ok(Self {
            path: PathBuf::from(path),
            schema,
            memory_limit,
            merge_batch,
        })
    }

    /// The destination as logs show it.
    pub fn shown(&self) -> String {
        format!("duckdb:{}", self.path.display())
    }
}

/// A size as DuckDB's `memory_limit` takes it: a whole number and one of its units
/// (`KB`, `MB`, `GB`, `KiB`, `MiB`, `GiB`), at least 64 MB.
fn memory_size(text: &str, size: &str) -> Result<String, LoadError> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => 0,
    };
    let bytes = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale));
    match bytes {
        Some(b) if b >= 64_000_000 => Ok(size.to_owned()),
        _ => Err(LoadError(format!(
            "--to {text}: memory_limit={size:?} is not a size of at least 64MB; write e.g. memory_limit=512MB or memory_limit=2GB"
        ))),
    }
}

/// A DuckDB destination for one run: the file open (and so locked against other
/// processes), its state table created, every stream's saved state read.
pub struct DuckDestination {
    target: DuckTarget,
    root: Mutex<Connection>,
    /// Taken by each stream's publishing transaction.
    publishing: Arc<Mutex<()>>,
    connector: String,
    load_id: String,
    states: HashMap<String, String>,
}

impl std::fmt::Debug for DuckDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDestination")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl DuckDestination {
    /// Opens (or creates) the file, creates the schema and state table when missing, and
    /// reads the connector's saved states.
    pub fn open(target: DuckTarget, connector: &str) -> Result<Self, LoadError> {
        let shown = target.shown();
        if let Some(dir) = target.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                LoadError(format!(
                    "{shown}: cannot create the folder {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let conn = open_file(&target.path).map_err(|e| load::db_err(&shown, &e))?;
        conn.execute_batch(&format!(
            "{WRITE_SETTINGS}; SET memory_limit = '{}'",
            target.memory_limit
        ))
        .map_err(|e| load::db_err(&shown, &e))?;
        let state = load::qualified(&target.schema, sink_sql::STATE_TABLE);
        conn.execute_batch(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}; {}",
            sink_sql::table::quote(&target.schema),
            Dialect::DuckDb.create_state(&state)
        ))
        .map_err(|e| load::db_err(&shown, &e))?;
        let states = read_states(&conn, &state, connector).map_err(|e| load::db_err(&shown, &e))?;
        Ok(Self {
            target,
            root: Mutex::new(conn),
            publishing: Arc::default(),
            connector: connector.to_owned(),
            load_id: sink_sql::load_id(),
            states,
        })
    }

    /// The stream's saved state (JSON text), as read when the destination opened.
    pub fn prior_state(&self, stream: &str) -> Option<&str> {
        self.states.get(stream).map(String::as_str)
    }

    /// Opens one stream's sink: a connection of its own, on a thread of its own.
    pub fn open_sink(&self, spec: TableSpec) -> Result<Worker, LoadError> {
        let shown = self.target.shown();
        let conn = self
            .root
            .lock()
            .map_err(|_| LoadError(format!("{shown}: connection lock poisoned")))?
            .try_clone()
            .map_err(|e| load::db_err(&shown, &e))?;
        let schema = self.target.schema.clone();
        let connector = self.connector.clone();
        let load_id = self.load_id.clone();
        let publishing = self.publishing.clone();
        let merge_batch = self.target.merge_batch;
        Worker::start(&spec.stream.clone(), self.load_id.clone(), move || {
            load::DuckLoader::open(conn, &shown, &schema, &connector, &spec, &load_id)
                .map(|(loader, model)| (loader.configured(publishing, merge_batch), model))
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

    /// The destination as logs show it.
    pub fn shown(&self) -> String {
        self.target.shown()
    }
}

/// Opens the file; another process holding it is refused by DuckDB's own lock.
fn open_file(path: &Path) -> duckdb::Result<Connection> {
    Connection::open(path)
}

fn read_states(
    conn: &Connection,
    table: &str,
    connector: &str,
) -> duckdb::Result<HashMap<String, String>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT stream, CAST(state AS VARCHAR) FROM {table} WHERE connector = ?"
    ))?;
    let rows = stmt.query_map([connector], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        let t = DuckTarget::parse("duckdb:out/shop.duckdb").unwrap();
        assert_eq!(t.path, PathBuf::from("out/shop.duckdb"));
        assert_eq!(t.schema, "main");
        let t = DuckTarget::parse("duckdb:///tmp/x.duckdb?schema=raw").unwrap();
        assert_eq!(
            (t.path.to_str().unwrap(), t.schema.as_str()),
            ("/tmp/x.duckdb", "raw")
        );
        assert_eq!(t.memory_limit, MEMORY_LIMIT);
        let t = DuckTarget::parse("duckdb:x.duckdb?memory_limit=2GB&schema=s").unwrap();
        assert_eq!((t.memory_limit.as_str(), t.schema.as_str()), ("2GB", "s"));
        assert_eq!(t.merge_batch, load::MERGE_BATCH);
        let t = DuckTarget::parse("duckdb:x.duckdb?merge_batch=500").unwrap();
        assert_eq!(t.merge_batch, 500);
        for bad in ["0", "-1", "many", ""] {
            let e = DuckTarget::parse(&format!("duckdb:x?merge_batch={bad}")).unwrap_err();
            assert!(e.0.contains("merge_batch="), "{bad}: {e}");
        }
        assert!(DuckTarget::parse("duckdb:").is_err());
        assert!(DuckTarget::parse("duckdb:x?mode=ro").is_err());
        for bad in [
            "",
            "512",
            "10MB",
            "lots",
            "1TB",
            "99999999999999999999GB",
            "5MB'",
        ] {
            let e = DuckTarget::parse(&format!("duckdb:x?memory_limit={bad}")).unwrap_err();
            assert!(e.0.contains("memory_limit="), "{bad}: {e}");
        }
    }

    #[test]
    fn the_load_writes_without_fsst() {
        let dir = std::env::temp_dir().join(format!("sink-duckdb-fsst-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let target = DuckTarget::parse(&format!("duckdb:{}/t.duckdb", dir.display())).unwrap();
        let dest = DuckDestination::open(target, "c").unwrap();
        let conn = dest.root.lock().unwrap();
        let v: String = conn
            .query_row(
                "SELECT current_setting('disabled_compression_methods')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v.to_ascii_lowercase(), "fsst");
        let limit: String = conn
            .query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))
            .unwrap();
        assert!(
            limit.starts_with("122") || limit.starts_with("128"),
            "{limit}"
        );
        drop(conn);
        drop(dest);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
