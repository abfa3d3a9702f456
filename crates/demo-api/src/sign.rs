//! Webhook signatures, computed the way each scheme's specification describes, so that tests
//! and the webhook sender can sign deliveries independently of the runtime's verifier.
//!
//! - `hmac_sha256`: `X-Signature-SHA256: sha256=<hex HMAC-SHA256(secret, raw body)>` (GitHub style);
//! - `stripe`: `Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>`, the
//!   secret's bytes used as they are;
//! - `standard_webhooks`: `webhook-id`, `webhook-timestamp` and
//!   `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<ts>.<body>")>`, where the key is the
//!   base64 decoding of the secret after its `whsec_` prefix.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Header of the `hmac_sha256` scheme (the one `connectors/orders.yaml` verifies).
pub const HMAC_HEADER: &str = "X-Signature-SHA256";
/// Header of the `stripe` scheme.
pub const STRIPE_HEADER: &str = "Stripe-Signature";

/// A signing failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A Standard Webhooks secret that is not `whsec_` followed by base64.
    #[error(
        "the standard_webhooks secret is not valid base64 after its optional `whsec_` prefix; use a secret such as whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    )]
    BadStandardSecret,
    /// An unknown scheme name.
    #[error("unknown webhook scheme `{0}`: use hmac_sha256, stripe or standard_webhooks")]
    UnknownScheme(String),
    /// The HMAC could not be keyed (cannot happen for HMAC-SHA256, kept to avoid a panic path).
    #[error("the HMAC key was refused")]
    Key,
}

/// A webhook signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `X-Signature-SHA256: sha256=<hex>` over the raw body.
    #[default]
    HmacSha256,
    /// `Stripe-Signature: t=<ts>,v1=<hex>` over `<ts>.<body>`.
    Stripe,
    /// Standard Webhooks 1.0.
    StandardWebhooks,
}

impl FromStr for Scheme {
    type Err = SignError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hmac_sha256" => Ok(Scheme::HmacSha256),
            "stripe" => Ok(Scheme::Stripe),
            "standard_webhooks" => Ok(Scheme::StandardWebhooks),
            other => Err(SignError::UnknownScheme(other.to_string())),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::HmacSha256 => "hmac_sha256",
            Scheme::Stripe => "stripe",
            Scheme::StandardWebhooks => "standard_webhooks",
        })
    }
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 32], SignError> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| SignError::Key)?;
    for part in parts {
        mac.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

/// The `hmac_sha256` header value: `sha256=<lowercase hex>` of the raw body.
pub fn hmac_sha256_header(secret: &str, body: &[u8]) -> Result<String, SignError> {
    let mac = hmac_sha256(secret.as_bytes(), &[body])?;
    Ok(format!("sha256={}", hex::encode(mac)))
}

/// The `Stripe-Signature` header value `t=<timestamp>,v1=<hex>`.
pub fn stripe_signature(secret: &str, timestamp: i64, body: &[u8]) -> Result<String, SignError> {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), b".", body])?;
    Ok(format!("t={ts},v1={}", hex::encode(mac)))
}

/// The HMAC key of a Standard Webhooks secret: base64-decoded after the optional `whsec_` prefix.
pub fn standard_webhooks_key(secret: &str) -> Result<Vec<u8>, SignError> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(b64)
        .map_err(|_| SignError::BadStandardSecret)
}

/// One `webhook-signature` entry, `v1,<base64>`, over `<msg_id>.<timestamp>.<body>`.
pub fn standard_webhooks_signature(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignError> {
    let key = standard_webhooks_key(secret)?;
    let ts = timestamp.to_string();
    let mac = hmac_sha256(&key, &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body])?;
    Ok(format!("v1,{}", STANDARD.encode(mac)))
}

/// Every header a delivery needs under `scheme`, as (name, value) pairs.
pub fn signature_headers(
    scheme: Scheme,
    secret: &str,
    event_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<Vec<(&'static str, String)>, SignError> {
    Ok(match scheme {
        Scheme::HmacSha256 => vec![(HMAC_HEADER, hmac_sha256_header(secret, body)?)],
        Scheme::Stripe => vec![(STRIPE_HEADER, stripe_signature(secret, timestamp, body)?)],
        Scheme::StandardWebhooks => vec![
            ("webhook-id", event_id.to_string()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                standard_webhooks_signature(secret, event_id, timestamp, body)?,
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_published_vector() {
        let sig = standard_webhooks_signature(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn standard_webhooks_tampered_body_changes_signature() {
        let sig = standard_webhooks_signature(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user2"}"#,
        )
        .unwrap();
        assert_ne!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn standard_webhooks_rejects_non_base64_secret() {
        assert_eq!(
            standard_webhooks_key("whsec_not base64!"),
            Err(SignError::BadStandardSecret)
        );
    }

    #[test]
    fn github_published_vector() {
        // From GitHub's "Validating webhook deliveries" documentation.
        assert_eq!(
            hmac_sha256_header("It's a Secret to Everybody", b"Hello, World!").unwrap(),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn stripe_computed_example() {
        // Expected value computed with Python's hmac module: the key is the secret's bytes as
        // they are (not base64-decoded), the content `<ts>.<body>`.
        assert_eq!(
            stripe_signature(
                "whsec_test_secret",
                1700000000,
                br#"{"id":"evt_1","type":"order.updated"}"#
            )
            .unwrap(),
            "t=1700000000,v1=7604071ecfd4745ed7c322a0f510dab96ff2547011795173d5797cc05861011c"
        );
    }

    #[test]
    fn headers_per_scheme() {
        let h =
            signature_headers(Scheme::StandardWebhooks, "whsec_AAAA", "evt_1", 5, b"{}").unwrap();
        let names: Vec<_> = h.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
        let h = signature_headers(Scheme::HmacSha256, "s", "evt_1", 5, b"{}").unwrap();
        assert_eq!(h[0].0, HMAC_HEADER);
        assert!(h[0].1.starts_with("sha256="));
    }

    #[test]
    fn scheme_names_round_trip() {
        for s in ["hmac_sha256", "stripe", "standard_webhooks"] {
            assert_eq!(s.parse::<Scheme>().unwrap().to_string(), s);
        }
        assert!("github".parse::<Scheme>().is_err());
    }
}
