//! How many passes of one stream (partitions, date windows) run at once: no more than the
//! stream declares, and no more than the API's budget needs (see [`Limiter::in_flight`]),
//! so concurrent passes fill the budget without queueing a crowd at the limiter.
//!
//! [`Limiter::in_flight`]: super::limiter::Limiter::in_flight

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::limiter::Limiter;

/// Admits passes while fewer run than the budget needs, at most `max`.
pub(crate) struct PassGate<'l> {
    limiter: &'l Limiter,
    max: usize,
    running: AtomicUsize,
    freed: Notify,
}

/// One admitted pass; dropping it lets the next one in.
pub(crate) struct PassSlot<'g> {
    gate: &'g PassGate<'g>,
}

impl<'l> PassGate<'l> {
    /// A gate for at most `max` passes at once (the stream's declared concurrency).
    pub(crate) fn new(limiter: &'l Limiter, max: usize) -> Self {
        Self {
            limiter,
            max: max.max(1),
            running: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }

    /// Waits until a pass may start. One always may when none runs, so a pass that holds
    /// a slot never waits for another: no deadlock, whatever the budget says.
    pub(crate) async fn enter(&'l self) -> PassSlot<'l> {
        loop {
            // Registered before the check, so a slot freed in between is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            // Twice what requests alone need: a pass also spends time between its
            // requests (records through the stages, its spool, its checkpoint).
            let want = self
                .limiter
                .in_flight(self.max)
                .saturating_mul(2)
                .min(self.max);
            let now = self.running.load(Ordering::Acquire);
            if now < want
                && self
                    .running
                    .compare_exchange(now, now + 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return PassSlot { gate: self };
            }
            if now < want {
                continue;
            }
            freed.await;
        }
    }
}

impl Drop for PassSlot<'_> {
    fn drop(&mut self) {
        self.gate.running.fetch_sub(1, Ordering::AcqRel);
        self.gate.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_up_to_the_declared_maximum_and_the_next_when_one_ends() {
        let limiter = Limiter::new(None, 1, 0);
        let gate = PassGate::new(&limiter, 2);
        let a = gate.enter().await;
        let _b = gate.enter().await;
        let third = tokio::time::timeout(std::time::Duration::from_millis(20), gate.enter()).await;
        assert!(third.is_err(), "a third pass waits while two run");
        drop(a);
        let c = tokio::time::timeout(std::time::Duration::from_millis(20), gate.enter()).await;
        assert!(c.is_ok(), "a freed slot lets the next pass in");
    }
}
