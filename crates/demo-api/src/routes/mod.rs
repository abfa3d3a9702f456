//! The HTTP surface: data endpoints behind the request pipeline, the `/_admin` control API and
//! `/health`.

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};

use crate::error::ApiError;
use crate::state::DemoState;

mod admin;
mod catalog;
mod create;
mod events;
mod orders;
mod params;
pub(crate) mod pipeline;

/// The whole application.
pub(crate) fn router(state: Arc<DemoState>) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/orders", get(orders::list).post(create::create))
        .route("/orders/{id}/items", get(orders::items))
        .route("/products", get(catalog::products))
        .route("/customers", get(catalog::customers))
        .route("/events", get(events::list))
        .route(
            "/_admin/requests",
            get(admin::requests).delete(admin::clear_requests),
        )
        .route(
            "/_admin/faults",
            post(admin::push_fault).delete(admin::clear_faults),
        )
        .route(
            "/_admin/window",
            get(admin::window)
                .put(admin::set_window)
                .delete(admin::clear_window),
        )
        .route(
            "/_admin/orders",
            get(admin::orders).put(admin::upsert_order),
        )
        .route("/_admin/orders/insert", post(admin::insert_orders))
        .route("/_admin/orders/{id}/touch", post(admin::touch_order))
        .route("/_admin/created", get(admin::created))
        .route("/_admin/processing_delay", put(admin::processing_delay))
        .route("/_admin/webhooks", get(admin::webhook_stats))
        .route("/_admin/webhooks/demo", post(admin::webhook_demo))
        .fallback(|| async {
            ApiError::not_found(
                "no such endpoint: see the demo-api crate documentation for the routes",
            )
        })
        .layer(from_fn_with_state(state.clone(), pipeline::pipeline))
        .with_state(state)
}
