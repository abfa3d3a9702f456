//! Templates: each compiles, and reads only variables that exist where it is used.

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

use super::{Ctx, Parts, join};
use crate::suggest;
use crate::template::Template;

/// Fields of `page`, as the paginators fill them.
const PAGE_FIELDS: [&str; 5] = ["index", "number", "offset", "limit", "cursor"];

/// Functions minijinja provides to every template.
const GLOBAL_FUNCTIONS: [&str; 3] = ["range", "dict", "namespace"];

/// The variables a template may read where it is used, besides `config`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scope<'a> {
    /// `parent`: child streams.
    pub parent: bool,
    /// `page`: streams with pagination.
    pub page: bool,
    /// `incremental`: incremental streams.
    pub incremental: bool,
    /// `record`: push targets.
    pub record: bool,
    /// `token`: the value of a session token (`http.auth.value` of `kind: session`).
    pub token: bool,
    /// `partition.<name>`: the names of a stream's `partitions`.
    pub partitions: &'a [String],
}

impl Scope<'_> {
    /// Only `config`: `http`, auth, webhook secrets, incremental bounds.
    pub const CONFIG: Self = Scope {
        parent: false,
        page: false,
        incremental: false,
        record: false,
        token: false,
        partitions: &[],
    };

    fn names(&self) -> Vec<&'static str> {
        let mut v = vec!["config"];
        for (on, name) in [
            (self.parent, "parent"),
            (self.page, "page"),
            (self.incremental, "incremental"),
            (self.record, "record"),
            (self.token, "token"),
            (!self.partitions.is_empty(), "partition"),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }
}

/// Checks the template at `ptr`.
pub(crate) fn check(cx: &mut Ctx<'_>, parts: &Parts, ptr: &str, t: &Template, scope: Scope) {
    check_at(cx, parts, ptr, t, scope, 0);
}

/// Checks the record condition at `ptr` (a stream's `filter`): `record` is in scope.
pub(crate) fn check_condition(
    cx: &mut Ctx<'_>,
    parts: &Parts,
    ptr: &str,
    c: &crate::Condition,
    scope: Scope,
) {
    if c.source().contains("{{") || c.source().contains("{%") {
        cx.error(
            cx.value(ptr),
            "a condition is an expression without braces",
            Some("e.g. `filter: record.status != \"deleted\"`".into()),
        );
        return;
    }
    let scope = Scope {
        record: true,
        ..scope
    };
    check_at(
        cx,
        parts,
        ptr,
        c.template(),
        scope,
        crate::Condition::offset(),
    );
}

/// [`check`], for a template whose text starts `shift` bytes after the spec's value.
fn check_at(cx: &mut Ctx<'_>, parts: &Parts, ptr: &str, t: &Template, scope: Scope, shift: usize) {
    if let Err(e) = t.check() {
        let detail = e.0.trim_start_matches("syntax error: ");
        cx.error(
            cx.value(ptr),
            format!("template does not parse: {detail}"),
            Some(
                "templates are minijinja: `{{ config.name }}`, `{% if ... %}...{% endif %}`".into(),
            ),
        );
        return;
    }
    if t.is_literal() {
        return;
    }
    let vars = match t.variables() {
        Ok(v) => v,
        Err(_) => return,
    };
    let src = t.source();
    for var in &vars {
        let mut it = var.splitn(3, '.');
        let top = it.next().unwrap_or_default();
        let attr = it.next();
        match top {
            "config" => {
                if let Some(name) = attr
                    && !parts.config_names.iter().any(|n| n == name)
                {
                    let help =
                        suggest::closest(name, parts.config_names.iter().map(String::as_str))
                            .map(|c| format!("did you mean `config.{c}`?"))
                            .or_else(|| {
                                Some(format!(
                                    "declare it under `config:`, e.g. `{name}: {{ type: string }}`"
                                ))
                            });
                    cx.error(
                        span_of(cx, ptr, src, shift, &format!("config.{name}")),
                        format!("`config.{name}` is not declared in `config`"),
                        help,
                    );
                }
            }
            "parent" if !scope.parent => cx.error(
                span_of(cx, ptr, src, shift, top),
                "`parent` is only available in a child stream (a stream with `parent:`)",
                None,
            ),
            "page" if !scope.page => cx.error(
                span_of(cx, ptr, src, shift, top),
                "`page` is only available in a stream with `pagination`",
                None,
            ),
            "page" => {
                if let Some(name) = attr
                    && !PAGE_FIELDS.contains(&name)
                {
                    cx.error(
                        span_of(cx, ptr, src, shift, &format!("page.{name}")),
                        format!(
                            "`page` has no field `{name}`; it has {}",
                            suggest::list(PAGE_FIELDS)
                        ),
                        suggest::did_you_mean(name, PAGE_FIELDS),
                    );
                }
            }
            "incremental" if !scope.incremental => cx.error(
                span_of(cx, ptr, src, shift, top),
                "`incremental` is only available in a stream with `incremental`",
                None,
            ),
            "record" if !scope.record => cx.error(
                span_of(cx, ptr, src, shift, top),
                "`record` is only available in `push` templates, a stream's `filter` and `transform`",
                None,
            ),
            "token" if scope.token => {}
            "partition" => crate::partitions::check_var(cx, ptr, src, shift, attr, scope.partitions),
            "parent" | "incremental" | "record" => {}
            name if crate::template::FUNCTIONS.contains(&name) && !calls(src, name) => cx.error(
                span_of(cx, ptr, src, shift, name),
                format!("`{name}` is a function: call it as `{name}()`"),
                Some(format!("e.g. `{{{{ {name}() | shift(days=-1) }}}}`")),
            ),
            name if GLOBAL_FUNCTIONS.contains(&name)
                || crate::template::FUNCTIONS.contains(&name) => {}
            name => {
                let available = scope.names();
                let help = suggest::did_you_mean(name, available.iter().copied());
                cx.error(
                    span_of(cx, ptr, src, shift, name),
                    format!(
                        "unknown variable `{name}`; available here: {}",
                        suggest::list(available.iter().copied())
                    ),
                    help,
                );
            }
        }
    }
    if let Some(msg) = unknown_filter_or_test(src) {
        cx.error(cx.value(ptr), msg, None);
    }
}

/// Checks every string in a JSON body as a template.
pub(crate) fn check_body(cx: &mut Ctx<'_>, parts: &Parts, ptr: &str, body: &Value, scope: Scope) {
    match body {
        Value::String(s) => check(cx, parts, ptr, &Template::new(s.as_str()), scope),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check_body(cx, parts, &format!("{ptr}/{i}"), v, scope);
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                check_body(cx, parts, &join(ptr, k), v, scope);
            }
        }
        _ => {}
    }
}

/// Whether the template calls the function `name` (`name(` with optional spaces).
fn calls(src: &str, name: &str) -> bool {
    src.match_indices(name)
        .any(|(i, _)| src[i + name.len()..].trim_start().starts_with('('))
}

/// Where `needle` (a variable path) is in the template, or the whole value.
pub(crate) fn span_of(
    cx: &Ctx<'_>,
    ptr: &str,
    src: &str,
    shift: usize,
    needle: &str,
) -> crate::diagnostic::Location {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = src[from..].find(needle) {
        let start = from + i;
        let end = start + needle.len();
        let before_ok = !src[..start].ends_with(|c: char| ident(c) || c == '.');
        let after_ok = !src[end..].starts_with(ident);
        if before_ok && after_ok && start >= shift {
            return cx.span_in(ptr, start - shift..end - shift);
        }
        from = end;
    }
    cx.value(ptr)
}

/// Renders the template with every variable undefined but usable, to find filters
/// and tests that do not exist (minijinja resolves those only when rendering).
pub(crate) fn unknown_filter_or_test(src: &str) -> Option<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.remove_global("debug");
    crate::template::register(&mut env);
    env.set_fuel(Some(20_000));
    env.add_template_owned("t", src.to_owned()).ok()?;
    let err = env.get_template("t").ok()?.render(()).err()?;
    let what = match err.kind() {
        ErrorKind::UnknownFilter => "filter",
        ErrorKind::UnknownTest => "test",
        _ => return None,
    };
    let detail = err.detail().unwrap_or_default();
    let name = detail
        .strip_prefix(what)
        .and_then(|d| d.strip_suffix("is unknown"))
        .map(str::trim)
        .filter(|n| !n.is_empty());
    Some(match name {
        Some(n) => format!("unknown {what} `{n}` in template"),
        None => format!("unknown {what} in template: {detail}"),
    })
}
