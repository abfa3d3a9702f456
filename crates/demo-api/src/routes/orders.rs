//! `GET /orders` (cursor pagination, `updated_at` window, stable sort) and
//! `GET /orders/{id}/items`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Value, json};

use super::params::Params;
use crate::cursor;
use crate::data::OrderQuery;
use crate::error::ApiError;
use crate::state::DemoState;

/// Largest page.
const MAX_LIMIT: u64 = 1000;

pub(crate) async fn list(
    State(st): State<Arc<DemoState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(raw.as_deref());
    let limit = p.int("limit", 100, 1, MAX_LIMIT)? as usize;
    match p.get("sort") {
        None | Some("updated_at" | "updated_at_asc") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "query parameter `sort` must be `updated_at` (ascending, ties by id), got `{other}`"
            )));
        }
    }
    let gte = p
        .timestamp("updated_at_gte")?
        .map(|t| t.unix_timestamp_nanos());
    let lt = p
        .timestamp("updated_at_lt")?
        .map(|t| t.unix_timestamp_nanos());
    let after = match p.get("cursor") {
        None | Some("") => None,
        Some(c) => Some(cursor::decode(c).map_err(|e| ApiError::bad_request(e.to_string()))?),
    };
    let (orders, more) = st.with_data(|d| {
        d.orders_page(&OrderQuery {
            after,
            gte,
            lt,
            limit,
        })
    });
    let next = match orders.last() {
        Some(last) if more => {
            let (t, id) = last.position();
            Value::String(cursor::encode(t, id))
        }
        _ => Value::Null,
    };
    Ok(Json(json!({ "orders": orders, "next_cursor": next })))
}

pub(crate) async fn items(
    State(st): State<Arc<DemoState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let items = id
        .parse::<u64>()
        .ok()
        .and_then(|id| st.items(id))
        .ok_or_else(|| ApiError::not_found(format!("no order with id `{id}`")))?;
    Ok(Json(json!({ "items": items })))
}
