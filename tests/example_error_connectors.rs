//! The example connectors that lean on error rules run for real (issue 12): a GitHub-style
//! GraphQL API (`connectors/graphql_api.yaml`) and a Jira-Cloud-style search API
//! (`connectors/jira_search.yaml`), each against a loopback stand-in that pages, filters
//! and fails the way the real API does.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use support::{Logged, Reply, Sandbox, connector, serve};

/// GitHub's GraphQL endpoint for one repository's issues: 2 per page, `filterBy.since`,
/// errors in a 200; the first request is "rate limited" in its body.
fn github(r: &Logged, issues: &[Value], calls: &AtomicUsize) -> Reply {
    if r.header("authorization") != Some("Bearer ghp_test") {
        return Reply::status(401, r#"{"message": "Bad credentials"}"#);
    }
    if r.method != "POST" || r.path != "/graphql" {
        return Reply::status(404, r#"{"message": "Not Found"}"#);
    }
    let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let vars = &body["variables"];
    let limited = calls.fetch_add(1, Ordering::SeqCst) == 0;
    let reset = "4102444800";
    if limited {
        return Reply::json(
            r#"{"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]}"#,
        )
        .header("X-RateLimit-Remaining", "0")
        .header("X-RateLimit-Reset", "1");
    }
    if !body["query"].as_str().unwrap_or("").contains("pageInfo") {
        return Reply::json(r#"{"errors": [{"message": "query is not valid"}]}"#);
    }
    if vars["repo"] != "widgets" {
        return Reply::json(format!(
            r#"{{"data": {{"repository": null}}, "errors": [{{"type": "NOT_FOUND", "path": ["repository"], "message": "Could not resolve to a Repository with the name '{}/{}'."}}]}}"#,
            vars["owner"].as_str().unwrap_or(""),
            vars["repo"].as_str().unwrap_or("")
        ));
    }
    let since = vars["since"].as_str().unwrap_or("");
    let fresh: Vec<&Value> = issues
        .iter()
        .filter(|i| i["updatedAt"].as_str().unwrap_or("") >= since)
        .collect();
    let start = match vars["cursor"].as_str() {
        None => 0,
        Some(c) => c
            .trim_start_matches("Y3Vyc29y")
            .parse::<usize>()
            .unwrap_or(0),
    };
    let page: Vec<&Value> = fresh.iter().skip(start).take(2).copied().collect();
    let end = start + page.len();
    let end_cursor = if page.is_empty() {
        Value::Null
    } else {
        json!(format!("Y3Vyc29y{end}"))
    };
    let answer = json!({"data": {"repository": {"issues": {
        "pageInfo": {"endCursor": end_cursor, "hasNextPage": end < fresh.len()},
        "nodes": page,
    }}}});
    Reply::json(answer.to_string())
        .header("X-RateLimit-Remaining", "4999")
        .header("X-RateLimit-Reset", reset)
}

#[test]
fn graphql_issues_page_by_end_cursor_retry_a_limit_and_fail_on_errors() {
    let issues: Vec<Value> = (1..=5)
        .map(|n| json!({"id": format!("I_{n}"), "number": n, "title": format!("issue {n}"), "state": "OPEN", "updatedAt": format!("2024-05-0{n}T10:00:00Z"), "author": {"login": "octo"}}))
        .collect();
    let calls = Arc::new(AtomicUsize::new(0));
    let (all, c) = (issues.clone(), calls.clone());
    let srv = serve(move |r| github(r, &all, &c));
    let sb = Sandbox::new();
    sb.spec(&connector("graphql_api"));
    let sets = ["token=ghp_test", "owner=acme", "repo=widgets"];
    let first = sb.sync_spec(&srv.url(), &sets);
    first
        .expect_code(0)
        .expect_stderr(&["matched http.errors[0]", "-> retry"])
        .expect_no_leak("ghp_test");
    let got: Vec<String> = sb
        .records("issues")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["I_1", "I_2", "I_3", "I_4", "I_5"]);
    // 1 limited + 3 pages + the empty page after the last endCursor.
    assert_eq!(srv.requests().len(), 5);

    // The next run sends the saved position as `since`.
    sb.sync_spec(&srv.url(), &sets).expect_code(0);
    let last: Value = serde_json::from_slice(&srv.requests().last().unwrap().body).unwrap();
    assert_eq!(last["variables"]["since"], "2024-05-05T10:00:00Z");

    // A repository that does not exist: a 200 with `errors`, and the API's message.
    let sb = Sandbox::new();
    sb.spec(&connector("graphql_api"));
    sb.sync_spec(&srv.url(), &["token=ghp_test", "owner=acme", "repo=gone"])
        .expect_code(1)
        .expect_stderr(&[
            "GraphQL error: Could not resolve to a Repository with the name 'acme/gone'. (http.errors[2])",
        ]);
}

/// Jira Cloud: projects (ACME, GONE deleted meanwhile, OPS), a JQL search with offset
/// pages (`maxResults` up to 100) and `total`, versions per project.
fn jira(r: &Logged, issues: &[Value]) -> Reply {
    // Basic auth for me@example.com:jira_secret.
    if r.header("authorization") != Some("Basic bWVAZXhhbXBsZS5jb206amlyYV9zZWNyZXQ=") {
        return Reply::status(401, r#"{"errorMessages": ["You are not authenticated."]}"#);
    }
    let start = r.num("startAt", 0);
    let max = r.num("maxResults", 50).min(100);
    let page = |items: Vec<Value>, key: &str| {
        let total = items.len();
        let slice: Vec<Value> = items.into_iter().skip(start).take(max).collect();
        Reply::json(
            json!({"startAt": start, "maxResults": max, "total": total, key: slice}).to_string(),
        )
    };
    match r.path.as_str() {
        "/rest/api/3/project/search" => page(
            ["ACME", "GONE", "OPS"]
                .iter()
                .enumerate()
                .map(|(i, k)| json!({"id": (10000 + i).to_string(), "key": k}))
                .collect(),
            "values",
        ),
        "/rest/api/3/search" => {
            let jql = r.param("jql").unwrap_or("");
            if jql.contains("bogus") {
                return Reply::status(
                    400,
                    r#"{"errorMessages": ["Field 'bogus' does not exist or you do not have permission to view it."], "errors": {}}"#,
                );
            }
            let Some(project) = jql
                .strip_prefix("project = \"")
                .and_then(|rest| rest.split('"').next())
            else {
                return Reply::status(400, r#"{"errorMessages": ["Error in the JQL Query"]}"#);
            };
            if project == "GONE" {
                return Reply::status(
                    400,
                    r#"{"errorMessages": ["The value 'GONE' does not exist for the field 'project'."], "errors": {}}"#,
                );
            }
            // `updated >= "yyyy-MM-dd HH:mm"`, compared to the minute.
            let Some(since) = jql
                .split("updated >= \"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .filter(|s| s.len() == 16)
            else {
                return Reply::status(400, r#"{"errorMessages": ["Date value is invalid"]}"#);
            };
            let fresh: Vec<Value> = issues
                .iter()
                .filter(|i| i["key"].as_str().unwrap_or("").starts_with(project))
                .filter(|i| {
                    let u = i["fields"]["updated"].as_str().unwrap_or("");
                    u[..16].replace('T', " ").as_str() >= since
                })
                .cloned()
                .collect();
            page(fresh, "issues")
        }
        "/rest/api/3/project/GONE/version" => Reply::status(
            404,
            r#"{"errorMessages": ["No project could be found with key 'GONE'."], "errors": {}}"#,
        ),
        p if p.starts_with("/rest/api/3/project/") && p.ends_with("/version") => page(
            vec![json!({"id": format!("v-{}", &p[20..p.len() - 8]), "name": "1.0"})],
            "values",
        ),
        _ => Reply::status(404, r#"{"errorMessages": ["Not found"]}"#),
    }
}

fn jira_issue(key: &str, id: u32, updated: &str) -> Value {
    json!({"id": id.to_string(), "key": key, "fields": {"summary": format!("summary {key}"), "status": {"name": "Open"}, "updated": updated}})
}

#[test]
fn jira_search_pages_by_start_at_skips_a_deleted_project_and_fails_on_bad_jql() {
    // 52 ACME issues: two pages of the connector's 50.
    let mut issues: Vec<Value> = (1..52)
        .map(|n| {
            jira_issue(
                &format!("ACME-{n}"),
                n,
                &format!("2024-05-02T00:{n:02}:00.000+0000"),
            )
        })
        .collect();
    issues.push(jira_issue("ACME-52", 52, "2024-05-03T10:30:00.000+0000"));
    issues.push(jira_issue("OPS-1", 100, "2024-05-04T08:00:00.000+0000"));
    let all = issues.clone();
    let srv = serve(move |r| jira(r, &all));
    let sb = Sandbox::new();
    sb.spec(&connector("jira_search"));
    let sets = ["email=me@example.com", "api_token=jira_secret"];
    let first = sb.sync_spec(&srv.url(), &sets);
    first
        .expect_code(0)
        .expect_no_leak("jira_secret")
        .expect_stderr(&[
            "1 response skipped by streams.issues.errors[0]",
            "1 response skipped by streams.versions.errors[0] (status 404 -> skip)",
        ]);
    let recs = sb.records("issues");
    assert_eq!(recs.len(), 53);
    let ops: Vec<&Value> = recs.iter().filter(|r| r["project_key"] == "OPS").collect();
    assert_eq!(ops.len(), 1);
    assert_eq!(
        ops[0]["fields"]["status"]["name"], "Open",
        "nested fields kept"
    );
    assert_eq!(sb.records("versions").len(), 2);
    assert_eq!(sb.records("projects").len(), 3);
    let jql = srv.requests_to("/rest/api/3/search")[0]
        .param("jql")
        .unwrap()
        .to_owned();
    assert!(jql.contains(r#"updated >= "2024-01-01 00:00""#), "{jql}");
    let starts = srv.param_seq("/rest/api/3/search", "startAt");
    assert!(
        starts.contains(&Some("50".to_owned())),
        "ACME has 2 pages: {starts:?}"
    );

    // The next run asks from the saved minute of each project.
    let before = srv.requests_to("/rest/api/3/search").len();
    sb.sync_spec(&srv.url(), &sets).expect_code(0);
    let again: Vec<String> = srv.requests_to("/rest/api/3/search")[before..]
        .iter()
        .map(|r| r.param("jql").unwrap().to_owned())
        .collect();
    assert!(
        again
            .iter()
            .any(|j| j.contains(r#"project = "ACME" AND updated >= "2024-05-03 10:30""#)),
        "{again:#?}"
    );

    // A JQL Jira rejects: the stream fails with Jira's own words.
    let sb = Sandbox::new();
    sb.spec(&connector("jira_search"));
    sb.sync_spec(&srv.url(), &["email=me@example.com", "api_token=jira_secret", "extra_jql=AND bogus = 1"])
        .expect_code(1)
        .expect_stderr(&["Jira rejected the request: Field 'bogus' does not exist or you do not have permission to view it. (http.errors[0])"]);
}
