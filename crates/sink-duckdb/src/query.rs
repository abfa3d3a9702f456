//! `runtime query`: one read-only query on a DuckDB file, every value as text.

use duckdb::Connection;
use sink_sql::LoadError;

use crate::{DuckTarget, load};

/// A query's column names and rows, every value as text (NULL as an empty string).
pub type QueryResult = (Vec<String>, Vec<Vec<String>>);

/// Runs one read-only query on a DuckDB file, for `runtime query`; at most `max_rows` rows.
pub fn query(target: &DuckTarget, sql: &str, max_rows: usize) -> Result<QueryResult, LoadError> {
    let shown = target.shown();
    let err = |e: duckdb::Error| load::db_err(&shown, &e);
    if !target.path.is_file() {
        return Err(LoadError(format!("{shown}: no such file")));
    }
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .map_err(err)?;
    let conn = Connection::open_with_flags(&target.path, config).map_err(err)?;
    conn.execute_batch(&format!(
        "SET search_path = {}",
        sink_sql::table::literal(&target.schema)
    ))
    .map_err(err)?;
    let mut stmt = conn.prepare(sql).map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    let names: Vec<String> = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(err)? {
        if out.len() >= max_rows {
            break;
        }
        let cells = (0..names.len())
            .map(|i| row.get::<_, duckdb::types::Value>(i).map(|v| show(&v)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        out.push(cells);
    }
    Ok((names, out))
}

/// A value as a person reads it.
fn show(v: &duckdb::types::Value) -> String {
    use duckdb::types::{TimeUnit, Value as V};
    match v {
        V::Null => String::new(),
        V::Boolean(b) => b.to_string(),
        V::TinyInt(i) => i.to_string(),
        V::SmallInt(i) => i.to_string(),
        V::Int(i) => i.to_string(),
        V::BigInt(i) => i.to_string(),
        V::HugeInt(i) => i.to_string(),
        V::UTinyInt(i) => i.to_string(),
        V::USmallInt(i) => i.to_string(),
        V::UInt(i) => i.to_string(),
        V::UBigInt(i) => i.to_string(),
        V::Float(f) => f.to_string(),
        V::Double(f) => f.to_string(),
        V::Text(s) => s.clone(),
        V::Timestamp(unit, n) => {
            let nanos = match unit {
                TimeUnit::Second => i128::from(*n) * 1_000_000_000,
                TimeUnit::Millisecond => i128::from(*n) * 1_000_000,
                TimeUnit::Microsecond => i128::from(*n) * 1_000,
                TimeUnit::Nanosecond => i128::from(*n),
            };
            sink_sql_time(nanos)
        }
        other => format!("{other:?}"),
    }
}

fn sink_sql_time(nanos: i128) -> String {
    std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_nanos(nanos.max(0) as u64))
        .map(|t| {
            let secs = t
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format_utc(secs)
        })
        .unwrap_or_default()
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) from Unix seconds; civil-from-days, no crate needed.
fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
