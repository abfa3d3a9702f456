//! `POST /orders`: an idempotent create, the server side of the IETF Idempotency-Key draft.
//! No key: 400. Same key and same body: the stored answer again, with
//! `Idempotent-Replayed: true`. Same key, other body: 422. Same key while the first request is
//! still being processed: 409.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::data::NewOrder;
use crate::error::ApiError;
use crate::idempotency::{Begin, StoredResponse, fingerprint};
use crate::state::DemoState;

/// Header marking a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let raw = headers.get("idempotency-key").ok_or_else(|| {
        ApiError::bad_request("the Idempotency-Key header is required on POST /orders")
    })?;
    let text = raw
        .to_str()
        .map_err(|_| ApiError::bad_request("the Idempotency-Key header must be ASCII text"))?
        .trim();
    // The draft writes the key as a structured-field string ("..."); bare keys are accepted too.
    let key = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::bad_request(
            "the Idempotency-Key header must hold 1 to 255 characters",
        ));
    }
    Ok(key.to_string())
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub(crate) async fn create(
    State(st): State<Arc<DemoState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let new = NewOrder::from_json(&value).map_err(ApiError::bad_request)?;
    let fp = fingerprint("POST", "/orders", &body);
    match st.idempotency.begin(&key, fp, Instant::now()) {
        Begin::Replay(stored) => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED);
            let mut resp = json_response(status, stored.body);
            resp.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            Ok(resp)
        }
        Begin::InFlight => Err(ApiError::new(
            StatusCode::CONFLICT,
            "request_in_progress",
            "a request with this Idempotency-Key is still being processed; retry later",
        )),
        Begin::Mismatch => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        )),
        Begin::Proceed => {
            // Processed on its own task: a client that hangs up mid-way does not cancel the
            // write, and the key never stays "in flight" forever.
            let worker = st.clone();
            let task_key = key.clone();
            let task = tokio::spawn(async move {
                let delay = worker.processing_delay();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let order = worker.create_order(new);
                let body = Bytes::from(serde_json::to_vec(&order).unwrap_or_default());
                let stored = StoredResponse {
                    status: StatusCode::CREATED.as_u16(),
                    body: body.clone(),
                };
                worker
                    .idempotency
                    .complete(&task_key, fp, stored, Instant::now());
                body
            });
            match task.await {
                Ok(body) => Ok(json_response(StatusCode::CREATED, body)),
                Err(e) => {
                    st.idempotency.abandon(&key);
                    Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        format!("the order could not be created: {e}"),
                    ))
                }
            }
        }
    }
}
