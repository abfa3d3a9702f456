//! Redirects followed by hand, so the credentials are decided again at every hop.
//!
//! reqwest's own policy would carry custom headers (an API key header, a header built from
//! a secret) and the query of a `Referer` to whatever host a `Location` names. Here each
//! hop gets credentials only when its origin is the API's own or a trusted one, and never
//! after a step down from https to http.

use reqwest::header::{HeaderValue, LOCATION};
use reqwest::{Method, RequestBuilder, Response};
use url::Url;

use super::{Failure, Http, Outgoing, transport};

/// Redirects followed for one request before giving up.
pub const MAX_HOPS: usize = 10;

/// One request of a redirect chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The method of this hop (a 303 turns a POST into a GET).
    pub method: Method,
    /// Where this hop goes, without credentials added.
    pub url: Url,
    /// Whether the body of the original request is sent on this hop.
    pub with_body: bool,
    /// Whether an earlier hop was https: an http hop after it is a downgrade.
    pub secure_before: bool,
}

impl Hop {
    /// The first hop: the request as built.
    pub fn first(req: &Outgoing) -> Self {
        Self {
            method: req.method.clone(),
            url: req.url.clone(),
            with_body: req.body.is_some(),
            secure_before: false,
        }
    }

    /// The hop a response leads to: None when it is not a redirect to follow (not a 3xx
    /// redirect status, or no `Location`); Err with the reason when it must not be followed.
    pub fn next(&self, status: u16, location: Option<&HeaderValue>) -> Result<Option<Hop>, String> {
        if !matches!(status, 301 | 302 | 303 | 307 | 308) {
            return Ok(None);
        }
        let Some(location) = location else {
            return Ok(None);
        };
        let text = location
            .to_str()
            .map_err(|_| format!("redirect ({status}) whose Location is not text"))?;
        let url = self
            .url
            .join(text.trim())
            .map_err(|e| format!("redirect ({status}) whose Location is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "redirect ({status}) to a `{}:` URL; only http and https redirects are followed",
                url.scheme().chars().take(32).collect::<String>()
            ));
        }
        // 307 and 308 repeat the request as it was; the others become a GET (RFC 9110 15.4).
        let keep = matches!(status, 307 | 308);
        Ok(Some(Hop {
            method: if keep {
                self.method.clone()
            } else {
                Method::GET
            },
            with_body: keep && self.with_body,
            secure_before: self.secure_before || self.url.scheme() == "https",
            url,
        }))
    }
}

/// Why a chain of hops ended without a response to return.
pub(super) enum Stop {
    /// Worth another attempt (a transport error, a token endpoint that did not answer).
    Retry(Failure),
    /// Another attempt cannot help.
    Fatal(Failure),
}

/// Whether a header carries a credential by its name alone.
fn credential_name(name: &str) -> bool {
    ["authorization", "proxy-authorization", "cookie"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

impl Http {
    /// Sends a request and follows its redirects; returns the last response and its URL.
    pub(super) async fn follow(
        &self,
        req: &Outgoing,
        shown: &str,
    ) -> Result<(Response, Url), Stop> {
        let mut hop = Hop::first(req);
        let mut hops = 0usize;
        loop {
            let trusted = self.origins.credentials_for(&hop.url, hop.secure_before);
            let rb = self.hop_request(req, &hop, trusted, shown).await?;
            let resp = rb.send().await.map_err(|e| {
                Stop::Retry(failure(format!("{shown}: {}", self.redact(&transport(&e)))))
            })?;
            let status = resp.status().as_u16();
            let next = hop
                .next(status, resp.headers().get(LOCATION))
                .map_err(|why| Stop::Fatal(failure(format!("{shown}: {why}"))))?;
            let Some(next) = next else {
                return Ok((resp, hop.url));
            };
            hops += 1;
            if hops > MAX_HOPS {
                return Err(Stop::Fatal(failure(format!(
                    "{shown}: more than {MAX_HOPS} redirects; the last one went to {}",
                    self.show_url(&next.url)
                ))));
            }
            tracing::debug!(
                "{shown}: {status} redirect to {} ({})",
                self.show_url(&next.url),
                if self.origins.credentials_for(&next.url, next.secure_before) {
                    "with credentials"
                } else {
                    "another origin: without credentials"
                }
            );
            hop = next;
        }
    }

    /// The request of one hop: the spec headers (those that carry a secret only where
    /// credentials go), the body when the hop keeps it, and the credentials when trusted.
    async fn hop_request(
        &self,
        req: &Outgoing,
        hop: &Hop,
        trusted: bool,
        shown: &str,
    ) -> Result<RequestBuilder, Stop> {
        let mut rb = self.client.request(hop.method.clone(), hop.url.clone());
        for (k, v) in &req.headers {
            if trusted || !(credential_name(k) || self.holds_secret(v)) {
                rb = rb.header(k.as_str(), v.as_str());
            }
        }
        if let (true, Some(body)) = (hop.with_body, &req.body) {
            if !trusted && self.holds_secret(&String::from_utf8_lossy(body)) {
                return Err(Stop::Fatal(failure(format!(
                    "{shown}: redirected to {}, another origin, with a body that holds a secret; not followed",
                    self.show_url(&hop.url)
                ))));
            }
            rb = rb
                .header("content-type", "application/json")
                .body(body.clone());
        }
        if !trusted {
            return Ok(rb);
        }
        match self.creds.apply(rb, &self.client, &hop.url).await {
            Ok((rb, learnt)) => {
                if !learnt.is_empty()
                    && let Ok(mut r) = self.redactor.write()
                {
                    for t in &learnt {
                        r.add(t);
                    }
                }
                Ok(rb)
            }
            Err(e) => {
                let f = failure(self.redact(&e.message));
                Err(if e.fatal {
                    Stop::Fatal(f)
                } else {
                    Stop::Retry(f)
                })
            }
        }
    }

    /// Whether a text holds a configured secret or a learnt token.
    fn holds_secret(&self, text: &str) -> bool {
        match self.redactor.read() {
            Ok(r) => r.contains(text),
            // Cannot tell: treat it as secret.
            Err(_) => true,
        }
    }
}

fn failure(reason: String) -> Failure {
    Failure {
        reason,
        status: None,
        dictated: None,
        snippet: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(method: Method, url: &str) -> Hop {
        Hop {
            method,
            url: Url::parse(url).unwrap(),
            with_body: true,
            secure_before: false,
        }
    }

    fn loc(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn methods_and_bodies_per_status() {
        let h = hop(Method::POST, "http://a/x/y?q=1");
        for s in [301, 302, 303] {
            let n = h.next(s, Some(&loc("/z"))).unwrap().unwrap();
            assert_eq!((n.method, n.with_body), (Method::GET, false), "{s}");
            assert_eq!(n.url.as_str(), "http://a/z");
        }
        for s in [307, 308] {
            let n = h.next(s, Some(&loc("z"))).unwrap().unwrap();
            assert_eq!((n.method, n.with_body), (Method::POST, true), "{s}");
            assert_eq!(n.url.as_str(), "http://a/x/z");
        }
        assert_eq!(h.next(200, Some(&loc("/z"))), Ok(None));
        assert_eq!(h.next(304, Some(&loc("/z"))), Ok(None));
        assert_eq!(h.next(302, None), Ok(None));
    }

    #[test]
    fn other_schemes_are_refused() {
        let h = hop(Method::GET, "http://a/x");
        for bad in ["file:///etc/passwd", "ftp://b/x", "gopher://b/", "data:,x"] {
            let e = h.next(302, Some(&loc(bad))).unwrap_err();
            assert!(e.contains("only http and https"), "{bad}: {e}");
        }
        assert!(h.next(302, Some(&loc("http://[::1"))).is_err());
    }

    #[test]
    fn a_step_down_to_http_is_remembered_along_the_chain() {
        let origins = crate::origin::Allowed::new(
            "https://api.example.com",
            &["http://api.example.com".into()],
        );
        let first = hop(Method::GET, "https://api.example.com/a");
        assert!(origins.credentials_for(&first.url, first.secure_before));
        let down = first
            .next(302, Some(&loc("http://api.example.com/b")))
            .unwrap()
            .unwrap();
        assert!(down.secure_before);
        assert!(!origins.credentials_for(&down.url, down.secure_before));
        // Back up to https on the API's own origin: credentials again.
        let up = down
            .next(302, Some(&loc("https://api.example.com/c")))
            .unwrap()
            .unwrap();
        assert!(origins.credentials_for(&up.url, up.secure_before));
        // And another origin never gets them.
        let away = up
            .next(307, Some(&loc("https://evil.example.com/")))
            .unwrap()
            .unwrap();
        assert!(!origins.credentials_for(&away.url, away.secure_before));
    }

    #[test]
    fn credential_headers_by_name() {
        assert!(credential_name("Authorization"));
        assert!(credential_name("cookie"));
        assert!(!credential_name("X-Client"));
    }
}
