//! Retention: stored events that are written out and older than the retention are
//! deleted from the store, in bounded rounds, so the database stops growing. Their ids
//! are kept for the dedupe window, so a sender's redelivery is still recognised.

use std::time::Duration;

use crate::clock::SharedClock;
use crate::store::{Prune, Pruned, Writer};

/// How long ids are kept at least: longer than any common sender redelivers (Stripe
/// retries for up to 3 days, Shopify 2 days, Svix/Standard Webhooks about a day, GitHub
/// lets a person redeliver for 3 days).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// Events (and ids) deleted per transaction, so deliveries never wait long behind one.
pub const ROUND: usize = 1000;

/// When stored events are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Written-out events older than this are deleted; `None` keeps them forever.
    pub keep: Option<Duration>,
    /// Ids of deleted events are kept until they are this old (at least `keep`).
    pub ids: Duration,
    /// Time between two passes.
    pub every: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep: Some(Duration::from_secs(30 * 24 * 3600)),
            ids: DEDUP_WINDOW,
            every: Duration::from_secs(60),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Retention {
    /// The round to run at `now_ms`, or `None` when events are kept forever.
    pub fn round(&self, now_ms: i64) -> Option<Prune> {
        let keep = self.keep?;
        Some(Prune {
            events_before_ms: now_ms.saturating_sub(millis(keep)),
            ids_before_ms: now_ms.saturating_sub(millis(self.ids.max(keep))),
            limit: ROUND,
        })
    }
}

/// One pass: rounds until nothing more is due; returns what was deleted.
pub async fn pass(
    retention: &Retention,
    clock: &SharedClock,
    writer: &Writer,
) -> Result<Pruned, crate::store::StoreError> {
    let mut total = Pruned::default();
    let Some(round) = retention.round(clock.now_millis()) else {
        return Ok(total);
    };
    loop {
        let p = writer.prune(round).await?;
        total.events += p.events;
        total.ids += p.ids;
        if p.events < round.limit && p.ids < round.limit {
            return Ok(total);
        }
        // Let waiting deliveries into the writer between two rounds.
        tokio::task::yield_now().await;
    }
}

/// Runs a pass at start and then every `retention.every`, until the task is aborted.
pub async fn run(retention: Retention, clock: SharedClock, writer: Writer) {
    if retention.keep.is_none() {
        return;
    }
    loop {
        match pass(&retention, &clock, &writer).await {
            Ok(p) if p.events > 0 || p.ids > 0 => {
                tracing::info!(
                    events = p.events,
                    ids = p.ids,
                    "retention: deleted written-out events older than the retention and ids past the dedupe window"
                );
            }
            Ok(_) => {}
            // The next pass tries again; nothing is lost by waiting.
            Err(e) => tracing::warn!(error = %e, "retention pass failed"),
        }
        tokio::time::sleep(retention.every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_at_least_as_long_as_events() {
        let day = 24 * 3600 * 1000;
        let r = Retention {
            keep: Some(Duration::from_secs(7 * 24 * 3600)),
            ..Retention::default()
        };
        let p = r.round(100 * day).unwrap();
        assert_eq!(p.events_before_ms, 93 * day);
        assert_eq!(p.ids_before_ms, 70 * day);
        let long = Retention {
            keep: Some(Duration::from_secs(90 * 24 * 3600)),
            ..Retention::default()
        };
        let p = long.round(100 * day).unwrap();
        assert_eq!(p.ids_before_ms, 10 * day);
        assert!(Retention { keep: None, ..r }.round(day).is_none());
    }
}
