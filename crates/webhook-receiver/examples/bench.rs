//! Throughput and latency of `runtime serve`'s receiver on loopback.
//!
//! Runs the receiver in this process (store and output in a temporary folder) and N
//! concurrent senders, each posting signed deliveries over keep-alive connections.
//! Prints accepted deliveries per second, p50/p99/max latency of the 2xx answers, and how
//! long the drain to `orders.jsonl` lagged behind.
//!
//! `cargo run --release -p webhook-receiver --example bench -- [--senders N] [--requests M] [--duplicates PCT]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use webhook_receiver::{Limits, Receiver};

const SPEC: &str = r#"
version: 1
name: bench
config:
  secret: { type: string, secret: true }
http: { base_url: "http://127.0.0.1:9" }
streams:
  orders: { path: /orders, primary_key: id, records: "$.orders[*]" }
webhooks:
  order_events:
    path: /hooks/orders
    stream: orders
    signature: { scheme: hmac_sha256, header: X-Signature, prefix: "sha256=", secrets: ["{{ config.secret }}"] }
    event_id: $.id
    record: $.data
    version_field: updated_at
"#;

const SECRET: &str = "bench-secret";

struct Args {
    senders: usize,
    requests: usize,
    duplicates: usize,
}

fn args() -> Args {
    let mut a = Args {
        senders: 32,
        requests: 20_000,
        duplicates: 0,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--senders", Some(v)) => a.senders = v,
            ("--requests", Some(v)) => a.requests = v,
            ("--duplicates", Some(v)) => a.duplicates = v,
            _ => {
                eprintln!("usage: bench [--senders N] [--requests M] [--duplicates PCT]");
                std::process::exit(2);
            }
        }
    }
    a
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().to_path_buf();
    let loaded = connector_spec::load_str(std::path::Path::new("bench.yaml"), SPEC)
        .expect("bench spec loads");
    // Every simulated sender comes from 127.0.0.1: the per-address caps would answer
    // the 65th concurrent one 429, so they are off here.
    let receiver = Receiver::new(&loaded.spec, &json!({"config": {"secret": SECRET}}))
        .expect("receiver")
        .with_limits(Limits {
            max_connections_per_peer: 0,
            max_requests_per_peer: 0,
            ..Limits::default()
        });
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_out = out.clone();
    let server = tokio::spawn(async move {
        receiver
            .run(
                &server_out,
                "127.0.0.1:0",
                |addr| {
                    let _ = addr_tx.send(addr);
                },
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
    });
    let addr = addr_rx.await.expect("server started");
    let url = format!("http://{addr}/hooks/orders");

    // Bodies are prepared and signed up front, so the clock measures the receiver only.
    let unique = a.requests - a.requests * a.duplicates / 100;
    let bodies: Arc<Vec<(String, String)>> = Arc::new(
        (0..a.requests)
            .map(|i| {
                let n = if i < unique { i } else { (i * 7919) % unique };
                let body = json!({
                    "id": format!("evt_{n}"),
                    "type": "order.updated",
                    "data": {"id": n % 5000, "status": "paid", "total": 1234, "updated_at": format!("2024-06-01T00:00:{:02}Z", n % 60)}
                })
                .to_string();
                let sig = sign(body.as_bytes());
                (body, sig)
            })
            .collect(),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.senders)
        .build()
        .expect("client");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.senders {
        let (client, url, bodies, next) =
            (client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((body, sig)) = bodies.get(i) else {
                    break;
                };
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("X-Signature", sig)
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => failed += 1,
                }
            }
            (lat, failed)
        }));
    }
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.expect("sender");
        lat.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed();
    let jsonl = out.join("orders.jsonl");
    let lines = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    while lines(&jsonl) < unique {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained = started.elapsed();
    let _ = stop_tx.send(());
    let summary = server.await.expect("server task").expect("server ran");
    lat.sort();
    println!(
        "senders={} requests={} duplicates={}% accepted={} failed={} elapsed={:.2}s",
        a.senders,
        a.requests,
        a.duplicates,
        lat.len(),
        failed,
        elapsed.as_secs_f64()
    );
    println!(
        "accepted/s={:.0} p50={:.2}ms p99={:.2}ms max={:.2}ms drained_all_after={:.2}s stored={} duplicates={}",
        lat.len() as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        drained.as_secs_f64(),
        summary.stored,
        summary.duplicates,
    );
}
