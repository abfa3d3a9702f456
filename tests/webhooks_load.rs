//! 2,000 concurrent deliveries, 30% of them duplicates, in shuffled order (so older
//! versions of a record often arrive after newer ones).

#[path = "webhooks_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{Value, json};
use support::*;

const ORDERS: u64 = 200;
const VERSIONS: u64 = 7;
const DUPLICATES: usize = 600;

/// Version `v` of order `o`: `updated_at` grows with `v`, written with an offset for odd
/// versions, so that comparing the text instead of the instant picks the wrong one.
fn event(o: u64, v: u64) -> Value {
    let minute = 10 + v;
    let updated_at = if v % 2 == 1 {
        format!("2024-06-01T{:02}:{minute:02}:00+05:00", 12 + 5)
    } else {
        format!("2024-06-01T12:{minute:02}:00Z")
    };
    json!({
        "id": format!("evt_{o}_{v}"),
        "data": {"id": o, "version": v, "updated_at": updated_at}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_deliveries_with_duplicates_give_exactly_the_unique_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut rng = StdRng::seed_from_u64(7);
    let unique: Vec<Value> = (0..ORDERS)
        .flat_map(|o| (0..VERSIONS).map(move |v| event(o, v)))
        .collect();
    let mut deliveries = unique.clone();
    for _ in 0..DUPLICATES {
        deliveries.push(unique.choose(&mut rng).unwrap().clone());
    }
    deliveries.shuffle(&mut rng);
    assert_eq!(deliveries.len(), 2000);

    let c = client();
    let url = server.url("/hooks/orders");
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for d in deliveries {
        let (c, url, sem) = (c.clone(), url.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.unwrap();
            let body = d.to_string();
            let sig = github_signature(GH_SECRET, body.as_bytes());
            let r = c
                .post(&url)
                .header("X-Hub-Signature-256", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v["status"].as_str().unwrap_or_default().to_owned())
        }));
    }
    let mut answers: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for t in tasks {
        *answers.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    let expected: BTreeMap<(u16, String), usize> = [
        ((200, "already_processed".to_owned()), DUPLICATES),
        ((200, "stored".to_owned()), unique.len()),
    ]
    .into();
    assert_eq!(answers, expected);

    let out = dir.path().join("out");
    wait_for_lines(&out.join("orders.jsonl"), unique.len());
    let ended = server.terminate();
    assert!(ended.status.success(), "{ended:?}");

    // Exactly the unique events, each once.
    let lines = read_lines(&out.join("orders.jsonl"));
    assert_eq!(lines.len(), unique.len());
    let got: BTreeSet<(u64, u64)> = lines
        .iter()
        .map(|l| (l["id"].as_u64().unwrap(), l["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(got.len(), unique.len(), "a line is repeated");
    let want: BTreeSet<(u64, u64)> = (0..ORDERS)
        .flat_map(|o| (0..VERSIONS).map(move |v| (o, v)))
        .collect();
    assert_eq!(got, want);

    // The latest view holds the newest version of every record.
    let latest = read_lines(&out.join("orders.latest.jsonl"));
    assert_eq!(latest.len() as u64, ORDERS);
    for rec in &latest {
        let o = rec["id"].as_u64().unwrap();
        assert_eq!(rec, &event(o, VERSIONS - 1)["data"], "order {o}");
    }
}
