//! Pacing shared by every stream and partition of a connector: a requests-per-second
//! ceiling (GCRA, see [`super::gcra`]) and a gate that closes when the API says to stop.
//!
//! Every wait follows tokio's clock, which tests pause and advance
//! (`tokio::time::pause`) instead of sleeping for real.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::gcra::Gcra;
use super::retry_after::Budget;

/// The pacing state of one connector's API.
#[derive(Debug)]
pub struct Limiter {
    ceiling: Option<Gcra>,
    /// Waiters for the ceiling, served first come first served.
    queue: tokio::sync::Mutex<()>,
    paused_until: Mutex<Option<(Instant, Pause)>>,
    /// Pauses started so far: a pause that is extended while closed is the same pause,
    /// announced once however many requests wait in it.
    pauses: AtomicU64,
    floor: u64,
    /// What the remaining/reset headers left to spend, less the requests sent since.
    spend: Mutex<Option<Spend>>,
    /// Requests sent and not yet answered, by every stream of the connector.
    in_flight: AtomicU64,
    /// How long the API takes to answer (microseconds, a moving average; 0 until known).
    latency_us: AtomicU64,
    /// The ceiling's rate, to size how many requests to keep in flight.
    rate: Option<f64>,
}

/// The API's budget as its headers last told it, counted down by every request sent since.
#[derive(Debug, Clone, Copy)]
struct Spend {
    left: u64,
    /// The window's end; unknown from a reset until the next answer tells it.
    reset_at: Option<Instant>,
    /// The most one window ever allowed, as far as answers showed (`remaining` + 1 of
    /// the first answer of a window at least): the budget assumed right after a reset.
    window: u64,
    /// Answers that told this window's budget so far.
    seen: u64,
    /// The reset the window's first answer told. Later answers belong to the window
    /// while their reset stays near this one, not near the previous answer's: with an
    /// API whose reset slides forward with every answer, a chain of nearby resets would
    /// make one endless window whose `seen`, and so the burst assumed after a reset,
    /// grows without bound.
    anchor: Instant,
}

/// Two resets this close are one window's, told by two answers (arrival times differ).
const SAME_WINDOW: Duration = Duration::from_millis(250);

/// Whether two reset instants belong to the same window of the API.
fn same_window(a: Instant, b: Instant) -> bool {
    a.max(b) - a.min(b) < SAME_WINDOW
}

/// What the header budget says of one more request.
enum Spent {
    /// It may go.
    Go,
    /// The budget is spent until the reset; the gate is closed until then.
    Gate,
    /// The budget assumed since the reset is spent and no answer told the new one yet:
    /// look again shortly (an answer in flight will tell).
    Poll,
}

/// The most requests [`Limiter::in_flight`] ever advises to keep in flight.
pub const MAX_IN_FLIGHT: usize = 64;

/// A request in flight: counted until it is answered, failed or dropped.
#[derive(Debug)]
pub struct Flight<'a> {
    limiter: &'a Limiter,
    sent: Instant,
}

impl Flight<'_> {
    /// The response came: its latency feeds the moving average.
    pub fn answered(&self) {
        self.limiter.learn_latency(self.sent.elapsed());
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.limiter.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The gate is closed for longer than the caller may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong {
    /// How long the gate stays closed from now.
    pub wait: Duration,
    /// Why it is closed.
    pub why: Pause,
}

/// Why a request had to wait before it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The gate was closed: the API's budget reached the floor, or it said `Retry-After`.
    Paused(Pause),
    /// The client-side requests-per-second ceiling.
    Ceiling,
}

/// Why the gate closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// The remaining budget reached the floor; open again at the reset.
    Budget,
    /// A response said `Retry-After`.
    RetryAfter,
}

impl Pause {
    /// In words, for the log.
    pub fn describe(self) -> &'static str {
        match self {
            Pause::Budget => "the API's rate-limit budget is exhausted until its reset",
            Pause::RetryAfter => "the API asked every client to wait (Retry-After)",
        }
    }
}

impl Limiter {
    /// A limiter with an optional ceiling (requests per second, burst) and a remaining floor.
    pub fn new(requests_per_second: Option<f64>, burst: u32, floor: u64) -> Self {
        let ceiling = requests_per_second.and_then(|rps| Gcra::new(rps, burst));
        Self {
            rate: ceiling
                .as_ref()
                .and(requests_per_second.filter(|r| r.is_finite() && *r > 0.0)),
            ceiling,
            queue: tokio::sync::Mutex::new(()),
            paused_until: Mutex::new(None),
            pauses: AtomicU64::new(0),
            floor,
            spend: Mutex::new(None),
            in_flight: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
        }
    }

    /// How many requests (pages, partitions, windows) to keep in flight to reach the
    /// API's budget, at most `max`: with a `requests_per_second` ceiling, the rate times
    /// the API's observed latency, plus room for the time spent between requests (the
    /// ceiling paces them, so more would only wait in its queue); without one, `max`
    /// (the remaining/reset budget, when the API sends it, holds every request that would
    /// overshoot it). Before the first answer, `max`.
    pub fn in_flight(&self, max: usize) -> usize {
        let max = max.clamp(1, MAX_IN_FLIGHT);
        let latency = self.latency_us.load(Ordering::Relaxed);
        let (Some(rate), true) = (self.rate, latency > 0) else {
            return max;
        };
        // Half again as many as the rate needs, and two more: a slow answer or a page
        // written in between must not leave the budget unspent.
        let need = rate * (latency as f64 / 1e6) * 1.5 + 2.0;
        (need.ceil() as usize).clamp(1, max)
    }

    /// Counts a request as sent until the returned guard drops.
    pub fn flight(&self) -> Flight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Flight {
            limiter: self,
            sent: Instant::now(),
        }
    }

    /// Requests sent and not yet answered.
    pub fn flying(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Folds one answer's latency into the moving average (one eighth of the new one).
    fn learn_latency(&self, d: Duration) {
        let new = d.as_micros().min(u128::from(u32::MAX)) as u64;
        let _ = self
            .latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 { new } else { (old * 7 + new) / 8 })
            });
    }

    /// Takes one request from the budget the headers told; at the floor, closes the gate
    /// until the reset.
    fn spend_one(&self) -> Spent {
        let Ok(mut g) = self.spend.lock() else {
            return Spent::Go;
        };
        let Some(s) = g.as_mut() else {
            return Spent::Go;
        };
        let now = Instant::now();
        if s.reset_at.is_some_and(|r| r <= now) {
            // A new window: as much as a window ever allowed, until an answer tells, less
            // the requests still in flight (sent in the old window, they may arrive in
            // the new one and count there).
            s.left = s.window.saturating_sub(self.flying());
            s.reset_at = None;
        }
        if s.left > self.floor {
            s.left -= 1;
            return Spent::Go;
        }
        match s.reset_at {
            Some(until) => {
                drop(g);
                self.pause_for(until - now + Duration::from_millis(50), Pause::Budget);
                Spent::Gate
            }
            // Nothing in flight to tell the new budget: the API's own answer decides.
            None if self.flying() == 0 => Spent::Go,
            None => Spent::Poll,
        }
    }

    /// Learns the budget an answer told: what is left, less the other requests in flight
    /// (the API may not have counted them yet: assume not, so none overshoots).
    fn learn_budget(&self, remaining: u64, reset_in: Duration) {
        let others = self.flying().saturating_sub(1);
        let left = remaining.saturating_sub(others);
        let reset_at = Instant::now() + reset_in;
        // The latest answer wins, except within the window already known: answers to
        // requests sent together can arrive out of order, and an early one (more left)
        // read after a later one must not give back what the later one spent.
        if let Ok(mut g) = self.spend.lock() {
            // Answers seen in this window: the API allowed at least that many plus what it
            // says is left, whatever `remaining` alone suggests.
            let (seen, left, anchor) = match *g {
                Some(s) if s.reset_at.is_some() && same_window(s.anchor, reset_at) => {
                    (s.seen.saturating_add(1), left.min(s.left), s.anchor)
                }
                _ => (1, left, reset_at),
            };
            let window = g
                .map_or(0, |s| s.window)
                .max(remaining.saturating_add(seen));
            *g = Some(Spend {
                left,
                reset_at: Some(reset_at),
                window,
                seen,
                anchor,
            });
        }
    }

    /// Waits until a request may go; returns what was waited for and how long, or, at
    /// once, how long the gate stays closed when that is more than `within`.
    pub async fn acquire(&self, within: Duration) -> Result<Vec<(Hold, Duration)>, TooLong> {
        let mut held = Vec::new();
        loop {
            self.gate(&mut held, within).await?;
            let Some(c) = &self.ceiling else {
                if self.spent(&mut held).await {
                    break;
                }
                continue;
            };
            let start = Instant::now();
            {
                // One waiter at a time, in the order they came: woken together, the first to
                // look would win, which can starve a stream for seconds.
                let _turn = self.queue.lock().await;
                while let Err(until) = c.check() {
                    tokio::time::sleep_until(until).await;
                }
            }
            let waited = start.elapsed();
            if waited >= Duration::from_millis(1) {
                held.push((Hold::Ceiling, waited));
            }
            // The gate may have closed while this request queued: wait for it, then queue
            // again, so the requests held by the pause do not all leave at once.
            if !self.closed() && self.spent(&mut held).await {
                break;
            }
        }
        Ok(held)
    }

    /// Takes one request from the header budget: true when it may go; false after
    /// waiting a little (or with the gate closed), to look again.
    async fn spent(&self, held: &mut Vec<(Hold, Duration)>) -> bool {
        match self.spend_one() {
            Spent::Go => true,
            Spent::Gate => false,
            Spent::Poll => {
                let d = Duration::from_millis(10);
                tokio::time::sleep(d).await;
                held.push((Hold::Paused(Pause::Budget), d));
                false
            }
        }
    }

    /// Whether the gate is closed now.
    fn closed(&self) -> bool {
        self.paused_until
            .lock()
            .ok()
            .and_then(|g| *g)
            .is_some_and(|(t, _)| t > Instant::now())
    }

    /// Sleeps while the gate is closed; refuses at once a closure longer than what is
    /// left of `within`.
    async fn gate(
        &self,
        held: &mut Vec<(Hold, Duration)>,
        within: Duration,
    ) -> Result<(), TooLong> {
        loop {
            let until = self.paused_until.lock().ok().and_then(|g| *g);
            match until {
                Some((t, why)) if t > Instant::now() => {
                    let start = Instant::now();
                    let spent: Duration = held.iter().map(|(_, d)| *d).sum();
                    let wait = t - start;
                    if wait > within.saturating_sub(spent) {
                        return Err(TooLong { wait, why });
                    }
                    tokio::time::sleep_until(t).await;
                    held.push((Hold::Paused(why), start.elapsed()));
                }
                _ => return Ok(()),
            }
        }
    }

    /// Closes the gate for everyone for `d` (e.g. after a `Retry-After`); true when this
    /// started a pause (the gate was open), false when it extended or fell within one.
    pub fn pause_for(&self, d: Duration, why: Pause) -> bool {
        let now = Instant::now();
        let until = now + d;
        let Ok(mut g) = self.paused_until.lock() else {
            return false;
        };
        let started = g.is_none_or(|(cur, _)| cur <= now) && until > now;
        if g.is_none_or(|(cur, _)| cur < until) {
            *g = Some((until, why));
        }
        if started {
            self.pauses.fetch_add(1, Ordering::Relaxed);
        }
        started
    }

    /// How many pauses have started (an extended pause counts once).
    pub fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// Learns from a response's budget; returns the pause it started, if it started one
    /// (several responses reporting the same spent budget make one pause).
    pub fn observe(&self, budget: Budget) -> Option<Duration> {
        if let Budget {
            remaining: Some(r),
            reset_in: Some(reset),
        } = budget
            && !reset.is_zero()
        {
            self.learn_budget(r, reset);
        }
        match budget {
            Budget {
                remaining: Some(r),
                reset_in: Some(reset),
            } if r <= self.floor && !reset.is_zero() => {
                // A little past the reset, so the first request lands in the new window.
                let d = reset + Duration::from_millis(50);
                self.pause_for(d, Pause::Budget).then_some(d)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOREVER: Duration = Duration::MAX;

    #[tokio::test(start_paused = true)]
    async fn ceiling_is_shared_and_runs_on_tokio_time() {
        // Three tasks at 5/s with a burst of 2, on paused time: no real second passes.
        let real = std::time::Instant::now();
        let l = std::sync::Arc::new(Limiter::new(Some(5.0), 2, 0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move {
                let mut at = Vec::new();
                for _ in 0..10 {
                    l.acquire(FOREVER).await.unwrap();
                    at.push(Instant::now() - start);
                }
                at
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        assert_eq!(all.len(), 30);
        // Burst 2 at once, then one every 200 ms, each taken up to 10 ms early (the
        // tolerance for a timer's lateness, see gcra.rs): the 30th at (30 - 2) * 200 ms
        // less 10.
        assert_eq!(all[1], Duration::ZERO);
        assert_eq!(*all.last().unwrap(), Duration::from_millis(28 * 200 - 10));
        for w in all.windows(8) {
            assert!(
                w[7] - w[0] >= Duration::from_millis(1000),
                "8 requests within 1 s: {w:?}"
            );
        }
        assert!(
            real.elapsed() < Duration::from_secs(1),
            "5.6 s of waits took no real time"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_follows_the_rate_times_the_latency() {
        let l = Limiter::new(Some(40.0), 1, 0);
        assert_eq!(l.in_flight(16), 16, "before any answer: the most allowed");
        l.learn_latency(Duration::from_millis(50));
        // 40/s x 50 ms = 2 in flight, half again and two more: 5.
        assert_eq!(l.in_flight(16), 5);
        assert_eq!(l.in_flight(3), 3);
        assert_eq!(l.in_flight(0), 1);
        let free = Limiter::new(None, 1, 0);
        free.learn_latency(Duration::from_millis(50));
        assert_eq!(free.in_flight(8), 8, "no ceiling: the budget gate decides");
        assert_eq!(free.in_flight(1000), MAX_IN_FLIGHT);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_read_late_does_not_give_back_a_window_spent() {
        let l = Limiter::new(None, 1, 0);
        let tell = |left| {
            l.observe(Budget {
                remaining: Some(left),
                reset_in: Some(Duration::from_secs(1)),
            });
        };
        // The answer to a later request (1 left) is read before the one to an earlier
        // request (3 left): one more may go, not three.
        tell(1);
        tell(3);
        assert!(l.acquire(FOREVER).await.unwrap().is_empty());
        let held = l.acquire(FOREVER).await.unwrap();
        assert!(
            matches!(held[..], [(Hold::Paused(Pause::Budget), _)]),
            "{held:?}"
        );
        // A later window's answer is believed.
        tokio::time::advance(Duration::from_secs(2)).await;
        tell(5);
        assert!(l.acquire(FOREVER).await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_sliding_reset_does_not_make_one_endless_window() {
        // An API whose window slides: every answer, 10 ms apart for 5 s, says 5 left
        // and a reset 1 s away. Chained, the 500 answers would count as one window
        // assumed to hold 505 requests after a reset; anchored, a window is at most
        // 250 ms of answers: 5 left + 25 answers.
        let l = Limiter::new(None, 1, 0);
        for _ in 0..500 {
            l.observe(Budget {
                remaining: Some(5),
                reset_in: Some(Duration::from_secs(1)),
            });
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        let window = l.spend.lock().unwrap().map(|s| s.window);
        assert!(window.is_some_and(|w| (6..=31).contains(&w)), "{window:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_count_against_the_remaining_budget() {
        let l = Limiter::new(None, 1, 0);
        let start = Instant::now();
        // Four sent at once; the first answer says 3 left: the other three may have
        // been counted or not, so none is left to send.
        let flights: Vec<Flight<'_>> = (0..4).map(|_| l.flight()).collect();
        l.observe(Budget {
            remaining: Some(3),
            reset_in: Some(Duration::from_secs(2)),
        });
        drop(flights);
        let held = l.acquire(FOREVER).await.unwrap();
        assert!(
            matches!(held[..], [(Hold::Paused(Pause::Budget), _)]),
            "{held:?}"
        );
        assert!(start.elapsed() >= Duration::from_secs(2));
        // After the reset, as much as a window allowed (4) goes before an answer tells.
        for _ in 0..3 {
            assert!(l.acquire(FOREVER).await.unwrap().is_empty());
        }
        assert_eq!(start.elapsed(), Duration::from_millis(2050));
    }

    #[tokio::test(start_paused = true)]
    async fn gate_holds_everyone_until_reset() {
        let l = Limiter::new(None, 1, 0);
        assert!(l.acquire(FOREVER).await.unwrap().is_empty());
        let started = Instant::now();
        let paused = l.observe(Budget {
            remaining: Some(0),
            reset_in: Some(Duration::from_secs(2)),
        });
        assert!(paused.is_some());
        let held = l.acquire(FOREVER).await.unwrap();
        assert_eq!(held.len(), 1);
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert!(
            l.observe(Budget {
                remaining: Some(5),
                reset_in: Some(Duration::from_secs(2))
            })
            .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_pause_however_many_requests_wait_in_it() {
        let l = std::sync::Arc::new(Limiter::new(None, 1, 0));
        // Eight requests get a 429 at once: the first closes the gate, the others extend it.
        let started: Vec<bool> = (0..8)
            .map(|i| l.pause_for(Duration::from_millis(1000 + i), Pause::RetryAfter))
            .collect();
        assert_eq!(started.iter().filter(|s| **s).count(), 1);
        assert!(started[0]);
        // Eight more responses report the same spent budget: still the same pause.
        let spent = Budget {
            remaining: Some(0),
            reset_in: Some(Duration::from_secs(1)),
        };
        assert!((0..8).all(|_| l.observe(spent).is_none()));
        assert_eq!(l.pauses(), 1);
        let mut waiters = Vec::new();
        for _ in 0..8 {
            let l = l.clone();
            waiters.push(tokio::spawn(
                async move { l.acquire(FOREVER).await.unwrap() },
            ));
        }
        for w in waiters {
            let held = w.await.unwrap();
            assert!(matches!(held[..], [(Hold::Paused(_), _)]), "{held:?}");
        }
        assert_eq!(l.pauses(), 1, "waiting is not pausing again");
        // Once the gate has opened, the next spent budget is a new pause.
        assert!(l.observe(spent).is_some());
        assert_eq!(l.pauses(), 2);
        // A zero wait closes nothing.
        let l = Limiter::new(None, 1, 0);
        assert!(!l.pause_for(Duration::ZERO, Pause::RetryAfter));
        assert_eq!(l.pauses(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_longer_than_the_caller_may_wait_is_refused_at_once() {
        let l = Limiter::new(None, 1, 0);
        l.observe(Budget {
            remaining: Some(0),
            reset_in: Some(Duration::from_secs(3600)),
        });
        let start = Instant::now();
        let err = l.acquire(Duration::from_secs(300)).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO, "nothing was waited");
        assert_eq!(err.why, Pause::Budget);
        assert!(err.wait > Duration::from_secs(3600), "{err:?}");
        // Within the allowance it waits.
        let held = l.acquire(Duration::from_secs(4000)).await.unwrap();
        assert!(matches!(held[..], [(Hold::Paused(Pause::Budget), _)]));
        assert!(start.elapsed() >= Duration::from_secs(3600));
    }
}
