//! `http`: base URL, headers, auth templates, durations.

use super::templates::{self, Scope};
use super::{Ctx, Parts, join, paths};
use crate::model::Auth;

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
    let auth = |f: &str| format!("/http/auth/{f}");
    match &http.auth {
        Auth::None => {}
        Auth::Bearer { token } => templates::check(cx, parts, &auth("token"), token, Scope::CONFIG),
        Auth::ApiKey { value, .. } => {
            templates::check(cx, parts, &auth("value"), value, Scope::CONFIG);
        }
        Auth::Basic { username, password } => {
            templates::check(cx, parts, &auth("username"), username, Scope::CONFIG);
            templates::check(cx, parts, &auth("password"), password, Scope::CONFIG);
        }
        Auth::Oauth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            params,
            ..
        } => {
            templates::check(cx, parts, &auth("token_url"), token_url, Scope::CONFIG);
            templates::check(cx, parts, &auth("client_id"), client_id, Scope::CONFIG);
            templates::check(
                cx,
                parts,
                &auth("client_secret"),
                client_secret,
                Scope::CONFIG,
            );
            for (k, t) in params {
                templates::check(cx, parts, &join(&auth("params"), k), t, Scope::CONFIG);
            }
        }
    }
    paths::nonzero_duration(
        cx,
        "/http/timeout",
        &http.timeout,
        "a zero timeout fails every request at once; write e.g. `30s`",
    );
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
