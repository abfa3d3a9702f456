//! `stripe`: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>...]` over `"<t>.<raw body>"`,
//! keyed with the `whsec_...` text as it is. Any matching `v1` passes; other schemes
//! (`v0`) are ignored, as Stripe's libraries do.

use axum::http::{HeaderMap, HeaderName};

use super::{Keys, Rejection, Verified, check_fresh, header_text, parse_unix};

pub(super) fn verify(
    header: &HeaderName,
    keys: &Keys,
    tolerance_secs: i64,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<Verified, Rejection> {
    let text = header_text(headers, header)?;
    let malformed = |why| Rejection::Malformed {
        header: header.as_str().to_owned(),
        why,
    };
    let mut timestamp: Option<&str> = None;
    let mut candidates = Vec::new();
    for item in text.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            // Two timestamps are ambiguous: which one was signed is the sender's word
            // against the header's order, so neither is trusted.
            "t" if timestamp.is_some() => return Err(malformed("more than one `t=` timestamp")),
            "t" => timestamp = Some(value),
            // An entry that is not hex cannot match; the others may.
            "v1" => {
                if let Ok(tag) = hex::decode(value) {
                    candidates.push(tag);
                }
            }
            _ => {}
        }
    }
    let t_text = timestamp.ok_or_else(|| malformed("no `t=` timestamp"))?;
    let ts = parse_unix(t_text, header.as_str())?;
    if candidates.is_empty() {
        return Err(malformed("no `v1=` signature"));
    }
    // The signed text uses the timestamp exactly as sent, not a re-formatting of it.
    if !keys.matches_any(&[t_text.as_bytes(), b".", body], &candidates) {
        return Err(Rejection::Mismatch);
    }
    check_fresh(ts, now_secs, tolerance_secs)?;
    Ok(Verified::default())
}

#[cfg(test)]
mod tests {
    use super::super::Verifier;
    use super::*;
    use connector_spec::{Duration, Signature, Template};

    const SECRET: &str = "whsec_test_secret";
    const T: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;
    // Computed independently: Python's hmac.new(b"whsec_test_secret",
    // b'1700000000.{"id":"evt_1","object":"event"}', sha256).hexdigest().
    const SIG: &str = "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd";

    fn verifier(secrets: &[&str]) -> Verifier {
        let sig = Signature::Stripe {
            header: "Stripe-Signature".into(),
            secrets: vec![Template::new("unused")],
            tolerance: Duration::new("5m"),
        };
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        Verifier::new(&sig, &secrets).unwrap()
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("stripe-signature", value.parse().unwrap());
        h
    }

    #[test]
    fn computed_example_verifies() {
        let v = verifier(&[SECRET]);
        assert!(v.verify(&with(&format!("t={T},v1={SIG}")), BODY, T).is_ok());
        // Several v1 entries and a v0: any v1 that matches passes.
        let many = format!("t={T},v1={},v0=abc,v1={SIG}", "00".repeat(32));
        assert!(v.verify(&with(&many), BODY, T + 10).is_ok());
    }

    #[test]
    fn the_key_is_not_base64_decoded() {
        // Same text without the prefix is another key altogether.
        let v = verifier(&["test_secret"]);
        assert_eq!(
            v.verify(&with(&format!("t={T},v1={SIG}")), BODY, T),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn tampering_staleness_and_format() {
        let v = verifier(&["whsec_rotated", SECRET]);
        let good = format!("t={T},v1={SIG}");
        assert!(v.verify(&with(&good), BODY, T).is_ok());
        assert_eq!(
            v.verify(&with(&good), br#"{"id":"evt_2","object":"event"}"#, T),
            Err(Rejection::Mismatch)
        );
        // The timestamp is signed: changing it breaks the signature.
        let moved = format!("t={},v1={SIG}", T + 1);
        assert_eq!(v.verify(&with(&moved), BODY, T), Err(Rejection::Mismatch));
        assert_eq!(
            v.verify(&with(&good), BODY, T + 301),
            Err(Rejection::Stale {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(v.verify(&with(&good), BODY, T + 300).is_ok());
        assert!(matches!(
            v.verify(&with(&good), BODY, T - 301),
            Err(Rejection::Stale { .. })
        ));
        for bad in [
            format!("v1={SIG}"),
            format!("t={T}"),
            format!("t=-5,v1={SIG}"),
            // A second timestamp, in either order around the signed one: refused, so a
            // relay that prepends or appends its own `t=` cannot pick the one checked.
            format!("t={T},v1={SIG},t={}", T + 1),
            format!("t={},t={T},v1={SIG}", T + 1),
            format!("t={T},t={T},v1={SIG}"),
        ] {
            assert!(
                matches!(
                    v.verify(&with(&bad), BODY, T),
                    Err(Rejection::Malformed { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            v.verify(&with(&format!("t={T},v1=")), BODY, T),
            Err(Rejection::Mismatch)
        );
    }
}
