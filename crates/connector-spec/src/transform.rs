//! Record transformations: a stream's `transform:` list (and the connector-wide
//! `defaults.transform`), applied in the written order to every record before the
//! incremental window, the filter, dedup and output.
//!
//! Each step is a one-key mapping, e.g.
//!
//! ```yaml
//! transform:
//!   - lift: properties
//!   - add: { name: "{{ record.first ~ ' ' ~ record.last }}", total: "{{ record.qty * record.price }}" }
//!   - rename: { createdAt: created_at }
//!   - remove: [archived, meta.etag]
//!   - keep: [id, name, total, created_at]
//! ```
//!
//! Field paths are dotted names (`properties.email`): each segment names a field of an
//! object, so a field whose name holds a `.` cannot be addressed.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::template::Template;

/// One step of a `transform:` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Adds or replaces fields: field path -> template over `record` (and `config`,
    /// `parent`, `page`, `incremental`); a template that is one `{{ expression }}` keeps
    /// the expression's JSON type. Every field of one `add` reads the record as it was
    /// before the step.
    Add(
        #[schemars(
            description = "Adds or replaces fields: field path -> template over record (and config, parent, page, incremental); one {{ expression }} keeps its JSON type."
        )]
        IndexMap<String, Template>,
    ),
    /// Removes fields, nested ones included: a path or a list of paths; a missing field is
    /// no error.
    Remove(#[schemars(description = "Removes fields, nested ones included (dotted paths).")] Paths),
    /// Renames (or moves) fields: old path -> new path; the field keeps its place when both
    /// are top-level names; a missing field is no error.
    Rename(
        #[schemars(description = "Renames or moves fields: old path -> new path.")]
        IndexMap<String, String>,
    ),
    /// Moves the fields of nested objects to the top level, in the object's place; a field
    /// the record already has at the top level keeps its value. A missing or null object
    /// is no error.
    Lift(
        #[schemars(
            description = "Moves the fields of nested objects to the top level, in the object's place."
        )]
        Paths,
    ),
    /// Keeps only these fields (paths), in the order listed.
    Keep(#[schemars(description = "Keeps only these fields, in the order listed.")] Paths),
}

impl Step {
    /// The step's key as written in the spec.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Add(_) => "add",
            Step::Remove(_) => "remove",
            Step::Rename(_) => "rename",
            Step::Lift(_) => "lift",
            Step::Keep(_) => "keep",
        }
    }
}

/// The step kinds, for did-you-mean suggestions.
pub const STEP_KINDS: [&str; 5] = ["add", "remove", "rename", "lift", "keep"];

/// One field path or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Paths {
    /// One path, e.g. `properties`.
    One(String),
    /// Several paths, e.g. `[archived, meta.etag]`.
    Many(Vec<String>),
}

impl Paths {
    /// The paths, in order.
    pub fn list(&self) -> Vec<&str> {
        match self {
            Paths::One(p) => vec![p.as_str()],
            Paths::Many(ps) => ps.iter().map(String::as_str).collect(),
        }
    }
}

/// Settings every stream inherits unless it sets its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Transformations of every stream without a `transform` of its own (`transform: []`
    /// opts a stream out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transform: Vec<Step>,
}

/// What is wrong with a field path, if anything: empty, or with an empty segment.
pub fn path_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("a field path is empty".into());
    }
    if path.starts_with('$') {
        return Some(format!(
            "`{path}` looks like a JSONPath; a transform names fields with dotted paths such as `properties.email`"
        ));
    }
    if path.split('.').any(str::is_empty) {
        return Some(format!(
            "`{path}` has an empty segment; write names separated by single dots, e.g. `properties.email`"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_as_one_key_mappings() {
        let yaml = r#"[{"lift": "properties"}, {"remove": ["a", "b.c"]}, {"add": {"n": "{{ record.x }}"}}, {"rename": {"a": "b"}}, {"keep": "id"}]"#;
        let steps: Vec<Step> = serde_json::from_str(yaml).unwrap();
        let kinds: Vec<&str> = steps.iter().map(Step::kind).collect();
        assert_eq!(kinds, ["lift", "remove", "add", "rename", "keep"]);
        assert_eq!(
            steps[1],
            Step::Remove(Paths::Many(vec!["a".into(), "b.c".into()]))
        );
        assert!(serde_json::from_str::<Vec<Step>>(r#"[{"lfit": "x"}]"#).is_err());
    }

    #[test]
    fn paths_are_checked() {
        assert!(path_problem("a.b").is_none());
        assert!(path_problem("").is_some());
        assert!(path_problem("a..b").unwrap().contains("empty segment"));
        assert!(path_problem("$.a").unwrap().contains("JSONPath"));
    }
}
