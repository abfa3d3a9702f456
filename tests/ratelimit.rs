//! Waits the API dictates: `Retry-After` (delta-seconds and HTTP-date), remaining/reset
//! headers in every reset format, the IETF `RateLimit` field, and the cap on the total
//! wait. Each test runs the real binary against a loopback server that records when each
//! request arrived; the output must hold every record exactly once.

mod support;
mod support_ratelimit;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{Reply, Sandbox};
use support_ratelimit::{all_lines, log_lines, page, paged_stream, rl_spec, serve_timed, waited};

/// Short backoffs, default attempts (6), so that only header-dictated waits take time.
const HTTP: &str = "  retry: { initial: 10ms, max: 100ms }\n";

fn secs(d: f64) -> Duration {
    Duration::from_secs_f64(d)
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The wait announced by a `..., waiting 1.0s, attempt 2/6` log line.
fn announced_wait(line: &str) -> f64 {
    let rest = line.split("waiting ").nth(1).unwrap();
    rest.split('s').next().unwrap().parse().unwrap()
}

#[test]
fn a_429_with_retry_after_1_waits_a_second_then_gets_every_record_once() {
    let (srv, hits) = serve_timed(|c| {
        let p = c.req.num("page", 1);
        if p == 2 && c.nth_of_page == 1 {
            return Reply::status(429, "slow down").header("Retry-After", "1");
        }
        page(p, 4, 3)
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", HTTP, &paged_stream("orders")));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders"), all_lines(4, 3));

    let h = hits.to("/orders");
    let pages: Vec<usize> = h.iter().map(|h| h.page).collect();
    assert_eq!(pages, [1, 2, 2, 3, 4], "one retry of page 2, nothing else");
    let gap = h[2].at - h[1].at;
    assert!(
        gap >= secs(1.0) && gap < secs(3.0),
        "the retry came {gap:?} after the 429"
    );

    let row = run.row("orders");
    assert_eq!(
        (
            row.status.as_str(),
            row.records,
            row.pages,
            row.requests,
            row.retries
        ),
        ("ok", 12, 4, 5, 1)
    );
    let w = waited(&run, "orders");
    assert!(w >= 1.0, "waited column {w}");

    let lines = log_lines(&run, "orders: rate limited (429, Retry-After: 1), waiting ");
    assert_eq!(lines.len(), 1, "stderr:\n{}", run.stderr);
    assert!(lines[0].ends_with(", attempt 2/6"), "{}", lines[0]);
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    let announced = announced_wait(lines[0]);
    assert!(
        (1.0..=1.15).contains(&announced),
        "1 s plus a small jitter, not {announced}: {}",
        lines[0]
    );
}

#[test]
fn a_503_with_retry_after_as_an_http_date_waits_until_that_date() {
    // The date is written when the 503 is sent; the server keeps it to check the retry.
    let date: Arc<Mutex<Option<String>>> = Arc::default();
    let d2 = date.clone();
    let (srv, hits) = serve_timed(move |c| {
        let p = c.req.num("page", 1);
        if p == 1 && c.nth_of_page == 1 {
            let at = httpdate::fmt_http_date(c.wall + secs(2.0));
            *d2.lock().unwrap() = Some(at.clone());
            return Reply::status(503, "maintenance").header("Retry-After", &at);
        }
        page(p, 2, 2)
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", HTTP, &paged_stream("orders")));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders"), all_lines(2, 2));

    let date = date.lock().unwrap().clone().unwrap();
    let until = httpdate::parse_http_date(&date).unwrap();
    let h = hits.to("/orders");
    assert_eq!(h.iter().map(|h| h.page).collect::<Vec<_>>(), [1, 1, 2]);
    assert!(
        h[1].wall >= until,
        "retried at {:.3}, before the Retry-After date {:.3}",
        unix(h[1].wall),
        unix(until)
    );
    let gap = h[1].at - h[0].at;
    // The date has whole seconds, so "2 s ahead" is between 1 and 2 s.
    assert!(gap >= secs(1.0) && gap < secs(3.0), "gap {gap:?}");
    run.expect_stderr(&[&format!(
        "orders: 503 from GET {}/orders?page=1 (Retry-After: {date}), waiting ",
        srv.url()
    )]);
    assert_eq!(run.row("orders").retries, 1);
    assert!(waited(&run, "orders") >= 1.0);
}

/// Runs two paged streams one after the other; the response to the second request says
/// the budget is spent until `reset`, as `headers(reset)` writes it. Returns the run, the
/// reset time and the arrival times of every request.
fn budget_spent_on_second_request(
    http: &str,
    headers: impl Fn(SystemTime) -> (Vec<(String, String)>, SystemTime) + Send + Sync + 'static,
) -> (
    Sandbox,
    support::Run,
    SystemTime,
    Vec<support_ratelimit::Hit>,
    usize,
) {
    let reset: Arc<Mutex<Option<SystemTime>>> = Arc::default();
    let too_early = Arc::new(Mutex::new(0usize));
    let (r2, e2) = (reset.clone(), too_early.clone());
    let (srv, hits) = serve_timed(move |c| {
        let p = c.req.num("page", 1);
        if let Some(at) = *r2.lock().unwrap()
            && c.wall < at
        {
            // What a strict API does with a request inside a spent window.
            *e2.lock().unwrap() += 1;
            return Reply::status(429, "budget spent");
        }
        let mut reply = page(p, 2, 3);
        if c.n == 2 {
            let (hs, at) = headers(c.wall);
            *r2.lock().unwrap() = Some(at);
            for (k, v) in hs {
                reply = reply.header(&k, &v);
            }
        }
        reply
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        http,
        &format!("{}{}", paged_stream("alpha"), paged_stream("beta")),
    ));
    // One stream at a time: the spent budget must hold the other stream's requests too.
    let run = sb.sync(&srv, &["--concurrency", "1"]);
    let at = reset.lock().unwrap().unwrap();
    let n = *too_early.lock().unwrap();
    (sb, run, at, hits.all(), n)
}

/// The checks shared by every reset format.
#[track_caller]
fn assert_waited_for_reset(
    sb: &Sandbox,
    run: &support::Run,
    reset: SystemTime,
    hits: &[support_ratelimit::Hit],
    too_early: usize,
) {
    run.expect_code(0);
    assert_eq!(sb.lines("alpha"), all_lines(2, 3));
    assert_eq!(sb.lines("beta"), all_lines(2, 3));
    assert_eq!(hits.len(), 4, "no request was refused or repeated");
    let before = hits[2..].iter().filter(|h| h.wall < reset).count();
    eprintln!(
        "server: {} requests; budget spent at request 2, reset at {:.3}; {} requests after that arrived before the reset, {} after it; 429s sent: {too_early}",
        hits.len(),
        unix(reset),
        before,
        hits.len() - 2 - before
    );
    assert_eq!(before, 0, "requests arrived before the reset");
    assert_eq!(too_early, 0);
    assert!(hits[2].at - hits[1].at < secs(3.0), "waited far too long");
    // The pause is announced once, by the response that started it; the request that
    // waited in it does not log again.
    run.expect_stderr(&["rate limit: 0 left, pausing every request for "]);
    assert_eq!(
        log_lines(run, "pausing every request for ").len(),
        1,
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(": waited "), "{}", run.stderr);
    assert_eq!(run.row("alpha").retries + run.row("beta").retries, 0);
}

#[test]
fn remaining_0_with_a_unix_seconds_reset_holds_every_request_until_the_reset() {
    let (sb, run, reset, hits, too_early) = budget_spent_on_second_request(HTTP, |now| {
        let at = unix(now).floor() as u64 + 2;
        (
            vec![
                ("X-RateLimit-Remaining".into(), "0".into()),
                ("X-RateLimit-Reset".into(), at.to_string()),
            ],
            UNIX_EPOCH + Duration::from_secs(at),
        )
    });
    assert_waited_for_reset(&sb, &run, reset, &hits, too_early);
    // The stream that had to wait counts the wait, the one that saw the header does not.
    let waits = [waited(&run, "alpha"), waited(&run, "beta")];
    assert!(waits.iter().any(|w| *w >= 0.9), "waited columns {waits:?}");
}

#[test]
fn the_ietf_ratelimit_field_holds_every_request_until_the_reset() {
    let (sb, run, reset, hits, too_early) = budget_spent_on_second_request(HTTP, |now| {
        (
            vec![
                ("RateLimit-Policy".into(), "\"default\";q=2;w=2".into()),
                ("RateLimit".into(), "\"default\";r=0;t=2".into()),
            ],
            now + secs(2.0),
        )
    });
    assert_waited_for_reset(&sb, &run, reset, &hits, too_early);
    assert!(hits[2].at - hits[1].at >= secs(2.0));
}

#[test]
fn a_unix_millis_reset_under_configured_header_names_is_obeyed() {
    let http = format!(
        "{HTTP}  rate_limit: {{ remaining: X-Budget-Left, reset: X-Budget-Reset, reset_format: unix_millis }}\n"
    );
    let (sb, run, reset, hits, too_early) = budget_spent_on_second_request(&http, |now| {
        let at = (unix(now) * 1000.0) as u64 + 1000;
        (
            vec![
                ("X-Budget-Left".into(), "0".into()),
                ("X-Budget-Reset".into(), at.to_string()),
            ],
            UNIX_EPOCH + Duration::from_millis(at),
        )
    });
    assert_waited_for_reset(&sb, &run, reset, &hits, too_early);
}

#[test]
fn a_delta_seconds_reset_pauses_at_the_floor_and_not_above_it() {
    let http = format!("{HTTP}  rate_limit: {{ reset_format: delta_seconds, floor: 1 }}\n");
    let (srv, hits) = serve_timed(|c| {
        let p = c.req.num("page", 1);
        // Page 1 leaves 2 (above the floor), page 2 leaves 1 (the floor), for 1 s.
        let left = if p == 1 { "2" } else { "1" };
        page(p, 3, 2)
            .header("X-RateLimit-Remaining", left)
            .header("X-RateLimit-Reset", "1")
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", &http, &paged_stream("orders")));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders"), all_lines(3, 2));
    let h = hits.to("/orders");
    assert_eq!(h.iter().map(|h| h.page).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(
        h[1].at - h[0].at < secs(0.5),
        "above the floor nothing waits: {:?}",
        h[1].at - h[0].at
    );
    let gap = h[2].at - h[1].at;
    assert!(gap >= secs(1.0) && gap < secs(2.5), "gap {gap:?}");
    // 1 s plus the 50 ms margin that lands the next request in the new window.
    let lines = log_lines(&run, "rate limit: 1 left, pausing every request for ");
    assert_eq!(lines.len(), 2, "after pages 2 and 3:\n{}", run.stderr);
    assert!(
        lines[0].ends_with("for 1.1s until the reset"),
        "{}",
        lines[0]
    );
    assert!(!run.stderr.contains(": waited "), "{}", run.stderr);
}

#[test]
fn an_http_date_reset_is_obeyed() {
    let http = format!("{HTTP}  rate_limit: {{ reset_format: http_date }}\n");
    let (sb, run, reset, hits, too_early) = budget_spent_on_second_request(&http, |now| {
        let text = httpdate::fmt_http_date(now + secs(2.0));
        let at = httpdate::parse_http_date(&text).unwrap();
        (
            vec![
                ("X-RateLimit-Remaining".into(), "0".into()),
                ("X-RateLimit-Reset".into(), text),
            ],
            at,
        )
    });
    assert_waited_for_reset(&sb, &run, reset, &hits, too_early);
}

#[test]
fn a_retry_after_longer_than_max_total_gives_up_at_once() {
    let (srv, hits) = serve_timed(|_| {
        Reply::status(429, "come back in half a minute").header("Retry-After", "30")
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        "  retry: { initial: 10ms, max: 100ms, max_total: 2s }\n",
        &paged_stream("orders"),
    ));
    let started = Instant::now();
    let run = sb.sync(&srv, &[]);
    let took = started.elapsed();
    run.expect_code(1).expect_stderr(&[
        &format!("stream orders failed: GET {}/orders?page=1", srv.url()),
        "the API asked to wait 30s, more than retry.max_total (2s) allows",
        "rate limited (429, Retry-After: 30)",
    ]);
    assert_eq!(
        hits.all().len(),
        1,
        "nothing is sent once the wait is known too long"
    );
    assert!(took < secs(5.0), "the run took {took:?}");
    assert!(!sb.has_output("orders"));
    assert_eq!(run.row("orders").status, "FAILED");
}
