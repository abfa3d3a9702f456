//! Errors of the library, and the JSON error bodies the API answers with.

use std::net::SocketAddr;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::sign::SignError;

/// Why the demo server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (pick another address or port 0)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The server's own tokio runtime or thread could not be started.
    #[error("cannot start the demo server's runtime: {0}")]
    Runtime(std::io::Error),
    /// A configuration value is unusable.
    #[error("invalid demo-api configuration: {0}")]
    Config(String),
    /// The webhook secret cannot be used with the chosen scheme.
    #[error("webhook signing: {0}")]
    Sign(#[from] SignError),
}

/// An error answer: a status and a JSON body `{"error": code, "message": text}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// Short machine-readable code, e.g. `bad_request`.
    pub code: &'static str,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl ApiError {
    /// An error answer with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400 answer.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A 404 answer.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.code, "message": self.message })),
        )
            .into_response()
    }
}
