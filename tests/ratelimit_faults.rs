//! Failures without a header that says how long to wait: bursts of 5xx, connections closed
//! before the answer or in the middle of the body, bodies shorter than announced, slow
//! answers; retries that run out; 4xx that must not be retried. The output must hold every
//! record exactly once, and a failed request must be reported without its secrets.

mod support;
mod support_ratelimit;

use std::time::{Duration, Instant};

use support::{Reply, Sandbox};
use support_ratelimit::{
    Raw, all_lines, log_lines, page, page_body, paged_stream, raw_chunked_cut, raw_json,
    raw_truncated, rl_spec, serve_raw, serve_timed, sync_at,
};

/// Short backoffs, default attempts (6).
const HTTP: &str = "  retry: { initial: 10ms, max: 100ms }\n";

#[test]
fn bursts_of_503_without_retry_after_are_retried_with_backoff() {
    // Every page answers 503 three times before it answers.
    let (srv, hits) = serve_timed(|c| {
        let p = c.req.num("page", 1);
        if c.nth_of_page <= 3 {
            return Reply::status(503, "busy");
        }
        page(p, 5, 3)
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", HTTP, &paged_stream("orders")));
    let started = Instant::now();
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders"), all_lines(5, 3));
    let pages: Vec<usize> = hits.to("/orders").iter().map(|h| h.page).collect();
    assert_eq!(
        pages,
        (1..=5).flat_map(|p| [p; 4]).collect::<Vec<_>>(),
        "each page four times, in order"
    );
    let row = run.row("orders");
    assert_eq!(
        (row.records, row.pages, row.requests, row.retries),
        (15, 5, 20, 15)
    );
    // Backoff stays within retry.max (100 ms) per wait: 15 waits, far below 15 s.
    assert!(started.elapsed() < Duration::from_secs(10));
    let url = srv.url();
    for attempt in 2..=4 {
        let lines = log_lines(
            &run,
            &format!("orders: 503 from GET {url}/orders?page=5, waiting "),
        );
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with(&format!(", attempt {attempt}/6"))),
            "no log line for attempt {attempt} of page 5:\n{}",
            run.stderr
        );
    }
    for l in log_lines(&run, "orders: 503 from GET") {
        let wait: f64 = l
            .split("waiting ")
            .nth(1)
            .and_then(|r| r.split('s').next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(wait <= 0.1, "a backoff above retry.max: {l}");
    }
}

#[test]
fn a_connection_dropped_in_the_middle_of_a_chunked_body_is_retried() {
    let srv = serve_raw(|r| {
        let body = page_body(r.page, 3, 4);
        if r.page == 2 && r.nth_of_page == 1 {
            // Half of the JSON, then the connection closes with no last chunk.
            return Raw::Bytes(raw_chunked_cut(&body, body.len() / 2));
        }
        Raw::Bytes(raw_json(&body))
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", HTTP, &paged_stream("orders")));
    let run = sync_at(&sb, &srv.url(), &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders"), all_lines(3, 4));
    let pages: Vec<usize> = srv.requests().iter().map(|r| r.page).collect();
    assert_eq!(pages, [1, 2, 2, 3]);
    assert_eq!(run.row("orders").retries, 1);
    run.expect_stderr(&[
        "orders: GET ",
        "/orders?page=2: the response body was cut short",
    ]);
}

#[test]
fn a_json_body_shorter_than_its_content_length_is_retried() {
    let srv = serve_raw(|r| {
        let body = page_body(r.page, 3, 4);
        // Page 2 is cut twice in the middle of a record, page 3 once just before its end.
        match (r.page, r.nth_of_page) {
            (2, 1 | 2) => Raw::Bytes(raw_truncated(&body, body.len() / 2)),
            (3, 1) => Raw::Bytes(raw_truncated(&body, body.len() - 1)),
            _ => Raw::Bytes(raw_json(&body)),
        }
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", HTTP, &paged_stream("orders")));
    let run = sync_at(&sb, &srv.url(), &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders"), all_lines(3, 4));
    let pages: Vec<usize> = srv.requests().iter().map(|r| r.page).collect();
    assert_eq!(pages, [1, 2, 2, 2, 3, 3]);
    let row = run.row("orders");
    assert_eq!((row.records, row.requests, row.retries), (12, 6, 3));
}

#[test]
fn a_connection_closed_before_any_answer_is_retried() {
    let srv = serve_raw(|r| {
        let body = page_body(r.page, 2, 2);
        if r.nth_of_page == 1 {
            return Raw::Close;
        }
        Raw::Bytes(raw_json(&body))
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", HTTP, &paged_stream("orders")));
    let run = sync_at(&sb, &srv.url(), &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders"), all_lines(2, 2));
    let pages: Vec<usize> = srv.requests().iter().map(|r| r.page).collect();
    assert_eq!(pages, [1, 1, 2, 2]);
    assert_eq!(run.row("orders").retries, 2);
}

#[test]
fn a_slow_answer_times_out_and_is_retried() {
    let srv = serve_raw(|r| {
        let body = page_body(r.page, 2, 2);
        if r.page == 1 && r.nth_of_page == 1 {
            return Raw::Delayed(Duration::from_millis(1500), raw_json(&body));
        }
        Raw::Bytes(raw_json(&body))
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        &format!("  timeout: 300ms\n{HTTP}"),
        &paged_stream("orders"),
    ));
    let started = Instant::now();
    let run = sync_at(&sb, &srv.url(), &[]);
    run.expect_code(0);
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "the run waited for the slow answer: {:?}",
        started.elapsed()
    );
    assert_eq!(sb.lines("orders"), all_lines(2, 2));
    let pages: Vec<usize> = srv.requests().iter().map(|r| r.page).collect();
    assert_eq!(pages, [1, 1, 2]);
    run.expect_stderr(&["/orders?page=1: timed out", "attempt 2/6"]);
}

const SECRET: &str = "k3y-Zq81-never-print";

#[test]
fn retries_that_run_out_fail_the_stream_with_the_whole_story_and_the_others_finish() {
    let (srv, hits) = serve_timed(|c| {
        if c.req.path == "/broken" {
            return Reply::status(500, "internal error: database unavailable");
        }
        page(c.req.num("page", 1), 3, 2)
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "  key: { type: string, secret: true }\n",
        "  auth: { kind: api_key, in: query, name: api_key, value: \"{{ config.key }}\" }\n  retry: { max_attempts: 4, initial: 10ms, max: 100ms }\n",
        &format!("{}{}", paged_stream("broken"), paged_stream("fine")),
    ));
    let set = format!("key={SECRET}");
    let run = sb.sync(&srv, &["--set", &set]);
    run.expect_code(1).expect_no_leak(SECRET);

    // The key was sent, so not printing it is the redaction's doing.
    let sent: Vec<_> = srv.requests_to("/broken");
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|r| r.param("api_key") == Some(SECRET)));

    let url = srv.url();
    let lines = log_lines(&run, "error: stream broken failed: ");
    assert_eq!(lines.len(), 1, "stderr:\n{}", run.stderr);
    let msg = lines[0];
    for part in [
        &format!("GET {url}/broken?page=1&api_key=***") as &str,
        "gave up after 4 attempts",
        "s waited",
        "last: 500 from GET",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    let row = run.row("broken");
    assert_eq!(
        (row.status.as_str(), row.requests, row.retries),
        ("FAILED", 4, 3)
    );
    assert!(!sb.has_output("broken"));

    assert_eq!(run.row("fine").status, "ok");
    assert_eq!(sb.lines("fine"), all_lines(3, 2));
    assert_eq!(hits.to("/fine").len(), 3);
}

#[test]
fn a_400_is_not_retried_and_shows_the_status_and_the_start_of_the_body() {
    let long = "x".repeat(400);
    let body = format!(
        r#"{{"error": "invalid_request", "message": "unknown parameter page", "detail": "{long}", "end": "TAIL-MARKER"}}"#
    );
    let (srv, hits) = serve_timed(move |_| Reply::json(body.clone()).with_status(400));
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", HTTP, &paged_stream("orders")));
    let started = Instant::now();
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[&format!(
        "error: stream orders failed: 400 from GET {}/orders?page=1; body: {{\"error\": \"invalid_request\", \"message\": \"unknown parameter page\"",
        srv.url()
    )]);
    assert!(
        !run.stderr.contains("TAIL-MARKER"),
        "the whole body was printed"
    );
    assert!(!run.stderr.contains("waiting"), "a 400 was retried");
    assert_eq!(hits.all().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    let row = run.row("orders");
    assert_eq!(
        (row.status.as_str(), row.requests, row.retries),
        ("FAILED", 1, 0)
    );
}

/// A 200 whose Content-Length matches what was sent, but whose JSON stops in the middle:
/// only the JSON parser can tell the body was cut. The same request is sent again, as for
/// any body cut short (docs/rate-limits.md, "What is retried").
#[test]
fn a_json_body_cut_short_under_a_matching_content_length_is_retried() {
    let srv = serve_raw(|r| {
        let body = page_body(r.page, 3, 4);
        match (r.page, r.nth_of_page) {
            (2, 1) => Raw::Bytes(raw_json(&body[..body.len() / 2])),
            _ => Raw::Bytes(raw_json(&body)),
        }
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", HTTP, &paged_stream("orders")));
    let run = sync_at(&sb, &srv.url(), &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders"), all_lines(3, 4));
    let pages: Vec<usize> = srv.requests().iter().map(|r| r.page).collect();
    assert_eq!(pages, [1, 2, 2, 3]);
}
