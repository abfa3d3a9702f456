//! Session-token auth: a login request whose response holds the token, reused until the
//! API answers 401 or the token expires.

use std::time::Duration;

use connector_spec::{ApiKeyLocation, JsonPath, Template};
use reqwest::RequestBuilder;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::auth::TokenError;
use super::token;

/// What the exchange is called in messages.
const WHAT: &str = "login request";

/// A rendered login request and the cached session token.
pub struct Session {
    pub(super) method: reqwest::Method,
    pub(super) url: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Login,
    pub(super) token_path: JsonPath,
    pub(super) expires_path: Option<JsonPath>,
    pub(super) lifetime: Option<Duration>,
    /// The header or query parameter that carries the token.
    pub(super) name: String,
    pub(super) value: Template,
    pub(super) location: ApiKeyLocation,
    /// Config keys the login sends, named when the API refuses the login.
    pub(super) sources: String,
    /// The rendered `value` and when it expires.
    pub(super) cached: Mutex<Option<(String, Option<Instant>)>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The login body, its headers and the token stay out of every debug print.
        f.debug_struct("Session")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The body of a login request.
pub enum Login {
    /// No body.
    None,
    /// A JSON body.
    Json(Vec<u8>),
    /// Form fields.
    Form(Vec<(String, String)>),
}

impl Session {
    /// Adds the session token (logging in first when there is none or it expired); also
    /// returns the secrets learnt (the token and the value built from it).
    pub async fn apply(
        &self,
        req: RequestBuilder,
        client: &reqwest::Client,
        url: &url::Url,
    ) -> Result<(RequestBuilder, Vec<String>), TokenError> {
        let (value, learnt) = self.value(client).await?;
        let req = match self.location {
            ApiKeyLocation::Header => req.header(self.name.as_str(), value.as_str()),
            // A next-page URL may already carry it: sending it twice can be refused.
            ApiKeyLocation::Query if url.query_pairs().any(|(k, _)| k == self.name.as_str()) => req,
            ApiKeyLocation::Query => req.query(&[(self.name.as_str(), value.as_str())]),
        };
        Ok((req, learnt))
    }

    /// Forgets the token after the API refused it: the next request logs in again.
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn value(&self, client: &reqwest::Client) -> Result<(String, Vec<String>), TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some((v, exp)) = cached.as_ref()
            && token::usable(*exp, Instant::now())
        {
            return Ok((v.clone(), Vec::new()));
        }
        let json = self.login(client).await?;
        let (raw, expires) = self.read(&json)?;
        let value = self
            .value
            .render(json!({ "token": raw }))
            .map_err(|e| TokenError::fatal(format!("http.auth.value: {e}")))?;
        tracing::debug!("logged in at {}", self.url);
        *cached = Some((value.clone(), expires));
        Ok((value.clone(), vec![raw, value]))
    }

    async fn login(&self, client: &reqwest::Client) -> Result<Value, TokenError> {
        let mut req = client.request(self.method.clone(), &self.url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req = match &self.body {
            Login::None => req,
            Login::Json(b) => req
                .header("content-type", "application/json")
                .body(b.clone()),
            Login::Form(f) => req.form(f),
        };
        token::exchange(req, &self.url, WHAT).await.map_err(|e| {
            e.map_or_else(
                |t| t,
                |r| {
                    TokenError::fatal(format!(
                        "{WHAT} to {} answered {}: the API refused the login; check {}",
                        self.url, r.status, self.sources
                    ))
                },
            )
        })
    }

    /// The token and its expiry from a login response.
    fn read(&self, json: &Value) -> Result<(String, Option<Instant>), TokenError> {
        let path = self.token_path.source();
        let raw = match self.token_path.first(json) {
            Ok(Some(Value::String(s))) if !s.is_empty() => s.clone(),
            Ok(Some(Value::Number(n))) => n.to_string(),
            _ => {
                return Err(TokenError::fatal(format!(
                    "the response to the {WHAT} to {} has no token at {path} (http.auth.token); check the JSONPath against what the login returns",
                    self.url
                )));
            }
        };
        let now = Instant::now();
        let returned = self
            .expires_path
            .as_ref()
            .and_then(|p| p.first(json).ok().flatten())
            .and_then(|v| token::expiry_in(Some(v), now));
        Ok((raw, returned.or_else(|| self.lifetime.map(|d| now + d))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires: Option<&str>, lifetime: Option<Duration>) -> Session {
        Session {
            method: reqwest::Method::POST,
            url: "http://127.0.0.1:1/login".into(),
            headers: vec![],
            body: Login::None,
            token_path: JsonPath::new("$.data.token"),
            expires_path: expires.map(JsonPath::new),
            lifetime,
            name: "Authorization".into(),
            value: Template::new("Token {{ token }}"),
            location: ApiKeyLocation::Header,
            sources: "config.user".into(),
            cached: Mutex::new(None),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_returned_expiry_wins_over_the_declared_lifetime() {
        let s = session(Some("$.ttl"), Some(Duration::from_secs(60)));
        let now = Instant::now();
        let (t, exp) = s
            .read(&json!({"data": {"token": "tk-1"}, "ttl": 3600}))
            .unwrap();
        assert_eq!(t, "tk-1");
        assert_eq!(exp, Some(now + Duration::from_secs(3600)));
        let (_, exp) = s.read(&json!({"data": {"token": "tk-1"}})).unwrap();
        assert_eq!(exp, Some(now + Duration::from_secs(60)));
        let (_, exp) = session(None, None)
            .read(&json!({"data": {"token": "tk-1"}}))
            .unwrap();
        assert_eq!(exp, None);
    }

    #[test]
    fn a_response_without_the_token_names_the_path_not_the_body() {
        let e = session(None, None)
            .read(&json!({"data": {"tok": "tk-secret"}}))
            .unwrap_err()
            .message;
        assert!(e.contains("$.data.token"), "{e}");
        assert!(!e.contains("tk-secret"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cached_token_is_reused_until_its_expiry_then_replaced() {
        let s = session(None, None);
        let now = Instant::now();
        *s.cached.lock().await = Some(("Token a".into(), Some(now + Duration::from_secs(3600))));
        let client = reqwest::Client::new();
        // Before the expiry (less the margin): no login, the cached value.
        tokio::time::advance(Duration::from_secs(3000)).await;
        let (v, learnt) = s.value(&client).await.unwrap();
        assert_eq!((v.as_str(), learnt.len()), ("Token a", 0));
        // Past it: a login is needed (here it cannot connect, which proves it was tried).
        tokio::time::advance(Duration::from_secs(580)).await;
        assert!(s.value(&client).await.is_err());
    }
}
