//! The statements of one publishing transaction, the same in every database but for the
//! words a [`Dialect`] supplies: the target evolved or created, the staged rows moved in
//! (or, for replace, the new table swapped in), the stream's state saved beside them.

use crate::sql::{Dialect, Mode};
use crate::table::{Table, quote};

/// One stream's target table as its loader knows it between publishes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The table's bare name (the replace swap renames the staging table to it).
    pub table: String,
    /// The table, qualified and quoted.
    pub target: String,
    /// The staging table, qualified and quoted.
    pub stage: String,
    /// The state table, qualified and quoted.
    pub state_table: String,
    /// How staged rows meet the table's rows.
    pub mode: Mode,
    /// The primary key constraint's name (PostgreSQL names it; DuckDB does not).
    pub key_name: String,
    /// The target's data columns as of the last publish.
    pub cols: Table,
    /// Whether the target exists.
    pub exists: bool,
    /// The connector, the stream and the run: the state row's key and load id.
    pub connector: String,
    /// The stream.
    pub stream: String,
    /// The run's load id.
    pub load_id: String,
    /// Rows staged since the last publish.
    pub staged: u64,
}

impl Target {
    /// Whether the stream replaces its table.
    pub fn is_replace(&self) -> bool {
        self.mode == Mode::Replace
    }

    /// The target table, created with the columns known by then, so the key columns
    /// exist and have their types.
    pub fn create(&self, sql: Dialect, model: &Table) -> String {
        let key = match &self.mode {
            Mode::Merge { key, .. } => Some((key.as_slice(), self.key_name.as_str())),
            _ => None,
        };
        sql.create_table(&self.target, model, key, false)
    }

    /// The statements of one publishing transaction (empty: nothing to do).
    pub fn statements(
        &self,
        sql: Dialect,
        model: &Table,
        state: Option<&str>,
        finish: bool,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if self.is_replace() {
            if !finish {
                return out;
            }
            // The swap: the old table stays readable until this commits.
            out.push(format!("DROP TABLE IF EXISTS {}", self.target));
            out.push(format!(
                "ALTER TABLE {} RENAME TO {}",
                self.stage,
                quote(&self.table)
            ));
        } else {
            if self.exists {
                out.extend(sql.alter(&self.target, &model.diff(&self.cols)));
            } else {
                out.push(self.create(sql, model));
            }
            if self.staged > 0 {
                out.push(sql.publish(&self.target, &self.stage, model, &self.mode));
                out.push(sql.clear(&self.stage));
            }
            if finish {
                out.push(format!("DROP TABLE IF EXISTS {}", self.stage));
            }
        }
        if let Some(s) = state {
            out.push(sql.save_state(
                &self.state_table,
                &self.connector,
                &self.stream,
                s,
                &self.load_id,
            ));
        }
        out
    }

    /// Records a committed publish: the target now has the model's columns.
    pub fn published(&mut self, model: &Table) {
        self.cols = model.clone();
        self.exists = true;
        self.staged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;
    use crate::types::SqlType;

    fn target(mode: Mode) -> Target {
        Target {
            table: "o".into(),
            target: "\"s\".\"o\"".into(),
            stage: "\"s\".\"st\"".into(),
            state_table: "\"s\".\"_runtime_state\"".into(),
            mode,
            key_name: "o_key".into(),
            cols: Table::default(),
            exists: false,
            connector: "c".into(),
            stream: "o".into(),
            load_id: "l".into(),
            staged: 0,
        }
    }

    #[test]
    fn one_transaction_per_mode() {
        let model = Table::new(vec![Column {
            name: "id".into(),
            ty: SqlType::BigInt,
        }]);
        let mut t = target(Mode::Replace);
        assert!(
            t.statements(Dialect::Postgres, &model, None, false)
                .is_empty()
        );
        let swap = t.statements(Dialect::Postgres, &model, Some("{}"), true);
        assert_eq!(swap.len(), 3, "{swap:?}");
        assert!(swap[1].contains("RENAME TO \"o\""), "{swap:?}");

        t = target(Mode::Append);
        t.staged = 2;
        let first = t.statements(Dialect::DuckDb, &model, Some("{}"), true);
        assert!(first[0].starts_with("CREATE TABLE"), "{first:?}");
        assert!(first[1].starts_with("INSERT INTO"), "{first:?}");
        assert!(first[2].starts_with("DELETE FROM"), "{first:?}");
        assert!(first[3].starts_with("DROP TABLE"), "{first:?}");
        assert!(first[4].contains("_runtime_state"), "{first:?}");
        t.published(&model);
        assert!(
            t.statements(Dialect::Postgres, &model, None, false)
                .is_empty()
        );
    }
}
