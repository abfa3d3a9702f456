//! `runtime serve` end to end: the real binary on a loopback port, deliveries signed by an
//! independent signer under each scheme, and every kind of refusal.

#[path = "webhooks_support.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scheme_accepts_valid_deliveries_and_writes_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client();

    // GitHub style, with the current secret and with the one being rotated out.
    let a =
        json!({"id": "evt_a", "data": {"id": 1, "updated_at": "2024-03-01T10:00:00Z", "total": 5}});
    let b =
        json!({"id": "evt_b", "data": {"id": 2, "updated_at": "2024-03-01T10:00:00Z", "total": 7}});
    let (s, r) = post_order(&c, &server, GH_SECRET, a.to_string().as_bytes()).await;
    assert_eq!((s, &r["status"]), (200, &json!("stored")), "{r}");
    assert_eq!(r["event_id"], "evt_a");
    let (s, r) = post_order(&c, &server, GH_SECRET_OLD, b.to_string().as_bytes()).await;
    assert_eq!((s, &r["status"]), (200, &json!("stored")), "{r}");

    // Base64 HMAC, event id from a header.
    let plain = json!({"kind": "ping", "n": 1}).to_string();
    let (s, r) = post(
        &c,
        &server.url("/hooks/plain"),
        &[
            (
                "X-Signature",
                base64_signature(PLAIN_SECRET, plain.as_bytes()),
            ),
            ("X-Delivery-Id", "delivery-1".into()),
        ],
        plain.as_bytes(),
    )
    .await;
    assert_eq!((s, &r["event_id"]), (200, &json!("delivery-1")), "{r}");

    // Stripe.
    let pay = json!({"id": "evt_pay_1", "type": "charge.succeeded", "data": {"object": {"id": "ch_1", "amount": 500}}}).to_string();
    let (s, r) = post(
        &c,
        &server.url("/hooks/stripe"),
        &[(
            "Stripe-Signature",
            stripe_signature(STRIPE_SECRET, now(), pay.as_bytes()),
        )],
        pay.as_bytes(),
    )
    .await;
    assert_eq!((s, &r["event_id"]), (200, &json!("evt_pay_1")), "{r}");

    // Standard Webhooks; the event id is the message id.
    let msg = json!({"type": "user.created", "user": "u1"}).to_string();
    let ts = now();
    let (s, r) = post(
        &c,
        &server.url("/hooks/standard"),
        &[
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", ts.to_string()),
            (
                "webhook-signature",
                standard_signature(STD_SECRET, "msg_1", ts, msg.as_bytes()),
            ),
        ],
        msg.as_bytes(),
    )
    .await;
    assert_eq!((s, &r["event_id"]), (200, &json!("msg_1")), "{r}");

    let ended = server.terminate();
    assert!(ended.status.success(), "{ended:?}");
    assert!(
        ended
            .stdout
            .contains("serve: 5 stored, 0 already processed, 0 refused"),
        "{}",
        ended.stdout
    );
    let out = dir.path().join("out");
    assert_eq!(
        read_lines(&out.join("orders.jsonl")),
        vec![a["data"].clone(), b["data"].clone()]
    );
    assert_eq!(
        read_lines(&out.join("plain_events.jsonl")),
        vec![json!({"kind": "ping", "n": 1})]
    );
    assert_eq!(
        read_lines(&out.join("payments.jsonl")),
        vec![json!({"id": "ch_1", "amount": 500})]
    );
    assert_eq!(
        read_lines(&out.join("messages.jsonl")),
        vec![json!({"type": "user.created", "user": "u1"})]
    );
    assert_no_secret("the logs", &ended.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tampered_replayed_and_stale_deliveries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client();
    let orders = server.url("/hooks/orders");
    let body =
        json!({"id": "evt_1", "data": {"id": 1, "updated_at": "2024-03-01T10:00:00Z"}}).to_string();

    // Forged: signed with a secret the receiver does not hold.
    let (s, r) = post_order(&c, &server, "guessed-secret", body.as_bytes()).await;
    assert_eq!((s, &r["error"]), (401, &json!("signature does not match")));
    // No signature at all.
    let (s, _) = post(&c, &orders, &[], body.as_bytes()).await;
    assert_eq!(s, 401);
    // Tampered: a genuine signature over another body.
    let sig = github_signature(GH_SECRET, body.as_bytes());
    let tampered = body.replace("\"id\":1", "\"id\":2");
    let (s, _) = post(
        &c,
        &orders,
        &[("X-Hub-Signature-256", sig.clone())],
        tampered.as_bytes(),
    )
    .await;
    assert_eq!(s, 401);
    // Signature without its prefix, and one cut short.
    let (s, _) = post(
        &c,
        &orders,
        &[("X-Hub-Signature-256", sig[7..].to_owned())],
        body.as_bytes(),
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = post(
        &c,
        &orders,
        &[("X-Hub-Signature-256", sig[..40].to_owned())],
        body.as_bytes(),
    )
    .await;
    assert_eq!(s, 401);

    // Replayed: the first delivery is stored, the same event again is not.
    let (s, r) = post_order(&c, &server, GH_SECRET, body.as_bytes()).await;
    assert_eq!((s, &r["status"]), (200, &json!("stored")));
    let (s, r) = post_order(&c, &server, GH_SECRET, body.as_bytes()).await;
    assert_eq!((s, &r["status"]), (200, &json!("already_processed")));
    // Same event id, re-signed with the old secret and a changed body: still a duplicate.
    let again =
        json!({"id": "evt_1", "data": {"id": 1, "updated_at": "2024-03-02T10:00:00Z"}}).to_string();
    let (s, r) = post_order(&c, &server, GH_SECRET_OLD, again.as_bytes()).await;
    assert_eq!((s, &r["status"]), (200, &json!("already_processed")));

    // Stripe: stale and far-future timestamps, correctly signed, are refused.
    let pay = json!({"id": "evt_pay", "data": {"object": {"id": "ch_9"}}}).to_string();
    let stripe = server.url("/hooks/stripe");
    for t in [now() - 600, now() + 600] {
        let (s, r) = post(
            &c,
            &stripe,
            &[(
                "Stripe-Signature",
                stripe_signature(STRIPE_SECRET, t, pay.as_bytes()),
            )],
            pay.as_bytes(),
        )
        .await;
        assert_eq!(s, 401, "t={t}: {r}");
        assert!(r["error"].as_str().unwrap().contains("tolerance"), "{r}");
    }
    // Stripe: the timestamp is signed, so moving it to now breaks the signature.
    let old = stripe_signature(STRIPE_SECRET, now() - 600, pay.as_bytes());
    let moved = old.replacen(&format!("t={}", now() - 600), &format!("t={}", now()), 1);
    let (s, _) = post(&c, &stripe, &[("Stripe-Signature", moved)], pay.as_bytes()).await;
    assert_eq!(s, 401);

    // Standard Webhooks: stale, bare `v1,`, and a captured request replayed within tolerance.
    let std_url = server.url("/hooks/standard");
    let msg = br#"{"type":"ping"}"#;
    let stale = now() - 301 - 60;
    let (s, _) = post(
        &c,
        &std_url,
        &[
            ("webhook-id", "msg_s".into()),
            ("webhook-timestamp", stale.to_string()),
            (
                "webhook-signature",
                standard_signature(STD_SECRET, "msg_s", stale, msg),
            ),
        ],
        msg,
    )
    .await;
    assert_eq!(s, 401);
    let ts = now();
    let (s, _) = post(
        &c,
        &std_url,
        &[
            ("webhook-id", "msg_b".into()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", "v1,".into()),
        ],
        msg,
    )
    .await;
    assert_eq!(s, 401);
    let captured = [
        ("webhook-id", "msg_r".to_owned()),
        ("webhook-timestamp", ts.to_string()),
        (
            "webhook-signature",
            standard_signature(STD_SECRET, "msg_r", ts, msg),
        ),
    ];
    let (s, r) = post(&c, &std_url, &captured, msg).await;
    assert_eq!((s, &r["status"]), (200, &json!("stored")));
    let (s, r) = post(&c, &std_url, &captured, msg).await;
    assert_eq!((s, &r["status"]), (200, &json!("already_processed")));

    let ended = server.terminate();
    assert!(ended.status.success(), "{ended:?}");
    assert!(
        ended
            .stdout
            .contains("serve: 2 stored, 3 already processed, 10 refused"),
        "{}",
        ended.stdout
    );
    let out = dir.path().join("out");
    assert_eq!(read_lines(&out.join("orders.jsonl")).len(), 1);
    assert_eq!(read_lines(&out.join("messages.jsonl")).len(), 1);
    assert!(
        !out.join("payments.jsonl").exists(),
        "a refused delivery reached the output"
    );
    // Every refusal is logged with its reason, never with the secret or signature.
    assert!(
        ended.stderr.contains("signature does not match"),
        "{}",
        ended.stderr
    );
    assert!(
        ended.stderr.contains("beyond the 300s tolerance"),
        "{}",
        ended.stderr
    );
    assert!(
        ended
            .stderr
            .contains("missing header `x-hub-signature-256`"),
        "{}",
        ended.stderr
    );
    assert_no_secret("the logs", &ended.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_status_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client();

    // Signed, but not JSON.
    let (s, r) = post_order(&c, &server, GH_SECRET, b"id=1&total=5").await;
    assert_eq!(s, 400, "{r}");
    assert!(
        r["error"].as_str().unwrap().starts_with("body is not JSON"),
        "{r}"
    );
    // Signed JSON without the record the spec points at.
    let (s, r) = post_order(&c, &server, GH_SECRET, br#"{"id":"evt_x"}"#).await;
    assert_eq!(
        (s, &r["error"]),
        (422, &json!("body has no record at `$.data`"))
    );
    // A record without the version the latest view orders by.
    let (s, _) = post_order(&c, &server, GH_SECRET, br#"{"id":"evt_y","data":{"id":3}}"#).await;
    assert_eq!(s, 422);
    // Over the 4096-byte limit: with a Content-Length, and streamed without one.
    let big = json!({"id": "evt_big", "data": {"id": 1, "updated_at": "2024-01-01T00:00:00Z", "pad": "x".repeat(5000)}}).to_string();
    let (s, _) = post_order(&c, &server, GH_SECRET, big.as_bytes()).await;
    assert_eq!(s, 413);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let resp = c
        .post(server.url("/hooks/orders"))
        .header(
            "X-Hub-Signature-256",
            github_signature(GH_SECRET, big.as_bytes()),
        )
        .body(reqwest::Body::wrap_stream(futures_stream(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    // Unknown path, wrong method, health.
    let (s, _) = post_order_to(&c, &server.url("/hooks/unknown")).await;
    assert_eq!(s, 404);
    let resp = c.get(server.url("/hooks/orders")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = c
        .put(server.url("/hooks/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let resp = c.get(server.url("/health")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap(),
        json!({"status": "ok"})
    );

    let ended = server.terminate();
    assert!(ended.status.success(), "{ended:?}");
    assert!(
        ended
            .stdout
            .contains("serve: 0 stored, 0 already processed, 8 refused"),
        "{}",
        ended.stdout
    );
    assert!(!dir.path().join("out/orders.jsonl").exists());
    for reason in [
        "status=400",
        "status=422",
        "status=413",
        "status=404",
        "status=405",
    ] {
        assert!(
            ended.stderr.contains(reason),
            "no log line with {reason}:\n{}",
            ended.stderr
        );
    }
}

async fn post_order_to(c: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let body = br#"{"id":"e","data":{"id":1,"updated_at":"2024-01-01T00:00:00Z"}}"#;
    post(
        c,
        url,
        &[("X-Hub-Signature-256", github_signature(GH_SECRET, body))],
        body,
    )
    .await
}

/// A body stream out of ready chunks, so the request goes without a Content-Length.
fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures::stream::iter(chunks)
}

#[test]
fn shutdown_finishes_a_request_in_flight_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let body = json!({"id": "evt_slow", "data": {"id": 9, "updated_at": "2024-03-01T10:00:00Z"}})
        .to_string();
    let sig = github_signature(GH_SECRET, body.as_bytes());
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // One full exchange first, so the connection is surely accepted and being served.
    tcp.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let mut health = String::new();
    let mut buf = [0u8; 4096];
    while !health.contains("\"ok\"}") {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed: {health}");
        health.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let head = format!(
        "POST /hooks/orders HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(&body.as_bytes()[..10]).unwrap();
    // Give the server time to take the request in, then ask it to stop.
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.pid();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    // New connections are no longer accepted...
    assert!(
        TcpStream::connect(&addr)
            .map(|mut s| {
                let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
                let mut buf = [0u8; 1];
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.read(&mut buf).map(|n| n == 0).unwrap_or(true)
            })
            .unwrap_or(true),
        "a new request was served after SIGTERM"
    );
    // ...but the one in flight completes and is stored.
    tcp.write_all(&body.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    while !answer.contains("}") {
        let n = tcp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"stored\""), "{answer}");
    drop(tcp);
    let ended = server.wait();
    assert!(ended.status.success(), "{ended:?}");
    let lines = read_lines(&dir.path().join("out/orders.jsonl"));
    assert_eq!(
        lines,
        vec![json!({"id": 9, "updated_at": "2024-03-01T10:00:00Z"})]
    );
}

#[test]
fn configuration_mistakes_exit_2_without_showing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[String]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_runtime"))
            .arg("serve")
            .arg(SPEC)
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--out"])
            .arg(dir.path().join("out"))
            .output()
            .unwrap()
    };
    // A secret left unset.
    let mut args = secret_args();
    let pos = args
        .iter()
        .position(|a| a.starts_with("stripe_secret="))
        .unwrap();
    args.drain(pos - 1..=pos);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("config.stripe_secret"), "{err}");
    // A Standard Webhooks secret that is not base64: named, not shown.
    let mut args = secret_args();
    let pos = args
        .iter()
        .position(|a| a.starts_with("std_secret="))
        .unwrap();
    args[pos] = "std_secret=whsec_@@not-base64@@".into();
    let o = run(&args);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("webhooks.messages.signature.secrets[0]"),
        "{err}"
    );
    assert!(!err.contains("@@not-base64@@"), "{err}");
    assert!(
        !dir.path().join("out").exists(),
        "nothing is created before the spec is usable"
    );
}
