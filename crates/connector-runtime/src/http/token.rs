//! One request to a token or login endpoint: sent with the client that follows no
//! redirect (what it carries belongs to that URL alone), its body read under a small limit,
//! its refusals turned into errors that say what to do and quote no secret.

use std::time::Duration;

use reqwest::RequestBuilder;
use serde_json::Value;
use tokio::time::Instant;

use super::auth::TokenError;
use super::body::{BodyError, read_limited, show_bytes};

/// Largest token or login response read: a token response is a few hundred bytes.
pub const MAX_TOKEN_RESPONSE: u64 = 1024 * 1024;

/// Replace a token this long before it expires.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// Longest lifetime believed from a response (a bigger number is treated as this).
const MAX_LIFETIME_SECS: f64 = 1e9;

/// A refused request: the status and the OAuth2 `error` code, when the body has a plain one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The HTTP status.
    pub status: u16,
    /// The `error` field (e.g. `invalid_grant`), when it is a short code.
    pub error: Option<String>,
}

/// Sends `req` to `url` (`what` names the exchange in errors, e.g. `OAuth2 token request`)
/// and returns the JSON body of a 2xx. A 4xx other than 429 is `Err(Ok(refused))` so the
/// caller can say what to do; everything else is a [`TokenError`].
pub async fn exchange(
    req: RequestBuilder,
    url: &str,
    what: &str,
) -> Result<Value, Result<Refused, TokenError>> {
    let resp = req.send().await.map_err(|e| {
        Err(TokenError::transient(format!(
            "{what} to {url} failed: {}",
            e.without_url()
        )))
    })?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(Err(TokenError::fatal(format!(
            "{what} to {url} answered {status} (a redirect); what it sends goes to that URL only, so set it to the final URL"
        ))));
    }
    let body = match read_limited(resp, MAX_TOKEN_RESPONSE).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { limit }) => {
            return Err(Err(TokenError::fatal(format!(
                "the response to the {what} to {url} is larger than {}: not a token response",
                show_bytes(limit)
            ))));
        }
        Err(BodyError::Cut(e)) => {
            return Err(Err(TokenError::transient(format!(
                "the response to the {what} to {url} was cut short: {}",
                e.without_url()
            ))));
        }
    };
    if status.is_client_error() && status.as_u16() != 429 {
        return Err(Ok(Refused {
            status: status.as_u16(),
            error: error_code(&body),
        }));
    }
    if !status.is_success() {
        return Err(Err(TokenError::transient(format!(
            "{what} to {url} answered {status}"
        ))));
    }
    serde_json::from_slice(&body).map_err(|_| {
        Err(TokenError::transient(format!(
            "the response to the {what} to {url} is not JSON"
        )))
    })
}

/// The OAuth2 `error` code of a refusal (RFC 6749 5.2), when it is a plain short word:
/// anything else is the server's text and is not quoted.
fn error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let code = v.get("error")?.as_str()?;
    let plain = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    plain.then(|| code.to_owned())
}

/// The instant a token that lives `seconds` from now expires; None for no usable number.
pub fn expiry_in(seconds: Option<&Value>, now: Instant) -> Option<Instant> {
    let s = seconds.and_then(|v| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    })?;
    (s.is_finite() && s >= 0.0).then(|| now + Duration::from_secs_f64(s.min(MAX_LIFETIME_SECS)))
}

/// Whether a token that expires at `expires` may still be sent at `now`.
pub fn usable(expires: Option<Instant>, now: Instant) -> bool {
    expires.is_none_or(|e| now + EXPIRY_MARGIN < e)
}

/// A token field of a response as text, or an error that names the field and what to do.
pub fn text_field(json: &Value, field: &str, what: &str, url: &str) -> Result<String, TokenError> {
    match json.get(field).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s.to_owned()),
        _ => Err(TokenError::fatal(format!(
            "the response to the {what} to {url} has no `{field}`: it is not a token response (check the token URL)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_quoted_only_when_plain() {
        assert_eq!(
            error_code(br#"{"error":"invalid_grant"}"#).as_deref(),
            Some("invalid_grant")
        );
        assert_eq!(error_code(br#"{"error":"token rt-123 is bad"}"#), None);
        assert_eq!(error_code(b"not json"), None);
        assert_eq!(error_code(br#"{"error":7}"#), None);
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_keeps_a_margin_and_reads_numbers_or_text() {
        let now = Instant::now();
        let e = expiry_in(Some(&serde_json::json!(3600)), now);
        assert!(usable(e, now));
        assert!(usable(e, now + Duration::from_secs(3569)));
        assert!(!usable(e, now + Duration::from_secs(3571)));
        let short = expiry_in(Some(&serde_json::json!("10")), now);
        assert!(!usable(short, now), "under the margin: replaced at once");
        assert_eq!(expiry_in(Some(&serde_json::json!(-1)), now), None);
        assert_eq!(expiry_in(None, now), None);
        assert!(usable(None, now));
    }
}
