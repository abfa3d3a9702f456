//! Pacing shared by every stream and child partition of a connector: the client-side
//! `requests_per_second` ceiling, and a `Retry-After` that holds every stream, not only the
//! one that got it. Checked from the server's own log of arrival times.

mod support;
mod support_ratelimit;

use std::time::Duration;

use support::{Reply, Sandbox, rec, recs};
use support_ratelimit::{
    all_lines, max_in_window, page, paged_stream, rl_spec, serve_timed, waited,
};

/// A window a little shorter than a second, so that timer jitter between the runtime's
/// limiter and the server's clock cannot squeeze an extra request into it.
const WINDOW: Duration = Duration::from_millis(980);

#[test]
fn three_streams_share_one_requests_per_second_ceiling() {
    const PAGES: usize = 15;
    let (srv, hits) = serve_timed(|c| page(c.req.num("page", 1), PAGES, 2));
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        "  rate_limit: { requests_per_second: 5, burst: 2 }\n  retry: { initial: 10ms, max: 100ms }\n",
        &format!(
            "{}{}{}",
            paged_stream("alpha"),
            paged_stream("beta"),
            paged_stream("gamma")
        ),
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    for s in ["alpha", "beta", "gamma"] {
        assert_eq!(sb.lines(s), all_lines(PAGES, 2), "{s}");
        assert_eq!(run.row(s).requests, PAGES as u64, "{s}");
    }
    let all = hits.all();
    assert_eq!(all.len(), 3 * PAGES);
    let most = max_in_window(&all, WINDOW);
    let span = all.last().unwrap().at - all[0].at;
    eprintln!(
        "server: {} requests in {:.2}s, at most {most} in any {}ms window",
        all.len(),
        span.as_secs_f64(),
        WINDOW.as_millis()
    );
    // 5 a second plus a burst of 2. A ceiling per stream would let 3 x 7 through.
    assert!(most <= 7, "{most} requests within {WINDOW:?}");
    // 45 requests, 2 at once and then one every 200 ms.
    assert!(
        span >= Duration::from_millis(8000),
        "45 requests in {span:?}"
    );
    // The streams ran at the same time, each slower than a ceiling of its own would allow
    // (15 requests at 5 a second with a burst of 2: 2.6 s), and took turns.
    for s in ["/alpha", "/beta", "/gamma"] {
        let h = hits.to(s);
        assert!(
            h[0].at - all[0].at < Duration::from_secs(1),
            "{s} started late"
        );
        let own = h.last().unwrap().at - h[0].at;
        // Served in turn: none finishes long before the others (an unfair limiter let
        // one stream finish in 4.8 s while another had sent 1 request by 5 s).
        assert!(own >= Duration::from_millis(7000), "{s} took only {own:?}");
    }
    let total: f64 = ["alpha", "beta", "gamma"]
        .iter()
        .map(|s| waited(&run, s))
        .sum();
    assert!(total >= 10.0, "waits in the summary: {total}s");
}

#[test]
fn child_partitions_share_the_ceiling_with_their_parent() {
    // One page of 10 parents, then 10 child partitions, 5 at once.
    let (srv, hits) = serve_timed(|c| {
        let path = c.req.path.as_str();
        if path == "/orders" {
            return Reply::json(format!(r#"{{"orders": [{}]}}"#, recs(1..=10)));
        }
        let id: usize = path
            .trim_start_matches("/orders/")
            .trim_end_matches("/items")
            .parse()
            .unwrap();
        Reply::json(format!(r#"{{"items": [{}]}}"#, rec(100 + id)))
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        "  rate_limit: { requests_per_second: 5, burst: 2 }\n  retry: { initial: 10ms, max: 100ms }\n",
        r#"
  orders:
    path: /orders
    records: $.orders[*]
  items:
    parent: { stream: orders, key: id, concurrency: 5 }
    path: "/orders/{{ parent.id }}/items"
    records: $.items[*]
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders").len(), 10);
    let mut items = sb.ids("items");
    items.sort();
    assert_eq!(
        items,
        (101..=110).collect::<Vec<i64>>(),
        "each child record once"
    );
    let all = hits.all();
    assert_eq!(all.len(), 11);
    let most = max_in_window(&all, WINDOW);
    assert!(most <= 7, "{most} requests within {WINDOW:?}");
    let span = all.last().unwrap().at - all[0].at;
    assert!(
        span >= Duration::from_millis(1600),
        "11 requests in {span:?}"
    );
}

#[test]
fn a_retry_after_holds_every_stream_not_only_the_one_that_got_it() {
    const PAGES: usize = 40;
    let (srv, hits) = serve_timed(|c| {
        let p = c.req.num("page", 1);
        if c.req.path == "/orders" && c.nth_of_page == 1 && p == 1 {
            return Reply::status(429, "slow down").header("Retry-After", "1");
        }
        let pages = if c.req.path == "/orders" { 2 } else { PAGES };
        page(p, pages, 1)
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        "  retry: { initial: 10ms, max: 100ms }\n",
        &format!("{}{}", paged_stream("orders"), paged_stream("customers")),
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders"), all_lines(2, 1));
    assert_eq!(sb.lines("customers"), all_lines(PAGES, 1));

    let t0 = hits.to("/orders")[0].at;
    let customers = hits.to("/customers");
    assert_eq!(customers.len(), PAGES);
    // Requests already on their way when the 429 arrived may land just after it; after
    // that, nothing until the second is over.
    let inside: Vec<Duration> = hits
        .all()
        .iter()
        .filter(|h| h.at > t0)
        .map(|h| h.at - t0)
        .filter(|d| *d >= Duration::from_millis(500) && *d < Duration::from_secs(1))
        .collect();
    assert!(inside.is_empty(), "requests during the pause: {inside:?}");
    let after = customers
        .iter()
        .filter(|h| h.at >= t0 + Duration::from_secs(1))
        .count();
    eprintln!(
        "server: customers sent {} of {PAGES} requests after the 1 s pause",
        after
    );
    assert!(
        after >= PAGES - 5,
        "only {after} customers requests waited for the other stream's Retry-After"
    );
    assert!(waited(&run, "customers") >= 0.5);
}

#[test]
fn a_retry_after_also_holds_requests_already_queued_for_the_ceiling() {
    // Five streams under 5 a second, burst 1: the first request gets the whole burst, the
    // other four queue for slots 200, 400, 600 and 800 ms later. The first answer is a 429
    // with Retry-After: 1, so those queued requests must wait for the pause too, and then
    // still be paced by the ceiling.
    const STREAMS: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];
    let (srv, hits) = serve_timed(|c| {
        if c.n == 1 {
            return Reply::status(429, "slow down").header("Retry-After", "1");
        }
        page(c.req.num("page", 1), 2, 2)
    });
    let sb = Sandbox::new();
    sb.spec(&rl_spec(
        "",
        "  rate_limit: { requests_per_second: 5, burst: 1 }\n  retry: { initial: 10ms, max: 100ms }\n",
        &STREAMS.iter().map(|s| paged_stream(s)).collect::<String>(),
    ));
    let run = sb.sync(&srv, &["--concurrency", "5"]);
    run.expect_code(0);
    for s in STREAMS {
        assert_eq!(sb.lines(s), all_lines(2, 2), "{s}");
    }
    let all = hits.all();
    assert_eq!(all.len(), 11, "10 pages and one retry");
    let t0 = all[0].at;
    let during: Vec<Duration> = all
        .iter()
        .map(|h| h.at - t0)
        .filter(|d| *d >= Duration::from_millis(300) && *d < Duration::from_secs(1))
        .collect();
    assert!(
        during.is_empty(),
        "requests sent during the pause: {during:?}"
    );
    let most = max_in_window(&all, WINDOW);
    assert!(
        most <= 6,
        "{most} requests within {WINDOW:?} (5 a second, burst 1)"
    );
}
