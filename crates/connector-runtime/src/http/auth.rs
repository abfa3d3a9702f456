//! Credentials on requests: bearer, API key, basic, OAuth2 client credentials and refresh
//! tokens, session logins, signed JWTs; `select` picks one of them by a value.

use std::time::Duration;

use base64::Engine as _;
use connector_spec::{ApiKeyLocation, Auth, CredentialsIn, Template};
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
    /// OAuth2 refresh-token grant, with the cached access token and the rotated refresh token.
    Refresh(Box<super::refresh::Refresh>),
    /// A session token from a login request.
    Session(Box<super::session::Session>),
    /// A JWT signed from a configured key, sent or exchanged.
    Jwt(Box<super::jwt::Jwt>),
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
    /// A failure worth another attempt (the endpoint did not answer, or answered 5xx).
    pub(crate) fn transient(message: String) -> Self {
        Self {
            message,
            fatal: false,
        }
    }

    /// A failure that another attempt cannot cure.
    pub(crate) fn fatal(message: String) -> Self {
        Self {
            message,
            fatal: true,
        }
    }
}

/// The auth block in force: `auth` itself, or the option a `select` names.
pub fn chosen<'a>(auth: &'a Auth, ctx: &Value) -> Result<&'a Auth, RenderError> {
    let Auth::Select { select, options } = auth else {
        return Ok(auth);
    };
    let name = render(select, ctx, "http.auth.select")?;
    let name = name.trim();
    if let Some(a) = options.get(name) {
        return Ok(a);
    }
    let names: Vec<&str> = options.keys().map(String::as_str).collect();
    let close = names
        .iter()
        .map(|n| (strsim::jaro_winkler(&name.to_ascii_lowercase(), n), *n))
        .filter(|(s, _)| *s >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
    Err(RenderError {
        field: "http.auth.select".into(),
        message: format!(
            "`{shown}` is not one of the auth options: {}{close}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// The config keys a template reads, as `config.a, config.b` (or `field` when none).
fn sources(templates: &[&Template], field: &str) -> String {
    let mut keys: Vec<String> = templates
        .iter()
        .filter_map(|t| t.variables().ok())
        .flatten()
        .filter(|v| v.starts_with("config."))
        .map(|v| v.splitn(3, '.').take(2).collect::<Vec<_>>().join("."))
        .collect();
    keys.dedup();
    if keys.is_empty() {
        field.to_owned()
    } else {
        keys.join(", ")
    }
}

/// Renders each template of a map, naming `field.key` in errors.
fn render_map(
    map: &indexmap::IndexMap<String, Template>,
    ctx: &Value,
    field: &str,
) -> Result<Vec<(String, String)>, RenderError> {
    map.iter()
        .map(|(k, v)| Ok((k.clone(), render(v, ctx, &format!("{field}.{k}"))?)))
        .collect()
}

impl Credentials {
    /// Renders the spec's auth with the configuration; `base` is the rendered base URL,
    /// to which a relative login URL is joined.
    pub fn new(auth: &Auth, ctx: &Value, base: &str) -> Result<Self, RenderError> {
        Ok(match chosen(auth, ctx)? {
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
            a @ Auth::Oauth2RefreshToken { .. } => refresh(a, ctx)?,
            a @ Auth::Session { .. } => session(a, ctx, base)?,
            a @ Auth::Jwt { .. } => jwt(a, ctx)?,
            Auth::Select { .. } => {
                return Err(RenderError {
                    field: "http.auth.options".into(),
                    message: "an option of `select` cannot be another `select`".into(),
                });
            }
        })
    }

    /// Keeps rotated OAuth2 refresh tokens in `path` (see [`super::token_store`]).
    pub fn keep_tokens_in(&self, path: std::path::PathBuf) {
        if let Credentials::Refresh(r) = self {
            r.keep_in(path);
        }
    }

    /// The query parameter that carries a secret, to mask it in printed URLs.
    pub fn secret_param(&self) -> Option<&str> {
        match self {
            Credentials::Query(name, _) => Some(name),
            Credentials::Session(s) if s.location == ApiKeyLocation::Query => Some(&s.name),
            _ => None,
        }
    }

    /// Secrets the credentials put on the wire in another form, to mask them when an API
    /// echoes them back: the base64 `user:password` of basic auth.
    pub fn derived_secrets(&self) -> Vec<String> {
        let pair = match self {
            Credentials::Basic(u, p) => Some((u, p)),
            Credentials::OAuth2(o) => o.basic.as_ref().map(|(u, p)| (u, p)),
            Credentials::Refresh(r) => r.basic.as_ref().map(|(u, p)| (u, p)),
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
        matches!(
            self,
            Credentials::OAuth2(_)
                | Credentials::Refresh(_)
                | Credentials::Session(_)
                | Credentials::Jwt(_)
        )
    }

    /// Adds the credentials to a request; fetches an OAuth2 token when none is cached.
    ///
    /// Returns the secrets learnt on the way (tokens fetched), so the caller can redact them.
    pub async fn apply(
        &self,
        req: RequestBuilder,
        client: &reqwest::Client,
        url: &url::Url,
    ) -> Result<(RequestBuilder, Vec<String>), TokenError> {
        Ok(match self {
            Credentials::None => (req, Vec::new()),
            Credentials::Header(k, v) => (req.header(k.as_str(), v.as_str()), Vec::new()),
            // A next-page URL may already carry the key: sending it twice can be refused.
            Credentials::Query(k, _) if url.query_pairs().any(|(n, _)| n == k.as_str()) => {
                (req, Vec::new())
            }
            Credentials::Query(k, v) => (req.query(&[(k.as_str(), v.as_str())]), Vec::new()),
            Credentials::Basic(u, p) => (req.basic_auth(u, Some(p)), Vec::new()),
            Credentials::OAuth2(o) => {
                let (token, fresh) = o.token(client).await?;
                let learnt = if fresh {
                    vec![token.clone()]
                } else {
                    Vec::new()
                };
                (req.bearer_auth(&token), learnt)
            }
            Credentials::Refresh(r) => {
                let (token, learnt) = r.token(client).await?;
                (req.bearer_auth(&token), learnt)
            }
            Credentials::Session(s) => s.apply(req, client, url).await?,
            Credentials::Jwt(j) => {
                let (token, learnt) = j.token(client).await?;
                (req.bearer_auth(&token), learnt)
            }
        })
    }

    /// What a 401 leads to, for the log line.
    pub fn renewal(&self) -> &'static str {
        match self {
            Credentials::Session(_) => "logging in again",
            Credentials::Jwt(_) => "signing a new JWT",
            _ => "fetching a new OAuth2 token",
        }
    }

    /// Forgets a cached token after the API refused it.
    pub async fn invalidate(&self) {
        match self {
            Credentials::OAuth2(o) => *o.token.lock().await = None,
            Credentials::Refresh(r) => r.invalidate().await,
            Credentials::Session(s) => s.invalidate().await,
            Credentials::Jwt(j) => j.invalidate().await,
            _ => {}
        }
    }
}

/// The client credentials of a token request: in the form, or as HTTP basic.
type ClientAuth = (Vec<(String, String)>, Option<(String, String)>);

fn client_auth(id: String, secret: String, how: CredentialsIn) -> ClientAuth {
    match how {
        CredentialsIn::Basic => (Vec::new(), Some((id, secret))),
        // A public client (no secret) sends its id alone.
        CredentialsIn::Body if secret.is_empty() => (vec![("client_id".into(), id)], None),
        CredentialsIn::Body => (
            vec![("client_id".into(), id), ("client_secret".into(), secret)],
            None,
        ),
    }
}

fn refresh(auth: &Auth, ctx: &Value) -> Result<Credentials, RenderError> {
    let Auth::Oauth2RefreshToken {
        token_url,
        client_id,
        client_secret,
        refresh_token,
        scopes,
        params,
        credentials_in,
    } = auth
    else {
        unreachable_kind()?
    };
    let id = render(client_id, ctx, "http.auth.client_id")?;
    let secret = render(client_secret, ctx, "http.auth.client_secret")?;
    let configured = render(refresh_token, ctx, "http.auth.refresh_token")?;
    if configured.trim().is_empty() {
        return Err(RenderError {
            field: "http.auth.refresh_token".into(),
            message: format!(
                "the refresh token ({}) is empty; authorise the app and set it",
                sources(&[refresh_token], "http.auth.refresh_token")
            ),
        });
    }
    let (mut form, basic) = client_auth(id, secret, *credentials_in);
    if !scopes.is_empty() {
        form.push(("scope".into(), scopes.join(" ")));
    }
    form.extend(render_map(params, ctx, "http.auth.params")?);
    Ok(Credentials::Refresh(Box::new(super::refresh::Refresh {
        token_url: render(token_url, ctx, "http.auth.token_url")?,
        form,
        basic,
        configured,
        source: sources(&[refresh_token], "http.auth.refresh_token"),
        store: std::sync::Mutex::new(None),
        state: Mutex::new(Default::default()),
    })))
}

fn session(auth: &Auth, ctx: &Value, base: &str) -> Result<Credentials, RenderError> {
    use super::session::{Login, Session};
    let Auth::Session {
        login,
        token,
        expires_in,
        lifetime,
        name,
        value,
        location,
    } = auth
    else {
        unreachable_kind()?
    };
    let url = render(&login.url, ctx, "http.auth.login.url")?;
    let url = if url.starts_with("http://") || url.starts_with("https://") {
        url
    } else {
        format!(
            "{}/{}",
            base.trim_end_matches('/'),
            url.trim_start_matches('/')
        )
    };
    let body = match (&login.body, login.form.is_empty()) {
        (Some(b), _) => {
            let v = crate::request::BodyTemplate::new(b).render(ctx, "http.auth.login.body")?;
            Login::Json(serde_json::to_vec(&v).map_err(|e| RenderError {
                field: "http.auth.login.body".into(),
                message: e.to_string(),
            })?)
        }
        (None, false) => Login::Form(render_map(&login.form, ctx, "http.auth.login.form")?),
        (None, true) => Login::None,
    };
    let mut fed: Vec<&Template> = vec![&login.url];
    fed.extend(login.headers.values().chain(login.form.values()));
    let body_templates: Vec<Template> = login
        .body
        .iter()
        .flat_map(super::string_leaves)
        .map(Template::new)
        .collect();
    fed.extend(body_templates.iter());
    Ok(Credentials::Session(Box::new(Session {
        method: reqwest::Method::from_bytes(login.method.as_str().as_bytes())
            .unwrap_or(reqwest::Method::POST),
        url,
        headers: render_map(&login.headers, ctx, "http.auth.login.headers")?,
        body,
        token_path: token.clone(),
        expires_path: expires_in.clone(),
        lifetime: lifetime.as_ref().map(connector_spec::Duration::get),
        name: name.clone(),
        value: value.clone(),
        location: *location,
        sources: sources(&fed, "http.auth.login"),
        cached: Mutex::new(None),
    })))
}

fn jwt(auth: &Auth, ctx: &Value) -> Result<Credentials, RenderError> {
    let Auth::Jwt {
        algorithm,
        key,
        key_id,
        claims,
        lifetime,
        backdate,
        token_url,
        params,
    } = auth
    else {
        unreachable_kind()?
    };
    let text = render(key, ctx, "http.auth.key")?;
    let field = format!("http.auth.key ({})", sources(&[key], "written in the spec"));
    let signing = super::jwt::key(*algorithm, &text, &field).map_err(|e| RenderError {
        field: "http.auth.key".into(),
        message: e.0,
    })?;
    let mut rendered = serde_json::Map::new();
    for (k, t) in claims {
        let v = t.eval(ctx).map_err(|e| RenderError {
            field: format!("http.auth.claims.{k}"),
            message: e.to_string(),
        })?;
        rendered.insert(k.clone(), v);
    }
    let exchange = match token_url {
        Some(u) => Some((
            render(u, ctx, "http.auth.token_url")?,
            render_map(params, ctx, "http.auth.params")?,
        )),
        None => None,
    };
    Ok(Credentials::Jwt(Box::new(super::jwt::Jwt {
        algorithm: super::jwt::alg(*algorithm),
        key: signing,
        key_id: match key_id {
            Some(k) => Some(render(k, ctx, "http.auth.key_id")?),
            None => None,
        },
        claims: rendered,
        lifetime: lifetime.get(),
        backdate: backdate.get(),
        exchange,
        cached: Mutex::new(None),
    })))
}

/// The helpers above are called with their own kind only.
fn unreachable_kind<T>() -> Result<T, RenderError> {
    Err(RenderError {
        field: "http.auth".into(),
        message: "internal error: auth kind mismatch".into(),
    })
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
