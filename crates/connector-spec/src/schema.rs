//! The JSON Schema of the format, generated from the types.

use crate::model::Spec;

/// The schema as a JSON value (draft 2020-12).
pub fn schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Spec);
    schema.to_value()
}

/// The schema as pretty JSON with a trailing newline, as checked in at `schemas/connector.schema.json`.
pub fn schema_json() -> String {
    let mut s = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    s.push('\n');
    s
}
