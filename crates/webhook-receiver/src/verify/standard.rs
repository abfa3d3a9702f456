//! `standard_webhooks`: Standard Webhooks 1.0. Headers `webhook-id`, `webhook-timestamp`
//! and `webhook-signature` (space-separated `v1,<base64>` entries) over
//! `"<id>.<timestamp>.<raw body>"`, keyed with the base64 decoding of the text after `whsec_`.

use axum::http::{HeaderMap, HeaderName};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{Keys, Rejection, Verified, check_fresh, header_text, parse_unix};

const ID: HeaderName = HeaderName::from_static("webhook-id");
const TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// The HMAC key of a `whsec_<base64>` secret (the prefix is optional, as in the reference libraries).
pub(super) fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    match STANDARD.decode(b64) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err("not a Standard Webhooks secret: expected `whsec_` followed by base64".into()),
    }
}

pub(super) fn verify(
    keys: &Keys,
    tolerance_secs: i64,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<Verified, Rejection> {
    let id = header_text(headers, &ID)?;
    if id.is_empty() {
        return Err(Rejection::Malformed {
            header: ID.as_str().to_owned(),
            why: "empty",
        });
    }
    let ts_text = header_text(headers, &TIMESTAMP)?;
    let ts = parse_unix(ts_text, TIMESTAMP.as_str())?;
    let sigs = header_text(headers, &SIGNATURE)?;
    let mut candidates = Vec::new();
    for entry in sigs.split(' ').filter(|e| !e.is_empty()) {
        // Other versions (e.g. asymmetric `v1a`) are skipped; a bare `v1,` decodes to
        // nothing and can never match a 32-byte tag.
        if let Some(("v1", b64)) = entry.split_once(',')
            && let Ok(tag) = STANDARD.decode(b64)
        {
            candidates.push(tag);
        }
    }
    if candidates.is_empty() {
        return Err(Rejection::Mismatch);
    }
    let signed = [id.as_bytes(), b".", ts_text.as_bytes(), b".", body];
    if !keys.matches_any(&signed, &candidates) {
        return Err(Rejection::Mismatch);
    }
    check_fresh(ts, now_secs, tolerance_secs)?;
    Ok(Verified {
        message_id: Some(id.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Verifier;
    use super::*;
    use connector_spec::{Duration, Signature, Template};

    // The published test vector of the Standard Webhooks specification.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn verifier(secrets: &[&str]) -> Verifier {
        let sig = Signature::StandardWebhooks {
            secrets: vec![Template::new("unused")],
            tolerance: Duration::new("5m"),
        };
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        Verifier::new(&sig, &secrets).unwrap()
    }

    fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn published_vector_verifies() {
        let v = verifier(&[SECRET]);
        let got = v.verify(&headers(MSG_ID, &TS.to_string(), SIG), BODY, TS);
        assert_eq!(
            got,
            Ok(Verified {
                message_id: Some(MSG_ID.into())
            })
        );
    }

    #[test]
    fn several_signatures_in_one_header_and_rotation() {
        let v = verifier(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SECRET]);
        let junk = format!("v1,{}", STANDARD.encode([7u8; 32]));
        let header = format!("v1a,abc {junk} {SIG}");
        assert!(
            v.verify(&headers(MSG_ID, &TS.to_string(), &header), BODY, TS)
                .is_ok()
        );
    }

    #[test]
    fn bare_v1_wrong_lengths_and_tampering_fail() {
        let v = verifier(&[SECRET]);
        let ts = TS.to_string();
        for bad in [
            "v1,",
            "v1",
            "v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            "v1,tZ1I4/hD",
        ] {
            assert_eq!(
                v.verify(&headers(MSG_ID, &ts, bad), BODY, TS),
                Err(Rejection::Mismatch),
                "{bad}"
            );
        }
        assert_eq!(
            v.verify(&headers("msg_other", &ts, SIG), BODY, TS),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            v.verify(
                &headers(MSG_ID, &ts, SIG),
                br#"{"email":"x@example.com"}"#,
                TS
            ),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            v.verify(&headers(MSG_ID, &(TS + 1).to_string(), SIG), BODY, TS),
            Err(Rejection::Mismatch)
        );
        let mut missing = headers(MSG_ID, &ts, SIG);
        missing.remove("webhook-timestamp");
        assert_eq!(
            v.verify(&missing, BODY, TS),
            Err(Rejection::MissingHeader("webhook-timestamp".into()))
        );
    }

    #[test]
    fn stale_and_future_timestamps_fail() {
        let v = verifier(&[SECRET]);
        let h = headers(MSG_ID, &TS.to_string(), SIG);
        assert!(matches!(
            v.verify(&h, BODY, TS + 301),
            Err(Rejection::Stale { age_secs: 301, .. })
        ));
        assert!(matches!(
            v.verify(&h, BODY, TS - 301),
            Err(Rejection::Stale { .. })
        ));
        assert!(v.verify(&h, BODY, TS - 299).is_ok());
    }

    #[test]
    fn a_secret_that_decodes_to_nothing_is_refused() {
        assert!(decode_secret("whsec_").is_err());
        assert!(decode_secret("").is_err());
        assert_eq!(decode_secret("whsec_AQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(decode_secret("AQID").unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn secret_must_be_base64() {
        let sig = Signature::StandardWebhooks {
            secrets: vec![Template::new("unused")],
            tolerance: Duration::new("5m"),
        };
        let err = Verifier::new(&sig, &["whsec_not base64!".to_owned()]).unwrap_err();
        assert!(!err.to_string().contains("not base64!"), "{err}");
    }
}
