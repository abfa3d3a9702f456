//! The request log: every request to a data endpoint, in arrival order, with its arrival time
//! and the status it got, so tests can count requests and check their spacing.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::lock;

/// One logged request.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    /// Arrival number, from 0 when the server started (not reset by a clear).
    pub seq: u64,
    /// Arrival time on the monotonic clock.
    #[serde(skip)]
    pub instant: Instant,
    /// Arrival time since the server started.
    #[serde(rename = "at_ms", serialize_with = "ser_ms")]
    pub at: Duration,
    /// Arrival time, unix milliseconds.
    pub unix_ms: u64,
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Status sent; 0 while in flight or when the connection was closed before a status line.
    pub status: u16,
    /// The scripted fault applied, if any (`status`, `close`, `drop_mid_body`, ...).
    pub fault: Option<String>,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// Whether the request carried the right bearer token.
    pub authorized: bool,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl RequestRecord {
    /// Whether this request was answered with a status (not cut before the status line).
    pub fn answered(&self) -> bool {
        self.status != 0
    }

    /// The value of a query parameter, decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// Fields of a request at arrival.
#[derive(Debug, Clone)]
pub(crate) struct Arrival {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub idempotency_key: Option<String>,
    pub authorized: bool,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    /// seq of `records[0]`.
    base_seq: u64,
    records: Vec<RequestRecord>,
}

/// The log itself.
#[derive(Debug)]
pub struct RequestLog {
    started: Instant,
    inner: Mutex<Inner>,
}

impl RequestLog {
    /// An empty log whose clock starts now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// When the log's clock started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Logs an arrival; returns its sequence number, to finish it with the status.
    pub(crate) fn arrive(&self, a: Arrival) -> u64 {
        let now = Instant::now();
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut inner = lock(&self.inner);
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.records.push(RequestRecord {
            seq,
            instant: now,
            at: now.duration_since(self.started),
            unix_ms,
            method: a.method,
            path: a.path,
            query: a.query,
            status: 0,
            fault: None,
            idempotency_key: a.idempotency_key,
            authorized: a.authorized,
        });
        seq
    }

    /// Records the status (and fault) of a logged request.
    pub(crate) fn finish(&self, seq: u64, status: u16, fault: Option<&str>) {
        let mut inner = lock(&self.inner);
        let Some(idx) = seq.checked_sub(inner.base_seq) else {
            return;
        };
        if let Some(r) = inner.records.get_mut(idx as usize) {
            r.status = status;
            if let Some(f) = fault {
                r.fault = Some(f.to_string());
            }
        }
    }

    /// A copy of every record since the last clear, in arrival order.
    pub fn records(&self) -> Vec<RequestRecord> {
        lock(&self.inner).records.clone()
    }

    /// Forgets every record.
    pub fn clear(&self) {
        let mut inner = lock(&self.inner);
        inner.base_seq = inner.next_seq;
        inner.records.clear();
    }
}

impl Default for RequestLog {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(path: &str) -> Arrival {
        Arrival {
            method: "GET".into(),
            path: path.into(),
            query: Some("limit=5&cursor=a%2Bb".into()),
            idempotency_key: None,
            authorized: true,
        }
    }

    #[test]
    fn log_arrival_finish_clear() {
        let log = RequestLog::new();
        let a = log.arrive(arrival("/a"));
        let b = log.arrive(arrival("/b"));
        log.finish(b, 429, None);
        log.finish(a, 0, Some("close"));
        let r = log.records();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].status, r[0].fault.as_deref()), (0, Some("close")));
        assert_eq!(r[1].status, 429);
        assert!(r[0].instant <= r[1].instant);
        assert_eq!(r[1].param("cursor").as_deref(), Some("a+b"));
        log.clear();
        let c = log.arrive(arrival("/c"));
        log.finish(a, 500, None); // from before the clear: ignored
        log.finish(c, 200, None);
        let r = log.records();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].seq, r[0].status), (2, 200));
    }
}
