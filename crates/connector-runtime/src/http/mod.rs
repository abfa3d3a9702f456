//! One HTTP client per connector: credentials, pacing and retries around reqwest.

pub mod auth;
pub mod backoff;
pub mod body;
mod gcra;
pub mod jwt;
pub mod limiter;
pub(crate) mod pass_gate;
pub mod redirect;
pub mod refresh;
pub mod retry_after;
pub mod rules;
pub mod session;
pub mod token;
pub mod token_store;

use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use connector_spec::{RateLimit, Spec};
use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use crate::origin::Allowed;
use crate::redact::Redactor;
use crate::render::{RenderError, render};
use crate::stats::Stats;
use auth::Credentials;
use limiter::{Hold, Limiter, Pause, TooLong};
use rules::{Reply, Ruled, StreamRules};

/// Bytes of a failed response's body quoted in the error.
const SNIPPET: usize = 200;

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// GET, POST, ...
    pub method: reqwest::Method,
    /// Full URL, query included (credentials are added at send time).
    pub url: Url,
    /// Headers beyond the credentials.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Vec<u8>>,
}

/// A successful response, body read in full.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Status code (2xx).
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, decompressed.
    pub body: Bytes,
    /// The URL that answered (after redirects), without credentials added.
    pub url: Url,
}

/// A request that failed for good, with a message fit to print (secrets masked).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    /// The whole story: what was sent, what came back, what was tried.
    pub message: String,
    /// The last status received, if any.
    pub status: Option<u16>,
    /// Attempts made.
    pub attempts: u32,
    /// The first bytes of the last response's body, printable and masked; empty when none.
    pub snippet: String,
}

/// Retry settings in usable form.
#[derive(Debug, Clone)]
struct RetryPolicy {
    max_attempts: u32,
    initial: Duration,
    max: Duration,
    max_total: Duration,
    on_status: Vec<u16>,
}

/// The HTTP side of a connector, shared by all its streams.
#[derive(Debug)]
pub struct Http {
    client: reqwest::Client,
    creds: Credentials,
    limiter: Limiter,
    retry: RetryPolicy,
    rate: RateLimit,
    redactor: RwLock<Redactor>,
    auth_keys: Vec<String>,
    /// Where credentials may go: the base URL's origin and `http.trusted_origins`.
    origins: Allowed,
    /// `http.max_response_bytes`: the most decoded bytes one response may bring.
    max_response: u64,
}

/// What went wrong with one attempt, for the log line and the final error.
struct Failure {
    reason: String,
    status: Option<u16>,
    dictated: Option<Duration>,
    /// The first bytes of the body, for the final error.
    snippet: String,
}

impl Http {
    /// Builds the client of a spec with resolved configuration.
    pub fn new(spec: &Spec, ctx: &Value, redactor: Redactor) -> Result<Self, RenderError> {
        // A base URL that does not render fails on the first request, with its own error;
        // until then no origin is the API's, so no credential goes anywhere.
        let base = render(&spec.http.base_url, ctx, "http.base_url").unwrap_or_default();
        let auth = auth::chosen(&spec.http.auth, ctx)?;
        let creds = Credentials::new(auth, ctx, &base)?;
        let mut redactor = redactor;
        for s in creds.derived_secrets() {
            redactor.add(&s);
        }
        let origins = Allowed::new(&base, &spec.http.trusted_origins);
        let client = reqwest::Client::builder()
            .user_agent(concat!("connector-runtime/", env!("CARGO_PKG_VERSION")))
            .timeout(spec.http.timeout.get())
            .connect_timeout(spec.http.timeout.get().min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(30))
            // Redirects are followed by `redirect`, which decides credentials per hop.
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .build()
            .map_err(|e| RenderError {
                field: "http".into(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let r = &spec.http.rate_limit;
        let retry = &spec.http.retry;
        Ok(Self {
            client,
            creds,
            limiter: Limiter::new(r.requests_per_second, r.burst, r.floor),
            retry: RetryPolicy {
                max_attempts: retry.max_attempts.max(1),
                initial: retry.initial.get(),
                max: retry.max.get(),
                max_total: retry.max_total.get(),
                on_status: retry.on_status.clone(),
            },
            rate: r.clone(),
            redactor: RwLock::new(redactor),
            auth_keys: auth_config_keys(auth),
            origins,
            max_response: spec.http.max_response_bytes,
        })
    }

    /// Keeps rotated OAuth2 refresh tokens beside this state file (`state.json` ->
    /// `state.tokens.json`); without it a rotated token lives for the run only.
    pub fn keep_tokens_beside(&self, state: &std::path::Path) {
        self.creds.keep_tokens_in(token_store::beside(state));
    }

    /// How many requests to keep in flight (pages, partitions, windows) to reach the
    /// API's budget without passing it, at most `max`: see [`Limiter::in_flight`]. Every
    /// request still goes through the one limiter; this only says how many to start.
    pub fn in_flight(&self, max: usize) -> usize {
        self.limiter.in_flight(max)
    }

    /// A gate for one stream's passes (partitions, date windows): at most `max` at once,
    /// and no more than [`in_flight`](Self::in_flight) says the budget needs.
    pub(crate) fn pass_gate(&self, max: usize) -> pass_gate::PassGate<'_> {
        pass_gate::PassGate::new(&self.limiter, max)
    }

    /// The API's origin and the trusted ones: where credentials and next pages may go.
    pub fn origins(&self) -> &Allowed {
        &self.origins
    }

    /// Masks secrets (configured and learnt) in a text.
    pub fn redact(&self, text: &str) -> String {
        match self.redactor.read() {
            Ok(r) => r.redact(text),
            Err(_) => String::from("(redacted)"),
        }
    }

    /// A URL fit to print.
    pub fn show_url(&self, url: &Url) -> String {
        let params: Vec<&str> = self.creds.secret_param().into_iter().collect();
        // A query key is added at send time: show it (masked) so the URL is the one sent.
        let mut sent = url.clone();
        if let Some(name) = self.creds.secret_param()
            && !url.query_pairs().any(|(k, _)| k == name)
        {
            sent.query_pairs_mut().append_pair(name, "***");
        }
        match self.redactor.read() {
            Ok(r) => r.url(&sent, &params),
            Err(_) => String::from("(redacted)"),
        }
    }

    /// Sends a request, waiting and retrying as the spec and the API say.
    pub async fn send(
        &self,
        req: &Outgoing,
        stats: &Stats,
        who: &str,
    ) -> Result<Incoming, HttpError> {
        self.send_except(req, stats, who, &[]).await
    }

    /// [`send`](Self::send), but the statuses in `never` are never retried, whatever
    /// `retry.on_status` says (a write's 409 and 422 must be reported, not repeated).
    pub async fn send_except(
        &self,
        req: &Outgoing,
        stats: &Stats,
        who: &str,
        never: &[u16],
    ) -> Result<Incoming, HttpError> {
        match self.send_ruled(req, stats, who, never, None).await? {
            Reply::Page(p) => Ok(p),
            // Only rules skip or end, and there are none here.
            Reply::Skip(r) | Reply::End(r) => Err(HttpError {
                message: format!("{}: taken by an error rule where none applies", r.shown),
                status: Some(r.status),
                attempts: 1,
                snippet: String::new(),
            }),
        }
    }

    /// [`send`](Self::send) for a stream's page: its error rules (then `http.errors`)
    /// decide first what a response means: retry, skip, end or fail.
    pub async fn fetch(
        &self,
        req: &Outgoing,
        stats: &Stats,
        who: &str,
        rules: &StreamRules,
    ) -> Result<Reply, HttpError> {
        let rules = (!rules.is_empty()).then_some(rules);
        self.send_ruled(req, stats, who, &[], rules).await
    }

    async fn send_ruled(
        &self,
        req: &Outgoing,
        stats: &Stats,
        who: &str,
        never: &[u16],
        rules: Option<&StreamRules>,
    ) -> Result<Reply, HttpError> {
        let shown = format!("{} {}", req.method, self.show_url(&req.url));
        let mut waited_total = Duration::ZERO;
        let mut refreshed = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let allowed = self.retry.max_total.saturating_sub(waited_total);
            let held = match self.limiter.acquire(allowed).await {
                Ok(held) => held,
                Err(TooLong { wait, why }) => {
                    return Err(HttpError {
                        message: format!(
                            "{shown}: {}",
                            self.too_long(wait, waited_total, why.describe())
                        ),
                        status: None,
                        attempts: attempt - 1,
                        snippet: String::new(),
                    });
                }
            };
            for (hold, d) in held {
                stats.waited(d);
                waited_total += d;
                // The pause was announced once when it started, not once per waiter.
                if let Hold::Paused(why) = hold {
                    tracing::debug!("{who}: waited {:.1}s: {}", d.as_secs_f64(), why.describe());
                }
            }
            Stats::add(&stats.requests, 1);
            let flight = self.limiter.flight();
            let outcome = self.attempt(req, &shown, who, never, rules).await;
            if let Ok(Ok(_)) = &outcome {
                flight.answered();
            }
            drop(flight);
            let failure = match outcome {
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(f)) => f,
                Err(fatal) => {
                    if fatal.status == Some(401) && self.creds.refreshable() && !refreshed {
                        refreshed = true;
                        self.creds.invalidate().await;
                        tracing::info!("{who}: 401 from {shown}, {}", self.creds.renewal());
                        continue;
                    }
                    return Err(HttpError {
                        message: fatal.reason,
                        status: fatal.status,
                        attempts: attempt,
                        snippet: fatal.snippet,
                    });
                }
            };
            let wait = match failure.dictated {
                Some(d) => d + backoff::small_jitter(),
                None => backoff::full_jitter(self.retry.initial, self.retry.max, attempt - 1),
            };
            if attempt >= self.retry.max_attempts || waited_total + wait > self.retry.max_total {
                let tries = if attempt == 1 {
                    "1 attempt".to_owned()
                } else {
                    format!("{attempt} attempts")
                };
                let body = if failure.snippet.is_empty() {
                    String::new()
                } else {
                    format!("; body: {}", failure.snippet)
                };
                if let (Some(d), false) = (failure.dictated, attempt >= self.retry.max_attempts) {
                    return Err(HttpError {
                        message: format!(
                            "{shown}: {}{body}",
                            self.too_long(
                                d,
                                waited_total,
                                &format!("gave up after {tries}; last: {}", failure.reason)
                            ),
                        ),
                        status: failure.status,
                        attempts: attempt,
                        snippet: failure.snippet.clone(),
                    });
                }
                let why = if attempt >= self.retry.max_attempts {
                    String::new()
                } else {
                    format!(
                        " (the next wait of {:.1}s would pass retry.max_total, {:.0}s)",
                        wait.as_secs_f64(),
                        self.retry.max_total.as_secs_f64()
                    )
                };
                return Err(HttpError {
                    message: format!(
                        "{shown}: gave up after {tries} and {:.1}s waited{why}; last: {}{body}",
                        waited_total.as_secs_f64(),
                        failure.reason
                    ),
                    status: failure.status,
                    attempts: attempt,
                    snippet: failure.snippet,
                });
            }
            // The API asked everyone to wait, not only this request: one pause for the
            // connector, announced by the request that started it.
            let joined =
                failure.dictated.is_some() && !self.limiter.pause_for(wait, Pause::RetryAfter);
            let line = format!(
                "{who}: {}, waiting {:.1}s, attempt {}/{}",
                failure.reason,
                wait.as_secs_f64(),
                attempt + 1,
                self.retry.max_attempts
            );
            if joined {
                tracing::debug!("{line}");
            } else {
                tracing::warn!("{line}");
            }
            Stats::add(&stats.retries, 1);
            stats.waited(wait);
            waited_total += wait;
            tokio::time::sleep(wait).await;
        }
    }

    /// The response's `Retry-After` (or the header the spec names): as sent, and as a wait.
    fn retry_after(&self, headers: &HeaderMap, now: SystemTime) -> Option<(String, Duration)> {
        headers
            .get(self.rate.retry_after.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after::parse_retry_after(v, now).map(|d| (v.to_owned(), d)))
    }

    /// What the error rule at `i`, which matched the response, makes of it.
    #[allow(clippy::too_many_arguments)]
    fn ruled(
        &self,
        rules: &StreamRules,
        i: usize,
        rule: &connector_spec::ErrorRule,
        shown: &str,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Result<Reply, Failure>, Failure> {
        use connector_spec::Action;
        let label = rules.label(i);
        let ruled = || Ruled {
            rule: i,
            status,
            shown: shown.to_owned(),
        };
        match rule.action {
            Action::Skip => Ok(Ok(Reply::Skip(ruled()))),
            Action::End => Ok(Ok(Reply::End(ruled()))),
            Action::Retry => {
                let retry_after = self.retry_after(headers, now);
                let after = retry_after
                    .as_ref()
                    .map(|(raw, _)| format!(", {}: {raw}", self.rate.retry_after))
                    .unwrap_or_default();
                Ok(Err(Failure {
                    reason: format!(
                        "{status} from {shown} matched {label} ({}){after}",
                        rule.describe()
                    ),
                    status: Some(status),
                    dictated: retry_after.map(|(_, d)| d),
                    snippet: self.redact(&snippet(body)),
                }))
            }
            Action::Fail => {
                let message = rules::message(rule, label, status, headers, body);
                Err(Failure {
                    reason: self.redact(&format!("{status} from {shown}: {message}")),
                    status: Some(status),
                    dictated: None,
                    snippet: self.redact(&snippet(body)),
                })
            }
        }
    }

    /// Why a wait the API dictated is not waited: it passes what is left of `retry.max_total`.
    fn too_long(&self, wait: Duration, waited: Duration, context: &str) -> String {
        let max = secs(self.retry.max_total);
        let allows = if waited.is_zero() {
            format!("more than retry.max_total ({max}) allows")
        } else {
            format!(
                "more than is left of retry.max_total ({max}, {} waited already)",
                secs(waited)
            )
        };
        format!(
            "the API asked to wait {}, {allows}; {context}; not waiting: raise http.retry.max_total to wait that long, or run again later",
            secs(wait)
        )
    }

    /// One attempt: Ok(Ok) success, Ok(Err) retryable failure, Err fatal failure.
    /// `shown` is the request as printed (secrets masked), made once by the caller.
    async fn attempt(
        &self,
        req: &Outgoing,
        shown: &str,
        who: &str,
        never: &[u16],
        rules: Option<&StreamRules>,
    ) -> Result<Result<Reply, Failure>, Failure> {
        let (resp, url) = match self.follow(req, shown).await {
            Ok(r) => r,
            Err(redirect::Stop::Retry(f)) => return Ok(Err(f)),
            Err(redirect::Stop::Fatal(f)) => return Err(f),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let now = SystemTime::now();
        let budget = retry_after::parse_budget(&headers, &self.rate, now);
        if let Some(p) = self.limiter.observe(budget) {
            tracing::info!(
                "{who}: rate limit: {} left, pausing every request for {:.1}s until the reset",
                budget.remaining.unwrap_or(0),
                p.as_secs_f64()
            );
        }
        let body = match body::read_limited(resp, self.max_response).await {
            Ok(b) => b,
            Err(body::BodyError::TooLarge { limit }) => return Err(too_large(shown, limit)),
            Err(body::BodyError::Cut(e)) => {
                return Ok(Err(Failure {
                    reason: format!(
                        "{shown}: the response body was cut short ({})",
                        self.redact(&transport(&e))
                    ),
                    status: Some(status),
                    dictated: None,
                    snippet: String::new(),
                }));
            }
        };
        if let Some(rules) = rules
            && let Some((i, rule)) = rules.decide(status, &headers, &body)
        {
            return self.ruled(rules, i, rule, shown, status, &headers, &body, now);
        }
        if (200..300).contains(&status) {
            return Ok(Ok(Reply::Page(Incoming {
                status,
                headers,
                body,
                url,
            })));
        }
        let snippet = self.redact(&snippet(&body));
        let retry_after = self.retry_after(&headers, now);
        if self.retry.on_status.contains(&status) && !never.contains(&status) {
            let reason = match (&retry_after, status) {
                (Some((raw, _)), 429) => {
                    format!("rate limited (429, {}: {raw})", self.rate.retry_after)
                }
                (Some((raw, _)), _) => {
                    format!("{status} from {shown} ({}: {raw})", self.rate.retry_after)
                }
                (None, 429) => format!(
                    "rate limited (429 from {shown}, no {})",
                    self.rate.retry_after
                ),
                (None, _) => format!("{status} from {shown}"),
            };
            return Ok(Err(Failure {
                reason,
                status: Some(status),
                dictated: retry_after.map(|(_, d)| d),
                snippet,
            }));
        }
        let hint = match status {
            401 | 403 if !self.auth_keys.is_empty() => format!(
                ": the API rejected the credentials in {}",
                self.auth_keys
                    .iter()
                    .map(|k| format!("config.{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            401 => ": the API wants credentials; add `http.auth` to the spec".into(),
            404 => ": check the stream's `path` and `http.base_url`".into(),
            _ => String::new(),
        };
        let body_part = if snippet.is_empty() {
            String::new()
        } else {
            format!("; body: {snippet}")
        };
        Err(Failure {
            reason: format!("{status} from {shown}{hint}{body_part}"),
            status: Some(status),
            dictated: None,
            snippet,
        })
    }
}

/// A duration for people: `3600s`, `1.5s`.
fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 || d >= Duration::from_secs(100) {
        format!("{}s", d.as_secs_f64().round())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The fatal failure of a body over `http.max_response_bytes`. No status: what the
/// response meant is unknown without its body (a 401 must not fetch a token again).
fn too_large(shown: &str, limit: u64) -> Failure {
    Failure {
        reason: format!(
            "{shown}: the response body is larger than http.max_response_bytes, {} (counted after decompression); not retried: raise http.max_response_bytes if pages really are this large, or ask the API for smaller pages",
            body::show_bytes(limit)
        ),
        status: None,
        dictated: None,
        snippet: String::new(),
    }
}

/// A transport error in words, without reqwest's URL (which may hold a query secret).
fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

/// The first bytes of a body, printable: runs of white space become one space, other
/// control and bidi characters are escaped (see [`crate::printable`]).
pub fn snippet(body: &[u8]) -> String {
    let cut = &body[..body.len().min(SNIPPET)];
    let text = String::from_utf8_lossy(cut);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = crate::printable::escape(&text).into_owned();
    if body.len() > SNIPPET {
        format!("{text}...")
    } else {
        text
    }
}

/// Config keys that feed the credentials, to name them when the API refuses them.
fn auth_config_keys(auth: &connector_spec::Auth) -> Vec<String> {
    use connector_spec::Auth;
    // The templates of a login body are its string leaves.
    let login_body: Vec<connector_spec::Template> = match auth {
        Auth::Session { login, .. } => login
            .body
            .iter()
            .flat_map(string_leaves)
            .map(connector_spec::Template::new)
            .collect(),
        _ => Vec::new(),
    };
    let templates: Vec<&connector_spec::Template> = match auth {
        Auth::None | Auth::Select { .. } => vec![],
        Auth::Session { login, .. } => login
            .headers
            .values()
            .chain(login.form.values())
            .chain(login_body.iter())
            .collect(),
        Auth::Oauth2RefreshToken {
            client_id,
            refresh_token,
            ..
        } => vec![client_id, refresh_token],
        Auth::Jwt { key, claims, .. } => std::iter::once(key).chain(claims.values()).collect(),
        Auth::Bearer { token } => vec![token],
        Auth::ApiKey { value, .. } => vec![value],
        Auth::Basic { username, password } => vec![username, password],
        Auth::Oauth2ClientCredentials {
            client_id,
            client_secret,
            ..
        } => vec![client_id, client_secret],
    };
    let mut keys: Vec<String> = templates
        .iter()
        .filter_map(|t| t.variables().ok())
        .flatten()
        .filter_map(|v| {
            v.strip_prefix("config.")
                .map(|k| k.split('.').next().unwrap_or(k).to_owned())
        })
        .collect();
    keys.dedup();
    keys
}

/// The string leaves of a JSON value.
fn string_leaves(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(string_leaves).collect(),
        Value::Object(o) => o.values().flat_map(string_leaves).collect(),
        _ => Vec::new(),
    }
}
