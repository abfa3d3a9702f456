//! A JWT signed from a key in the configuration (RS256, ES256, HS256): sent as the bearer
//! token (GitHub Apps) or exchanged at a token URL for an access token (RFC 7523, Google
//! service accounts).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use connector_spec::auth::JwtAlgorithm;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::auth::TokenError;
use super::token;

/// What the exchange is called in messages.
const WHAT: &str = "JWT bearer token request";

/// The grant type of a JWT exchanged for an access token (RFC 7523 section 2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A signing key and the claims to sign, with the cached token.
pub struct Jwt {
    pub(super) algorithm: Algorithm,
    pub(super) key: EncodingKey,
    pub(super) key_id: Option<String>,
    pub(super) claims: Map<String, Value>,
    pub(super) lifetime: Duration,
    pub(super) backdate: Duration,
    /// Token URL and extra form fields, when the JWT is exchanged.
    pub(super) exchange: Option<(String, Vec<(String, String)>)>,
    /// The bearer token sent (the JWT, or the access token) and when it expires.
    pub(super) cached: Mutex<Option<(String, Option<Instant>)>>,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of every debug print.
        f.debug_struct("Jwt")
            .field("algorithm", &self.algorithm)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A key that cannot sign, in words that name the field and never quote the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// Reads the key of `algorithm`; `field` names where it comes from, e.g. `config.private_key`.
pub fn key(algorithm: JwtAlgorithm, text: &str, field: &str) -> Result<EncodingKey, KeyError> {
    // A PEM pasted from a JSON file (a Google service-account key) may keep `\n` escaped.
    let text = if !text.contains('\n') && text.contains("\\n") {
        text.replace("\\n", "\n")
    } else {
        text.to_owned()
    };
    let (parsed, want) = match algorithm {
        JwtAlgorithm::RS256 => (
            EncodingKey::from_rsa_pem(text.as_bytes()),
            "a PEM RSA private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)",
        ),
        JwtAlgorithm::ES256 => (
            EncodingKey::from_ec_pem(text.as_bytes()),
            "a PEM P-256 EC private key in PKCS#8 form (-----BEGIN PRIVATE KEY-----)",
        ),
        JwtAlgorithm::HS256 if text.is_empty() => {
            return Err(KeyError(format!(
                "{field} is empty: HS256 needs the shared secret"
            )));
        }
        JwtAlgorithm::HS256 => (EncodingKey::from_secret(text.as_bytes()), ""),
    };
    let bad = || {
        KeyError(format!(
            "{field} is not {want}; put the whole key, header and footer lines included, in {field} (the key is not shown)"
        ))
    };
    let key = parsed.map_err(|_| bad())?;
    // Parsing checks the PEM wrapping only: sign once so a damaged key fails here, at setup.
    jsonwebtoken::encode(&Header::new(alg(algorithm)), &Map::new(), &key).map_err(|_| bad())?;
    Ok(key)
}

/// The crate's algorithm for the spec's.
pub fn alg(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::HS256 => Algorithm::HS256,
    }
}

impl Jwt {
    /// The bearer token: the JWT itself, or the access token it was exchanged for; signed
    /// (and exchanged) again when the cached one is about to expire. Also returns the
    /// secrets learnt.
    pub async fn token(
        &self,
        client: &reqwest::Client,
    ) -> Result<(String, Vec<String>), TokenError> {
        let mut cached = self.cached.lock().await;
        let now = Instant::now();
        if let Some((t, exp)) = cached.as_ref()
            && token::usable(*exp, now)
        {
            return Ok((t.clone(), Vec::new()));
        }
        let jwt = self.sign(SystemTime::now())?;
        let (bearer, expires, learnt) = match &self.exchange {
            None => (jwt.clone(), Some(now + self.lifetime), vec![jwt]),
            Some((url, params)) => {
                let json = self.exchange(client, url, params, &jwt).await?;
                let access = token::text_field(&json, "access_token", WHAT, url)?;
                let expires = token::expiry_in(json.get("expires_in"), now);
                (access.clone(), expires, vec![jwt, access])
            }
        };
        *cached = Some((bearer.clone(), expires));
        Ok((bearer, learnt))
    }

    /// Forgets the token after the API refused it.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    /// The signed JWT at `now`: the claims, `iat` (now less `backdate`) and `exp`.
    pub fn sign(&self, now: SystemTime) -> Result<String, TokenError> {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let iat = secs.saturating_sub(self.backdate.as_secs());
        let exp = secs.saturating_add(self.lifetime.as_secs());
        let mut claims = self.claims.clone();
        claims.insert("iat".into(), iat.into());
        claims.insert("exp".into(), exp.into());
        let mut header = Header::new(self.algorithm);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|_| TokenError::fatal("http.auth.key: signing the JWT failed".into()))
    }

    async fn exchange(
        &self,
        client: &reqwest::Client,
        url: &str,
        params: &[(String, String)],
        jwt: &str,
    ) -> Result<Value, TokenError> {
        let mut form: Vec<(&str, &str)> =
            vec![("grant_type", JWT_BEARER_GRANT), ("assertion", jwt)];
        form.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        token::exchange(client.post(url).form(&form), url, WHAT)
            .await
            .map_err(|e| {
                e.map_or_else(|t| t, |r| {
                    let code = r.error.map(|c| format!(" ({c})")).unwrap_or_default();
                    TokenError::fatal(format!(
                        "{WHAT} to {url} answered {}{code}: the token endpoint refused the signed JWT; check the key, `iss`, `sub`, `aud` and `scope` in http.auth.claims, and the server's clock",
                        r.status
                    ))
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode};

    fn hs256(claims: Map<String, Value>) -> Jwt {
        Jwt {
            algorithm: Algorithm::HS256,
            key: key(JwtAlgorithm::HS256, "shh-secret", "config.k").unwrap(),
            key_id: Some("k1".into()),
            claims,
            lifetime: Duration::from_secs(600),
            backdate: Duration::from_secs(60),
            exchange: None,
            cached: Mutex::new(None),
        }
    }

    #[test]
    fn hs256_claims_and_times_from_the_injected_clock_verify() {
        let mut claims = Map::new();
        claims.insert("iss".into(), "app-1".into());
        let j = hs256(claims);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let t = j.sign(now).unwrap();
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.required_spec_claims.clear();
        let got =
            decode::<Value>(&t, &DecodingKey::from_secret(b"shh-secret").unwrap(), &v).unwrap();
        assert_eq!(got.header.kid.as_deref(), Some("k1"));
        assert_eq!(got.claims["iss"], "app-1");
        assert_eq!(got.claims["iat"], 1_700_000_000 - 60);
        assert_eq!(got.claims["exp"], 1_700_000_000 + 600);
    }

    #[test]
    fn hs256_known_answer() {
        // Header {"typ":"JWT","alg":"HS256"} and claims {"iat":1,"exp":2} signed with "k",
        // computed independently (Python's hmac): any change to the encoding shows here.
        let j = Jwt {
            key_id: None,
            backdate: Duration::ZERO,
            lifetime: Duration::from_secs(1),
            key: key(JwtAlgorithm::HS256, "k", "config.k").unwrap(),
            ..hs256(Map::new())
        };
        let t = j.sign(UNIX_EPOCH + Duration::from_secs(1)).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts[0], "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9");
        assert_eq!(parts[1], "eyJpYXQiOjEsImV4cCI6Mn0");
        assert_eq!(parts[2], "TkNoB-LyvNKLt5uwcqHFIv0YZE5H95_THXykF_JqG0E");
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.required_spec_claims.clear();
        assert!(decode::<Value>(&t, &DecodingKey::from_secret(b"k").unwrap(), &v).is_ok());
    }

    #[test]
    fn a_malformed_key_names_the_field_and_never_the_key() {
        for (alg, text) in [
            (
                JwtAlgorithm::RS256,
                "-----BEGIN PRIVATE KEY-----\nnot-a-key-s3cr3t\n-----END PRIVATE KEY-----\n",
            ),
            (JwtAlgorithm::ES256, "s3cr3t-material"),
            (JwtAlgorithm::RS256, ""),
        ] {
            let e = key(alg, text, "config.private_key").unwrap_err().0;
            assert!(e.contains("config.private_key"), "{e}");
            assert!(!e.contains("s3cr3t"), "{e}");
        }
        assert!(key(JwtAlgorithm::HS256, "", "config.k").is_err());
    }
}
