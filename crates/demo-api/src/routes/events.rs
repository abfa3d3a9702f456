//! `GET /events`: a bare JSON array, the next page in an RFC 8288 `Link` header.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header::{HOST, LINK};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::params::Params;
use crate::error::ApiError;
use crate::state::DemoState;

pub(crate) async fn list(
    State(st): State<Arc<DemoState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw.as_deref());
    let limit = p.int("limit", 50, 1, 1000)?;
    let after = p.int("after", 0, 0, u64::MAX)?;
    let (events, more) = st.with_data(|d| d.events_after(after, limit as usize));
    // Links are absolute, built from the Host the client used, as real APIs do.
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| st.local_addr().map(|a| a.to_string()))
        .unwrap_or_else(|| "127.0.0.1".into());
    let base = format!("http://{host}/events");
    let mut links = Vec::new();
    if let (true, Some(last)) = (more, events.last()) {
        links.push(format!(
            "<{base}?limit={limit}&after={}>; rel=\"next\"",
            last.id
        ));
    }
    links.push(format!("<{base}?limit={limit}>; rel=\"first\""));
    let mut resp = Json(events).into_response();
    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
        resp.headers_mut().insert(LINK, v);
    }
    Ok(resp)
}
