//! The auth kinds of issue 13 end to end: OAuth2 refresh tokens with rotation, session
//! logins, signed JWTs, and `select`. Token and login servers run on a second loopback
//! origin (127.0.0.2); every test checks that each credential reached its own origin only
//! and that no secret reached the output, even with `RUNTIME_LOG=trace`.
//!
//! The keys in tests/fixtures/jwt were made for these tests only (`openssl genpkey`).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::{Value, json};
use support::{Logged, Reply, Run, Sandbox, recs, serve, serve_on, spec_full};

const TRACE: &[(&str, &str)] = &[("RUNTIME_LOG", "trace")];

/// Three pages of records at `/items` (two records each), when `ok` accepts the request.
fn api(ok: impl Fn(&Logged) -> bool + Send + Sync + 'static) -> support::Server {
    serve(move |r| {
        if !ok(r) {
            return Reply::status(401, "bad credentials");
        }
        let page = r.num("page", 1);
        let ids: Vec<usize> = ((page - 1) * 2 + 1..=(page * 2).min(5)).collect();
        Reply::json(format!(r#"{{"items": [{}]}}"#, recs(ids)))
    })
}

const PAGED: &str = r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: page_number, page_param: page, size: 2 }
"#;

/// Everything a server received, headers, query and bodies, as one text to search.
fn seen(srv: &support::Server) -> String {
    srv.requests()
        .iter()
        .map(|r| {
            format!(
                "{} {} {:?} {:?} {}",
                r.method,
                r.path,
                r.headers,
                r.query,
                String::from_utf8_lossy(&r.body)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails if a secret is in stdout or stderr or an output file other than the token file.
#[track_caller]
fn no_leak(sb: &Sandbox, run: &Run, secrets: &[&str]) {
    for s in secrets {
        run.expect_no_leak(s);
        for f in sb.out_files() {
            if f.ends_with(".tokens.json") {
                continue;
            }
            let text = std::fs::read_to_string(sb.out().join(&f)).unwrap_or_default();
            assert!(!text.contains(s), "secret {s} in output file {f}");
        }
    }
}

fn form_value(r: &Logged, name: &str) -> Option<String> {
    r.form()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

// ---------------------------------------------------------------- refresh tokens

/// A token server that rotates: `rt-N` buys `at-N` and the new refresh token `rt-(N+1)`;
/// any other refresh token is `invalid_grant`, as a rotating API treats a used one.
fn rotating_token_server() -> support::Server {
    let next = Arc::new(AtomicUsize::new(1));
    serve_on("127.0.0.2", move |r| {
        let n = next.load(Ordering::SeqCst);
        let ok = form_value(r, "grant_type").as_deref() == Some("refresh_token")
            && form_value(r, "refresh_token") == Some(format!("rt-{n}"))
            && form_value(r, "client_secret").as_deref() == Some("cs-secret-1");
        if !ok {
            return Reply::json(r#"{"error": "invalid_grant"}"#).with_status(400);
        }
        next.store(n + 1, Ordering::SeqCst);
        Reply::value(&json!({
            "access_token": format!("at-{n}-access"),
            "token_type": "bearer",
            "expires_in": 3600,
            "refresh_token": format!("rt-{}", n + 1),
        }))
    })
}

fn refresh_spec(token_url: &str) -> String {
    spec_full(
        r#"  client_secret: { type: string, secret: true }
  refresh_token: { type: string, secret: true }"#,
        &format!(
            r#"  auth:
    kind: oauth2_refresh_token
    token_url: "{token_url}/oauth/token"
    client_id: app-1
    client_secret: "{{{{ config.client_secret }}}}"
    refresh_token: "{{{{ config.refresh_token }}}}""#
        ),
        PAGED,
    )
}

#[test]
fn a_rotated_refresh_token_is_saved_owner_only_before_use_and_read_back_next_run() {
    let tokens = rotating_token_server();
    let sb = Sandbox::new();
    let file = sb.out().join("state.tokens.json");
    // The API checks, at the first request with a new access token, that the refresh token
    // that came with it is already on disk: a kill -9 from then on loses nothing.
    let durable = Arc::new(AtomicBool::new(true));
    let (d, f) = (durable.clone(), file.clone());
    let srv = api(move |r| {
        let Some(n) = r
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer at-"))
            .and_then(|h| h.strip_suffix("-access"))
        else {
            return false;
        };
        let saved = std::fs::read_to_string(&f).unwrap_or_default();
        let next: usize = n.parse::<usize>().unwrap() + 1;
        if !saved.contains(&format!("\"rt-{next}\"")) {
            d.store(false, Ordering::SeqCst);
        }
        true
    });
    sb.spec(&refresh_spec(&tokens.url()));
    let sets = [
        "--set",
        "client_secret=cs-secret-1",
        "--set",
        "refresh_token=rt-1",
    ];
    let run = sb.sync_env(&srv, &sets, TRACE);
    run.expect_code(0);
    assert_eq!(sb.lines("items").len(), 5);
    assert!(durable.load(Ordering::SeqCst), "used before it was saved");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
    assert!(std::fs::read_to_string(&file).unwrap().contains("\"rt-2\""));

    // The next run sends the saved rt-2, not the configured rt-1 (which the API now refuses).
    let run2 = sb.sync_env(&srv, &sets, TRACE);
    run2.expect_code(0);
    let sent: Vec<Option<String>> = tokens
        .requests()
        .iter()
        .map(|r| form_value(r, "refresh_token"))
        .collect();
    assert_eq!(
        sent,
        vec![Some("rt-1".to_owned()), Some("rt-2".to_owned())],
        "one token request per run"
    );
    assert!(std::fs::read_to_string(&file).unwrap().contains("\"rt-3\""));

    // Each credential went to its own origin only.
    let api_saw = seen(&srv);
    let token_saw = seen(&tokens);
    for s in ["rt-1", "rt-2", "rt-3", "cs-secret-1"] {
        assert!(!api_saw.contains(s), "the API saw {s}");
    }
    assert!(
        !token_saw.contains("-access"),
        "the token server saw an access token"
    );
    for r in [&run, &run2] {
        no_leak(
            &sb,
            r,
            &[
                "rt-1",
                "rt-2",
                "rt-3",
                "at-1-access",
                "at-2-access",
                "cs-secret-1",
            ],
        );
    }
}

#[test]
fn a_refused_refresh_token_says_to_authorise_again_and_a_new_configured_one_wins() {
    let tokens = rotating_token_server();
    let srv = api(|r| r.header("authorization").is_some());
    let sb = Sandbox::new();
    sb.spec(&refresh_spec(&tokens.url()));
    // A stale token file from an earlier authorisation (rt-old) is ignored once the user
    // configures a new refresh token: the file is keyed to the configured one.
    std::fs::create_dir_all(sb.out()).unwrap();
    std::fs::write(
        sb.out().join("state.tokens.json"),
        r#"{"version":1,"configured_sha256":"00","refresh_token":"rt-stale"}"#,
    )
    .unwrap();
    let run = sb.sync_env(
        &srv,
        &[
            "--set",
            "client_secret=cs-secret-1",
            "--set",
            "refresh_token=rt-wrong",
        ],
        TRACE,
    );
    run.expect_code(1).expect_stderr(&[
        "answered 400 (invalid_grant)",
        "authorise the app again and set config.refresh_token",
    ]);
    no_leak(&sb, &run, &["rt-wrong", "rt-stale", "cs-secret-1"]);
    assert_eq!(
        form_value(&tokens.requests()[0], "refresh_token").as_deref(),
        Some("rt-wrong")
    );
    assert!(srv.requests().is_empty(), "no API request without a token");
}

#[test]
fn a_token_response_without_an_access_token_is_a_clear_error() {
    let tokens = serve_on("127.0.0.2", |_| Reply::json(r#"{"token_type": "bearer"}"#));
    let srv = api(|_| true);
    let sb = Sandbox::new();
    sb.spec(&refresh_spec(&tokens.url()));
    let run = sb.sync(
        &srv,
        &[
            "--set",
            "client_secret=cs-secret-1",
            "--set",
            "refresh_token=rt-1",
        ],
    );
    run.expect_code(1)
        .expect_stderr(&["has no `access_token`", "/oauth/token"]);
    assert!(srv.requests().is_empty());
}

// ---------------------------------------------------------------- sessions

/// A login server: `user`/`pw-secret` in a JSON body buys `sess-N`, valid `ttl` seconds.
fn login_server(ttl: u64) -> support::Server {
    let n = Arc::new(AtomicUsize::new(0));
    serve_on("127.0.0.2", move |r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        if r.path != "/auth/login" || body != json!({"username": "user", "password": "pw-secret"}) {
            return Reply::status(403, "no");
        }
        let n = n.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::value(&json!({"data": {"token": format!("sess-{n}-tok")}, "ttl": ttl}))
    })
}

fn session_spec(login: &str, extra: &str) -> String {
    spec_full(
        "  password: { type: string, secret: true }",
        &format!(
            r#"  auth:
    kind: session
    login:
      url: "{login}/auth/login"
      body: {{ username: user, password: "{{{{ config.password }}}}" }}
    token: $.data.token
    expires_in: $.ttl
    value: "Token {{{{ token }}}}"
{extra}"#
        ),
        PAGED,
    )
}

#[test]
fn a_session_token_is_reused_then_renewed_once_after_a_401() {
    let login = login_server(3600);
    // The API takes sess-1 for the first page only, as if the session ended server-side.
    let srv = api(|r| match r.header("authorization") {
        Some("Token sess-1-tok") => r.num("page", 1) == 1,
        Some("Token sess-2-tok") => true,
        _ => false,
    });
    let sb = Sandbox::new();
    sb.spec(&session_spec(&login.url(), ""));
    let run = sb.sync_env(&srv, &["--set", "password=pw-secret"], TRACE);
    run.expect_code(0).expect_stderr(&["logging in again"]);
    assert_eq!(sb.lines("items").len(), 5);
    assert_eq!(login.requests().len(), 2, "one login, one after the 401");
    let auths: Vec<String> = srv
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        auths,
        [
            "Token sess-1-tok",
            "Token sess-1-tok",
            "Token sess-2-tok",
            "Token sess-2-tok"
        ]
    );
    assert!(
        !seen(&srv).contains("pw-secret"),
        "the API saw the password"
    );
    assert!(
        !seen(&login).contains("sess-"),
        "the login server saw a session token"
    );
    no_leak(&sb, &run, &["pw-secret", "sess-1-tok", "sess-2-tok"]);
}

#[test]
fn a_second_401_after_a_fresh_login_is_an_error_not_a_loop() {
    let login = login_server(3600);
    let srv = api(|_| false);
    let sb = Sandbox::new();
    sb.spec(&session_spec(&login.url(), ""));
    let run = sb.sync_env(&srv, &["--set", "password=pw-secret"], TRACE);
    run.expect_code(1).expect_stderr(&["401"]);
    assert_eq!(login.requests().len(), 2);
    assert_eq!(srv.requests().len(), 2);
    no_leak(&sb, &run, &["pw-secret", "sess-1-tok", "sess-2-tok"]);
}

#[test]
fn a_refused_login_names_the_config_keys_it_sends_never_their_values() {
    let login = login_server(3600);
    let srv = api(|_| true);
    let sb = Sandbox::new();
    sb.spec(&session_spec(&login.url(), ""));
    let run = sb.sync_env(&srv, &["--set", "password=pw-wrong-secret"], TRACE);
    run.expect_code(1).expect_stderr(&[
        "login request to",
        "answered 403",
        "check config.password",
    ]);
    no_leak(&sb, &run, &["pw-wrong-secret"]);
    assert!(
        srv.requests().is_empty(),
        "no API request without a session"
    );
}

#[test]
fn a_session_token_about_to_expire_is_replaced_before_it_is_sent() {
    // 10 s of life is inside the 30 s margin: every request logs in first. (The margin
    // itself, against an injected clock, is tested beside the code.)
    let login = login_server(10);
    let srv = api(|r| {
        r.header("authorization")
            .is_some_and(|h| h.starts_with("Token sess-"))
    });
    let sb = Sandbox::new();
    sb.spec(&session_spec(&login.url(), ""));
    sb.sync(&srv, &["--set", "password=pw-secret"])
        .expect_code(0);
    assert_eq!(login.requests().len(), 3);
    assert_eq!(srv.requests().len(), 3);
    // A long-lived one is logged in for once.
    let login = login_server(3600);
    let sb = Sandbox::new();
    sb.spec(&session_spec(&login.url(), ""));
    sb.sync(&srv, &["--set", "password=pw-secret"])
        .expect_code(0);
    assert_eq!(login.requests().len(), 1);
}

#[test]
fn a_session_token_in_the_query_never_follows_a_redirect_to_another_origin() {
    let login = login_server(3600);
    let elsewhere = serve_on("127.0.0.3", |_| Reply::json(r#"{"items": []}"#));
    let target = format!("{}/moved", elsewhere.url());
    let srv = serve(move |r| {
        if r.param("sid") != Some("sess-1-tok") {
            return Reply::status(401, "no");
        }
        Reply::status(307, "").header("location", &target)
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  password: { type: string, secret: true }",
        &format!(
            r#"  auth:
    kind: session
    login:
      url: "{}/auth/login"
      body: {{ username: user, password: "{{{{ config.password }}}}" }}
    token: $.data.token
    name: sid
    value: "{{{{ token }}}}"
    in: query"#,
            login.url()
        ),
        "  items:\n    path: /items\n    records: $.items[*]\n",
    ));
    let run = sb.sync_env(&srv, &["--set", "password=pw-secret"], TRACE);
    run.expect_code(0);
    assert_eq!(elsewhere.requests().len(), 1);
    let other = seen(&elsewhere);
    assert!(
        !other.contains("sess-") && !other.contains("pw-secret"),
        "{other}"
    );
    no_leak(&sb, &run, &["pw-secret", "sess-1-tok"]);
}

// ---------------------------------------------------------------- JWT

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/jwt")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

/// Decodes and verifies a JWT with a public key; None when the signature is wrong.
fn verify(token: &str, alg: Algorithm, public_pem: &str, aud: Option<&str>) -> Option<Value> {
    let key = match alg {
        Algorithm::RS256 => DecodingKey::from_rsa_pem(public_pem.as_bytes()).ok()?,
        _ => DecodingKey::from_ec_pem(public_pem.as_bytes()).ok()?,
    };
    let mut v = Validation::new(alg);
    match aud {
        Some(a) => v.set_audience(&[a]),
        None => v.validate_aud = false,
    }
    decode::<Value>(token, &key, &v).ok().map(|d| d.claims)
}

#[test]
fn a_github_app_style_rs256_jwt_is_the_bearer_token_and_verifies() {
    let public = fixture("rsa.pub.pem");
    let claims_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let c = claims_seen.clone();
    let srv = api(move |r| {
        let Some(t) = r
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
        else {
            return false;
        };
        match verify(t, Algorithm::RS256, &public, None) {
            Some(claims) => {
                c.lock().unwrap().push(claims);
                true
            }
            None => false,
        }
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  app_id: { type: integer }\n  private_key: { type: string, secret: true, env: T_AUTH_MORE_PK }",
        r#"  auth:
    kind: jwt
    algorithm: RS256
    key: "{{ config.private_key }}"
    claims: { iss: "{{ config.app_id }}" }
    lifetime: 9m
    backdate: 60s"#,
        PAGED,
    ));
    let key = fixture("rsa.pem");
    let run = sb.sync_env(
        &srv,
        &["--set", "app_id=12345"],
        &[("T_AUTH_MORE_PK", key.as_str()), ("RUNTIME_LOG", "trace")],
    );
    run.expect_code(0);
    assert_eq!(sb.lines("items").len(), 5);
    let claims = claims_seen.lock().unwrap().clone();
    assert_eq!(claims.len(), 3);
    let c = &claims[0];
    assert_eq!(c["iss"], 12345, "a one-expression claim keeps its type");
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 9 * 60 + 60, "lifetime plus backdate");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - 60 - iat).abs() < 30, "iat {iat} vs now {now}");
    assert!(
        claims.iter().all(|x| x == c),
        "one JWT reused while it is valid"
    );
    let jwt = srv.requests()[0].header("authorization").unwrap()[7..].to_owned();
    no_leak(&sb, &run, &[jwt.as_str(), "MII"]);
}

#[test]
fn an_es256_jwt_is_exchanged_at_the_token_url_and_only_the_access_token_reaches_the_api() {
    let public = fixture("ec.pub.pem");
    let token_url_holder = Arc::new(std::sync::Mutex::new(String::new()));
    let tu = token_url_holder.clone();
    let tokens = serve_on("127.0.0.2", move |r| {
        let aud = tu.lock().unwrap().clone();
        let ok = form_value(r, "grant_type").as_deref()
            == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
            && form_value(r, "assertion")
                .and_then(|a| verify(&a, Algorithm::ES256, &public, Some(&aud)))
                .is_some_and(|c| c["iss"] == "svc@example.iam" && c["scope"] == "read");
        if !ok {
            return Reply::json(r#"{"error": "invalid_grant"}"#).with_status(400);
        }
        Reply::json(r#"{"access_token": "ya29-access-tok", "expires_in": 3600}"#)
    });
    *token_url_holder.lock().unwrap() = format!("{}/token", tokens.url());
    let srv = api(|r| r.header("authorization") == Some("Bearer ya29-access-tok"));
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  private_key: { type: string, secret: true, env: T_AUTH_MORE_EC }\n  token_url: { type: string }",
        r#"  auth:
    kind: jwt
    algorithm: ES256
    key: "{{ config.private_key }}"
    key_id: k-1
    claims:
      iss: svc@example.iam
      aud: "{{ config.token_url }}"
      scope: read
    lifetime: 1h
    token_url: "{{ config.token_url }}""#,
        PAGED,
    ));
    // The key as a service-account JSON file holds it: line breaks written `\n`.
    let key = fixture("ec.pem").replace('\n', "\\n");
    let tu = format!("token_url={}/token", tokens.url());
    let run = sb.sync_env(
        &srv,
        &["--set", &tu],
        &[("T_AUTH_MORE_EC", key.as_str()), ("RUNTIME_LOG", "trace")],
    );
    run.expect_code(0);
    assert_eq!(tokens.requests().len(), 1);
    let assertion = form_value(&tokens.requests()[0], "assertion").unwrap();
    assert!(
        !seen(&srv).contains(&assertion),
        "the API saw the signed JWT"
    );
    assert!(
        !seen(&tokens).contains("ya29"),
        "the token server saw the access token"
    );
    no_leak(&sb, &run, &[assertion.as_str(), "ya29-access-tok"]);
}

#[test]
fn a_malformed_key_stops_the_run_naming_the_config_key_never_the_key() {
    let srv = api(|_| true);
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  private_key: { type: string, secret: true }",
        r#"  auth:
    kind: jwt
    algorithm: RS256
    key: "{{ config.private_key }}""#,
        PAGED,
    ));
    let bad = "-----BEGIN PRIVATE KEY-----\nQUJDRGtopsecretmaterial\n-----END PRIVATE KEY-----\n";
    let run = sb.sync(&srv, &["--set", &format!("private_key={bad}")]);
    run.expect_code(2).expect_stderr(&[
        "http.auth.key",
        "config.private_key",
        "PEM RSA private key",
    ]);
    no_leak(&sb, &run, &["QUJDRGtopsecretmaterial"]);
    assert!(srv.requests().is_empty());
}

// ---------------------------------------------------------------- select

fn select_spec(default: &str) -> String {
    spec_full(
        &format!(
            "  auth_type: {{ type: string, default: {default} }}\n  api_key: {{ type: string, secret: true }}"
        ),
        r#"  auth:
    kind: select
    select: "{{ config.auth_type }}"
    options:
      api_key: { kind: api_key, name: X-API-Key, value: "{{ config.api_key }}" }
      bearer: { kind: bearer, token: "{{ config.api_key }}" }"#,
        PAGED,
    )
}

#[test]
fn select_picks_the_auth_block_named_by_config_and_suggests_on_a_typo() {
    let srv = api(|r| {
        r.header("x-api-key") == Some("k-secret-1")
            || r.header("authorization") == Some("Bearer k-secret-1")
    });
    let sb = Sandbox::new();
    sb.spec(&select_spec("api_key"));
    let key = ["--set", "api_key=k-secret-1"];
    sb.sync(&srv, &key).expect_code(0);
    assert!(
        srv.requests()
            .iter()
            .all(|r| r.header("x-api-key").is_some())
    );
    let before = srv.requests().len();
    sb.sync(&srv, &[&key[..], &["--set", "auth_type=bearer"]].concat())
        .expect_code(0);
    assert!(
        srv.requests()[before..]
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer k-secret-1"))
    );
    let run = sb.sync(&srv, &[&key[..], &["--set", "auth_type=beare"]].concat());
    run.expect_code(2)
        .expect_stderr(&["http.auth.select", "`beare`", "did you mean `bearer`?"]);
    run.expect_no_leak("k-secret-1");
}

#[test]
fn validate_reports_a_default_that_names_no_option_with_its_position() {
    let sb = Sandbox::new();
    let spec = sb.spec(&select_spec("apikey"));
    let run = sb.run(&["validate", spec.to_str().unwrap()]);
    run.expect_code(2)
        .expect_stdout(&["spec.yaml:5:", "`apikey`", "did you mean `api_key`?"]);
}
