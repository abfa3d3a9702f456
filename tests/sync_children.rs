//! Child streams: one pass per parent record, parent fields carried into child records,
//! parents run when only the child is asked for, and failures passed down.

mod support;

use support::{Logged, Reply, Sandbox, rec_lines, recs, serve, spec};

/// Items per order id 1..=5 (order 3 has none).
const ITEMS: [usize; 5] = [2, 3, 0, 4, 1];
const STATUS: [&str; 5] = ["paid", "open", "paid", "void", "open"];

fn order(id: usize) -> String {
    format!(
        r#"{{"id": {id}, "status": "{}", "total": {id}0.00}}"#,
        STATUS[id - 1]
    )
}

fn item(order: usize, line: usize) -> String {
    format!(r#"{{"line": {line}, "sku": "s-{order}-{line}", "qty": 1.50}}"#)
}

/// The expected output line of an item, with `order_id` and `order_status` spliced in front.
fn item_line(order: usize, line: usize) -> String {
    let raw = item(order, line);
    format!(
        r#"{{"order_id":{order},"order_status":"{}",{}"#,
        STATUS[order - 1],
        &raw[1..]
    )
}

/// Orders 1..=5 in cursor pages of 2 at `/orders` (page 2 answers `fail_page2` when set);
/// items at `/orders/{id}/items`; products at `/products`.
fn shop(r: &Logged, fail_page2: Option<u16>, missing_items_of: Option<usize>) -> Reply {
    let path: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    match path.as_slice() {
        ["orders"] => {
            let from = r.num("cursor", 0);
            if let (true, Some(s)) = (from > 0, fail_page2) {
                return Reply::status(s, "bad cursor");
            }
            let ids: Vec<usize> = (from + 1..=(from + 2).min(5)).collect();
            let next = if from + 2 < 5 {
                format!("{}", from + 2)
            } else {
                "null".into()
            };
            let orders: Vec<String> = ids.into_iter().map(order).collect();
            Reply::json(format!(
                r#"{{"orders": [{}], "next": {next}}}"#,
                orders.join(", ")
            ))
        }
        ["orders", id, "items"] => {
            let id: usize = id.parse().unwrap();
            if missing_items_of == Some(id) {
                return Reply::status(404, "no such order");
            }
            let items: Vec<String> = (1..=ITEMS[id - 1]).map(|l| item(id, l)).collect();
            Reply::json(format!(r#"{{"items": [{}]}}"#, items.join(", ")))
        }
        ["products"] => Reply::json(format!("[{}]", recs(1..=3))),
        _ => Reply::status(404, "not found"),
    }
}

const SHOP: &str = r#"
  orders:
    path: /orders
    primary_key: id
    records: $.orders[*]
    pagination: { kind: cursor, next: $.next, param: cursor }
  order_items:
    parent: { stream: orders, key: id, include: { order_id: id, order_status: status } }
    path: "/orders/{{ parent.id }}/items"
    primary_key: [order_id, line]
    records: $.items[*]
  products:
    path: /products
    records: $[*]
"#;

fn all_items() -> Vec<String> {
    (1..=5)
        .flat_map(|o| (1..=ITEMS[o - 1]).map(move |l| item_line(o, l)))
        .collect()
}

#[test]
fn every_parent_gets_its_children_fetched_once_with_parent_fields() {
    let srv = serve(|r| shop(r, None, None));
    let sb = Sandbox::new();
    sb.spec(&spec(SHOP));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders"), (1..=5).map(order).collect::<Vec<_>>());
    // Partitions run concurrently: each one's lines stay together and in order.
    let lines = sb.lines("order_items");
    let mut sorted = lines.clone();
    sorted.sort();
    let mut expected = all_items();
    expected.sort();
    assert_eq!(sorted, expected);
    for o in 1..=5 {
        let mine: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{{\"order_id\":{o},")))
            .collect();
        let want: Vec<String> = (1..=ITEMS[o - 1]).map(|l| item_line(o, l)).collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>(), "order {o}");
    }
    for o in 1..=5 {
        let n = srv.requests_to(&format!("/orders/{o}/items")).len();
        assert_eq!(n, 1, "children of order {o} fetched {n} times");
    }
    assert_eq!(srv.requests().len(), 3 + 5 + 1);
    let row = run.row("order_items");
    assert_eq!((row.records, row.pages, row.requests), (10, 5, 5));
    assert_eq!(sb.lines("products"), rec_lines(1..=3));
}

#[test]
fn asking_for_the_child_runs_its_parent_too() {
    let srv = serve(|r| shop(r, None, None));
    let sb = Sandbox::new();
    sb.spec(&spec(SHOP));
    let run = sb.sync(&srv, &["--streams", "order_items"]);
    run.expect_code(0);
    assert_eq!(sb.out_files(), ["order_items.jsonl", "orders.jsonl"]);
    assert_eq!(sb.lines("order_items").len(), 10);
    assert_eq!(sb.lines("orders").len(), 5);
    assert!(srv.requests_to("/products").is_empty());
    assert_eq!(run.row("orders").records, 5);
}

#[test]
fn a_child_fails_with_its_parent_and_the_other_streams_finish() {
    let srv = serve(|r| shop(r, Some(400), None));
    let sb = Sandbox::new();
    sb.spec(&spec(SHOP));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "stream orders failed: 400 from GET",
        "/orders?cursor=2",
        "stream order_items failed: parent stream orders failed",
    ]);
    assert_eq!(sb.out_files(), ["products.jsonl"]);
    assert_eq!(sb.lines("products"), rec_lines(1..=3));
    assert_eq!(run.row("orders").status, "FAILED");
    assert_eq!(run.row("order_items").status, "FAILED");
    assert_eq!(run.row("products").status, "ok");
}

#[test]
fn a_failing_child_partition_fails_the_child_only() {
    let srv = serve(|r| shop(r, None, Some(4)));
    let sb = Sandbox::new();
    sb.spec(&spec(SHOP));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "stream order_items failed: partition orders 4: 404 from GET",
        "/orders/4/items",
    ]);
    assert_eq!(sb.out_files(), ["orders.jsonl", "products.jsonl"]);
    assert_eq!(run.row("order_items").status, "FAILED");
}

#[test]
fn concurrency_one_still_completes_parents_children_and_the_rest() {
    let srv = serve(|r| shop(r, None, None));
    let sb = Sandbox::new();
    sb.spec(&spec(SHOP));
    let run = sb.sync(&srv, &["--concurrency", "1"]);
    run.expect_code(0);
    assert_eq!(
        sb.out_files(),
        ["order_items.jsonl", "orders.jsonl", "products.jsonl"]
    );
    assert_eq!(sb.lines("orders").len(), 5);
    assert_eq!(sb.lines("order_items").len(), 10);
    assert_eq!(sb.lines("products").len(), 3);
}

#[test]
fn an_included_field_the_child_already_has_is_not_written_twice() {
    // The items carry `order_id` themselves, and the spec includes it from the parent too.
    let srv = serve(|r| match r.path.as_str() {
        "/orders" => Reply::json(r#"{"orders": [{"id": 7}], "next": null}"#),
        "/orders/7/items" => Reply::json(r#"{"items": [{"order_id": 7, "line": 1}]}"#),
        _ => Reply::status(404, "no"),
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  orders:
    path: /orders
    records: $.orders[*]
  order_items:
    parent: { stream: orders, key: id, include: { order_id: id } }
    path: "/orders/{{ parent.id }}/items"
    records: $.items[*]
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    let lines = sb.lines("order_items");
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0].matches("\"order_id\"").count(),
        1,
        "duplicate key in {}",
        lines[0]
    );
}

#[test]
fn a_parent_record_without_the_key_fails_the_child_and_names_the_field() {
    let srv = serve(|r| match r.path.as_str() {
        "/orders" => Reply::json(r#"{"orders": [{"id": 1}, {"number": 2}], "next": null}"#),
        "/orders/1/items" => Reply::json(r#"{"items": [{"line": 1}]}"#),
        _ => Reply::status(404, "no"),
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  orders:
    path: /orders
    records: $.orders[*]
  order_items:
    parent: { stream: orders, key: id }
    path: "/orders/{{ parent.id }}/items"
    records: $.items[*]
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "stream order_items failed",
        "has no `id`",
        "streams.order_items.parent.key",
    ]);
    assert_eq!(sb.out_files(), ["orders.jsonl"]);
    assert_eq!(srv.requests().len(), 2);
}
