//! `config`: defaults match their declared types.

use serde_json::Value;

use super::paths::is_rfc3339;
use super::{Ctx, Parts, join};
use crate::model::ConfigType;
use crate::template::Template;

pub(crate) fn check(cx: &mut Ctx<'_>, parts: &Parts) {
    for (name, decl) in &parts.config {
        let base = join("/config", name);
        let Some(default) = &decl.default else {
            continue;
        };
        let ptr = format!("{base}/default");
        let template = default
            .as_str()
            .map(Template::new)
            .filter(|t| !t.is_literal());
        if let Some(t) = &template {
            default_template(cx, &ptr, name, t);
        }
        let ok = match decl.kind {
            ConfigType::String => default.is_string(),
            ConfigType::Integer => default.is_i64() || default.is_u64(),
            ConfigType::Number => default.is_number(),
            ConfigType::Boolean => default.is_boolean(),
            ConfigType::Datetime => template.is_some() || default.as_str().is_some_and(is_rfc3339),
            ConfigType::Array => default.is_array(),
            ConfigType::Object => default.is_object(),
        };
        if !ok {
            let (message, help) = match decl.kind {
                ConfigType::Datetime => (
                    format!("default of `config.{name}` is not an RFC 3339 date-time"),
                    "write it like `2024-01-01T00:00:00Z` (date, `T`, time, offset)",
                ),
                ConfigType::String => (
                    format!("default of `config.{name}` is not a string"),
                    "put it in quotes, or change `type`",
                ),
                ConfigType::Integer => (
                    format!("default of `config.{name}` is not an integer"),
                    "write a whole number without quotes, or change `type`",
                ),
                ConfigType::Number => (
                    format!("default of `config.{name}` is not a number"),
                    "write a number without quotes, or change `type`",
                ),
                ConfigType::Boolean => (
                    format!("default of `config.{name}` is not a boolean"),
                    "write `true` or `false` without quotes, or change `type`",
                ),
                ConfigType::Array => (
                    format!("default of `config.{name}` is not a list"),
                    "write a YAML list such as `[a, b]`, or change `type`",
                ),
                ConfigType::Object => (
                    format!("default of `config.{name}` is not a mapping"),
                    "write a YAML mapping such as `{ region: eu }`, or change `type`",
                ),
            };
            cx.error(cx.value(&ptr), message, Some(help.into()));
        }
        let non_empty = !matches!(default, Value::String(s) if s.is_empty());
        if decl.secret && non_empty && ok {
            cx.warning(
                cx.value(&ptr),
                format!("secret `config.{name}` has a default, so the secret is in the spec file"),
                Some(
                    "remove the default and supply the value through `env`, `--config` or `--set`"
                        .into(),
                ),
            );
        }
    }
}

/// A templated default may call functions (`now()`) but read no variable: it is
/// evaluated before any other value exists.
fn default_template(cx: &mut Ctx<'_>, ptr: &str, name: &str, t: &Template) {
    if let Err(e) = t.check() {
        cx.error(
            cx.value(ptr),
            format!("default of `config.{name}` does not parse as a template: {e}"),
            None,
        );
        return;
    }
    let vars = t.variables().unwrap_or_default();
    let functions = crate::template::FUNCTIONS;
    if let Some(var) = vars
        .iter()
        .find(|v| !functions.contains(&v.split('.').next().unwrap_or_default()))
    {
        cx.error(
            cx.value(ptr),
            format!("default of `config.{name}` reads `{var}`; a default can call functions such as `now()` but read no variable"),
            Some("e.g. `default: \"{{ now() | shift(days=-30) }}\"`".into()),
        );
    }
}
