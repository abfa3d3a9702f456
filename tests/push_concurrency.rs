//! `runtime push` with `concurrency: 8` and 200 records against the demo API: exactly one
//! order per record, one `created` result line per record with the id the API returned,
//! and never more than 8 requests outstanding.

mod push_support;
mod support;

use std::time::Duration;

use push_support::{
    TOKEN, created_by_external_id, demo_with, orders, orders_target, posts, posts_by_key, push,
    results_by_line, sandbox, spec, summary,
};

/// How long the demo takes per create; a request that arrived less than this long before
/// another one is still outstanding when the other arrives.
const DELAY: Duration = Duration::from_millis(50);

#[test]
fn two_hundred_records_at_concurrency_8_make_exactly_one_order_each() {
    let records = orders(200);
    let demo = demo_with(DELAY);
    let sb = sandbox(&spec("", &orders_target("    concurrency: 8")), &records);
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(0).expect_no_leak(TOKEN);

    let created = created_by_external_id(&demo);
    assert_eq!(created.len(), 200, "orders created");
    assert_eq!(demo.created_count(), 200);

    let res = results_by_line(&sb);
    assert_eq!(res.len(), 200, "result lines");
    for (i, rec) in records.iter().enumerate() {
        let r = &res[&(i as u64 + 1)];
        assert_eq!(r["outcome"], "created", "{r}");
        assert_eq!(r["status"], 201, "{r}");
        let ext = rec["external_id"].as_str().unwrap();
        assert_eq!(
            r["id"].as_u64(),
            Some(created[ext]),
            "line {}: the id is not the id of its order: {r}",
            i + 1
        );
    }
    let by_key = posts_by_key(&demo);
    assert_eq!(by_key.len(), 200);
    assert!(
        by_key.values().all(|r| r.len() == 1),
        "a record was sent twice"
    );
    let s = summary(&run);
    assert_eq!(
        (s.read, s.created, s.requests, s.retries),
        (200, 200, 200, 0)
    );

    // Outstanding requests, seen from the server: if the first and the last of 9 arrivals are
    // less than DELAY apart, all 9 were outstanding at once (each takes at least DELAY).
    let mut at: Vec<Duration> = posts(&demo).iter().map(|r| r.at).collect();
    at.sort();
    let margin = Duration::from_millis(2);
    let most_within = |n: usize| {
        at.windows(n)
            .filter(|w| w[n - 1] - w[0] + margin < DELAY)
            .count()
    };
    assert_eq!(
        most_within(9),
        0,
        "more than 8 requests were outstanding at once"
    );
    // And it did run concurrently: one at a time, arrivals would be DELAY apart.
    let max_burst = (1..=8).rev().find(|&n| most_within(n) > 0).unwrap_or(1);
    assert!(
        max_burst >= 4,
        "at most {max_burst} requests were outstanding at once"
    );
    println!("concurrency 8: up to {max_burst} requests outstanding at once");
}
