//! How long to wait before the next attempt when no header says.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter: uniform in [0, min(max, initial * 2^attempt)].
pub fn full_jitter(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let cap = exponential(initial, max, attempt);
    let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

/// The ceiling of the jitter window for an attempt (0-based).
pub fn exponential(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(30));
    initial.saturating_mul(factor).min(max)
}

/// A small jitter added to waits that a header dictated, so clients do not stampede.
pub fn small_jitter() -> Duration {
    Duration::from_millis(rand::rng().random_range(0..=100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let i = Duration::from_millis(100);
        let m = Duration::from_secs(1);
        assert_eq!(exponential(i, m, 0), i);
        assert_eq!(exponential(i, m, 2), Duration::from_millis(400));
        assert_eq!(exponential(i, m, 10), m);
        for a in 0..8 {
            assert!(full_jitter(i, m, a) <= exponential(i, m, a));
        }
    }
}
