//! The meaning layer: what the schema cannot say.
//!
//! Runs on every section (a config entry, `http`, a stream, a webhook, a push target)
//! that passed the schema layer, so one run reports schema and meaning errors together.
//! Every template and JSONPath is compiled here, so a spec that loads cannot fail later
//! for a typo.

mod auth;
mod config;
mod date_windows;
mod error_rules;
mod http;
mod page_tokens;
mod parallel_pages;
mod paths;
mod streams;
mod targets;
pub(crate) mod templates;
mod transform;

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, Location};
use crate::model::{
    Auth, ConfigDecl, Http, Pagination, PushTarget, Signature, Spec, Stream, Webhook,
};
use crate::yaml::{Node, NodeValue};

/// What the meaning layer looks at.
pub(crate) struct Input<'a> {
    /// The spec file, for diagnostics and for `schema_file` paths.
    pub file: &'a Path,
    /// The file's text, for spans inside values.
    pub text: &'a str,
    /// The YAML tree with positions.
    pub tree: &'a Node,
    /// The same tree as JSON.
    pub json: &'a Value,
    /// Instances the schema layer rejected.
    pub bad: &'a [String],
    /// Unknown fields the schema layer reported; ignored here.
    pub unknown: &'a [String],
    /// The typed spec, when the schema layer and serde accepted the whole document.
    pub spec: Option<&'a Spec>,
}

/// Adds a diagnostic for every problem of meaning in the sections that passed the schema.
pub(crate) fn check(input: &Input<'_>, out: &mut Vec<Diagnostic>) {
    let parts = match input.spec {
        Some(spec) => {
            // Compile the loaded spec's own templates and JSONPaths, so the spec the
            // engine gets never compiles anything; the sections below share them.
            compile(spec);
            Parts::from_spec(spec)
        }
        None => Parts::new(input),
    };
    let mut cx = Ctx {
        file: input.file,
        text: input.text,
        tree: input.tree,
        out,
    };
    config::check(&mut cx, &parts);
    http::check(&mut cx, &parts);
    streams::check(&mut cx, &parts);
    targets::check(&mut cx, &parts);
}

/// The typed sections of a spec that passed the schema layer, and every name declared.
pub(crate) struct Parts {
    /// Every key under `config`, valid or not, so a bad entry does not also make
    /// each template that uses it an error.
    pub config_names: Vec<String>,
    pub config: Vec<(String, ConfigDecl)>,
    pub http: Option<Http>,
    /// Every key under `streams`, valid or not.
    pub stream_names: Vec<String>,
    pub streams: Vec<(String, Stream)>,
    pub webhooks: Vec<(String, Webhook)>,
    pub push: Vec<(String, PushTarget)>,
    /// `defaults`, when it passed the schema layer.
    pub defaults: Option<crate::transform::Defaults>,
}

impl Parts {
    fn new(input: &Input<'_>) -> Self {
        let mut json = input.json.clone();
        for ptr in input.unknown {
            remove(&mut json, ptr);
        }
        let s = Sections {
            json,
            bad: input.bad,
        };
        Parts {
            config_names: s.names("config"),
            config: s.typed("config"),
            http: s.usable("/http").and_then(from),
            stream_names: s.names("streams"),
            streams: s.typed("streams"),
            webhooks: s.typed("webhooks"),
            push: s.typed("push"),
            defaults: s.usable("/defaults").and_then(from),
        }
    }

    fn from_spec(spec: &Spec) -> Self {
        Parts {
            config_names: spec.config.keys().cloned().collect(),
            config: spec.config.clone().into_iter().collect(),
            http: Some(spec.http.clone()),
            stream_names: spec.streams.keys().cloned().collect(),
            streams: spec.streams.clone().into_iter().collect(),
            webhooks: spec.webhooks.clone().into_iter().collect(),
            push: spec.push.clone().into_iter().collect(),
            defaults: spec.defaults.clone(),
        }
    }

    /// A stream that passed the schema layer, by name.
    pub fn stream(&self, name: &str) -> Option<&Stream> {
        self.streams.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

/// Compiles every template and JSONPath the engine reads from the typed spec.
///
/// Errors are ignored here: the checks report them, with positions.
fn compile(spec: &Spec) {
    let t = |t: &crate::Template| {
        let _ = t.check();
    };
    let p = |p: &crate::JsonPath| {
        let _ = p.check();
    };
    let http = &spec.http;
    t(&http.base_url);
    http.headers
        .values()
        .chain(http.params.values())
        .for_each(t);
    compile_auth(&http.auth);
    for s in spec.streams.values() {
        t(&s.path);
        s.params.values().chain(s.headers.values()).for_each(t);
        p(&s.records);
        match &s.pagination {
            Pagination::Offset { total, .. } => total.iter().for_each(p),
            Pagination::PageNumber {
                total, total_pages, ..
            } => total.iter().chain(total_pages.iter()).for_each(p),
            Pagination::Cursor {
                next, next_record, ..
            } => {
                next.iter().for_each(p);
                next_record.iter().for_each(t);
            }
            Pagination::NextUrl { next, .. } => p(next),
            Pagination::None | Pagination::LinkHeader { .. } => {}
        }
        s.pagination.has_more().into_iter().for_each(p);
        if let Some(c) = s.pagination.stop_when() {
            t(c.template());
        }
        if let Some(inc) = &s.incremental {
            t(&inc.start);
            inc.end.iter().for_each(t);
        }
    }
    for rule in spec
        .http
        .errors
        .iter()
        .chain(spec.streams.values().flat_map(|s| &s.errors))
    {
        rule.body.iter().filter_map(|b| b.path()).for_each(p);
        rule.message.iter().for_each(t);
    }
    for w in spec.webhooks.values() {
        w.event_id.iter().chain(w.record.iter()).for_each(p);
        let (Signature::HmacSha256 { secrets, .. }
        | Signature::Stripe { secrets, .. }
        | Signature::StandardWebhooks { secrets, .. }) = &w.signature;
        secrets.iter().for_each(t);
    }
    for target in spec.push.values() {
        t(&target.path);
        target.headers.values().for_each(t);
        target.response_id.iter().for_each(p);
    }
}

/// Compiles the templates and JSONPaths of an auth block (and of a select's options).
fn compile_auth(auth: &Auth) {
    let t = |t: &crate::Template| {
        let _ = t.check();
    };
    match auth {
        Auth::None => {}
        Auth::Bearer { token } => t(token),
        Auth::ApiKey { value, .. } => t(value),
        Auth::Basic { username, password } => {
            t(username);
            t(password);
        }
        Auth::Oauth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            params,
            ..
        } => {
            [token_url, client_id, client_secret]
                .into_iter()
                .for_each(t);
            params.values().for_each(t);
        }
        Auth::Oauth2RefreshToken {
            token_url,
            client_id,
            client_secret,
            refresh_token,
            params,
            ..
        } => {
            [token_url, client_id, client_secret, refresh_token]
                .into_iter()
                .for_each(t);
            params.values().for_each(t);
        }
        Auth::Session {
            login,
            token,
            expires_in,
            value,
            ..
        } => {
            t(&login.url);
            login
                .headers
                .values()
                .chain(login.form.values())
                .for_each(t);
            t(value);
            let _ = token.check();
            if let Some(p) = expires_in {
                let _ = p.check();
            }
        }
        Auth::Jwt {
            key,
            key_id,
            claims,
            token_url,
            params,
            ..
        } => {
            t(key);
            key_id.iter().chain(token_url.iter()).for_each(t);
            claims.values().chain(params.values()).for_each(t);
        }
        Auth::Select { select, options } => {
            t(select);
            options.values().for_each(compile_auth);
        }
    }
}

/// The spec as JSON without its unknown fields, and what the schema rejected.
struct Sections<'a> {
    json: Value,
    bad: &'a [String],
}

impl Sections<'_> {
    fn names(&self, section: &str) -> Vec<String> {
        self.json
            .get(section)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The JSON at `ptr` when the schema layer found nothing wrong inside it.
    fn usable(&self, ptr: &str) -> Option<&Value> {
        let inside = |p: &String| p == ptr || p.starts_with(&format!("{ptr}/"));
        if self.bad.iter().any(inside) {
            return None;
        }
        self.json.pointer(ptr)
    }

    /// The usable entries of a section such as `streams`, typed.
    fn typed<T: DeserializeOwned>(&self, section: &str) -> Vec<(String, T)> {
        self.names(section)
            .into_iter()
            .filter_map(|n| {
                let v = from(self.usable(&join(&format!("/{section}"), &n))?)?;
                Some((n, v))
            })
            .collect()
    }
}

/// Removes the member at `ptr` (an object key) from `json`.
fn remove(json: &mut Value, ptr: &str) {
    let Some((parent, last)) = ptr.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    if let Some(Value::Object(m)) = json.pointer_mut(parent) {
        m.shift_remove(&key);
    }
}

fn from<T: DeserializeOwned>(v: &Value) -> Option<T> {
    // A section the schema accepted but serde does not is reported by the loader's
    // whole-spec deserialization; here it is only skipped.
    serde_json::from_value(v.clone()).ok()
}

/// `base` + `/token`, escaped as a JSON Pointer token.
pub(crate) fn join(base: &str, token: &str) -> String {
    format!("{base}/{}", token.replace('~', "~0").replace('/', "~1"))
}

/// Where diagnostics go, and how to find positions for them.
pub(crate) struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    tree: &'a Node,
    out: &'a mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    /// The spec file.
    pub fn file(&self) -> &Path {
        self.file
    }

    /// The value at `ptr`; the closest enclosing key when it is absent.
    pub fn value(&self, ptr: &str) -> Location {
        match self.tree.get(ptr) {
            Some(n) => n.location,
            None => self.key(ptr),
        }
    }

    /// The key holding the value at `ptr` (or the closest enclosing one).
    pub fn key(&self, ptr: &str) -> Location {
        let (node, key) = self.tree.find(ptr);
        key.unwrap_or(node.location)
    }

    /// Whether the spec writes anything at `ptr` (as opposed to a default).
    pub fn written(&self, ptr: &str) -> bool {
        self.tree.get(ptr).is_some()
    }

    /// The characters `range` (bytes of the string value) of the scalar at `ptr`.
    ///
    /// Falls back to the whole value when the scalar's text in the file differs from
    /// its value (escapes, folding, several lines), since offsets would not line up.
    pub fn span_in(&self, ptr: &str, range: Range<usize>) -> Location {
        let Some(node) = self.tree.get(ptr) else {
            return self.value(ptr);
        };
        let loc = node.location;
        let NodeValue::String(s) = &node.value else {
            return loc;
        };
        if s.contains('\n')
            || range.end > s.len()
            || range.start > range.end
            || !s.is_char_boundary(range.start)
            || !s.is_char_boundary(range.end)
        {
            return loc;
        }
        let Some(line) = self.text.lines().nth(loc.line.saturating_sub(1)) else {
            return loc;
        };
        let from_col: String = line.chars().skip(loc.col.saturating_sub(1)).collect();
        let quoted = |q: char| {
            from_col
                .strip_prefix(q)
                .and_then(|rest| rest.strip_prefix(s.as_str()))
                .is_some_and(|rest| rest.starts_with(q))
        };
        let offset = if from_col.starts_with(s.as_str()) {
            0
        } else if quoted('"') || quoted('\'') {
            1
        } else {
            return loc;
        };
        Location {
            line: loc.line,
            col: loc.col + offset + s[..range.start].chars().count(),
            len: s[range].chars().count().max(1),
        }
    }

    /// Reports an error.
    pub fn error(&mut self, location: Location, message: impl Into<String>, help: Option<String>) {
        let mut d = Diagnostic::error(self.file, location, message);
        d.help = help;
        self.out.push(d);
    }

    /// Reports a warning.
    pub fn warning(
        &mut self,
        location: Location,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let mut d = Diagnostic::warning(self.file, location, message);
        d.help = help;
        self.out.push(d);
    }
}

/// The errors, as (line, column, message), of a one-stream spec with this pagination
/// (for the checks' unit tests). The pagination is on line 10.
#[cfg(test)]
pub(crate) fn pagination_errors(pagination: &str) -> Vec<(usize, usize, String)> {
    const HEAD: &str = "version: 1\nname: t\nhttp: { base_url: \"https://x\" }\nstreams:\n  a:\n    path: /a\n    primary_key: id\n    dedup: true\n    records: $.items[*]\n";
    errors_in(&format!("{HEAD}    pagination: {pagination}\n"))
        .into_iter()
        .map(|d| (d.location.line, d.location.col, d.message))
        .collect()
}

/// The errors of a spec text as (line, column, message, help) (for the checks' unit tests).
#[cfg(test)]
pub(crate) fn error_list(text: &str) -> Vec<(usize, usize, String, Option<String>)> {
    errors_in(text)
        .into_iter()
        .map(|d| (d.location.line, d.location.col, d.message, d.help))
        .collect()
}

/// The error diagnostics of a spec text (for the checks' unit tests).
#[cfg(test)]
pub(crate) fn errors_in(text: &str) -> Vec<crate::diagnostic::Diagnostic> {
    match crate::load::load_str(std::path::Path::new("t.yaml"), text) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .diagnostics
            .into_iter()
            .filter(|d| d.severity == crate::diagnostic::Severity::Error)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    const HEAD: &str = "version: 1\nname: t\nconfig:\n  key: { type: strng }\n  region: { type: string }\nhttp: { base_url: \"https://x\" }\n";

    /// (line, col, message) of every error.
    fn errors(body: &str) -> Vec<(usize, usize, String)> {
        super::errors_in(&format!("{HEAD}{body}"))
            .into_iter()
            .map(|d| (d.location.line, d.location.col, d.message))
            .collect()
    }

    fn meaning(body: &str) -> Vec<(usize, usize, String)> {
        // Line 4's bad config type is the schema error every case shares.
        errors(body).into_iter().filter(|e| e.0 != 4).collect()
    }

    #[test]
    fn each_variable_is_allowed_where_it_exists() {
        let body = "streams:
  a:
    path: \"/a/{{ config.key }}\"
    primary_key: id
    records: $[*]
    params: { p: \"{{ page.cursor }}\", s: \"{{ incremental.start }}\", n: \"{{ range(2) | length }}\" }
    pagination: { kind: cursor, next: $.n, param: c }
    incremental: { cursor_field: u, start: \"{{ config.region }}\" }
  b:
    parent: { stream: a, key: id }
    path: \"/b/{{ parent.id }}\"
    records: $[*]
push:
  p:
    path: \"/p/{{ record.id }}\"
    body: { r: [\"{{ config.region }}\", \"{{ record.x | lower }}\"] }
    idempotency: { key_field: id }
";
        assert_eq!(meaning(body), Vec::new());
    }

    #[test]
    fn a_loaded_spec_has_its_templates_and_paths_compiled() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let path = Path::new(dir).join("../../connectors/orders.yaml");
        let loaded = crate::load::load(&path).unwrap();
        let spec = &loaded.spec;
        assert!(spec.http.base_url.is_compiled());
        for s in spec.streams.values() {
            assert!(s.path.is_compiled() && s.records.is_compiled());
        }
        let hook = &spec.webhooks["order_events"];
        assert!(hook.event_id.as_ref().is_some_and(|p| p.is_compiled()));
        assert!(spec.push["create_orders"].path.is_compiled());
    }

    #[test]
    fn future_tolerance_is_checked_and_only_meant_for_time_cursors() {
        let stream = |inc: &str| {
            format!(
                "streams:\n  a:\n    path: /a\n    primary_key: id\n    records: $[*]\n    incremental: {{ cursor_field: u, start: \"1\", {inc} }}\n"
            )
        };
        let e = meaning(&stream("cursor_type: unix_seconds, future_tolerance: soon"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].2.contains("not a duration"), "{e:?}");
        assert_eq!((e[0].0, e[0].1), (12, 94), "line and column of `soon`");
        assert_eq!(
            meaning(&stream("cursor_type: unix_millis, future_tolerance: 2h")),
            Vec::new()
        );
        let text = format!(
            "{}{}",
            HEAD.replace("strng", "string"),
            stream("cursor_type: integer, future_tolerance: 2h")
        );
        let loaded = crate::load::load_str(Path::new("t.yaml"), &text).unwrap();
        assert!(
            loaded.warnings.iter().any(|w| w
                .message
                .contains("`future_tolerance` only applies to time cursors")),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn a_bad_config_entry_does_not_make_its_uses_errors() {
        // `key` has a schema error, yet `config.key` is declared.
        assert_eq!(
            meaning("streams:\n  a: { path: \"/{{ config.key }}\", records: $ }\n"),
            Vec::new()
        );
    }

    #[test]
    fn spans_fall_back_to_the_value_when_escapes_shift_offsets() {
        let e = meaning("streams:\n  a: { path: \"/\\t{{ parent.id }}\", records: $ }\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].0, e[0].1), (8, 14));
        let e = meaning("streams:\n  a: { path: '/x''{{ parent.id }}', records: $ }\n");
        assert_eq!((e[0].0, e[0].1), (8, 14), "{e:?}");
        let e = meaning("streams:\n  a: { path: '/x{{ parent.id }}', records: $ }\n");
        assert_eq!((e[0].0, e[0].1), (8, 20), "{e:?}");
    }

    #[test]
    fn a_cycle_is_reported_once_and_a_chain_into_it_not_at_all() {
        let body = "streams:
  a: { parent: { stream: c, key: id }, path: /a, records: $ }
  b: { parent: { stream: a, key: id }, path: /b, records: $ }
  c: { parent: { stream: b, key: id }, path: /c, records: $ }
  d: { parent: { stream: a, key: id }, path: /d, records: $ }
";
        let e = meaning(body);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].2, "parent streams form a cycle: a -> c -> b -> a");
        assert_eq!((e[0].0, e[0].1), (8, 26));
    }

    #[test]
    fn unknown_fields_do_not_hide_the_rest_of_their_section() {
        let e = meaning("streams:\n  a: { path: /a, records: \"$[\", primary_keys: id }\n");
        let msgs: Vec<&str> = e.iter().map(|x| x.2.as_str()).collect();
        assert_eq!(msgs.len(), 2, "{e:?}");
        assert!(msgs[0].starts_with("JSONPath `$[` does not parse"), "{e:?}");
        assert!(msgs[1].starts_with("unknown field `primary_keys`"), "{e:?}");
    }

    #[test]
    fn zero_durations_are_refused_where_zero_means_nothing() {
        let text = "version: 1\nname: t\nhttp:\n  base_url: \"https://x\"\n  timeout: 0s\n  retry: { initial: 0ms, max: 1s, max_total: \"0 s\" }\nstreams:\n  a: { path: /a, records: \"$[*]\" }\n";
        let e = crate::load::load_str(Path::new("t.yaml"), text).unwrap_err();
        let got: Vec<(usize, usize, String)> = e
            .diagnostics
            .into_iter()
            .map(|d| (d.location.line, d.location.col, d.message))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!((got[0].0, got[0].1), (5, 12), "{got:?}");
        assert!(got[0].2.contains("`0s` is zero"), "{got:?}");
        assert_eq!((got[1].0, got[1].1), (6, 21), "{got:?}");
        assert_eq!(got[2].0, 6, "{got:?}");
    }
}
