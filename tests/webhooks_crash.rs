//! `runtime serve` killed at the worst moments: every event it acknowledged reaches the
//! output after a restart, and none twice.

#[path = "webhooks_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};
use support::*;

fn order(i: u64) -> Value {
    json!({"id": format!("evt_{i}"), "data": {"id": i, "updated_at": "2024-06-01T00:00:00Z", "n": i}})
}

/// Each record's `n` and how many times it is in `lines`.
fn counts(lines: &[Value]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l["n"].as_u64().unwrap()).or_insert(0) += 1;
    }
    m
}

/// Sends orders `range` with `concurrency` at once; returns the ones answered 2xx `stored`.
/// Requests cut off by a dying server count as not acknowledged.
async fn send_orders(
    server: &Server,
    range: std::ops::Range<u64>,
    concurrency: usize,
) -> BTreeSet<u64> {
    let c = client();
    let url = server.url("/hooks/orders");
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for i in range {
        let (c, url, sem) = (c.clone(), url.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let body = order(i).to_string();
            let sig = github_signature(GH_SECRET, body.as_bytes());
            let resp = c
                .post(&url)
                .header("X-Hub-Signature-256", sig)
                .body(body)
                .send()
                .await
                .ok()?;
            let ok = resp.status().is_success();
            let v: Value = resp.json().await.ok()?;
            (ok && v["status"] == "stored").then_some(i)
        }));
    }
    let mut acked = BTreeSet::new();
    for t in tasks {
        if let Some(i) = t.await.unwrap() {
            acked.insert(i);
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_right_after_a_2xx_then_restart_writes_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");

    // One delivery, killed the instant its 2xx arrives. The worker is held back, so the
    // event is surely stored and not yet written when the kill comes.
    let server = Server::start_with_env(dir.path(), &[("WEBHOOK_RECEIVER_FAULT", "hold")]);
    let acked = send_orders(&server, 0..1, 1).await;
    server.kill9();
    assert_eq!(acked.len(), 1);
    let held = read_lines(&out.join("orders.jsonl")).len();
    assert_eq!(held, 0, "the held event was written before the kill");

    // A burst, killed the instant the last 2xx arrives, the worker running freely (so the
    // kill lands wherever it lands: before, during or after a batch).
    let server = Server::start(dir.path());
    let acked_burst = send_orders(&server, 1..400, 32).await;
    server.kill9();
    let before = read_lines(&out.join("orders.jsonl")).len();
    assert_eq!(
        acked_burst.len(),
        399,
        "every delivery of the burst was acknowledged"
    );

    // Restart: what was stored and not written is written now, once.
    let server = Server::start(dir.path());
    let lines = wait_for_lines(&out.join("orders.jsonl"), 400);
    let ended = server.terminate();
    assert!(ended.status.success(), "{ended:?}");
    let lines_after = read_lines(&out.join("orders.jsonl"));
    assert_eq!(lines.len(), lines_after.len());
    let c = counts(&lines_after);
    let all: BTreeSet<u64> = acked.iter().chain(&acked_burst).copied().collect();
    let missing: Vec<_> = all.iter().filter(|i| !c.contains_key(i)).collect();
    let twice: Vec<_> = c.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "kill -9 test: 1 acknowledged and {held} written at the first kill; {} acknowledged in all, {before} in the output at the second kill, {} after the restart, {} missing, {} duplicated",
        all.len(),
        lines_after.len(),
        missing.len(),
        twice.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(twice.is_empty(), "written more than once: {twice:?}");
    assert_eq!(lines_after.len(), 400);
    // The latest view agrees.
    assert_eq!(read_lines(&out.join("orders.latest.jsonl")).len(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_append_and_the_done_mark_does_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // This server keeps the events in its store until told to stop, then appends them to
    // orders.jsonl and exits before marking them done: the window where a naive worker
    // writes them again at the next start.
    let server = Server::start_with_env(
        dir.path(),
        &[("WEBHOOK_RECEIVER_FAULT", "exit_after_append")],
    );
    let acked = send_orders(&server, 0..100, 16).await;
    assert_eq!(acked.len(), 100);
    let ended = server.terminate();
    assert_eq!(
        ended.status.code(),
        Some(70),
        "the fault did not fire: {ended:?}"
    );
    let at_crash = read_lines(&out.join("orders.jsonl"));
    assert_eq!(at_crash.len(), 100, "the crash came before the append");

    let server = Server::start(dir.path());
    let lines = wait_for_lines(&out.join("orders.jsonl"), acked.len());
    let ended = server.terminate();
    assert!(ended.status.success(), "{ended:?}");
    assert!(
        ended.stderr.contains("marked done, not written again"),
        "{}",
        ended.stderr
    );
    let c = counts(&read_lines(&out.join("orders.jsonl")));
    eprintln!(
        "append/done-mark crash: {} acknowledged, {} lines at the crash, {} after the restart",
        acked.len(),
        at_crash.len(),
        c.values().sum::<usize>()
    );
    assert_eq!(lines.len(), acked.len());
    for i in &acked {
        assert_eq!(c.get(i), Some(&1), "event {i}");
    }
    assert!(
        c.values().all(|n| *n == 1),
        "a line was written twice: {c:?}"
    );
}
