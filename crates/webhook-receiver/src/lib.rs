//! Receives a connector spec's signed webhooks: `runtime serve`.
//!
//! Owns receiving deliveries over HTTP, verifying their signatures (`hmac_sha256`,
//! `stripe`, `standard_webhooks`) in constant time, storing every verified event durably
//! (SQLite, WAL, fsync) before answering 2xx, deduplicating by event id, and draining the
//! stored events to `<out>/<stream>.jsonl` and the `<out>/<stream>.latest.jsonl` view.
//! It must not fetch from APIs (that is `connector-runtime`) and does not resolve
//! configuration: callers pass the template context with the secrets' values.

mod accept;
pub mod body;
pub mod clock;
pub mod drain;
pub mod error;
pub mod event;
mod fault;
mod fdlimit;
pub mod hooks;
pub mod latest;
pub mod limits;
pub mod retention;
pub mod server;
pub mod sink;
pub mod store;
pub mod verify;
pub mod version;
mod wake;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use connector_spec::Spec;
use serde_json::Value;

pub use clock::{Clock, FixedClock, ManualClock, SharedClock, SystemClock};
pub use error::{RunError, SetupError};
pub use hooks::Hook;
pub use limits::Limits;
pub use retention::Retention;
pub use server::shutdown_signal;

use crate::drain::Drainer;
use crate::server::Counters;
use crate::wake::Wake;

/// Longest the server waits for in-flight requests after a shutdown signal.
const GRACE: Duration = Duration::from_secs(30);

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Deliveries stored.
    pub stored: u64,
    /// Deliveries answered `already_processed`.
    pub duplicates: u64,
    /// Deliveries refused.
    pub rejected: u64,
    /// Deliveries that could not be stored (answered 503).
    pub failed: u64,
    /// Events written to output files (including ones stored by an earlier run).
    pub written: u64,
    /// Events still in the store, not yet written (0 after a clean shutdown).
    pub pending: u64,
}

/// The spec's webhooks, ready to serve.
pub struct Receiver {
    hooks: Vec<Arc<Hook>>,
    clock: SharedClock,
    limits: Limits,
    retention: Retention,
}

impl Receiver {
    /// Compiles the spec's webhooks; `context` is the template context with the
    /// configuration values (`{"config": {...}}`), used to render the secrets.
    pub fn new(spec: &Spec, context: &Value) -> Result<Self, SetupError> {
        let hooks = hooks::compile(spec, context)?
            .into_iter()
            .map(Arc::new)
            .collect();
        Ok(Self {
            hooks,
            clock: Arc::new(SystemClock),
            limits: Limits::default(),
            retention: Retention::default(),
        })
    }

    /// Uses another clock (tests of timestamp tolerance and retention).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Uses other limits on connections, requests and bodies.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Uses another retention for stored events.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// The webhooks served: (name, path).
    pub fn routes(&self) -> Vec<(String, String)> {
        self.hooks
            .iter()
            .map(|h| (h.name.clone(), h.path.clone()))
            .collect()
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes the requests in
    /// flight, writes out every stored event and returns.
    ///
    /// The store and the output files live in `out`. `on_listening` is called with the
    /// bound address once the store is open and recovered and the socket accepts. The
    /// process's soft open-file limit is raised to its hard limit first.
    pub async fn run(
        self,
        out: &Path,
        listen: &str,
        on_listening: impl FnOnce(SocketAddr),
        shutdown: impl Future<Output = ()>,
    ) -> Result<Summary, RunError> {
        let nofile = fdlimit::raise();
        std::fs::create_dir_all(out).map_err(|source| RunError::Io {
            path: out.to_path_buf(),
            source,
        })?;
        // Before the store is opened or any file recovered: one writer per folder (two
        // drains appending the same events would duplicate them).
        let _folder_lock = folder_lock::Lock::folder(out, Some("--out"))?;
        let db = store::path_in(out);
        let wake = Arc::new(Wake::default());
        let (writer, writer_thread) = store::open(&db, wake.clone())?;
        let reader = store::Reader::open(&db)?;
        let written = Arc::new(AtomicU64::new(0));
        let mut drainer = Drainer::new(
            reader,
            writer.clone(),
            out.to_path_buf(),
            wake.clone(),
            written.clone(),
        );
        let drainer = tokio::task::spawn_blocking(move || drainer.recover().map(|()| drainer))
            .await
            .map_err(|e| RunError::Worker(format!("recovery stopped: {e}")))??;
        let drain_thread = std::thread::Builder::new()
            .name("webhook-drain".into())
            .spawn(move || drainer.run())
            .map_err(|e| RunError::Worker(format!("cannot start the drain thread: {e}")))?;

        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| RunError::Bind {
                addr: listen.to_owned(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| RunError::Bind {
            addr: listen.to_owned(),
            source,
        })?;
        // Poll the shutdown future once before anyone learns the address: signal
        // handlers are installed on first poll, and a SIGTERM before that would kill the
        // process without the drain.
        let mut shutdown = std::pin::pin!(shutdown);
        let signalled =
            std::future::poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx).is_ready())).await;
        let shutdown = async move {
            if !signalled {
                shutdown.await;
            }
        };
        for h in &self.hooks {
            tracing::info!(webhook = %h.name, path = %h.path, output = %out.join(format!("{}.jsonl", h.sink)).display(), "serving");
        }
        on_listening(addr);

        let caps = accept::Caps {
            total: self.limits.connections(nofile),
            per_peer: limits::PeerCounts::new(self.limits.max_connections_per_peer),
        };
        tracing::debug!(connections = caps.total, limits = ?self.limits, retention = ?self.retention, "limits");
        let pruner = tokio::spawn(retention::run(
            self.retention,
            self.clock.clone(),
            writer.clone(),
        ));
        let counters = Arc::new(Counters::default());
        let app = server::router(
            self.hooks,
            writer.clone(),
            self.clock,
            counters.clone(),
            &self.limits,
        );
        let finished = accept::serve(
            listener,
            app,
            async move {
                shutdown.await;
                tracing::info!("shutting down: no new connections; finishing requests in flight, then writing out stored events");
            },
            GRACE,
            accept::HEADER_TIMEOUT,
            caps,
        )
        .await;
        pruner.abort();
        if !finished {
            tracing::warn!(
                "requests still in flight after {}s are dropped; senders will retry them",
                GRACE.as_secs()
            );
        }

        wake.close();
        let drained = tokio::task::spawn_blocking(move || drain_thread.join())
            .await
            .map_err(|e| RunError::Worker(format!("drain worker: {e}")))?
            .map_err(|_| RunError::Worker("the drain worker panicked".into()))?;
        writer.close().await;
        drop(writer);
        tokio::task::spawn_blocking(move || writer_thread.join())
            .await
            .map_err(|e| RunError::Worker(format!("store writer: {e}")))?
            .map_err(|_| RunError::Worker("the store writer panicked".into()))?;
        let pending = store::Reader::open(&db)?
            .pending_count()
            .map_err(|e| RunError::Worker(e.to_string()))?;
        drained.map_err(|e| {
            RunError::Worker(format!(
                "{e}; {pending} stored event(s) are kept in {} and written at the next start",
                db.display()
            ))
        })?;
        Ok(Summary {
            stored: counters.stored.load(Ordering::Relaxed),
            duplicates: counters.duplicates.load(Ordering::Relaxed),
            rejected: counters.rejected.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            written: written.load(Ordering::Relaxed),
            pending,
        })
    }
}
