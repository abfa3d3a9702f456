//! `http`: base URL, headers, auth templates, durations.

use super::templates::{self, Scope};
use super::{Ctx, Parts, join, paths};

pub(crate) fn check(cx: &mut Ctx<'_>, parts: &Parts) {
    let Some(http) = &parts.http else {
        return;
    };
    templates::check(cx, parts, "/http/base_url", &http.base_url, Scope::CONFIG);
    let base = http.base_url.source().trim();
    if http.base_url.is_literal() && !(base.starts_with("http://") || base.starts_with("https://"))
    {
        cx.error(
            cx.value("/http/base_url"),
            format!("base URL `{base}` is not an http:// or https:// URL"),
            Some("write the full URL, e.g. `https://api.example.com/v1`".into()),
        );
    }
    for (k, t) in &http.headers {
        templates::check(cx, parts, &join("/http/headers", k), t, Scope::CONFIG);
    }
    for (k, t) in &http.params {
        templates::check(cx, parts, &join("/http/params", k), t, Scope::CONFIG);
    }
    super::auth::check(cx, parts, "/http/auth", &http.auth);
    for (i, origin) in http.trusted_origins.iter().enumerate() {
        if let Err(why) = origin_problem(origin) {
            cx.error(
                cx.value(&format!("/http/trusted_origins/{i}")),
                format!("trusted origin `{origin}` {why}"),
                Some(
                    "write only scheme, host and port, e.g. `https://files.example.com` or `https://api2.example.com:8443`"
                        .into(),
                ),
            );
        }
    }
    paths::nonzero_duration(
        cx,
        "/http/timeout",
        &http.timeout,
        "a zero timeout fails every request at once; write e.g. `30s`",
    );
    super::error_rules::check(cx, "/http/errors", &http.errors);
    let retry = &http.retry;
    let backoff = "a zero backoff retries at once, hammering an API that is struggling; write e.g. `1s` (to turn retries off, write `max_attempts: 1`)";
    paths::nonzero_duration(cx, "/http/retry/initial", &retry.initial, backoff);
    paths::nonzero_duration(cx, "/http/retry/max", &retry.max, backoff);
    paths::nonzero_duration(
        cx,
        "/http/retry/max_total",
        &retry.max_total,
        "a zero budget allows no wait before a retry; write e.g. `10m` (to turn retries off, write `max_attempts: 1`)",
    );
    if let (Ok(initial), Ok(max)) = (retry.initial.parse(), retry.max.parse())
        && initial > max
    {
        cx.warning(
            cx.value("/http/retry/initial"),
            format!(
                "retry.initial ({}) is longer than retry.max ({}), so every backoff is retry.max",
                retry.initial.as_str(),
                retry.max.as_str()
            ),
            None,
        );
    }
}

/// Why a `trusted_origins` entry is not a bare http(s) origin, if it is not.
pub(crate) fn origin_problem(text: &str) -> Result<(), &'static str> {
    let url = url::Url::parse(text.trim()).map_err(|_| "is not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("is not an http:// or https:// origin");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("carries a user name or password");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("has a path, query or fragment; an origin is scheme, host and port only");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::origin_problem;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for ok in [
            "https://files.example.com",
            "https://files.example.com/",
            "http://127.0.0.2:8080",
            "https://[::1]:8443",
        ] {
            assert_eq!(origin_problem(ok), Ok(()), "{ok}");
        }
        for bad in [
            "files.example.com",
            "ftp://files.example.com",
            "file:///etc",
            "https://files.example.com/v1",
            "https://files.example.com?x=1",
            "https://u:p@files.example.com",
            "https://files.example.com:99999",
            "https://",
        ] {
            assert!(origin_problem(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_trusted_origin_is_reported_at_its_position() {
        let text = "version: 1\nname: t\nhttp:\n  base_url: https://x\n  trusted_origins:\n    - https://ok.example.com\n    - https://files.example.com/v1\nstreams:\n  a: { path: /a, records: $ }\n";
        let err = crate::load::load_str(std::path::Path::new("t.yaml"), text).unwrap_err();
        let d: Vec<_> = err
            .diagnostics
            .iter()
            .map(|d| (d.location.line, d.location.col, d.message.as_str()))
            .collect();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].0, d[0].1), (7, 7), "{d:?}");
        assert!(d[0].2.contains("https://files.example.com/v1"), "{d:?}");
    }
}
