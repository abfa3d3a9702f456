//! What moves the saved state, and what never does: a parent's state stays where it was
//! when one of its children fails (and is never saved page by page while children run),
//! and `--limit` never saves state, even for an incremental stream that checkpoints pages.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use support::{Logged, Reply, Sandbox, serve, spec};

/// Orders 1..=`n` with `updated_at` growing with the id, in cursor pages of 2; the items of
/// order `fail` (0: none) answer 404, which fails that child partition at once.
fn shop(r: &Logged, n: usize, fail: usize) -> Reply {
    let path: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    match path.as_slice() {
        ["orders"] => {
            let from = r.num("cursor", 0);
            let orders: Vec<String> = (from + 1..=(from + 2).min(n))
                .map(|id| format!(r#"{{"id": {id}, "updated_at": "2024-01-{id:02}T00:00:00Z"}}"#))
                .collect();
            let next = if from + 2 < n {
                format!("\"{}\"", from + 2)
            } else {
                "null".into()
            };
            Reply::json(format!(
                r#"{{"orders": [{}], "next": {next}}}"#,
                orders.join(", ")
            ))
        }
        ["orders", id, "items"] if id.parse::<usize>().ok() == Some(fail) => {
            Reply::status(404, "no such order")
        }
        ["orders", id, "items"] => {
            Reply::json(format!(r#"{{"items": [{{"line": 1, "order": {id}}}]}}"#))
        }
        _ => Reply::status(404, "not found"),
    }
}

/// A sorted incremental parent (it would checkpoint after every page on its own) and,
/// when `with_child`, a child stream of it.
fn shop_spec(with_child: bool) -> String {
    let mut streams = String::from(
        r#"
  orders:
    path: /orders
    primary_key: id
    records: $.orders[*]
    pagination: { kind: cursor, next: $.next, param: cursor }
    incremental: { cursor_field: updated_at, start: "2023-01-01T00:00:00Z", sorted: true }
"#,
    );
    if with_child {
        streams.push_str(
            r#"  items:
    parent: { stream: orders, key: id, include: { order_id: id } }
    path: "/orders/{{ parent.id }}/items"
    records: $.items[*]
"#,
        );
    }
    spec(&streams)
}

/// The saved state of a stream (`null` when none was saved).
fn saved(sb: &Sandbox, stream: &str) -> Value {
    match std::fs::read(sb.out().join("state.json")) {
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            v["streams"][stream].clone()
        }
        Err(_) => Value::Null,
    }
}

#[test]
fn a_parent_keeps_its_state_when_a_child_fails_and_never_saves_it_page_by_page() {
    // Order 3 (on the parent's second page) has no items: the child fails. Per-page
    // checkpoints of the parent would have saved order 2's cursor after page 1; a commit
    // despite the failed child would have saved order 4's.
    let fail = Arc::new(AtomicUsize::new(3));
    let f = fail.clone();
    let srv = serve(move |r| shop(r, 4, f.load(Ordering::SeqCst)));
    let sb = Sandbox::new();
    sb.spec(&shop_spec(true));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "stream items failed",
        "partition orders 3",
        "a child stream failed, so this stream's state was not saved",
    ]);
    assert_eq!(run.row("orders").records, 4, "the parent itself completed");
    assert_eq!(
        saved(&sb, "orders"),
        Value::Null,
        "the parent's state moved"
    );
    assert_eq!(saved(&sb, "items"), Value::Null, "the child's state moved");

    // Once the child works, the next run fetches every parent again, and saves.
    fail.store(0, Ordering::SeqCst);
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(run.row("orders").records, 4, "{}", run.stdout);
    assert_eq!(saved(&sb, "orders")["cursor"], "2024-01-04T00:00:00Z");
    let items: Vec<i64> = sb
        .records("items")
        .iter()
        .map(|r| r["order_id"].as_i64().unwrap())
        .collect();
    // The first run's items of orders 1, 2 and 4 were cut back: each order's items once.
    let mut sorted = items.clone();
    sorted.sort();
    assert_eq!(sorted, vec![1, 2, 3, 4], "{items:?}");
}

#[test]
fn a_parent_and_its_child_save_state_matching_their_output() {
    // A run that succeeds: the parent's state covers all four orders,
    // and its output matches it; the child has its partitions.
    let srv = serve(|r| shop(r, 4, 0));
    let sb = Sandbox::new();
    sb.spec(&shop_spec(true));
    sb.sync(&srv, &[]).expect_code(0);
    let orders = saved(&sb, "orders");
    assert_eq!(orders["cursor"], "2024-01-04T00:00:00Z");
    assert_eq!(
        orders["output_bytes"].as_u64(),
        Some(std::fs::metadata(sb.output("orders")).unwrap().len())
    );
    assert_eq!(
        saved(&sb, "items")["output_bytes"].as_u64(),
        Some(std::fs::metadata(sb.output("items")).unwrap().len())
    );
}

#[test]
fn limit_never_saves_state_even_for_a_sorted_incremental_stream() {
    let n = Arc::new(AtomicUsize::new(4));
    let count = n.clone();
    let srv = serve(move |r| shop(r, count.load(Ordering::SeqCst), 0));
    let sb = Sandbox::new();
    sb.spec(&shop_spec(false));

    // From nothing: a limited run writes records but saves no state at all.
    let run = sb.sync(&srv, &["--limit", "3"]);
    run.expect_code(0);
    assert_eq!(run.row("orders").records, 3);
    assert_eq!(saved(&sb, "orders"), Value::Null, "--limit saved state");

    // After a full run, a limited run over new records leaves the state file as it was.
    sb.sync(&srv, &["--full-refresh"]).expect_code(0);
    let before = std::fs::read(sb.out().join("state.json")).unwrap();
    assert_eq!(
        saved(&sb, "orders")["cursor"],
        "2024-01-04T00:00:00Z",
        "the full run saved"
    );
    n.store(8, Ordering::SeqCst);
    let run = sb.sync(&srv, &["--limit", "3"]);
    run.expect_code(0);
    assert_eq!(run.row("orders").records, 3);
    assert_eq!(
        std::fs::read(sb.out().join("state.json")).unwrap(),
        before,
        "--limit moved the saved state"
    );
}
