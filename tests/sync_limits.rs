//! Bounded memory and bounded waits whatever the API sends: compression bombs, endless
//! bodies, pages over `http.max_response_bytes`, waits longer than `retry.max_total`, and
//! one log line per rate-limit pause however many requests wait in it.
//!
//! The peak memory of the `runtime` child is read with `wait4`, which reaps it and returns
//! its resource usage.

mod support;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use flate2::Compression;
use futures::stream;
use support::{Run, Sandbox, rec, recs};

const MIB: u64 = 1024 * 1024;
/// The default `http.max_response_bytes`.
const DEFAULT_LIMIT: u64 = 256 * MIB;
/// What the runtime may take beyond the limit.
const SLACK: u64 = 64 * MIB;

type Reply = Pin<Box<dyn Future<Output = Response> + Send>>;
type Handler = dyn Fn(Request, usize) -> Reply + Send + Sync;

/// A loopback server whose handler builds whole (possibly streamed) responses; it counts
/// the requests, the handler gets the request and its number (from 1).
struct Api {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Api {
    /// A server answering at once with `handler`.
    fn start(handler: impl Fn(&Request, usize) -> Response + Send + Sync + 'static) -> Self {
        Self::start_async(move |req, n| {
            let resp = handler(&req, n);
            Box::pin(async move { resp })
        })
    }

    /// A server whose handler may wait before answering.
    fn start_async(handler: impl Fn(Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let handler: Arc<Handler> = Arc::new(handler);
        let app = Router::new().fallback(move |req: Request| {
            let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
            handler(req, n)
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            addr,
            hits,
            stop: Some(stop_tx),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Runs `runtime sync` against `api`; returns the run and the child's peak RSS in bytes.
fn sync(sb: &Sandbox, api: &Api, args: &[&str]) -> (Run, u64) {
    let spec = sb.path().join("spec.yaml");
    let out = sb.out();
    let base = format!("base_url={}", api.url());
    let mut all: Vec<&str> = vec![
        "sync",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        &base,
    ];
    all.extend_from_slice(args);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runtime"));
    cmd.args(&all)
        .current_dir(sb.path())
        .env_remove("RUNTIME_LOG")
        .env("NO_COLOR", "1");
    let args = all.iter().map(|s| s.to_string()).collect();
    let (run, rss) = support::run_peak(cmd, args, Duration::from_secs(60));
    eprintln!(
        "runtime {:?}: exit {:?}, peak RSS {:.1} MiB",
        &run.args[5..],
        run.code,
        rss as f64 / MIB as f64
    );
    (run, rss)
}

/// A spec with `http` lines (two-space indent) under `http`, and `streams`.
fn spec_with(http: &str, streams: &str) -> String {
    format!(
        "version: 1\nname: t\nconfig:\n  base_url: {{ type: string }}\nhttp:\n  base_url: \"{{{{ config.base_url }}}}\"\n{http}streams:\n{streams}"
    )
}

/// One stream `orders` on `/orders`, records at `$.items[*]`; `http` adds lines under `http`.
fn one_page_spec(http: &str) -> String {
    spec_with(
        http,
        "  orders:\n    path: /orders\n    records: $.items[*]\n",
    )
}

/// `{"items": [` and then spaces: valid JSON if it ever ended, so only the limit stops it.
const OPEN: &[u8] = b"{\"items\": [";

/// A compression bomb made cheaply: the compressed form of a first MiB, then one
/// compressed MiB of spaces repeated `mib - 1` times. Each repeat is a run of complete
/// deflate blocks after a sync flush, whose back-references only reach spaces, so the
/// concatenation is what compressing `mib` MiB would give (less the trailer, which a
/// reader that keeps to the limit never reaches).
fn bomb(zlib: bool, mib: usize) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let spaces = vec![b' '; MIB as usize];
    let mut first = OPEN.to_vec();
    first.extend_from_slice(&spaces[OPEN.len()..]);
    let (head, again) = if zlib {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Compression::best());
        e.write_all(&first).unwrap();
        e.flush().unwrap();
        let head = std::mem::take(e.get_mut());
        e.write_all(&spaces).unwrap();
        e.flush().unwrap();
        (head, std::mem::take(e.get_mut()))
    } else {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(&first).unwrap();
        e.flush().unwrap();
        let head = std::mem::take(e.get_mut());
        e.write_all(&spaces).unwrap();
        e.flush().unwrap();
        (head, std::mem::take(e.get_mut()))
    };
    let (head, again) = (Bytes::from(head), Bytes::from(again));
    let chunks = std::iter::once(head).chain(std::iter::repeat_n(again, mib - 1));
    stream::iter(chunks.map(Ok))
}

/// A 200 with a streamed body and the given `Content-Encoding`.
fn streamed<S>(encoding: Option<&str>, body: S) -> Response
where
    S: futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let mut b = Response::builder()
        .status(200)
        .header("content-type", "application/json");
    if let Some(e) = encoding {
        b = b.header("content-encoding", e);
    }
    b.body(Body::from_stream(body)).unwrap()
}

#[track_caller]
fn assert_refused(run: &Run, rss: u64, api: &Api, limit: &str, cap: u64) {
    run.expect_code(1).expect_stderr(&[
        &format!("GET {}/orders", api.url()),
        "is larger than http.max_response_bytes",
        limit,
        "not retried",
    ]);
    assert_eq!(api.hits(), 1, "a body over the limit is not fetched again");
    assert!(
        rss < cap + SLACK,
        "peak RSS {:.1} MiB, more than the limit plus 64 MiB",
        rss as f64 / MIB as f64
    );
}

#[test]
fn a_gzip_bomb_of_1_gib_stops_at_the_default_limit() {
    let api = Api::start(|_, _| streamed(Some("gzip"), bomb(false, 1024)));
    let sb = Sandbox::new();
    sb.spec(&one_page_spec(""));
    let started = Instant::now();
    let (run, rss) = sync(&sb, &api, &[]);
    eprintln!("took {:?}", started.elapsed());
    assert_refused(&run, rss, &api, "268435456 bytes (256 MiB)", DEFAULT_LIMIT);
    assert!(!sb.has_output("orders"));
}

#[test]
fn a_deflate_bomb_stops_at_a_configured_limit() {
    let api = Api::start(|_, _| streamed(Some("deflate"), bomb(true, 1024)));
    let sb = Sandbox::new();
    sb.spec(&one_page_spec("  max_response_bytes: 16777216\n"));
    let (run, rss) = sync(&sb, &api, &[]);
    assert_refused(&run, rss, &api, "16777216 bytes (16 MiB)", 16 * MIB);
}

#[test]
fn an_endless_chunked_body_stops_at_the_default_limit() {
    let api = Api::start(|_, _| {
        let chunk = Bytes::from(vec![b' '; 256 * 1024]);
        let body = std::iter::once(Bytes::from_static(OPEN)).chain(std::iter::repeat(chunk));
        streamed(None, stream::iter(body.map(Ok)))
    });
    let sb = Sandbox::new();
    sb.spec(&one_page_spec(""));
    let (run, rss) = sync(&sb, &api, &[]);
    assert_refused(&run, rss, &api, "268435456 bytes (256 MiB)", DEFAULT_LIMIT);
}

/// A page of exactly `len` bytes, sent with its `Content-Length`.
fn page_of(len: usize) -> Response {
    let mut body = format!("{{\"items\": [{}]", recs(1..=3)).into_bytes();
    body.resize(len - 1, b' ');
    body.push(b'}');
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[test]
fn a_page_one_byte_over_a_configured_limit_fails_and_one_at_it_passes() {
    let http = "  max_response_bytes: 1048576\n";
    let api = Api::start(|_, _| page_of(1024 * 1024 + 1));
    let sb = Sandbox::new();
    sb.spec(&one_page_spec(http));
    let (run, rss) = sync(&sb, &api, &[]);
    assert_refused(&run, rss, &api, "1048576 bytes (1 MiB)", MIB);

    // The same size sent chunked (no Content-Length): counted as it streams in.
    let api = Api::start(|_, _| {
        let mut body = format!("{{\"items\": [{}]", recs(1..=3)).into_bytes();
        body.resize(1024 * 1024, b' ');
        body.push(b'}');
        let chunks: Vec<Bytes> = body.chunks(10_000).map(Bytes::copy_from_slice).collect();
        streamed(None, stream::iter(chunks.into_iter().map(Ok)))
    });
    let (run, rss) = sync(&sb, &api, &[]);
    assert_refused(&run, rss, &api, "1048576 bytes (1 MiB)", MIB);

    let api = Api::start(|_, _| page_of(1024 * 1024));
    let (run, _) = sync(&sb, &api, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("orders"), vec![rec(1), rec(2), rec(3)]);
}

#[test]
fn zero_is_not_a_size() {
    let sb = Sandbox::new();
    let spec = sb.spec(&one_page_spec("  max_response_bytes: 0\n"));
    let run = sb.run(&["validate", spec.to_str().unwrap()]);
    run.expect_code(2);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("max_response_bytes") && all.contains("spec.yaml:"),
        "{all}"
    );
}

fn status(code: u16, headers: &[(&str, &str)], body: &str) -> Response {
    let mut b = Response::builder()
        .status(code)
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

#[test]
fn a_retry_after_of_an_hour_fails_at_once() {
    let api = Api::start(|_, _| status(429, &[("Retry-After", "3600")], "slow down"));
    let sb = Sandbox::new();
    sb.spec(&one_page_spec("  retry: { max_total: 5m }\n"));
    let started = Instant::now();
    let (run, _) = sync(&sb, &api, &[]);
    let took = started.elapsed();
    run.expect_code(1).expect_stderr(&[
        &format!("GET {}/orders", api.url()),
        "the API asked to wait 3600s, more than retry.max_total (300s) allows",
        "rate limited (429, Retry-After: 3600)",
        "raise http.retry.max_total",
    ]);
    assert_eq!(api.hits(), 1);
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn a_rate_limit_reset_an_hour_away_fails_at_once() {
    let api = Api::start(|req, _| {
        let page = req.uri().query().unwrap_or("");
        let body = if page.contains("page=2") {
            r#"{"items": []}"#.to_owned()
        } else {
            format!(r#"{{"items": [{}]}}"#, recs(1..=2))
        };
        status(
            200,
            &[
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "3600"),
            ],
            &body,
        )
    });
    let sb = Sandbox::new();
    sb.spec(&spec_with(
        "  retry: { max_total: 5m }\n  rate_limit: { reset_format: delta_seconds }\n",
        "  orders:\n    path: /orders\n    records: $.items[*]\n    pagination: { kind: page_number }\n",
    ));
    let started = Instant::now();
    let (run, _) = sync(&sb, &api, &[]);
    let took = started.elapsed();
    run.expect_code(1).expect_stderr(&[
        &format!("GET {}/orders?page=2", api.url()),
        "the API asked to wait 3600s, more than retry.max_total (300s) allows",
        "rate-limit budget is exhausted until its reset",
    ]);
    assert_eq!(api.hits(), 1, "the second page is not requested");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// Lines of stderr containing `needle`.
fn count(run: &Run, needle: &str) -> usize {
    run.stderr.lines().filter(|l| l.contains(needle)).count()
}

/// Parent `orders` (16 records) and child `items` fetched 8 at a time.
fn fan_out_spec(http: &str) -> String {
    spec_with(
        http,
        r#"  orders:
    path: /orders
    records: $.items[*]
  items:
    parent: { stream: orders, key: id, concurrency: 8 }
    path: "/orders/{{ parent.id }}/items"
    records: $.items[*]
"#,
    )
}

/// The parent's page, or None for a child request.
fn orders_page(req: &Request) -> Option<Response> {
    (req.uri().path() == "/orders")
        .then(|| status(200, &[], &format!(r#"{{"items": [{}]}}"#, recs(1..=16))))
}

/// A server for [`fan_out_spec`]: child requests are answered in rounds of eight, each
/// round only once all eight have arrived (so all eight are in flight together), with
/// `child(n)` (`n` counts every request, the parent's included).
fn fan_out_api(child: fn(usize) -> Response) -> Api {
    let round = Arc::new(tokio::sync::Barrier::new(8));
    Api::start_async(move |req, n| {
        let round = round.clone();
        Box::pin(async move {
            if let Some(parent) = orders_page(&req) {
                return parent;
            }
            round.wait().await;
            child(n)
        })
    })
}

#[test]
fn a_spent_budget_is_logged_once_per_pause_not_once_per_waiting_request() {
    // Every child answer says the budget is spent for half a second: the first eight
    // answers make one pause, the eight requests it holds go together after it and make
    // a second one. Before: one line per answer and one per waiting request.
    let api = fan_out_api(|_| {
        status(
            200,
            &[("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "0.5")],
            r#"{"items": [{"n": 1}]}"#,
        )
    });
    let sb = Sandbox::new();
    sb.spec(&fan_out_spec(
        "  rate_limit: { reset_format: delta_seconds }\n",
    ));
    let (run, _) = sync(&sb, &api, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("items").len(), 16);
    assert_eq!(api.hits(), 17);
    assert_eq!(
        count(&run, "pausing every request for"),
        2,
        "one line per pause:\n{}",
        run.stderr
    );
    assert_eq!(count(&run, ": waited "), 0, "{}", run.stderr);
}

#[test]
fn a_retry_after_to_many_requests_at_once_is_logged_once() {
    // The first eight child requests all get a 429 with Retry-After: one pause.
    let api = fan_out_api(|n| {
        if n <= 9 {
            status(429, &[("Retry-After", "1")], "slow down")
        } else {
            status(200, &[], r#"{"items": [{"n": 1}]}"#)
        }
    });
    let sb = Sandbox::new();
    sb.spec(&fan_out_spec(
        "  retry: { initial: 10ms, max: 50ms, max_attempts: 3 }\n",
    ));
    let (run, _) = sync(&sb, &api, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("items").len(), 16);
    assert_eq!(api.hits(), 1 + 8 + 16);
    assert_eq!(
        count(&run, "rate limited (429, Retry-After: 1), waiting"),
        1,
        "one line per pause:\n{}",
        run.stderr
    );
    assert_eq!(count(&run, ": waited "), 0, "{}", run.stderr);
}
