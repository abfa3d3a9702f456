//! What every data request goes through, in this order: the request log, hooks, the scripted
//! fault (if one matches), the rate limit, bearer auth, the handler, the rate-limit headers,
//! and the faults that damage the answer on its way out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth;
use crate::error::ApiError;
use crate::faults::Fault;
use crate::ratelimit::Decision;
use crate::reqlog::Arrival;
use crate::state::DemoState;

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AbortConnection;

/// Header of the remaining requests in the window.
pub const REMAINING: &str = "x-ratelimit-remaining";
/// Header of the window's reset, unix seconds.
pub const RESET: &str = "x-ratelimit-reset";

/// Time between the part of a body that is sent and the failure, so the part is flushed first.
const FLUSH_PAUSE: Duration = Duration::from_millis(50);

fn abort() -> Response {
    let mut resp = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    resp.extensions_mut().insert(AbortConnection);
    resp
}

fn unauthorized() -> Response {
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong bearer token: send `Authorization: Bearer <token>`",
    )
    .into_response();
    resp.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

fn too_many(d: &Decision) -> Response {
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("rate limit reached: retry in {} s", d.retry_after),
    )
    .into_response();
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(d.retry_after));
    resp
}

fn set_rate_headers(resp: &mut Response, remaining: u64, reset: u64) {
    let h = resp.headers_mut();
    h.insert(
        HeaderName::from_static(REMAINING),
        HeaderValue::from(remaining),
    );
    h.insert(HeaderName::from_static(RESET), HeaderValue::from(reset));
}

fn scripted_status(code: u16, headers: &[(String, String)], body: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = if body.is_empty() {
        ApiError::new(status, "injected", format!("injected fault: status {code}")).into_response()
    } else {
        let mut r = Response::new(Body::from(body.to_string()));
        *r.status_mut() = status;
        let kind = if body.trim_start().starts_with(['{', '[']) {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
        r
    };
    for (name, value) in headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                resp.headers_mut().append(n, v);
            }
            _ => {
                tracing::warn!(header = %name, "scripted fault header ignored: not a valid header")
            }
        }
    }
    resp
}

fn half(body: &Bytes) -> Bytes {
    body.slice(0..(body.len() / 2).max(body.len().min(1)))
}

/// Sends the first half of the body, then fails the body stream so the connection is reset.
fn drop_mid_body(resp: Response, body: Bytes) -> Response {
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    let part = half(&body);
    let stream = futures::stream::unfold(0u8, move |step| {
        let part = part.clone();
        async move {
            match step {
                0 => Some((Ok(part), 1)),
                1 => {
                    tokio::time::sleep(FLUSH_PAUSE).await;
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "injected fault: connection dropped mid-body",
                        )),
                        2,
                    ))
                }
                _ => None,
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Promises the whole body in `Content-Length`, sends half, then ends: the server closes the
/// connection and the client sees an early end of the body.
fn truncated(resp: Response, body: Bytes) -> Response {
    let (mut parts, _) = resp.into_parts();
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let part = half(&body);
    let stream = futures::stream::unfold(0u8, move |step| {
        let part = part.clone();
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(part), 1)),
                1 => {
                    tokio::time::sleep(FLUSH_PAUSE).await;
                    None
                }
                _ => None,
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// A complete, well-framed answer whose JSON is cut in the middle.
fn cut_json(resp: Response, body: Bytes) -> Response {
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(half(&body)))
}

async fn buffered(resp: Response) -> (Response, Bytes) {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    (Response::from_parts(parts, Body::empty()), bytes)
}

/// The middleware.
pub(crate) async fn pipeline(
    State(st): State<Arc<DemoState>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    if path == "/health" {
        return next.run(req).await;
    }
    let authorized = auth::is_authorized(req.headers(), st.token());
    if path.starts_with("/_admin") {
        return if authorized {
            next.run(req).await
        } else {
            unauthorized()
        };
    }
    let method = req.method().as_str().to_string();
    let seq = st.log.arrive(Arrival {
        method: method.clone(),
        path: path.clone(),
        query: req.uri().query().map(str::to_string),
        idempotency_key: req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        authorized,
    });
    st.run_hooks(&method, &path);
    let fault = st.faults.take(&method, &path);
    let fault_name = fault.as_ref().map(Fault::name);

    if let Some(Fault::Slow { delay }) = &fault {
        tokio::time::sleep(*delay).await;
    }
    if let Some(Fault::Close) = &fault {
        st.log.finish(seq, 0, fault_name);
        tracing::debug!(%method, %path, "fault: connection closed before the answer");
        return abort();
    }
    // Unauthenticated requests share one bucket, so junk tokens cannot grow the limiter.
    let key = if authorized { st.token() } else { "" };
    if let Some(Fault::Status {
        code,
        headers,
        body,
    }) = &fault
    {
        let mut resp = scripted_status(*code, headers, body);
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(REMAINING))
        {
            let d = st.limiter.check(key, SystemTime::now());
            set_rate_headers(&mut resp, d.remaining, d.reset);
        }
        st.log.finish(seq, *code, fault_name);
        tracing::debug!(%method, %path, status = code, "fault: scripted status");
        return resp;
    }

    let decision = st.limiter.check(key, SystemTime::now());
    let mut resp = if !decision.allowed {
        too_many(&decision)
    } else if !authorized {
        unauthorized()
    } else {
        next.run(req).await
    };
    match &fault {
        Some(Fault::RateLimitHeaders { remaining, reset }) => {
            set_rate_headers(&mut resp, *remaining, *reset)
        }
        _ => set_rate_headers(&mut resp, decision.remaining, decision.reset),
    }
    let status = resp.status().as_u16();
    let resp = match fault {
        Some(Fault::CommitThenDrop) => {
            st.log.finish(seq, 0, fault_name);
            tracing::debug!(%method, %path, "fault: handled, then connection closed before the answer");
            return abort();
        }
        Some(Fault::DropMidBody) => {
            let (resp, body) = buffered(resp).await;
            drop_mid_body(resp, body)
        }
        Some(Fault::Truncated) => {
            let (resp, body) = buffered(resp).await;
            truncated(resp, body)
        }
        Some(Fault::CutJson) => {
            let (resp, body) = buffered(resp).await;
            cut_json(resp, body)
        }
        _ => resp,
    };
    st.log.finish(seq, status, fault_name);
    tracing::debug!(%method, %path, status, fault = fault_name.unwrap_or("-"), "request");
    resp
}
