//! Bearer authentication: `Authorization: Bearer <token>` on every data endpoint.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// The token of an `Authorization: Bearer <token>` header (scheme name case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether the request carries `expected`; compared in constant time so response timing does
/// not reveal how much of a guess was right.
pub fn is_authorized(headers: &HeaderMap, expected: &str) -> bool {
    bearer_token(headers).is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(&with("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&with("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&with("Basic abc")), None);
        assert_eq!(bearer_token(&with("Bearer ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
        assert!(is_authorized(&with("Bearer demo-token"), "demo-token"));
        assert!(!is_authorized(&with("Bearer demo-tokem"), "demo-token"));
        assert!(!is_authorized(&with("Bearer demo"), "demo-token"));
    }
}
