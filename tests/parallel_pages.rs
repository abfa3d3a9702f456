//! Offset and page-number pages fetched ahead once the first page told the total
//! (`pagination.concurrency`): several requests in flight, the output in page order and
//! the same as one page at a time, a failing page stops the stream where the sequential
//! loop would, and the connector's budget (declared, or told by remaining/reset headers)
//! is never passed. Rates are small, so the windows last a second or two.

mod support;
mod support_ratelimit;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Logged, Reply, Sandbox, Server, serve};
use support_ratelimit::{max_in_window, rl_spec, serve_timed};

/// A record with an id and an `updated_at` that grows with it.
fn record(i: usize) -> String {
    format!(
        r#"{{"id":{i},"updated_at":"2024-01-01T{:02}:{:02}:{:02}Z"}}"#,
        i / 3600,
        (i / 60) % 60,
        i % 60
    )
}

/// The page of `limit` records at `offset` of `total`, with the total.
fn offset_page(r: &Logged, total: usize) -> Reply {
    let offset = r.num("offset", 0);
    let limit = r.num("limit", 10);
    let ids = offset..(offset + limit).min(total);
    let items: Vec<String> = ids.map(record).collect();
    Reply::json(format!(
        r#"{{"total":{total},"items":[{}]}}"#,
        items.join(",")
    ))
}

fn offset_stream(extra: &str) -> String {
    format!(
        "  items:\n    path: /items\n    primary_key: id\n    dedup: true\n    records: $.items[*]\n    pagination: {{ kind: offset, limit: 10, total: $.total{extra} }}\n"
    )
}

/// Requests the server is answering at once, and the most it ever answered at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl InFlight {
    /// Answers with `reply` after `latency`, counting the request as in flight meanwhile.
    fn hold<T>(&self, latency: Duration, reply: impl FnOnce() -> T) -> T {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(n, Ordering::SeqCst);
        std::thread::sleep(latency);
        let r = reply();
        self.now.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

/// A server of `total` records in offset pages that takes `latency` to answer.
fn slow_server(total: usize, latency: Duration) -> (Server, Arc<InFlight>) {
    let flight = Arc::new(InFlight::default());
    let f = flight.clone();
    let srv = serve(move |r| f.hold(latency, || offset_page(r, total)));
    (srv, flight)
}

#[test]
fn pages_are_fetched_ahead_and_written_in_page_order() {
    let (srv, flight) = slow_server(300, Duration::from_millis(20));
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", "", &offset_stream(", concurrency: 4")));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    let parallel = sb.text("items");
    assert_eq!(sb.ids("items"), (0..300).collect::<Vec<i64>>());
    assert_eq!(run.row("items").requests, 30);
    assert!(
        flight.most.load(Ordering::SeqCst) > 1,
        "the server never saw two requests at once"
    );

    // One page at a time: the same bytes.
    let (srv, flight) = slow_server(300, Duration::from_millis(1));
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", "", &offset_stream("")));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.text("items"), parallel);
    assert_eq!(flight.most.load(Ordering::SeqCst), 1);
}

#[test]
fn page_numbers_with_total_pages_are_fetched_ahead_too() {
    let flight = Arc::new(InFlight::default());
    let f = flight.clone();
    let srv = serve(move |r| {
        f.hold(Duration::from_millis(20), || {
            let p = r.num("page", 1);
            let items: Vec<String> = ((p - 1) * 5..p * 5).map(record).collect();
            Reply::json(format!(r#"{{"pages":12,"items":[{}]}}"#, items.join(",")))
        })
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        "",
        "  items:\n    path: /items\n    records: $.items[*]\n    pagination: { kind: page_number, size: 5, size_param: n, total_pages: $.pages, concurrency: 3 }\n",
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.ids("items"), (0..60).collect::<Vec<i64>>());
    assert!(flight.most.load(Ordering::SeqCst) > 1);
    let pages: Vec<usize> = srv.requests().iter().map(|r| r.num("page", 0)).collect();
    let mut sorted = pages.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (1..=12).collect::<Vec<_>>(),
        "each page once: {pages:?}"
    );
}

#[test]
fn without_a_total_on_the_first_page_pages_stay_sequential() {
    let flight = Arc::new(InFlight::default());
    let f = flight.clone();
    let srv = serve(move |r| {
        f.hold(Duration::from_millis(5), || {
            let offset = r.num("offset", 0);
            let items: Vec<String> = (offset..(offset + 10).min(50)).map(record).collect();
            // No `total` in the body: nothing to plan from.
            Reply::json(format!(r#"{{"items":[{}]}}"#, items.join(",")))
        })
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", "", &offset_stream(", concurrency: 8")));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(
        sb.ids("items"),
        (0..50).collect::<Vec<i64>>(),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(flight.most.load(Ordering::SeqCst), 1);
}

#[test]
fn a_failing_middle_page_fails_the_stream_with_nothing_after_it() {
    // Page 7 (offset 60) fails for good; the pages after it answer, and fast.
    let srv = serve(move |r| {
        let offset = r.num("offset", 0);
        if offset == 60 {
            // Slow, so the pages after it are asked for before it fails.
            std::thread::sleep(Duration::from_millis(400));
            return Reply::status(400, r#"{"error":"bad page"}"#);
        }
        offset_page(r, 200)
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        "",
        "  items:\n    path: /items\n    primary_key: id\n    records: $.items[*]\n    pagination: { kind: offset, limit: 10, total: $.total, concurrency: 6 }\n    incremental: { cursor_field: updated_at, start: \"2024-01-01T00:00:00Z\", sorted: true }\n",
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&["400", "offset=60"]);
    // Pages before it are written and durable; none after it.
    assert_eq!(sb.ids("items"), (0..60).collect::<Vec<i64>>());
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.out().join("state.json")).unwrap()).unwrap();
    assert_eq!(
        state["streams"]["items"]["cursor"], "2024-01-01T00:00:59Z",
        "{state}"
    );
    assert!(
        srv.requests().iter().any(|r| r.num("offset", 0) > 60),
        "pages after the failing one were in flight"
    );
}

#[test]
fn an_error_rule_end_on_a_middle_page_ends_the_stream_there() {
    let srv = serve(move |r| {
        if r.num("offset", 0) == 50 {
            return Reply::status(404, "{}");
        }
        offset_page(r, 200)
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        "",
        "  items:\n    path: /items\n    records: $.items[*]\n    pagination: { kind: offset, limit: 10, total: $.total, concurrency: 5 }\n    errors: [{ status: [404], action: end }]\n",
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(
        sb.ids("items"),
        (0..50).collect::<Vec<i64>>(),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    // `--limit` stops at the same record as one page at a time.
    let sb = Sandbox::new();
    sb.spec(&rl_spec("", "", &offset_stream(", concurrency: 5")));
    sb.sync(&srv, &["--limit", "33"]).expect_code(0);
    assert_eq!(sb.ids("items"), (0..33).collect::<Vec<i64>>());
}

/// Arrivals in the last second; more than `budget` of them is answered with a 429.
struct Budgeted {
    recent: Mutex<VecDeque<Instant>>,
    budget: usize,
    refused: AtomicUsize,
}

impl Budgeted {
    fn admit(&self) -> bool {
        let now = Instant::now();
        let mut g = self.recent.lock().unwrap();
        while g
            .front()
            .is_some_and(|t| now - *t >= Duration::from_secs(1))
        {
            g.pop_front();
        }
        if g.len() >= self.budget {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        g.push_back(now);
        true
    }
}

#[test]
fn the_declared_rate_is_filled_and_never_passed() {
    // 10 a second declared; the server refuses the 13th request within any second.
    let gate = Arc::new(Budgeted {
        recent: Mutex::new(VecDeque::new()),
        budget: 12,
        refused: AtomicUsize::new(0),
    });
    let g = gate.clone();
    let (srv, hits) = serve_timed(move |c| {
        if !g.admit() {
            return Reply::status(429, "{}").header("Retry-After", "1");
        }
        std::thread::sleep(Duration::from_millis(40));
        offset_page(c.req, 250)
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        "  rate_limit: { requests_per_second: 10 }\n",
        &offset_stream(", concurrency: 8"),
    ));
    let started = Instant::now();
    let run = sb.sync(&srv, &[]);
    let took = started.elapsed();
    run.expect_code(0);
    assert_eq!(sb.ids("items"), (0..250).collect::<Vec<i64>>());
    assert_eq!(gate.refused.load(Ordering::SeqCst), 0, "429s answered");
    let all = hits.all();
    assert_eq!(all.len(), 25);
    let most = max_in_window(&all, Duration::from_millis(980));
    assert!(most <= 10, "{most} requests within 980 ms");
    // 25 requests at 10 a second, 40 ms each: one at a time would take 25 x 40 ms plus
    // the waits; filling the budget takes 2.4 s of pacing.
    assert!(took < Duration::from_millis(4500), "took {took:?}");
}

#[test]
fn a_budget_told_by_headers_is_never_passed_by_requests_in_flight() {
    // No declared rate: the server allows 6 requests per one-second window and says so in
    // X-RateLimit-Remaining / X-RateLimit-Reset (seconds to the window's end).
    let start = Instant::now();
    let window = Arc::new(Mutex::new((0u64, 0usize)));
    let refused = Arc::new(AtomicUsize::new(0));
    let (w, x) = (window.clone(), refused.clone());
    let srv = serve(move |r| {
        let now = start.elapsed();
        let (left, reset) = {
            let mut g = w.lock().unwrap();
            let this = now.as_secs();
            if g.0 != this {
                *g = (this, 0);
            }
            g.1 += 1;
            let reset = 1.0 - (now.as_secs_f64() - this as f64);
            (6i64 - g.1 as i64, reset)
        };
        if left < 0 {
            x.fetch_add(1, Ordering::SeqCst);
            return Reply::status(429, "{}").header("Retry-After", "1");
        }
        std::thread::sleep(Duration::from_millis(10));
        offset_page(r, 150)
            .header("X-RateLimit-Remaining", &left.to_string())
            .header("X-RateLimit-Reset", &format!("{reset:.3}"))
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        "  rate_limit: { reset_format: delta_seconds }\n",
        &offset_stream(", concurrency: 8"),
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.ids("items"), (0..150).collect::<Vec<i64>>());
    // A request sent just before a window's end can reach this fixed-window server just
    // after it and count in the next one, which the client cannot see coming: one such
    // 429 (retried) is the API's clock, more would be the runtime overshooting.
    let refused = refused.load(Ordering::SeqCst);
    assert!(refused <= 1, "{refused} 429s answered");
}
