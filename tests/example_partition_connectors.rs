//! The example connectors that use partitions run for real (issue 13): GitHub issues of
//! several repositories (`connectors/github_repos.yaml`: a config list times the states,
//! each with its own `since`), Zendesk requesters fetched 100 ids per request
//! (`connectors/zendesk_support.yaml`), the transactions of several Stripe connected
//! accounts in date windows per account (`connectors/stripe_connect.yaml`), and the
//! fields of every Jira project x issue type, both lists read from streams
//! (`connectors/jira_create_fields.yaml`), each against a
//! loopback stand-in of the API.

mod support;

use std::sync::{Arc, Mutex};

use base64::Engine;
use serde_json::{Value, json};
use support::{Logged, Reply, Sandbox, connector, serve};

fn ts(day: u32) -> String {
    format!("2024-03-{day:02}T00:00:00Z")
}

/// GitHub's `GET /repos/{owner}/{repo}/issues`: `state`, `since`, ascending by update,
/// 2 per page with a `Link: <...>; rel="next"` header; a bearer token is required.
fn github(r: &Logged, issues: &[(String, &str, u64, u32)]) -> Reply {
    if r.header("authorization") != Some("Bearer ghp_test") {
        return Reply::status(401, r#"{"message": "Bad credentials"}"#);
    }
    let Some(repo) = r
        .path
        .strip_prefix("/repos/")
        .and_then(|p| p.strip_suffix("/issues"))
    else {
        return Reply::status(404, r#"{"message": "Not Found"}"#);
    };
    let state = r.param("state").unwrap_or("open");
    let since = r.param("since").unwrap_or("");
    let mut hits: Vec<&(String, &str, u64, u32)> = issues
        .iter()
        .filter(|(rp, st, _, day)| rp == repo && *st == state && ts(*day).as_str() >= since)
        .collect();
    hits.sort_by_key(|(_, _, id, day)| (*day, *id));
    let page = r.num("page", 1);
    let body: Vec<Value> = hits
        .iter()
        .skip((page - 1) * 2)
        .take(2)
        .map(|(_, st, id, day)| json!({"id": id, "number": id, "state": st, "title": format!("issue {id}"), "updated_at": ts(*day)}))
        .collect();
    let mut reply = Reply::value(&json!(body));
    if page * 2 < hits.len() {
        let host = r.header("host").unwrap_or_default();
        let next = format!(
            "http://{host}/repos/{repo}/issues?state={state}&since={since}&page={}",
            page + 1
        );
        reply = reply.header("Link", &format!("<{next}>; rel=\"next\""));
    }
    reply
}

#[test]
fn github_issues_of_several_repos_each_keep_their_own_cursor() {
    let repo = |s: &str| s.to_owned();
    let issues = Arc::new(Mutex::new(vec![
        (repo("rust-lang/cargo"), "open", 1, 1),
        (repo("rust-lang/cargo"), "open", 2, 2),
        (repo("rust-lang/cargo"), "open", 3, 3),
        (repo("rust-lang/cargo"), "closed", 4, 4),
        (repo("tokio-rs/tokio"), "open", 5, 5),
        (repo("tokio-rs/tokio"), "closed", 6, 6),
        (repo("tokio-rs/tokio"), "closed", 7, 7),
    ]));
    let data = issues.clone();
    let server = serve(move |r| github(r, &data.lock().unwrap()));
    let sb = Sandbox::new();
    sb.spec(&connector("github_repos"));
    let sets = [
        "token=ghp_test",
        r#"repos=["rust-lang/cargo","tokio-rs/tokio"]"#,
    ];
    sb.sync_spec(&server.url(), &sets).expect_code(0);
    let recs = sb.records("issues");
    let got: Vec<(u64, &str)> = recs
        .iter()
        .map(|r| (r["id"].as_u64().unwrap(), r["repo"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "rust-lang/cargo"),
            (2, "rust-lang/cargo"),
            (3, "rust-lang/cargo"),
            (4, "rust-lang/cargo"),
            (5, "tokio-rs/tokio"),
            (6, "tokio-rs/tokio"),
            (7, "tokio-rs/tokio"),
        ],
        "in product order: repo, then state"
    );
    // A closed issue of cargo changes; only that partition has something new.
    issues
        .lock()
        .unwrap()
        .push((repo("rust-lang/cargo"), "closed", 8, 20));
    let before = server.requests().len();
    sb.sync_spec(&server.url(), &sets).expect_code(0);
    let since: Vec<(String, String, String)> = server.requests()[before..]
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.param("state").unwrap().to_owned(),
                r.param("since").unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("/repos/rust-lang/cargo/issues", "open", ts(3)),
        ("/repos/rust-lang/cargo/issues", "closed", ts(4)),
        ("/repos/tokio-rs/tokio/issues", "open", ts(5)),
        ("/repos/tokio-rs/tokio/issues", "closed", ts(7)),
    ];
    assert_eq!(
        since,
        want.iter()
            .map(|(p, s, t)| (p.to_string(), s.to_string(), t.clone()))
            .collect::<Vec<_>>()
    );
    let ids: Vec<u64> = sb
        .records("issues")
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [1, 2, 3, 4, 5, 6, 7, 8],
        "the change once, nothing twice"
    );
}

/// Zendesk: `/api/v2/tickets.json` with cursor pages of `page[size]` (`links.next`,
/// absolute), and `/api/v2/users/show_many.json?ids=1,2` (at most 100 ids); basic auth
/// with `{email}/token`.
fn zendesk(r: &Logged, tickets: usize) -> Reply {
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(b"agent@acme.test/token:zd_secret")
    );
    if r.header("authorization") != Some(auth.as_str()) {
        return Reply::status(401, r#"{"error": "Couldn't authenticate you"}"#);
    }
    match r.path.as_str() {
        "/api/v2/tickets.json" => {
            let size = r.num("page[size]", 100);
            let after = r.num("page[after]", 0);
            let page: Vec<Value> = (after + 1..=(after + size).min(tickets))
                .map(|id| json!({"id": id, "subject": format!("ticket {id}"), "requester_id": 9000 + id % 150}))
                .collect();
            let next = if after + size < tickets {
                let host = r.header("host").unwrap_or_default();
                json!(format!(
                    "http://{host}/api/v2/tickets.json?page%5Bsize%5D={size}&page%5Bafter%5D={}",
                    after + size
                ))
            } else {
                Value::Null
            };
            Reply::value(
                &json!({"tickets": page, "meta": {"has_more": !next.is_null()}, "links": {"next": next}}),
            )
        }
        "/api/v2/users/show_many.json" => {
            let ids: Vec<&str> = r.param("ids").unwrap_or_default().split(',').collect();
            if ids.len() > 100 {
                return Reply::status(400, r#"{"error": "too many ids"}"#);
            }
            let users: Vec<Value> = ids
                .iter()
                .map(|id| json!({"id": id.parse::<u64>().unwrap(), "name": format!("user {id}")}))
                .collect();
            Reply::value(&json!({ "users": users }))
        }
        _ => Reply::status(404, r#"{"error": "InvalidEndpoint"}"#),
    }
}

#[test]
fn zendesk_requesters_are_fetched_a_hundred_ids_per_request() {
    let server = serve(|r| zendesk(r, 320));
    let sb = Sandbox::new();
    sb.spec(&connector("zendesk_support"));
    sb.sync_spec(
        &server.url(),
        &["email=agent@acme.test", "api_token=zd_secret"],
    )
    .expect_code(0)
    .expect_no_leak("zd_secret");
    assert_eq!(sb.records("tickets").len(), 320);
    // 320 tickets from 150 distinct requesters: 100 + 50 ids.
    let calls = server.requests_to("/api/v2/users/show_many.json");
    let sizes: Vec<usize> = calls
        .iter()
        .map(|r| r.param("ids").unwrap().split(',').count())
        .collect();
    assert_eq!(sizes, [100, 50]);
    let mut users: Vec<u64> = sb
        .records("requesters")
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, (9000..9150).collect::<Vec<_>>());
}

/// Stripe's `GET /v1/balance_transactions` for the connected account named by the
/// `Stripe-Account` header: `created[gte] <= created < created[lt]`, newest first, pages
/// by `starting_after` (this stand-in serves at most 2 a page, so paging shows); basic
/// auth with the platform's key.
fn stripe_connect(r: &Logged, txns: &[(String, String, i64)]) -> Reply {
    // "rk_test:" in base64.
    if r.header("authorization") != Some("Basic cmtfdGVzdDo=") {
        return Reply::status(401, r#"{"error": {"message": "Invalid API Key provided"}}"#);
    }
    if r.path != "/v1/balance_transactions" {
        return Reply::status(404, "{}");
    }
    let Some(account) = r.header("stripe-account") else {
        return Reply::status(400, r#"{"error": {"message": "no account"}}"#);
    };
    let bound = |n: &str| r.param(n).and_then(|v| v.parse::<i64>().ok());
    let (gte, lt) = (bound("created[gte]"), bound("created[lt]"));
    let mut hits: Vec<&(String, String, i64)> = txns
        .iter()
        .filter(|(acct, _, c)| {
            acct == account && gte.is_none_or(|g| *c >= g) && lt.is_none_or(|l| *c < l)
        })
        .collect();
    hits.sort_by(|a, b| (b.2, &b.1).cmp(&(a.2, &a.1)));
    let start = r
        .param("starting_after")
        .and_then(|a| hits.iter().position(|t| t.1 == a))
        .map_or(0, |i| i + 1);
    let size = r.num("limit", 10).min(2);
    let data: Vec<Value> = hits
        .iter()
        .skip(start)
        .take(size)
        .map(|(_, id, c)| json!({"id": id, "object": "balance_transaction", "amount": 100, "created": c}))
        .collect();
    let has_more = start + size < hits.len();
    Reply::value(&json!({"object": "list", "data": data, "has_more": has_more}))
}

#[test]
fn stripe_connect_reads_each_account_in_windows_from_its_own_cursor() {
    const DAY: i64 = 86_400;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let start = now - 85 * DAY;
    // Seven transactions an account, one every 12 days from the start, one on a window
    // boundary (start + 60 days).
    let mut all = Vec::new();
    for acct in ["acct_a", "acct_b"] {
        for k in 0..7 {
            all.push((
                acct.to_owned(),
                format!("txn_{acct}_{k}"),
                start + k * 12 * DAY,
            ));
        }
        all.push((
            acct.to_owned(),
            format!("txn_{acct}_edge"),
            start + 60 * DAY,
        ));
    }
    let txns = Arc::new(Mutex::new(all));
    let data = txns.clone();
    let server = serve(move |r| stripe_connect(r, &data.lock().unwrap()));
    let sb = Sandbox::new();
    sb.spec(&connector("stripe_connect"));
    let base = format!("{}/v1", server.url());
    let start_set = format!("start={start}");
    let sets = [
        "secret_key=rk_test",
        r#"accounts=["acct_a","acct_b"]"#,
        start_set.as_str(),
    ];
    sb.sync_spec(&base, &sets)
        .expect_code(0)
        .expect_no_leak("rk_test");
    // Per account, windows of 3, 2 and 3 transactions in pages of 2: 2 + 1 + 2 requests.
    // `has_more: false` ends each window; following the last id instead would ask once
    // more per window and get an empty page (16 requests).
    assert_eq!(
        server.requests().len(),
        10,
        "no request after has_more: false"
    );
    let mut got: Vec<(String, String)> = sb
        .records("balance_transactions")
        .iter()
        .map(|t| {
            let s = |f: &str| t[f].as_str().unwrap().to_owned();
            (s("account"), s("id"))
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = txns
        .lock()
        .unwrap()
        .iter()
        .map(|(a, id, _)| (a.clone(), id.clone()))
        .collect();
    want.sort();
    assert_eq!(got, want, "every transaction once, with its account");
    // Three windows an account (30, 30 and the last 25 days), each asked for once.
    let firsts = |from: usize| -> Vec<(String, i64, i64)> {
        let mut w: Vec<(String, i64, i64)> = server.requests()[from..]
            .iter()
            .filter(|r| r.param("starting_after").is_none())
            .map(|r| {
                let n = |p: &str| r.param(p).unwrap().parse::<i64>().unwrap();
                let acct = r.header("stripe-account").unwrap().to_owned();
                (acct, n("created[gte]"), n("created[lt]"))
            })
            .collect();
        w.sort();
        w
    };
    let windows = firsts(0);
    assert_eq!(windows.len(), 6, "{windows:?}");
    for (i, (acct, gte, lt)) in windows.iter().enumerate() {
        assert_eq!(acct, if i < 3 { "acct_a" } else { "acct_b" });
        assert_eq!(*gte, start + (i as i64 % 3) * 30 * DAY, "{windows:?}");
        if i % 3 < 2 {
            assert_eq!(*lt, gte + 30 * DAY);
        } else {
            assert!((now..now + 120).contains(lt), "{windows:?}");
        }
    }
    let state: Value =
        serde_json::from_slice(&std::fs::read(sb.out().join("state.json")).unwrap()).unwrap();
    let st = &state["streams"]["balance_transactions"];
    let newest = (start + 72 * DAY).to_string();
    assert_eq!(
        st["partitions"][r#"{"account":"acct_a"}"#]["cursor"],
        newest.as_str()
    );
    assert!(st.get("partition_windows").is_none(), "{st}");

    // A new transaction of acct_b: each account is asked from its own cursor, one window.
    txns.lock()
        .unwrap()
        .push(("acct_b".into(), "txn_acct_b_new".into(), start + 80 * DAY));
    let before = server.requests().len();
    sb.sync_spec(&base, &sets).expect_code(0);
    let again = firsts(before);
    let since: Vec<(String, i64)> = again.iter().map(|(a, g, _)| (a.clone(), *g)).collect();
    assert_eq!(
        since,
        [
            ("acct_a".to_owned(), start + 72 * DAY),
            ("acct_b".to_owned(), start + 72 * DAY)
        ]
    );
    let ids: Vec<String> = sb
        .records("balance_transactions")
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 17, "the new one once, nothing twice");
    assert_eq!(ids.last().unwrap(), "txn_acct_b_new");
}

/// Jira Cloud: `/rest/api/3/project/search`, `/rest/api/3/issuetype` and
/// `/rest/api/3/issue/createmeta/{project}/issuetypes/{id}` (offset pages of `maxResults`
/// with `total`); basic auth with the e-mail and API token.
fn jira(r: &Logged) -> Reply {
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(b"me@acme.test:jira_secret")
    );
    if r.header("authorization") != Some(auth.as_str()) {
        return Reply::status(401, r#"{"errorMessages": ["unauthorized"]}"#);
    }
    let page = |all: Vec<Value>, key: &str| {
        let at = r.num("startAt", 0);
        let size = r.num("maxResults", 50);
        let values: Vec<Value> = all.iter().skip(at).take(size).cloned().collect();
        Reply::value(&json!({ "startAt": at, "maxResults": size, "total": all.len(), key: values }))
    };
    match r.path.as_str() {
        "/rest/api/3/project/search" => page(
            ["OPS", "WEB", "OPS"]
                .iter()
                .enumerate()
                .map(|(i, k)| json!({"id": (10 + i).to_string(), "key": k}))
                .collect(),
            "values",
        ),
        "/rest/api/3/issuetype" => {
            Reply::value(&json!([{"id": "10001", "name": "Bug"}, {"id": "10002", "name": "Task"}]))
        }
        p => {
            let Some(rest) = p.strip_prefix("/rest/api/3/issue/createmeta/") else {
                return Reply::status(404, r#"{"errorMessages": ["not found"]}"#);
            };
            let Some((project, kind)) = rest.split_once("/issuetypes/") else {
                return Reply::status(404, r#"{"errorMessages": ["not found"]}"#);
            };
            // Bugs of OPS ask for 60 fields (two pages), the others for 2.
            let n = if (project, kind) == ("OPS", "10001") {
                60
            } else {
                2
            };
            page(
                (0..n)
                    .map(|i| json!({"fieldId": format!("f{i}"), "name": format!("Field {i}"), "required": i == 0}))
                    .collect(),
                "fields",
            )
        }
    }
}

#[test]
fn jira_create_fields_run_for_every_project_and_issue_type() {
    let server = serve(jira);
    let sb = Sandbox::new();
    sb.spec(&connector("jira_create_fields"));
    sb.sync_spec(
        &server.url(),
        &["email=me@acme.test", "api_token=jira_secret"],
    )
    .expect_code(0)
    .expect_no_leak("jira_secret");
    let firsts: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path.contains("/createmeta/") && r.param("startAt") == Some("0"))
        .map(|r| r.path["/rest/api/3/issue/createmeta/".len()..].to_owned())
        .collect();
    assert_eq!(
        firsts,
        [
            "OPS/issuetypes/10001",
            "OPS/issuetypes/10002",
            "WEB/issuetypes/10001",
            "WEB/issuetypes/10002",
        ],
        "each project once, the issue types fastest"
    );
    let recs = sb.records("create_fields");
    assert_eq!(recs.len(), 60 + 2 + 2 + 2);
    let ops_bugs = recs
        .iter()
        .filter(|r| r["project"] == "OPS" && r["issue_type"] == "10001")
        .count();
    assert_eq!(ops_bugs, 60, "both pages");
    // `check` tries create_fields with the first project and the first issue type.
    let before = server.requests().len();
    sb.probe(
        "check",
        &server,
        &[
            "--set",
            "email=me@acme.test",
            "--set",
            "api_token=jira_secret",
        ],
    )
    .expect_code(0)
    .expect_stdout(&["3 streams checked, 0 failed"]);
    let tried: Vec<String> = server.requests()[before..]
        .iter()
        .filter(|r| r.path.contains("/createmeta/"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(tried, ["/rest/api/3/issue/createmeta/OPS/issuetypes/10001"]);
}
