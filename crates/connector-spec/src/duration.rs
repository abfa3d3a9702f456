//! Durations written as text in the spec: `500ms`, `30s`, `5m`, `1h`, `1h 30m`.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration from the spec, kept as written and parsed on demand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Duration(String);

impl Duration {
    /// Wraps a duration as written.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text as written in the spec.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the text; the loader reports an error for every duration that fails.
    pub fn parse(&self) -> Result<std::time::Duration, String> {
        humantime::parse_duration(self.0.trim()).map_err(|e| {
            format!(
                "`{}` is not a duration ({e}); write e.g. `500ms`, `30s`, `5m` or `1h`",
                self.0
            )
        })
    }

    /// The parsed value; zero for text that does not parse, which a loaded spec never holds.
    pub fn get(&self) -> std::time::Duration {
        self.parse().unwrap_or_default()
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as \"500ms\", \"30s\", \"5m\", \"1h\"."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(Duration::new("30s").parse().unwrap().as_secs(), 30);
        assert_eq!(Duration::new("500ms").parse().unwrap().as_millis(), 500);
        assert_eq!(Duration::new("1h 30m").parse().unwrap().as_secs(), 5400);
        assert!(Duration::new("soon").parse().is_err());
    }
}
