//! The values of a spec's `config:` declarations, from the command line, a file, the
//! environment and defaults, checked against their declared types.

use std::path::Path;

use connector_spec::{ConfigType, Spec};
use serde_json::{Map, Value};

use crate::redact::Redactor;

/// The configuration values of one run.
#[derive(Debug, Clone, Default)]
pub struct ResolvedConfig {
    values: Map<String, Value>,
    redactor: Redactor,
    /// Secret keys whose values are too short to mask.
    short_secrets: Vec<String>,
}

/// A configuration value is missing, unknown or of the wrong type.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// A required key has no value from any source.
    #[error(
        "config.{key} is required but has no value: pass --set {key}=...{env}, or add it to a --config file"
    )]
    Missing {
        /// The key.
        key: String,
        /// ", or set VAR" when the spec names an environment variable.
        env: String,
    },
    /// A key the spec does not declare.
    #[error("{source_name}: config.{key} is not declared in the spec's `config:`{hint}")]
    Unknown {
        /// Where the key came from.
        source_name: String,
        /// The key.
        key: String,
        /// A did-you-mean or the list of declared keys.
        hint: String,
    },
    /// A value that does not have the declared type.
    #[error("{source_name}: config.{key} must be {expected}, got {got}")]
    Type {
        /// Where the value came from.
        source_name: String,
        /// The key.
        key: String,
        /// The declared type, in words.
        expected: &'static str,
        /// The value given (masked when secret).
        got: String,
    },
    /// A templated default that cannot be evaluated.
    #[error("the default of config.{key} cannot be evaluated: {message}")]
    Default {
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
    /// `--set` without `=`.
    #[error("--set {0}: expected KEY=VALUE")]
    BadSet(String),
    /// The config file could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl ResolvedConfig {
    /// Resolves every declared key: `--set` wins over `--config`, which wins over the
    /// environment, which wins over the default.
    pub fn resolve(
        spec: &Spec,
        file: Option<&Path>,
        sets: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        // (value, where it came from); later sources overwrite earlier ones.
        let mut given: Map<String, Value> = Map::new();
        let mut origin: Map<String, Value> = Map::new();
        for (key, decl) in &spec.config {
            if let Some(var) = &decl.env
                && let Some(v) = env(var)
            {
                given.insert(key.clone(), Value::String(v));
                origin.insert(
                    key.clone(),
                    Value::String(format!("environment variable {var}")),
                );
            }
        }
        if let Some(path) = file {
            let name = path.display().to_string();
            for (key, value) in read_file(path)? {
                check_declared(spec, &name, &key)?;
                given.insert(key.clone(), value);
                origin.insert(key, Value::String(name.clone()));
            }
        }
        for set in sets {
            let (key, value) = set
                .split_once('=')
                .ok_or_else(|| ConfigError::BadSet(set.clone()))?;
            let key = key.trim().to_owned();
            check_declared(spec, "--set", &key)?;
            given.insert(key.clone(), Value::String(value.to_owned()));
            origin.insert(key, Value::String("--set".into()));
        }

        let mut values = Map::new();
        let mut secrets = Vec::new();
        let mut short_secrets = Vec::new();
        for (key, decl) in &spec.config {
            let value = match given.remove(key) {
                Some(v) => {
                    let source_name = origin
                        .get(key)
                        .and_then(Value::as_str)
                        .unwrap_or("config")
                        .to_owned();
                    coerce(decl.kind, v, decl.secret).map_err(|(expected, got)| {
                        ConfigError::Type {
                            source_name,
                            key: key.clone(),
                            expected,
                            got,
                        }
                    })?
                }
                None => match &decl.default {
                    Some(d) => default_value(key, d)?,
                    None if decl.is_required() => {
                        return Err(ConfigError::Missing {
                            key: key.clone(),
                            env: decl
                                .env
                                .as_ref()
                                .map(|v| format!(", set the environment variable {v}"))
                                .unwrap_or_default(),
                        });
                    }
                    None => Value::Null,
                },
            };
            if decl.secret
                && let Some(s) = value.as_str()
            {
                if !s.is_empty() && crate::redact::too_short_to_mask(s) {
                    short_secrets.push(key.clone());
                }
                secrets.push(s.to_owned());
            }
            values.insert(key.clone(), value);
        }
        Ok(Self {
            values,
            redactor: Redactor::new(secrets),
            short_secrets,
        })
    }

    /// The template context: `{"config": {...}}`.
    pub fn context(&self) -> Value {
        let mut m = Map::new();
        m.insert("config".into(), Value::Object(self.values.clone()));
        Value::Object(m)
    }

    /// The values by key.
    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    /// Masks every secret value in a text.
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    /// One warning per secret too short to be masked (the value itself is never shown).
    pub fn warnings(&self) -> Vec<String> {
        self.short_secrets
            .iter()
            .map(|k| {
                format!(
                    "config.{k} is a secret of fewer than {} characters: too short to mask safely, so it is not masked in logs and errors; use the real credential",
                    crate::redact::MIN_MASKED_CHARS
                )
            })
            .collect()
    }

    /// The redactor for this configuration's secrets.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

fn check_declared(spec: &Spec, source_name: &str, key: &str) -> Result<(), ConfigError> {
    if spec.config.contains_key(key) {
        return Ok(());
    }
    let best = spec
        .config
        .keys()
        .map(|k| (strsim::levenshtein(k, key), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d);
    let hint = match best {
        Some((_, k)) => format!("; did you mean `{k}`?"),
        None if spec.config.is_empty() => "; the spec declares no config keys".into(),
        None => format!(
            "; declared keys: {}",
            spec.config.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    Err(ConfigError::Unknown {
        source_name: source_name.to_owned(),
        key: key.to_owned(),
        hint,
    })
}

fn read_file(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let err = |message: String| ConfigError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("cannot read the config file: {e}")))?;
    let tree = connector_spec::yaml::parse(&text).map_err(|e| {
        err(format!(
            "{}:{}: {}",
            e.location.line, e.location.col, e.message
        ))
    })?;
    match tree.to_json() {
        Value::Object(m) => Ok(m),
        _ => Err(err("a config file must be a mapping of key: value".into())),
    }
}

/// A declared default; a string default with template syntax (functions only, such as
/// `now()`) is evaluated now, keeping the type of a one-expression template.
fn default_value(key: &str, d: &Value) -> Result<Value, ConfigError> {
    let Some(text) = d.as_str() else {
        return Ok(d.clone());
    };
    let t = connector_spec::Template::new(text);
    if t.is_literal() {
        return Ok(d.clone());
    }
    t.eval(serde_json::json!({}))
        .map_err(|e| ConfigError::Default {
            key: key.to_owned(),
            message: e.0,
        })
}

/// Converts a value to the declared type; strings from `--set` and the environment are parsed.
fn coerce(kind: ConfigType, v: Value, secret: bool) -> Result<Value, (&'static str, String)> {
    let shown = |v: &Value| {
        if secret {
            "a value (hidden: secret)".to_owned()
        } else {
            v.to_string()
        }
    };
    let bad = |expected: &'static str, v: &Value| Err((expected, shown(v)));
    match kind {
        ConfigType::String => match v {
            Value::String(_) => Ok(v),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            other => bad("a string", &other),
        },
        ConfigType::Integer => match &v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| bad("an integer", &v)),
            _ => bad("an integer", &v),
        },
        ConfigType::Number => match &v {
            Value::Number(_) => Ok(v),
            Value::String(s) => match s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                Some(n) => Ok(Value::Number(n)),
                None => bad("a number", &v),
            },
            _ => bad("a number", &v),
        },
        ConfigType::Boolean => match &v {
            Value::Bool(_) => Ok(v),
            Value::String(s) => match s.trim() {
                "true" | "1" | "yes" => Ok(Value::Bool(true)),
                "false" | "0" | "no" => Ok(Value::Bool(false)),
                _ => bad("true or false", &v),
            },
            _ => bad("true or false", &v),
        },
        ConfigType::Array => match v {
            Value::Array(_) => Ok(v),
            Value::String(s) => match serde_json::from_str::<Value>(s.trim()) {
                Ok(a @ Value::Array(_)) => Ok(a),
                _ => bad("a JSON list such as [\"a\", \"b\"]", &Value::String(s)),
            },
            other => bad("a list", &other),
        },
        ConfigType::Object => match v {
            Value::Object(_) => Ok(v),
            Value::String(s) => match serde_json::from_str::<Value>(s.trim()) {
                Ok(o @ Value::Object(_)) => Ok(o),
                _ => bad(
                    "a JSON object such as {\"region\": \"eu\"}",
                    &Value::String(s),
                ),
            },
            other => bad("a mapping", &other),
        },
        ConfigType::Datetime => match &v {
            Value::String(s) => {
                match time::OffsetDateTime::parse(
                    s.trim(),
                    &time::format_description::well_known::Rfc3339,
                ) {
                    Ok(_) => Ok(Value::String(s.trim().to_owned())),
                    Err(_) => bad("an RFC 3339 date-time such as 2024-01-01T00:00:00Z", &v),
                }
            }
            _ => bad("an RFC 3339 date-time such as 2024-01-01T00:00:00Z", &v),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        let text = r#"
version: 1
name: t
config:
  base_url: { type: string, default: "http://x" }
  api_key: { type: string, secret: true, env: T_KEY }
  pages: { type: integer, default: 3 }
http: { base_url: "{{ config.base_url }}" }
streams: {}
"#;
        connector_spec::load_str(Path::new("t.yaml"), text)
            .unwrap()
            .spec
    }

    #[test]
    fn precedence_and_types() {
        let s = spec();
        let env = |k: &str| (k == "T_KEY").then(|| "from-env".to_owned());
        let c = ResolvedConfig::resolve(&s, None, &["pages=7".into()], &env).unwrap();
        assert_eq!(c.values()["api_key"], "from-env");
        assert_eq!(c.values()["pages"], 7);
        assert_eq!(c.values()["base_url"], "http://x");
        let c = ResolvedConfig::resolve(&s, None, &["api_key=clikey".into()], &env).unwrap();
        assert_eq!(c.values()["api_key"], "clikey");
        assert_eq!(c.redact("token clikey here"), "token *** here");
        assert!(c.warnings().is_empty());
        let c = ResolvedConfig::resolve(&s, None, &["api_key=k3y".into()], &env).unwrap();
        let w = c.warnings();
        assert!(
            w.len() == 1 && w[0].contains("config.api_key") && !w[0].contains("k3y"),
            "{w:?}"
        );
    }

    #[test]
    fn missing_unknown_and_bad_type() {
        let s = spec();
        let none = |_: &str| None;
        let e = ResolvedConfig::resolve(&s, None, &[], &none)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config.api_key is required") && e.contains("T_KEY"),
            "{e}"
        );
        let e = ResolvedConfig::resolve(&s, None, &["api_kye=x".into()], &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `api_key`"), "{e}");
        let e =
            ResolvedConfig::resolve(&s, None, &["api_key=x".into(), "pages=many".into()], &none)
                .unwrap_err()
                .to_string();
        assert!(e.contains("must be an integer"), "{e}");
    }
}
