//! What a sync tells its host while it runs, and the outcome of each stream.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::stats::{Snapshot, Stats};

/// How one stream ended.
#[derive(Debug, Clone, Serialize)]
pub struct StreamOutcome {
    /// The stream.
    pub stream: String,
    /// Its counters at the end.
    pub stats: Snapshot,
    /// Wall time from its first request to its end.
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    /// Why it failed, if it did (secrets masked).
    pub error: Option<String>,
    /// Why it stopped paging, when it succeeded.
    pub stop: Option<String>,
}

impl StreamOutcome {
    /// Records per second over the stream's wall time.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.stats.records as f64 / s
        } else {
            0.0
        }
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Receives a sync's events; the host decides how to show them.
pub trait Reporter: Send + Sync {
    /// A stream started; its counters will move.
    fn started(&self, stream: &str, stats: Arc<Stats>);
    /// A stream ended.
    fn finished(&self, outcome: &StreamOutcome);
    /// Something works, but probably not as meant.
    fn warning(&self, stream: &str, message: &str);
}

/// A reporter that logs through `tracing`: start, progress every few seconds, end.
#[derive(Debug, Default)]
pub struct LogReporter;

impl Reporter for LogReporter {
    fn started(&self, stream: &str, stats: Arc<Stats>) {
        tracing::info!(stream, "{stream}: started");
        let name = stream.to_owned();
        let weak = Arc::downgrade(&stats);
        drop(stats);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    // The stream dropped its counters: it is over.
                    let Some(stats) = weak.upgrade() else { break };
                    let s = stats.snapshot();
                    tracing::info!(stream = %name, records = s.records, pages = s.pages, "{name}: {} records, {} pages so far", s.records, s.pages);
                }
            });
        }
    }

    fn finished(&self, o: &StreamOutcome) {
        match &o.error {
            None => tracing::info!(
                stream = %o.stream,
                records = o.stats.records,
                pages = o.stats.pages,
                "{}: done, {} records, {} pages in {:.2}s",
                o.stream,
                o.stats.records,
                o.stats.pages,
                o.elapsed.as_secs_f64()
            ),
            Some(e) => tracing::error!(stream = %o.stream, "{}: failed: {e}", o.stream),
        }
    }

    fn warning(&self, stream: &str, message: &str) {
        tracing::warn!(stream, "{stream}: {message}");
    }
}

/// The end-of-run table: stream, records, pages, requests, retries, waited, seconds,
/// records/s; and `skipped` after `pages` when an error rule skipped a response.
pub fn summary_table(outcomes: &[StreamOutcome]) -> String {
    // Without skips the table stays as it always was.
    let skips = outcomes.iter().any(|o| o.stats.skipped > 0);
    let mut header = vec![
        "stream",
        "status",
        "records",
        "pages",
        "requests",
        "retries",
        "waited",
        "seconds",
        "records/s",
    ];
    if skips {
        header.insert(4, "skipped");
    }
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for o in outcomes {
        let mut row = vec![
            o.stream.clone(),
            if o.error.is_some() {
                "FAILED".into()
            } else {
                "ok".into()
            },
            o.stats.records.to_string(),
            o.stats.pages.to_string(),
            o.stats.requests.to_string(),
            o.stats.retries.to_string(),
            format!("{:.1}s", o.stats.waited.as_secs_f64()),
            format!("{:.2}", o.elapsed.as_secs_f64()),
            format!("{:.0}", o.rate()),
        ];
        if skips {
            row.insert(4, o.stats.skipped.to_string());
        }
        rows.push(row);
    }
    let mut widths = vec![0usize; header.len()];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let mut line = String::new();
        for (j, c) in r.iter().enumerate() {
            if j > 0 {
                line.push_str("  ");
            }
            if j < 2 {
                line.push_str(&format!("{c:<w$}", w = widths[j]));
            } else {
                line.push_str(&format!("{c:>w$}", w = widths[j]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    out
}
