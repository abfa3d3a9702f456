//! Retention with an injected clock: events written out and older than the retention are
//! deleted, a redelivery of a deleted event's id is still a duplicate, and an event that
//! is not written out is never deleted, however old. No test here sleeps for days.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use webhook_receiver::{ManualClock, Receiver, Retention};

const SPEC: &str = r#"
version: 1
name: retention_test
config:
  secret: { type: string, secret: true }
http: { base_url: "http://127.0.0.1:9" }
webhooks:
  orders:
    path: /orders
    signature: { scheme: hmac_sha256, header: X-Sig, secrets: ["{{ config.secret }}"] }
    event_id: $.id
  stuck:
    path: /stuck
    signature: { scheme: hmac_sha256, header: X-Sig, secrets: ["{{ config.secret }}"] }
    event_id: $.id
"#;

const SECRET: &str = "retention-secret";
const DAY: Duration = Duration::from_secs(24 * 3600);
const START_MS: i64 = 1_700_000_000_000;

fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn count(out: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(out.join("webhooks.sqlite3"))
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Polls `f` until it is true, for at most 10 s.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_out_events_past_the_retention_are_deleted_and_their_ids_still_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_path_buf();
    // The `stuck` webhook's output file cannot be created (a folder is in the way), so its
    // events stay in the store, not written out (and so do any stored after them).
    std::fs::create_dir_all(out.join("stuck.jsonl/blocked")).unwrap();
    let clock = Arc::new(ManualClock::at_millis(START_MS));
    let loaded = connector_spec::load_str(Path::new("retention.yaml"), SPEC).unwrap();
    let receiver = Receiver::new(&loaded.spec, &json!({"config": {"secret": SECRET}}))
        .unwrap()
        .with_clock(clock.clone())
        .with_retention(Retention {
            keep: Some(7 * DAY),
            every: Duration::from_millis(20),
            ..Retention::default()
        });
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run_out = out.clone();
    let server = tokio::spawn(async move {
        receiver
            .run(
                &run_out,
                "127.0.0.1:0",
                |a| {
                    let _ = addr_tx.send(a);
                },
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
    });
    let base = format!("http://{}", addr_rx.await.unwrap());
    let client = reqwest::Client::new();
    let send = |path: &str, id: &str| {
        let body = json!({"id": id}).to_string();
        client
            .post(format!("{base}{path}"))
            .header("X-Sig", sign(&body))
            .body(body)
            .send()
    };
    let status = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Day 0: two events written out.
    assert_eq!(status(send("/orders", "a").await.unwrap()).await, "stored");
    assert_eq!(status(send("/orders", "b").await.unwrap()).await, "stored");
    let orders = out.join("orders.jsonl");
    eventually("a and b written out", || lines(&orders) == 2).await;

    // Day 6: within the retention, nothing is deleted.
    clock.advance(6 * DAY);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&out, "SELECT count(*) FROM events"), 2);

    // Day 8: a and b are gone from the store, their ids kept.
    clock.advance(2 * DAY);
    assert_eq!(status(send("/orders", "c").await.unwrap()).await, "stored");
    eventually("a and b deleted", || {
        count(&out, "SELECT count(*) FROM events WHERE webhook = 'orders'") == 1
    })
    .await;
    assert_eq!(count(&out, "SELECT count(*) FROM expired_ids"), 2);
    // A redelivery of a deleted event is still recognised, and written nowhere.
    assert_eq!(
        status(send("/orders", "a").await.unwrap()).await,
        "already_processed"
    );
    eventually("c written out", || lines(&orders) == 3).await;

    // Day 60: every written-out event is gone, and ids past the 30-day window too.
    clock.advance(52 * DAY);
    eventually("c deleted and old ids forgotten", || {
        count(&out, "SELECT count(*) FROM events WHERE webhook = 'orders'") == 0
            && count(&out, "SELECT count(*) FROM expired_ids") == 0
    })
    .await;

    // An event that cannot be written out stays, however old it gets (a pass runs every
    // 20 ms, so 15 passes run while we wait).
    assert_eq!(status(send("/stuck", "s").await.unwrap()).await, "stored");
    clock.advance(365 * DAY);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(
            &out,
            "SELECT count(*) FROM events WHERE event_id = 's' AND done = 0"
        ),
        1,
        "an event not yet written out is never deleted"
    );
    assert_eq!(lines(&orders), 3, "the output file is untouched");

    let _ = stop_tx.send(());
    // The stuck event cannot be written at shutdown either: the run reports it.
    let ended = server.await.unwrap();
    assert!(ended.is_err(), "{ended:?}");
}
