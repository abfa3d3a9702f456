//! Reading how long an API asks us to wait: `Retry-After`, `X-RateLimit-*` and the IETF
//! `RateLimit` fields.

use std::time::{Duration, SystemTime};

use connector_spec::{RateLimit, ResetFormat};
use reqwest::header::HeaderMap;

/// Longest wait any header may impose, so a broken header cannot stall a run for days.
pub const MAX_HEADER_WAIT: Duration = Duration::from_secs(3600);

/// `Retry-After` as delta-seconds (tolerating `2.0`) or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs).min(MAX_HEADER_WAIT));
        }
        return None;
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HEADER_WAIT),
    )
}

/// What the rate-limit headers of one response say.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Budget {
    /// Requests left in the current window.
    pub remaining: Option<u64>,
    /// Time until the window resets.
    pub reset_in: Option<Duration>,
}

/// Reads remaining/reset from the configured headers, falling back to the IETF fields.
pub fn parse_budget(headers: &HeaderMap, cfg: &RateLimit, now: SystemTime) -> Budget {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let mut b = Budget {
        remaining: get(&cfg.remaining)
            .and_then(|v| v.parse::<f64>().ok())
            .map(|f| f.max(0.0) as u64),
        reset_in: get(&cfg.reset).and_then(|v| parse_reset(v, cfg.reset_format, now)),
    };
    if cfg.ietf_headers {
        if let Some(v) = get("RateLimit") {
            let (r, t) = parse_ietf(v);
            b.remaining = b.remaining.or(r);
            b.reset_in = b.reset_in.or(t);
        }
        // Older drafts: RateLimit-Remaining / RateLimit-Reset (seconds).
        b.remaining = b
            .remaining
            .or_else(|| get("RateLimit-Remaining").and_then(|v| v.parse().ok()));
        b.reset_in = b.reset_in.or_else(|| {
            get("RateLimit-Reset")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|s| Duration::from_secs(s).min(MAX_HEADER_WAIT))
        });
    }
    b
}

fn parse_reset(v: &str, format: ResetFormat, now: SystemTime) -> Option<Duration> {
    let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    let d = match format {
        ResetFormat::DeltaSeconds => Duration::from_secs_f64(v.parse::<f64>().ok()?.max(0.0)),
        ResetFormat::UnixSeconds => {
            Duration::from_secs_f64(v.parse::<f64>().ok()?.max(0.0)).saturating_sub(since_epoch)
        }
        ResetFormat::UnixMillis => Duration::from_millis(v.parse::<f64>().ok()?.max(0.0) as u64)
            .saturating_sub(since_epoch),
        ResetFormat::HttpDate => httpdate::parse_http_date(v)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(d.min(MAX_HEADER_WAIT))
}

/// `RateLimit: "default";r=50;t=30` (several policies: the most restrictive wins).
fn parse_ietf(v: &str) -> (Option<u64>, Option<Duration>) {
    let mut best: (Option<u64>, Option<Duration>) = (None, None);
    for item in v.split(',') {
        let mut r = None;
        let mut t = None;
        for param in item.split(';').skip(1) {
            match param.trim().split_once('=') {
                Some(("r", x)) => r = x.trim().parse::<u64>().ok(),
                Some(("t", x)) => t = x.trim().parse::<u64>().ok().map(Duration::from_secs),
                _ => {}
            }
        }
        if let Some(r) = r
            && best.0.is_none_or(|b| r < b)
        {
            best = (Some(r), t.map(|t| t.min(MAX_HEADER_WAIT)));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_forms() {
        let now = at(946_684_799 - 120); // 1999-12-31 23:57:59 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("2.0", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_HEADER_WAIT));
        // Not finite: refused, never a panic or an endless wait.
        for v in ["inf", "NaN", "-inf", "1e400"] {
            assert_eq!(parse_retry_after(v, now), None, "{v}");
        }
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
    }

    #[test]
    fn ietf_policies_tie_to_the_first() {
        let mut h = HeaderMap::new();
        h.insert(
            "ratelimit",
            HeaderValue::from_static("\"a\";r=3;t=10, \"b\";r=3;t=1, \"c\";r=9;t=0"),
        );
        let b = parse_budget(&h, &RateLimit::default(), at(0));
        assert_eq!(b.remaining, Some(3));
        assert_eq!(b.reset_in, Some(Duration::from_secs(10)));
        // Older drafts, and a value only in `RateLimit-Reset`.
        let mut h = HeaderMap::new();
        h.insert("ratelimit-remaining", HeaderValue::from_static("4"));
        h.insert("ratelimit-reset", HeaderValue::from_static("99999"));
        let b = parse_budget(&h, &RateLimit::default(), at(0));
        assert_eq!(b.remaining, Some(4));
        assert_eq!(b.reset_in, Some(MAX_HEADER_WAIT));
        let off = RateLimit {
            ietf_headers: false,
            ..RateLimit::default()
        };
        assert_eq!(parse_budget(&h, &off, at(0)), Budget::default());
    }

    #[test]
    fn retry_after_date_far_ahead_is_clamped_and_a_past_date_means_now() {
        let now = at(946_684_799); // 1999-12-31 23:59:59 GMT
        // A day ahead: clamped to the one-hour ceiling, not a day's stall.
        assert_eq!(
            parse_retry_after("Sat, 01 Jan 2000 23:59:59 GMT", now),
            Some(MAX_HEADER_WAIT)
        );
        // Just under the ceiling is kept as it is; just over is clamped.
        assert_eq!(
            parse_retry_after("Sat, 01 Jan 2000 00:59:58 GMT", now),
            Some(MAX_HEADER_WAIT - Duration::from_secs(1))
        );
        assert_eq!(
            parse_retry_after("Sat, 01 Jan 2000 01:00:00 GMT", now),
            Some(MAX_HEADER_WAIT)
        );
        // In the past (a clock behind ours, or a stale cache): retry now, not never.
        for past in [
            "Fri, 31 Dec 1999 23:59:58 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(past, now), Some(Duration::ZERO), "{past}");
        }
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT", now),
            Some(Duration::ZERO)
        );
        // The two other date forms of RFC 9110 read the same.
        assert_eq!(
            parse_retry_after("Saturday, 01-Jan-00 00:00:09 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sat Jan  1 00:00:09 2000", now),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn reset_as_a_date_is_clamped_and_a_past_one_means_now() {
        let now = at(946_684_799);
        let cfg = RateLimit {
            reset_format: ResetFormat::HttpDate,
            ..RateLimit::default()
        };
        let reset = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("x-ratelimit-reset", HeaderValue::from_static(v));
            parse_budget(&h, &cfg, now).reset_in
        };
        assert_eq!(
            reset("Sat, 01 Jan 2000 23:59:59 GMT"),
            Some(MAX_HEADER_WAIT)
        );
        assert_eq!(reset("Fri, 31 Dec 1999 23:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(
            reset("Sat, 01 Jan 2000 00:00:29 GMT"),
            Some(Duration::from_secs(30))
        );
        // Epoch forms: past means now, far means the ceiling.
        let cfg = RateLimit::default();
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("946684000"));
        assert_eq!(parse_budget(&h, &cfg, now).reset_in, Some(Duration::ZERO));
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from_static("999999999999"),
        );
        assert_eq!(parse_budget(&h, &cfg, now).reset_in, Some(MAX_HEADER_WAIT));
    }

    #[test]
    fn budget_from_headers() {
        let now = at(1_000_000);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1000002"));
        let cfg = RateLimit::default();
        let b = parse_budget(&h, &cfg, now);
        assert_eq!(
            b,
            Budget {
                remaining: Some(0),
                reset_in: Some(Duration::from_secs(2))
            }
        );

        let mut h = HeaderMap::new();
        h.insert(
            "ratelimit",
            HeaderValue::from_static("\"default\";r=50;t=30, \"burst\";r=3;t=1"),
        );
        let b = parse_budget(&h, &cfg, now);
        assert_eq!(
            b,
            Budget {
                remaining: Some(3),
                reset_in: Some(Duration::from_secs(1))
            }
        );

        let cfg = RateLimit {
            reset_format: ResetFormat::UnixMillis,
            ..RateLimit::default()
        };
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1000001500"));
        assert_eq!(
            parse_budget(&h, &cfg, now).reset_in,
            Some(Duration::from_millis(1500))
        );
    }
}
