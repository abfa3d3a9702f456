//! The server side of the IETF Idempotency-Key draft: each key is stored with the request's
//! fingerprint and, once processed, its response, for a configurable window. The same key with
//! the same request replays the stored response; with another request, 422; while the first
//! request is still being processed, 409.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::lock;

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// Status of the first answer.
    pub status: u16,
    /// Body of the first answer (JSON).
    pub body: Bytes,
}

#[derive(Debug, Clone)]
enum Entry {
    InFlight {
        fingerprint: [u8; 32],
    },
    Done {
        fingerprint: [u8; 32],
        response: StoredResponse,
        at: Instant,
    },
}

/// What to do with a request carrying a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// A new key (or an expired one): process the request, then [`IdempotencyStore::complete`].
    Proceed,
    /// Already processed with the same request: send this again.
    Replay(StoredResponse),
    /// The first request with this key is still being processed: 409.
    InFlight,
    /// The key was used with a different request: 422.
    Mismatch,
}

/// Keys, their fingerprints and stored responses.
#[derive(Debug)]
pub struct IdempotencyStore {
    window: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl IdempotencyStore {
    /// A store keeping each processed key for `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Looks a key up and, when it is new, marks it in flight.
    pub fn begin(&self, key: &str, fingerprint: [u8; 32], now: Instant) -> Begin {
        let mut entries = lock(&self.entries);
        let window = self.window;
        let expired = |at: &Instant| now.saturating_duration_since(*at) >= window;
        if entries.len() > 10_000 {
            entries.retain(|_, e| !matches!(e, Entry::Done { at, .. } if expired(at)));
        }
        match entries.get(key) {
            Some(Entry::Done { at, .. }) if expired(at) => {}
            Some(Entry::Done {
                fingerprint: fp,
                response,
                ..
            }) => {
                return if *fp == fingerprint {
                    Begin::Replay(response.clone())
                } else {
                    Begin::Mismatch
                };
            }
            Some(Entry::InFlight { fingerprint: fp }) => {
                return if *fp == fingerprint {
                    Begin::InFlight
                } else {
                    Begin::Mismatch
                };
            }
            None => {}
        }
        entries.insert(key.to_string(), Entry::InFlight { fingerprint });
        Begin::Proceed
    }

    /// Stores the response of a processed request.
    pub fn complete(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        response: StoredResponse,
        now: Instant,
    ) {
        lock(&self.entries).insert(
            key.to_string(),
            Entry::Done {
                fingerprint,
                response,
                at: now,
            },
        );
    }

    /// Forgets a key whose processing failed before anything was written.
    pub fn abandon(&self, key: &str) {
        let mut entries = lock(&self.entries);
        if matches!(entries.get(key), Some(Entry::InFlight { .. })) {
            entries.remove(key);
        }
    }

    /// Keys stored (in flight or done, expired ones included until purged).
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The fingerprint of a request: SHA-256 of the method, the path and the body, where a JSON
/// body is first written canonically (object keys sorted, no whitespace) so the same record
/// serialised twice gives the same fingerprint.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let mut out = String::new();
            canonical(&v, &mut out);
            h.update(out.as_bytes());
        }
        Err(_) => h.update(body),
    }
    let mut fp = [0u8; 32];
    fp.copy_from_slice(&h.finalize());
    fp
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(*k) {
                    canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(body: &'static str) -> StoredResponse {
        StoredResponse {
            status: 201,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn fingerprint_ignores_key_order_and_spacing_only() {
        let a = fingerprint("POST", "/orders", br#"{"a":1,"b":[1,{"y":2,"x":1}]}"#);
        let b = fingerprint("POST", "/orders", br#"{ "b": [1, {"x":1,"y":2}], "a": 1 }"#);
        let c = fingerprint("POST", "/orders", br#"{"a":2,"b":[1,{"y":2,"x":1}]}"#);
        let d = fingerprint("PUT", "/orders", br#"{"a":1,"b":[1,{"y":2,"x":1}]}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_ne!(
            fingerprint("POST", "/o", b"not json"),
            fingerprint("POST", "/o", b"not json!")
        );
    }

    #[test]
    fn key_lifecycle() {
        let store = IdempotencyStore::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let fp = fingerprint("POST", "/orders", b"{}");
        let other = fingerprint("POST", "/orders", b"[]");
        assert_eq!(store.begin("k", fp, t0), Begin::Proceed);
        assert_eq!(store.begin("k", fp, t0), Begin::InFlight);
        assert_eq!(store.begin("k", other, t0), Begin::Mismatch);
        store.complete("k", fp, resp(r#"{"id":1}"#), t0);
        assert_eq!(store.begin("k", fp, t0), Begin::Replay(resp(r#"{"id":1}"#)));
        assert_eq!(store.begin("k", other, t0), Begin::Mismatch);
        // After the window the key is new again.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(store.begin("k", other, later), Begin::Proceed);
        // An abandoned key can be used again at once.
        assert_eq!(store.begin("j", fp, t0), Begin::Proceed);
        store.abandon("j");
        assert_eq!(store.begin("j", other, t0), Begin::Proceed);
    }
}
