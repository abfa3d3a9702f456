//! The demo server's settings.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::data::DataSizes;
use crate::sign::Scheme;

/// Everything the server can be told; `Default` is the quickstart's server on `127.0.0.1:0`.
#[derive(Clone)]
pub struct DemoConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Seed of the generated data.
    pub seed: u64,
    /// How many records of each kind to generate.
    pub sizes: DataSizes,
    /// The bearer token clients must send.
    pub token: String,
    /// Requests allowed per token and window.
    pub rate_limit: u64,
    /// Length of a rate-limit window.
    pub rate_window: Duration,
    /// How long a processed `Idempotency-Key` is remembered.
    pub idempotency_window: Duration,
    /// Time `POST /orders` takes to process (makes the 409 window observable).
    pub processing_delay: Duration,
    /// Where to send order changes as signed webhooks, if anywhere.
    pub webhook: Option<WebhookConfig>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            seed: 42,
            sizes: DataSizes::default(),
            token: "demo-token".into(),
            rate_limit: 1000,
            rate_window: Duration::from_secs(1),
            idempotency_window: Duration::from_secs(24 * 3600),
            processing_delay: Duration::ZERO,
            webhook: None,
        }
    }
}

impl DemoConfig {
    /// The default configuration with `orders` orders.
    pub fn with_orders(orders: usize) -> Self {
        let mut c = Self::default();
        c.sizes.orders = orders;
        c
    }
}

// The token and webhook secret never appear in a debug print (and so in no log).
impl fmt::Debug for DemoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoConfig")
            .field("listen", &self.listen)
            .field("seed", &self.seed)
            .field("sizes", &self.sizes)
            .field("token", &"<redacted>")
            .field("rate_limit", &self.rate_limit)
            .field("rate_window", &self.rate_window)
            .field("idempotency_window", &self.idempotency_window)
            .field("processing_delay", &self.processing_delay)
            .field("webhook", &self.webhook)
            .finish()
    }
}

/// Where and how to send signed webhooks.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The receiver's URL.
    pub url: String,
    /// Shared secret (for `standard_webhooks`: `whsec_` + base64).
    pub secret: String,
    /// Signature scheme.
    pub scheme: Scheme,
    /// Attempts per delivery before giving up (at least 1).
    pub max_attempts: u32,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl WebhookConfig {
    /// A configuration with 6 attempts and 4 deliveries at once.
    pub fn new(url: impl Into<String>, secret: impl Into<String>, scheme: Scheme) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            scheme,
            max_attempts: 6,
            concurrency: 4,
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("scheme", &self.scheme)
            .field("max_attempts", &self.max_attempts)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}
