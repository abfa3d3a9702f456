//! The HTTP side: one handler that routes by exact path, reads the body within the
//! webhook's size limit, verifies, extracts, stores, and answers.
//!
//! Routing is done here rather than by axum's router so that a webhook path is matched
//! literally (a `{` in it is not a parameter) and every refusal (404, 405, 413, ...) goes
//! through the same logging.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::clock::SharedClock;
use crate::event;
use crate::hooks::{HEALTH_PATH, Hook};
use crate::store::{Inserted, NewEvent, Writer};

/// Longest a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts of what the server answered.
#[derive(Debug, Default)]
pub struct Counters {
    /// Deliveries stored.
    pub stored: AtomicU64,
    /// Deliveries whose event id was already stored.
    pub duplicates: AtomicU64,
    /// Deliveries refused (any 4xx).
    pub rejected: AtomicU64,
    /// Deliveries that could not be stored (503).
    pub failed: AtomicU64,
}

/// What the handler needs.
pub struct AppState {
    hooks: HashMap<String, Arc<Hook>>,
    writer: Writer,
    clock: SharedClock,
    counters: Arc<Counters>,
}

/// The receiver's routes: every webhook path, and `GET /health`.
pub fn router(
    hooks: Vec<Arc<Hook>>,
    writer: Writer,
    clock: SharedClock,
    counters: Arc<Counters>,
) -> Router {
    let hooks = hooks.into_iter().map(|h| (h.path.clone(), h)).collect();
    Router::new()
        .fallback(dispatch)
        .with_state(Arc::new(AppState {
            hooks,
            writer,
            clock,
            counters,
        }))
        // A flood of connections queues here instead of exhausting memory and the store.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            MAX_IN_FLIGHT,
        ))
}

/// Requests handled at once; more wait for a turn.
const MAX_IN_FLIGHT: usize = 1024;

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// Refuses a request: logs why (never a secret or a signature), counts it, answers JSON.
/// `endpoint` is the webhook's name, or the quoted path when no webhook has it.
fn refuse(
    app: &AppState,
    status: StatusCode,
    endpoint: Option<&str>,
    peer: SocketAddr,
    reason: &str,
) -> Response {
    app.counters.rejected.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        endpoint = endpoint.unwrap_or("-"),
        status = status.as_u16(),
        peer = %peer,
        reason,
        "webhook delivery refused"
    );
    answer(status, json!({ "error": reason }))
}

async fn dispatch(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let path = req.uri().path();
    if path == HEALTH_PATH {
        if req.method() == Method::GET || req.method() == Method::HEAD {
            return answer(StatusCode::OK, json!({ "status": "ok" }));
        }
        let mut r = refuse(&app, StatusCode::METHOD_NOT_ALLOWED, None, peer, "use GET");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let Some(hook) = app.hooks.get(path).cloned() else {
        // The path is the sender's text: quoted and cut short before it reaches a log.
        let shown: String = format!("{path:?}").chars().take(200).collect();
        return refuse(
            &app,
            StatusCode::NOT_FOUND,
            Some(&shown),
            peer,
            "no webhook at this path",
        );
    };
    if req.method() != Method::POST {
        let mut r = refuse(
            &app,
            StatusCode::METHOD_NOT_ALLOWED,
            Some(&hook.name),
            peer,
            "webhooks are delivered with POST",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let (parts, body) = req.into_parts();
    let too_big = format!("body is over the {} byte limit", hook.max_body_bytes);
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > hook.max_body_bytes as u64) {
        let r = refuse(
            &app,
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(&hook.name),
            peer,
            &too_big,
        );
        return close_after(r);
    }
    let body =
        match tokio::time::timeout(BODY_TIMEOUT, read_limited(body, hook.max_body_bytes)).await {
            Ok(Ok(b)) => b,
            Ok(Err(ReadError::TooLarge)) => {
                let r = refuse(
                    &app,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Some(&hook.name),
                    peer,
                    &too_big,
                );
                return close_after(r);
            }
            Ok(Err(ReadError::Broken)) => {
                let r = refuse(
                    &app,
                    StatusCode::BAD_REQUEST,
                    Some(&hook.name),
                    peer,
                    "the body could not be read",
                );
                return close_after(r);
            }
            Err(_) => {
                let r = refuse(
                    &app,
                    StatusCode::REQUEST_TIMEOUT,
                    Some(&hook.name),
                    peer,
                    "the body was not sent in time",
                );
                return close_after(r);
            }
        };
    let verified = match hook
        .verifier
        .verify(&parts.headers, &body, app.clock.now_secs())
    {
        Ok(v) => v,
        Err(rejection) => {
            return refuse(
                &app,
                StatusCode::UNAUTHORIZED,
                Some(&hook.name),
                peer,
                &rejection.to_string(),
            );
        }
    };
    let extracted = match event::extract(&hook, &parts.headers, &body, &verified) {
        Ok(e) => e,
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            return refuse(&app, status, Some(&hook.name), peer, &e.to_string());
        }
    };
    let event_id = extracted.event_id.clone();
    let new = NewEvent {
        webhook: hook.name.clone(),
        event_id: extracted.event_id,
        received_at_ms: app.clock.now_millis(),
        sink: hook.sink.clone(),
        view: hook.latest.as_ref().map(|l| l.view.clone()),
        key: extracted.key,
        version: extracted.version,
        record: extracted.record,
        body: body.to_vec(),
    };
    match app.writer.insert(new).await {
        Ok(Inserted::Stored(seq)) => {
            app.counters.stored.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(webhook = %hook.name, event_id = %event_id, seq, source = ?extracted.id_source, "stored");
            answer(
                StatusCode::OK,
                json!({ "status": "stored", "event_id": event_id }),
            )
        }
        Ok(Inserted::Duplicate) => {
            app.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(webhook = %hook.name, event_id = %event_id, "already processed");
            answer(
                StatusCode::OK,
                json!({ "status": "already_processed", "event_id": event_id }),
            )
        }
        Err(e) => {
            app.counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(webhook = %hook.name, error = %e, "a verified delivery could not be stored; answered 503 so the sender retries");
            let mut r = answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "the event could not be stored; retry later" }),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

/// Marks a response sent before the body was read to its end: the rest of the body is
/// still on the connection, so the client must not reuse it.
fn close_after(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

enum ReadError {
    TooLarge,
    Broken,
}

/// Reads a body, giving up as soon as it grows past `max` bytes.
async fn read_limited(mut body: Body, max: usize) -> Result<bytes::Bytes, ReadError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| ReadError::Broken)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(ReadError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
