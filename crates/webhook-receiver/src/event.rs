//! What a verified delivery holds: its event id, its record, and the record's key and
//! version for the latest view. Checked here, at receipt, so that everything stored can
//! be written out later without a failure.

use axum::http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::hooks::Hook;
use crate::verify::Verified;
use crate::version::Version;

/// A delivery's content, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    /// The id that deduplicates deliveries of this webhook.
    pub event_id: String,
    /// Where the id came from, for the logs.
    pub id_source: IdSource,
    /// The record, compact JSON on one line.
    pub record: String,
    /// The record's primary key (compact JSON array), when the webhook has a latest view.
    pub key: Option<String>,
    /// The record's version (JSON), when the webhook has a latest view.
    pub version: Option<String>,
}

/// Where an event id was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// The `event_id` JSONPath.
    Body,
    /// The `event_id_header` header.
    Header,
    /// The Standard Webhooks `webhook-id` header.
    MessageId,
    /// No id anywhere: the SHA-256 of the body, which still dedupes identical redeliveries.
    BodyHash,
}

/// Why a genuine delivery's body cannot be used (stored nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON at all (400).
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// The `record` JSONPath selects nothing (422).
    #[error("body has no record at `{0}`")]
    NoRecord(String),
    /// The record lacks a primary key field needed by the latest view (422).
    #[error("record has no `{0}` (a primary key field of the stream)")]
    NoKey(String),
    /// The record's version is missing or cannot be ordered (422).
    #[error("record's `{0}` is missing, or is not a string or a number")]
    BadVersion(String),
}

impl BodyError {
    /// The HTTP status that answers it.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::NotJson(_) => 400,
            _ => 422,
        }
    }
}

/// Reads a verified delivery's event id and record.
pub fn extract(
    hook: &Hook,
    headers: &HeaderMap,
    body: &[u8],
    verified: &Verified,
) -> Result<Extracted, BodyError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
    let (event_id, id_source) = event_id(hook, headers, body, &doc, verified);
    let record = match &hook.record {
        None => &doc,
        Some(path) => path
            .first(&doc)
            .ok()
            .flatten()
            .ok_or_else(|| BodyError::NoRecord(path.source().to_owned()))?,
    };
    let (key, version) = match &hook.latest {
        None => (None, None),
        Some(latest) => {
            let mut parts = Vec::with_capacity(latest.key.len());
            for field in &latest.key {
                match record.get(field) {
                    Some(v) if !v.is_null() => parts.push(v),
                    _ => return Err(BodyError::NoKey(field.clone())),
                }
            }
            let version = record
                .get(&latest.version_field)
                .filter(|v| Version::from_value(v).is_some())
                .ok_or_else(|| BodyError::BadVersion(latest.version_field.clone()))?;
            (Some(to_json(&parts)), Some(version.to_string()))
        }
    };
    Ok(Extracted {
        event_id,
        id_source,
        record: record.to_string(),
        key,
        version,
    })
}

fn to_json(parts: &[&Value]) -> String {
    // Serialising plain JSON values to a string cannot fail.
    serde_json::to_string(parts).unwrap_or_default()
}

/// The event id: the body's `event_id`, else the `event_id_header`, else the Standard
/// Webhooks message id, else a hash of the body.
fn event_id(
    hook: &Hook,
    headers: &HeaderMap,
    body: &[u8],
    doc: &Value,
    verified: &Verified,
) -> (String, IdSource) {
    if let Some(path) = &hook.event_id
        && let Ok(Some(v)) = path.first(doc)
    {
        let id = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !id.is_empty() {
            return (id, IdSource::Body);
        }
    }
    if let Some(name) = &hook.event_id_header
        && let Some(id) = headers.get(name).and_then(|v| v.to_str().ok())
        && !id.trim().is_empty()
    {
        return (id.trim().to_owned(), IdSource::Header);
    }
    if let Some(id) = &verified.message_id {
        return (id.clone(), IdSource::MessageId);
    }
    (
        format!("sha256:{}", hex::encode(Sha256::digest(body))),
        IdSource::BodyHash,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::Latest;
    use crate::verify::Verifier;
    use connector_spec::{JsonPath, Signature, SignatureEncoding, Template};
    use serde_json::json;

    fn hook(event_id: Option<&str>, header: Option<&str>, latest: bool) -> Hook {
        let sig = Signature::HmacSha256 {
            header: "x-sig".into(),
            prefix: String::new(),
            encoding: SignatureEncoding::Hex,
            secrets: vec![Template::new("s")],
        };
        Hook {
            name: "h".into(),
            path: "/h".into(),
            verifier: Verifier::new(&sig, &["s".to_owned()]).unwrap(),
            event_id: event_id.map(JsonPath::new),
            event_id_header: header.map(|h| h.parse().unwrap()),
            record: Some(JsonPath::new("$.data")),
            sink: "orders".into(),
            latest: latest.then(|| Latest {
                view: "orders".into(),
                key: vec!["id".into()],
                version_field: "updated_at".into(),
            }),
            max_body_bytes: 1000,
        }
    }

    #[test]
    fn id_sources_in_order() {
        let body = json!({"id": "evt_1", "data": {"id": 1}}).to_string();
        let mut headers = HeaderMap::new();
        headers.insert("x-delivery", "d-1".parse().unwrap());
        let v = Verified::default();
        let got = extract(
            &hook(Some("$.id"), None, false),
            &headers,
            body.as_bytes(),
            &v,
        )
        .unwrap();
        assert_eq!(
            (got.event_id.as_str(), got.id_source),
            ("evt_1", IdSource::Body)
        );
        let got = extract(
            &hook(None, Some("x-delivery"), false),
            &headers,
            body.as_bytes(),
            &v,
        )
        .unwrap();
        assert_eq!(
            (got.event_id.as_str(), got.id_source),
            ("d-1", IdSource::Header)
        );
        let msg = Verified {
            message_id: Some("msg_1".into()),
        };
        let got = extract(&hook(None, None, false), &headers, body.as_bytes(), &msg).unwrap();
        assert_eq!(got.id_source, IdSource::MessageId);
        let got = extract(&hook(None, None, false), &headers, body.as_bytes(), &v).unwrap();
        assert_eq!(got.id_source, IdSource::BodyHash);
        assert!(got.event_id.starts_with("sha256:"));
        // A number id is its JSON text.
        let body = json!({"id": 42, "data": {}}).to_string();
        let got = extract(
            &hook(Some("$.id"), None, false),
            &headers,
            body.as_bytes(),
            &v,
        )
        .unwrap();
        assert_eq!(got.event_id, "42");
    }

    #[test]
    fn record_key_and_version() {
        let v = Verified::default();
        let h = hook(Some("$.id"), None, true);
        let body =
            json!({"id": "e", "data": {"id": 7, "updated_at": "2024-01-01T00:00:00Z", "x": 1}});
        let got = extract(&h, &HeaderMap::new(), body.to_string().as_bytes(), &v).unwrap();
        assert_eq!(
            got.record,
            r#"{"id":7,"updated_at":"2024-01-01T00:00:00Z","x":1}"#
        );
        assert_eq!(got.key.as_deref(), Some("[7]"));
        assert_eq!(got.version.as_deref(), Some(r#""2024-01-01T00:00:00Z""#));
    }

    #[test]
    fn bad_bodies() {
        let v = Verified::default();
        let h = hook(Some("$.id"), None, true);
        let e = |b: &str| extract(&h, &HeaderMap::new(), b.as_bytes(), &v).unwrap_err();
        assert_eq!(e("not json").status(), 400);
        assert_eq!(e(r#"{"id":"e"}"#), BodyError::NoRecord("$.data".into()));
        assert_eq!(
            e(r#"{"data":{"updated_at":"2024-01-01T00:00:00Z"}}"#),
            BodyError::NoKey("id".into())
        );
        assert_eq!(
            e(r#"{"data":{"id":1,"updated_at":null}}"#),
            BodyError::BadVersion("updated_at".into())
        );
        assert_eq!(e(r#"{"data":{"id":1}}"#).status(), 422);
    }
}
