//! Minijinja templates: compiled once, rendered many times, strict about undefined names.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use minijinja::{Environment, UndefinedBehavior};
use schemars::JsonSchema;
use serde::Serialize;

/// Name under which the single template of an environment is stored.
const NAME: &str = "t";

/// Upper bound on the work of one render, so a template cannot loop forever.
const FUEL: u64 = 200_000;

/// A template string from the spec, such as `"/orders/{{ parent.id }}"`.
///
/// It compiles on first use and keeps the compiled form; the loader forces the
/// compilation, so a spec that loaded cannot fail later for a syntax error.
#[derive(Clone, Default)]
pub struct Template {
    source: String,
    compiled: OnceLock<Result<Arc<Environment<'static>>, String>>,
    /// For a template that is one expression: the same expression written as JSON.
    as_json: OnceLock<Result<Arc<Environment<'static>>, String>>,
}

/// A template failed to compile or to render.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct TemplateError(pub String);

impl Template {
    /// Wraps a template source; nothing is compiled yet.
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            compiled: OnceLock::new(),
            as_json: OnceLock::new(),
        }
    }

    /// The expression of a template that is exactly one `{{ ... }}`, e.g. `page.cursor`.
    pub fn expression(&self) -> Option<&str> {
        let inner = self
            .source
            .trim()
            .strip_prefix("{{")?
            .strip_suffix("}}")?
            .trim_start_matches('-')
            .trim_end_matches('-');
        let single = !inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%");
        single.then_some(inner.trim()).filter(|e| !e.is_empty())
    }

    /// Evaluates the template to a JSON value: a template that is one expression keeps
    /// the expression's type (a number stays a number, none is null, an object an
    /// object); any other template is its rendered text.
    pub fn eval<S: Serialize>(&self, ctx: S) -> Result<serde_json::Value, TemplateError> {
        let Some(expr) = self.expression() else {
            return self.render(ctx).map(serde_json::Value::String);
        };
        let env = self
            .as_json
            .get_or_init(|| compile_json(expr).map(Arc::new))
            .as_ref()
            .map_err(|e| TemplateError(e.clone()))?;
        let text = env
            .get_template(NAME)
            .and_then(|t| t.render(minijinja::value::Serde(ctx)))
            .map_err(|e| TemplateError(describe(&e)))?;
        serde_json::from_str(&text)
            .map_err(|e| TemplateError(format!("the value of `{expr}` is not JSON: {e}")))
    }

    /// The template as written in the spec.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the source has no template syntax at all, so rendering is a copy.
    pub fn is_literal(&self) -> bool {
        !self.source.contains("{{") && !self.source.contains("{%") && !self.source.contains("{#")
    }

    fn env(&self) -> Result<&Arc<Environment<'static>>, TemplateError> {
        self.compiled
            .get_or_init(|| compile(&self.source).map(Arc::new))
            .as_ref()
            .map_err(|e| TemplateError(e.clone()))
    }

    /// Whether the template has been compiled already.
    #[cfg(test)]
    pub(crate) fn is_compiled(&self) -> bool {
        self.compiled.get().is_some()
    }

    /// Compiles the template (once) and reports a syntax error.
    pub fn check(&self) -> Result<(), TemplateError> {
        self.env().map(|_| ())
    }

    /// Renders the template with a context that is already a minijinja value (cheaper
    /// than serialising one per call when only a part changes).
    pub(crate) fn render_value(&self, ctx: minijinja::Value) -> Result<String, TemplateError> {
        let env = self.env()?;
        let tmpl = env
            .get_template(NAME)
            .map_err(|e| TemplateError(describe(&e)))?;
        tmpl.render(ctx).map_err(|e| TemplateError(describe(&e)))
    }

    /// Top-level variables and attribute paths the template reads, e.g. `config.api_key`.
    pub fn variables(&self) -> Result<BTreeSet<String>, TemplateError> {
        let env = self.env()?;
        let tmpl = env
            .get_template(NAME)
            .map_err(|e| TemplateError(describe(&e)))?;
        Ok(tmpl.undeclared_variables(true).into_iter().collect())
    }

    /// Renders the template with the given context.
    pub fn render<S: Serialize>(&self, ctx: S) -> Result<String, TemplateError> {
        if self.is_literal() {
            return Ok(self.source.clone());
        }
        self.render_value(minijinja::Value::from(minijinja::value::Serde(ctx)))
    }
}

/// The filters and tests a spec may use, on top of minijinja's builtins.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // `debug` would print the whole context, secrets included.
    env.remove_global("debug");
    env.set_fuel(Some(FUEL));
    register(&mut env);
    env
}

/// Adds the runtime's own functions and filters (time) to a minijinja environment.
pub(crate) fn register(env: &mut Environment<'static>) {
    crate::template_time::register(env);
}

/// Names of the functions a template may call besides minijinja's own.
pub(crate) const FUNCTIONS: [&str; 1] = crate::template_time::FUNCTIONS;

fn compile(source: &str) -> Result<Environment<'static>, String> {
    let mut env = environment();
    env.add_template_owned(NAME, source.to_owned())
        .map_err(|e| describe(&e))?;
    Ok(env)
}

/// An environment whose template writes the value of `expr` as JSON.
fn compile_json(expr: &str) -> Result<Environment<'static>, String> {
    let mut env = environment();
    env.add_filter("__json", strict_json);
    env.add_template_owned(NAME, format!("{{{{ ({expr}) | __json }}}}"))
        .map_err(|e| describe(&e))?;
    Ok(env)
}

/// `tojson` that refuses an undefined value instead of writing `null`, as rendering does.
fn strict_json(v: minijinja::Value) -> Result<String, minijinja::Error> {
    if v.is_undefined() {
        return Err(minijinja::Error::from(minijinja::ErrorKind::UndefinedError));
    }
    serde_json::to_string(&v)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))
}

/// One line: the error kind and detail, without minijinja's multi-line debug dump.
fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

crate::source_text::source_text!(Template);

impl JsonSchema for Template {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Template".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A minijinja template, e.g. \"{{ config.base_url }}\". Variables: config everywhere; parent in child streams, page in paginated streams, incremental in incremental streams, record in push targets."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_lists_variables() {
        let t = Template::new("/orders/{{ parent.id }}?k={{ config.key }}");
        let vars = t.variables().unwrap();
        assert!(vars.contains("parent.id"), "{vars:?}");
        assert!(vars.contains("config.key"), "{vars:?}");
        let out = t
            .render(serde_json::json!({"parent": {"id": 7}, "config": {"key": "x"}}))
            .unwrap();
        assert_eq!(out, "/orders/7?k=x");
    }

    #[test]
    fn undefined_is_an_error() {
        let t = Template::new("{{ config.missing }}");
        assert!(t.render(serde_json::json!({"config": {}})).is_err());
    }

    #[test]
    fn syntax_error_is_reported() {
        assert!(Template::new("{{ config.x ").check().is_err());
    }

    #[test]
    fn one_expression_keeps_its_json_type() {
        let ctx = serde_json::json!({"page": {"cursor": null, "limit": 50}, "o": {"a": [1]}});
        let eval = |s: &str| Template::new(s).eval(&ctx).unwrap();
        assert_eq!(eval("{{ page.cursor }}"), serde_json::Value::Null);
        assert_eq!(eval("{{ page.limit }}"), serde_json::json!(50));
        assert_eq!(eval(" {{- o -}} "), serde_json::json!({"a": [1]}));
        assert_eq!(eval("{{ page.limit * 2 }}"), serde_json::json!(100));
        assert_eq!(eval("n={{ page.limit }}"), serde_json::json!("n=50"));
        assert_eq!(eval("{{ 'a' }}{{ 'b' }}"), serde_json::json!("ab"));
        assert!(Template::new("{{ missing }}").eval(&ctx).is_err());
    }

    #[test]
    fn debug_global_is_gone() {
        let t = Template::new("{{ debug() }}");
        assert!(t.render(serde_json::json!({"config": {}})).is_err());
    }
}
