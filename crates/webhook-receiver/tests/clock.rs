//! The receiver with an injected clock: timestamp tolerance is checked against the clock
//! it is given, so stale and fresh deliveries are tested without waiting.

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;
use webhook_receiver::{FixedClock, Receiver};

const SPEC: &str = r#"
version: 1
name: clock_test
config:
  secret: { type: string, secret: true }
http: { base_url: "http://127.0.0.1:9" }
webhooks:
  payments:
    path: /stripe
    signature: { scheme: stripe, secrets: ["{{ config.secret }}"], tolerance: 2m }
    event_id: $.id
"#;

const SECRET: &str = "whsec_clock";
const NOW: i64 = 1_600_000_000;

fn stripe_header(t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn tolerance_is_measured_against_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = connector_spec::load_str(std::path::Path::new("clock.yaml"), SPEC).unwrap();
    let receiver = Receiver::new(&loaded.spec, &json!({"config": {"secret": SECRET}}))
        .unwrap()
        .with_clock(Arc::new(FixedClock(NOW)));
    assert_eq!(
        receiver.routes(),
        vec![("payments".to_owned(), "/stripe".to_owned())]
    );
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let out = dir.path().to_path_buf();
    let server = tokio::spawn(async move {
        receiver
            .run(
                &out,
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
    let url = format!("http://{}/stripe", addr_rx.await.unwrap());
    let client = reqwest::Client::new();
    let send = |t: i64, id: &str| {
        let body = json!({"id": id}).to_string();
        let header = stripe_header(t, &body);
        client
            .post(&url)
            .header("Stripe-Signature", header)
            .body(body)
            .send()
    };
    // Years in the real past, but within 2 minutes of the receiver's clock.
    assert_eq!(send(NOW - 119, "evt_1").await.unwrap().status(), 200);
    assert_eq!(send(NOW + 60, "evt_2").await.unwrap().status(), 200);
    // Outside the 2-minute tolerance on either side.
    assert_eq!(send(NOW - 121, "evt_3").await.unwrap().status(), 401);
    assert_eq!(send(NOW + 121, "evt_4").await.unwrap().status(), 401);
    let _ = stop_tx.send(());
    let summary = server.await.unwrap().unwrap();
    assert_eq!(
        (summary.stored, summary.rejected, summary.pending),
        (2, 2, 0)
    );
    let text = std::fs::read_to_string(dir.path().join("payments.jsonl")).unwrap();
    assert_eq!(text, "{\"id\":\"evt_1\"}\n{\"id\":\"evt_2\"}\n");
}
