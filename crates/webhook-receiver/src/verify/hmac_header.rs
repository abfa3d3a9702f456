//! `hmac_sha256`: HMAC-SHA256 of the raw body in one header, GitHub's
//! `X-Hub-Signature-256: sha256=<hex>` style, hex or base64.

use axum::http::{HeaderMap, HeaderName};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use connector_spec::SignatureEncoding;

use super::{Keys, Rejection, Verified, header_text};

pub(super) fn verify(
    header: &HeaderName,
    prefix: &str,
    encoding: SignatureEncoding,
    keys: &Keys,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Verified, Rejection> {
    let text = header_text(headers, header)?.trim();
    let malformed = |why| Rejection::Malformed {
        header: header.as_str().to_owned(),
        why,
    };
    let encoded = text
        .strip_prefix(prefix)
        .ok_or_else(|| malformed("it does not start with the configured prefix"))?;
    let candidate = match encoding {
        SignatureEncoding::Hex => hex::decode(encoded).map_err(|_| malformed("not hexadecimal"))?,
        SignatureEncoding::Base64 => STANDARD
            .decode(encoded)
            .map_err(|_| malformed("not base64"))?,
    };
    if keys.matches_any(&[body], &[candidate]) {
        Ok(Verified::default())
    } else {
        Err(Rejection::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Verifier;
    use super::*;
    use connector_spec::{Signature, Template};

    fn verifier(encoding: SignatureEncoding, secrets: &[&str]) -> Verifier {
        let sig = Signature::HmacSha256 {
            header: "X-Hub-Signature-256".into(),
            prefix: "sha256=".into(),
            encoding,
            secrets: vec![Template::new("unused")],
        };
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        Verifier::new(&sig, &secrets).unwrap()
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-hub-signature-256", value.parse().unwrap());
        h
    }

    // GitHub's published example ("Validating webhook deliveries").
    const GH_SECRET: &str = "It's a Secret to Everybody";
    const GH_BODY: &[u8] = b"Hello, World!";
    const GH_SIG: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_published_example() {
        let v = verifier(SignatureEncoding::Hex, &[GH_SECRET]);
        let ok = v.verify(&with(&format!("sha256={GH_SIG}")), GH_BODY, 0);
        assert_eq!(ok, Ok(Verified::default()));
        // Uppercase hex is the same signature.
        let upper = format!("sha256={}", GH_SIG.to_uppercase());
        assert!(v.verify(&with(&upper), GH_BODY, 0).is_ok());
    }

    #[test]
    fn tampered_body_wrong_secret_and_bad_headers_fail() {
        let v = verifier(SignatureEncoding::Hex, &[GH_SECRET]);
        let good = format!("sha256={GH_SIG}");
        assert_eq!(
            v.verify(&with(&good), b"Hello, World?", 0),
            Err(Rejection::Mismatch)
        );
        let other = verifier(SignatureEncoding::Hex, &["another secret"]);
        assert_eq!(
            other.verify(&with(&good), GH_BODY, 0),
            Err(Rejection::Mismatch)
        );
        assert!(matches!(
            v.verify(&HeaderMap::new(), GH_BODY, 0),
            Err(Rejection::MissingHeader(_))
        ));
        assert!(matches!(
            v.verify(&with(GH_SIG), GH_BODY, 0),
            Err(Rejection::Malformed { .. })
        ));
        assert!(matches!(
            v.verify(&with("sha256=zz"), GH_BODY, 0),
            Err(Rejection::Malformed { .. })
        ));
        // A truncated or empty signature never matches.
        assert_eq!(
            v.verify(&with(&format!("sha256={}", &GH_SIG[..32])), GH_BODY, 0),
            Err(Rejection::Mismatch)
        );
        assert_eq!(
            v.verify(&with("sha256="), GH_BODY, 0),
            Err(Rejection::Mismatch)
        );
    }

    #[test]
    fn rotation_accepts_every_secret() {
        let v = verifier(SignatureEncoding::Hex, &["new secret", GH_SECRET]);
        assert!(
            v.verify(&with(&format!("sha256={GH_SIG}")), GH_BODY, 0)
                .is_ok()
        );
    }

    #[test]
    fn base64_encoding() {
        let tag = hex::decode(GH_SIG).unwrap();
        let v = verifier(SignatureEncoding::Base64, &[GH_SECRET]);
        let value = format!("sha256={}", STANDARD.encode(tag));
        assert!(v.verify(&with(&value), GH_BODY, 0).is_ok());
        let hex_given = format!("sha256={GH_SIG}");
        assert!(v.verify(&with(&hex_given), GH_BODY, 0).is_err());
    }
}
