//! Which origins are the API's own: credentials go there and nowhere else, and next pages
//! may only lead there.
//!
//! An origin is scheme, host and port (default ports filled in), as in RFC 6454. The API's
//! origin is that of the rendered `http.base_url`; `http.trusted_origins` adds others.

use std::fmt;

use url::Url;

/// Scheme, host and port of a URL; `http://h` and `http://h:80` are the same origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an http(s) URL; None for other schemes or a URL without a host.
    pub fn of(url: &Url) -> Option<Self> {
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        Some(Self {
            scheme: url.scheme().to_owned(),
            // Already lowercased and IDNA-normalised by the parser; IPv6 keeps its brackets.
            host: url.host_str().filter(|h| !h.is_empty())?.to_owned(),
            port: url.port_or_known_default()?,
        })
    }

    /// Parses an origin written in a spec, e.g. `https://files.example.com:8443`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::of(&Url::parse(text.trim()).ok()?)
    }

    /// Whether this origin is `https`.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = if self.is_https() { 443 } else { 80 };
        if self.port == default {
            write!(f, "{}://{}", self.scheme, self.host)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// A next page URL that must not be followed; the message is fit to print (the URL is
/// not in it, only its scheme or origin, so no query secret can leak).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OriginError(pub String);

/// The API's origin and the origins the spec trusts as its own.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    base: Option<Origin>,
    trusted: Vec<Origin>,
}

impl Allowed {
    /// The origins of a rendered base URL and of `http.trusted_origins` (entries that do not
    /// parse are skipped: `validate` reports them).
    pub fn new(base_url: &str, trusted: &[String]) -> Self {
        Self {
            base: Url::parse(base_url.trim())
                .ok()
                .and_then(|u| Origin::of(&u)),
            trusted: trusted.iter().filter_map(|t| Origin::parse(t)).collect(),
        }
    }

    /// The API's own origin, when the base URL is a URL.
    pub fn base(&self) -> Option<&Origin> {
        self.base.as_ref()
    }

    /// Whether a URL is on the API's origin or a trusted one.
    pub fn allows(&self, url: &Url) -> bool {
        Origin::of(url).is_some_and(|o| self.allows_origin(&o))
    }

    fn allows_origin(&self, o: &Origin) -> bool {
        self.base.as_ref() == Some(o) || self.trusted.contains(o)
    }

    /// Whether a request to `url` may carry credentials; `secure_before` says whether an
    /// earlier hop of the same request (before a redirect) was https, since a downgrade
    /// to plain http never carries one, even to a trusted origin.
    pub fn credentials_for(&self, url: &Url, secure_before: bool) -> bool {
        if secure_before && url.scheme() != "https" {
            return false;
        }
        self.allows(url)
    }

    /// Checks a next page URL (from the body or a `Link` header) before it is requested:
    /// only http(s), and only on the API's origin or a trusted one.
    pub fn check_next(&self, url: &Url) -> Result<(), OriginError> {
        let Some(origin) = Origin::of(url) else {
            let scheme = url.scheme();
            return Err(OriginError(if matches!(scheme, "http" | "https") {
                format!("the next page URL has no host ({scheme}:); refusing to follow it")
            } else {
                format!(
                    "the next page URL has the scheme `{}:`; only http and https pages are followed, so the API's answer is refused",
                    printable(scheme)
                )
            }));
        };
        if self.allows_origin(&origin) {
            return Ok(());
        }
        let own = match &self.base {
            Some(b) => format!("the API's origin {b} (http.base_url)"),
            None => "the API's origin (http.base_url)".to_owned(),
        };
        Err(OriginError(format!(
            "the next page URL is on {origin}, not on {own}; it is not followed, so no credential leaves for another host. If the API really pages on that host, add \"{origin}\" to http.trusted_origins"
        )))
    }
}

/// A scheme cut to a printable length (it is API-controlled text).
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(32)
        .collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn default_ports_and_case_are_normalised() {
        let a = Origin::of(&u("HTTPS://Api.Example.com/v1?x=1")).unwrap();
        let b = Origin::of(&u("https://api.example.com:443/other")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "https://api.example.com");
        let c = Origin::of(&u("http://api.example.com:8080/")).unwrap();
        assert_ne!(a, c);
        assert_eq!(c.to_string(), "http://api.example.com:8080");
        assert_ne!(
            Origin::of(&u("http://api.example.com/")),
            Origin::of(&u("https://api.example.com/"))
        );
        assert_eq!(Origin::of(&u("file:///etc/passwd")), None);
        assert_eq!(Origin::of(&u("ftp://h/x")), None);
    }

    #[test]
    fn credentials_only_for_the_base_and_trusted_origins() {
        let a = Allowed::new(
            "https://api.example.com/v1",
            &["https://files.example.com".into(), "not an origin".into()],
        );
        assert!(a.allows(&u("https://api.example.com/v1/orders?page=2")));
        assert!(a.allows(&u("https://api.example.com:443/")));
        assert!(a.allows(&u("https://files.example.com/x")));
        assert!(!a.allows(&u("https://api.example.com:8443/")));
        assert!(!a.allows(&u("http://api.example.com/")));
        assert!(!a.allows(&u("https://evil.example.com/")));
        assert!(!a.allows(&u("http://169.254.169.254/latest/meta-data")));
        assert!(!Allowed::new("not a url", &[]).allows(&u("https://api.example.com/")));
    }

    #[test]
    fn an_https_to_http_downgrade_never_carries_credentials() {
        // Both origins trusted, yet a redirect from the https one to the http one is a
        // downgrade: the credential would cross the network in the clear.
        let a = Allowed::new(
            "https://api.example.com",
            &["http://api.example.com".into()],
        );
        let plain = u("http://api.example.com/next");
        assert!(a.credentials_for(&plain, false));
        assert!(!a.credentials_for(&plain, true));
        assert!(a.credentials_for(&u("https://api.example.com/next"), true));
        assert!(!a.credentials_for(&u("https://other.example.com/"), false));
    }

    #[test]
    fn next_pages_elsewhere_are_refused_with_both_origins() {
        let a = Allowed::new("http://127.0.0.1:8080/api", &[]);
        assert_eq!(a.check_next(&u("http://127.0.0.1:8080/api?page=2")), Ok(()));
        let e = a
            .check_next(&u("http://127.0.0.2:9090/steal?key=s3cr3t"))
            .unwrap_err()
            .0;
        assert!(e.contains("http://127.0.0.2:9090"), "{e}");
        assert!(e.contains("http://127.0.0.1:8080"), "{e}");
        assert!(e.contains("http.trusted_origins"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        for bad in ["file:///etc/passwd", "ftp://h/x", "gopher://h/", "data:,x"] {
            let e = a.check_next(&u(bad)).unwrap_err().0;
            assert!(e.contains("only http and https"), "{bad}: {e}");
        }
        let trusted = Allowed::new("http://127.0.0.1:8080", &["http://127.0.0.2:9090".into()]);
        assert_eq!(trusted.check_next(&u("http://127.0.0.2:9090/p")), Ok(()));
    }
}
