//! Where a run's records go, chosen at run time: `--to postgres://...`, `--to duckdb:PATH`,
//! or JSON lines (the default); and `--write-mode stream=mode` overrides.
//!
//! Owns the parsing of `--to` and `--write-mode` and the choice of sink crate. Must not
//! hold any sink's logic, and must not be linked by `connector-runtime`: each database
//! crate is behind a default-on feature, so a build without one stays small.

use std::collections::BTreeMap;

pub use sink_sql::LoadError;

/// A parsed `--to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// JSON-lines files in `--out` (the default).
    Jsonl,
    /// A PostgreSQL schema.
    #[cfg(feature = "postgres")]
    Postgres(sink_postgres::PgTarget),
    /// A DuckDB file.
    #[cfg(feature = "duckdb-linked")]
    DuckDb(sink_duckdb::DuckTarget),
}

impl To {
    /// Parses `--to`: absent or `jsonl` is JSON lines.
    pub fn parse(text: Option<&str>) -> Result<Self, LoadError> {
        let Some(text) = text.filter(|t| *t != "jsonl") else {
            return Ok(To::Jsonl);
        };
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return sink_postgres::PgTarget::parse(text).map(To::Postgres);
            #[cfg(not(feature = "postgres"))]
            return Err(LoadError(
                "--to postgres://...: this build has no PostgreSQL support (cargo feature `postgres`)".into(),
            ));
        }
        if text.starts_with("duckdb:") {
            #[cfg(feature = "duckdb-linked")]
            return sink_duckdb::DuckTarget::parse(text).map(To::DuckDb);
            #[cfg(not(feature = "duckdb-linked"))]
            return Err(LoadError(
                "--to duckdb:...: this build has no DuckDB support (cargo feature `duckdb`)".into(),
            ));
        }
        let shown = if text.contains("://") {
            mask(text)
        } else {
            text.to_owned()
        };
        Err(LoadError(format!(
            "--to {shown}: unknown destination; use postgres://USER@HOST:PORT/DB?schema=SCHEMA, duckdb:PATH, or jsonl"
        )))
    }
}

/// A URL with its password, if any, hidden.
fn mask(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => format!("{}***{}", &text[..s + 3], &text[at..]),
        _ => text.to_owned(),
    }
}

/// Parses `--write-mode` values `stream=mode` (repeatable) and checks the streams exist.
pub fn write_modes(
    values: &[String],
    spec: &connector_spec::Spec,
) -> Result<BTreeMap<String, String>, LoadError> {
    let mut out = BTreeMap::new();
    for v in values {
        let Some((stream, mode)) = v.split_once('=') else {
            return Err(LoadError(format!(
                "--write-mode {v}: expected STREAM=MODE, e.g. orders=append"
            )));
        };
        if !spec.streams.contains_key(stream) {
            return Err(LoadError(format!(
                "--write-mode {v}: no stream named `{stream}` in the spec"
            )));
        }
        // Checked now, so a mode that cannot apply stops the run before any request.
        let s = &spec.streams[stream];
        sink_sql::mode_for(stream, s, appends(spec, s), Some(mode))?;
        out.insert(stream.to_owned(), mode.to_owned());
    }
    Ok(out)
}

/// Whether the engine appends a stream (incremental, or under an incremental parent).
fn appends(spec: &connector_spec::Spec, stream: &connector_spec::Stream) -> bool {
    let mut cur = Some(stream);
    for _ in 0..=spec.streams.len() {
        let Some(s) = cur else { break };
        if s.incremental.is_some() {
            return true;
        }
        cur = s.parent.as_ref().and_then(|p| spec.streams.get(&p.stream));
    }
    false
}

#[cfg(all(test, feature = "postgres", feature = "duckdb-linked"))]
mod tests {
    use super::*;

    #[test]
    fn chooses_by_scheme() {
        assert_eq!(To::parse(None).unwrap(), To::Jsonl);
        assert_eq!(To::parse(Some("jsonl")).unwrap(), To::Jsonl);
        assert!(matches!(
            To::parse(Some("duckdb:x.duckdb")).unwrap(),
            To::DuckDb(_)
        ));
        assert!(matches!(
            To::parse(Some("postgres://u@h/db")).unwrap(),
            To::Postgres(_)
        ));
        let e = To::parse(Some("mysql://u:secret@h/db")).unwrap_err();
        assert!(!e.0.contains("secret"), "{e}");
    }
}

#[cfg(any(feature = "postgres", feature = "duckdb-linked"))]
pub mod database;

/// An opened database destination and how logs show it.
pub type Opened = (
    std::sync::Arc<dyn connector_runtime::sink::Destination>,
    String,
);

/// A database destination and how it is shown, or `None` for JSON lines; `--write-mode`
/// values are refused without a database.
pub fn open(
    to: &To,
    connector: &str,
    forced: BTreeMap<String, String>,
    spec: &std::path::Path,
    state_file: bool,
) -> Result<Option<Opened>, LoadError> {
    if state_file && *to != To::Jsonl {
        return Err(LoadError(
            "--state names a JSON state file; a database destination keeps the state in its _runtime_state table: drop --state".into(),
        ));
    }
    if *to == To::Jsonl {
        if !forced.is_empty() {
            return Err(LoadError(
                "--write-mode applies to a database destination (--to duckdb:... or postgres://...)".into(),
            ));
        }
        return Ok(None);
    }
    #[cfg(any(feature = "postgres", feature = "duckdb-linked"))]
    {
        let db = database::DbDestination::open(to, connector, forced, spec)?;
        Ok(db.map(|d| {
            let shown = d.shown().to_owned();
            (
                std::sync::Arc::new(d) as std::sync::Arc<dyn connector_runtime::sink::Destination>,
                shown,
            )
        }))
    }
    #[cfg(not(any(feature = "postgres", feature = "duckdb-linked")))]
    {
        let _ = (connector, spec);
        Ok(None)
    }
}

/// Runs one read-only query on a DuckDB destination (`runtime query`): column names and
/// at most `max_rows` rows, every value as text.
pub fn query(
    to: &str,
    sql: &str,
    max_rows: usize,
) -> Result<(Vec<String>, Vec<Vec<String>>), LoadError> {
    match To::parse(Some(to))? {
        #[cfg(feature = "duckdb-linked")]
        To::DuckDb(t) => sink_duckdb::query(&t, sql, max_rows),
        _ => {
            let _ = (sql, max_rows);
            Err(LoadError(
                "runtime query reads DuckDB files (duckdb:PATH) in a build with the `duckdb` feature; for PostgreSQL use psql".into(),
            ))
        }
    }
}
