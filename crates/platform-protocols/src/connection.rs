//! The connection specification (Airbyte `spec`) and Singer's `--about`, from a spec's
//! `config:` declarations.

use connector_spec::{ConfigType, Spec};
use serde_json::{Map, Value, json};

/// The JSON Schema of the configuration: one property per `config:` key, secrets marked
/// `airbyte_secret`, keys without a default required.
pub fn config_schema(spec: &Spec) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for (i, (key, decl)) in spec.config.iter().enumerate() {
        let mut p = Map::new();
        let (ty, format) = json_type(decl.kind);
        p.insert("type".into(), ty.into());
        if let Some(f) = format {
            p.insert("format".into(), f.into());
        }
        p.insert("title".into(), key.clone().into());
        if let Some(d) = &decl.description {
            p.insert("description".into(), d.clone().into());
        }
        // A secret's default would be shown in every UI: never published.
        if let (Some(d), false) = (&decl.default, decl.secret) {
            p.insert("default".into(), d.clone());
        }
        if decl.secret {
            p.insert("airbyte_secret".into(), true.into());
        }
        p.insert("order".into(), i.into());
        props.insert(key.clone(), Value::Object(p));
        if decl.is_required() {
            required.push(Value::String(key.clone()));
        }
    }
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": spec.name,
        "type": "object",
        "required": required,
        "additionalProperties": false,
        "properties": props,
    })
}

/// A config type as a JSON Schema type and format. The format's own names are JSON
/// Schema's (`string`, `integer`, `number`, `boolean`, `array`, `object`) except
/// `datetime`, a `date-time` string; read from the serde name so a new type maps itself.
fn json_type(kind: ConfigType) -> (String, Option<&'static str>) {
    let name = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "string".to_owned());
    match name.as_str() {
        "datetime" => ("string".to_owned(), Some("date-time")),
        _ => (name, None),
    }
}

/// Airbyte's `ConnectorSpecification`.
pub fn airbyte_spec(spec: &Spec) -> Value {
    json!({
        "documentationUrl": "https://github.com/",
        "connectionSpecification": config_schema(spec),
        "supportsIncremental": spec.streams.values().any(|s| s.incremental.is_some()),
        "supported_destination_sync_modes": ["overwrite", "append", "append_dedup"],
    })
}

/// Singer's `--about`: name, description, capabilities and the settings' schema.
pub fn singer_about(spec: &Spec) -> Value {
    json!({
        "name": format!("tap-{}", spec.name.replace('_', "-")),
        "description": spec.description,
        "capabilities": ["catalog", "discover", "state", "about"],
        "settings": config_schema(spec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_marked_and_keep_their_default_private() {
        let text = "version: 1\nname: shop\nconfig:\n  key: { type: string, secret: true, default: s3cr3t }\n  since: { type: datetime, default: \"2024-01-01T00:00:00Z\" }\n  n: { type: integer }\nhttp: { base_url: \"https://x\" }\nstreams:\n  a: { path: /a, records: \"$[*]\" }\n";
        let spec = connector_spec::load_str(std::path::Path::new("t.yaml"), text)
            .unwrap()
            .spec;
        let s = config_schema(&spec);
        assert_eq!(s["properties"]["key"]["airbyte_secret"], true);
        assert!(s["properties"]["key"].get("default").is_none());
        assert!(!s.to_string().contains("s3cr3t"));
        assert_eq!(s["properties"]["since"]["format"], "date-time");
        assert_eq!(s["required"], json!(["n"]));
        assert_eq!(s["properties"]["n"]["type"], "integer");
        assert_eq!(s["properties"]["key"]["type"], "string");
    }
}
