//! `/_admin`: the control API of the binary, the HTTP twin of the [`DemoState`] methods
//! (same bearer token as the data endpoints; never logged, limited or faulted).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::data::{Order, parse_ts};
use crate::error::ApiError;
use crate::faults::Fault;
use crate::state::DemoState;

type Answer = Result<Json<Value>, ApiError>;

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid admin request body: {e}")))
}

fn ok() -> Answer {
    Ok(Json(json!({ "ok": true })))
}

pub(crate) async fn requests(State(st): State<Arc<DemoState>>) -> Answer {
    Ok(Json(json!(st.requests())))
}

pub(crate) async fn clear_requests(State(st): State<Arc<DemoState>>) -> Answer {
    st.clear_requests();
    ok()
}

#[derive(Deserialize)]
pub(crate) struct FaultRequest {
    /// `"/orders"` or `"POST /orders"`.
    path: String,
    fault: Fault,
}

pub(crate) async fn push_fault(State(st): State<Arc<DemoState>>, b: Bytes) -> Answer {
    let req: FaultRequest = body(&b)?;
    st.push_fault(&req.path, req.fault);
    Ok(Json(json!({ "ok": true, "pending": st.pending_faults() })))
}

pub(crate) async fn clear_faults(State(st): State<Arc<DemoState>>) -> Answer {
    st.clear_faults();
    ok()
}

#[derive(Deserialize)]
pub(crate) struct WindowRequest {
    limit: u64,
    /// Unix seconds.
    reset_at: u64,
}

pub(crate) async fn set_window(State(st): State<Arc<DemoState>>, b: Bytes) -> Answer {
    let req: WindowRequest = body(&b)?;
    st.set_window(req.limit, UNIX_EPOCH + Duration::from_secs(req.reset_at));
    ok()
}

pub(crate) async fn window(State(st): State<Arc<DemoState>>) -> Answer {
    Ok(Json(json!({ "violations": st.window_violations() })))
}

pub(crate) async fn clear_window(State(st): State<Arc<DemoState>>) -> Answer {
    st.clear_window();
    ok()
}

pub(crate) async fn orders(State(st): State<Arc<DemoState>>) -> Answer {
    Ok(Json(json!(st.orders())))
}

pub(crate) async fn upsert_order(State(st): State<Arc<DemoState>>, b: Bytes) -> Answer {
    let order: Order = body(&b)?;
    Ok(Json(json!(st.upsert_order(order))))
}

#[derive(Deserialize)]
pub(crate) struct TouchRequest {
    /// RFC 3339; now when absent.
    updated_at: Option<String>,
}

pub(crate) async fn touch_order(
    State(st): State<Arc<DemoState>>,
    Path(id): Path<u64>,
    b: Bytes,
) -> Answer {
    let req: TouchRequest = if b.is_empty() {
        TouchRequest { updated_at: None }
    } else {
        body(&b)?
    };
    let at = match req.updated_at {
        Some(s) => parse_ts(&s)
            .map_err(|e| ApiError::bad_request(format!("`updated_at` must be RFC 3339: {e}")))?,
        None => st.with_data(|d| d.fresh_timestamp()),
    };
    st.touch_order(id, at)
        .map(|o| Json(json!(o)))
        .ok_or_else(|| ApiError::not_found(format!("no order with id {id}")))
}

#[derive(Deserialize)]
pub(crate) struct CountRequest {
    count: usize,
}

pub(crate) async fn insert_orders(State(st): State<Arc<DemoState>>, b: Bytes) -> Answer {
    let req: CountRequest = body(&b)?;
    Ok(Json(json!(st.insert_orders(req.count))))
}

pub(crate) async fn created(State(st): State<Arc<DemoState>>) -> Answer {
    let created = st.created_orders();
    Ok(Json(json!({ "count": created.len(), "orders": created })))
}

#[derive(Deserialize)]
pub(crate) struct DelayRequest {
    ms: u64,
}

pub(crate) async fn processing_delay(State(st): State<Arc<DemoState>>, b: Bytes) -> Answer {
    let req: DelayRequest = body(&b)?;
    st.set_processing_delay(Duration::from_millis(req.ms));
    ok()
}

pub(crate) async fn webhook_stats(State(st): State<Arc<DemoState>>) -> Answer {
    Ok(Json(json!(st.webhook_stats())))
}

pub(crate) async fn webhook_demo(State(st): State<Arc<DemoState>>, b: Bytes) -> Answer {
    let req: CountRequest = body(&b)?;
    let changed = st.webhook_demo(req.count);
    Ok(Json(json!({ "changed": changed.len() })))
}
