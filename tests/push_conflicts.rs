//! 409 and 422 from the demo API's idempotent `POST /orders`: reported per record in the
//! results file and the exit status, never retried; `on_conflict: stop` stops sending new
//! records, `skip` goes on.

mod push_support;
mod support;

use std::time::Duration;

use push_support::{
    TOKEN, demo, demo_with, order, orders, orders_target, posts, posts_by_key, push,
    results_by_line, results_path, sandbox, spec, summary,
};
use serde_json::{Value, json};

/// A target keyed by the record's own `request_id`, one record at a time.
fn by_request_id(on_conflict: &str) -> String {
    format!(
        "  by_request_id:\n    path: /orders\n    idempotency: {{ key_field: request_id }}\n    response_id: $.id\n    concurrency: 1\n    on_conflict: {on_conflict}\n"
    )
}

/// Orders 1..=5, where line 3 reuses the key of line 1 with another total.
fn reused_key_input() -> Vec<Value> {
    let mut records = orders(5);
    let mut reuse = order(1);
    reuse["total"] = json!(999.99);
    records[2] = reuse;
    records
}

#[test]
fn a_key_reused_with_another_body_is_rejected_and_stop_sends_no_new_record() {
    let demo = demo();
    let sb = sandbox(&spec("", &by_request_id("stop")), &reused_key_input());
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
        ["req-00001", "req-00002"]
    );
    let statuses: Vec<u16> = by_key["req-00001"].iter().map(|r| r.status).collect();
    assert_eq!(statuses, [201, 422]);
    assert_eq!(demo.created_count(), 2);
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
    let sb = sandbox(&spec("", &by_request_id("skip")), &reused_key_input());
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
    assert_eq!(demo.created_count(), 4);
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
fn a_409_while_the_same_key_is_in_flight_is_a_conflict_sent_once() {
    // Lines 1 and 2 are the same record (same key, same body): whichever arrives second
    // finds the first still being processed (400 ms) and gets 409.
    let demo = demo_with(Duration::from_millis(400));
    let target = orders_target("    concurrency: 2\n    on_conflict: skip");
    let records = vec![order(1), order(1), order(2)];
    let sb = sandbox(&spec("", &target), &records);
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(1);

    let res = results_by_line(&sb);
    assert_eq!(res.len(), 3);
    let mut outcomes: Vec<&str> = [1, 2]
        .iter()
        .map(|l| res[l]["outcome"].as_str().unwrap())
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["conflict", "created"], "{res:?}");
    let conflict = res.values().find(|r| r["outcome"] == "conflict").unwrap();
    assert_eq!(conflict["status"], 409);
    assert_eq!(res[&3]["outcome"], "created");

    let by_key = posts_by_key(&demo);
    let key = conflict["key"].as_str().unwrap();
    let mut statuses: Vec<u16> = by_key[key].iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [201, 409],
        "one request per line for the key, no retry"
    );
    assert_eq!(posts(&demo).len(), 3);
    assert_eq!(demo.created_count(), 2);
    let s = summary(&run);
    assert_eq!((s.conflicts, s.retries), (1, 0), "{s:?}");
}

#[test]
fn a_409_or_422_is_not_retried_even_when_retry_on_status_lists_them() {
    // A spec written for `sync` may retry 409 (some APIs use it for a lock); push must still
    // report a 409 or 422 at once instead of sending the same key again.
    let demo = demo_with(Duration::from_millis(400));
    let http = "  retry: { max_attempts: 4, initial: 10ms, max: 50ms, on_status: [409, 422, 429, 500, 503] }";
    let mut records = vec![order(1), order(1)];
    let mut reuse = order(2);
    records.push(order(2));
    reuse["total"] = json!(5.0);
    records.push(reuse);
    let target = orders_target("    concurrency: 2\n    on_conflict: skip");
    let sb = sandbox(&spec(http, &target), &records);
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(1);
    let res = results_by_line(&sb);
    let mut outcomes: Vec<&str> = res
        .values()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        ["conflict", "created", "created", "rejected"],
        "{res:?}"
    );
    assert_eq!(
        posts(&demo).len(),
        4,
        "a 409 or 422 was retried: {:?}",
        posts(&demo)
    );
    assert_eq!(summary(&run).retries, 0);
}
