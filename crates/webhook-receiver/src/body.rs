//! Reads a request body under the limits a hostile sender must not get around: a size
//! cap, a least average rate once a short grace has passed, an overall deadline, and a
//! shared budget of bytes held in memory by all requests together.
//!
//! The rate rule: at any time `t` after the start of the body, at least
//! `min_rate × (t − grace)` bytes have arrived. Bursty senders are fine (only the average
//! counts); a sender trickling a byte now and then is cut off soon after the grace.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How a body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Most bytes.
    pub max: usize,
    /// Least average bytes per second once `grace` has passed (0: no rate rule).
    pub min_rate: u64,
    /// Time before the rate rule applies.
    pub grace: Duration,
    /// Longest the whole body may take.
    pub timeout: Duration,
}

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// It grew past the size limit.
    TooLarge,
    /// The connection failed or the framing was bad.
    Broken,
    /// It arrived slower than the least rate.
    TooSlow,
    /// It was not complete by the deadline.
    Timeout,
    /// The memory budget for bodies is spent.
    NoMemory,
}

/// A body read in full, with its share of the memory budget (given back when dropped).
#[derive(Debug)]
pub struct Held {
    /// The bytes.
    pub bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

impl Rules {
    /// When the body must have grown past `got` bytes, counted from `started`: the grace
    /// is free, and each byte buys `1 / min_rate` seconds more. So from the end of the
    /// grace on, a body must have come at `min_rate` on average since then.
    fn deadline(&self, started: Instant, got: usize) -> (Instant, bool) {
        let overall = started + self.timeout;
        if self.min_rate == 0 {
            return (overall, false);
        }
        let earned = self.grace + Duration::from_secs_f64(got as f64 / self.min_rate as f64);
        if earned >= self.timeout {
            (overall, false)
        } else {
            (started + earned, true)
        }
    }
}

/// Reads `body` under `rules`, taking its bytes from `budget` as they arrive.
pub async fn read(body: Body, rules: Rules, budget: &Arc<Semaphore>) -> Result<Held, ReadError> {
    let mut body = body;
    let started = Instant::now();
    let mut buf = BytesMut::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    loop {
        let (deadline, by_rate) = rules.deadline(started, buf.len());
        let next = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let frame = match tokio::time::timeout_at(deadline, next).await {
            Ok(Some(frame)) => frame.map_err(|_| ReadError::Broken)?,
            Ok(None) => break,
            Err(_) if by_rate => return Err(ReadError::TooSlow),
            Err(_) => return Err(ReadError::Timeout),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > rules.max {
            return Err(ReadError::TooLarge);
        }
        let n = u32::try_from(data.len()).map_err(|_| ReadError::NoMemory)?;
        let permit = budget
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| ReadError::NoMemory)?;
        match &mut held {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        buf.extend_from_slice(&data);
    }
    Ok(Held {
        bytes: buf.freeze(),
        _budget: held,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    const RULES: Rules = Rules {
        max: 1000,
        min_rate: 100,
        grace: Duration::from_secs(5),
        timeout: Duration::from_secs(30),
    };

    /// A body sending `chunks` of `size` bytes, `gap` apart (in paused test time).
    fn trickle(chunks: usize, size: usize, gap: Duration) -> Body {
        let stream = async_stream(chunks, size, gap);
        Body::from_stream(stream)
    }

    fn async_stream(
        chunks: usize,
        size: usize,
        gap: Duration,
    ) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
        futures::stream::unfold(0, move |i| async move {
            if i == chunks {
                return None;
            }
            tokio::time::sleep(gap).await;
            Some((Ok(Bytes::from(vec![b'x'; size])), i + 1))
        })
    }

    fn budget() -> Arc<Semaphore> {
        Arc::new(Semaphore::new(10_000))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_a_fair_rate_is_read_in_full() {
        let b = budget();
        let held = read(trickle(9, 100, Duration::from_millis(900)), RULES, &b)
            .await
            .unwrap();
        assert_eq!(held.bytes.len(), 900);
        assert_eq!(b.available_permits(), 10_000 - 900);
        drop(held);
        assert_eq!(b.available_permits(), 10_000, "the budget comes back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_cut_off_after_the_grace() {
        let started = Instant::now();
        let r = read(trickle(100, 1, Duration::from_secs(1)), RULES, &budget()).await;
        assert_eq!(r.unwrap_err(), ReadError::TooSlow);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(6),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_body_within_the_grace_passes_however_slow() {
        let r = read(trickle(4, 1, Duration::from_secs(1)), RULES, &budget()).await;
        assert_eq!(r.unwrap().bytes.len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_rate_rule_the_deadline_still_holds() {
        let rules = Rules {
            min_rate: 0,
            ..RULES
        };
        let started = Instant::now();
        let r = read(trickle(100, 1, Duration::from_secs(1)), rules, &budget()).await;
        assert_eq!(r.unwrap_err(), ReadError::Timeout);
        assert!(started.elapsed() < Duration::from_secs(31));
    }

    #[tokio::test(start_paused = true)]
    async fn size_and_memory_limits() {
        let r = read(trickle(11, 100, Duration::ZERO), RULES, &budget()).await;
        assert_eq!(r.unwrap_err(), ReadError::TooLarge);
        let small = Arc::new(Semaphore::new(150));
        let r = read(trickle(2, 100, Duration::ZERO), RULES, &small).await;
        assert_eq!(r.unwrap_err(), ReadError::NoMemory);
        assert_eq!(
            small.available_permits(),
            150,
            "a refused body gives its bytes back"
        );
    }
}
