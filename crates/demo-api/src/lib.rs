//! # demo-api
//!
//! A small orders API built the way pipeline-friendly APIs should be, used as the target of
//! `connectors/orders.yaml`, of the README quickstart, and as the server of the end-to-end tests
//! (in process, through this library, or as the `demo-api` binary).
//!
//! It owns: seeded deterministic shop data, the HTTP endpoints below, bearer auth, a per-token
//! fixed-window rate limit, scripted faults, a request log, an idempotent `POST /orders`, and
//! a signed-webhook sender. It must not depend on the connector runtime or the spec crate (it
//! is the API the runtime is tested against, so it has to stay independent of it), and it
//! never touches anything but loopback sockets and the configured webhook URL.
//!
//! ## Endpoints
//!
//! Every data endpoint needs `Authorization: Bearer <token>` (401 JSON error otherwise) and
//! every answer carries `X-RateLimit-Remaining` and `X-RateLimit-Reset` (unix seconds); over
//! the limit: 429 with `Retry-After` (seconds). Errors are `{"error": code, "message": text}`.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /orders?limit=100&cursor=&updated_at_gte=&updated_at_lt=&sort=updated_at` | `{"orders": [...], "next_cursor": "..." \| null}`, sorted by `(updated_at, id)`; `limit` 1..=1000; bad cursor, date, limit or sort: 400 |
//! | `GET /orders/{id}/items` | `{"items": [{"line", "order_id", "sku", "quantity", "price"}]}`; unknown order: 404 |
//! | `GET /products?offset=0&limit=50` | `{"products": [...], "total": N}` |
//! | `GET /customers?page=1&per_page=25` | `{"customers": [...], "page": p, "total_pages": k}` |
//! | `GET /events?limit=50&after=<id>` | a bare array; `Link: <abs url>; rel="next", <abs url>; rel="first"` (no `next` on the last page) |
//! | `POST /orders` + `Idempotency-Key` | 201 `{"id": .., ...}`; no key 400; replay: same answer + `Idempotent-Replayed: true`; other body 422; still in flight 409 |
//! | `GET /health` | `{"status": "ok"}`, no auth, not logged |
//! | `/_admin/...` | the control API of the binary, see below |
//!
//! The cursor is the `(updated_at, id)` of the last record sent (see [`cursor`]), so records
//! inserted between pages are neither skipped nor repeated. An order *updated* mid-walk to a
//! time after the cursor shows up again later in the same walk (its new version), as with any
//! API sorted by update time; consumers dedupe by primary key.
//!
//! Seeded data (default seed 42): 250 orders, 120 products, 60 customers, 230 events, 1 to 4
//! items per order, timestamps from 2024-01-02 over 180 days. The orders at sort positions
//! `25k-2 ..= 25k+2` share one `updated_at`, so page breaks of 25, 50 or 100 fall inside a run
//! of equal timestamps. Every change (upsert, touch, insert, create) appends an event to
//! `/events` and, with a webhook URL, sends a signed webhook.
//!
//! ## Library API
//!
//! ```text
//! demo_api::spawn(config: DemoConfig) -> Result<DemoServer, DemoError>      // sync; binds before returning
//! demo_api::serve(listener: tokio::net::TcpListener, state: Arc<DemoState>,
//!                 shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()>   // async
//!
//! DemoConfig { listen: SocketAddr, seed: u64, sizes: DataSizes { orders, products, customers, events },
//!              token: String, rate_limit: u64, rate_window: Duration, idempotency_window: Duration,
//!              processing_delay: Duration, webhook: Option<WebhookConfig> }   // Default; DemoConfig::with_orders(n)
//! WebhookConfig::new(url, secret, Scheme) -> WebhookConfig { url, secret, scheme, max_attempts: 6, concurrency: 4 }
//!
//! DemoServer: addr() -> SocketAddr; base_url() -> String; state() -> &Arc<DemoState>;
//!             async shutdown(self); shutdown_blocking(self); Drop asks it to stop;
//!             Deref<Target = DemoState>
//!
//! DemoState (all &self):
//!   token() -> &str; local_addr() -> Option<SocketAddr>
//!   requests() -> Vec<RequestRecord>; clear_requests()
//!   push_fault(spec: &str, fault: Fault); pending_faults() -> usize; clear_faults()
//!       spec: "/orders" (path prefix, any method), "POST /orders", "GET /orders$" (exact path)
//!   set_window(limit: u64, reset_at: SystemTime); clear_window(); window_violations() -> u64
//!   on_request(spec: &str, nth: usize, action: impl FnOnce(&DemoState) + Send + 'static)
//!   with_data(|&Dataset| ..) -> R; orders() -> Vec<Order> (by id); orders_sorted() -> Vec<Order>;
//!   order(id) -> Option<Order>; items(id) -> Option<Vec<Item>>; products(); customers(); events()
//!   upsert_order(Order) -> Order; touch_order(id, OffsetDateTime) -> Option<Order>;
//!   insert_orders(n) -> Vec<Order>; webhook_demo(n) -> Vec<Order>
//!   created_orders() -> Vec<Order>; created_count() -> usize
//!   set_processing_delay(Duration); processing_delay() -> Duration
//!   webhook_stats() -> WebhookStats { queued, delivered, failed, attempts }
//!
//! RequestRecord { seq, instant: Instant, at: Duration (since start), unix_ms, method, path,
//!                 query: Option<String>, status: u16 (0 = no answer), fault: Option<String>,
//!                 idempotency_key: Option<String>, authorized: bool }   .param(name) -> Option<String>
//!
//! Fault::Status { code, headers: Vec<(String, String)>, body }   // Fault::status(code),
//!       Fault::retry_after_secs(code, secs), Fault::retry_after_date(code, SystemTime)
//! Fault::RateLimitHeaders { remaining, reset }  Fault::DropMidBody  Fault::Truncated
//! Fault::CutJson  Fault::Slow { delay }  Fault::Close  Fault::CommitThenDrop
//!
//! demo_api::sign::{hmac_sha256, hmac_sha256_header, stripe_signature, standard_webhooks_key,
//!                  standard_webhooks_signature, signature_headers, Scheme}
//! demo_api::webhook_sender::delivery_body(&WebhookEvent) -> Vec<u8>
//! ```
//!
//! ## Admin API (binary; same bearer token; not logged, limited or faulted)
//!
//! `GET|DELETE /_admin/requests`; `POST /_admin/faults {"path": "POST /orders", "fault":
//! {"kind": "status", "code": 429, "headers": [["Retry-After", "1"]]}}` (kinds: `status`,
//! `rate_limit_headers`, `drop_mid_body`, `truncated`, `cut_json`, `slow` with `delay_ms`,
//! `close`, `commit_then_drop`), `DELETE /_admin/faults`; `PUT /_admin/window {"limit": 1,
//! "reset_at": <unix s>}`, `GET /_admin/window` (`{"violations": n}`), `DELETE /_admin/window`;
//! `GET /_admin/orders`, `PUT /_admin/orders <order>`, `POST /_admin/orders/insert {"count":
//! n}`, `POST /_admin/orders/{id}/touch {"updated_at": "..."}`; `GET /_admin/created`;
//! `PUT /_admin/processing_delay {"ms": n}`; `GET /_admin/webhooks`;
//! `POST /_admin/webhooks/demo {"count": n}`.

#![warn(missing_docs)]

use std::sync::{Mutex, MutexGuard, PoisonError};

pub mod auth;
pub mod config;
pub mod cursor;
pub mod data;
pub mod error;
pub mod faults;
pub mod idempotency;
pub mod ratelimit;
pub mod reqlog;
mod routes;
pub mod server;
pub mod sign;
pub mod state;
pub mod webhook_sender;

pub use config::{DemoConfig, WebhookConfig};
pub use data::{Customer, DataSizes, Event, Item, Order, Product};
pub use error::DemoError;
pub use faults::Fault;
pub use reqlog::RequestRecord;
pub use server::{DemoServer, serve, spawn};
pub use sign::Scheme;
pub use state::DemoState;
pub use webhook_sender::WebhookStats;

/// Locks a mutex; a panic elsewhere while it was held does not make the data unusable here.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
