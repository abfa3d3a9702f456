//! Helpers of the rate-limit and retry tests: a server log with arrival times, a raw TCP
//! server that can cut a response short or drop the connection, paged replies, specs with
//! their own `retry` block, and readers for the summary's `waited` column.
//!
//! Included by `tests/ratelimit*.rs` with `mod support_ratelimit;`, next to `mod support;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::support::{Logged, Reply, Run, Sandbox, Server, recs, serve};

/// One request with the time the server received it.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Monotonic arrival time, for intervals.
    pub at: Instant,
    /// Wall-clock arrival time, for comparing with reset times sent in headers.
    pub wall: SystemTime,
    /// The path, without the query.
    pub path: String,
    /// The `page` query parameter (0 when absent).
    pub page: usize,
}

/// A shared, append-only log of hits.
#[derive(Debug, Clone, Default)]
pub struct Hits(Arc<Mutex<Vec<Hit>>>);

impl Hits {
    /// Every hit so far, in arrival order.
    pub fn all(&self) -> Vec<Hit> {
        self.0.lock().unwrap().clone()
    }

    /// The hits on one path, in arrival order.
    pub fn to(&self, path: &str) -> Vec<Hit> {
        self.all().into_iter().filter(|h| h.path == path).collect()
    }
}

/// A request as [`serve_timed`] hands it to the test: the request, its arrival time, and
/// how many requests (this one included) the server has received.
pub struct Call<'a> {
    /// The request.
    pub req: &'a Logged,
    /// When it arrived (wall clock).
    pub wall: SystemTime,
    /// 1 for the first request the server received, 2 for the second...
    pub n: usize,
    /// How many requests (this one included) went to this path with this `page`.
    pub nth_of_page: usize,
}

/// [`serve`] with arrival times recorded: the handler also gets the arrival time and counts.
pub fn serve_timed(handler: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> (Server, Hits) {
    let hits = Hits::default();
    let log = hits.clone();
    let srv = serve(move |r| {
        let wall = SystemTime::now();
        let page = r.num("page", 0);
        let (n, nth_of_page) = {
            let mut g = log.0.lock().unwrap();
            let nth = g
                .iter()
                .filter(|h| h.path == r.path && h.page == page)
                .count()
                + 1;
            g.push(Hit {
                at: Instant::now(),
                wall,
                path: r.path.clone(),
                page,
            });
            (g.len(), nth)
        };
        handler(&Call {
            req: r,
            wall,
            n,
            nth_of_page,
        })
    });
    (srv, hits)
}

/// Record ids on a page (`page` from 1) of `per` records.
pub fn page_ids(page: usize, per: usize) -> std::ops::RangeInclusive<usize> {
    (page - 1) * per + 1..=page * per
}

/// The body of page `page` of `pages`: `{"total_pages": N, "items": [...]}`.
pub fn page_body(page: usize, pages: usize, per: usize) -> String {
    let ids = if (1..=pages).contains(&page) {
        recs(page_ids(page, per))
    } else {
        String::new()
    };
    format!(r#"{{"total_pages": {pages}, "items": [{ids}]}}"#)
}

/// A 200 with page `page` of `pages`.
pub fn page(page: usize, pages: usize, per: usize) -> Reply {
    Reply::json(page_body(page, pages, per))
}

/// A paged stream block (two-space indent) for `page_number` pagination over `total_pages`.
pub fn paged_stream(name: &str) -> String {
    format!(
        "  {name}:\n    path: /{name}\n    records: $.items[*]\n    pagination: {{ kind: page_number, total_pages: $.total_pages }}\n"
    )
}

/// A spec whose `http` block is given whole (two-space indented lines, `retry` included):
/// `support::spec_full` fixes its own `retry`, which these tests need to set.
pub fn rl_spec(config: &str, http: &str, streams: &str) -> String {
    let mut s = String::from("version: 1\nname: rl\nconfig:\n  base_url: { type: string }\n");
    s.push_str(config.trim_start_matches('\n'));
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str("http:\n  base_url: \"{{ config.base_url }}\"\n");
    s.push_str(http.trim_start_matches('\n'));
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str("streams:\n");
    s.push_str(streams.trim_start_matches('\n'));
    s
}

/// The `waited` column of a stream's summary row, in seconds.
#[track_caller]
pub fn waited(run: &Run, stream: &str) -> f64 {
    let _ = run.row(stream); // checks the header and that the row exists
    let line = run
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(stream))
        .unwrap();
    let cell = line.split_whitespace().nth(6).unwrap();
    cell.strip_suffix('s')
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("waited cell {cell:?} in {line:?}"))
}

/// The stderr lines that contain `fragment`.
pub fn log_lines<'a>(run: &'a Run, fragment: &str) -> Vec<&'a str> {
    run.stderr
        .lines()
        .filter(|l| l.contains(fragment))
        .collect()
}

/// The most hits in any window `[t, t + width)` that starts at a hit.
pub fn max_in_window(hits: &[Hit], width: Duration) -> usize {
    let mut t: Vec<Instant> = hits.iter().map(|h| h.at).collect();
    t.sort();
    let mut best = 0;
    let mut j = 0;
    for i in 0..t.len() {
        if j < i {
            j = i;
        }
        while j < t.len() && t[j] - t[i] < width {
            j += 1;
        }
        best = best.max(j - i);
    }
    best
}

/// What the raw server does with one request.
pub enum Raw {
    /// Writes these bytes, then closes the connection.
    Bytes(Vec<u8>),
    /// Waits, then writes these bytes and closes (a slow server).
    Delayed(Duration, Vec<u8>),
    /// Closes the connection without writing anything.
    Close,
}

/// A whole `HTTP/1.1 200` response with a JSON body, `Connection: close`.
pub fn raw_json(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A 200 announcing the whole body's length but carrying only its first `keep` bytes.
pub fn raw_truncated(body: &str, keep: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        body.len(),
        &body[..keep]
    )
    .into_bytes()
}

/// A chunked 200 whose first chunk holds the first `keep` bytes; no last chunk follows.
pub fn raw_chunked_cut(body: &str, keep: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{}\r\n",
        keep,
        &body[..keep]
    )
    .into_bytes()
}

/// A request line and the arrival time, as the raw server saw them.
#[derive(Debug, Clone)]
pub struct RawReq {
    /// `GET /items?page=2 HTTP/1.1`.
    pub line: String,
    /// The path, without the query.
    pub path: String,
    /// The `page` query parameter (0 when absent).
    pub page: usize,
    /// How many requests (this one included) went to this path with this `page`.
    pub nth_of_page: usize,
}

/// A raw HTTP/1.1 server on 127.0.0.1:0: one request per connection, answered as the
/// handler says; it lets a test send what axum would refuse to (short bodies, no answer).
pub struct RawServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<RawReq>>>,
    stop: Arc<AtomicBool>,
}

impl RawServer {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RawReq> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Starts a [`RawServer`].
pub fn serve_raw(handler: impl Fn(&RawReq) -> Raw + Send + Sync + 'static) -> RawServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Arc<Mutex<Vec<RawReq>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let handler = Arc::new(handler);
    let (l2, s2) = (log.clone(), stop.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if s2.load(Ordering::SeqCst) {
                break;
            }
            let Ok(conn) = conn else { continue };
            let (log, handler) = (l2.clone(), handler.clone());
            std::thread::spawn(move || answer(conn, &log, &*handler));
        }
    });
    RawServer { addr, log, stop }
}

fn answer(mut conn: TcpStream, log: &Mutex<Vec<RawReq>>, handler: &dyn Fn(&RawReq) -> Raw) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or_default().to_owned();
    let target = line.split(' ').nth(1).unwrap_or("/").to_owned();
    let u = url::Url::parse(&format!("http://x{target}")).unwrap();
    let page = u
        .query_pairs()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let req = {
        let mut g = log.lock().unwrap();
        let nth = g
            .iter()
            .filter(|r| r.path == u.path() && r.page == page)
            .count()
            + 1;
        let req = RawReq {
            line,
            path: u.path().to_owned(),
            page,
            nth_of_page: nth,
        };
        g.push(req.clone());
        req
    };
    let bytes = match handler(&req) {
        Raw::Close => Vec::new(),
        Raw::Bytes(b) => b,
        Raw::Delayed(d, b) => {
            std::thread::sleep(d);
            b
        }
    };
    let _ = conn.write_all(&bytes);
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

/// Expected output lines of `pages` pages of `per` records.
pub fn all_lines(pages: usize, per: usize) -> Vec<String> {
    crate::support::rec_lines(1..=pages * per)
}

/// `runtime sync spec.yaml --out out --set base_url=<base> ARGS...`, for servers that are
/// not a `support::Server`.
pub fn sync_at(sb: &Sandbox, base: &str, args: &[&str]) -> Run {
    let spec = sb.path().join("spec.yaml");
    let out = sb.out();
    let base = format!("base_url={base}");
    let mut all: Vec<&str> = vec![
        "sync",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        &base,
    ];
    all.extend_from_slice(args);
    sb.run(&all)
}
