//! `http.auth`: every kind's templates and JSONPaths, and the choices of `kind: select`.

use serde_json::Value;

use super::templates::{self, Scope};
use super::{Ctx, Parts, join, paths};
use crate::model::Auth;
use crate::suggest;
use crate::template::Template;

/// Checks the auth block at `ptr` (`/http/auth`, or an option of a `select`).
pub(crate) fn check(cx: &mut Ctx<'_>, parts: &Parts, ptr: &str, auth: &Auth) {
    let f = |name: &str| join(ptr, name);
    let t = |cx: &mut Ctx<'_>, name: &str, tpl: &Template| {
        templates::check(cx, parts, &f(name), tpl, Scope::CONFIG);
    };
    match auth {
        Auth::None => {}
        Auth::Bearer { token } => t(cx, "token", token),
        Auth::ApiKey { value, .. } => t(cx, "value", value),
        Auth::Basic { username, password } => {
            t(cx, "username", username);
            t(cx, "password", password);
        }
        Auth::Oauth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            params,
            ..
        }
        | Auth::Oauth2RefreshToken {
            token_url,
            client_id,
            client_secret,
            params,
            ..
        } => {
            t(cx, "token_url", token_url);
            t(cx, "client_id", client_id);
            t(cx, "client_secret", client_secret);
            if let Auth::Oauth2RefreshToken { refresh_token, .. } = auth {
                t(cx, "refresh_token", refresh_token);
            }
            for (k, v) in params {
                templates::check(cx, parts, &join(&f("params"), k), v, Scope::CONFIG);
            }
        }
        Auth::Session { .. } => session(cx, parts, ptr, auth),
        Auth::Jwt { .. } => jwt(cx, parts, ptr, auth),
        Auth::Select { select, options } => {
            t(cx, "select", select);
            choice(cx, parts, ptr, select, options);
        }
    }
}

fn session(cx: &mut Ctx<'_>, parts: &Parts, ptr: &str, auth: &Auth) {
    let Auth::Session {
        login,
        token,
        expires_in,
        lifetime,
        value,
        ..
    } = auth
    else {
        return;
    };
    let l = join(ptr, "login");
    templates::check(cx, parts, &join(&l, "url"), &login.url, Scope::CONFIG);
    for (k, v) in &login.headers {
        templates::check(cx, parts, &join(&join(&l, "headers"), k), v, Scope::CONFIG);
    }
    for (k, v) in &login.form {
        templates::check(cx, parts, &join(&join(&l, "form"), k), v, Scope::CONFIG);
    }
    if let Some(body) = &login.body {
        templates::check_body(cx, parts, &join(&l, "body"), body, Scope::CONFIG);
        if !login.form.is_empty() {
            cx.error(
                cx.key(&join(&l, "form")),
                "a login request has a JSON `body` or `form` fields, not both",
                Some("keep the one the API's login endpoint reads".into()),
            );
        }
    }
    paths::jsonpath(cx, &join(ptr, "token"), token);
    if let Some(p) = expires_in {
        paths::jsonpath(cx, &join(ptr, "expires_in"), p);
    }
    if let Some(d) = lifetime {
        paths::nonzero_duration(
            cx,
            &join(ptr, "lifetime"),
            d,
            "a zero lifetime logs in again before every request; write e.g. `1h`, or leave it out to keep the token until a 401",
        );
    }
    let scope = Scope {
        token: true,
        ..Scope::CONFIG
    };
    templates::check(cx, parts, &join(ptr, "value"), value, scope);
    if !value.source().contains("token") {
        cx.error(
            cx.value(&join(ptr, "value")),
            "the session `value` does not use `{{ token }}`, so the session token is never sent",
            Some("e.g. `value: \"Token {{ token }}\"`".into()),
        );
    }
}

fn jwt(cx: &mut Ctx<'_>, parts: &Parts, ptr: &str, auth: &Auth) {
    let Auth::Jwt {
        key,
        key_id,
        claims,
        lifetime,
        backdate,
        token_url,
        params,
        ..
    } = auth
    else {
        return;
    };
    templates::check(cx, parts, &join(ptr, "key"), key, Scope::CONFIG);
    if key.is_literal() && !key.source().is_empty() {
        cx.warning(
            cx.value(&join(ptr, "key")),
            "the signing key is written in the spec: anyone who reads the spec can sign as you",
            Some(
                "declare a `secret: true` config value and write `key: \"{{ config.private_key }}\"`"
                    .into(),
            ),
        );
    }
    if let Some(k) = key_id {
        templates::check(cx, parts, &join(ptr, "key_id"), k, Scope::CONFIG);
    }
    for (name, v) in claims {
        let at = join(&join(ptr, "claims"), name);
        if crate::auth::COMPUTED_CLAIMS.contains(&name.as_str()) {
            cx.error(
                cx.key(&at),
                format!(
                    "claim `{name}` is computed from the clock and `lifetime`; it cannot be set"
                ),
                Some("remove it; set `lifetime` (and `backdate`) instead".into()),
            );
            continue;
        }
        templates::check(cx, parts, &at, v, Scope::CONFIG);
    }
    paths::nonzero_duration(
        cx,
        &join(ptr, "lifetime"),
        lifetime,
        "a zero lifetime makes a JWT that has expired when it is made; write e.g. `10m`",
    );
    paths::duration(cx, &join(ptr, "backdate"), backdate);
    if let Some(u) = token_url {
        templates::check(cx, parts, &join(ptr, "token_url"), u, Scope::CONFIG);
    }
    for (k, v) in params {
        templates::check(cx, parts, &join(&join(ptr, "params"), k), v, Scope::CONFIG);
    }
}

/// The options of a `select`: none nested, at least one, and the value chosen (when the
/// spec says it: a literal, or a config value with a default) is one of them.
fn choice(
    cx: &mut Ctx<'_>,
    parts: &Parts,
    ptr: &str,
    select: &Template,
    options: &indexmap::IndexMap<String, Auth>,
) {
    let opts = join(ptr, "options");
    if options.is_empty() {
        cx.error(
            cx.value(&opts),
            "`select` has no options",
            Some("add one auth block per choice, e.g. `options: { api_key: { kind: api_key, ... } }`".into()),
        );
    }
    for (name, option) in options {
        let at = join(&opts, name);
        if matches!(option, Auth::Select { .. }) {
            cx.error(
                cx.value(&join(&at, "kind")),
                "an option of `select` cannot be another `select`",
                Some("list every choice in one `select`".into()),
            );
            continue;
        }
        check(cx, parts, &at, option);
    }
    let names = || options.keys().map(String::as_str);
    let (chosen, at, whence) = if select.is_literal() {
        (
            Some(select.source().trim().to_owned()),
            join(ptr, "select"),
            String::new(),
        )
    } else {
        match config_default(parts, select) {
            Some((key, v)) => (
                Some(v),
                format!("/config/{key}/default"),
                format!(" (the default of `config.{key}`)"),
            ),
            None => (None, String::new(), String::new()),
        }
    };
    if let Some(v) = chosen
        && !options.contains_key(&v)
        && !options.is_empty()
    {
        cx.error(
            cx.value(&at),
            format!(
                "auth option `{v}`{whence} is not one of the options of `select`: {}",
                suggest::list(names())
            ),
            suggest::did_you_mean(&v, names()),
        );
    }
}

/// For `select: "{{ config.x }}"`, the key `x` and its default, when it has a text one.
fn config_default(parts: &Parts, select: &Template) -> Option<(String, String)> {
    let expr = select.expression()?;
    let key = expr.trim().strip_prefix("config.")?;
    if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let (_, decl) = parts.config.iter().find(|(n, _)| n == key)?;
    match decl.default.as_ref()? {
        Value::String(s) if !s.contains("{{") => Some((key.to_owned(), s.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    /// (line, col, message, help) of every error of a spec whose `http:` block is `http`.
    fn errors(config: &str, http: &str) -> Vec<(usize, usize, String, Option<String>)> {
        let text = format!(
            "version: 1\nname: t\nconfig:\n  k: {{ type: string, secret: true }}\n{config}http:\n  base_url: https://x\n{http}streams:\n  a: {{ path: /a, records: $ }}\n"
        );
        super::super::errors_in(&text)
            .into_iter()
            .map(|d| (d.location.line, d.location.col, d.message, d.help))
            .collect()
    }

    #[test]
    fn every_new_kind_loads_when_right() {
        let ok = [
            "  auth: { kind: oauth2_refresh_token, token_url: https://a/t, client_id: c, refresh_token: \"{{ config.k }}\" }\n",
            "  auth:\n    kind: session\n    login: { url: /login, body: { p: \"{{ config.k }}\" } }\n    token: $.token\n    expires_in: $.ttl\n    lifetime: 1h\n    value: \"Token {{ token }}\"\n",
            "  auth: { kind: jwt, algorithm: RS256, key: \"{{ config.k }}\", claims: { iss: \"1\" }, token_url: https://a/t }\n",
            "  auth:\n    kind: select\n    select: \"{{ config.k }}\"\n    options:\n      a: { kind: bearer, token: \"{{ config.k }}\" }\n      b: { kind: jwt, algorithm: HS256, key: \"{{ config.k }}\" }\n",
        ];
        for http in ok {
            assert_eq!(errors("", http), vec![], "{http}");
        }
    }

    #[test]
    fn session_mistakes_are_reported_at_their_position() {
        let e = errors(
            "",
            "  auth:\n    kind: session\n    login: { url: /login, body: { a: 1 }, form: { b: c } }\n    token: $.[\n    lifetime: 0s\n    value: \"Token {{ tokn }}\"\n",
        );
        let msgs: Vec<&str> = e.iter().map(|d| d.2.as_str()).collect();
        assert!(msgs.iter().any(|m| m.contains("not both")), "{e:?}");
        assert!(msgs.iter().any(|m| m.contains("does not parse")), "{e:?}");
        assert!(e.iter().any(|d| d.0 == 11), "lifetime on its line: {e:?}");
        let unknown = e.iter().find(|d| d.2.contains("`tokn`")).unwrap();
        assert_eq!(unknown.0, 12, "{e:?}");
        assert_eq!(unknown.3.as_deref(), Some("did you mean `token`?"));
    }

    #[test]
    fn jwt_claims_computed_from_the_clock_cannot_be_set() {
        let e = errors(
            "",
            "  auth:\n    kind: jwt\n    algorithm: ES256\n    key: \"{{ config.k }}\"\n    claims: { iss: x, exp: \"9\" }\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, 11);
        assert!(e[0].2.contains("claim `exp`"), "{e:?}");
        let e = errors(
            "",
            "  auth: { kind: jwt, algorithm: RS257, key: \"{{ config.k }}\" }\n",
        );
        assert!(!e.is_empty(), "an unknown algorithm is refused");
    }

    #[test]
    fn a_select_value_that_names_no_option_gets_a_did_you_mean() {
        let http = "  auth:\n    kind: select\n    select: \"{{ config.auth_type }}\"\n    options:\n      api_key: { kind: bearer, token: \"{{ config.k }}\" }\n      oauth2: { kind: bearer, token: \"{{ config.k }}\" }\n";
        let e = errors("  auth_type: { type: string, default: apikey }\n", http);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].0, e[0].1), (5, 39), "{e:?}");
        assert!(e[0].2.contains("`apikey`"), "{e:?}");
        assert_eq!(e[0].3.as_deref(), Some("did you mean `api_key`?"));
        // A literal choice is checked where it is written.
        let lit = http.replace("\"{{ config.auth_type }}\"", "oauth");
        let e = errors("", &lit);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, 9, "{e:?}");
        assert_eq!(e[0].3.as_deref(), Some("did you mean `oauth2`?"));
        // No select inside a select.
        let nested = "  auth:\n    kind: select\n    select: a\n    options:\n      a: { kind: select, select: b, options: { b: { kind: none } } }\n";
        let e = errors("", nested);
        assert!(e.iter().any(|d| d.2.contains("cannot be another")), "{e:?}");
    }
}
