//! The spec's webhooks, compiled for serving: secrets rendered into keys, where the event
//! id and the record come from, which file they go to, how the latest view is keyed.

use axum::http::HeaderName;
use connector_spec::{JsonPath, Signature, Spec};
use serde_json::Value;

use crate::error::SetupError;
use crate::verify::Verifier;

/// Path of the health endpoint, which no webhook may take.
pub const HEALTH_PATH: &str = "/health";

/// One webhook, ready to receive deliveries.
#[derive(Debug)]
pub struct Hook {
    /// Name in the spec.
    pub name: String,
    /// URL path served.
    pub path: String,
    /// Signature check with the rendered secrets.
    pub verifier: Verifier,
    /// JSONPath of the event id in the body.
    pub event_id: Option<JsonPath>,
    /// Header holding the event id.
    pub event_id_header: Option<HeaderName>,
    /// JSONPath of the record in the body; the whole body when absent.
    pub record: Option<JsonPath>,
    /// Output file stem: `<out>/<sink>.jsonl`.
    pub sink: String,
    /// The latest view, when `version_field` is set.
    pub latest: Option<Latest>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
}

/// How one webhook's records feed `<out>/<view>.latest.jsonl`.
#[derive(Debug, Clone)]
pub struct Latest {
    /// View name, the stream's name.
    pub view: String,
    /// Primary key fields of the stream.
    pub key: Vec<String>,
    /// Field ordering the versions of a record.
    pub version_field: String,
}

/// Compiles every webhook of `spec`; `context` is the template context (`{"config": {...}}`).
pub fn compile(spec: &Spec, context: &Value) -> Result<Vec<Hook>, SetupError> {
    if spec.webhooks.is_empty() {
        return Err(SetupError::NoWebhooks);
    }
    let mut hooks: Vec<Hook> = Vec::with_capacity(spec.webhooks.len());
    for (name, hook) in &spec.webhooks {
        let invalid = |field, message: String| SetupError::Invalid {
            webhook: name.clone(),
            field,
            message,
        };
        if hook.path == HEALTH_PATH {
            return Err(invalid(
                "path",
                format!("`{HEALTH_PATH}` is the receiver's health check; choose another path"),
            ));
        }
        if let Some(other) = hooks.iter().find(|h| h.path == hook.path) {
            return Err(invalid(
                "path",
                format!(
                    "`{}` is already served by webhook `{}`",
                    hook.path, other.name
                ),
            ));
        }
        let templates = match &hook.signature {
            Signature::HmacSha256 { secrets, .. }
            | Signature::Stripe { secrets, .. }
            | Signature::StandardWebhooks { secrets, .. } => secrets,
        };
        let mut secrets = Vec::with_capacity(templates.len());
        for (index, t) in templates.iter().enumerate() {
            let secret = t.render(context).map_err(|e| SetupError::Render {
                webhook: name.clone(),
                index,
                message: e.to_string(),
            })?;
            secrets.push(secret);
        }
        let verifier =
            Verifier::new(&hook.signature, &secrets).map_err(|source| SetupError::Verifier {
                webhook: name.clone(),
                source,
            })?;
        let event_id_header = match &hook.event_id_header {
            Some(h) => Some(HeaderName::try_from(h.as_str()).map_err(|_| {
                invalid(
                    "event_id_header",
                    format!("`{h}` is not a valid HTTP header name"),
                )
            })?),
            None => None,
        };
        let sink = hook.stream.clone().unwrap_or_else(|| name.clone());
        if !is_file_stem(&sink) {
            return Err(invalid(
                "stream",
                format!("`{sink}` cannot name an output file; use letters, digits, `_` and `-`"),
            ));
        }
        let latest = match &hook.version_field {
            None => None,
            Some(version_field) => {
                let stream = hook.stream.as_ref().and_then(|s| spec.streams.get(s));
                let key = stream.and_then(|s| s.primary_key.as_ref()).ok_or_else(|| {
                    invalid(
                        "version_field",
                        "the latest view needs the webhook's `stream` to have a `primary_key`"
                            .into(),
                    )
                })?;
                Some(Latest {
                    view: sink.clone(),
                    key: key.fields().iter().map(|f| (*f).to_owned()).collect(),
                    version_field: version_field.clone(),
                })
            }
        };
        hooks.push(Hook {
            name: name.clone(),
            path: hook.path.clone(),
            verifier,
            event_id: hook.event_id.clone(),
            event_id_header,
            record: hook.record.clone(),
            sink,
            latest,
            max_body_bytes: usize::try_from(hook.max_body_bytes).unwrap_or(usize::MAX),
        });
    }
    Ok(hooks)
}

fn is_file_stem(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}
