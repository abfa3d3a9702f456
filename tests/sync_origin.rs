//! Credentials stay with their origin: every auth kind, led to a second loopback origin
//! (127.0.0.2) by a `Link` header, a next URL in the body, or a 301/302/307/308 redirect.
//! The second server must never see a secret, in any header, query or body, raw,
//! URL-encoded or base64; next pages elsewhere are refused unless `http.trusted_origins`
//! lists the origin; other schemes fail at once.
//!
//! The cases of a matrix share two servers (one path prefix per case) and run a few at a
//! time, so the whole file takes a few seconds.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{Logged, Reply, Run, Sandbox, Server, recs, serve, serve_on, spec_full};

/// The OAuth2 access token the first server hands out.
const ACCESS_TOKEN: &str = "at-Zq81xk/+tok";
/// The basic auth user name and the OAuth2 client id (not secret).
const USER: &str = "origin-user";
/// Runs of the binary at once.
const PARALLEL: usize = 4;

/// Standard base64 (RFC 4648).
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

fn encoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bearer,
    HeaderKey,
    QueryKey,
    Basic,
    OAuth2,
    SpecHeader,
}

const KINDS: [Kind; 6] = [
    Kind::Bearer,
    Kind::HeaderKey,
    Kind::QueryKey,
    Kind::Basic,
    Kind::OAuth2,
    Kind::SpecHeader,
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Lead {
    Link,
    BodyNext,
    Redirect(u16),
}

const LEADS: [Lead; 6] = [
    Lead::Link,
    Lead::BodyNext,
    Lead::Redirect(301),
    Lead::Redirect(302),
    Lead::Redirect(307),
    Lead::Redirect(308),
];

/// One cell of the matrix.
#[derive(Debug, Clone)]
struct Case {
    n: usize,
    kind: Kind,
    lead: Lead,
    /// The secret config value of this case (`config.tok`).
    secret: String,
}

impl Case {
    fn new(n: usize, kind: Kind, lead: Lead) -> Self {
        Self {
            n,
            kind,
            lead,
            secret: format!("sk/{n}+Pq7Vw"),
        }
    }

    /// Everything that must not reach another origin, in every form it could take.
    fn needles(&self) -> Vec<String> {
        let raw = [
            self.secret.clone(),
            ACCESS_TOKEN.to_owned(),
            format!("{USER}:{}", self.secret),
        ];
        let mut out = Vec::new();
        for r in raw {
            out.push(base64(&r));
            out.push(encoded(&base64(&r)));
            out.push(encoded(&r));
            out.push(r);
        }
        out
    }

    fn auth(&self) -> String {
        let auth = match self.kind {
            Kind::Bearer => r#"{ kind: bearer, token: "{{ config.tok }}" }"#.to_owned(),
            Kind::HeaderKey => {
                r#"{ kind: api_key, name: X-Api-Key, value: "{{ config.tok }}" }"#.to_owned()
            }
            Kind::QueryKey => {
                r#"{ kind: api_key, name: api_key, value: "{{ config.tok }}", in: query }"#
                    .to_owned()
            }
            Kind::Basic => {
                format!(r#"{{ kind: basic, username: {USER}, password: "{{{{ config.tok }}}}" }}"#)
            }
            Kind::OAuth2 => format!(
                r#"{{ kind: oauth2_client_credentials, token_url: "{{{{ config.base_url }}}}/oauth/token", client_id: {USER}, client_secret: "{{{{ config.tok }}}}" }}"#
            ),
            Kind::SpecHeader => "{ kind: none }".to_owned(),
        };
        let secret_headers = if self.kind == Kind::SpecHeader {
            // One caught by its name, one only because it holds a secret.
            r#"Authorization: "Token {{ config.tok }}", X-Session: "s-{{ config.tok }}", "#
        } else {
            ""
        };
        format!("  auth: {auth}\n  headers: {{ {secret_headers}X-Client: origin-test }}")
    }

    fn stream(&self) -> &'static str {
        match self.lead {
            Lead::Link => {
                "  items:\n    path: /items\n    records: $.items[*]\n    pagination: { kind: link_header }\n"
            }
            Lead::BodyNext => {
                "  items:\n    path: /items\n    records: $.items[*]\n    pagination: { kind: next_url, next: $.next }\n"
            }
            Lead::Redirect(_) => {
                "  items:\n    path: /items\n    method: POST\n    body: { q: x }\n    records: $.items[*]\n"
            }
        }
    }

    fn spec(&self, trusted: Option<&Server>) -> String {
        let mut http = self.auth();
        if let Some(t) = trusted {
            http.push_str(&format!("\n  trusted_origins: [\"{}\"]", t.url()));
        }
        spec_full(
            "  tok: { type: string, secret: true }",
            &http,
            self.stream(),
        )
    }

    fn run(&self, a: &Server, trusted: Option<&Server>) -> (Sandbox, Run) {
        let sb = Sandbox::new();
        let spec = sb.spec(&self.spec(trusted));
        let out = sb.out();
        let base = format!("base_url={}/c{}", a.url(), self.n);
        let tok = format!("tok={}", self.secret);
        let run = sb.run(&[
            "sync",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            &base,
            "--set",
            &tok,
        ]);
        (sb, run)
    }

    /// The requests a server received for this case.
    fn seen(&self, srv: &Server) -> Vec<Logged> {
        let prefix = format!("/c{}/", self.n);
        srv.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(&prefix))
            .collect()
    }
}

/// The case number of a request path `/c<n>/...`.
fn case_of(path: &str) -> Option<(usize, &str)> {
    let rest = path.strip_prefix("/c")?;
    let (n, tail) = rest.split_once('/')?;
    Some((n.parse().ok()?, tail))
}

/// The first origin: pages 1 (records 1, 2) that lead to the second origin, and the
/// OAuth2 token endpoint.
fn first_server(cases: Arc<Vec<Case>>, second: String) -> Server {
    serve(move |r| {
        let Some((n, tail)) = case_of(&r.path) else {
            return Reply::status(404, "no such case");
        };
        let Some(case) = cases.iter().find(|c| c.n == n) else {
            return Reply::status(404, "no such case");
        };
        if tail == "oauth/token" {
            return Reply::json(format!(
                r#"{{"access_token": "{ACCESS_TOKEN}", "expires_in": 3600}}"#
            ));
        }
        let there = format!("{second}/c{n}/items");
        match case.lead {
            Lead::Link => Reply::json(format!(r#"{{"items": [{}]}}"#, recs(1..=2)))
                .header("link", &format!("<{there}>; rel=\"next\"")),
            Lead::BodyNext => Reply::json(format!(
                r#"{{"items": [{}], "next": "{there}"}}"#,
                recs(1..=2)
            )),
            Lead::Redirect(code) => Reply::status(code, "moved").header("location", &there),
        }
    })
}

/// The second origin: records 3, 4 and no next page.
fn second_server() -> Server {
    serve_on("127.0.0.2", |_| {
        Reply::json(format!(r#"{{"items": [{}]}}"#, recs(3..=4)))
    })
}

/// Runs `check` on every case, `PARALLEL` at a time; returns every failure's message.
fn run_all(cases: &[Case], check: impl Fn(&Case) -> Result<(), String> + Sync) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let outcome =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(case)));
                    let msg = match outcome {
                        Ok(Ok(())) => continue,
                        Ok(Err(m)) => m,
                        Err(p) => p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_default(),
                    };
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{:?} x {:?}: {msg}", case.kind, case.lead));
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

/// Fails when any request holds a needle in a header name or value, the query or the body.
fn leaks(requests: &[Logged], needles: &[String]) -> Result<(), String> {
    for r in requests {
        let mut places: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|(k, v)| (format!("header {k}"), format!("{k}: {v}")))
            .collect();
        places.push(("query".into(), r.raw_query()));
        places.extend(
            r.query
                .iter()
                .map(|(k, v)| ("query".into(), format!("{k}={v}"))),
        );
        places.push(("body".into(), String::from_utf8_lossy(&r.body).into_owned()));
        for (place, text) in places {
            if let Some(n) = needles.iter().find(|n| text.contains(n.as_str())) {
                return Err(format!(
                    "the second origin saw the secret {n:?} in the {place} of {} {}",
                    r.method, r.path
                ));
            }
        }
    }
    Ok(())
}

fn matrix() -> Vec<Case> {
    let mut cases = Vec::new();
    for kind in KINDS {
        for lead in LEADS {
            cases.push(Case::new(cases.len(), kind, lead));
        }
    }
    cases
}

#[test]
fn no_credential_reaches_another_origin_whatever_leads_there() {
    let cases = Arc::new(matrix());
    let b = second_server();
    let a = first_server(cases.clone(), b.url());
    let a_origin = a.url();
    let b_origin = b.url();
    let failures = run_all(&cases, |case| {
        let (sb, run) = case.run(&a, None);
        for n in case.needles() {
            run.expect_no_leak(&n);
        }
        let at_b = case.seen(&b);
        leaks(&at_b, &case.needles())?;
        let first_pages = case
            .seen(&a)
            .into_iter()
            .filter(|r| r.path.ends_with("/items"))
            .count();
        match case.lead {
            Lead::Link | Lead::BodyNext => {
                run.expect_code(1)
                    .expect_stderr(&[&a_origin, &b_origin, "http.trusted_origins"]);
                if !at_b.is_empty() {
                    return Err(format!(
                        "{} request(s) reached the second origin",
                        at_b.len()
                    ));
                }
                if first_pages != 1 {
                    return Err(format!("the first page was requested {first_pages} times"));
                }
            }
            Lead::Redirect(code) => {
                run.expect_code(0);
                assert_eq!(sb.ids("items"), [3, 4]);
                if at_b.len() != 1 {
                    return Err(format!("the second origin saw {} requests", at_b.len()));
                }
                let r = &at_b[0];
                // 307 and 308 repeat the POST with its body; 301 and 302 become a GET.
                let (method, body) = if matches!(code, 307 | 308) {
                    ("POST", r#"{"q":"x"}"#)
                } else {
                    ("GET", "")
                };
                assert_eq!(
                    (r.method.as_str(), r.body.as_slice()),
                    (method, body.as_bytes())
                );
                // Headers without a secret still go: only credentials are held back.
                assert_eq!(r.header("x-client"), Some("origin-test"));
                assert_eq!(r.header("referer"), None);
            }
        }
        Ok(())
    });
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_trusted_origin_gets_the_next_page_with_its_credentials() {
    let cases: Vec<Case> = KINDS
        .iter()
        .flat_map(|k| [Lead::Link, Lead::BodyNext].map(|l| (*k, l)))
        .enumerate()
        .map(|(n, (k, l))| Case::new(n, k, l))
        .collect();
    let cases = Arc::new(cases);
    let b = second_server();
    let a = first_server(cases.clone(), b.url());
    let failures = run_all(&cases, |case| {
        let (sb, run) = case.run(&a, Some(&b));
        run.expect_code(0);
        run.expect_no_leak(&case.secret);
        assert_eq!(sb.ids("items"), [1, 2, 3, 4]);
        let at_b = case.seen(&b);
        if at_b.len() != 1 {
            return Err(format!("the second origin saw {} requests", at_b.len()));
        }
        let r = &at_b[0];
        let s = &case.secret;
        let ok = match case.kind {
            Kind::Bearer => r.header("authorization") == Some(&format!("Bearer {s}")),
            Kind::HeaderKey => r.header("x-api-key") == Some(s.as_str()),
            Kind::QueryKey => r.params("api_key") == [s.as_str()],
            Kind::Basic => {
                r.header("authorization")
                    == Some(&format!("Basic {}", base64(&format!("{USER}:{s}"))))
            }
            Kind::OAuth2 => r.header("authorization") == Some(&format!("Bearer {ACCESS_TOKEN}")),
            Kind::SpecHeader => {
                r.header("authorization") == Some(&format!("Token {s}"))
                    && r.header("x-session") == Some(&format!("s-{s}"))
            }
        };
        if !ok {
            return Err(format!(
                "the trusted origin did not get the credentials: {r:?}"
            ));
        }
        Ok(())
    });
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn next_urls_with_other_schemes_fail_at_once() {
    let links = [
        ("body", "file:///etc/passwd"),
        ("body", "ftp://127.0.0.1/x"),
        ("body", "gopher://127.0.0.1/x"),
        ("link", "ftp://127.0.0.1/x"),
        ("link", "file:///etc/passwd"),
    ];
    let srv = serve(move |r| {
        let Some((n, _)) = case_of(&r.path) else {
            return Reply::status(404, "no such case");
        };
        let (how, next) = links[n];
        if how == "link" {
            Reply::json(format!(r#"{{"items": [{}]}}"#, recs(1..=2)))
                .header("link", &format!("<{next}>; rel=\"next\""))
        } else {
            Reply::json(format!(
                r#"{{"items": [{}], "next": "{next}"}}"#,
                recs(1..=2)
            ))
        }
    });
    for (n, (how, next)) in links.iter().enumerate() {
        let stream = if *how == "link" {
            "  items:\n    path: /items\n    records: $.items[*]\n    pagination: { kind: link_header }\n"
        } else {
            "  items:\n    path: /items\n    records: $.items[*]\n    pagination: { kind: next_url, next: $.next }\n"
        };
        let sb = Sandbox::new();
        let spec = sb.spec(&spec_full(
            "",
            "  auth: { kind: bearer, token: b-tok-77 }",
            stream,
        ));
        let out = sb.out();
        let base = format!("base_url={}/c{n}", srv.url());
        let run = sb.run(&[
            "sync",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            &base,
        ]);
        run.expect_code(1).expect_stderr(&["only http and https"]);
        let row = run.row("items");
        assert_eq!((row.requests, row.retries), (1, 0), "{next}: {row:?}");
        let prefix = format!("/c{n}/");
        let seen = srv
            .requests()
            .iter()
            .filter(|r| r.path.starts_with(&prefix))
            .count();
        assert_eq!(seen, 1, "{next}");
    }
}

#[test]
fn a_basic_credential_echoed_back_is_masked() {
    // The API quotes the Authorization header it received in its error body.
    let srv = serve(|r| {
        Reply::status(
            400,
            &format!(
                "bad request; you sent {}",
                r.header("authorization").unwrap_or("")
            ),
        )
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  pass: { type: string, secret: true }",
        "  auth: { kind: basic, username: echo-user, password: \"{{ config.pass }}\" }",
        "  items:\n    path: /items\n    records: $.items[*]\n",
    ));
    let run = sb.sync(&srv, &["--set", "pass=echo-pass-5150"]);
    run.expect_code(1)
        .expect_stderr(&["400", "you sent Basic ***"]);
    run.expect_no_leak(&base64("echo-user:echo-pass-5150"));
    run.expect_no_leak("echo-pass-5150");
}

#[test]
fn an_oauth2_token_request_is_not_redirected_elsewhere() {
    let b = second_server();
    let elsewhere = format!("{}/steal", b.url());
    let a = serve(move |r| {
        if r.path == "/oauth/token" {
            Reply::status(307, "moved").header("location", &elsewhere)
        } else {
            Reply::json(format!(r#"{{"items": [{}]}}"#, recs(1..=2)))
        }
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  cs: { type: string, secret: true }",
        "  auth: { kind: oauth2_client_credentials, token_url: \"{{ config.base_url }}/oauth/token\", client_id: app, client_secret: \"{{ config.cs }}\" }",
        "  items:\n    path: /items\n    records: $.items[*]\n",
    ));
    let run = sb.sync(&a, &["--set", "cs=cs-redirect-31"]);
    run.expect_code(1)
        .expect_stderr(&["307", "token_url"])
        .expect_no_leak("cs-redirect-31");
    assert!(b.requests().is_empty(), "{:?}", b.requests());
    assert_eq!(
        a.requests_to("/oauth/token").len(),
        1,
        "a refused redirect is not retried"
    );
    assert!(a.requests_to("/items").is_empty());
}

#[test]
fn a_body_with_a_secret_is_not_repeated_to_another_origin() {
    let b = second_server();
    let there = format!("{}/elsewhere", b.url());
    let a = serve(move |_| Reply::status(307, "moved").header("location", &there));
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  tok: { type: string, secret: true }",
        "",
        "  items:\n    path: /items\n    method: POST\n    body: { token: \"{{ config.tok }}\" }\n    records: $.items[*]\n",
    ));
    let run = sb.sync(&a, &["--set", "tok=body-secret-808"]);
    run.expect_code(1)
        .expect_stderr(&["another origin", "holds a secret"])
        .expect_no_leak("body-secret-808");
    assert!(b.requests().is_empty(), "{:?}", b.requests());
    assert_eq!(a.requests().len(), 1, "a refused redirect is not retried");
}
