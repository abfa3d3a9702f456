//! Credentials on requests: bearer, API key, basic, OAuth2 client credentials.

use std::time::Duration;

use base64::Engine as _;
use connector_spec::{ApiKeyLocation, Auth, CredentialsIn};
use reqwest::RequestBuilder;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::render::{RenderError, render};

/// Refresh an OAuth2 token this long before it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// Largest OAuth2 token response read: a token response is a few hundred bytes.
const MAX_TOKEN_RESPONSE: u64 = 1024 * 1024;

/// The rendered credentials of a connector.
#[derive(Debug)]
pub enum Credentials {
    /// Nothing is added.
    None,
    /// A header, e.g. `Authorization: Bearer ...` or `X-API-Key: ...`.
    Header(String, String),
    /// A query parameter.
    Query(String, String),
    /// HTTP basic.
    Basic(String, String),
    /// OAuth2 client credentials, with the cached token.
    OAuth2(Box<OAuth2>),
}

/// An OAuth2 client-credentials grant and its cached access token.
#[derive(Debug)]
pub struct OAuth2 {
    token_url: String,
    form: Vec<(String, String)>,
    basic: Option<(String, String)>,
    token: Mutex<Option<(String, Option<Instant>)>>,
}

/// Fetching an OAuth2 token failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TokenError {
    /// What went wrong.
    pub message: String,
    /// The token endpoint refused (a 4xx): trying again cannot help.
    pub fatal: bool,
}

impl TokenError {
    fn transient(message: String) -> Self {
        Self {
            message,
            fatal: false,
        }
    }
}

impl Credentials {
    /// Renders the spec's auth with the configuration.
    pub fn new(auth: &Auth, ctx: &Value) -> Result<Self, RenderError> {
        Ok(match auth {
            Auth::None => Credentials::None,
            Auth::Bearer { token } => Credentials::Header(
                "Authorization".into(),
                format!("Bearer {}", render(token, ctx, "http.auth.token")?),
            ),
            Auth::ApiKey {
                name,
                value,
                location,
            } => {
                let v = render(value, ctx, "http.auth.value")?;
                match location {
                    ApiKeyLocation::Header => Credentials::Header(name.clone(), v),
                    ApiKeyLocation::Query => Credentials::Query(name.clone(), v),
                }
            }
            Auth::Basic { username, password } => Credentials::Basic(
                render(username, ctx, "http.auth.username")?,
                render(password, ctx, "http.auth.password")?,
            ),
            Auth::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                params,
                credentials_in,
            } => {
                let id = render(client_id, ctx, "http.auth.client_id")?;
                let secret = render(client_secret, ctx, "http.auth.client_secret")?;
                let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
                if !scopes.is_empty() {
                    form.push(("scope".into(), scopes.join(" ")));
                }
                for (k, v) in params {
                    form.push((k.clone(), render(v, ctx, &format!("http.auth.params.{k}"))?));
                }
                let basic = match credentials_in {
                    CredentialsIn::Basic => Some((id, secret)),
                    CredentialsIn::Body => {
                        form.push(("client_id".into(), id));
                        form.push(("client_secret".into(), secret));
                        None
                    }
                };
                Credentials::OAuth2(Box::new(OAuth2 {
                    token_url: render(token_url, ctx, "http.auth.token_url")?,
                    form,
                    basic,
                    token: Mutex::new(None),
                }))
            }
        })
    }

    /// The query parameter that carries a secret, to mask it in printed URLs.
    pub fn secret_param(&self) -> Option<&str> {
        match self {
            Credentials::Query(name, _) => Some(name),
            _ => None,
        }
    }

    /// Secrets the credentials put on the wire in another form, to mask them when an API
    /// echoes them back: the base64 `user:password` of basic auth.
    pub fn derived_secrets(&self) -> Vec<String> {
        let pair = match self {
            Credentials::Basic(u, p) => Some((u, p)),
            Credentials::OAuth2(o) => o.basic.as_ref().map(|(u, p)| (u, p)),
            _ => None,
        };
        match pair {
            // Without a password the pair is no secret (and its base64 too short to mask).
            Some((u, p)) if !p.is_empty() => {
                vec![base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))]
            }
            _ => Vec::new(),
        }
    }

    /// Whether a 401 may be cured by fetching a new token.
    pub fn refreshable(&self) -> bool {
        matches!(self, Credentials::OAuth2(_))
    }

    /// Adds the credentials to a request; fetches an OAuth2 token when none is cached.
    ///
    /// Returns the access token when one was fetched, so the caller can redact it.
    pub async fn apply(
        &self,
        req: RequestBuilder,
        client: &reqwest::Client,
        url: &url::Url,
    ) -> Result<(RequestBuilder, Option<String>), TokenError> {
        Ok(match self {
            Credentials::None => (req, None),
            Credentials::Header(k, v) => (req.header(k.as_str(), v.as_str()), None),
            // A next-page URL may already carry the key: sending it twice can be refused.
            Credentials::Query(k, _) if url.query_pairs().any(|(n, _)| n == k.as_str()) => {
                (req, None)
            }
            Credentials::Query(k, v) => (req.query(&[(k.as_str(), v.as_str())]), None),
            Credentials::Basic(u, p) => (req.basic_auth(u, Some(p)), None),
            Credentials::OAuth2(o) => {
                let (token, fresh) = o.token(client).await?;
                (req.bearer_auth(&token), fresh.then_some(token))
            }
        })
    }

    /// Forgets a cached OAuth2 token after the API refused it.
    pub async fn invalidate(&self) {
        if let Credentials::OAuth2(o) = self {
            *o.token.lock().await = None;
        }
    }
}

impl OAuth2 {
    async fn token(&self, client: &reqwest::Client) -> Result<(String, bool), TokenError> {
        let mut guard = self.token.lock().await;
        if let Some((t, exp)) = guard.as_ref()
            && exp.is_none_or(|e| Instant::now() + EXPIRY_MARGIN < e)
        {
            return Ok((t.clone(), false));
        }
        let mut req = client.post(&self.token_url).form(&self.form);
        if let Some((id, secret)) = &self.basic {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = req.send().await.map_err(|e| {
            TokenError::transient(format!(
                "OAuth2 token request to {} failed: {}",
                self.token_url,
                e.without_url()
            ))
        })?;
        let status = resp.status();
        if status.is_redirection() {
            // The client follows no redirect: the client credentials go to token_url only.
            return Err(TokenError {
                message: format!(
                    "OAuth2 token request to {} answered {status} (a redirect); the client credentials are sent to http.auth.token_url only, so set it to the final URL",
                    self.token_url
                ),
                fatal: true,
            });
        }
        let body = match super::body::read_limited(resp, MAX_TOKEN_RESPONSE).await {
            Ok(b) => b,
            Err(super::body::BodyError::TooLarge { limit }) => {
                return Err(TokenError {
                    message: format!(
                        "OAuth2 token response from {} is larger than {}: not a token response",
                        self.token_url,
                        super::body::show_bytes(limit)
                    ),
                    fatal: true,
                });
            }
            Err(super::body::BodyError::Cut(e)) => {
                return Err(TokenError::transient(format!(
                    "OAuth2 token response from {} was cut short: {}",
                    self.token_url,
                    e.without_url()
                )));
            }
        };
        if !status.is_success() {
            let refused = status.is_client_error() && status.as_u16() != 429;
            let message = if refused {
                format!(
                    "OAuth2 token request to {} answered {}: the token endpoint rejected the client credentials",
                    self.token_url, status
                )
            } else {
                format!(
                    "OAuth2 token request to {} answered {}",
                    self.token_url, status
                )
            };
            return Err(TokenError {
                message,
                fatal: refused,
            });
        }
        let json: Value = serde_json::from_slice(&body).map_err(|_| {
            TokenError::transient(format!(
                "OAuth2 token response from {} is not JSON",
                self.token_url
            ))
        })?;
        let token = json
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                TokenError::transient(format!(
                    "OAuth2 token response from {} has no access_token",
                    self.token_url
                ))
            })?
            .to_owned();
        let expires = json
            .get("expires_in")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Instant::now() + Duration::from_secs_f64(s.min(1e9)));
        *guard = Some((token.clone(), expires));
        Ok((token, true))
    }
}
