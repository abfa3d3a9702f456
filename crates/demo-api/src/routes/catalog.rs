//! `GET /products` (offset/limit with a total) and `GET /customers` (page numbers).

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Value, json};

use super::params::Params;
use crate::error::ApiError;
use crate::state::DemoState;

pub(crate) async fn products(
    State(st): State<Arc<DemoState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(raw.as_deref());
    let offset = p.int("offset", 0, 0, u64::MAX)? as usize;
    let limit = p.int("limit", 50, 1, 1000)? as usize;
    let (page, total) = st.with_data(|d| {
        let all = d.products();
        let page: Vec<_> = all.iter().skip(offset).take(limit).cloned().collect();
        (page, all.len())
    });
    Ok(Json(json!({ "products": page, "total": total })))
}

pub(crate) async fn customers(
    State(st): State<Arc<DemoState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(raw.as_deref());
    let page = p.int("page", 1, 1, u64::MAX)? as usize;
    let per_page = p.int("per_page", 25, 1, 100)? as usize;
    let (list, total) = st.with_data(|d| {
        let all = d.customers();
        let list: Vec<_> = all
            .iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .cloned()
            .collect();
        (list, all.len())
    });
    let total_pages = total.div_ceil(per_page).max(1);
    Ok(Json(
        json!({ "customers": list, "page": page, "total_pages": total_pages }),
    ))
}
