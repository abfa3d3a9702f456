//! The columns of one stream's table: names from field names, types from the declared
//! schema and the records, and the changes a batch of records asks for.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::types::{Shape, SqlType};

/// Longest identifier, in bytes (PostgreSQL's limit; DuckDB has none).
pub const IDENT_MAX: usize = 63;

/// The load id column: which run wrote the row.
pub const LOAD_ID: &str = "_load_id";
/// The extraction time column: when the runtime received the row's page.
pub const EXTRACTED_AT: &str = "_extracted_at";
/// The staging table's arrival order, so the last version of a key in a batch wins.
pub const ROW: &str = "_row";

/// The column name of a record field: the field name itself when it is a usable
/// identifier, otherwise a cleaned prefix plus a stable hash of the full name (so two
/// long names that share a prefix never land in one column).
pub fn column_name(field: &str) -> String {
    let usable = !field.is_empty()
        && field.len() <= IDENT_MAX
        && !field.chars().any(char::is_control)
        && !field.starts_with("_runtime")
        && ![LOAD_ID, EXTRACTED_AT, ROW].contains(&field);
    if usable {
        return field.to_owned();
    }
    hashed(field, "f")
}

/// A name of at most [`IDENT_MAX`] bytes: `name` itself when short enough, otherwise its
/// start and a hash of the whole.
pub fn short_name(name: &str) -> String {
    if name.len() <= IDENT_MAX && !name.is_empty() {
        return name.to_owned();
    }
    hashed(name, "t")
}

fn hashed(name: &str, empty: &str) -> String {
    let mut clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(IDENT_MAX - 18)
        .collect();
    if clean.is_empty() {
        clean.push_str(empty);
    }
    format!("{clean}_{:016x}", fnv1a(name.as_bytes()))
}

/// FNV-1a: stable across builds and platforms, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An identifier quoted for SQL (both databases use double quotes).
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A string literal for SQL.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One data column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Its type; `None` while only nulls were seen (created as text only if it must be).
    pub ty: SqlType,
}

/// What a batch asks of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A field not seen before.
    Add(Column),
    /// A field whose values no longer fit its column.
    Widen {
        /// The column.
        name: String,
        /// Its type until now.
        from: SqlType,
        /// Its new type.
        to: SqlType,
    },
}

/// The data columns of a table, in order, with each field's column.
#[derive(Debug, Clone, Default)]
pub struct Table {
    columns: Vec<Column>,
    index: HashMap<String, usize>,
    names: HashMap<String, String>,
    fields: HashMap<String, usize>,
}

impl Table {
    /// A table with the given columns (read from the database, or declared).
    pub fn new(columns: Vec<Column>) -> Self {
        let mut t = Self::default();
        for c in columns {
            t.push(c);
        }
        t
    }

    /// The columns a declared JSON schema gives (`properties` with a usable `type`).
    pub fn from_schema(schema: Option<&Value>) -> Self {
        let props = schema
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object);
        let columns = props
            .into_iter()
            .flatten()
            .filter_map(|(field, s)| {
                SqlType::from_schema(s).map(|ty| Column {
                    name: column_name(field),
                    ty,
                })
            })
            .collect();
        Self::new(columns)
    }

    fn push(&mut self, c: Column) {
        self.index.insert(c.name.clone(), self.columns.len());
        self.columns.push(c);
    }

    /// The columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// A column by name.
    pub fn get(&self, name: &str) -> Option<&Column> {
        self.index.get(name).map(|&i| &self.columns[i])
    }

    /// The column of a field (cached: most batches repeat the same fields).
    pub fn column_of(&mut self, field: &str) -> String {
        if let Some(n) = self.names.get(field) {
            return n.clone();
        }
        let n = column_name(field);
        self.names.insert(field.to_owned(), n.clone());
        n
    }

    /// The changes the records need, applied to this model. New columns come in the
    /// order fields first appear; a field seen only as null gets no column yet.
    pub fn plan(&mut self, records: &[Map<String, Value>]) -> Vec<Change> {
        let mut changes = Vec::new();
        for r in records {
            for (field, v) in r {
                self.place(field, Shape::of(v), &mut changes);
            }
        }
        changes
    }

    /// The column of a field whose value has `shape`, after adding or widening it as the
    /// value needs (the change goes in `changes`, merged with one for the same column);
    /// `None` while the field has been seen only as null.
    pub fn place(&mut self, field: &str, shape: Shape, changes: &mut Vec<Change>) -> Option<usize> {
        // The common case, without allocating: a known field whose column fits.
        if let Some(&i) = self.fields.get(field)
            && self.columns[i].ty.fits(shape)
        {
            return Some(i);
        }
        let ty_of_value = shape.ty?;
        let name = self.column_of(field);
        match self.index.get(&name).map(|&i| self.columns[i].ty) {
            Some(ty) if ty.fits(shape) => {}
            Some(ty) => {
                let to = ty.widen(ty_of_value);
                if let Some(&i) = self.index.get(&name) {
                    self.columns[i].ty = to;
                }
                match changes.iter_mut().find(|c| {
                    matches!(c, Change::Widen { name: n, .. } | Change::Add(Column { name: n, .. }) if *n == name)
                }) {
                    Some(Change::Widen { to: t, .. }) => *t = to,
                    Some(Change::Add(c)) => c.ty = to,
                    None => changes.push(Change::Widen {
                        name: name.clone(),
                        from: ty,
                        to,
                    }),
                }
            }
            None => {
                let c = Column {
                    name: name.clone(),
                    ty: ty_of_value,
                };
                changes.push(Change::Add(c.clone()));
                self.push(c);
            }
        }
        let i = *self.index.get(&name)?;
        self.fields.insert(field.to_owned(), i);
        Some(i)
    }

    /// The changes that bring `older` (another table's columns) to this model.
    pub fn diff(&self, older: &Table) -> Vec<Change> {
        self.columns
            .iter()
            .filter_map(|c| match older.get(&c.name) {
                None => Some(Change::Add(c.clone())),
                Some(o) if o.ty != c.ty => Some(Change::Widen {
                    name: c.name.clone(),
                    from: o.ty,
                    to: c.ty,
                }),
                Some(_) => None,
            })
            .collect()
    }

    /// Takes in columns that exist in a physical table but not in the model (an older
    /// run's fields), and widens the model where the table's type is wider.
    pub fn absorb(&mut self, physical: &Table) {
        for c in physical.columns() {
            match self.index.get(&c.name) {
                Some(&i) => {
                    let mine = self.columns[i].ty;
                    self.columns[i].ty = mine.widen(c.ty);
                }
                None => self.push(c.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recs(v: Value) -> Vec<Map<String, Value>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect()
    }

    #[test]
    fn names_are_fields_unless_unusable() {
        assert_eq!(column_name("createdAt"), "createdAt");
        assert_eq!(column_name("a \"b\""), "a \"b\"");
        let long = "x".repeat(80);
        let n = column_name(&long);
        assert!(n.len() <= IDENT_MAX, "{n}");
        assert_ne!(n, column_name(&"x".repeat(81)));
        assert_ne!(column_name("_load_id"), "_load_id");
        assert_ne!(column_name(""), "");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn a_batch_adds_and_widens() {
        let mut t = Table::from_schema(Some(&json!({"properties": {
            "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}})));
        let changes = t.plan(&recs(json!([
            {"id": 1, "at": "2024-01-01T00:00:00Z", "n": 1, "x": null},
            {"id": 2, "at": "soon", "n": 2.5, "o": {"a": 1}}
        ])));
        assert_eq!(
            changes,
            vec![
                Change::Add(Column {
                    name: "n".into(),
                    ty: SqlType::Double
                }),
                Change::Widen {
                    name: "at".into(),
                    from: SqlType::Timestamp,
                    to: SqlType::Text
                },
                Change::Add(Column {
                    name: "o".into(),
                    ty: SqlType::Json
                }),
            ]
        );
        assert_eq!(t.get("id").unwrap().ty, SqlType::BigInt);
        assert!(t.get("x").is_none(), "only nulls: no column yet");
        let old = Table::new(vec![Column {
            name: "id".into(),
            ty: SqlType::BigInt,
        }]);
        assert_eq!(t.diff(&old).len(), 3);
    }
}
