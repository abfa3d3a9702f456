//! PostgreSQL's merge transaction, cheaper than the shared one where it can be. A table
//! the checkpoint creates is filled with one plain `INSERT` of each key's newest staged
//! version and keyed afterwards (one index build instead of a speculative insertion per
//! row, which cost three WAL records a row); an existing table gets a `MERGE` on
//! PostgreSQL 15 or later (a join, and a plain insert for a new key), and
//! `INSERT ... ON CONFLICT` before. Newest wins the same way in all three.

use sink_sql::sql::merge_into;
use sink_sql::table::{EXTRACTED_AT, LOAD_ID, ROW, quote};
use sink_sql::{Dialect, Mode, Table, Target};

const SQL: Dialect = Dialect::Postgres;

/// The statements of one publishing transaction (empty: nothing to do).
pub(crate) fn statements(
    t: &Target,
    model: &Table,
    state: Option<&str>,
    finish: bool,
    merge_command: bool,
) -> Vec<String> {
    let Mode::Merge { key, cursor } = &t.mode else {
        return t.statements(SQL, model, state, finish);
    };
    if t.staged == 0 {
        return t.statements(SQL, model, state, finish);
    }
    let names = names(model);
    let latest = latest(&t.stage, &names, key, cursor.as_deref());
    let mut out = Vec::new();
    if t.exists {
        out.extend(SQL.alter(&t.target, &model.diff(&t.cols)));
        out.push(if merge_command {
            merge_into(&t.target, &latest, key, cursor.as_deref(), &names)
        } else {
            SQL.publish(&t.target, &t.stage, model, &t.mode)
        });
    } else {
        // Created, filled, then keyed: the primary key also makes its columns NOT NULL
        // (a staged row without its key fails the transaction, as an insert would).
        out.push(SQL.create_table(&t.target, model, None, false));
        out.push(format!(
            "INSERT INTO {} ({}) {latest}",
            t.target,
            names.join(", ")
        ));
        out.push(format!(
            "ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})",
            t.target,
            quote(&t.key_name),
            sink_sql::sql::list(key)
        ));
    }
    out.push(SQL.clear(&t.stage));
    if finish {
        out.push(format!("DROP TABLE IF EXISTS {}", t.stage));
    }
    if let Some(s) = state {
        out.push(SQL.save_state(&t.state_table, &t.connector, &t.stream, s, &t.load_id));
    }
    out
}

/// The target's columns, quoted: the model's, then the load metadata.
fn names(model: &Table) -> Vec<String> {
    let mut names: Vec<String> = model.columns().iter().map(|c| quote(&c.name)).collect();
    names.push(quote(LOAD_ID));
    names.push(quote(EXTRACTED_AT));
    names
}

/// The newest staged version of each key: highest cursor, then the last read.
fn latest(stage: &str, names: &[String], key: &[String], cursor: Option<&str>) -> String {
    let keys = sink_sql::sql::list(key);
    let order = match cursor {
        Some(c) => format!("{keys}, {} DESC NULLS LAST, {} DESC", quote(c), quote(ROW)),
        None => format!("{keys}, {} DESC", quote(ROW)),
    };
    format!(
        "SELECT DISTINCT ON ({keys}) {} FROM {stage} ORDER BY {order}",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sink_sql::{Column, SqlType};

    fn target(exists: bool) -> Target {
        Target {
            table: "o".into(),
            target: "\"s\".\"o\"".into(),
            stage: "pg_temp.\"st\"".into(),
            state_table: "\"s\".\"_runtime_state\"".into(),
            mode: Mode::Merge {
                key: vec!["id".into()],
                cursor: Some("at".into()),
            },
            key_name: "o_runtime_key".into(),
            cols: Table::default(),
            exists,
            connector: "c".into(),
            stream: "o".into(),
            load_id: "l".into(),
            staged: 3,
        }
    }

    fn model() -> Table {
        Table::new(vec![
            Column {
                name: "id".into(),
                ty: SqlType::BigInt,
            },
            Column {
                name: "at".into(),
                ty: SqlType::Timestamp,
            },
        ])
    }

    #[test]
    fn a_new_table_is_keyed_after_it_is_filled() {
        let sql = statements(&target(false), &model(), Some("{}"), true, true);
        assert!(sql[0].starts_with("CREATE TABLE"), "{sql:?}");
        assert!(!sql[0].contains("PRIMARY KEY"), "{sql:?}");
        assert!(
            sql[1].starts_with("INSERT INTO \"s\".\"o\" (\"id\", \"at\", \"_load_id\", \"_extracted_at\") SELECT DISTINCT ON (\"id\")"),
            "{sql:?}"
        );
        assert!(
            sql[1].ends_with("ORDER BY \"id\", \"at\" DESC NULLS LAST, \"_row\" DESC"),
            "{sql:?}"
        );
        assert!(!sql[1].contains("ON CONFLICT"), "{sql:?}");
        assert_eq!(
            sql[2],
            "ALTER TABLE \"s\".\"o\" ADD CONSTRAINT \"o_runtime_key\" PRIMARY KEY (\"id\")"
        );
        assert!(sql[3].starts_with("TRUNCATE"), "{sql:?}");
        assert!(sql[4].starts_with("DROP TABLE"), "{sql:?}");
        assert!(sql[5].contains("_runtime_state"), "{sql:?}");
    }

    #[test]
    fn an_existing_table_merges_and_newest_wins() {
        let mut t = target(true);
        t.cols = model();
        let sql = statements(&t, &model(), None, false, true);
        assert_eq!(sql.len(), 2, "{sql:?}");
        assert!(
            sql[0].starts_with("MERGE INTO \"s\".\"o\" AS t USING (SELECT DISTINCT ON (\"id\")"),
            "{sql:?}"
        );
        assert!(
            sql[0].contains(" ON (t.\"id\" = s.\"id\") WHEN MATCHED AND (t.\"at\" IS NULL OR s.\"at\" >= t.\"at\") THEN UPDATE SET \"at\" = s.\"at\", "),
            "{sql:?}"
        );
        assert!(sql[0].ends_with("WHEN NOT MATCHED THEN INSERT (\"id\", \"at\", \"_load_id\", \"_extracted_at\") VALUES (s.\"id\", s.\"at\", s.\"_load_id\", s.\"_extracted_at\")"), "{sql:?}");
        // Before PostgreSQL 15: the shared upsert.
        let sql = statements(&t, &model(), None, false, false);
        assert!(sql[0].contains("ON CONFLICT (\"id\") DO UPDATE"), "{sql:?}");
        // Nothing staged: the shared statements (the table created with its key).
        let mut t = target(false);
        t.staged = 0;
        let sql = statements(&t, &model(), Some("{}"), false, true);
        assert!(sql[0].contains("PRIMARY KEY"), "{sql:?}");
    }
}
