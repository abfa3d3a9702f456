//! 409 and 422 from the demo API's idempotent `POST /orders`: reported per record in the
//! results file and the exit status, never retried (a 409 for a key in flight is waited
//! out: see push_inflight.rs); `on_conflict: stop` stops sending new records, `skip` goes on.

mod push_support;
mod support;

use push_support::{
    TOKEN, demo, order, orders, orders_target, posts, posts_by_key, push, push_to, results_by_line,
    results_path, sandbox, spec, summary,
};
use serde_json::{Value, json};
use support::{Reply, serve};

/// A target keyed by the record's own `request_id`, one record at a time.
fn by_request_id(on_conflict: &str) -> String {
    format!(
        "  by_request_id:\n    path: /orders\n    idempotency: {{ key_field: request_id }}\n    response_id: $.id\n    concurrency: 1\n    on_conflict: {on_conflict}\n"
    )
}

/// Order 1 created by an earlier run (whose results file is gone), then orders 6, 2, 1 with
/// another total (the key of order 1 reused with another body), 4 and 5. A key repeated
/// within one input is a duplicate, never sent (see push_inflight.rs), so the reuse here
/// comes from an earlier run.
fn reused_key_input(demo: &demo_api::DemoServer, on_conflict: &str) -> support::Sandbox {
    let earlier = sandbox(&spec("", &by_request_id(on_conflict)), &[order(1)]);
    push(&earlier, demo, "by_request_id", &[]).expect_code(0);
    demo.clear_requests();
    let mut reuse = order(1);
    reuse["total"] = json!(999.99);
    let records = vec![order(6), order(2), reuse, order(4), order(5)];
    sandbox(&spec("", &by_request_id(on_conflict)), &records)
}

#[test]
fn a_key_reused_with_another_body_is_rejected_and_stop_sends_no_new_record() {
    let demo = demo();
    let sb = reused_key_input(&demo, "stop");
    let run = push(&sb, &demo, "by_request_id", &[]);
    run.expect_code(1).expect_no_leak(TOKEN);

    let res = results_by_line(&sb);
    assert_eq!(
        res.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3],
        "{res:?}"
    );
    assert_eq!(res[&1]["outcome"], "created");
    assert_eq!(res[&2]["outcome"], "created");
    let r = &res[&3];
    assert_eq!(r["outcome"], "rejected", "{r}");
    assert_eq!(r["status"], 422, "{r}");
    assert_eq!(r["key"], "req-00001", "{r}");
    assert!(r.get("id").is_none(), "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("422"),
        "the error says what came back: {r}"
    );

    // Lines 4 and 5 were never sent; line 3 was sent once, not retried.
    let by_key = posts_by_key(&demo);
    assert_eq!(
        by_key.keys().cloned().collect::<Vec<_>>(),
        ["req-00001", "req-00002", "req-00006"]
    );
    let statuses: Vec<u16> = by_key["req-00001"].iter().map(|r| r.status).collect();
    assert_eq!(statuses, [422]);
    assert_eq!(
        demo.created_count(),
        3,
        "order 1 by the earlier run, 6 and 2"
    );
    let s = summary(&run);
    assert_eq!(
        (s.created, s.conflicts, s.not_sent, s.requests, s.retries),
        (2, 1, 2, 3, 0),
        "{s:?}"
    );
}

#[test]
fn skip_reports_the_rejected_records_and_goes_on() {
    let demo = demo();
    let sb = reused_key_input(&demo, "skip");
    let run = push(&sb, &demo, "by_request_id", &[]);
    run.expect_code(1);
    let res = results_by_line(&sb);
    let outcomes: Vec<(u64, &str)> = res
        .iter()
        .map(|(l, r)| (*l, r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, "created"),
            (2, "created"),
            (3, "rejected"),
            (4, "created"),
            (5, "created")
        ]
    );
    assert_eq!(res[&3]["status"], 422);
    assert_eq!(
        posts(&demo).len(),
        5,
        "one request per record, none retried"
    );
    assert_eq!(
        demo.created_count(),
        5,
        "order 1 by the earlier run, 6, 2, 4, 5"
    );
    let s = summary(&run);
    assert_eq!((s.created, s.conflicts, s.not_sent), (4, 1, 0), "{s:?}");
}

#[test]
fn records_changed_since_the_last_run_keep_their_key_and_are_rejected() {
    // The classic case: the key fields are the same, another field changed since the run
    // that created the order, and the results file is gone.
    let demo = demo();
    let target = orders_target("    concurrency: 2\n    on_conflict: skip");
    let sb = sandbox(&spec("", &target), &orders(5));
    push(&sb, &demo, "create_orders", &[]).expect_code(0);
    let first = results_by_line(&sb);
    std::fs::remove_file(results_path(&sb)).unwrap();

    let mut changed = orders(7);
    changed[1]["total"] = json!(1.0);
    changed[3]["status"] = json!("cancelled");
    sb.write("input.jsonl", &push_support::jsonl(&changed));
    demo.clear_requests();
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(1);
    let res = results_by_line(&sb);
    for (line, r) in &res {
        let want = if [2, 4].contains(line) {
            "rejected"
        } else {
            "created"
        };
        assert_eq!(r["outcome"], want, "line {line}: {r}");
        if let Some(f) = first.get(line) {
            assert_eq!(r["key"], f["key"], "line {line}: key changed");
        }
    }
    assert_eq!(res.len(), 7);
    assert_eq!(res[&2]["status"], 422);
    assert_eq!(res[&4]["status"], 422);
    // Lines 1, 3, 5 are replays (same ids), 6 and 7 new; no retry of a 422.
    for line in [1, 3, 5] {
        assert_eq!(res[&line]["id"], first[&line]["id"]);
    }
    assert_eq!(posts(&demo).len(), 7);
    assert_eq!(demo.created_count(), 7);
}

#[test]
fn a_conflict_409_or_a_422_is_not_retried_even_when_retry_on_status_lists_them() {
    // A spec written for `sync` may retry 409 (some APIs use it for a lock); push must still
    // report a 409 that is not about a key in flight, or a 422, at once.
    let srv = serve(|r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        match body["external_id"].as_str() {
            Some("EXT-00001") => Reply::json(
                r#"{"error": "conflict", "message": "an order with this reference already exists"}"#,
            )
            .with_status(409),
            Some("EXT-00002") => Reply::json(
                r#"{"error": "idempotency_key_reused", "message": "another body"}"#,
            )
            .with_status(422),
            _ => Reply::json(r#"{"id": 7}"#).with_status(201),
        }
    });
    let http = "  retry: { max_attempts: 4, initial: 10ms, max: 50ms, on_status: [409, 422, 429, 500, 503] }";
    let target = orders_target("    concurrency: 2\n    on_conflict: skip");
    let sb = sandbox(&spec(http, &target), &orders(3));
    let run = push_to(&sb, &srv.url(), "create_orders", TOKEN, &[], &[]);
    run.expect_code(1);
    let res = results_by_line(&sb);
    let outcomes: Vec<&str> = res
        .values()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["conflict", "rejected", "created"], "{res:?}");
    assert!(
        res[&1]["error"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{res:?}"
    );
    assert_eq!(
        srv.requests().len(),
        3,
        "a 409 or 422 was retried: {:?}",
        srv.requests()
    );
    let s = summary(&run);
    assert_eq!((s.conflicts, s.created, s.retries), (2, 1, 0), "{s:?}");
}
