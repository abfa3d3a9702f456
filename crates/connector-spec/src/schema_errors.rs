//! The schema layer: validates the YAML tree (as JSON) against the generated schema
//! and turns every error into a diagnostic at the key or value it is about.
//!
//! `jsonschema` reports tagged unions (`kind`, `scheme`) and closed sets of strings as
//! `oneOf` failures with one list of errors per branch. A user needs the errors of the
//! branch they meant, so each such failure is resolved by its tag before reporting.

use std::path::Path;

use jsonschema::ValidationError;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, Location};
use crate::suggest;
use crate::yaml::Node;

/// Result of the schema layer.
pub(crate) struct SchemaCheck {
    /// One diagnostic per problem, each at the key or value it is about.
    pub diagnostics: Vec<Diagnostic>,
    /// JSON Pointers of the instances that failed, so later layers can skip them.
    pub bad_pointers: Vec<String>,
    /// JSON Pointers of unknown fields; later layers check the rest of their section
    /// as if they were not there.
    pub unknown_fields: Vec<String>,
}

/// Validates `instance` (the JSON form of `tree`) against the connector schema.
pub(crate) fn check(file: &Path, tree: &Node, instance: &Value) -> SchemaCheck {
    let mut m = Mapper {
        file,
        tree,
        schema: &Value::Null,
        out: Vec::new(),
        bad: Vec::new(),
        unknown: Vec::new(),
    };
    let (schema, validator) = match crate::schema::validator() {
        Ok(v) => (&v.0, &v.1),
        Err(msg) => {
            m.out
                .push(Diagnostic::error(file, tree.location, msg.clone()));
            m.bad.push(String::new());
            return m.finish();
        }
    };
    m.schema = schema;
    for e in validator.iter_errors(instance) {
        m.error(&e, None);
    }
    m.finish()
}

/// A tagged-union branch the errors below belong to: its object and its tag.
#[derive(Clone, Copy)]
struct Branch<'b> {
    pointer: &'b str,
    tag: &'b str,
    value: &'b str,
}

struct Mapper<'a> {
    file: &'a Path,
    tree: &'a Node,
    schema: &'a Value,
    out: Vec<Diagnostic>,
    bad: Vec<String>,
    unknown: Vec<String>,
}

impl<'a> Mapper<'a> {
    fn finish(mut self) -> SchemaCheck {
        self.out.dedup();
        SchemaCheck {
            diagnostics: self.out,
            bad_pointers: self.bad,
            unknown_fields: self.unknown,
        }
    }

    fn push(&mut self, location: Location, message: String, help: Option<String>) {
        let mut d = Diagnostic::error(self.file, location, message);
        d.help = help;
        self.out.push(d);
    }

    /// Where the value at `pointer` is; the deepest existing node when it is absent.
    fn value_loc(&self, pointer: &str) -> Location {
        self.tree.find(pointer).0.location
    }

    /// The key that holds the value at `pointer` (its value for list items and the root).
    fn key_loc(&self, pointer: &str) -> Location {
        let (node, key) = self.tree.find(pointer);
        key.unwrap_or(node.location)
    }

    /// The subschema at a schema pointer.
    fn sub(&self, pointer: &str) -> &'a Value {
        self.schema.pointer(pointer).unwrap_or(&Value::Null)
    }

    fn error(&mut self, e: &ValidationError<'_>, branch: Option<Branch<'_>>) {
        let ptr = e.instance_path().as_str().to_owned();
        let schema_ptr = e.schema_path().as_str().to_owned();
        let instance: &Value = e.instance();
        let parent_schema = self.sub(parent_pointer(&schema_ptr));
        let suffix = match branch {
            Some(b) if b.pointer == ptr => format!(" for {} `{}`", b.tag, b.value),
            _ => String::new(),
        };
        // Unions report through the branch the author meant, and an unknown field leaves
        // the rest of its object usable; everything else makes its instance unusable.
        let wrapper = matches!(
            e.kind(),
            ValidationErrorKind::OneOfNotValid { .. }
                | ValidationErrorKind::AnyOf { .. }
                | ValidationErrorKind::AdditionalProperties { .. }
                | ValidationErrorKind::PropertyNames { .. }
        );
        if !wrapper {
            self.bad.push(ptr.clone());
        }
        match e.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let allowed: Vec<&str> = parent_schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let node = self.tree.find(&ptr).0;
                for name in unexpected {
                    self.unknown.push(format!("{ptr}/{}", escape(name)));
                    let loc = node.key_location(name).unwrap_or(node.location);
                    let help = suggest::did_you_mean(name, allowed.iter().copied()).or_else(|| {
                        (!allowed.is_empty()).then(|| {
                            format!(
                                "allowed fields here: {}",
                                suggest::list(allowed.iter().copied())
                            )
                        })
                    });
                    self.push(loc, format!("unknown field `{name}`{suffix}"), help);
                }
            }
            ValidationErrorKind::PropertyNames { error } => {
                self.bad_name(&ptr, error.instance());
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let help = parent_schema
                    .pointer(&format!("/properties/{}", escape(name)))
                    .and_then(describe)
                    .map(|d| format!("`{name}`: {d}"));
                self.push(
                    self.key_loc(&ptr),
                    format!(
                        "missing required field `{name}` in {}{suffix}",
                        dotted(&ptr)
                    ),
                    help,
                );
            }
            ValidationErrorKind::Type { .. } => {
                let expected = self.sub(&schema_ptr);
                let expected = type_names(expected);
                let help = type_help(instance, &expected)
                    .or_else(|| describe(parent_schema).map(str::to_owned));
                self.push(
                    self.value_loc(&ptr),
                    format!(
                        "expected {}, found {}",
                        expected.join(" or "),
                        found(instance)
                    ),
                    help,
                );
            }
            ValidationErrorKind::Enum { options } => {
                let values: Vec<String> = options
                    .as_array()
                    .map(|a| a.iter().map(show_plain).collect())
                    .unwrap_or_default();
                self.bad_value(&ptr, instance, &values, &suffix);
            }
            ValidationErrorKind::Constant { expected_value } => {
                self.push(
                    self.value_loc(&ptr),
                    format!(
                        "expected `{}`, found {}{suffix}",
                        show_plain(expected_value),
                        show(instance)
                    ),
                    None,
                );
            }
            ValidationErrorKind::Minimum { limit }
            | ValidationErrorKind::ExclusiveMinimum { limit } => {
                let message = if parent_schema.get("maximum") == Some(limit) {
                    format!("expected `{limit}`, found {}", show(instance))
                } else {
                    format!("{} is below the minimum of {limit}", show(instance))
                };
                self.push(self.value_loc(&ptr), message, describe_owned(parent_schema));
            }
            ValidationErrorKind::Maximum { limit }
            | ValidationErrorKind::ExclusiveMaximum { limit } => {
                let message = if parent_schema.get("minimum") == Some(limit) {
                    format!("expected `{limit}`, found {}", show(instance))
                } else {
                    format!("{} is above the maximum of {limit}", show(instance))
                };
                self.push(self.value_loc(&ptr), message, describe_owned(parent_schema));
            }
            ValidationErrorKind::MinItems { limit } => {
                let n = instance.as_array().map_or(0, Vec::len);
                self.push(
                    self.value_loc(&ptr),
                    format!(
                        "expected at least {limit} item{}, found {n}",
                        if *limit == 1 { "" } else { "s" }
                    ),
                    describe_owned(parent_schema),
                );
            }
            ValidationErrorKind::Pattern { pattern } => {
                let (message, help) = pattern_words(pattern, instance);
                self.push(
                    self.value_loc(&ptr),
                    message,
                    help.or_else(|| describe_owned(parent_schema)),
                );
            }
            ValidationErrorKind::OneOfNotValid { context }
            | ValidationErrorKind::AnyOf { context } => {
                self.alternatives(&ptr, &schema_ptr, instance, context, &suffix);
            }
            _ => {
                let message = e.masked().to_string();
                self.push(self.value_loc(&ptr), message, None);
            }
        }
    }

    /// A key of `streams`, `webhooks` or `push` that cannot be a name: reported at the key,
    /// and only that entry is skipped by later layers.
    fn bad_name(&mut self, ptr: &str, key: &Value) {
        let name = key.as_str().unwrap_or_default();
        self.bad.push(format!("{ptr}/{}", escape(name)));
        let node = self.tree.find(ptr).0;
        let loc = node.key_location(name).unwrap_or(node.location);
        let what = match ptr {
            "/streams" => "a stream name",
            "/webhooks" => "a webhook name",
            "/push" => "a push target name",
            _ => "a name",
        };
        let shown: String = name.chars().take(60).flat_map(char::escape_debug).collect();
        self.push(
            loc,
            format!("`{shown}` cannot be {what}: names become file names"),
            Some(format!(
                "use {} (pattern `{}`)",
                crate::names::NAME_RULE,
                crate::names::NAME_PATTERN
            )),
        );
    }

    /// A value outside a closed set of strings.
    fn bad_value(&mut self, ptr: &str, instance: &Value, values: &[String], suffix: &str) {
        self.bad.push(ptr.to_owned());
        let allowed = suggest::list(values.iter().map(String::as_str));
        let (message, help) = match instance.as_str() {
            Some(s) => (
                format!("unknown value `{s}`{suffix}; expected one of {allowed}"),
                suggest::did_you_mean(s, values.iter().map(String::as_str)),
            ),
            None => (
                format!("expected one of {allowed}, found {}", found(instance)),
                None,
            ),
        };
        self.push(self.value_loc(ptr), message, help);
    }

    /// `oneOf` / `anyOf`: find the branch the author meant and report its errors.
    fn alternatives(
        &mut self,
        ptr: &str,
        schema_ptr: &str,
        instance: &Value,
        context: &[Vec<ValidationError<'static>>],
        suffix: &str,
    ) {
        let branches: Vec<&Value> = self
            .sub(schema_ptr)
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        // A closed set of strings, one documented branch per value.
        let consts: Option<Vec<String>> = branches
            .iter()
            .map(|b| b.get("const").map(show_plain))
            .collect();
        if let Some(values) = consts.filter(|v| !v.is_empty()) {
            self.bad_value(ptr, instance, &values, suffix);
            return;
        }
        if let Some((tag, values)) = tag_of(&branches) {
            self.tagged(ptr, instance, context, tag, &values);
            return;
        }
        if let Some(keys) = keys_of(&branches) {
            self.keyed(ptr, instance, context, &keys);
            return;
        }
        // Untagged: the branches whose type fits the value.
        let fits: Vec<usize> = context
            .iter()
            .enumerate()
            .filter(|(_, errs)| {
                !errs.iter().any(|e| {
                    e.instance_path().as_str() == ptr
                        && matches!(e.kind(), ValidationErrorKind::Type { .. })
                })
            })
            .map(|(i, _)| i)
            .collect();
        if let [one] = fits[..] {
            for e in &context[one] {
                self.error(e, None);
            }
            return;
        }
        self.bad.push(ptr.to_owned());
        let expected: Vec<String> = branches
            .iter()
            .map(|b| branch_name(b, self.schema))
            .collect();
        let help = describe_owned(self.sub(parent_pointer(schema_ptr)));
        self.push(
            self.value_loc(ptr),
            format!(
                "expected {}, found {}",
                expected.join(" or "),
                found(instance)
            ),
            help,
        );
    }

    /// A mapping of one key out of `keys`: the key picks the branch.
    fn keyed(
        &mut self,
        ptr: &str,
        instance: &Value,
        context: &[Vec<ValidationError<'static>>],
        keys: &[String],
    ) {
        let allowed = suggest::list(keys.iter().map(String::as_str));
        let given: Vec<&String> = instance
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        let [key] = given[..] else {
            self.bad.push(ptr.to_owned());
            let message = match instance.as_object() {
                Some(_) => format!(
                    "expected a mapping of exactly one key, one of {allowed}, found {} keys",
                    given.len()
                ),
                None => format!(
                    "expected a mapping of one key, one of {allowed}, found {}",
                    found(instance)
                ),
            };
            self.push(
                self.value_loc(ptr),
                message,
                Some("write one step per list item, e.g. `- remove: [a, b]`".into()),
            );
            return;
        };
        let Some(index) = keys.iter().position(|k| k == key) else {
            self.bad.push(ptr.to_owned());
            self.push(
                self.key_loc(&format!("{ptr}/{}", escape(key))),
                format!("unknown key `{key}`; expected one of {allowed}"),
                suggest::did_you_mean(key, keys.iter().map(String::as_str)),
            );
            return;
        };
        for e in context.get(index).into_iter().flatten() {
            self.error(e, None);
        }
    }

    fn tagged(
        &mut self,
        ptr: &str,
        instance: &Value,
        context: &[Vec<ValidationError<'static>>],
        tag: &str,
        values: &[String],
    ) {
        let allowed = suggest::list(values.iter().map(String::as_str));
        let Some(obj) = instance.as_object() else {
            self.bad.push(ptr.to_owned());
            self.push(
                self.value_loc(ptr),
                format!("expected a mapping with `{tag}`, found {}", found(instance)),
                Some(format!("`{tag}` is one of {allowed}")),
            );
            return;
        };
        let Some(given) = obj.get(tag) else {
            self.bad.push(ptr.to_owned());
            self.push(
                self.key_loc(ptr),
                format!("missing required field `{tag}` in {}", dotted(ptr)),
                Some(format!("`{tag}` is one of {allowed}")),
            );
            return;
        };
        let tag_ptr = format!("{ptr}/{}", escape(tag));
        let Some(index) = given
            .as_str()
            .and_then(|g| values.iter().position(|v| v == g))
        else {
            self.bad.push(ptr.to_owned());
            let (message, help) = match given.as_str() {
                Some(g) => (
                    format!("unknown {tag} `{g}`; expected one of {allowed}"),
                    suggest::did_you_mean(g, values.iter().map(String::as_str)),
                ),
                None => (
                    format!(
                        "expected `{tag}` to be one of {allowed}, found {}",
                        found(given)
                    ),
                    None,
                ),
            };
            self.push(self.value_loc(&tag_ptr), message, help);
            return;
        };
        let branch = Branch {
            pointer: ptr,
            tag,
            value: &values[index],
        };
        for e in context.get(index).into_iter().flatten() {
            self.error(e, Some(branch));
        }
    }
}

/// The one required key of each branch, when every branch is a mapping of exactly one
/// key (an externally tagged union, such as a transform step `- lift: ...`).
fn keys_of(branches: &[&Value]) -> Option<Vec<String>> {
    branches
        .iter()
        .map(|b| {
            let props = b.get("properties")?.as_object()?;
            let required = b.get("required")?.as_array()?;
            match (props.len(), required.as_slice()) {
                (1, [Value::String(k)]) if props.contains_key(k) => Some(k.clone()),
                _ => None,
            }
        })
        .collect::<Option<Vec<_>>>()
        .filter(|k| !k.is_empty())
}

/// The property every branch fixes with a `const`, and its values in branch order.
fn tag_of<'s>(branches: &[&'s Value]) -> Option<(&'s str, Vec<String>)> {
    let first = branches.first()?.get("properties")?.as_object()?;
    first.keys().find_map(|name| {
        let values: Option<Vec<String>> = branches
            .iter()
            .map(|b| {
                b.pointer(&format!("/properties/{}/const", escape(name)))
                    .map(show_plain)
            })
            .collect();
        values.map(|v| (name.as_str(), v))
    })
}

/// A short name of what a branch accepts: `a string`, `a list of strings`.
fn branch_name(branch: &Value, root: &Value) -> String {
    let resolved = branch
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| root.pointer(p))
        .unwrap_or(branch);
    let names = type_names(resolved.get("type").unwrap_or(&Value::Null));
    let mut name = names.join(" or ");
    if resolved.get("type") == Some(&Value::from("array"))
        && let Some(items) = resolved.get("items")
    {
        let inner = branch_name(items, root);
        let plural = inner
            .trim_start_matches("an ")
            .trim_start_matches("a ")
            .to_owned();
        name = format!("a list of {plural}s");
    }
    name
}

/// Human names of a schema `type` value: `"integer"` -> `an integer`.
fn type_names(t: &Value) -> Vec<String> {
    let one = |s: &str| {
        match s {
            "string" => "a string",
            "integer" => "an integer",
            "number" => "a number",
            "boolean" => "a boolean (`true` or `false`)",
            "array" => "a list",
            "object" => "a mapping",
            "null" => "nothing",
            _ => "a value",
        }
        .to_owned()
    };
    match t {
        Value::String(s) => vec![one(s)],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(one).collect(),
        _ => vec!["a value".into()],
    }
}

/// What kind of value the author wrote, with the value when it is short.
fn found(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("a boolean (`{b}`)"),
        Value::Number(n) if n.is_f64() => format!("a number (`{n}`)"),
        Value::Number(n) => format!("an integer (`{n}`)"),
        Value::String(_) => format!("a string ({})", show(v)),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// A hint for the usual type mix-ups.
fn type_help(instance: &Value, expected: &[String]) -> Option<String> {
    let wants = |n: &str| expected.iter().any(|e| e.starts_with(n));
    match instance {
        Value::String(s) if wants("an integer") && s.trim().parse::<i64>().is_ok() => {
            Some(format!("write the number without quotes: `{}`", s.trim()))
        }
        Value::String(s) if wants("a number") && s.trim().parse::<f64>().is_ok() => {
            Some(format!("write the number without quotes: `{}`", s.trim()))
        }
        Value::String(s) if wants("a boolean") && matches!(s.trim(), "true" | "false") => {
            Some(format!("write `{}` without quotes", s.trim()))
        }
        Value::Number(n) if wants("a string") => Some(format!("put the value in quotes: `\"{n}\"`")),
        Value::Bool(b) if wants("a string") => Some(format!("put the value in quotes: `\"{b}\"`")),
        Value::Object(_) | Value::Array(_) if wants("a string") => Some(
            "a value that starts with `{` or `[` is read as YAML; put templates in quotes, e.g. `\"{{ config.x }}\"`"
                .into(),
        ),
        _ => None,
    }
}

fn describe(schema: &Value) -> Option<&str> {
    schema.get("description").and_then(Value::as_str)
}

fn describe_owned(schema: &Value) -> Option<String> {
    describe(schema).map(str::to_owned)
}

/// A value for a message: strings in backticks, shortened when long.
fn show(v: &Value) -> String {
    format!("`{}`", show_plain(v))
}

fn show_plain(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// `/streams/orders/pagination` -> `` `streams.orders.pagination` ``.
pub(crate) fn dotted(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the top level".into();
    }
    let mut out = String::new();
    for raw in pointer.split('/').skip(1) {
        let part = raw.replace("~1", "/").replace("~0", "~");
        if part.parse::<usize>().is_ok() && !out.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            // A key may hold a newline or an escape sequence: never let it break the line.
            for c in part.chars() {
                if c.is_control() {
                    out.extend(c.escape_debug());
                } else {
                    out.push(c);
                }
            }
        }
    }
    format!("`{out}`")
}

fn parent_pointer(p: &str) -> &str {
    p.rsplit_once('/').map_or("", |(head, _)| head)
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A pattern mismatch in words: the patterns of the format have a meaning that a regex
/// does not say (a JSONPath starts with `$`, a webhook path with `/`).
fn pattern_words(pattern: &str, instance: &Value) -> (String, Option<String>) {
    let shown = show(instance);
    match pattern {
        "^\\$" => {
            let text = instance.as_str().unwrap_or_default();
            let fixed = if text.starts_with('.') || text.starts_with('[') {
                format!("${text}")
            } else {
                format!("$.{text}")
            };
            (
                format!("{shown} is not a JSONPath: a JSONPath starts with `$`"),
                Some(format!(
                    "write `{fixed}` (JSONPath, RFC 9535: `$` is the whole document)"
                )),
            )
        }
        "^/" => (
            format!("{shown} must start with `/`"),
            Some(format!(
                "write `/{}`",
                instance.as_str().unwrap_or_default()
            )),
        ),
        _ => (
            format!("{shown} does not match the pattern `{pattern}`"),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml;

    const BASE: &str = "version: 1\nname: demo\nhttp:\n  base_url: http://x\n";

    fn run(extra: &str) -> Vec<(usize, usize, String, Option<String>)> {
        let text = format!("{BASE}{extra}");
        let tree = yaml::parse(&text).unwrap();
        let r = check(Path::new("t.yaml"), &tree, &tree.to_json());
        r.diagnostics
            .into_iter()
            .map(|d| (d.location.line, d.location.col, d.message, d.help))
            .collect()
    }

    #[test]
    fn valid_base_has_no_errors() {
        assert!(run("").is_empty());
    }

    #[test]
    fn unknown_field_points_at_key_with_suggestion() {
        let d = run("  timout: 5s\n");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].0, d[0].1), (5, 3));
        assert!(d[0].2.contains("unknown field `timout`"), "{d:?}");
        assert_eq!(d[0].3.as_deref(), Some("did you mean `timeout`?"));
    }

    #[test]
    fn tagged_union_reports_the_chosen_branch() {
        let d = run("  auth: { kind: bearer, tokn: x }\n");
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d.iter()
                .any(|x| x.2.contains("unknown field `tokn` for kind `bearer`")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|x| x.2.contains("missing required field `token`")),
            "{d:?}"
        );
        let d = run("  auth: { kind: beare }\n");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].0, d[0].1), (5, 17));
        assert!(
            d[0].2
                .starts_with("unknown kind `beare`; expected one of `none`, `bearer`"),
            "{d:?}"
        );
        assert_eq!(d[0].3.as_deref(), Some("did you mean `bearer`?"));
        let d = run("  auth: { token: x }\n");
        assert!(
            d[0].2
                .contains("missing required field `kind` in `http.auth`"),
            "{d:?}"
        );
        assert_eq!((d[0].0, d[0].1), (5, 3));
    }

    #[test]
    fn string_enum_lists_values() {
        let d = run("config:\n  a: { type: strng }\n");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].0, d[0].1), (6, 14));
        assert!(
            d[0].2
                .contains("unknown value `strng`; expected one of `string`"),
            "{d:?}"
        );
        assert_eq!(d[0].3.as_deref(), Some("did you mean `string`?"));
    }

    #[test]
    fn wrong_type_and_untagged() {
        let d = run("  retry: { max_attempts: \"3\" }\n");
        assert_eq!(d[0].2, "expected an integer, found a string (`3`)");
        assert_eq!(
            d[0].3.as_deref(),
            Some("write the number without quotes: `3`")
        );
        let d = run("streams:\n  s: { path: /s, records: $, primary_key: 5 }\n");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            d[0].2,
            "expected a string or a list of strings, found an integer (`5`)"
        );
        let d = run("streams:\n  s: { path: /s, records: $, primary_key: [a, 5] }\n");
        assert_eq!(d[0].2, "expected a string, found an integer (`5`)");
    }

    #[test]
    fn missing_root_fields_and_limits() {
        let text = "version: 2\nname: Demo\n";
        let tree = yaml::parse(text).unwrap();
        let r = check(Path::new("t.yaml"), &tree, &tree.to_json());
        let msgs: Vec<_> = r.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(msgs.contains(&"expected `1`, found `2`"), "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m.contains("missing required field `http` in the top level")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("`Demo` does not match")),
            "{msgs:?}"
        );
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(
            dotted("/streams/a~1b/primary_key/0"),
            "`streams.a/b.primary_key[0]`"
        );
        assert_eq!(dotted(""), "the top level");
    }
}
