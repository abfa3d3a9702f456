//! OAuth2 refresh-token grant (RFC 6749 section 6), with refresh-token rotation.

use std::path::PathBuf;

use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::auth::TokenError;
use super::token::{self, Refused};
use super::token_store;

/// What the exchange is called in messages.
const WHAT: &str = "OAuth2 refresh-token request";

/// A refresh-token grant and its cached access token.
pub struct Refresh {
    pub(super) token_url: String,
    /// Form fields besides `grant_type` and `refresh_token`.
    pub(super) form: Vec<(String, String)>,
    pub(super) basic: Option<(String, String)>,
    /// The refresh token as configured.
    pub(super) configured: String,
    /// Where the configured refresh token comes from, e.g. `config.refresh_token`.
    pub(super) source: String,
    /// Where a rotated refresh token is saved; None: kept in memory for this run only.
    pub(super) store: std::sync::Mutex<Option<PathBuf>>,
    pub(super) state: Mutex<State>,
}

impl std::fmt::Debug for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens and the client secret stay out of every debug print.
        f.debug_struct("Refresh")
            .field("token_url", &self.token_url)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The tokens of the current run.
#[derive(Default)]
pub(super) struct State {
    /// The refresh token to use next: None until the token file has been read.
    refresh: Option<String>,
    access: Option<(String, Option<Instant>)>,
}

impl Refresh {
    /// Keeps rotated refresh tokens in `path` (read back on the next run).
    pub fn keep_in(&self, path: PathBuf) {
        if let Ok(mut s) = self.store.lock() {
            *s = Some(path);
        }
    }

    fn store_path(&self) -> Option<PathBuf> {
        self.store.lock().ok().and_then(|s| s.clone())
    }

    /// Forgets the access token after the API refused it.
    pub async fn invalidate(&self) {
        self.state.lock().await.access = None;
    }

    /// The access token, fetched when none is cached or it is about to expire; also the
    /// secrets learnt on the way (tokens to mask from now on).
    pub async fn token(
        &self,
        client: &reqwest::Client,
    ) -> Result<(String, Vec<String>), TokenError> {
        let mut st = self.state.lock().await;
        if let Some((t, exp)) = &st.access
            && token::usable(*exp, Instant::now())
        {
            return Ok((t.clone(), Vec::new()));
        }
        let mut learnt = Vec::new();
        let refresh = match &st.refresh {
            Some(r) => r.clone(),
            None => {
                let r = self.first_refresh_token()?;
                learnt.push(r.clone());
                st.refresh = Some(r.clone());
                r
            }
        };
        let json = self.exchange(client, &refresh).await?;
        let access = token::text_field(&json, "access_token", WHAT, &self.token_url)?;
        learnt.push(access.clone());
        if let Some(rotated) = json.get("refresh_token").and_then(Value::as_str)
            && !rotated.is_empty()
            && rotated != refresh
        {
            learnt.push(rotated.to_owned());
            // Saved before the access token is used: once the API has rotated it, the old
            // refresh token may be dead, and this one is the only way back in.
            self.save(rotated)?;
            st.refresh = Some(rotated.to_owned());
        }
        let expires = token::expiry_in(json.get("expires_in"), Instant::now());
        st.access = Some((access.clone(), expires));
        Ok((access, learnt))
    }

    /// The saved rotated refresh token when there is one for the configured token, else
    /// the configured one.
    fn first_refresh_token(&self) -> Result<String, TokenError> {
        let Some(path) = self.store_path() else {
            return Ok(self.configured.clone());
        };
        match token_store::load(&path, &self.configured) {
            Ok(Some(saved)) => {
                tracing::debug!(
                    "using the rotated refresh token saved in {}",
                    path.display()
                );
                Ok(saved)
            }
            Ok(None) => Ok(self.configured.clone()),
            Err(e) => Err(TokenError::fatal(e.to_string())),
        }
    }

    fn save(&self, rotated: &str) -> Result<(), TokenError> {
        match self.store_path() {
            Some(path) => {
                token_store::save(&path, &self.configured, rotated).map_err(|e| {
                    TokenError::fatal(format!(
                        "{e}; the token endpoint has rotated the refresh token, so the old one may no longer work: fix the folder, then authorise again if the next run is refused"
                    ))
                })?;
                tracing::info!(
                    "the token endpoint rotated the OAuth2 refresh token; saved in {}",
                    path.display()
                );
            }
            None => tracing::warn!(
                "the token endpoint rotated the OAuth2 refresh token, and this run has no state folder to save it in; it is used for this run only, and {} may be refused next time",
                self.source
            ),
        }
        Ok(())
    }

    async fn exchange(&self, client: &reqwest::Client, refresh: &str) -> Result<Value, TokenError> {
        let mut form: Vec<(&str, &str)> =
            vec![("grant_type", "refresh_token"), ("refresh_token", refresh)];
        form.extend(self.form.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut req = client.post(&self.token_url).form(&form);
        if let Some((id, secret)) = &self.basic {
            req = req.basic_auth(id, Some(secret));
        }
        token::exchange(req, &self.token_url, WHAT)
            .await
            .map_err(|e| e.map_or_else(|t| t, |r| self.refused(&r)))
    }

    /// A refusal in words: what the server said and what the user must do.
    fn refused(&self, r: &Refused) -> TokenError {
        let code = r
            .error
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let what_to_do = if r.error.as_deref() == Some("invalid_grant") || r.status == 400 {
            format!(
                "the refresh token has expired, been revoked or been replaced; authorise the app again and set {} to the new refresh token",
                self.source
            )
        } else {
            "the token endpoint rejected the client credentials; check the client id and secret"
                .to_owned()
        };
        TokenError::fatal(format!(
            "{WHAT} to {} answered {}{code}: {what_to_do}",
            self.token_url, r.status
        ))
    }
}
