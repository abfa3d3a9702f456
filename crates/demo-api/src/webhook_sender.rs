//! Sends order changes as signed webhooks: one POST per change, body
//! `{"id": "<event id>", "type": "order.updated", "data": <order>}`, signed with the configured
//! scheme, retried with exponential backoff until the receiver answers 2xx.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::config::WebhookConfig;
use crate::data::Order;
use crate::sign;

/// One change to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// Event id, e.g. `evt_000231`; the same on every retry.
    pub id: String,
    /// `order.created` or `order.updated`.
    pub event_type: String,
    /// The order as it is after the change.
    pub order: Order,
}

/// The exact bytes sent for an event.
pub fn delivery_body(event: &WebhookEvent) -> Vec<u8> {
    json!({ "id": event.id, "type": event.event_type, "data": event.order })
        .to_string()
        .into_bytes()
}

/// Delivery counters, shared with the state.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    /// Events queued for delivery.
    pub queued: AtomicU64,
    /// Events the receiver accepted (2xx).
    pub delivered: AtomicU64,
    /// Events given up after the last attempt.
    pub failed: AtomicU64,
    /// POSTs sent, retries included.
    pub attempts: AtomicU64,
}

impl WebhookCounters {
    /// A copy of the counters.
    pub fn snapshot(&self) -> WebhookStats {
        WebhookStats {
            queued: self.queued.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            attempts: self.attempts.load(Ordering::Relaxed),
        }
    }
}

/// A copy of the delivery counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WebhookStats {
    /// Events queued for delivery.
    pub queued: u64,
    /// Events the receiver accepted (2xx).
    pub delivered: u64,
    /// Events given up after the last attempt.
    pub failed: u64,
    /// POSTs sent, retries included.
    pub attempts: u64,
}

/// Delivers every event received on `rx` until the channel closes (or the task is aborted).
pub async fn run(
    config: WebhookConfig,
    rx: mpsc::UnboundedReceiver<WebhookEvent>,
    counters: Arc<WebhookCounters>,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled: cannot build the HTTP client");
            return;
        }
    };
    let events = futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|ev| (ev, rx)) },
    );
    let config = &config;
    let client = &client;
    let counters = &counters;
    events
        .for_each_concurrent(config.concurrency.max(1), |ev| async move {
            if deliver(client, config, &ev, counters).await {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
            } else {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
}

/// Sends one event, with retries; true once the receiver answered 2xx.
async fn deliver(
    client: &reqwest::Client,
    config: &WebhookConfig,
    ev: &WebhookEvent,
    counters: &WebhookCounters,
) -> bool {
    let body = delivery_body(ev);
    let attempts = config.max_attempts.max(1);
    for attempt in 1..=attempts {
        counters.attempts.fetch_add(1, Ordering::Relaxed);
        // A retry is signed afresh, as real senders do, so its timestamp stays within tolerance.
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let headers =
            match sign::signature_headers(config.scheme, &config.secret, &ev.id, ts, &body) {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(event = %ev.id, error = %e, "cannot sign the webhook");
                    return false;
                }
            };
        let mut req = client
            .post(&config.url)
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let outcome = match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                tracing::debug!(event = %ev.id, status = resp.status().as_u16(), "webhook delivered");
                return true;
            }
            Ok(resp) => format!("status {}", resp.status().as_u16()),
            Err(e) => e.to_string(),
        };
        if attempt == attempts {
            tracing::warn!(event = %ev.id, url = %config.url, attempts, last = %outcome, "webhook given up");
            return false;
        }
        let wait = Duration::from_millis(250u64 << (attempt - 1).min(5));
        tracing::info!(event = %ev.id, url = %config.url, attempt, last = %outcome, wait_ms = wait.as_millis() as u64, "webhook failed, retrying");
        tokio::time::sleep(wait).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::parse_ts;

    #[test]
    fn body_shape() {
        let t = parse_ts("2024-01-02T03:04:05Z").unwrap();
        let ev = WebhookEvent {
            id: "evt_000001".into(),
            event_type: "order.updated".into(),
            order: Order {
                id: 7,
                customer_id: 1,
                external_id: "EXT-000007".into(),
                status: "paid".into(),
                total: 12.5,
                currency: "EUR".into(),
                created_at: t,
                updated_at: t,
            },
        };
        let body = String::from_utf8(delivery_body(&ev)).unwrap();
        assert_eq!(
            body,
            r#"{"id":"evt_000001","type":"order.updated","data":{"id":7,"customer_id":1,"external_id":"EXT-000007","status":"paid","total":12.5,"currency":"EUR","created_at":"2024-01-02T03:04:05Z","updated_at":"2024-01-02T03:04:05Z"}}"#
        );
    }
}
