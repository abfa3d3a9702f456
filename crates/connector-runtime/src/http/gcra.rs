//! The requests-per-second ceiling: GCRA (the generic cell rate algorithm) on tokio's
//! clock, with a tolerance of part of one period.
//!
//! Why not `governor`'s: a waiter sleeps until its slot, and tokio's timer wakes it up to
//! a millisecond or two late (more under load). Plain GCRA with a burst of one counts the
//! next period from that late instant, so lateness accumulates: at 38 requests per second
//! the runtime measured 36. Accepting a request up to `tolerance` before its slot lets the
//! next slot keep the schedule. The tolerance stays under one period, so over any span
//! `w` at most `w × rate + burst` requests go (rounded down), as without it; it only
//! moves single requests a little earlier, never adds one. `governor` allows whole
//! requests of burst only.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most this much early, however long the period.
const MAX_TOLERANCE: Duration = Duration::from_millis(10);

/// A ceiling of `rate` requests per second with a `burst`, on tokio's clock.
#[derive(Debug)]
pub(crate) struct Gcra {
    /// The time one request occupies: one over the rate.
    period: Duration,
    /// How far before the theoretical arrival time a request is still accepted: the
    /// burst's periods and the part of one period that absorbs the timer's lateness.
    tolerance: Duration,
    /// The theoretical arrival time of the next request (none before the first).
    tat: Mutex<Option<Instant>>,
}

impl Gcra {
    /// A ceiling of `rate` requests per second (finite, above zero) with `burst` at once.
    pub(crate) fn new(rate: f64, burst: u32) -> Option<Self> {
        if !rate.is_finite() || rate <= 0.0 {
            return None;
        }
        let period = Duration::try_from_secs_f64(1.0 / rate).ok()?;
        if period.is_zero() {
            return None;
        }
        let late = (period / 2).min(MAX_TOLERANCE);
        let tolerance = period.saturating_mul(burst.max(1) - 1) + late;
        Some(Self {
            period,
            tolerance,
            tat: Mutex::new(None),
        })
    }

    /// Takes a slot now; or, when it is too early, the instant to ask again.
    pub(crate) fn check(&self) -> Result<(), Instant> {
        let now = Instant::now();
        // A poisoned lock means a panic elsewhere; the ceiling then lets requests go
        // rather than stop the run (the API's own limits still apply).
        let Ok(mut tat) = self.tat.lock() else {
            return Ok(());
        };
        let due = tat.unwrap_or(now);
        let allowed_from = due.checked_sub(self.tolerance).unwrap_or(due);
        if now < allowed_from {
            return Err(allowed_from);
        }
        *tat = Some(due.max(now) + self.period);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `n` slots, sleeping (on paused time) until each is due plus `late`.
    async fn take(g: &Gcra, n: usize, late: Duration) -> Vec<Duration> {
        let start = Instant::now();
        let mut at = Vec::new();
        while at.len() < n {
            match g.check() {
                Ok(()) => at.push(start.elapsed()),
                Err(until) => tokio::time::sleep_until(until + late).await,
            }
        }
        at
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_waiter_keeps_the_schedule() {
        // 40 per second, every wake-up 2 ms late: still 40 slots in the first second.
        let g = Gcra::new(40.0, 1).unwrap();
        let at = take(&g, 81, Duration::from_millis(2)).await;
        assert!(at[40] <= Duration::from_millis(1000), "{:?}", at[40]);
        assert!(at[80] >= Duration::from_millis(1990), "{:?}", at[80]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_span_holds_more_than_the_rate_and_the_burst() {
        for (rate, burst, late) in [(40.0, 1, 0), (38.0, 1, 3), (5.0, 2, 0), (7.5, 3, 1)] {
            let g = Gcra::new(rate, burst).unwrap();
            let at = take(&g, 200, Duration::from_millis(late)).await;
            let most = (rate + f64::from(burst)).floor() as usize;
            for (i, t) in at.iter().enumerate() {
                let within = at[i..]
                    .iter()
                    .take_while(|u| **u - *t < Duration::from_secs(1))
                    .count();
                assert!(within <= most, "{rate}/s burst {burst}: {within} in 1 s");
            }
        }
    }

    #[test]
    fn rates_that_make_no_period_are_no_ceiling() {
        assert!(Gcra::new(0.0, 1).is_none());
        assert!(Gcra::new(f64::NAN, 1).is_none());
        assert!(Gcra::new(1e-300, 1).is_none());
        assert!(Gcra::new(0.001, 1).is_some());
    }
}
