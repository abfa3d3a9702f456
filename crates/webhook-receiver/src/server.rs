//! The HTTP side: one handler that routes by exact path, reads the body within the
//! webhook's size limit and the rate rule, verifies, extracts, stores, and answers.
//!
//! `/health` is answered before any limit. A delivery counts against its peer's request
//! cap while it is read; it takes one of the `max_in_flight` slots only once its body is
//! complete, so a slow body never holds a slot genuine deliveries need.
//!
//! Routing is done here rather than by axum's router so that a webhook path is matched
//! literally (a `{` in it is not a parameter) and every refusal (404, 405, 413, ...) goes
//! through the same logging.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::body::{self, ReadError};
use crate::clock::SharedClock;
use crate::event;
use crate::hooks::{HEALTH_PATH, Hook};
use crate::limits::{Limits, PeerCounts};
use crate::store::{Inserted, NewEvent, Writer};

/// Longest a complete delivery waits for a slot before it is answered 503: slots are
/// held only for verify and store, so a long wait means the store is stalled.
const SLOT_WAIT: Duration = Duration::from_secs(10);

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
    /// Slots for verify and store.
    slots: Arc<Semaphore>,
    /// Requests per peer address.
    per_peer: Arc<PeerCounts>,
    /// Bytes of bodies held at once.
    budget: Arc<Semaphore>,
    limits: Limits,
}

/// The receiver's routes: every webhook path, and `GET /health`.
pub fn router(
    hooks: Vec<Arc<Hook>>,
    writer: Writer,
    clock: SharedClock,
    counters: Arc<Counters>,
    limits: &Limits,
) -> Router {
    // The budget holds at least the largest body allowed, or that body could never pass.
    let largest = hooks.iter().map(|h| h.max_body_bytes).max().unwrap_or(0);
    let budget = limits.body_memory.max(largest);
    let hooks = hooks.into_iter().map(|h| (h.path.clone(), h)).collect();
    Router::new()
        .fallback(dispatch)
        .with_state(Arc::new(AppState {
            hooks,
            writer,
            clock,
            counters,
            slots: Arc::new(Semaphore::new(
                limits.max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
            )),
            per_peer: PeerCounts::new(limits.max_requests_per_peer),
            budget: Arc::new(Semaphore::new(budget.min(Semaphore::MAX_PERMITS))),
            limits: limits.clone(),
        }))
}

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
    // Counted from the headers on, so one address cannot keep many bodies trickling.
    let Some(_peer_turn) = app.per_peer.try_take(peer.ip()) else {
        // At debug, not warn: a flood of these must not become a flood of log lines.
        app.counters.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(webhook = %hook.name, peer = %peer, "too many requests from this address at once; answered 429");
        let mut r = answer(
            StatusCode::TOO_MANY_REQUESTS,
            json!({ "error": "too many requests from this address at once" }),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return close_after(r);
    };
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
    let rules = body::Rules {
        max: hook.max_body_bytes,
        min_rate: app.limits.body_min_rate,
        grace: app.limits.body_grace,
        timeout: app.limits.body_timeout,
    };
    let held = match body::read(body, rules, &app.budget).await {
        Ok(h) => h,
        Err(e) => return close_after(refuse_body(&app, &hook, peer, e, &too_big)),
    };
    let body = held.bytes.clone();
    // Only now, with the whole body in, does the delivery take a slot.
    let _slot = match tokio::time::timeout(SLOT_WAIT, app.slots.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            app.counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(webhook = %hook.name, "no slot free to store a delivery; answered 503 so the sender retries");
            return unavailable("the receiver is busy; retry later");
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
            unavailable("the event could not be stored; retry later")
        }
    }
}

/// A 503 with `Retry-After: 1`: nothing was stored and the sender should try again.
fn unavailable(reason: &str) -> Response {
    let mut r = answer(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": reason }));
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The answer to a body that could not be read under the rules.
fn refuse_body(
    app: &AppState,
    hook: &Hook,
    peer: SocketAddr,
    e: ReadError,
    too_big: &str,
) -> Response {
    let (status, reason) = match e {
        ReadError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, too_big.to_owned()),
        ReadError::Broken => (
            StatusCode::BAD_REQUEST,
            "the body could not be read".to_owned(),
        ),
        ReadError::TooSlow => (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body arrived slower than {} bytes/s",
                app.limits.body_min_rate
            ),
        ),
        ReadError::Timeout => (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body was not sent within {}s",
                app.limits.body_timeout.as_secs_f64()
            ),
        ),
        ReadError::NoMemory => {
            app.counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(webhook = %hook.name, peer = %peer, "bodies being read use up the memory budget; answered 503 so the sender retries");
            return unavailable("the receiver is busy; retry later");
        }
    };
    refuse(app, status, Some(&hook.name), peer, &reason)
}

/// Marks a response sent before the body was read to its end: the rest of the body is
/// still on the connection, so the client must not reuse it.
fn close_after(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
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
