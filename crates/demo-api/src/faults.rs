//! Scripted faults: a test queues a fault for a path, and the next request that matches gets it
//! instead of (or on top of) the normal answer.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::lock;

/// One scripted misbehaviour, consumed by the next matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status, headers and body instead of running the handler (auth and the
    /// rate limit are not consulted). An empty body becomes a JSON error body.
    Status {
        /// HTTP status.
        code: u16,
        /// Extra headers, e.g. `("Retry-After", "1")`.
        #[serde(default)]
        headers: Vec<(String, String)>,
        /// Body text.
        #[serde(default)]
        body: String,
    },
    /// Answer normally but advertise these rate-limit values.
    RateLimitHeaders {
        /// `X-RateLimit-Remaining`.
        remaining: u64,
        /// `X-RateLimit-Reset`, unix seconds.
        reset: u64,
    },
    /// Send the status, headers and the first half of the body (chunked), then reset the
    /// connection: the client sees a body cut short.
    DropMidBody,
    /// Send a `Content-Length` for the whole body but only its first half, then close.
    Truncated,
    /// A well-framed 200 whose body is the first half of the JSON (invalid JSON).
    CutJson,
    /// Wait this long before handling the request.
    Slow {
        /// The delay, in milliseconds in JSON (`{"kind":"slow","delay_ms":1500}`).
        #[serde(rename = "delay_ms", with = "millis")]
        delay: Duration,
    },
    /// Close the connection before sending anything (no status line).
    Close,
    /// Run the handler (a `POST /orders` commits its write), then close the connection instead
    /// of answering.
    CommitThenDrop,
}

impl Fault {
    /// A bare status answer.
    pub fn status(code: u16) -> Self {
        Fault::Status {
            code,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    /// A status answer with `Retry-After: <secs>` (delta-seconds form).
    pub fn retry_after_secs(code: u16, secs: u64) -> Self {
        Fault::Status {
            code,
            headers: vec![("Retry-After".into(), secs.to_string())],
            body: String::new(),
        }
    }

    /// A status answer with `Retry-After: <IMF-fixdate>` (HTTP-date form).
    pub fn retry_after_date(code: u16, at: SystemTime) -> Self {
        Fault::Status {
            code,
            headers: vec![("Retry-After".into(), httpdate::fmt_http_date(at))],
            body: String::new(),
        }
    }

    /// A delay before handling.
    pub fn slow(delay: Duration) -> Self {
        Fault::Slow { delay }
    }

    /// Short name for the request log.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Status { .. } => "status",
            Fault::RateLimitHeaders { .. } => "rate_limit_headers",
            Fault::DropMidBody => "drop_mid_body",
            Fault::Truncated => "truncated",
            Fault::CutJson => "cut_json",
            Fault::Slow { .. } => "slow",
            Fault::Close => "close",
            Fault::CommitThenDrop => "commit_then_drop",
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Which requests a fault applies to: `"/orders"` (any method, path prefix, so
/// `/orders/7/items` too), `"POST /orders"` (that method only), and a trailing `$` for the exact
/// path: `"GET /orders$"` (the list, not the items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    method: Option<String>,
    prefix: String,
    exact: bool,
}

impl Matcher {
    /// Reads `"[METHOD ]PATH_PREFIX[$]"`.
    pub fn parse(spec: &str) -> Self {
        let spec = spec.trim();
        let (method, path) = match spec.split_once(' ') {
            Some((m, p)) if !m.starts_with('/') => (Some(m.to_ascii_uppercase()), p.trim()),
            _ => (None, spec),
        };
        let (path, exact) = match path.strip_suffix('$') {
            Some(p) => (p, true),
            None => (path, false),
        };
        Self {
            method,
            prefix: path.to_string(),
            exact,
        }
    }

    /// Whether a request matches.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m == method)
            && if self.exact {
                path == self.prefix
            } else {
                path.starts_with(&self.prefix)
            }
    }
}

/// The queue of scripted faults, in the order they were pushed.
#[derive(Debug, Default)]
pub struct FaultQueue {
    queue: Mutex<VecDeque<(Matcher, Fault)>>,
}

impl FaultQueue {
    /// Queues a fault for the next request matching `spec` (see [`Matcher::parse`]).
    pub fn push(&self, spec: &str, fault: Fault) {
        lock(&self.queue).push_back((Matcher::parse(spec), fault));
    }

    /// Takes the oldest fault matching this request.
    pub fn take(&self, method: &str, path: &str) -> Option<Fault> {
        let mut q = lock(&self.queue);
        let pos = q.iter().position(|(m, _)| m.matches(method, path))?;
        q.remove(pos).map(|(_, f)| f)
    }

    /// Faults not consumed yet.
    pub fn pending(&self) -> usize {
        lock(&self.queue).len()
    }

    /// Drops every queued fault.
    pub fn clear(&self) {
        lock(&self.queue).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_consumed_in_order_per_match() {
        let q = FaultQueue::default();
        q.push("/orders", Fault::status(500));
        q.push("POST /orders", Fault::CommitThenDrop);
        q.push("/orders", Fault::status(503));
        assert_eq!(q.take("GET", "/products"), None);
        assert_eq!(q.take("GET", "/orders"), Some(Fault::status(500)));
        assert_eq!(q.take("GET", "/orders/3/items"), Some(Fault::status(503)));
        assert_eq!(q.take("GET", "/orders"), None);
        assert_eq!(q.take("POST", "/orders"), Some(Fault::CommitThenDrop));
        assert_eq!(q.pending(), 0);
        q.push("GET /orders$", Fault::Close);
        assert_eq!(q.take("GET", "/orders/1/items"), None);
        assert_eq!(q.take("POST", "/orders"), None);
        assert_eq!(q.take("GET", "/orders"), Some(Fault::Close));
    }

    #[test]
    fn faults_read_from_json() {
        let f: Fault = serde_json::from_str(r#"{"kind":"slow","delay_ms":1500}"#).unwrap();
        assert_eq!(f, Fault::slow(Duration::from_millis(1500)));
        let f: Fault =
            serde_json::from_str(r#"{"kind":"status","code":429,"headers":[["Retry-After","1"]]}"#)
                .unwrap();
        assert_eq!(f, Fault::retry_after_secs(429, 1));
        let f: Fault = serde_json::from_str(r#"{"kind":"drop_mid_body"}"#).unwrap();
        assert_eq!(f, Fault::DropMidBody);
    }

    #[test]
    fn http_date_form() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let Fault::Status { headers, .. } = Fault::retry_after_date(503, at) else {
            panic!("not a status fault")
        };
        assert_eq!(headers[0].1, "Tue, 14 Nov 2023 22:13:20 GMT");
    }
}
