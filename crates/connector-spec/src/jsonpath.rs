//! JSONPath expressions (RFC 9535): parsed once, evaluated per page.
//!
//! The rest of the workspace sees only [`JsonPath`], so the engine behind it can change.

use std::sync::{Arc, OnceLock};

use jsonpath_rust::parser::model::JpQuery;
use schemars::JsonSchema;
use serde_json::Value;

/// A JSONPath from the spec, such as `$.orders[*]`.
#[derive(Clone, Default)]
pub struct JsonPath {
    source: String,
    compiled: OnceLock<Result<Compiled, String>>,
}

#[derive(Clone)]
enum Compiled {
    /// `$`, `$.a.b`, `$.a[*]`: walked directly, without the general engine.
    Simple {
        fields: Arc<[String]>,
        each: bool,
    },
    General(Arc<JpQuery>),
}

/// A JSONPath failed to parse.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct JsonPathError(pub String);

impl JsonPath {
    /// Wraps a JSONPath source; nothing is parsed yet.
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            compiled: OnceLock::new(),
        }
    }

    /// The expression as written in the spec.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn compiled(&self) -> Result<&Compiled, JsonPathError> {
        self.compiled
            .get_or_init(|| compile(&self.source))
            .as_ref()
            .map_err(|e| JsonPathError(e.clone()))
    }

    /// Whether the expression has been parsed already.
    #[cfg(test)]
    pub(crate) fn is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }

    /// Parses the expression (once) and reports a syntax error.
    pub fn check(&self) -> Result<(), JsonPathError> {
        self.compiled().map(|_| ())
    }

    /// Every node the expression selects in `value`, in document order.
    pub fn query<'a>(&self, value: &'a Value) -> Result<Vec<&'a Value>, JsonPathError> {
        match self.compiled()? {
            Compiled::Simple { fields, each } => {
                let mut node = value;
                for f in fields.iter() {
                    match node.get(f.as_str()) {
                        Some(n) => node = n,
                        None => return Ok(Vec::new()),
                    }
                }
                if *each {
                    Ok(match node {
                        Value::Array(items) => items.iter().collect(),
                        Value::Object(map) => map.values().collect(),
                        _ => Vec::new(),
                    })
                } else {
                    Ok(vec![node])
                }
            }
            Compiled::General(q) => jsonpath_rust::query::js_path_process(q, value)
                .map(|refs| refs.into_iter().map(|r| r.val).collect())
                .map_err(|e| JsonPathError(e.to_string())),
        }
    }

    /// The first node selected, if any; `null` counts as absent.
    pub fn first<'a>(&self, value: &'a Value) -> Result<Option<&'a Value>, JsonPathError> {
        Ok(self.query(value)?.into_iter().find(|v| !v.is_null()))
    }

    /// For a simple path (`$.a.b` or `$.a[*]`), its field names and whether it ends in `[*]`.
    pub fn simple_fields(&self) -> Option<(&[String], bool)> {
        match self.compiled().ok()? {
            Compiled::Simple { fields, each } => Some((fields, *each)),
            Compiled::General(_) => None,
        }
    }
}

fn compile(source: &str) -> Result<Compiled, String> {
    // The general parser validates everything, simple or not, so both forms accept
    // exactly the same language.
    let query = jsonpath_rust::parser::parse_json_path(source).map_err(|e| e.to_string())?;
    Ok(simple(source).unwrap_or_else(|| Compiled::General(Arc::new(query))))
}

/// Recognises `$`, `$.a.b`, `$.a.b[*]` (plain identifiers only).
fn simple(source: &str) -> Option<Compiled> {
    let rest = source.strip_prefix('$')?;
    let (rest, each) = match rest.strip_suffix("[*]") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let mut fields = Vec::new();
    if !rest.is_empty() {
        for part in rest.strip_prefix('.')?.split('.') {
            let ok = !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && !part.starts_with(|c: char| c.is_ascii_digit() || c == '-');
            if !ok {
                return None;
            }
            fields.push(part.to_owned());
        }
    }
    Some(Compiled::Simple {
        fields: fields.into(),
        each,
    })
}

crate::source_text::source_text!(JsonPath);

impl JsonSchema for JsonPath {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "JsonPath".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^\\$",
            "description": "A JSONPath (RFC 9535) starting at `$`, e.g. \"$.orders[*]\"."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn simple_and_general_agree() {
        let doc = json!({"data": {"orders": [{"id": 1}, {"id": 2}]}, "next": "abc"});
        for p in ["$.data.orders[*]", "$.data['orders'][*]", "$..orders[*]"] {
            let got = JsonPath::new(p).query(&doc).unwrap();
            assert_eq!(got, vec![&json!({"id": 1}), &json!({"id": 2})], "{p}");
        }
        assert_eq!(
            JsonPath::new("$.next").first(&doc).unwrap(),
            Some(&json!("abc"))
        );
        assert_eq!(JsonPath::new("$.missing").first(&doc).unwrap(), None);
        assert!(JsonPath::new("$.data.orders[*]").simple_fields().is_some());
    }

    #[test]
    fn bad_path_is_an_error() {
        assert!(JsonPath::new("$.orders[").check().is_err());
        assert!(JsonPath::new("orders").check().is_err());
    }

    #[test]
    fn root_array() {
        let doc = json!([1, 2]);
        assert_eq!(JsonPath::new("$[*]").query(&doc).unwrap().len(), 2);
        assert_eq!(JsonPath::new("$").query(&doc).unwrap().len(), 1);
    }
}
