//! Error rules (issue 12, item 3), end to end: `skip` (counted in the summary, logged once
//! per rule with a count), `end` (state saved), `fail` with a message rendered from the
//! response, `retry` (max_attempts, Retry-After), status codes, classes and ranges, body
//! JSONPath and text, headers, a GraphQL error inside a 200, stream rules before `http`
//! rules, and `validate` reporting bad rules at file:line:col.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{Reply, Run, Sandbox, serve, spec, spec_full};

/// The `skipped` column of a stream's summary row (the column shows only with skips).
fn skipped(run: &Run, stream: &str) -> u64 {
    let mut lines = run.stdout.lines();
    let header: Vec<&str> = lines
        .by_ref()
        .find(|l| l.starts_with("stream "))
        .expect("summary table")
        .split_whitespace()
        .collect();
    let col = header
        .iter()
        .position(|c| *c == "skipped")
        .unwrap_or_else(|| panic!("no skipped column:\n{}", run.stdout));
    let row: Vec<&str> = lines
        .find(|l| l.split_whitespace().next() == Some(stream))
        .expect("row")
        .split_whitespace()
        .collect();
    row[col].parse().unwrap()
}

#[test]
fn a_404_for_a_deleted_parent_is_skipped_counted_and_logged_once() {
    let srv = serve(|r| match r.path.as_str() {
        "/projects" => Reply::json(r#"[{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]"#),
        "/projects/1/issues" => Reply::json(r#"[{"id": 10}, {"id": 11}]"#),
        "/projects/4/issues" => Reply::json(r#"[{"id": 40}]"#),
        _ => Reply::status(404, r#"{"message": "Not Found"}"#),
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  projects:
    path: /projects
    records: $[*]
  issues:
    parent: { stream: projects, key: id, concurrency: 1 }
    path: "/projects/{{ parent.id }}/issues"
    records: $[*]
    errors:
      - { status: 404, action: skip }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    let mut ids = sb.ids("issues");
    ids.sort();
    assert_eq!(ids, vec![10, 11, 40]);
    assert_eq!(skipped(&run, "issues"), 2);
    assert_eq!(skipped(&run, "projects"), 0);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("skipped by"))
        .collect();
    assert_eq!(lines.len(), 1, "one line per rule:\n{}", run.stderr);
    assert!(
        lines[0].contains("2 responses skipped by streams.issues.errors[0] (status 404 -> skip); the last: 404 from GET "),
        "{}",
        lines[0]
    );
}

#[test]
fn without_rules_the_same_404_fails_as_before() {
    let srv = serve(|_| Reply::status(404, "gone"));
    let sb = Sandbox::new();
    sb.spec(&spec("  a: { path: /a, records: $ }\n"));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&["404 from GET "]);
    assert!(!run.stdout.contains("skipped"), "{}", run.stdout);
}

#[test]
fn stream_rules_come_before_http_rules_and_ranges_match() {
    let srv = serve(|r| match r.path.as_str() {
        "/a" | "/b" => Reply::status(
            403,
            r#"{"error": {"code": "NO_ACCESS", "text": "forbidden"}}"#,
        ),
        "/c" => Reply::status(418, "teapot"),
        _ => Reply::status(503, "down"),
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "",
        r#"  errors:
    - { status: 400-499, body: { path: $.error.code, equals: NO_ACCESS }, action: fail, message: "no access ({{ status }}): {{ body.error.text }}" }
    - { status: [418, 5xx], action: skip }
"#,
        r#"
  a:
    path: /a
    records: $
    errors:
      - { status: 4xx, action: skip }
  b: { path: /b, records: $ }
  c: { path: /c, records: $ }
  d: { path: /d, records: $ }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "403 from GET ",
        "/b: no access (403): forbidden (http.errors[0])",
    ]);
    assert_eq!(skipped(&run, "a"), 1, "the stream's own rule wins");
    assert_eq!(skipped(&run, "c"), 1);
    assert_eq!(skipped(&run, "d"), 1, "5xx in a list, before the retries");
    assert_eq!(
        srv.requests_to("/d").len(),
        1,
        "a skipped 503 is not retried"
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("b ") && l.contains("FAILED"))
    );
}

#[test]
fn a_graphql_error_in_a_200_fails_with_its_message_escaped() {
    let srv = serve(|_| {
        Reply::json(
            r#"{"data": null, "errors": [{"message": "Field 'nme' doesn't exist\n\u001b[31mforged"}]}"#,
        )
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  q:
    path: /graphql
    method: POST
    body: { query: "{ viewer { login } }" }
    records: $.data.viewer
    errors:
      - { status: 200, body: "$.errors", action: fail, message: "GraphQL error: {{ body.errors[0].message }}" }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "GraphQL error: Field 'nme' doesn't exist\\n\\u{1b}[31mforged (streams.q.errors[0])",
    ]);
    assert!(!run.stderr.contains('\u{1b}'), "escape reached the log");
}

#[test]
fn header_and_body_text_rules_end_the_stream_and_save_its_state() {
    // Page 3 does not exist: the API answers 400 with a text and a header, as some APIs do
    // past the last page; `end` makes that a normal end, and the state is saved.
    let srv = serve(|r| match r.num("page", 1) {
        1 => Reply::json(
            r#"[{"id": 1, "u": "2024-03-01T00:00:00Z"}, {"id": 2, "u": "2024-03-02T00:00:00Z"}]"#,
        ),
        2 => Reply::json(
            r#"[{"id": 3, "u": "2024-03-03T00:00:00Z"}, {"id": 4, "u": "2024-03-04T00:00:00Z"}]"#,
        ),
        _ => Reply::status(400, "page out of range: no more results")
            .header("X-Reason", "range, end"),
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  ev:
    path: /ev
    records: $[*]
    primary_key: id
    pagination: { kind: page_number, page_param: page, size: 2 }
    incremental: { cursor_field: u, param: since, start: "2024-01-01T00:00:00Z" }
    errors:
      - { status: 400, header: { name: x-reason, contains: range }, body: { contains: "no more results" }, action: end }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0)
        .expect_stderr(&["matched streams.ev.errors[0]", "the stream ends here"]);
    assert_eq!(sb.ids("ev"), vec![1, 2, 3, 4]);
    let state = std::fs::read_to_string(sb.out().join("state.json")).unwrap();
    assert!(state.contains("2024-03-04T00:00:00Z"), "{state}");
    sb.sync(&srv, &[]).expect_code(0);
    let since = srv.param_seq("/ev", "since");
    assert_eq!(
        since.last().unwrap().as_deref(),
        Some("2024-03-04T00:00:00Z")
    );
}

#[test]
fn a_header_that_does_not_match_leaves_the_response_to_the_usual_handling() {
    let srv = serve(|_| Reply::status(400, "no more results").header("X-Reason", "other"));
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  ev:
    path: /ev
    records: $[*]
    errors:
      - { status: 400, header: { name: X-Reason, equals: range }, action: end }
"#,
    ));
    sb.sync(&srv, &[])
        .expect_code(1)
        .expect_stderr(&["400 from GET "]);
}

#[test]
fn retry_rules_use_retry_after_and_stop_at_max_attempts() {
    // A 200 that says "rate limited" in its body (GitHub's GraphQL does): retried twice,
    // then the data comes.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let srv = serve(move |_| {
        if c.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::json(r#"{"errors": [{"type": "RATE_LIMITED"}]}"#).header("Retry-After", "0")
        } else {
            Reply::json(r#"{"data": [{"id": 1}]}"#)
        }
    });
    let rule = r#"
  q:
    path: /q
    records: $.data[*]
    errors:
      - { body: { path: "$.errors[*].type", equals: RATE_LIMITED }, action: retry }
"#;
    let sb = Sandbox::new();
    sb.spec(&spec(rule));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0).expect_stderr(&[
        "200 from GET ",
        "matched streams.q.errors[0] (body $.errors[*].type -> retry), Retry-After: 0, waiting",
        "attempt 3/3",
    ]);
    assert_eq!(sb.ids("q"), vec![1]);
    assert_eq!(srv.requests().len(), 3);

    // Always limited: the spec's max_attempts (3) ends it.
    let srv = serve(|_| Reply::json(r#"{"errors": [{"type": "RATE_LIMITED"}]}"#));
    let sb = Sandbox::new();
    sb.spec(&spec(rule));
    sb.sync(&srv, &[])
        .expect_code(1)
        .expect_stderr(&["gave up after 3 attempts", "matched streams.q.errors[0]"]);
    assert_eq!(srv.requests().len(), 3);

    // A Retry-After beyond retry.max_total is read, and not waited.
    let srv = serve(|_| Reply::status(403, "secondary rate limit").header("Retry-After", "3600"));
    let sb = Sandbox::new();
    sb.spec(&spec(
        "  q:\n    path: /q\n    records: $\n    errors: [{ status: 403, body: { contains: rate limit }, action: retry }]\n",
    ));
    sb.sync(&srv, &[])
        .expect_code(1)
        .expect_stderr(&["the API asked to wait 3600s"]);
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn validate_reports_bad_rules_at_their_position() {
    let sb = Sandbox::new();
    let path = sb.spec(&spec_full(
        "",
        "  errors:\n    - { status: 6xx, action: retry }\n",
        r#"
  a:
    path: /a
    records: $
    errors:
      - { status: 400, body: "$.errors[", action: fail, mesage: x }
      - { status: 400, action: fail, message: "{{ bdy.x }}" }
  b:
    path: /b
    records: $
    errors: [{ status: 404, action: skipp }]
"#,
    ));
    sb.run(&["validate", path.to_str().unwrap()])
        .expect_code(2)
        .expect_stdout(&[
            "spec.yaml:9:17: error: `6xx` is not a status class",
            "spec.yaml:15:57: error: unknown field `mesage`",
            "did you mean `message`?",
            "spec.yaml:15:30: error: JSONPath `$.errors[` does not parse",
            "spec.yaml:16:51: error: unknown variable `bdy`",
            "did you mean `body`?",
            "spec.yaml:20:37: error: unknown value `skipp`",
            "did you mean `skip`?",
        ]);
}
