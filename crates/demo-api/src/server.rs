//! Serving: the accept loop (hyper, HTTP/1.1), graceful shutdown, and the in-process handle
//! tests use.
//!
//! The loop is hand-written rather than `axum::serve` because two faults need a connection to be
//! closed without any answer, which only a hyper service that returns an error can do.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt as _;

use crate::config::DemoConfig;
use crate::error::DemoError;
use crate::routes::{self, pipeline::AbortConnection};
use crate::state::DemoState;

/// Longest wait for open connections to finish after a shutdown was asked for.
const GRACE: Duration = Duration::from_secs(5);

/// The error a connection is failed with to close it without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection closed by an injected fault")]
struct Aborted;

async fn handle(router: Router, req: Request<Incoming>) -> Result<Response, Aborted> {
    let resp = match router.oneshot(req.map(Body::new)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if resp.extensions().get::<AbortConnection>().is_some() {
        return Err(Aborted);
    }
    Ok(resp)
}

/// Serves `state` on `listener` until `shutdown` completes, then lets open connections finish
/// (up to 5 s). Also runs the webhook sender when one is configured.
pub async fn serve(
    listener: TcpListener,
    state: Arc<DemoState>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    state.set_local_addr(listener.local_addr()?);
    let webhooks = state.take_webhook_worker().map(tokio::spawn);
    let router = routes::router(state.clone());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let router = router.clone();
                    let svc = hyper::service::service_fn(move |req| handle(router.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(GRACE) => tracing::warn!("connections still open after {GRACE:?}; closing them"),
    }
    if let Some(task) = webhooks {
        task.abort();
    }
    Ok(())
}

/// A demo server running on its own thread and tokio runtime, so it works the same from a
/// plain `#[test]` that blocks on a child process and from async code. Dropping it asks the
/// server to stop (without waiting); [`shutdown`](Self::shutdown) waits.
///
/// It dereferences to [`DemoState`], so `server.push_fault(..)` works directly.
#[derive(Debug)]
pub struct DemoServer {
    addr: SocketAddr,
    state: Arc<DemoState>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts a server for `config` on `config.listen` (default `127.0.0.1:0`). Not async: it binds
/// before returning, so the port is known and accepting at once.
pub fn spawn(config: DemoConfig) -> Result<DemoServer, DemoError> {
    let state = DemoState::new(&config)?;
    let std_listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| DemoError::Bind {
            addr: config.listen,
            source,
        })?;
    std_listener
        .set_nonblocking(true)
        .map_err(DemoError::Runtime)?;
    let addr = std_listener.local_addr().map_err(DemoError::Runtime)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("demo-api")
        .enable_all()
        .build()
        .map_err(DemoError::Runtime)?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let served = state.clone();
    let thread = std::thread::Builder::new()
        .name(format!("demo-api {addr}"))
        .spawn(move || {
            rt.block_on(async move {
                match TcpListener::from_std(std_listener) {
                    Ok(listener) => {
                        let stop = async {
                            let _ = stop_rx.await;
                        };
                        if let Err(e) = serve(listener, served, stop).await {
                            tracing::error!(error = %e, "demo server stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "demo server could not use its socket"),
                }
            });
            // Drop the runtime (and with it any connection still open) before saying done.
            drop(rt);
            let _ = done_tx.send(());
        })
        .map_err(DemoError::Runtime)?;
    Ok(DemoServer {
        addr,
        state,
        stop: Some(stop_tx),
        done: Some(done_rx),
        thread: Some(thread),
    })
}

impl DemoServer {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state: data, request log, faults, ...
    pub fn state(&self) -> &Arc<DemoState> {
        &self.state
    }

    /// Stops the server and waits until it has stopped (at most a few seconds).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }

    /// Stops the server and waits, from synchronous code (not from inside an async task).
    pub fn shutdown_blocking(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Deref for DemoServer {
    type Target = DemoState;
    fn deref(&self) -> &DemoState {
        &self.state
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
