//! Every auth kind of `runtime sync` against a loopback server that checks the
//! credentials, and secrets that never reach stdout, stderr or an output file.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use support::{Logged, Reply, Run, Sandbox, rec_lines, recs, serve, spec_full};

/// Standard base64 (RFC 4648) of `s`, to check basic auth headers.
fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Fails if `secret` (or its URL-encoded form) is in stdout, stderr or any output file.
#[track_caller]
fn assert_no_secret(sb: &Sandbox, run: &Run, secret: &str) {
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    for s in [secret, encoded.as_str()] {
        run.expect_no_leak(s);
        for f in sb.out_files() {
            let bytes = std::fs::read(sb.out().join(&f)).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(s),
                "secret found in output file {f}"
            );
        }
    }
}

/// Two pages of three records at `/items`, when `ok(request)` says the credentials are right.
fn two_pages(ok: impl Fn(&Logged) -> bool + Send + Sync + 'static) -> support::Server {
    serve(move |r| {
        if !ok(r) {
            return Reply::status(401, "bad credentials");
        }
        let page = r.num("page", 1);
        let ids: Vec<usize> = ((page - 1) * 3 + 1..=(page * 3).min(5)).collect();
        Reply::json(format!(r#"{{"items": [{}]}}"#, recs(ids)))
    })
}

const PAGED: &str = r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: page_number, size: 3 }
"#;

#[test]
fn no_auth_sends_no_credentials() {
    let srv = two_pages(|r| r.header("authorization").is_none());
    let sb = Sandbox::new();
    sb.spec(&spec_full("", "", PAGED));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=5));
    for r in srv.requests() {
        assert_eq!(r.header("authorization"), None);
        assert!(
            r.header("user-agent")
                .unwrap()
                .starts_with("connector-runtime/")
        );
        assert!(r.query.iter().all(|(k, _)| k == "page"), "{:?}", r.query);
    }
}

#[test]
fn bearer_token_from_set_on_every_page() {
    let srv = two_pages(|r| r.header("authorization") == Some("Bearer tok-81f3c2"));
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  api_key: { type: string, secret: true }",
        r#"  auth: { kind: bearer, token: "{{ config.api_key }}" }"#,
        PAGED,
    ));
    let run = sb.sync_env(
        &srv,
        &["--set", "api_key=tok-81f3c2"],
        &[("RUNTIME_LOG", "debug")],
    );
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=5));
    assert_eq!(srv.requests().len(), 2);
    assert_no_secret(&sb, &run, "tok-81f3c2");
}

#[test]
fn api_key_in_a_header() {
    let srv = two_pages(|r| r.header("x-api-key") == Some("hk-5521") && r.param("key").is_none());
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  api_key: { type: string, secret: true }",
        r#"  auth: { kind: api_key, name: X-API-Key, value: "{{ config.api_key }}", in: header }"#,
        PAGED,
    ));
    let run = sb.sync(&srv, &["--set", "api_key=hk-5521"]);
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=5));
    assert_eq!(srv.requests().len(), 2);
    assert!(
        srv.requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
    assert_no_secret(&sb, &run, "hk-5521");
}

const QUERY_KEY: &str = "qk/9+x=7";

#[test]
fn api_key_in_the_query_on_every_page() {
    let srv = two_pages(|r| r.params("key") == [QUERY_KEY]);
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  api_key: { type: string, secret: true }",
        r#"  auth: { kind: api_key, name: key, value: "{{ config.api_key }}", in: query }"#,
        PAGED,
    ));
    let set = format!("api_key={QUERY_KEY}");
    let run = sb.sync_env(&srv, &["--set", &set], &[("RUNTIME_LOG", "debug")]);
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=5));
    assert_eq!(
        srv.param_seq("/items", "page"),
        [Some("1".into()), Some("2".into())]
    );
    assert_no_secret(&sb, &run, QUERY_KEY);
}

#[test]
fn api_key_in_the_query_is_masked_when_requests_fail() {
    // Page 1 links to page 2 with the key echoed in the URL (as many APIs do); page 2
    // always answers 500, so retries run out and the URL is printed in the error.
    let srv = serve(|r| {
        if r.params("key").first() != Some(&QUERY_KEY) {
            return Reply::status(401, "bad key");
        }
        let host = r.header("host").unwrap().to_owned();
        match r.param("page") {
            None => {
                let enc: String =
                    url::form_urlencoded::byte_serialize(QUERY_KEY.as_bytes()).collect();
                Reply::json(format!(
                    r#"{{"next": "http://{host}/items?page=2&key={enc}", "items": [{}]}}"#,
                    recs([1])
                ))
            }
            Some(_) => Reply::status(500, &format!("internal error for key {QUERY_KEY}")),
        }
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  api_key: { type: string, secret: true }",
        r#"  auth: { kind: api_key, name: key, value: "{{ config.api_key }}", in: query }"#,
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: next_url, next: $.next }
"#,
    ));
    let set = format!("api_key={QUERY_KEY}");
    let run = sb.sync_env(&srv, &["--set", &set], &[("RUNTIME_LOG", "debug")]);
    run.expect_code(1).expect_stderr(&[
        "stream items failed",
        "gave up after 3 attempts",
        &format!("500 from GET {}/items?page=2&key=***", srv.url()),
    ]);
    assert_eq!(srv.requests().len(), 4);
    assert_no_secret(&sb, &run, QUERY_KEY);
    assert!(!sb.has_output("items"));
}

#[test]
fn basic_auth() {
    let expected = format!("Basic {}", base64("reader:pa55:word"));
    assert_eq!(base64("reader:pa55:word"), "cmVhZGVyOnBhNTU6d29yZA==");
    let srv = two_pages(move |r| r.header("authorization") == Some(expected.as_str()));
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  user: { type: string }\n  password: { type: string, secret: true }",
        r#"  auth: { kind: basic, username: "{{ config.user }}", password: "{{ config.password }}" }"#,
        PAGED,
    ));
    let run = sb.sync(
        &srv,
        &["--set", "user=reader", "--set", "password=pa55:word"],
    );
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=5));
    assert_eq!(srv.requests().len(), 2);
    assert_no_secret(&sb, &run, "pa55:word");
    assert_no_secret(&sb, &run, "cmVhZGVyOnBhNTU6d29yZA==");
}

/// A token endpoint at /oauth/token issuing `at-1`, `at-2`, ... and three pages at /items
/// that accept only the latest token; `reject_first` makes the first API call a 401.
fn oauth_server(reject_first: bool) -> support::Server {
    let issued = AtomicUsize::new(0);
    let api_calls = AtomicUsize::new(0);
    serve(move |r| {
        if r.path == "/oauth/token" {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            return Reply::json(format!(
                r#"{{"access_token": "at-{n}", "token_type": "bearer", "expires_in": 3600}}"#
            ));
        }
        let call = api_calls.fetch_add(1, Ordering::SeqCst);
        let current = format!("Bearer at-{}", issued.load(Ordering::SeqCst));
        if (reject_first && call == 0) || r.header("authorization") != Some(current.as_str()) {
            return Reply::status(401, "token expired");
        }
        let offset = r.num("offset", 0);
        let ids: Vec<usize> = (offset + 1..=(offset + 2).min(6)).collect();
        Reply::json(format!(r#"{{"total": 6, "items": [{}]}}"#, recs(ids)))
    })
}

const OAUTH_STREAMS: &str = r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: offset, limit: 2, total: $.total }
"#;

#[test]
fn oauth2_client_credentials_token_is_fetched_once_and_reused() {
    let srv = oauth_server(false);
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  client_id: { type: string }\n  client_secret: { type: string, secret: true }",
        r#"  auth:
    kind: oauth2_client_credentials
    token_url: "{{ config.base_url }}/oauth/token"
    client_id: "{{ config.client_id }}"
    client_secret: "{{ config.client_secret }}"
    scopes: [read, write]
    params: { audience: "https://api.example" }"#,
        OAUTH_STREAMS,
    ));
    let run = sb.sync_env(
        &srv,
        &[
            "--set",
            "client_id=app-7",
            "--set",
            "client_secret=cs-9f8e7d",
        ],
        &[("RUNTIME_LOG", "debug")],
    );
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=6));
    let tokens = srv.requests_to("/oauth/token");
    assert_eq!(tokens.len(), 1, "token fetched more than once");
    assert_eq!(tokens[0].method, "POST");
    let form = tokens[0].form();
    for (k, v) in [
        ("grant_type", "client_credentials"),
        ("client_id", "app-7"),
        ("client_secret", "cs-9f8e7d"),
        ("scope", "read write"),
        ("audience", "https://api.example"),
    ] {
        assert!(
            form.contains(&(k.to_owned(), v.to_owned())),
            "token form lacks {k}={v}: {form:?}"
        );
    }
    let api = srv.requests_to("/items");
    assert_eq!(api.len(), 3);
    assert!(
        api.iter()
            .all(|r| r.header("authorization") == Some("Bearer at-1"))
    );
    assert_no_secret(&sb, &run, "cs-9f8e7d");
    assert_no_secret(&sb, &run, "at-1");
}

#[test]
fn oauth2_fetches_a_new_token_after_a_401_and_sends_basic_client_credentials() {
    let srv = oauth_server(true);
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  client_id: { type: string }\n  client_secret: { type: string, secret: true, env: T_AUTH_OAUTH_SECRET_91 }",
        r#"  auth:
    kind: oauth2_client_credentials
    token_url: "{{ config.base_url }}/oauth/token"
    client_id: "{{ config.client_id }}"
    client_secret: "{{ config.client_secret }}"
    credentials_in: basic"#,
        OAUTH_STREAMS,
    ));
    let run = sb.sync_env(
        &srv,
        &["--set", "client_id=app-7"],
        &[
            ("T_AUTH_OAUTH_SECRET_91", "cs-env-4411"),
            ("RUNTIME_LOG", "debug"),
        ],
    );
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=6));
    let tokens = srv.requests_to("/oauth/token");
    assert_eq!(tokens.len(), 2, "expected one refresh after the 401");
    let basic = format!("Basic {}", base64("app-7:cs-env-4411"));
    for t in &tokens {
        assert_eq!(t.header("authorization"), Some(basic.as_str()));
        let form = t.form();
        assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
        assert!(form.iter().all(|(k, _)| k != "client_secret"), "{form:?}");
    }
    let api = srv.requests_to("/items");
    assert_eq!(api.len(), 4, "one refused call, then three pages");
    assert_eq!(api[0].header("authorization"), Some("Bearer at-1"));
    assert!(
        api[1..]
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer at-2"))
    );
    assert_eq!(run.row("items").requests, 4);
    assert_no_secret(&sb, &run, "cs-env-4411");
    assert_no_secret(&sb, &run, "at-2");
}

#[test]
fn extra_headers_from_http_and_from_the_stream() {
    let srv = serve(|r| {
        Reply::json(format!("[{}]", recs([1]))).with_status(if r.path == "/a" || r.path == "/b" {
            200
        } else {
            404
        })
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  tenant: { type: string }",
        r#"  headers: { X-Client: e2e-tests, X-Tenant: "t-{{ config.tenant }}" }"#,
        r#"
  a:
    path: /a
    records: $[*]
    headers: { Accept: application/vnd.shop+json, X-Stream: a }
  b:
    path: /b
    records: $[*]
"#,
    ));
    sb.sync(&srv, &["--set", "tenant=42"]).expect_code(0);
    let a = &srv.requests_to("/a")[0];
    let b = &srv.requests_to("/b")[0];
    for r in [a, b] {
        assert_eq!(r.header("x-client"), Some("e2e-tests"));
        assert_eq!(r.header("x-tenant"), Some("t-42"));
    }
    assert_eq!(a.header("accept"), Some("application/vnd.shop+json"));
    assert_eq!(a.header("x-stream"), Some("a"));
    assert_eq!(b.header("x-stream"), None);
}

#[test]
fn secret_from_the_environment_is_used_and_never_printed() {
    // The API echoes the token in an error body: it must come out masked.
    const TOKEN: &str = "env-tok-6c1d0b";
    let srv = serve(|r| {
        if r.header("authorization") != Some("Bearer env-tok-6c1d0b") {
            return Reply::status(401, "no");
        }
        match r.path.as_str() {
            "/good" => Reply::json(format!("[{}]", recs([1, 2]))),
            _ => Reply::status(400, "token env-tok-6c1d0b may not read /bad"),
        }
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  api_key: { type: string, secret: true, env: T_AUTH_ENV_TOKEN_17 }",
        r#"  auth: { kind: bearer, token: "{{ config.api_key }}" }"#,
        r#"
  good:
    path: /good
    records: $[*]
  bad:
    path: /bad
    records: $[*]
"#,
    ));
    let run = sb.sync_env(
        &srv,
        &[],
        &[("T_AUTH_ENV_TOKEN_17", TOKEN), ("RUNTIME_LOG", "debug")],
    );
    run.expect_code(1).expect_stderr(&[
        "stream bad failed",
        "400 from GET",
        "/bad",
        "token *** may not read /bad",
    ]);
    assert_eq!(sb.lines("good"), rec_lines(1..=2));
    assert!(!sb.has_output("bad"));
    assert_no_secret(&sb, &run, TOKEN);
}

#[test]
fn api_key_in_the_query_is_not_sent_twice_when_a_next_url_carries_it() {
    // Many APIs echo the whole query, key included, in their next links.
    let srv = serve(|r| {
        let host = r.header("host").unwrap().to_owned();
        match r.param("page") {
            None => Reply::json(format!(
                r#"{{"next": "http://{host}/items?page=2&key=k-123", "items": [{}]}}"#,
                recs([1])
            )),
            Some(_) => Reply::json(format!(r#"{{"next": null, "items": [{}]}}"#, recs([2]))),
        }
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  api_key: { type: string, secret: true }",
        r#"  auth: { kind: api_key, name: key, value: "{{ config.api_key }}", in: query }"#,
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: next_url, next: $.next }
"#,
    ));
    sb.sync(&srv, &["--set", "api_key=k-123"]).expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=2));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].params("key"), ["k-123"]);
    assert_eq!(reqs[1].params("key"), ["k-123"], "the key was sent twice");
}

#[test]
fn oauth2_token_endpoint_refusing_the_client_fails_clearly() {
    let srv = serve(|r| match r.path.as_str() {
        "/oauth/token" => Reply::status(401, "invalid_client"),
        _ => Reply::json(format!(r#"{{"items": [{}]}}"#, recs([1]))),
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  client_secret: { type: string, secret: true }",
        r#"  auth:
    kind: oauth2_client_credentials
    token_url: "{{ config.base_url }}/oauth/token"
    client_id: app-1
    client_secret: "{{ config.client_secret }}""#,
        r#"
  items:
    path: /items
    records: $.items[*]
"#,
    ));
    let run = sb.sync(&srv, &["--set", "client_secret=cs-refused-55"]);
    run.expect_code(1).expect_stderr(&[
        "stream items failed",
        &format!(
            "OAuth2 token request to {}/oauth/token answered 401",
            srv.url()
        ),
    ]);
    assert!(srv.requests_to("/items").is_empty());
    assert!(!srv.requests_to("/oauth/token").is_empty());
    assert_no_secret(&sb, &run, "cs-refused-55");
}

#[test]
fn an_oauth2_token_response_past_1_mib_is_refused_not_retried() {
    // 2 MiB of JSON whitespace before the token: no token endpoint answers like that.
    let huge = format!("{}{{\"access_token\": \"t\"}}", " ".repeat(2 << 20));
    let srv = serve(move |r| match r.path.as_str() {
        "/oauth/token" => Reply::json(huge.clone()),
        _ => Reply::json(format!(r#"{{"items": [{}]}}"#, recs([1]))),
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  client_secret: { type: string, secret: true }",
        r#"  auth:
    kind: oauth2_client_credentials
    token_url: "{{ config.base_url }}/oauth/token"
    client_id: app-1
    client_secret: "{{ config.client_secret }}""#,
        r#"
  items:
    path: /items
    records: $.items[*]
"#,
    ));
    let run = sb.sync(&srv, &["--set", "client_secret=cs-huge-77"]);
    run.expect_code(1).expect_stderr(&[
        "stream items failed",
        "is larger than 1048576 bytes (1 MiB): not a token response",
    ]);
    assert!(srv.requests_to("/items").is_empty());
    assert_eq!(srv.requests_to("/oauth/token").len(), 1);
    assert_no_secret(&sb, &run, "cs-huge-77");
}
