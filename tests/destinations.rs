//! `runtime sync --to`: records loaded into a real PostgreSQL (started by the test) and a
//! real DuckDB file, read back with SQL: every type, schema evolution, the three write
//! modes, merge where the newest version wins, parent and child streams, and destinations
//! that are refused before any request.

mod db_support;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use db_support::{Api, Db, ts};
use serde_json::json;
use support::{Reply, Sandbox, serve};

/// Three streams over one API: merge (key + cursor, 1h lookback), append (`events`, by
/// `--write-mode`: an incremental stream always has a key), replace (full refresh).
const MODES: &str = r#"version: 1
name: shop
config:
  base_url: { type: string }
http:
  base_url: "{{ config.base_url }}"
  retry: { max_attempts: 2, initial: 10ms, max: 20ms }
streams:
  orders:
    path: /orders
    primary_key: id
    records: $.orders[*]
    pagination: { kind: cursor, next: $.next_cursor, param: cursor, page_size: { param: limit, value: 25 } }
    incremental: { cursor_field: updated_at, param: updated_at_gte, start: "2023-01-01T00:00:00Z", sorted: true, lookback: 1h }
  events:
    path: /orders
    primary_key: id
    records: $.orders[*]
    pagination: { kind: cursor, next: $.next_cursor, param: cursor, page_size: { param: limit, value: 25 } }
    incremental: { cursor_field: updated_at, param: updated_at_gte, start: "2023-01-01T00:00:00Z", sorted: true }
  snapshot:
    path: /orders
    primary_key: id
    records: $.orders[*]
    pagination: { kind: cursor, next: $.next_cursor, param: cursor, page_size: { param: limit, value: 25 } }
"#;

fn order(id: u64, at: u64, version: u64) -> serde_json::Value {
    json!({"id": id, "updated_at": ts(at), "version": version})
}

fn modes(db: Db) {
    let api = Arc::new(Api::default());
    for id in 1..=120 {
        api.upsert(order(id, id, 1));
    }
    let a = api.clone();
    let server = serve(move |l| a.page(l));
    let sb = Sandbox::new();
    sb.spec(MODES);
    let to = db.to();
    let run = |extra: &[&str]| {
        let mut args = vec!["--to", to.as_str(), "--write-mode", "events=append"];
        args.extend_from_slice(extra);
        sb.sync(&server, &args)
    };
    run(&[]).expect_code(0);
    let o = db.table("orders");
    let e = db.table("events");
    let s = db.table("snapshot");
    assert_eq!(db.count(&format!("SELECT count(*) FROM {o}")), 120);
    assert_eq!(db.count(&format!("SELECT count(*) FROM {e}")), 120);
    assert_eq!(db.count(&format!("SELECT count(*) FROM {s}")), 120);

    // An update, a new record; then a stale replica's older version of order 5 and a
    // newer order 7, both re-read through the lookback window.
    api.upsert(order(5, 200, 2));
    api.upsert(order(121, 201, 1));
    run(&[]).expect_code(0);
    assert_eq!(db.count(&format!("SELECT count(*) FROM {o}")), 121);
    assert_eq!(
        db.count(&format!("SELECT version FROM {o} WHERE id = 5")),
        2
    );
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM {e}")),
        122,
        "append: the two changed records once more"
    );
    assert_eq!(db.count(&format!("SELECT count(*) FROM {s}")), 121);
    let load_ids = db.count(&format!("SELECT count(DISTINCT _load_id) FROM {e}"));
    assert_eq!(load_ids, 2, "one load id per run");

    api.upsert(order(5, 150, 1));
    api.upsert(order(7, 300, 3));
    run(&[]).expect_code(0);
    assert_eq!(
        db.count(&format!("SELECT version FROM {o} WHERE id = 5")),
        2,
        "an older version never overwrites a newer one"
    );
    assert_eq!(
        db.count(&format!("SELECT version FROM {o} WHERE id = 7")),
        3
    );
    assert_eq!(db.count(&format!("SELECT count(*) FROM {o}")), 121);
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM {s} WHERE id = 5 AND version = 1"
        )),
        1,
        "replace holds the latest snapshot"
    );
    // The state sits beside the rows and names the newest cursor.
    let state = db.text(
        "SELECT CAST(state AS VARCHAR) FROM {s}._runtime_state WHERE connector = 'shop' AND stream = 'orders'",
    );
    assert!(state.contains(&ts(300)[..19]), "{state}");
    assert_eq!(
        db.count("SELECT count(*) FROM {s}._runtime_state"),
        2,
        "incremental streams only"
    );

    // Overridden at run time: the full-refresh stream merges into its table instead of
    // replacing it, so a row the API no longer returns stays.
    api.upsert(order(8, 400, 9));
    api.records.lock().unwrap().retain(|v| v["id"] != 9);
    run(&["--write-mode", "snapshot=merge"]).expect_code(0);
    assert_eq!(
        db.count(&format!("SELECT version FROM {s} WHERE id = 8")),
        9
    );
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM {s} WHERE id = 9")),
        1
    );
    assert_eq!(db.count(&format!("SELECT count(*) FROM {s}")), 121);
    run(&["--write-mode", "orders=replace"])
        .expect_code(2)
        .expect_stderr(&["--write-mode orders=replace", "increments"]);

    // Appending into the table the merges keyed: the key goes (PostgreSQL drops its
    // constraint; DuckDB tables have none) and the re-read rows are added, the merged
    // ones kept. The lookback re-reads all 120 records the API still has (9 is gone),
    // but order 8 sits exactly at the saved cursor with the bytes the last run wrote:
    // the boundary rule recognises it and does not write it again, so 119 are appended.
    api.upsert(order(5, 500, 4));
    run(&["--write-mode", "orders=append"]).expect_code(0);
    let last = format!("_load_id = (SELECT max(_load_id) FROM {o})");
    let appended = db.count(&format!("SELECT count(*) FROM {o} WHERE {last}"));
    assert_eq!(appended, 119, "{appended} rows appended");
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM {o} WHERE {last} AND id IN (8, 9)"
        )),
        0,
        "the record at the saved cursor is not written twice; 9 is gone"
    );
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM {o}")),
        121 + appended
    );
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM {o} WHERE id = 5")),
        2
    );
}

#[test]
fn write_modes_postgres() {
    modes(Db::pg());
}

#[test]
#[cfg(feature = "duckdb-linked")]
fn write_modes_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    modes(Db::duck(dir.path()));
}

/// A merge batch with two versions of a key: the higher cursor wins, whatever the order.
/// One incremental stream of orders, merged by `id` (the default for a keyed cursor).
const INCREMENTAL_ORDERS: &str = r#"version: 1
name: shop
config:
  base_url: { type: string }
http:
  base_url: "{{ config.base_url }}"
streams:
  orders:
    path: /orders
    primary_key: id
    records: $.orders[*]
    incremental: { cursor_field: updated_at, start: "2023-01-01T00:00:00Z" }
"#;

fn same_batch(db: Db) {
    let page = json!({"orders": [
        {"id": 1, "updated_at": ts(20), "v": "new"},
        {"id": 1, "updated_at": ts(10), "v": "old"},
        {"id": 2, "updated_at": ts(5), "v": "first"},
        {"id": 2, "updated_at": ts(5), "v": "second"}
    ]});
    let server = serve(move |_| Reply::value(&page));
    let sb = Sandbox::new();
    sb.spec(INCREMENTAL_ORDERS);
    sb.sync(&server, &["--to", &db.to()]).expect_code(0);
    let o = db.table("orders");
    assert_eq!(db.text(&format!("SELECT v FROM {o} WHERE id = 1")), "new");
    assert_eq!(
        db.text(&format!("SELECT v FROM {o} WHERE id = 2")),
        "second",
        "same cursor: the last read wins"
    );
}

#[test]
fn merge_within_a_batch_postgres() {
    same_batch(Db::pg());
}

#[test]
#[cfg(feature = "duckdb-linked")]
fn merge_within_a_batch_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    same_batch(Db::duck(dir.path()));
}

/// PostgreSQL: a merge's first checkpoint creates the table, fills it, then adds its
/// primary key in the same transaction: a record without its key fails that checkpoint
/// and leaves no table and no state; a good run leaves the key and `NOT NULL`.
#[test]
fn a_new_merge_table_is_keyed_in_its_first_checkpoint_postgres() {
    let db = Db::pg();
    let keyless = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let k = keyless.clone();
    let server = serve(move |_| {
        let mut orders = vec![
            json!({"id": 1, "updated_at": ts(1)}),
            json!({"id": 2, "updated_at": ts(2)}),
        ];
        if k.load(Ordering::SeqCst) {
            orders.push(json!({"updated_at": ts(3)}));
        }
        Reply::value(&json!({ "orders": orders }))
    });
    let sb = Sandbox::new();
    sb.spec(INCREMENTAL_ORDERS);
    sb.sync(&server, &["--to", &db.to()])
        .expect_code(1)
        .expect_stderr(&["null values"]);
    let tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' AND table_name = 'orders'";
    assert_eq!(db.count(tables), 0, "the creating transaction rolled back");
    assert_eq!(db.count("SELECT count(*) FROM {s}._runtime_state"), 0);
    keyless.store(false, Ordering::SeqCst);
    sb.sync(&server, &["--to", &db.to()]).expect_code(0);
    assert_eq!(db.count("SELECT count(*) FROM raw.orders"), 2);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'orders_runtime_key' AND contype = 'p' AND conrelid = 'raw.orders'::regclass"
        ),
        1
    );
    assert_eq!(
        db.text("SELECT is_nullable FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = 'orders' AND column_name = 'id'"),
        "NO"
    );
}

const TYPES: &str = r#"version: 1
name: shop
config:
  base_url: { type: string }
http:
  base_url: "{{ config.base_url }}"
streams:
  things:
    path: /things
    primary_key: id
    records: $.things[*]
    incremental: { cursor_field: at, start: "2023-01-01T00:00:00Z" }
    schema:
      type: object
      properties:
        id: { type: integer }
        at: { type: string, format: date-time }
        label: { type: [string, "null"] }
        declared_only: { type: number }
"#;

fn types(db: Db) {
    let phase = Arc::new(AtomicUsize::new(0));
    let p = phase.clone();
    let server = serve(move |_| {
        let first = json!({"things": [{
            "id": 1, "at": "2024-01-01T00:00:00Z", "label": "a\tb\\c\nd \"q\" é", "n": 1.5,
            "flag": true, "tags": ["x", 1], "meta": {"k": 1, "deep": {"z": null}},
            "big": 18446744073709551615u64, "none": null,
            "when": "2024-02-01T10:00:00+02:00", "cnt": 3, "nul": "a\u{0}b"
        }]});
        let second = json!({"things": [{
            "id": 2, "at": "2024-01-02T00:00:00Z", "label": null, "cnt": 2.5,
            "when": "soon", "flag": "yes", "meta": "plain", "extra": "new column", "none": 5,
            "tags": {"now": "an object"}
        }]});
        Reply::value(if p.load(Ordering::SeqCst) == 0 {
            &first
        } else {
            &second
        })
    });
    let sb = Sandbox::new();
    sb.spec(TYPES);
    sb.sync(&server, &["--to", &db.to()]).expect_code(0);
    let t = db.table("things");
    let cols = db.columns("things");
    let ty = |c: &str| {
        cols.iter()
            .find(|(n, _)| n == c)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("no column {c} in {cols:?}"))
    };
    for (c, want) in [
        ("id", "bigint"),
        ("at", "timestamptz"),
        ("label", "text"),
        ("declared_only", "double"),
        ("n", "double"),
        ("flag", "boolean"),
        ("tags", "json"),
        ("meta", "json"),
        ("big", "text"),
        ("when", "timestamptz"),
        ("cnt", "bigint"),
        ("nul", "text"),
        ("_load_id", "text"),
        ("_extracted_at", "timestamptz"),
    ] {
        assert_eq!(ty(c), db.type_name(want), "column {c}: {cols:?}");
    }
    assert!(
        !cols.iter().any(|(n, _)| n == "none"),
        "a field only ever null has no column yet: {cols:?}"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM {t} WHERE label = 'a' || chr(9) || 'b\\c' || chr(10) || 'd \"q\" é'"
        )),
        1,
        "tab, backslash, newline, quotes and UTF-8 kept"
    );
    assert_eq!(
        db.text(&format!("SELECT big FROM {t}")),
        "18446744073709551615"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM {t} WHERE \"when\" = CAST('2024-02-01T08:00:00Z' AS timestamptz) AND \"at\" = CAST('2024-01-01T00:00:00Z' AS timestamptz)"
        )),
        1
    );
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM {t} WHERE flag AND n = 1.5")),
        1
    );
    let meta = db.text(&format!("SELECT CAST(meta AS VARCHAR) FROM {t}"));
    assert!(
        meta.contains("\"deep\"") && meta.contains("\"k\""),
        "{meta}"
    );

    // Second run: new fields, widened types; nothing lost of the first row.
    phase.store(1, Ordering::SeqCst);
    sb.sync(&server, &["--to", &db.to()]).expect_code(0);
    let cols = db.columns("things");
    let ty = |c: &str| {
        cols.iter()
            .find(|(n, _)| n == c)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("no column {c} in {cols:?}"))
    };
    for (c, want) in [
        ("cnt", "double"),
        ("when", "text"),
        ("flag", "text"),
        ("meta", "json"),
        ("tags", "json"),
        ("extra", "text"),
        ("none", "bigint"),
    ] {
        assert_eq!(
            ty(c),
            db.type_name(want),
            "column {c} after evolution: {cols:?}"
        );
    }
    assert_eq!(db.count(&format!("SELECT count(*) FROM {t}")), 2);
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM {t} WHERE cnt = 3")),
        1
    );
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM {t} WHERE cnt = 2.5")),
        1
    );
    assert_eq!(
        db.text(&format!("SELECT flag FROM {t} WHERE id = 1")),
        "true"
    );
    assert_eq!(
        db.text(&format!("SELECT flag FROM {t} WHERE id = 2")),
        "yes"
    );
    assert_eq!(
        db.text(&format!("SELECT \"when\" FROM {t} WHERE id = 2")),
        "soon"
    );
    assert!(
        db.text(&format!("SELECT \"when\" FROM {t} WHERE id = 1"))
            .starts_with("2024-02-01 08:00:00"),
        "the old timestamp, as text"
    );
    assert_eq!(
        db.text(&format!("SELECT extra FROM {t} WHERE id = 2")),
        "new column"
    );
    assert_eq!(
        db.text(&format!("SELECT extra FROM {t} WHERE id = 1")),
        "NULL"
    );
}

#[test]
fn every_type_and_schema_evolution_postgres() {
    types(Db::pg());
}

#[test]
#[cfg(feature = "duckdb-linked")]
fn every_type_and_schema_evolution_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    types(Db::duck(dir.path()));
}

const FAMILY: &str = r#"version: 1
name: shop
config:
  base_url: { type: string }
http:
  base_url: "{{ config.base_url }}"
streams:
  users:
    path: /users
    primary_key: id
    records: $.users[*]
  user_orders:
    path: "/users/{{ parent.id }}/orders"
    primary_key: [user_id, id]
    records: $.orders[*]
    parent: { stream: users, key: id, include: { user_id: id } }
"#;

fn family(db: Db) {
    let server = serve(|l| {
        if l.path == "/users" {
            return Reply::value(
                &json!({"users": (1..=5).map(|i| json!({"id": i, "name": format!("u{i}")})).collect::<Vec<_>>()}),
            );
        }
        let uid: u64 = l
            .path
            .split('/')
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Reply::value(
            &json!({"orders": (1..=3).map(|i| json!({"id": i, "total": uid * 10 + i})).collect::<Vec<_>>()}),
        )
    });
    let sb = Sandbox::new();
    sb.spec(FAMILY);
    for _ in 0..2 {
        sb.sync(&server, &["--to", &db.to()])
            .expect_code(0)
            .expect_stdout(&["users", "user_orders"]);
    }
    let u = db.table("users");
    let o = db.table("user_orders");
    assert_eq!(db.count(&format!("SELECT count(*) FROM {u}")), 5);
    assert_eq!(db.count(&format!("SELECT count(*) FROM {o}")), 15);
    assert_eq!(
        db.count(&format!("SELECT count(DISTINCT user_id) FROM {o}")),
        5
    );
    assert_eq!(
        db.count(&format!(
            "SELECT total FROM {o} WHERE user_id = 4 AND id = 2"
        )),
        42
    );
}

#[test]
fn parent_and_child_streams_postgres() {
    family(Db::pg());
}

#[test]
#[cfg(feature = "duckdb-linked")]
fn parent_and_child_streams_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    family(Db::duck(dir.path()));
}

#[test]
fn a_bad_destination_is_refused_before_any_request() {
    let server = serve(|_| Reply::value(&json!({"orders": []})));
    let sb = Sandbox::new();
    sb.spec(MODES);
    let closed = support::closed_port();
    let unreachable = format!("postgres://loader@127.0.0.1:{closed}/db?schema=raw");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "postgres://loader:hunter2secret@127.0.0.1:5432/db".into(),
            vec!["PGPASSWORD", "postgres://loader:***@127.0.0.1:5432/db"],
        ),
        (unreachable.clone(), vec!["cannot connect to", &unreachable]),
        (
            "postgres://loader@[::1/db".into(),
            vec!["not a PostgreSQL URL"],
        ),
        (
            "mysql://u:hunter2secret@h/db".into(),
            vec!["unknown destination"],
        ),
    ];
    #[cfg(feature = "duckdb-linked")]
    let cases = {
        let mut cases = cases;
        cases.push(("duckdb:".into(), vec!["no file"]));
        cases.push((
            "duckdb:x.duckdb?memory_limit=5".into(),
            vec!["memory_limit=\"5\"", "at least 64MB"],
        ));
        // A folder is not a database file.
        cases.push((format!("duckdb:{}", sb.path().display()), vec!["duckdb:"]));
        cases
    };
    #[cfg(not(feature = "duckdb-linked"))]
    let cases = {
        let mut cases = cases;
        cases.push((
            "duckdb:x.duckdb".into(),
            vec!["no DuckDB support", "`duckdb`"],
        ));
        cases
    };
    for (to, expect) in cases {
        sb.sync(&server, &["--to", &to])
            .expect_code(2)
            .expect_stderr(&expect)
            .expect_no_leak("hunter2secret");
    }
    sb.sync(&server, &["--to", &unreachable, "--state", "s.json"])
        .expect_code(2)
        .expect_stderr(&["drop --state"]);
    // The state of a database lives in its table: `runtime state` says so, with the SQL.
    let spec = sb.path().join("spec.yaml");
    let spec = spec.to_str().unwrap();
    sb.run(&["state", "show", spec, "--to", "duckdb:x.duckdb"])
        .expect_code(2)
        .expect_stderr(&["_runtime_state", "SELECT stream, state"]);
    sb.run(&[
        "state",
        "reset",
        spec,
        "--to",
        "postgres://u:hunter2secret@h/db",
    ])
    .expect_code(2)
    .expect_stderr(&["_runtime_state", "DELETE FROM"])
    .expect_no_leak("hunter2secret");
    sb.sync(&server, &["--write-mode", "orders=append"])
        .expect_code(2)
        .expect_stderr(&["--write-mode applies to a database destination"]);
    assert_eq!(server.requests().len(), 0, "no request reached the API");
}
