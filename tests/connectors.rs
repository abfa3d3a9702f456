//! The example connectors in `connectors/` run for real: each against a loopback server
//! that answers the way the real API does (paging, filters, auth), so the examples stay
//! correct and not only valid.

mod support;

use serde_json::{Value, json};
use support::{Reply, Sandbox, connector, serve};

/// Pages of `per` items from `items`, starting at 1-based `page`.
fn page(items: &[Value], page: usize, per: usize) -> (Vec<Value>, bool) {
    let start = (page - 1) * per;
    let slice = items.iter().skip(start).take(per).cloned().collect();
    (slice, start + per < items.len())
}

#[test]
fn github_issues_and_comments_page_by_link_and_resume_with_since() {
    let issues: Vec<Value> = (1..=5)
        .map(|n| json!({"id": 1000 + n, "number": n, "title": format!("issue {n}"), "updated_at": format!("2024-05-0{n}T10:00:00Z")}))
        .collect();
    let all = issues.clone();
    let srv = serve(move |r| {
        if r.header("authorization") != Some("Bearer ghp_test") {
            return Reply::status(401, r#"{"message": "Bad credentials"}"#);
        }
        if r.header("x-github-api-version") != Some("2022-11-28") {
            return Reply::status(400, "missing version header");
        }
        match r.path.as_str() {
            "/repos/acme/widgets/issues" => {
                let since = r.param("since").unwrap_or("");
                let fresh: Vec<Value> = all
                    .iter()
                    .filter(|i| i["updated_at"].as_str().unwrap_or("") >= since)
                    .cloned()
                    .collect();
                let n = r.num("page", 1);
                let (items, more) = page(&fresh, n, 2);
                let mut reply = Reply::json(Value::Array(items).to_string());
                if more {
                    let next = format!(
                        "<http://{}/repos/acme/widgets/issues?state=all&sort=updated&direction=asc&per_page=100&since={since}&page={}>; rel=\"next\", <http://x/last>; rel=\"last\"",
                        r.header("host").unwrap_or(""),
                        n + 1
                    );
                    reply = reply.header("link", &next);
                }
                reply
            }
            p if p.starts_with("/repos/acme/widgets/issues/") && p.ends_with("/comments") => {
                let n: u64 = p
                    .split('/')
                    .nth(5)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                Reply::json(
                    json!([{"id": n * 10, "body": "first"}, {"id": n * 10 + 1, "body": "second"}])
                        .to_string(),
                )
            }
            _ => Reply::status(404, r#"{"message": "Not Found"}"#),
        }
    });
    let sb = Sandbox::new();
    sb.spec(&connector("github"));
    let args = ["--set", "owner=acme", "--set", "repo=widgets"];
    sb.sync_env(&srv, &args, &[("GITHUB_TOKEN", "ghp_test")])
        .expect_code(0);
    let got = sb.records("issues");
    assert_eq!(got, issues);
    let comments = sb.records("issue_comments");
    assert_eq!(comments.len(), 10);
    // Partitions run side by side, so find rather than index.
    assert!(comments.contains(&json!({"issue_number": 1, "id": 10, "body": "first"})));
    assert!(comments.contains(&json!({"issue_number": 5, "id": 51, "body": "second"})));
    let first = srv.requests_to("/repos/acme/widgets/issues");
    assert_eq!(first.len(), 3, "three pages of two, by Link rel=next");
    assert_eq!(first[0].param("since"), Some("2024-01-01T00:00:00Z"));

    // Nothing changed: one request, from the saved cursor, and nothing appended.
    sb.sync_env(&srv, &args, &[("GITHUB_TOKEN", "ghp_test")])
        .expect_code(0);
    let again = srv.requests_to("/repos/acme/widgets/issues");
    assert_eq!(again.len(), 4);
    assert_eq!(again[3].param("since"), Some("2024-05-05T10:00:00Z"));
    assert_eq!(sb.records("issues").len(), 5);
    assert_eq!(sb.records("issue_comments").len(), 10);
}

#[test]
fn stripe_charges_page_by_starting_after_and_filter_on_created() {
    let charges: Vec<Value> = (1..=5)
        .map(|n| json!({"id": format!("ch_{n}"), "object": "charge", "amount": n * 100, "created": 1_704_067_200 + n * 60}))
        .collect();
    let all = charges.clone();
    let srv = serve(move |r| {
        // Basic auth with the secret key as the user and no password: "sk_test:" in base64.
        if r.header("authorization") != Some("Basic c2tfdGVzdDo=") {
            return Reply::status(401, r#"{"error": {"message": "Invalid API Key provided"}}"#);
        }
        let list: Vec<Value> = match r.path.as_str() {
            "/v1/charges" => {
                let gte: u64 = r
                    .param("created[gte]")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                all.iter()
                    .filter(|c| c["created"].as_u64().unwrap_or(0) >= gte)
                    .cloned()
                    .collect()
            }
            "/v1/customers" => vec![
                json!({"id": "cus_1"}),
                json!({"id": "cus_2"}),
                json!({"id": "cus_3"}),
            ],
            _ => return Reply::status(404, "{}"),
        };
        let after = r.param("starting_after");
        let start = after
            .and_then(|a| list.iter().position(|c| c["id"] == a))
            .map_or(0, |i| i + 1);
        let data: Vec<Value> = list.iter().skip(start).take(2).cloned().collect();
        let has_more = start + 2 < list.len();
        Reply::json(json!({"object": "list", "data": data, "has_more": has_more}).to_string())
    });
    let sb = Sandbox::new();
    sb.spec(&connector("stripe"));
    let base = format!("base_url={}/v1", srv.url());
    let spec = sb.path().join("spec.yaml");
    let out = sb.out();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "sync",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            &base,
        ];
        args.extend_from_slice(extra);
        sb.run_env(&args, &[("STRIPE_SECRET_KEY", "sk_test")])
    };
    run(&[]).expect_code(0);
    assert_eq!(sb.records("charges"), charges);
    assert_eq!(
        sb.records("customers"),
        vec![
            json!({"id": "cus_1"}),
            json!({"id": "cus_2"}),
            json!({"id": "cus_3"})
        ]
    );
    let reqs = srv.requests_to("/v1/charges");
    assert_eq!(reqs[0].param("created[gte]"), Some("1704067200"));
    assert_eq!(reqs[1].param("starting_after"), Some("ch_2"));

    // Nothing new: the next run asks from the saved `created`, and the charge at exactly
    // that value (already written) is not written again.
    let state: Value =
        serde_json::from_slice(&std::fs::read(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["streams"]["charges"]["cursor"], "1704067500");
    run(&[]).expect_code(0);
    let last = srv.requests_to("/v1/charges");
    assert_eq!(
        last.last().unwrap().param("created[gte]"),
        Some("1704067500")
    );
    assert_eq!(
        sb.records("charges").len(),
        5,
        "the boundary charge is not written twice"
    );
}
