//! What `discover` answers: each stream's schema (declared, or inferred from a sample
//! page), keys, cursor and sync modes, as an Airbyte catalog or a Singer catalog.

use std::path::Path;

use connector_runtime::probe::{Probe, schema_of};
use connector_spec::{Spec, Stream};
use serde_json::{Map, Value, json};

/// One stream as the platforms see it.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The stream's name.
    pub name: String,
    /// Its records' JSON schema.
    pub schema: Value,
    /// Its primary key fields (empty: none).
    pub primary_key: Vec<String>,
    /// Its cursor field, when the stream is incremental itself.
    pub cursor: Option<String>,
    /// Whether a run can fetch only what changed: its own cursor, or an incremental ancestor.
    pub incremental: bool,
}

/// Every stream of `spec`, in spec order, with the schemas of `probes` where none is declared.
pub fn describe(spec_path: &Path, spec: &Spec, probes: &[Probe]) -> Vec<StreamInfo> {
    spec.streams
        .iter()
        .map(|(name, stream)| {
            let sample = probes
                .iter()
                .find(|p| &p.stream == name)
                .map(|p| p.sample.as_slice())
                .unwrap_or(&[]);
            let (mut schema, source) = schema_of(spec_path, stream, sample);
            if source == "inferred" {
                relax(&mut schema);
            }
            StreamInfo {
                name: name.clone(),
                schema: complete_schema(schema, stream),
                primary_key: stream
                    .primary_key
                    .as_ref()
                    .map(|k| k.fields().into_iter().map(str::to_owned).collect())
                    .unwrap_or_default(),
                cursor: stream.incremental.as_ref().map(|i| i.cursor_field.clone()),
                incremental: appends(spec, stream),
            }
        })
        .collect()
}

/// Makes an inferred schema accept what its sample did not show: every value may be
/// null and no property is required (a later page may lack a field the first page had;
/// platforms and Singer targets validate records against this schema).
fn relax(schema: &mut Value) {
    let Value::Object(m) = schema else { return };
    m.remove("required");
    match m.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = std::mem::take(t);
            m.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(ts)) if !ts.iter().any(|t| t == "null") => ts.push(json!("null")),
        _ => {}
    }
    if let Some(Value::Object(props)) = m.get_mut("properties") {
        props.values_mut().for_each(relax);
    }
    if let Some(items) = m.get_mut("items") {
        relax(items);
    }
}

/// Whether the stream, or one of its ancestors, is incremental.
pub fn appends(spec: &Spec, stream: &Stream) -> bool {
    stream.incremental.is_some()
        || spec.ancestors_of(stream).iter().any(|n| {
            spec.streams
                .get(*n)
                .is_some_and(|s| s.incremental.is_some())
        })
}

/// The schema as an object schema that names the key, cursor and copied parent fields
/// (an inferred schema from an empty sample names none of them).
fn complete_schema(schema: Value, stream: &Stream) -> Value {
    let mut schema = match schema {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    // Records are objects, whatever an inferred schema allowed.
    schema.insert("type".into(), json!("object"));
    let props = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(props) = props {
        let mut names: Vec<String> = Vec::new();
        if let Some(pk) = &stream.primary_key {
            names.extend(pk.fields().into_iter().map(str::to_owned));
        }
        if let Some(inc) = &stream.incremental {
            names.extend(cursor_path(&inc.cursor_field).into_iter().take(1));
        }
        if let Some(p) = &stream.parent {
            names.extend(p.include.keys().cloned());
        }
        for n in names {
            props.entry(n).or_insert_with(|| json!({}));
        }
    }
    Value::Object(schema)
}

/// A cursor field as a path of names: `updated_at` or `$.meta.updated_at`.
pub fn cursor_path(field: &str) -> Vec<String> {
    match field.strip_prefix("$.") {
        Some(rest) => rest.split('.').map(str::to_owned).collect(),
        None => vec![field.to_owned()],
    }
}

/// Airbyte's `AirbyteCatalog`.
pub fn airbyte_catalog(streams: &[StreamInfo]) -> Value {
    let streams: Vec<Value> = streams
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("name".into(), s.name.clone().into());
            m.insert("json_schema".into(), s.schema.clone());
            let modes = if s.incremental {
                json!(["full_refresh", "incremental"])
            } else {
                json!(["full_refresh"])
            };
            m.insert("supported_sync_modes".into(), modes);
            if s.incremental {
                m.insert("source_defined_cursor".into(), true.into());
                if let Some(c) = &s.cursor {
                    m.insert("default_cursor_field".into(), json!(cursor_path(c)));
                }
            }
            if !s.primary_key.is_empty() {
                let pk: Vec<Value> = s.primary_key.iter().map(|k| json!([k])).collect();
                m.insert("source_defined_primary_key".into(), Value::Array(pk));
            }
            Value::Object(m)
        })
        .collect();
    json!({ "streams": streams })
}

/// A Singer catalog (`--discover`): every stream selected, with Meltano SDK metadata.
pub fn singer_catalog(streams: &[StreamInfo]) -> Value {
    let streams: Vec<Value> = streams
        .iter()
        .map(|s| {
            let method = if s.incremental {
                "INCREMENTAL"
            } else {
                "FULL_TABLE"
            };
            let mut top = json!({
                "inclusion": "available",
                "selected": true,
                "table-key-properties": s.primary_key,
                "forced-replication-method": method,
                "replication-method": method,
            });
            if let Some(c) = &s.cursor {
                top["valid-replication-keys"] = json!([c]);
                top["replication-key"] = json!(c);
            }
            let mut metadata = vec![json!({"breadcrumb": [], "metadata": top})];
            if let Some(props) = s.schema.get("properties").and_then(Value::as_object) {
                for name in props.keys() {
                    let automatic = s.primary_key.contains(name) || s.cursor.as_ref() == Some(name);
                    metadata.push(json!({
                        "breadcrumb": ["properties", name],
                        "metadata": {"inclusion": if automatic { "automatic" } else { "available" }},
                    }));
                }
            }
            let mut entry = json!({
                "tap_stream_id": s.name,
                "stream": s.name,
                "schema": s.schema,
                "key_properties": s.primary_key,
                "replication_method": method,
                "metadata": metadata,
            });
            if let Some(c) = &s.cursor {
                entry["replication_key"] = json!(c);
            }
            entry
        })
        .collect();
    json!({ "streams": streams })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inferred_schema_accepts_nulls_and_missing_fields() {
        let mut s = json!({"type": "object", "required": ["a"], "properties": {
            "a": {"type": "integer"}, "b": {"type": ["string", "null"]},
            "c": {"type": "array", "items": {"type": "object", "properties": {"d": {"type": "boolean"}}}}}});
        relax(&mut s);
        assert!(s.get("required").is_none());
        assert_eq!(s["type"], json!(["object", "null"]));
        assert_eq!(s["properties"]["a"]["type"], json!(["integer", "null"]));
        assert_eq!(s["properties"]["b"]["type"], json!(["string", "null"]));
        assert_eq!(
            s["properties"]["c"]["items"]["properties"]["d"]["type"],
            json!(["boolean", "null"])
        );
    }
}
