//! The SQL both databases run: DDL for the model's columns, and the one statement that
//! moves a staging table's rows into the target for each write mode.

use crate::table::{Change, Column, EXTRACTED_AT, LOAD_ID, ROW, Table, literal, quote};
use crate::types::SqlType;

/// The database the SQL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL 12 or later.
    Postgres,
    /// DuckDB 1.x.
    DuckDb,
}

/// How a stream's rows meet the rows already in its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Every run's rows are added.
    Append,
    /// The run's rows replace the table, swapped in when the stream completes.
    Replace,
    /// Upsert by primary key; with a cursor column, a row never replaces a newer one.
    Merge {
        /// Primary key columns.
        key: Vec<String>,
        /// The cursor column, when the cursor is a top-level field.
        cursor: Option<String>,
    },
}

impl Mode {
    /// The mode's name, as `--write-mode` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Append => "append",
            Mode::Replace => "replace",
            Mode::Merge { .. } => "merge",
        }
    }
}

impl Dialect {
    /// The database's name for a column type.
    pub fn type_name(self, ty: SqlType) -> &'static str {
        match (self, ty) {
            (_, SqlType::BigInt) => "bigint",
            (_, SqlType::Double) => "double precision",
            (_, SqlType::Boolean) => "boolean",
            (_, SqlType::Timestamp) => "timestamptz",
            (_, SqlType::Text) => "text",
            (Dialect::Postgres, SqlType::Json) => "jsonb",
            (Dialect::DuckDb, SqlType::Json) => "json",
        }
    }

    /// An existing table's data columns from the catalog's `(name, type)` rows, in order:
    /// the metadata columns left out, and a column someone changed to a type of their own
    /// read as text (written as text, cast by the database).
    pub fn catalog_table(self, rows: impl IntoIterator<Item = (String, String)>) -> Table {
        Table::new(
            rows.into_iter()
                .filter(|(name, _)| ![LOAD_ID, EXTRACTED_AT, ROW].contains(&name.as_str()))
                .map(|(name, ty)| Column {
                    ty: self.parse_type(&ty).unwrap_or(SqlType::Text),
                    name,
                })
                .collect(),
        )
    }

    /// The column type a catalog reports, back in the model (`None`: not one of ours).
    pub fn parse_type(self, name: &str) -> Option<SqlType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "bigint" | "int8" | "integer" | "int4" | "int" | "smallint" | "hugeint" => {
                SqlType::BigInt
            }
            "double precision" | "double" | "float8" | "real" | "float" | "float4" | "numeric" => {
                SqlType::Double
            }
            "boolean" | "bool" => SqlType::Boolean,
            "timestamp with time zone" | "timestamptz" => SqlType::Timestamp,
            "text" | "varchar" | "character varying" => SqlType::Text,
            "jsonb" | "json" => SqlType::Json,
            _ => return None,
        })
    }

    /// `CREATE TABLE` for the model's columns plus the load metadata (and `_row` for a
    /// staging table); a primary key when given.
    pub fn create_table(
        self,
        table: &str,
        model: &Table,
        key: Option<(&[String], &str)>,
        staging: bool,
    ) -> String {
        let (key, key_name) = match key {
            Some((k, n)) if !k.is_empty() => (Some(k), n),
            _ => (None, ""),
        };
        let mut cols: Vec<String> = model
            .columns()
            .iter()
            .map(|c| self.column_def(c, key))
            .collect();
        cols.push(format!("{} text", quote(LOAD_ID)));
        cols.push(format!("{} timestamptz", quote(EXTRACTED_AT)));
        if staging {
            cols.push(format!("{} bigint", quote(ROW)));
        }
        // DuckDB gets no key: its indexes forbid ALTER TABLE (schema evolution) and
        // cannot be dropped; its merge is a MERGE INTO, which needs none.
        if let (Some(k), Dialect::Postgres) = (key, self) {
            cols.push(format!(
                "CONSTRAINT {} PRIMARY KEY ({})",
                quote(key_name),
                list(k)
            ));
        }
        format!("CREATE TABLE IF NOT EXISTS {table} ({})", cols.join(", "))
    }

    fn column_def(self, c: &Column, key: Option<&[String]>) -> String {
        let not_null = key.is_some_and(|k| k.contains(&c.name));
        format!(
            "{} {}{}",
            quote(&c.name),
            self.type_name(c.ty),
            if not_null { " NOT NULL" } else { "" }
        )
    }

    /// The statements that apply changes to a table.
    pub fn alter(self, table: &str, changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::Add(col) => format!(
                    "ALTER TABLE {table} ADD COLUMN {} {}",
                    quote(&col.name),
                    self.type_name(col.ty)
                ),
                Change::Widen { name, to, .. } => {
                    let c = quote(name);
                    let ty = self.type_name(*to);
                    let using = match (self, to) {
                        (Dialect::Postgres, SqlType::Json) => format!("to_jsonb({c})"),
                        (Dialect::DuckDb, SqlType::Json) => format!("to_json({c})"),
                        _ => format!("CAST({c} AS {ty})"),
                    };
                    match self {
                        Dialect::Postgres => {
                            format!("ALTER TABLE {table} ALTER COLUMN {c} TYPE {ty} USING {using}")
                        }
                        Dialect::DuckDb => {
                            format!(
                                "ALTER TABLE {table} ALTER {c} SET DATA TYPE {ty} USING {using}"
                            )
                        }
                    }
                }
            })
            .collect()
    }

    /// The statement that moves the staged rows into the target (append or merge).
    pub fn publish(self, target: &str, stage: &str, model: &Table, mode: &Mode) -> String {
        let mut names: Vec<String> = model.columns().iter().map(|c| quote(&c.name)).collect();
        names.push(quote(LOAD_ID));
        names.push(quote(EXTRACTED_AT));
        let cols = names.join(", ");
        let Mode::Merge { key, cursor } = mode else {
            return format!(
                "INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} ORDER BY {}",
                quote(ROW)
            );
        };
        let keys = list(key);
        // The newest version of each key in the batch: highest cursor, then the last read.
        let order = match cursor {
            Some(c) => format!("{keys}, {} DESC NULLS LAST, {} DESC", quote(c), quote(ROW)),
            None => format!("{keys}, {} DESC", quote(ROW)),
        };
        let latest = format!("SELECT DISTINCT ON ({keys}) {cols} FROM {stage} ORDER BY {order}");
        if self == Dialect::DuckDb {
            return merge_into(target, &latest, key, cursor.as_deref(), &names);
        }
        let set = names
            .iter()
            .filter(|n| !key.iter().any(|k| quote(k) == **n))
            .map(|n| format!("{n} = excluded.{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        // An older version (a lookback window re-reading a record) never overwrites a newer one.
        let newer = match cursor {
            Some(c) => {
                let c = quote(c);
                format!(" WHERE t.{c} IS NULL OR excluded.{c} >= t.{c}")
            }
            None => String::new(),
        };
        format!(
            "INSERT INTO {target} AS t ({cols}) {latest} ON CONFLICT ({keys}) DO UPDATE SET {set}{newer}"
        )
    }

    /// Empties the staging table after its rows moved in (inside the transaction).
    pub fn clear(self, stage: &str) -> String {
        match self {
            Dialect::Postgres => format!("TRUNCATE {stage}"),
            Dialect::DuckDb => format!("DELETE FROM {stage}"),
        }
    }

    /// `CREATE TABLE` of the state table: one row per connector and stream.
    pub fn create_state(self, table: &str) -> String {
        let json = self.type_name(SqlType::Json);
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (connector text NOT NULL, stream text NOT NULL, state {json} NOT NULL, saved_at timestamptz NOT NULL, load_id text NOT NULL, PRIMARY KEY (connector, stream))"
        )
    }

    /// Saves a stream's state (one row, replaced).
    pub fn save_state(
        self,
        table: &str,
        connector: &str,
        stream: &str,
        state: &str,
        load_id: &str,
    ) -> String {
        let json = self.type_name(SqlType::Json);
        format!(
            "INSERT INTO {table} (connector, stream, state, saved_at, load_id) VALUES ({}, {}, CAST({} AS {json}), now(), {}) ON CONFLICT (connector, stream) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at, load_id = excluded.load_id",
            literal(connector),
            literal(stream),
            literal(state),
            literal(load_id)
        )
    }
}

/// The SQL-standard `MERGE` of the newest staged version of each key (`latest`, a
/// query) into `target`: a matched row is updated only when the staged version is not
/// older, a new key is inserted. DuckDB's merge (a hash join, no index needed), and
/// PostgreSQL's from version 15. `names` are quoted.
pub fn merge_into(
    target: &str,
    latest: &str,
    key: &[String],
    cursor: Option<&str>,
    names: &[String],
) -> String {
    let on = key
        .iter()
        .map(|k| format!("t.{k} = s.{k}", k = quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let newer = match cursor {
        Some(c) => {
            let c = quote(c);
            format!(" AND (t.{c} IS NULL OR s.{c} >= t.{c})")
        }
        None => String::new(),
    };
    let set = names
        .iter()
        .filter(|n| !key.iter().any(|k| quote(k) == **n))
        .map(|n| format!("{n} = s.{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let values = names
        .iter()
        .map(|n| format!("s.{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "MERGE INTO {target} AS t USING ({latest}) AS s ON ({on}) WHEN MATCHED{newer} THEN UPDATE SET {set} WHEN NOT MATCHED THEN INSERT ({}) VALUES ({values})",
        names.join(", ")
    )
}

/// Quoted, comma-separated names.
pub fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote(n))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_the_newest_version() {
        let model = Table::new(vec![
            Column {
                name: "id".into(),
                ty: SqlType::BigInt,
            },
            Column {
                name: "updated_at".into(),
                ty: SqlType::Timestamp,
            },
        ]);
        let mode = Mode::Merge {
            key: vec!["id".into()],
            cursor: Some("updated_at".into()),
        };
        let sql = Dialect::Postgres.publish("\"raw\".\"o\"", "\"s\"", &model, &mode);
        assert!(sql.contains("DISTINCT ON (\"id\")"), "{sql}");
        assert!(
            sql.contains(
                "ON CONFLICT (\"id\") DO UPDATE SET \"updated_at\" = excluded.\"updated_at\""
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with("excluded.\"updated_at\" >= t.\"updated_at\""),
            "{sql}"
        );
        let key = ["id".to_owned()];
        let create = Dialect::Postgres.create_table("\"o\"", &model, Some((&key, "k")), false);
        assert!(create.contains("\"id\" bigint NOT NULL"), "{create}");
        assert!(create.contains("PRIMARY KEY (\"id\")"), "{create}");
        let create = Dialect::DuckDb.create_table("\"o\"", &model, Some((&key, "k")), false);
        assert!(create.contains("\"id\" bigint NOT NULL"), "{create}");
        assert!(!create.contains("PRIMARY KEY"), "{create}");
        let sql = Dialect::DuckDb.publish("\"o\"", "\"s\"", &model, &mode);
        assert!(
            sql.starts_with("MERGE INTO \"o\" AS t USING (SELECT DISTINCT ON (\"id\")"),
            "{sql}"
        );
        assert!(
            sql.contains("WHEN MATCHED AND (t.\"updated_at\" IS NULL OR s.\"updated_at\" >= t.\"updated_at\") THEN UPDATE SET \"updated_at\" = s.\"updated_at\""),
            "{sql}"
        );
    }
}
