//! Record conditions such as `record.status != "deleted"`: a minijinja expression, written
//! without braces, that decides whether a record is kept.

use schemars::JsonSchema;

use crate::template::{Template, TemplateError};

/// What precedes the expression in the template it compiles to.
const PREFIX: &str = "{% if ";

/// A boolean condition over a record (and `config`, `parent`), e.g.
/// `record.type not in ["a", "b"]`.
#[derive(Clone, Default)]
pub struct Condition {
    source: String,
    template: Template,
}

impl Condition {
    /// Wraps a condition's source; nothing is compiled yet.
    pub fn new(source: impl Into<String>) -> Self {
        let source = source.into();
        let template = Template::new(format!("{PREFIX}{source} %}}1{{% else %}}0{{% endif %}}"));
        Self { source, template }
    }

    /// The condition as written in the spec.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The template it compiles to; its positions are [`offset`](Self::offset) after the source's.
    pub(crate) fn template(&self) -> &Template {
        &self.template
    }

    /// How far the template's text is shifted from the source's.
    pub(crate) const fn offset() -> usize {
        PREFIX.len()
    }

    /// Whether the condition holds for the context (a minijinja value with `record` and
    /// whatever else the caller offers). Undefined names are errors, as in templates.
    pub fn holds(&self, ctx: minijinja::Value) -> Result<bool, TemplateError> {
        Ok(self.template.render_value(ctx)? == "1")
    }
}

crate::source_text::source_text!(Condition);

impl JsonSchema for Condition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Condition".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A minijinja expression without braces, true for the records to keep, e.g. record.status != \"deleted\". Variables: record, config, and parent in child streams."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(cond: &str, record: serde_json::Value) -> Result<bool, TemplateError> {
        Condition::new(cond).holds(minijinja::context! { record => minijinja::Value::from(minijinja::value::Serde(&record)) })
    }

    #[test]
    fn conditions_decide() {
        let r = serde_json::json!({"type": "c", "n": 3, "tags": ["x"]});
        assert!(holds(r#"record.type not in ["a", "b"]"#, r.clone()).unwrap());
        assert!(!holds("record.n > 3", r.clone()).unwrap());
        assert!(holds("'x' in record.tags and record.n == 3", r.clone()).unwrap());
        assert!(holds("record.missing is not defined", r.clone()).unwrap());
        assert!(
            holds("record.missing == 1", r).is_err(),
            "undefined is an error"
        );
    }
}
