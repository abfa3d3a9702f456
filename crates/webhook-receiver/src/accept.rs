//! The accept loop: HTTP/1.1 connections with a deadline for the request headers, so a
//! client that opens connections and sends nothing (or a byte a minute) cannot hold them,
//! a cap on open connections in all and per peer address, and a graceful stop that lets
//! accepted requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::limits::{PeerCounts, PeerGuard};

/// Time a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Caps on open connections.
pub struct Caps {
    /// Open connections in all.
    pub total: usize,
    /// Open connections per peer address.
    pub per_peer: Arc<PeerCounts>,
}

/// One open connection, counted until dropped.
struct Open {
    _peer: PeerGuard,
    total: Arc<AtomicUsize>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a new connection, or says which cap it is over.
fn admit(caps: &Caps, open: &Arc<AtomicUsize>, peer: SocketAddr) -> Result<Open, &'static str> {
    let Some(guard) = caps.per_peer.try_take(peer.ip()) else {
        return Err("this address has too many connections open");
    };
    if open.fetch_add(1, Ordering::Relaxed) >= caps.total {
        open.fetch_sub(1, Ordering::Relaxed);
        return Err("too many connections open");
    }
    Ok(Open {
        _peer: guard,
        total: open.clone(),
    })
}

/// Serves `app` until `stop` completes, then waits up to `grace` for accepted requests.
/// A connection whose request headers take longer than `header_timeout` is closed, and
/// so is one over `caps` (at once, before anything is read).
///
/// Returns false when requests were still running after `grace` (they are dropped).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()>,
    grace: Duration,
    header_timeout: Duration,
    caps: Caps,
) -> bool {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(AtomicUsize::new(0));
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let counted = match admit(&caps, &open, peer) {
                        Ok(c) => c,
                        Err(reason) => {
                            // Logged at debug: a flood must not become a flood of log lines.
                            tracing::debug!(peer = %peer, reason, "connection closed at once");
                            drop(stream);
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let app = app.clone();
                    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                        app.clone().oneshot(req.map(axum::body::Body::new))
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .serve_connection(TokioIo::new(stream), svc);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _counted = counted;
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
            () = &mut stop => break,
        }
    }
    drop(listener);
    tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app,
            async {
                let _ = rx.await;
            },
            Duration::from_secs(1),
            Duration::from_millis(200),
            Caps {
                total: 100,
                per_peer: PeerCounts::new(0),
            },
        ));

        // A normal request is answered.
        let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        ok.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // Half a request line, then silence: the server closes the connection.
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"POST /hook HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the connection was still open after 5 s");
        assert!(started.elapsed() < Duration::from_secs(3));

        let _ = tx.send(());
        assert!(server.await.unwrap(), "stopped within the grace period");
    }

    #[tokio::test]
    async fn connections_over_the_per_peer_cap_are_closed_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            app,
            async {
                let _ = rx.await;
            },
            Duration::from_secs(1),
            Duration::from_secs(5),
            Caps {
                total: 100,
                per_peer: PeerCounts::new(2),
            },
        ));
        let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), third.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the third connection was kept open");
        assert!(rest.is_empty());

        // Once one of the two closes, the address may connect again (as soon as the
        // server has seen the close).
        drop(_a);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let answer = loop {
            let mut again = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = again
                .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await;
            let mut answer = String::new();
            let _ = tokio::time::timeout(Duration::from_secs(2), again.read_to_string(&mut answer))
                .await;
            if !answer.is_empty() || std::time::Instant::now() > deadline {
                break answer;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let _ = tx.send(());
        drop(_b);
        assert!(server.await.unwrap());
    }
}
