//! The filter stage: a stream's `filter` condition decides whether a record is kept.

use connector_spec::Condition;
use serde_json::Value;

use crate::stream::StreamError;

/// A stream's `filter`, ready to evaluate.
#[derive(Clone)]
pub(crate) struct Filter {
    condition: Condition,
    stream: String,
}

impl Filter {
    /// The stage for a stream's `filter`, if it has one.
    pub(crate) fn new(condition: Option<&Condition>, stream: &str) -> Option<Self> {
        condition.map(|c| Self {
            condition: c.clone(),
            stream: stream.to_owned(),
        })
    }

    /// Whether the record is kept; `base` holds config, parent, page, incremental.
    pub(crate) fn keeps(
        &self,
        base: &minijinja::Value,
        record: &Value,
    ) -> Result<bool, StreamError> {
        let ctx = minijinja::context! {
            record => minijinja::Value::from(minijinja::value::Serde(record)),
            ..base.clone()
        };
        self.condition.holds(ctx).map_err(|e| {
            StreamError(format!(
                "streams.{}.filter `{}`: {}",
                self.stream,
                self.condition.source(),
                crate::printable::api_text(&e.to_string())
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_what_the_condition_holds_for_and_names_the_stream_on_error() {
        let c = Condition::new("record.n > config.min");
        let f = Filter::new(Some(&c), "events").unwrap();
        let base = minijinja::Value::from(minijinja::value::Serde(json!({"config": {"min": 2}})));
        assert!(f.keeps(&base, &json!({"n": 3})).unwrap());
        assert!(!f.keeps(&base, &json!({"n": 1})).unwrap());
        let e = f.keeps(&base, &json!({})).unwrap_err();
        assert!(
            e.0.starts_with("streams.events.filter `record.n > config.min`"),
            "{e}"
        );
        assert!(Filter::new(None, "events").is_none());
    }
}
