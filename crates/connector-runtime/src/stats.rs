//! Counters of one stream's run, shared between its tasks and the progress display.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// What a stream has done so far.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records written.
    pub records: AtomicU64,
    /// Records dropped by the stream's `filter`.
    pub filtered: AtomicU64,
    /// Pages received.
    pub pages: AtomicU64,
    /// Responses an error rule skipped (`action: skip`).
    pub skipped: AtomicU64,
    /// HTTP requests sent, retries included.
    pub requests: AtomicU64,
    /// Attempts repeated after a failure.
    pub retries: AtomicU64,
    /// Time spent waiting for rate limits and backoff, in milliseconds.
    pub waited_ms: AtomicU64,
}

impl Stats {
    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Adds a wait.
    pub fn waited(&self, d: Duration) {
        self.waited_ms
            .fetch_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX), Relaxed);
    }

    /// A consistent-enough copy for display.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            records: self.records.load(Relaxed),
            pages: self.pages.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            requests: self.requests.load(Relaxed),
            retries: self.retries.load(Relaxed),
            waited: Duration::from_millis(self.waited_ms.load(Relaxed)),
        }
    }
}

/// A copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// Records written.
    pub records: u64,
    /// Pages received.
    pub pages: u64,
    /// Responses an error rule skipped.
    pub skipped: u64,
    /// HTTP requests sent.
    pub requests: u64,
    /// Attempts repeated.
    pub retries: u64,
    /// Time spent waiting.
    #[serde(serialize_with = "secs")]
    pub waited: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
