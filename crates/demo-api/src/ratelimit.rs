//! The server's rate limit: a fixed window per token, advertised on every answer with
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` (unix seconds), and a scripted window tests
//! set to check that a client stops when remaining reaches 0.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::lock;

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed (otherwise: 429).
    pub allowed: bool,
    /// Requests left in the window after this one.
    pub remaining: u64,
    /// End of the window, unix seconds (rounded up).
    pub reset: u64,
    /// Seconds to wait, for `Retry-After` when refused (at least 1).
    pub retry_after: u64,
    /// The request arrived while a scripted window had 0 remaining.
    pub violation: bool,
}

#[derive(Debug, Clone, Copy)]
struct Scripted {
    limit: u64,
    used: u64,
    /// The advertised reset, in unix ms (a whole second).
    deadline_ms: u64,
}

/// A fixed-window limiter keyed by token, plus an optional scripted window.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u64,
    window_ms: u64,
    /// key -> (window index, requests used in it)
    counters: Mutex<HashMap<String, (u64, u64)>>,
    scripted: Mutex<Option<Scripted>>,
    violations: AtomicU64,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

impl RateLimiter {
    /// `limit` requests per `window` for each key; windows are aligned on multiples of `window`
    /// since the epoch, so a 1 s window resets on whole unix seconds.
    pub fn new(limit: u64, window: Duration) -> Self {
        Self {
            limit,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1),
            counters: Mutex::new(HashMap::new()),
            scripted: Mutex::new(None),
            violations: AtomicU64::new(0),
        }
    }

    /// Counts one request of `key` arriving at `now`.
    pub fn check(&self, key: &str, now: SystemTime) -> Decision {
        let now_ms = unix_ms(now);
        {
            let mut scripted = lock(&self.scripted);
            if let Some(s) = scripted.as_mut().filter(|s| now_ms < s.deadline_ms) {
                let reset = s.deadline_ms / 1000;
                let retry_after = ceil_secs(s.deadline_ms - now_ms).max(1);
                if s.used < s.limit {
                    s.used += 1;
                    return Decision {
                        allowed: true,
                        remaining: s.limit - s.used,
                        reset,
                        retry_after,
                        violation: false,
                    };
                }
                self.violations.fetch_add(1, Ordering::SeqCst);
                return Decision {
                    allowed: false,
                    remaining: 0,
                    reset,
                    retry_after,
                    violation: true,
                };
            }
        }
        let idx = now_ms / self.window_ms;
        let end_ms = idx.saturating_add(1).saturating_mul(self.window_ms);
        let reset = ceil_secs(end_ms);
        let retry_after = ceil_secs(end_ms.saturating_sub(now_ms)).max(1);
        let mut counters = lock(&self.counters);
        let entry = counters.entry(key.to_string()).or_insert((idx, 0));
        if entry.0 != idx {
            *entry = (idx, 0);
        }
        if entry.1 < self.limit {
            entry.1 += 1;
            Decision {
                allowed: true,
                remaining: self.limit - entry.1,
                reset,
                retry_after,
                violation: false,
            }
        } else {
            Decision {
                allowed: false,
                remaining: 0,
                reset,
                retry_after,
                violation: false,
            }
        }
    }

    /// Scripts a window for every key: `limit` requests until `reset_at` (rounded up to a whole
    /// second, the value advertised in `X-RateLimit-Reset`); requests arriving after those and
    /// before the reset get 429 and are counted in [`window_violations`](Self::window_violations).
    /// The normal limit applies again after the reset. Resets the violation count.
    pub fn set_window(&self, limit: u64, reset_at: SystemTime) {
        let deadline_ms = ceil_secs(unix_ms(reset_at)) * 1000;
        *lock(&self.scripted) = Some(Scripted {
            limit,
            used: 0,
            deadline_ms,
        });
        self.violations.store(0, Ordering::SeqCst);
    }

    /// Removes a scripted window.
    pub fn clear_window(&self) {
        *lock(&self.scripted) = None;
    }

    /// Requests that arrived while the scripted window had 0 remaining.
    pub fn window_violations(&self) -> u64 {
        self.violations.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn fixed_window_counts_and_resets() {
        let rl = RateLimiter::new(3, Duration::from_secs(1));
        let base = 1_700_000_000_000;
        let d: Vec<_> = (0..4).map(|i| rl.check("a", t(base + 100 + i))).collect();
        assert_eq!(
            d.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0]
        );
        assert!(d[2].allowed && !d[3].allowed);
        assert_eq!(d[3].reset, 1_700_000_001);
        assert_eq!(d[3].retry_after, 1);
        // Another key has its own window.
        assert!(rl.check("b", t(base + 200)).allowed);
        // The next window starts afresh.
        let next = rl.check("a", t(base + 1_000));
        assert!(next.allowed);
        assert_eq!(next.remaining, 2);
        assert_eq!(next.reset, 1_700_000_002);
    }

    #[test]
    fn longer_window_retry_after() {
        let rl = RateLimiter::new(1, Duration::from_secs(10));
        let base = 1_700_000_000_000; // a multiple of 10 s
        assert!(rl.check("a", t(base + 2_500)).allowed);
        let d = rl.check("a", t(base + 2_500));
        assert!(!d.allowed);
        assert_eq!(d.retry_after, 8);
        assert_eq!(d.reset, 1_700_000_010);
    }

    #[test]
    fn scripted_window_counts_violations() {
        let rl = RateLimiter::new(1000, Duration::from_secs(1));
        let base = 1_700_000_000_000;
        rl.set_window(2, t(base + 1_500)); // advertised reset: base + 2 s
        let a = rl.check("a", t(base));
        let b = rl.check("b", t(base + 10));
        assert_eq!((a.remaining, b.remaining), (1, 0));
        assert_eq!(b.reset, 1_700_000_002);
        let c = rl.check("a", t(base + 1_999));
        assert!(!c.allowed && c.violation);
        assert_eq!(rl.window_violations(), 1);
        // At the advertised reset the normal limit applies again.
        let d = rl.check("a", t(base + 2_000));
        assert!(d.allowed && !d.violation);
        assert_eq!(d.remaining, 999);
        assert_eq!(rl.window_violations(), 1);
        rl.set_window(0, t(base + 5_000));
        assert_eq!(rl.window_violations(), 0);
    }
}
