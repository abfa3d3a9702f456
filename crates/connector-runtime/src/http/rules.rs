//! Error rules at run time: which rule a response matches, the `fail` message it makes,
//! and the skips counted per rule and logged once at the end of the stream.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use connector_spec::{ErrorRule, Spec, Stream};
use reqwest::header::HeaderMap;
use serde_json::Value;
use serde_json::value::RawValue;

use super::Incoming;
use crate::paginate::Stop;
use crate::report::Reporter;
use crate::stats::Stats;

/// Characters of a non-JSON body offered to a message template as `body`.
const BODY_TEXT: usize = 4096;

/// Characters of a rendered `fail` message kept (after that it is cut, with a note).
const MESSAGE_MAX: usize = 500;

/// What a stream's request came to.
#[derive(Debug)]
pub enum Reply {
    /// A page to read (a 2xx that no rule took).
    Page(Incoming),
    /// A `skip` rule took the response.
    Skip(Ruled),
    /// An `end` rule took the response.
    End(Ruled),
}

/// A response a `skip` or `end` rule took.
#[derive(Debug)]
pub struct Ruled {
    /// Index of the rule in [`StreamRules`].
    pub rule: usize,
    /// Its status.
    pub status: u16,
    /// The request, fit to print (`GET https://...`, secrets masked).
    pub shown: String,
}

/// The error rules one stream's requests go through: its own first, then `http.errors`.
#[derive(Debug, Default)]
pub struct StreamRules {
    /// The stream's name, for log lines.
    stream: String,
    rules: Vec<(String, ErrorRule)>,
    /// Whether some rule may match a 2xx response, whose body must then be looked at.
    on_success: bool,
    skips: Vec<AtomicU64>,
    /// The last response each rule skipped, for the end-of-stream line.
    last: Mutex<Vec<Option<String>>>,
}

impl StreamRules {
    /// The rules of stream `name`, labelled by where they are written.
    pub fn new(spec: &Spec, name: &str, stream: &Stream) -> Self {
        let rules: Vec<(String, ErrorRule)> = stream
            .errors
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("streams.{name}.errors[{i}]"), r.clone()))
            .chain(
                spec.http
                    .errors
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (format!("http.errors[{i}]"), r.clone())),
            )
            .collect();
        Self {
            on_success: rules.iter().any(|(_, r)| r.may_match_success()),
            skips: rules.iter().map(|_| AtomicU64::new(0)).collect(),
            last: Mutex::new(vec![None; rules.len()]),
            rules,
            stream: name.to_owned(),
        }
    }

    /// Whether there is no rule at all (the fast path: responses handled as always).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Where the rule at `i` is written, e.g. `streams.issues.errors[0]`.
    pub fn label(&self, i: usize) -> &str {
        self.rules.get(i).map_or("errors", |(l, _)| l.as_str())
    }

    /// The first rule whose every condition holds for the response, if any.
    pub fn decide(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<(usize, &ErrorRule)> {
        if self.rules.is_empty() || ((200..300).contains(&status) && !self.on_success) {
            return None;
        }
        // Parsed at most once, and only when a rule gets as far as a JSONPath.
        let mut json: Option<Option<Value>> = None;
        self.rules.iter().enumerate().find_map(|(i, (_, rule))| {
            matches(rule, status, headers, body, &mut json).then_some((i, rule))
        })
    }

    /// Turns what a request came to into the page to read, or the stop of this partition:
    /// a skip is counted, an `end` stops every partition of the stream (`stop_all`).
    pub fn settle(
        &self,
        reply: Reply,
        stats: &Stats,
        stop_all: &AtomicBool,
    ) -> Result<Incoming, Stop> {
        match reply {
            Reply::Page(p) => Ok(p),
            Reply::Skip(r) => {
                Stats::add(&stats.skipped, 1);
                if let Some(n) = self.skips.get(r.rule) {
                    n.fetch_add(1, Relaxed);
                }
                if let Ok(mut last) = self.last.lock()
                    && let Some(slot) = last.get_mut(r.rule)
                {
                    *slot = Some(format!("{} from {}", r.status, r.shown));
                }
                Err(Stop::Skipped)
            }
            Reply::End(r) => {
                tracing::info!(
                    "{}: {} from {} matched {} ({}): the stream ends here",
                    self.stream,
                    r.status,
                    r.shown,
                    self.label(r.rule),
                    self.rules
                        .get(r.rule)
                        .map(|(_, x)| x.describe())
                        .unwrap_or_default()
                );
                stop_all.store(true, Relaxed);
                Err(Stop::Ended)
            }
        }
    }

    /// Says once per rule how many responses it skipped, with the last one.
    pub fn report(&self, stream: &str, reporter: &dyn Reporter) {
        let last = self.last.lock().map(|l| l.clone()).unwrap_or_default();
        for (i, (label, rule)) in self.rules.iter().enumerate() {
            let n = self.skips.get(i).map_or(0, |n| n.load(Relaxed));
            if n == 0 {
                continue;
            }
            let what = if n == 1 { "response" } else { "responses" };
            let example = last
                .get(i)
                .and_then(Option::as_ref)
                .map(|l| format!("; the last: {l}"))
                .unwrap_or_default();
            reporter.warning(
                stream,
                &format!(
                    "{n} {what} skipped by {label} ({}){example}",
                    rule.describe()
                ),
            );
        }
    }
}

/// Whether every condition the rule gives holds; the cheap ones first.
fn matches(
    rule: &ErrorRule,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    json: &mut Option<Option<Value>>,
) -> bool {
    if rule.status.as_ref().is_some_and(|s| !s.contains(status)) {
        return false;
    }
    if let Some(h) = &rule.header {
        let values = headers
            .get_all(h.name())
            .iter()
            .filter_map(|v| v.to_str().ok());
        if !h.accepts(values) {
            return false;
        }
    }
    let Some(b) = &rule.body else {
        return true;
    };
    if let Some(text) = b.contains()
        && !String::from_utf8_lossy(body).contains(text)
    {
        return false;
    }
    let Some(path) = b.path() else {
        return true;
    };
    if let Some((fields, each)) = path.simple_fields() {
        return walk_raw(body, fields, each).is_some_and(|found| {
            let refs: Vec<&Value> = found.iter().collect();
            b.selected(&refs)
        });
    }
    let parsed = json.get_or_insert_with(|| serde_json::from_slice(body).ok());
    let Some(v) = parsed else {
        return false;
    };
    path.query(v).is_ok_and(|found| b.selected(&found))
}

/// What a simple path (`$.a.b`, `$.a[*]`) selects, found by walking the raw JSON: only the
/// selected value is built, so a rule on every 2xx page (`$.errors`) costs one scan of
/// the page, not a second tree of its records. `None`: not JSON, or nothing there.
fn walk_raw(body: &[u8], fields: &[String], each: bool) -> Option<Vec<Value>> {
    let mut text = std::str::from_utf8(body).ok()?;
    for f in fields {
        // Not an object (or not JSON): the path selects nothing, as JSONPath says.
        let map: HashMap<String, &RawValue> = serde_json::from_str(text).ok()?;
        text = map.get(f.as_str())?.get();
    }
    let node: Value = serde_json::from_str(text).ok()?;
    Some(match (each, node) {
        (false, v) => vec![v],
        (true, Value::Array(items)) => items,
        (true, Value::Object(m)) => m.into_iter().map(|(_, v)| v).collect(),
        (true, _) => Vec::new(),
    })
}

/// The `fail` message of a rule, rendered over the response; the API's text is escaped
/// and cut, and the caller masks secrets. Without a template (or when it fails to render)
/// a message that names the rule.
pub fn message(
    rule: &ErrorRule,
    label: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> String {
    let plain = format!("matched {label} ({})", rule.describe());
    let Some(t) = &rule.message else {
        return plain;
    };
    let ctx = serde_json::json!({
        "status": status,
        "body": body_value(body),
        "headers": header_map(headers),
    });
    match t.render(&ctx) {
        Ok(text) => {
            let text =
                crate::printable::escape(&crate::printable::cut(&text, MESSAGE_MAX)).into_owned();
            format!("{text} ({label})")
        }
        Err(e) => format!(
            "{plain}; its message did not render: {}",
            crate::printable::api_text(&e.to_string())
        ),
    }
}

/// The body as JSON, or as text (cut) when it is not JSON.
fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(body);
        Value::String(crate::printable::cut(&text, BODY_TEXT).into_owned())
    })
}

/// Response headers by lowercase name, repeated ones joined with `, `. `Set-Cookie`
/// is left out: it may carry a session.
fn header_map(headers: &HeaderMap) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for name in headers.keys() {
        if name == reqwest::header::SET_COOKIE {
            continue;
        }
        let joined: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        out.insert(name.as_str().to_owned(), Value::String(joined.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn rules(http: &str, stream: &str) -> StreamRules {
        let text = format!(
            "version: 1\nname: t\nhttp:\n  base_url: https://x\n  errors: {http}\nstreams:\n  s:\n    path: /s\n    records: $\n    errors: {stream}\n"
        );
        let spec = connector_spec::load_str(std::path::Path::new("t.yaml"), &text)
            .unwrap()
            .spec;
        StreamRules::new(&spec, "s", &spec.streams["s"])
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn pick(r: &StreamRules, status: u16, h: &[(&str, &str)], body: &str) -> Option<String> {
        r.decide(status, &headers(h), body.as_bytes())
            .map(|(i, _)| r.label(i).to_owned())
    }

    #[test]
    fn the_stream_rules_come_first_then_http_then_nothing() {
        let r = rules(
            "[{status: 4xx, action: fail}, {status: 429, action: retry}]",
            "[{status: [403, 404], action: skip}]",
        );
        assert_eq!(
            pick(&r, 404, &[], "").as_deref(),
            Some("streams.s.errors[0]")
        );
        assert_eq!(
            pick(&r, 429, &[], "").as_deref(),
            Some("http.errors[0]"),
            "first match wins"
        );
        assert_eq!(pick(&r, 500, &[], ""), None);
        assert_eq!(pick(&r, 200, &[], "{}"), None);
    }

    #[test]
    fn every_given_condition_must_hold() {
        let r = rules(
            "[]",
            "[{status: 200, body: $.errors, action: fail}, {status: 400-499, body: {contains: quota}, header: {name: X-Kind, equals: soft}, action: retry}, {header: X-Gone, action: end}]",
        );
        assert_eq!(pick(&r, 200, &[], r#"{"data":{}}"#), None);
        assert_eq!(
            pick(&r, 200, &[], r#"{"errors":[]}"#),
            None,
            "an empty list is no error"
        );
        assert_eq!(
            pick(&r, 200, &[], r#"{"errors":[{"message":"x"}]}"#).as_deref(),
            Some("streams.s.errors[0]")
        );
        assert_eq!(pick(&r, 200, &[], "not json"), None);
        assert_eq!(
            pick(&r, 200, &[], r#"[{"errors": [1]}]"#),
            None,
            "not an object"
        );
        assert_eq!(
            pick(&r, 200, &[], r#"{"errors": [1], "data": {"#),
            None,
            "cut short"
        );
        assert_eq!(
            pick(&r, 200, &[], r#"{"errors": null, "errors": [{"m": 1}]}"#).as_deref(),
            Some("streams.s.errors[0]"),
            "the last duplicate wins, as in a parsed tree"
        );
        assert_eq!(
            pick(&r, 403, &[("x-kind", "soft")], "over quota").as_deref(),
            Some("streams.s.errors[1]")
        );
        assert_eq!(pick(&r, 403, &[("x-kind", "hard")], "over quota"), None);
        assert_eq!(pick(&r, 403, &[("x-kind", "soft")], "no"), None);
        assert_eq!(
            pick(&r, 200, &[("X-Gone", "1")], "[]").as_deref(),
            Some("streams.s.errors[2]")
        );
    }

    #[test]
    fn messages_render_the_response_escaped_and_cut() {
        let r = rules(
            "[]",
            "[{status: 400, action: fail, message: \"bad: {{ body.errorMessages[0] }} [{{ status }}] {{ headers['x-id'] }}\"}]",
        );
        let (i, rule) = r.decide(400, &headers(&[]), b"{}").unwrap();
        let h = headers(&[("X-Id", "7"), ("Set-Cookie", "s=secret")]);
        let m = message(
            rule,
            r.label(i),
            400,
            &h,
            br#"{"errorMessages":["line\nforged \u001b[31m"]}"#,
        );
        assert_eq!(
            m,
            "bad: line\\nforged \\u{1b}[31m [400] 7 (streams.s.errors[0])"
        );
        let long = format!(r#"{{"errorMessages":["{}"]}}"#, "x".repeat(2000));
        let m = message(rule, r.label(i), 400, &h, long.as_bytes());
        assert!(m.len() < 700 && m.contains("bytes in all"), "{m}");
        let m = message(rule, r.label(i), 400, &h, b"<html>");
        assert!(m.contains("did not render"), "{m}");
        let r = rules(
            "[]",
            "[{status: 400, action: fail, message: \"{{ headers['set-cookie'] }}\"}]",
        );
        let (i, rule) = r.decide(400, &headers(&[]), b"{}").unwrap();
        assert!(message(rule, r.label(i), 400, &h, b"{}").contains("did not render"));
    }

    #[test]
    fn skips_are_counted_per_rule() {
        let r = rules("[{status: 404, action: skip}]", "[]");
        let stats = Stats::default();
        let stop = AtomicBool::new(false);
        for _ in 0..3 {
            let reply = Reply::Skip(Ruled {
                rule: 0,
                status: 404,
                shown: "GET /x".into(),
            });
            assert!(matches!(r.settle(reply, &stats, &stop), Err(Stop::Skipped)));
        }
        assert_eq!(stats.skipped.load(Relaxed), 3);
        assert!(!stop.load(Relaxed));
        let reply = Reply::End(Ruled {
            rule: 0,
            status: 404,
            shown: "GET /x".into(),
        });
        assert!(matches!(r.settle(reply, &stats, &stop), Err(Stop::Ended)));
        assert!(stop.load(Relaxed));
    }
}
