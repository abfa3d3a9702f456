//! A JSON Schema guessed from sample records, for `runtime discover`.

use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

/// What has been seen at one place of the records.
#[derive(Debug, Default)]
struct Shape {
    types: BTreeSet<&'static str>,
    all_datetimes: bool,
    strings: usize,
    props: IndexMap<String, (Shape, usize)>,
    objects: usize,
    items: Option<Box<Shape>>,
}

impl Shape {
    fn add(&mut self, v: &Value) {
        match v {
            Value::Null => {
                self.types.insert("null");
            }
            Value::Bool(_) => {
                self.types.insert("boolean");
            }
            Value::Number(n) => {
                self.types
                    .insert(if n.is_f64() { "number" } else { "integer" });
            }
            Value::String(s) => {
                let dt =
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .is_ok();
                self.all_datetimes = if self.strings == 0 {
                    dt
                } else {
                    self.all_datetimes && dt
                };
                self.strings += 1;
                self.types.insert("string");
            }
            Value::Array(items) => {
                self.types.insert("array");
                let shape = self.items.get_or_insert_with(Box::default);
                for i in items {
                    shape.add(i);
                }
            }
            Value::Object(m) => {
                self.types.insert("object");
                self.objects += 1;
                for (k, v) in m {
                    let e = self.props.entry(k.clone()).or_default();
                    e.0.add(v);
                    e.1 += 1;
                }
            }
        }
    }

    fn schema(&self) -> Value {
        let mut types: Vec<&str> = self.types.iter().copied().collect();
        if types.contains(&"integer") && types.contains(&"number") {
            types.retain(|t| *t != "integer");
        }
        let mut s = Map::new();
        match types.as_slice() {
            [] => {}
            [one] => {
                s.insert("type".into(), json!(one));
            }
            many => {
                s.insert("type".into(), json!(many));
            }
        }
        if self.strings > 0 && self.all_datetimes {
            s.insert("format".into(), json!("date-time"));
        }
        if self.objects > 0 {
            let mut props = Map::new();
            let mut required = Vec::new();
            for (k, (shape, n)) in &self.props {
                props.insert(k.clone(), shape.schema());
                if *n == self.objects {
                    required.push(json!(k));
                }
            }
            s.insert("properties".into(), Value::Object(props));
            if !required.is_empty() {
                s.insert("required".into(), Value::Array(required));
            }
        }
        if let Some(items) = &self.items {
            s.insert("items".into(), items.schema());
        }
        Value::Object(s)
    }
}

/// A draft 2020-12 schema that every sample record satisfies.
pub fn infer<'a>(records: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut shape = Shape::default();
    for r in records {
        shape.add(r);
    }
    let mut s = shape.schema();
    if let Value::Object(m) = &mut s {
        m.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_records() {
        let a = json!({"id": 1, "at": "2024-01-01T00:00:00Z", "tags": ["x"], "n": 1});
        let b = json!({"id": 2, "at": "2024-01-02T00:00:00Z", "n": 1.5, "opt": null});
        let s = infer([&a, &b]);
        assert_eq!(s["type"], "object");
        assert_eq!(s["properties"]["id"]["type"], "integer");
        assert_eq!(s["properties"]["n"]["type"], "number");
        assert_eq!(s["properties"]["at"]["format"], "date-time");
        assert_eq!(s["properties"]["tags"]["items"]["type"], "string");
        assert_eq!(s["required"], json!(["id", "at", "n"]));
    }
}
