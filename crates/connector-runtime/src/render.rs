//! Rendering the spec's templates, with errors that name the field.

use connector_spec::Template;
use serde::Serialize;

/// A template failed to render at run time (e.g. a value missing from a record).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RenderError {
    /// The spec field, e.g. `streams.orders.path`.
    pub field: String,
    /// What went wrong.
    pub message: String,
}

/// Renders `t` with `ctx`, naming `field` in the error.
pub fn render<S: Serialize>(t: &Template, ctx: S, field: &str) -> Result<String, RenderError> {
    t.render(ctx).map_err(|e| RenderError {
        field: field.to_owned(),
        message: e.to_string(),
    })
}
