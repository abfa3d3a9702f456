//! `errors` rules (in `http` and in each stream): statuses, JSONPaths, headers, messages.

use super::{Ctx, paths, templates};
use crate::error_rules::{Action, BodyMatch, ErrorRule, HeaderMatch, StatusMatch, StatusSpec};
use crate::suggest;
use crate::template::Template;

/// Variables a `fail` message may read.
const MESSAGE_VARS: [&str; 3] = ["status", "body", "headers"];

/// Checks the rules of the list at `ptr` (`/http/errors` or `/streams/<name>/errors`).
pub(crate) fn check(cx: &mut Ctx<'_>, ptr: &str, rules: &[ErrorRule]) {
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{ptr}/{i}");
        if rule.status.is_none() && rule.body.is_none() && rule.header.is_none() {
            cx.error(
                cx.value(&at),
                "this error rule has no condition, so it would match every response, successes included",
                Some("add `status`, `body` or `header`, e.g. `{ status: 404, action: skip }`".into()),
            );
        }
        if let Some(s) = &rule.status {
            status(cx, &format!("{at}/status"), s);
        }
        if let Some(b) = &rule.body {
            body(cx, &format!("{at}/body"), b);
        }
        if let Some(h) = &rule.header {
            header(cx, &format!("{at}/header"), h);
        }
        if let Some(m) = &rule.message {
            let mptr = format!("{at}/message");
            if rule.action == Action::Fail {
                message(cx, &mptr, m);
            } else {
                cx.error(
                    cx.key(&mptr),
                    format!(
                        "`message` is only used with `action: fail`; this rule's action is `{}`",
                        rule.action.name()
                    ),
                    Some("remove `message`, or write `action: fail`".into()),
                );
            }
        }
    }
}

fn status(cx: &mut Ctx<'_>, ptr: &str, s: &StatusMatch) {
    let entries: Vec<(String, &StatusSpec)> = match s {
        StatusMatch::One(e) => vec![(ptr.to_owned(), e)],
        StatusMatch::Many(v) => v
            .iter()
            .enumerate()
            .map(|(j, e)| (format!("{ptr}/{j}"), e))
            .collect(),
    };
    for (p, e) in entries {
        if let Err(why) = e.range() {
            cx.error(
                cx.value(&p),
                why,
                Some("write a code (`404`), a class (`5xx`), a range (`400-499`) or a list (`[403, 404]`)".into()),
            );
        }
    }
}

fn body(cx: &mut Ctx<'_>, ptr: &str, b: &BodyMatch) {
    match b {
        BodyMatch::Path(p) => paths::jsonpath(cx, ptr, p),
        BodyMatch::Detail(d) => {
            if let Some(p) = &d.path {
                paths::jsonpath(cx, &format!("{ptr}/path"), p);
            }
            match (&d.path, &d.contains) {
                (None, None) => cx.error(
                    cx.value(ptr),
                    "a body condition needs `path` (a JSONPath) or `contains` (a text)",
                    Some("e.g. `body: \"$.errors\"`, `body: { path: $.code, equals: 404 }` or `body: { contains: \"not found\" }`".into()),
                ),
                (Some(_), Some(_)) => cx.error(
                    cx.key(&format!("{ptr}/contains")),
                    "a body condition has either `path` or `contains`, not both",
                    Some("write two rules, or match the text with `path` and `equals`".into()),
                ),
                _ => {}
            }
            if d.equals.is_some() && d.path.is_none() {
                cx.error(
                    cx.key(&format!("{ptr}/equals")),
                    "`equals` compares the value selected by `path`, and this condition has no `path`",
                    Some("e.g. `body: { path: $.error.code, equals: \"NOT_FOUND\" }`".into()),
                );
            }
        }
    }
}

fn header(cx: &mut Ctx<'_>, ptr: &str, h: &HeaderMatch) {
    let name_ptr = match h {
        HeaderMatch::Name(_) => ptr.to_owned(),
        HeaderMatch::Detail(_) => format!("{ptr}/name"),
    };
    let name = h.name();
    // RFC 9110 token characters: anything else can never be a header's name.
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        cx.error(
            cx.value(&name_ptr),
            format!("`{name}` is not a header name"),
            Some("write the name alone, e.g. `X-Error-Code`; match its value with `{ name: X-Error-Code, equals: \"QUOTA\" }`".into()),
        );
    }
}

/// A `fail` message: a template that reads only `status`, `body` and `headers`.
fn message(cx: &mut Ctx<'_>, ptr: &str, t: &Template) {
    if let Err(e) = t.check() {
        let detail = e.0.trim_start_matches("syntax error: ");
        cx.error(
            cx.value(ptr),
            format!("template does not parse: {detail}"),
            Some("e.g. `message: \"GraphQL error: {{ body.errors[0].message }}\"`".into()),
        );
        return;
    }
    if t.is_literal() {
        return;
    }
    let Ok(vars) = t.variables() else {
        return;
    };
    let src = t.source();
    for var in &vars {
        let top = var.split('.').next().unwrap_or_default();
        if MESSAGE_VARS.contains(&top)
            || crate::template::FUNCTIONS.contains(&top)
            || ["range", "dict", "namespace"].contains(&top)
        {
            continue;
        }
        let help = suggest::did_you_mean(top, MESSAGE_VARS).or_else(|| {
            (top == "config").then(|| {
                "a message reads the response only, so no configured value (a secret, perhaps) can leak into it".to_owned()
            })
        });
        cx.error(
            templates::span_of(cx, ptr, src, 0, top),
            format!(
                "unknown variable `{top}` in an error message; available: {}",
                suggest::list(MESSAGE_VARS)
            ),
            help,
        );
    }
    if let Some(msg) = templates::unknown_filter_or_test(src) {
        cx.error(cx.value(ptr), msg, None);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// (line, col, message, help) of every diagnostic of a spec.
    fn diags(body: &str) -> Vec<(usize, usize, String, Option<String>)> {
        let text = format!(
            "version: 1\nname: t\nhttp:\n  base_url: \"https://x\"\n{body}streams:\n  a: {{ path: /a, records: $ }}\n"
        );
        match crate::load::load_str(Path::new("t.yaml"), &text) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .diagnostics
                .into_iter()
                .map(|d| (d.location.line, d.location.col, d.message, d.help))
                .collect(),
        }
    }

    #[test]
    fn good_rules_pass() {
        let body = "  errors:
    - { status: 429, action: retry }
    - { status: [403, \"404\"], action: skip }
    - { status: 5xx, header: X-Maintenance, action: end }
    - { status: 400-499, body: { path: $.code, equals: 7 }, action: fail, message: \"{{ status }}: {{ body.msg | default('?') }} {{ headers['x-id'] }}\" }
    - { body: \"$.errors\", action: fail, message: \"GraphQL: {{ body.errors[0].message }}\" }
    - { body: { contains: quota }, header: { name: X-Err, equals: q }, action: retry }
";
        assert_eq!(diags(body), Vec::new());
    }

    #[test]
    fn bad_rules_are_reported_at_their_place() {
        let body = "  errors:
    - { status: 6xx, action: skip }
    - { status: [404, 499-400], action: skip }
    - { body: \"$.errors[\", action: fail }
    - { action: skip }
    - { status: 404, action: skip, message: gone }
    - { status: 400, action: fail, message: \"{{ bdy.x }} {{ config.key }}\" }
    - { header: \"X Bad\", body: { equals: 1 }, action: retry }
";
        let d = diags(body);
        let got: Vec<(usize, usize, &str)> = d.iter().map(|x| (x.0, x.1, x.2.as_str())).collect();
        assert!(
            got.iter()
                .any(|g| g.0 == 6 && g.1 == 17 && g.2.contains("classes are 1xx to 5xx")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|g| g.0 == 7 && g.1 == 23 && g.2.contains("is empty")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|g| g.0 == 8 && g.2.contains("JSONPath `$.errors[` does not parse")),
            "{got:?}"
        );
        assert!(
            got.iter().any(|g| g.0 == 9 && g.2.contains("no condition")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|g| g.0 == 10 && g.1 == 36 && g.2.contains("only used with `action: fail`")),
            "{got:?}"
        );
        let bdy = d
            .iter()
            .find(|x| x.0 == 11 && x.2.contains("`bdy`"))
            .expect("bdy");
        assert_eq!(bdy.1, 49, "{d:?}");
        assert_eq!(bdy.3.as_deref(), Some("did you mean `body`?"));
        assert!(
            got.iter().any(|g| g.0 == 11 && g.2.contains("`config`")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|g| g.0 == 12 && g.2.contains("not a header name")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|g| g.0 == 12 && g.2.contains("needs `path`")),
            "{got:?}"
        );
    }

    #[test]
    fn unknown_actions_and_keys_get_a_suggestion() {
        let d = diags(
            "  errors:\n    - { status: 404, action: skipp }\n    - { status: 404, acton: skip }\n",
        );
        assert!(
            d.iter()
                .any(|x| x.0 == 6 && x.3.as_deref() == Some("did you mean `skip`?")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|x| x.0 == 7 && x.3.as_deref() == Some("did you mean `action`?")),
            "{d:?}"
        );
    }

    #[test]
    fn stream_rules_are_checked_too() {
        let text = "version: 1\nname: t\nhttp: { base_url: \"https://x\" }\nstreams:\n  a:\n    path: /a\n    records: $\n    errors:\n      - { status: 40x, action: skip }\n";
        let e = crate::load::load_str(Path::new("t.yaml"), text).unwrap_err();
        let d = &e.diagnostics[0];
        assert_eq!(
            (d.location.line, d.location.col),
            (9, 19),
            "{:?}",
            e.diagnostics
        );
        assert!(d.message.contains("`40x`"), "{}", d.message);
    }
}
