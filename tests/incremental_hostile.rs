//! Incremental sync against a hostile API and a damaged state: one record from the far
//! future cannot freeze the cursor, and a state that does not fit its output file (cut
//! mid-line, beyond the file's end, a cursor of the wrong type) is refused with exit 2,
//! leaving every file as it was.

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use support::{Reply, Sandbox, Server, serve, spec};

const STREAMS: &str = r#"
  orders:
    path: /orders
    primary_key: id
    records: $.orders[*]
    incremental:
      cursor_field: updated_at
      param: updated_at_gte
      start: "2024-01-01T00:00:00Z"
      sorted: true
"#;

const FAR: &str = "9999-12-31T23:59:59Z";

/// The API's orders; `GET /orders?updated_at_gte=` answers those at or after it, sorted.
type Orders = Arc<Mutex<Vec<Value>>>;

fn api(orders: &Orders) -> Server {
    let orders = orders.clone();
    serve(move |req| {
        let gte = req.param("updated_at_gte").unwrap_or("").to_owned();
        let mut page: Vec<Value> = orders
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o["updated_at"].as_str().unwrap_or("") >= gte.as_str())
            .cloned()
            .collect();
        page.sort_by_key(|o| o["updated_at"].as_str().unwrap_or("").to_owned());
        Reply::value(&json!({ "orders": page }))
    })
}

fn order(id: u64, at: &str) -> Value {
    json!({"id": id, "updated_at": at})
}

fn state_path(sb: &Sandbox) -> PathBuf {
    sb.out().join("state.json")
}

fn saved(sb: &Sandbox) -> Value {
    serde_json::from_slice(&std::fs::read(state_path(sb)).unwrap()).unwrap()
}

/// Rewrites one field of the stream's saved state, as a careless hand or a bad disk would.
fn tamper(sb: &Sandbox, field: &str, value: Value) {
    let mut doc = saved(sb);
    doc["streams"]["orders"][field] = value;
    std::fs::write(state_path(sb), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

/// A sandbox whose first sync wrote three orders and saved its state.
fn synced_once() -> (Sandbox, Orders, Server) {
    let orders: Orders = Arc::new(Mutex::new(vec![
        order(1, "2024-02-01T00:00:00Z"),
        order(2, "2024-02-02T00:00:00Z"),
        order(3, "2024-02-03T00:00:00Z"),
    ]));
    let server = api(&orders);
    let sb = Sandbox::new();
    sb.spec(&spec(STREAMS));
    sb.sync(&server, &[]).expect_code(0);
    assert_eq!(sb.ids("orders"), vec![1, 2, 3]);
    (sb, orders, server)
}

/// The output and state files, byte for byte.
fn files(sb: &Sandbox) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(sb.output("orders")).unwrap(),
        std::fs::read(state_path(sb)).unwrap(),
    )
}

/// Runs a sync that must be refused, and checks that nothing was changed.
#[track_caller]
fn refused(sb: &Sandbox, server: &Server, what: &[&str]) {
    let before = files(sb);
    let requests = server.requests().len();
    let run = sb.sync(server, &[]);
    run.expect_code(2).expect_stderr(&[
        "state.json",
        "stream `orders`",
        "runtime state reset",
        "--streams orders",
    ]);
    run.expect_stderr(what);
    assert_eq!(files(sb), before, "a refused state changes no file");
    assert_eq!(server.requests().len(), requests, "nothing was fetched");
}

#[test]
fn a_record_from_the_far_future_is_written_but_does_not_become_the_cursor() {
    let orders: Orders = Arc::new(Mutex::new(vec![
        order(1, "2024-02-01T00:00:00Z"),
        order(2, "2024-02-02T00:00:00Z"),
        order(3, FAR),
        order(4, "9000-01-01T00:00:00Z"),
    ]));
    let server = api(&orders);
    let sb = Sandbox::new();
    sb.spec(&spec(STREAMS));
    let run = sb.sync(&server, &[]);
    run.expect_code(0).expect_stderr(&[
        "with key [4]",
        "9000-01-01T00:00:00Z",
        "future_tolerance (1d)",
    ]);
    assert_eq!(
        run.stderr.matches("future_tolerance").count(),
        1,
        "one warning per stream\n{}",
        run.stderr
    );
    assert_eq!(sb.ids("orders"), vec![1, 2, 4, 3], "the records are data");
    let state = saved(&sb);
    assert_eq!(state["streams"]["orders"]["cursor"], "2024-02-02T00:00:00Z");

    // The next run still asks from the greatest cursor within the tolerance, and gets
    // what changed since.
    orders
        .lock()
        .unwrap()
        .push(order(5, "2024-03-01T00:00:00Z"));
    sb.sync(&server, &[]).expect_code(0);
    let last = server.requests().last().unwrap().clone();
    assert_eq!(last.param("updated_at_gte"), Some("2024-02-02T00:00:00Z"));
    let ids = sb.ids("orders");
    assert!(ids[4..].contains(&5), "the new record was fetched: {ids:?}");
    assert!(
        !ids[4..].contains(&2),
        "the boundary record is not repeated: {ids:?}"
    );
    assert_eq!(
        saved(&sb)["streams"]["orders"]["cursor"],
        "2024-03-01T00:00:00Z"
    );
}

#[test]
fn a_unix_timestamp_from_the_far_future_is_not_saved_either() {
    let streams = STREAMS
        .replace("updated_at_gte", "created_gte")
        .replace("cursor_field: updated_at", "cursor_field: created")
        .replace(
            "\"2024-01-01T00:00:00Z\"",
            "\"0\"\n      cursor_type: unix_seconds",
        );
    let server = serve(|_| {
        Reply::value(&json!({"orders": [
            {"id": 1, "created": 1_706_745_600},
            {"id": 2, "created": 253_402_300_799_u64},
        ]}))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(&streams));
    sb.sync(&server, &[])
        .expect_code(0)
        .expect_stderr(&["with key [2]", "253402300799"]);
    assert_eq!(sb.ids("orders"), vec![1, 2]);
    assert_eq!(saved(&sb)["streams"]["orders"]["cursor"], "1706745600");
}

#[test]
fn output_bytes_in_the_middle_of_a_line_is_refused_and_nothing_is_cut() {
    let (sb, _orders, server) = synced_once();
    let len = std::fs::metadata(sb.output("orders")).unwrap().len();
    assert_eq!(saved(&sb)["streams"]["orders"]["output_bytes"], len);
    tamper(&sb, "output_bytes", json!(len - 5));
    refused(&sb, &server, &["not the end of a line", "--full-refresh"]);

    // The way out the message gives works: the stream starts over, whole.
    let spec = sb.path().join("spec.yaml");
    let out = sb.out();
    sb.run(&[
        "state",
        "reset",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--streams",
        "orders",
    ])
    .expect_code(0);
    sb.sync(&server, &[]).expect_code(0);
    assert_eq!(sb.ids("orders"), vec![1, 2, 3]);
}

#[test]
fn output_bytes_beyond_the_end_of_the_file_is_refused() {
    let (sb, _orders, server) = synced_once();
    let len = std::fs::metadata(sb.output("orders")).unwrap().len();
    tamper(&sb, "output_bytes", json!(len + 10));
    refused(
        &sb,
        &server,
        &["the state says", "changed outside the runtime"],
    );
}

#[test]
fn a_cursor_of_the_wrong_type_is_refused() {
    let (sb, _orders, server) = synced_once();
    tamper(&sb, "cursor", json!("not-a-date"));
    refused(
        &sb,
        &server,
        &["`not-a-date` does not read as `cursor_type: datetime`"],
    );

    tamper(&sb, "cursor", json!(FAR));
    refused(
        &sb,
        &server,
        &["further in the future than `future_tolerance`"],
    );

    tamper(&sb, "cursor", json!({"$gt": ""}));
    refused(&sb, &server, &["does not have the expected shape"]);
    let spec = sb.path().join("spec.yaml");
    let state = state_path(&sb);
    sb.run(&[
        "state",
        "reset",
        spec.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--streams",
        "orders",
    ])
    .expect_code(0)
    .expect_stdout(&["reset orders"]);
    sb.sync(&server, &[]).expect_code(0);
    assert_eq!(sb.ids("orders"), vec![1, 2, 3]);
}
