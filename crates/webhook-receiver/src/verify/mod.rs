//! Signature verification over the raw body, before anything parses it.
//!
//! Every scheme computes HMAC-SHA256 with every configured secret (so a rotation can
//! accept the old and the new one) and compares in constant time; a candidate signature
//! of the wrong length never matches.

mod hmac_header;
mod standard;
mod stripe;

use axum::http::{HeaderMap, HeaderName};
use connector_spec::{Signature, SignatureEncoding};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Length of an HMAC-SHA256 tag in bytes.
const TAG_LEN: usize = 32;

/// Why a delivery's signature was refused (always answered 401).
///
/// The messages name headers and reasons, never a secret or a signature value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A header the scheme needs is absent.
    #[error("missing header `{0}`")]
    MissingHeader(String),
    /// A header is present but not in the scheme's format.
    #[error("header `{header}` is malformed: {why}")]
    Malformed {
        /// The header.
        header: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No signature in the request matches any secret.
    #[error("signature does not match")]
    Mismatch,
    /// The signed timestamp is too far from now (a replay, or a badly wrong clock).
    #[error("timestamp is {age_secs}s away from now, beyond the {tolerance_secs}s tolerance")]
    Stale {
        /// Distance between the timestamp and now, in seconds.
        age_secs: i64,
        /// The configured tolerance, in seconds.
        tolerance_secs: i64,
    },
}

/// A webhook's `signature` section cannot be turned into a verifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    /// A secret cannot be used as a key; the message never holds the value.
    #[error("signature.secrets[{index}]: {why}")]
    Secret {
        /// Position of the secret in `secrets`.
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// The signature header is not a valid HTTP header name.
    #[error("signature.header: `{0}` is not a valid HTTP header name")]
    Header(String),
}

/// What a verified delivery told us besides being genuine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// The `webhook-id` of a Standard Webhooks delivery, a natural event id.
    pub message_id: Option<String>,
}

/// A webhook's signature scheme with its keys, ready to check deliveries.
#[derive(Debug, Clone)]
pub struct Verifier {
    scheme: Scheme,
}

#[derive(Debug, Clone)]
enum Scheme {
    Hmac {
        header: HeaderName,
        prefix: String,
        encoding: SignatureEncoding,
        keys: Keys,
    },
    Stripe {
        header: HeaderName,
        keys: Keys,
        tolerance_secs: i64,
    },
    Standard {
        keys: Keys,
        tolerance_secs: i64,
    },
}

impl Verifier {
    /// Builds the verifier of `signature` with its secrets already rendered, in order.
    pub fn new(signature: &Signature, secrets: &[String]) -> Result<Self, VerifierError> {
        let scheme = match signature {
            Signature::HmacSha256 {
                header,
                prefix,
                encoding,
                ..
            } => Scheme::Hmac {
                header: header_name(header)?,
                prefix: prefix.clone(),
                encoding: *encoding,
                keys: Keys::new(secrets, |s| Ok(s.as_bytes().to_vec()))?,
            },
            Signature::Stripe {
                header, tolerance, ..
            } => Scheme::Stripe {
                header: header_name(header)?,
                // Stripe keys are the `whsec_...` text itself, not its decoding.
                keys: Keys::new(secrets, |s| Ok(s.as_bytes().to_vec()))?,
                tolerance_secs: secs(tolerance.get()),
            },
            Signature::StandardWebhooks { tolerance, .. } => Scheme::Standard {
                keys: Keys::new(secrets, standard::decode_secret)?,
                tolerance_secs: secs(tolerance.get()),
            },
        };
        Ok(Self { scheme })
    }

    /// Checks a delivery's signature over its raw body at time `now_secs` (Unix seconds).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
    ) -> Result<Verified, Rejection> {
        match &self.scheme {
            Scheme::Hmac {
                header,
                prefix,
                encoding,
                keys,
            } => hmac_header::verify(header, prefix, *encoding, keys, headers, body),
            Scheme::Stripe {
                header,
                keys,
                tolerance_secs,
            } => stripe::verify(header, keys, *tolerance_secs, headers, body, now_secs),
            Scheme::Standard {
                keys,
                tolerance_secs,
            } => standard::verify(keys, *tolerance_secs, headers, body, now_secs),
        }
    }
}

fn header_name(name: &str) -> Result<HeaderName, VerifierError> {
    HeaderName::try_from(name).map_err(|_| VerifierError::Header(name.to_owned()))
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The HMAC-SHA256 keys of one webhook, keyed once at start-up.
#[derive(Clone)]
pub(crate) struct Keys(Vec<Hmac<Sha256>>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} secret(s))", self.0.len())
    }
}

impl Keys {
    fn new(
        secrets: &[String],
        to_key: impl Fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<Self, VerifierError> {
        if secrets.is_empty() {
            return Err(VerifierError::Secret {
                index: 0,
                why: "at least one secret is needed".into(),
            });
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for (index, secret) in secrets.iter().enumerate() {
            if secret.is_empty() {
                return Err(VerifierError::Secret {
                    index,
                    why: "the secret is empty".into(),
                });
            }
            let key = to_key(secret).map_err(|why| VerifierError::Secret { index, why })?;
            let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| VerifierError::Secret {
                index,
                why: "the secret cannot be used as an HMAC key".into(),
            })?;
            keys.push(mac);
        }
        Ok(Self(keys))
    }

    /// Whether any candidate tag equals the HMAC of `parts` (concatenated) under any key.
    ///
    /// Every key and every candidate is tried, whatever matched first, so the time
    /// taken does not tell which secret or which candidate matched.
    pub(crate) fn matches_any(&self, parts: &[&[u8]], candidates: &[Vec<u8>]) -> bool {
        let mut matched = subtle::Choice::from(0u8);
        for key in &self.0 {
            let mut mac = key.clone();
            for p in parts {
                mac.update(p);
            }
            let tag = mac.finalize().into_bytes();
            for c in candidates {
                // ct_eq on slices of different lengths is false (and says so at once, which
                // leaks only the length, a public fact of the scheme).
                if c.len() == TAG_LEN {
                    matched |= tag.as_slice().ct_eq(c.as_slice());
                }
            }
        }
        matched.into()
    }
}

/// The first value of a header as text; `Malformed` when it is not visible ASCII.
fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, Rejection> {
    let value = headers
        .get(name)
        .ok_or_else(|| Rejection::MissingHeader(name.as_str().to_owned()))?;
    value.to_str().map_err(|_| Rejection::Malformed {
        header: name.as_str().to_owned(),
        why: "not visible ASCII",
    })
}

/// Refuses a timestamp further than `tolerance_secs` from `now_secs`, in either direction:
/// a far-future timestamp would otherwise stay replayable for as long.
fn check_fresh(ts: i64, now_secs: i64, tolerance_secs: i64) -> Result<(), Rejection> {
    let age = now_secs.saturating_sub(ts).saturating_abs();
    if age > tolerance_secs {
        return Err(Rejection::Stale {
            age_secs: age,
            tolerance_secs,
        });
    }
    Ok(())
}

/// Parses a Unix timestamp made of ASCII digits only (no sign, no spaces, no fraction).
fn parse_unix(text: &str, header: &str) -> Result<i64, Rejection> {
    let malformed = || Rejection::Malformed {
        header: header.to_owned(),
        why: "the timestamp is not whole Unix seconds",
    };
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    text.parse().map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_whole_unix_seconds_of_at_most_18_digits() {
        assert_eq!(parse_unix("1649367553", "t"), Ok(1_649_367_553));
        assert_eq!(parse_unix("0", "t"), Ok(0));
        assert_eq!(
            parse_unix("999999999999999999", "t"),
            Ok(999_999_999_999_999_999)
        );
        for bad in [
            "",
            "1234567890123456789",
            "+1",
            "-1",
            " 1",
            "1.5",
            "1e9",
            "１",
        ] {
            assert!(
                matches!(parse_unix(bad, "t"), Err(Rejection::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn freshness_is_symmetric_and_inclusive_at_the_tolerance() {
        assert!(check_fresh(1000, 1300, 300).is_ok());
        assert!(check_fresh(1300, 1000, 300).is_ok());
        assert_eq!(
            check_fresh(1000, 1301, 300),
            Err(Rejection::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(check_fresh(1301, 1000, 300).is_err());
        assert!(check_fresh(i64::MIN, i64::MAX, 300).is_err());
    }

    #[test]
    fn keys_never_show_their_secrets() {
        let keys = Keys::new(&["s3cr3t".to_owned(), "other".to_owned()], |s| {
            Ok(s.as_bytes().to_vec())
        })
        .unwrap();
        assert_eq!(format!("{keys:?}"), "Keys(2 secret(s))");
        assert_eq!(secs(std::time::Duration::from_secs(300)), 300);
        assert_eq!(secs(std::time::Duration::from_secs(u64::MAX)), i64::MAX);
    }
}
