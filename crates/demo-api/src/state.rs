//! The server's shared state, and the control surface tests use: data access and mutation,
//! the request log, scripted faults, the scripted rate-limit window, request hooks, created
//! orders and webhook counters.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::config::{DemoConfig, WebhookConfig};
use crate::data::{Customer, Dataset, Event, Item, NewOrder, Order, Product};
use crate::error::DemoError;
use crate::faults::{Fault, FaultQueue, Matcher};
use crate::idempotency::IdempotencyStore;
use crate::lock;
use crate::ratelimit::RateLimiter;
use crate::reqlog::{RequestLog, RequestRecord};
use crate::sign::{self, Scheme};
use crate::webhook_sender::{self, WebhookCounters, WebhookEvent, WebhookStats};

/// Something a test wants done to the server just before a given request is handled.
pub type Action = Box<dyn FnOnce(&DemoState) + Send>;

struct Hook {
    matcher: Matcher,
    /// Matching requests still to arrive before the action runs (the action runs at 1).
    countdown: usize,
    action: Option<Action>,
}

type Worker = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Shared state of one demo server.
pub struct DemoState {
    token: String,
    pub(crate) log: RequestLog,
    pub(crate) faults: FaultQueue,
    pub(crate) limiter: RateLimiter,
    pub(crate) idempotency: IdempotencyStore,
    data: Mutex<Dataset>,
    hooks: Mutex<Vec<Hook>>,
    processing_delay: Mutex<Duration>,
    created: Mutex<Vec<Order>>,
    webhook_tx: Option<mpsc::UnboundedSender<WebhookEvent>>,
    webhook_worker: Mutex<Option<(WebhookConfig, mpsc::UnboundedReceiver<WebhookEvent>)>>,
    webhook_counters: Arc<WebhookCounters>,
    local_addr: OnceLock<SocketAddr>,
}

impl std::fmt::Debug for DemoState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoState")
            .field("local_addr", &self.local_addr.get())
            .finish_non_exhaustive()
    }
}

impl DemoState {
    /// Builds the state (generates the data) without serving it.
    pub fn new(config: &DemoConfig) -> Result<Arc<Self>, DemoError> {
        if config.token.is_empty() {
            return Err(DemoError::Config(
                "the bearer token must not be empty".into(),
            ));
        }
        let (webhook_tx, webhook_worker) = match &config.webhook {
            Some(w) => {
                if w.url.is_empty() {
                    return Err(DemoError::Config("the webhook URL is empty".into()));
                }
                if w.scheme == Scheme::StandardWebhooks {
                    sign::standard_webhooks_key(&w.secret)?;
                }
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some((w.clone(), rx)))
            }
            None => (None, None),
        };
        Ok(Arc::new(Self {
            token: config.token.clone(),
            log: RequestLog::new(),
            faults: FaultQueue::default(),
            limiter: RateLimiter::new(config.rate_limit, config.rate_window),
            idempotency: IdempotencyStore::new(config.idempotency_window),
            data: Mutex::new(Dataset::generate(config.seed, config.sizes)),
            hooks: Mutex::new(Vec::new()),
            processing_delay: Mutex::new(config.processing_delay),
            created: Mutex::new(Vec::new()),
            webhook_tx,
            webhook_worker: Mutex::new(webhook_worker),
            webhook_counters: Arc::new(WebhookCounters::default()),
            local_addr: OnceLock::new(),
        }))
    }

    /// The bearer token clients must send.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The address the server listens on, once it serves.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr.get().copied()
    }

    pub(crate) fn set_local_addr(&self, addr: SocketAddr) {
        let _ = self.local_addr.set(addr);
    }

    // ---- request log -------------------------------------------------------------------

    /// A copy of the request log (data endpoints only; `/_admin` and `/health` are not logged).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.log.records()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.log.clear();
    }

    // ---- faults, rate-limit window, hooks ----------------------------------------------

    /// Queues a fault for the next request matching `spec`: a path prefix (`"/orders"`), a
    /// method and a path prefix (`"POST /orders"`), a trailing `$` for an exact path
    /// (`"GET /orders$"`). Faults are consumed in the order pushed.
    pub fn push_fault(&self, spec: &str, fault: Fault) {
        self.faults.push(spec, fault);
    }

    /// Faults queued and not consumed yet.
    pub fn pending_faults(&self) -> usize {
        self.faults.pending()
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// Scripts a rate-limit window for every client: `limit` requests until `reset_at` (rounded
    /// up to a whole second, as advertised in `X-RateLimit-Reset`); later requests before the
    /// reset get 429 and are counted by [`window_violations`](Self::window_violations).
    pub fn set_window(&self, limit: u64, reset_at: SystemTime) {
        self.limiter.set_window(limit, reset_at);
    }

    /// Removes the scripted window.
    pub fn clear_window(&self) {
        self.limiter.clear_window();
    }

    /// Requests that arrived while the scripted window had 0 remaining.
    pub fn window_violations(&self) -> u64 {
        self.limiter.window_violations()
    }

    /// Runs `action` just before the `nth` (from 1) request matching `spec` from now on is
    /// handled (before its fault, if any), e.g. to insert records while a client is
    /// between pages.
    pub fn on_request(
        &self,
        spec: &str,
        nth: usize,
        action: impl FnOnce(&DemoState) + Send + 'static,
    ) {
        lock(&self.hooks).push(Hook {
            matcher: Matcher::parse(spec),
            countdown: nth.max(1),
            action: Some(Box::new(action)),
        });
    }

    pub(crate) fn run_hooks(&self, method: &str, path: &str) {
        let due: Vec<Action> = {
            let mut hooks = lock(&self.hooks);
            let mut due = Vec::new();
            for h in hooks.iter_mut().filter(|h| h.matcher.matches(method, path)) {
                h.countdown -= 1;
                if h.countdown == 0 {
                    due.extend(h.action.take());
                }
            }
            hooks.retain(|h| h.action.is_some());
            due
        };
        for action in due {
            action(self);
        }
    }

    // ---- data --------------------------------------------------------------------------

    /// Reads the data under its lock.
    pub fn with_data<R>(&self, f: impl FnOnce(&Dataset) -> R) -> R {
        f(&lock(&self.data))
    }

    /// Every order, by id.
    pub fn orders(&self) -> Vec<Order> {
        self.with_data(Dataset::orders)
    }

    /// Every order in the API's `(updated_at, id)` order.
    pub fn orders_sorted(&self) -> Vec<Order> {
        self.with_data(Dataset::orders_sorted)
    }

    /// One order.
    pub fn order(&self, id: u64) -> Option<Order> {
        self.with_data(|d| d.order(id).cloned())
    }

    /// The items of an order (`None` for an unknown order).
    pub fn items(&self, order_id: u64) -> Option<Vec<Item>> {
        self.with_data(|d| d.items(order_id))
    }

    /// Every product.
    pub fn products(&self) -> Vec<Product> {
        self.with_data(|d| d.products().to_vec())
    }

    /// Every customer.
    pub fn customers(&self) -> Vec<Customer> {
        self.with_data(|d| d.customers().to_vec())
    }

    /// Every event, by id.
    pub fn events(&self) -> Vec<Event> {
        self.with_data(|d| d.events().to_vec())
    }

    /// Inserts or replaces an order (by id); appends an event and sends a webhook.
    pub fn upsert_order(&self, order: Order) -> Order {
        let (order, event) = lock(&self.data).upsert(order);
        self.notify(&order, &event);
        order
    }

    /// Sets an order's `updated_at`; `None` for an unknown id.
    pub fn touch_order(&self, id: u64, updated_at: OffsetDateTime) -> Option<Order> {
        let (order, event) = lock(&self.data).touch(id, updated_at)?;
        self.notify(&order, &event);
        Some(order)
    }

    /// Inserts `n` new orders updated now (never before the newest order).
    pub fn insert_orders(&self, n: usize) -> Vec<Order> {
        let changes = {
            let mut d = lock(&self.data);
            let at = d.fresh_timestamp();
            d.insert_random(n, at)
        };
        changes
            .into_iter()
            .map(|(o, e)| {
                self.notify(&o, &e);
                o
            })
            .collect()
    }

    /// Touches `n` orders (picked round-robin from the oldest update) to now, one change
    /// and one webhook each: the `--webhook-demo` burst.
    pub fn webhook_demo(&self, n: usize) -> Vec<Order> {
        let changes: Vec<(Order, Event)> = {
            let mut d = lock(&self.data);
            let ids: Vec<u64> = d.orders_sorted().iter().map(|o| o.id).collect();
            if ids.is_empty() {
                return Vec::new();
            }
            let at = d.fresh_timestamp();
            (0..n)
                .filter_map(|i| d.touch(ids[i % ids.len()], at))
                .collect()
        };
        changes
            .into_iter()
            .map(|(o, e)| {
                self.notify(&o, &e);
                o
            })
            .collect()
    }

    /// Creates an order as `POST /orders` does and remembers it in [`created_orders`](Self::created_orders).
    pub(crate) fn create_order(&self, new: NewOrder) -> Order {
        let (order, event) = {
            let mut d = lock(&self.data);
            let at = d.fresh_timestamp();
            d.create(new, at)
        };
        lock(&self.created).push(order.clone());
        self.notify(&order, &event);
        order
    }

    /// Orders created through `POST /orders`, in creation order.
    pub fn created_orders(&self) -> Vec<Order> {
        lock(&self.created).clone()
    }

    /// Number of orders created through `POST /orders`.
    pub fn created_count(&self) -> usize {
        lock(&self.created).len()
    }

    /// Sets how long `POST /orders` takes to process.
    pub fn set_processing_delay(&self, delay: Duration) {
        *lock(&self.processing_delay) = delay;
    }

    /// How long `POST /orders` takes to process.
    pub fn processing_delay(&self) -> Duration {
        *lock(&self.processing_delay)
    }

    // ---- webhooks ----------------------------------------------------------------------

    /// Counts of webhook deliveries (all zero when no webhook URL is configured).
    pub fn webhook_stats(&self) -> WebhookStats {
        self.webhook_counters.snapshot()
    }

    fn notify(&self, order: &Order, event: &Event) {
        if let Some(tx) = &self.webhook_tx {
            let ev = WebhookEvent {
                id: format!("evt_{:06}", event.id),
                event_type: event.event_type.clone(),
                order: order.clone(),
            };
            if tx.send(ev).is_ok() {
                self.webhook_counters.queued.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The webhook delivery loop, once (the server runs it).
    pub(crate) fn take_webhook_worker(&self) -> Option<Worker> {
        let (config, rx) = lock(&self.webhook_worker).take()?;
        let counters = self.webhook_counters.clone();
        Some(Box::pin(webhook_sender::run(config, rx, counters)))
    }
}
