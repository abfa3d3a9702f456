//! Exactly once into a database: a load killed with SIGKILL at 20 points, then run to
//! the end, leaves each record in the merge tables exactly once and in the append table
//! exactly once (one extraction), with the saved state agreeing with the rows; against a
//! real PostgreSQL and a DuckDB file. `versions` saves its state only at its end; on
//! DuckDB it merges every 30 staged rows before that (`merge_batch=30`), so kills land
//! between those early merges and the checkpoint.

mod db_support;
mod support;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use db_support::{Api, Db, ts};
use serde_json::json;

const SPEC: &str = r#"version: 1
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
    pagination: { kind: cursor, next: $.next_cursor, param: cursor, page_size: { param: limit, value: 20 } }
    incremental: { cursor_field: updated_at, param: updated_at_gte, start: "2023-01-01T00:00:00Z", sorted: true }
  events:
    path: /orders
    primary_key: id
    records: $.orders[*]
    pagination: { kind: cursor, next: $.next_cursor, param: cursor, page_size: { param: limit, value: 20 } }
    incremental: { cursor_field: updated_at, param: updated_at_gte, start: "2023-01-01T00:00:00Z", sorted: true }
  versions:
    path: /orders
    primary_key: id
    records: $.orders[*]
    pagination: { kind: cursor, next: $.next_cursor, param: cursor, page_size: { param: limit, value: 20 } }
    incremental: { cursor_field: updated_at, param: updated_at_gte, start: "2023-01-01T00:00:00Z" }
"#;

const RECORDS: u64 = 800;

fn command(spec: &std::path::Path, out: &std::path::Path, base: &str, to: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_runtime"));
    c.arg("sync")
        .arg(spec)
        .args(["--set", &format!("base_url={base}"), "--to", to])
        .args([
            "--write-mode",
            "events=append",
            "--write-mode",
            "versions=merge",
        ])
        .arg("--out")
        .arg(out)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Waits for the API to have seen `requests`, then `extra`, then SIGKILL.
fn kill_when(child: &mut Child, api: &Api, requests: usize, extra: Duration) {
    let started = Instant::now();
    while api.requests.load(Ordering::SeqCst) < requests
        && started.elapsed() < Duration::from_secs(30)
    {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(extra);
    let _ = child.kill();
    let _ = child.wait();
}

fn killed(db: Db) {
    let api = Arc::new(Api::default());
    for id in 1..=RECORDS {
        // Three records per time, so pages end inside a group of equal cursors.
        api.upsert(json!({"id": id, "updated_at": ts(id / 3), "note": format!("order {id}")}));
    }
    api.delay_ms.store(4, Ordering::SeqCst);
    let a = api.clone();
    let server = support::serve(move |l| a.page(l));
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let out = dir.path().join("out");
    let to = match db {
        Db::Duck(_) => format!("{}?merge_batch=30", db.to()),
        Db::Pg(_) => db.to(),
    };
    let o = db.table("orders");
    let e = db.table("events");
    let v = db.table("versions");
    let state_of = |stream: &str| {
        let tables =
            "SELECT count(*) FROM information_schema.tables WHERE table_name = '_runtime_state'";
        if db.count(tables) == 0 {
            return 0;
        }
        db.count(&format!(
            "SELECT count(*) FROM {{s}}._runtime_state WHERE stream = '{stream}'"
        ))
    };
    let rows = |t: &str| {
        // Before the first commit the table may not exist yet.
        let exists = db.count(&format!(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = '{}'",
            t.rsplit('.').next().unwrap().trim_matches('"')
        ));
        if exists == 0 {
            0
        } else {
            db.count(&format!("SELECT count(*) FROM {t}"))
        }
    };
    let mut points = Vec::new();
    for i in 0..20usize {
        let before = api.requests.load(Ordering::SeqCst);
        let mut child = command(&spec, &out, &server.url(), &to).spawn().unwrap();
        // Different points: at start-up, mid-page, between pages, mid-commit; every
        // other run later, once `versions` has staged more than its merge batch.
        let pages = 1 + i % 4 + if i % 2 == 1 { 6 } else { 0 };
        let extra = Duration::from_millis(((i * 7) % 13) as u64);
        kill_when(&mut child, &api, before + pages, extra);
        points.push((rows(&o), rows(&e), rows(&v), state_of("versions")));
    }
    let run = command(&spec, &out, &server.url(), &to).output().unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!(
        "kill -9 into {to}: (orders, events, versions) rows and versions' saved states after each killed run: {points:?}"
    );
    let n = RECORDS as i64;
    assert_eq!(db.count(&format!("SELECT count(*) FROM {o}")), n);
    assert_eq!(db.count(&format!("SELECT count(DISTINCT id) FROM {o}")), n);
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM {e}")),
        n,
        "append: each record exactly once"
    );
    assert_eq!(db.count(&format!("SELECT count(DISTINCT id) FROM {e}")), n);
    assert_eq!(db.count(&format!("SELECT count(*) FROM {v}")), n);
    assert_eq!(db.count(&format!("SELECT count(DISTINCT id) FROM {v}")), n);
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM {e} WHERE note <> 'order ' || CAST(id AS VARCHAR)"
        )),
        0
    );
    // The state agrees with the rows: it names the newest cursor loaded.
    for stream in ["orders", "events", "versions"] {
        let state = db.text(&format!(
            "SELECT CAST(state AS VARCHAR) FROM {{s}}._runtime_state WHERE stream = '{stream}'"
        ));
        assert!(state.contains(&ts(RECORDS / 3)[..19]), "{stream}: {state}");
    }
    // The kills landed mid-load: some killed runs left partial tables.
    assert!(
        points
            .iter()
            .any(|(a, b, _, _)| (*a > 0 && *a < n) || (*b > 0 && *b < n)),
        "{points:?}"
    );
    if let Db::Duck(_) = db {
        // Some kill landed after an early merge and before the checkpoint: rows merged,
        // no state saved for them.
        assert!(
            points.iter().any(|&(_, _, v, saved)| v > 0 && saved == 0),
            "{points:?}"
        );
    }
}

#[test]
fn killed_at_20_points_postgres() {
    killed(Db::pg());
}

#[test]
#[cfg(feature = "duckdb-linked")]
fn killed_at_20_points_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    killed(Db::duck(dir.path()));
}
