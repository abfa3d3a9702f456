//! The JSON Schema of the format, generated from the types.
//!
//! The same schema serves editors (through `schemas/connector.schema.json` and the
//! yaml-language-server modeline) and the loader's schema layer, so what an editor
//! underlines and what `runtime validate` reports cannot drift apart.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::model::Spec;

/// The schema as a JSON value (draft 2020-12).
pub fn schema() -> Value {
    let mut schema = schemars::schema_for!(Spec).to_value();
    tidy(&mut schema);
    schema
}

/// The schema as pretty JSON with a trailing newline, as checked in at `schemas/connector.schema.json`.
pub fn schema_json() -> String {
    let mut s = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    s.push('\n');
    s
}

/// The compiled validator of [`schema`], built once per process.
pub(crate) fn validator() -> Result<&'static (Value, jsonschema::Validator), String> {
    static VALIDATOR: OnceLock<Result<(Value, jsonschema::Validator), String>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            let schema = schema();
            jsonschema::validator_for(&schema)
                .map(|v| (schema, v))
                .map_err(|e| format!("internal error: the connector schema does not compile: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Rewrites what schemars emits into what a spec author should see.
///
/// - `Option<T>` fields come out as "T or null"; a spec never needs to write `null`
///   (leaving the field out means the same), and the extra `anyOf` branch would turn
///   every error inside the field into an unreadable "not valid under any of" error.
/// - Unsigned integers get their `maximum`, so an overflow is a schema error with a
///   position, not a late deserialization error.
fn tidy(value: &mut Value) {
    match value {
        Value::Object(map) => {
            drop_null_branch(map);
            add_integer_maximum(map);
            for v in map.values_mut() {
                tidy(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

fn drop_null_branch(map: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = map.get_mut("type")
        && types.len() > 1
    {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            map.insert("type".into(), only);
        }
    }
    let is_null = |v: &Value| v.get("type").is_some_and(|t| t == "null");
    let Some(Value::Array(branches)) = map.get("anyOf") else {
        return;
    };
    if branches.len() != 2 || !branches.iter().any(is_null) {
        return;
    }
    let Some(Value::Object(kept)) = branches.iter().find(|b| !is_null(b)).cloned() else {
        return;
    };
    map.remove("anyOf");
    for (k, v) in kept {
        // The field's own description and default win over the referenced type's.
        map.entry(k).or_insert(v);
    }
}

fn add_integer_maximum(map: &mut Map<String, Value>) {
    let max: Option<u64> = match map.get("format").and_then(Value::as_str) {
        Some("uint8") => Some(u8::MAX.into()),
        Some("uint16") => Some(u16::MAX.into()),
        Some("uint32") => Some(u32::MAX.into()),
        Some("uint64") => Some(u64::MAX),
        _ => None,
    };
    if let Some(max) = max {
        map.entry("maximum").or_insert(Value::from(max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn workspace_file(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(rel)
    }

    #[test]
    fn checked_in_schema_is_current() {
        let path = workspace_file("schemas/connector.schema.json");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == schema_json(),
            "{} is stale; regenerate it with:\n    cargo run -p runtime-cli -- schema > schemas/connector.schema.json",
            path.display()
        );
    }

    #[test]
    fn validator_compiles() {
        assert!(validator().is_ok());
    }

    /// Every subschema that is an object with properties describes each of them and
    /// forbids unknown ones, so editors can complete and underline.
    #[test]
    fn schema_is_editor_friendly() {
        let s = schema();
        let mut problems = Vec::new();
        walk_objects(&s, "", &mut |ptr, obj| {
            if let Some(Value::Object(props)) = obj.get("properties") {
                if obj.get("additionalProperties") != Some(&Value::Bool(false)) {
                    problems.push(format!("{ptr}: additionalProperties is not false"));
                }
                for (name, p) in props {
                    let tag = p.get("const").is_some();
                    if !tag && p.get("description").is_none() {
                        problems.push(format!("{ptr}/properties/{name}: no description"));
                    }
                }
            }
            if obj.get("anyOf").is_some_and(|a| {
                a.as_array()
                    .is_some_and(|a| a.iter().any(|b| b.get("type") == Some(&"null".into())))
            }) {
                problems.push(format!("{ptr}: still has a null branch"));
            }
        });
        assert!(problems.is_empty(), "{problems:#?}");
        let defs = &s["$defs"];
        for (def, tag) in [
            ("Auth", "kind"),
            ("Pagination", "kind"),
            ("Signature", "scheme"),
        ] {
            let branches = defs[def]["oneOf"].as_array().cloned().unwrap_or_default();
            assert!(branches.len() > 1, "{def}");
            for b in branches {
                assert!(b["properties"][tag]["const"].is_string(), "{def}: {b}");
                assert!(b["description"].is_string(), "{def}: {b}");
            }
        }
        let types = &defs["ConfigType"]["oneOf"];
        assert_eq!(types.as_array().map(Vec::len), Some(7));
        assert_eq!(s["properties"]["version"]["maximum"], 1);
        assert_eq!(
            defs["Stream"]["properties"]["incremental"]["$ref"],
            "#/$defs/Incremental"
        );
    }

    /// The section of docs/format.md (its `## ` heading) that documents the fields of each
    /// type of the schema (`""`: the top level). A new type with fields needs a row here.
    const SECTIONS: &[(&str, &str)] = &[
        ("", "Top level"),
        ("ConfigDecl", "config"),
        ("Http", "http"),
        ("Auth", "auth"),
        ("Login", "auth"),
        ("RateLimit", "rate_limit"),
        ("Retry", "retry"),
        ("ErrorRule", "errors"),
        ("BodyDetail", "errors"),
        ("HeaderDetail", "errors"),
        ("Stream", "streams"),
        ("Pagination", "pagination"),
        ("PageSize", "pagination"),
        ("Placement", "pagination"),
        ("Incremental", "incremental"),
        ("DateWindows", "incremental"),
        ("Parent", "parent (child streams)"),
        ("PartitionSource", "partitions"),
        ("Webhook", "webhooks"),
        ("Signature", "signature"),
        ("PushTarget", "push"),
        ("Idempotency", "idempotency"),
        ("Step", "transform"),
        ("Defaults", "defaults"),
    ];

    /// The table rows (`` | `name` | ``) of each `## ` section of a document; `###`
    /// subsections belong to the section above them.
    fn rows_by_section(doc: &str) -> std::collections::HashMap<&str, Vec<&str>> {
        let mut sections = std::collections::HashMap::new();
        let mut current = "";
        for line in doc.lines() {
            if let Some(h) = line.strip_prefix("## ") {
                current = h.trim();
            } else if line.starts_with("| `") {
                sections.entry(current).or_insert_with(Vec::new).push(line);
            }
        }
        sections
    }

    /// The fields of each type of `schema`, by type name (`""`: the top level), the
    /// branches of a tagged union together.
    fn fields_by_type(schema: &Value) -> Vec<(String, std::collections::BTreeSet<String>)> {
        let props = |v: &Value| -> std::collections::BTreeSet<String> {
            let mut out = std::collections::BTreeSet::new();
            walk_objects(v, "", &mut |_, obj| {
                if let Some(Value::Object(p)) = obj.get("properties") {
                    out.extend(p.keys().cloned());
                }
            });
            out
        };
        let top: std::collections::BTreeSet<String> = schema["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let mut types = vec![(String::new(), top)];
        if let Some(defs) = schema["$defs"].as_object() {
            for (name, def) in defs {
                let fields = props(def);
                if !fields.is_empty() {
                    types.push((name.clone(), fields));
                }
            }
        }
        types
    }

    /// docs/format.md describes every field in a table row (`` | `name` | ``) of the
    /// section of the type that owns it, so a `header` row under `signature` does not pass
    /// for `idempotency.header`; and it mentions every allowed value (`` `cursor` ``).
    #[test]
    fn format_doc_covers_every_field_where_it_belongs_and_every_value() {
        let path = workspace_file("docs/format.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let sections = rows_by_section(&doc);
        let schema = schema();
        let types = fields_by_type(&schema);
        assert!(
            types.iter().map(|(_, f)| f.len()).sum::<usize>() > 90,
            "{types:?}"
        );
        let mut missing = Vec::new();
        for (ty, fields) in &types {
            let Some((_, section)) = SECTIONS.iter().find(|(t, _)| t == ty) else {
                missing.push(format!(
                    "type `{ty}` is not mapped to a section of docs/format.md (add it to SECTIONS)"
                ));
                continue;
            };
            let rows = sections.get(section).cloned().unwrap_or_default();
            for f in fields {
                if !rows.iter().any(|r| r.starts_with(&format!("| `{f}` |"))) {
                    missing.push(format!("`{f}` of {ty} under \"## {section}\""));
                }
            }
        }
        let mut values = std::collections::BTreeSet::new();
        walk_objects(&schema, "", &mut |_, obj| {
            if let Some(Value::String(c)) = obj.get("const") {
                values.insert(c.clone());
            }
        });
        let missing_values: Vec<&String> = values
            .iter()
            .filter(|v| !doc.contains(&format!("`{v}`")))
            .collect();
        assert!(
            missing.is_empty() && missing_values.is_empty(),
            "{} does not describe these fields in their own section (as a table row starting with | `name` |): {missing:#?}; \
             nor mention these values: {missing_values:?}",
            path.display()
        );
    }

    #[test]
    fn sections_hold_their_own_rows_only() {
        let doc = "## a\n| `x` | 1 |\n### sub\n| `y` | 2 |\n## b\n| `x` | 3 |\n";
        let s = rows_by_section(doc);
        assert_eq!(s["a"], vec!["| `x` | 1 |", "| `y` | 2 |"]);
        assert_eq!(s["b"], vec!["| `x` | 3 |"]);
    }

    pub(crate) fn walk_objects(v: &Value, ptr: &str, f: &mut dyn FnMut(&str, &Map<String, Value>)) {
        match v {
            Value::Object(m) => {
                f(ptr, m);
                for (k, c) in m {
                    walk_objects(c, &format!("{ptr}/{k}"), f);
                }
            }
            Value::Array(items) => {
                for (i, c) in items.iter().enumerate() {
                    walk_objects(c, &format!("{ptr}/{i}"), f);
                }
            }
            _ => {}
        }
    }
}
