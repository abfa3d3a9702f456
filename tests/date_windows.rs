//! Date windows end to end: the real binary against a loopback events API that filters by
//! an `updated_at` range (its end inclusive, so records on a window boundary come back
//! twice), killed with SIGKILL at many points.

mod kill_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

/// One event: id, version time, version.
#[derive(Debug, Clone)]
struct Event {
    id: u64,
    updated_at: String,
    version: u64,
}

#[derive(Default)]
struct Api {
    events: Mutex<Vec<Event>>,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    delay_ms: AtomicUsize,
    /// Extra delay for windows starting at an even hour, so windows finish out of order.
    even_hours_ms: AtomicUsize,
    pad: AtomicUsize,
    /// Every request's (since, until, offset).
    seen: Mutex<Vec<(String, String, u64)>>,
    /// Windows (by `since`) answered with 400.
    failing: Mutex<BTreeSet<String>>,
    /// Windows whose last page was served: (since, until).
    served: Mutex<BTreeSet<(String, String)>>,
}

impl Api {
    fn upsert(&self, e: Event) {
        let mut g = self.events.lock().unwrap();
        g.retain(|x| x.id != e.id);
        g.push(e);
    }

    /// The (since, until) of every window asked for, in order of the first request.
    fn windows(&self, from: usize) -> Vec<(String, String)> {
        self.seen.lock().unwrap()[from..]
            .iter()
            .filter(|(_, _, o)| *o == 0)
            .map(|(s, u, _)| (s.clone(), u.clone()))
            .collect()
    }
}

fn ts(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(1_704_067_200 + secs as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Leaves the in-flight count when the request is answered (or dropped).
struct Flight<'a>(&'a AtomicUsize);

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `GET /events?since=&until=&offset=&limit=`: `since <= updated_at <= until`, sorted by
/// (updated_at, id).
async fn events(
    State(api): State<Arc<Api>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, StatusCode> {
    api.requests.fetch_add(1, Ordering::SeqCst);
    let now = api.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _flight = Flight(&api.in_flight);
    api.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let since = q.get("since").cloned().unwrap_or_default();
    let until = q.get("until").cloned().unwrap_or_default();
    let offset: u64 = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    api.seen
        .lock()
        .unwrap()
        .push((since.clone(), until.clone(), offset));
    let even = since
        .get(11..13)
        .and_then(|h| h.parse::<u32>().ok())
        .is_some_and(|h| h % 2 == 0);
    let delay = api.delay_ms.load(Ordering::SeqCst)
        + if even {
            api.even_hours_ms.load(Ordering::SeqCst)
        } else {
            0
        };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    if api.failing.lock().unwrap().contains(&since) {
        return Err(StatusCode::BAD_REQUEST);
    }
    let mut all = api.events.lock().unwrap().clone();
    all.sort_by(|a, b| (&a.updated_at, a.id).cmp(&(&b.updated_at, b.id)));
    let page: Vec<Event> = all
        .into_iter()
        .filter(|e| e.updated_at >= since && e.updated_at <= until)
        .skip(offset as usize)
        .take(limit)
        .collect();
    if page.len() < limit {
        api.served.lock().unwrap().insert((since, until));
    }
    let pad = "x".repeat(api.pad.load(Ordering::SeqCst));
    let events: Vec<Value> = page
        .iter()
        .map(|e| json!({"id": e.id, "updated_at": e.updated_at, "version": e.version, "pad": pad}))
        .collect();
    Ok(axum::Json(json!({ "events": events })))
}

/// A server on its own thread and runtime, alive as long as the returned guard.
struct Server {
    addr: SocketAddr,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn serve(api: Arc<Api>) -> Server {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (atx, arx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            atx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new().route("/events", get(events)).with_state(api);
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
    });
    Server {
        addr: arx.recv().unwrap(),
        _shutdown: tx,
    }
}

/// Events 1..=n, three per `step` seconds from midnight, so many lie on window boundaries.
fn seed(n: u64, step: u64) -> Arc<Api> {
    let api = Arc::new(Api::default());
    for id in 1..=n {
        api.upsert(Event {
            id,
            updated_at: ts((id - 1) / 3 * step),
            version: 1,
        });
    }
    api
}

fn spec(dir: &Path, size: &str, concurrency: u32, page: u64) -> PathBuf {
    let text = format!(
        r#"version: 1
name: win
config:
  base_url: {{ type: string }}
http:
  base_url: "{{{{ config.base_url }}}}"
  retry: {{ max_attempts: 2, initial: 10ms, max: 20ms }}
streams:
  events:
    path: /events
    primary_key: id
    records: $.events[*]
    pagination: {{ kind: offset, limit: {page} }}
    incremental:
      cursor_field: updated_at
      param: since
      end_param: until
      start: "2024-01-01T00:00:00Z"
      end: "2024-01-02T00:00:00Z"
      windows: {{ size: {size}, concurrency: {concurrency} }}
"#
    );
    let path = dir.join("win.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn command(spec: &Path, out: &Path, server: &Server) -> Command {
    kill_support::command(spec, out, server.addr)
}

fn run(spec: &Path, out: &Path, server: &Server) -> (i32, String) {
    kill_support::run(spec, out, server.addr)
}

/// Every (id, version) in the output, with how many times each appears.
fn output(out: &Path) -> BTreeMap<(u64, u64), usize> {
    kill_support::versions(&out.join("events.jsonl"))
}

fn expected(api: &Api) -> BTreeMap<(u64, u64), usize> {
    api.events
        .lock()
        .unwrap()
        .iter()
        .map(|e| ((e.id, e.version), 1))
        .collect()
}

fn state(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("state.json")).unwrap()).unwrap()
}

/// `[from, to)` cut every `step` hours of 2024-01-01, as (since, until).
fn hours(from: u64, to: u64, step: u64) -> Vec<(String, String)> {
    (from..to)
        .step_by(step as usize)
        .map(|h| (ts(h * 3600), ts((h + step).min(to) * 3600)))
        .collect()
}

#[test]
fn windows_are_the_expected_ranges_run_at_once_and_boundaries_appear_once() {
    // 300 events every 10 minutes from 00:00 to 16:30, three at each instant; windows
    // of 2 h end on instants that hold events.
    let api = seed(300, 600);
    api.delay_ms.store(20, Ordering::SeqCst);
    let server = serve(api.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "2h", 4, 10);
    let out = dir.path().join("out");
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    let mut asked = api.windows(0);
    asked.sort();
    assert_eq!(asked, hours(0, 24, 2), "from start to end in 2 h windows");
    assert_eq!(output(&out), expected(&api), "every event once");
    assert!(
        api.most_in_flight.load(Ordering::SeqCst) >= 2,
        "windows run at once"
    );
    let st = state(&out);
    assert_eq!(st["streams"]["events"]["cursor"], ts(99 * 600));
    assert!(st["streams"]["events"].get("windows").is_none(), "{st}");

    // A new version at the saved cursor, one later, and a new event: the second run asks
    // from the saved cursor only, and writes exactly those.
    let first = api.seen.lock().unwrap().len();
    api.upsert(Event {
        id: 300,
        updated_at: ts(99 * 600),
        version: 2,
    });
    api.upsert(Event {
        id: 7,
        updated_at: ts(20 * 3600),
        version: 2,
    });
    api.upsert(Event {
        id: 301,
        updated_at: ts(18 * 3600 + 1800),
        version: 1,
    });
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    let mut asked = api.windows(first);
    asked.sort();
    let c = 99 * 600; // 16:30
    let want: Vec<(String, String)> = [
        (c, c + 7200),
        (c + 7200, c + 14400),
        (c + 14400, c + 21600),
        (c + 21600, 86400),
    ]
    .iter()
    .map(|(a, b)| (ts(*a), ts(*b)))
    .collect();
    assert_eq!(asked, want, "from the saved cursor");
    let got = output(&out);
    assert_eq!(
        got,
        expected(&api)
            .into_iter()
            .chain([((7, 1), 1), ((300, 1), 1)])
            .collect()
    );
    assert_eq!(state(&out)["streams"]["events"]["cursor"], ts(20 * 3600));
}

#[test]
fn a_failing_window_keeps_the_finished_ones_and_the_next_run_fetches_the_rest() {
    let api = seed(300, 600);
    api.delay_ms.store(5, Ordering::SeqCst);
    api.failing.lock().unwrap().insert(ts(6 * 3600));
    let server = serve(api.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "2h", 2, 10);
    let out = dir.path().join("out");
    let (code, text) = run(&spec, &out, &server);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("window from 2024-01-01T06:00:00Z to 2024-01-01T08:00:00Z"),
        "{text}"
    );
    let finished = api.served.lock().unwrap().clone();
    assert!(
        !finished.is_empty(),
        "some windows finished before the failure"
    );
    let w = &state(&out)["streams"]["events"]["windows"];
    assert_eq!(
        w["low"],
        ts(6 * 3600),
        "everything before the failed window: {w}"
    );
    let written = output(&out);
    assert!(written.values().all(|n| *n == 1), "{written:?}");
    assert!(!written.is_empty() && written.len() < 300);

    let first = api.seen.lock().unwrap().len();
    api.failing.lock().unwrap().clear();
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    let again: BTreeSet<(String, String)> = api.windows(first).into_iter().collect();
    assert!(
        again.is_disjoint(&finished),
        "a finished window was fetched again: {again:?} {finished:?}"
    );
    assert!(again.contains(&(ts(6 * 3600), ts(8 * 3600))), "{again:?}");
    let all: BTreeSet<(String, String)> = again.union(&finished).cloned().collect();
    assert_eq!(
        all,
        hours(0, 24, 2).into_iter().collect(),
        "every window once"
    );
    assert_eq!(output(&out), expected(&api));
    assert!(state(&out)["streams"]["events"].get("windows").is_none());
}

#[test]
fn a_window_with_more_records_than_memory_holds_goes_out_whole() {
    // 3 MB of records in one window: more than the spool keeps in memory.
    let api = seed(600, 60);
    api.pad.store(5000, Ordering::SeqCst);
    let server = serve(api.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "1d", 1, 100);
    let out = dir.path().join("out");
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    assert_eq!(output(&out), expected(&api));
}

/// SIGKILL once the server has seen `requests` requests and `extra` more time; true
/// only when the kill landed on a live process.
fn kill_when(child: &mut Child, api: &Api, requests: usize, extra: Duration) -> bool {
    let within = Duration::from_secs(20);
    kill_support::kill_when(child, &api.requests, requests, extra, within)
}

#[test]
fn killed_at_many_points_resumes_only_unfinished_windows_without_loss_or_duplicates() {
    // 1200 events, three every 3 minutes from 00:00 to 20:00; 1-hour windows of 60
    // events, pages of 10: 7 requests a window (144 in all), two windows at once.
    let api = seed(1200, 180);
    api.delay_ms.store(3, Ordering::SeqCst);
    api.even_hours_ms.store(6, Ordering::SeqCst);
    api.pad.store(2000, Ordering::SeqCst);
    let server = serve(api.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "1h", 2, 10);
    let out = dir.path().join("out");
    let mut kills = 0;
    let mut resumed = 0;
    let mut points = Vec::new();
    for i in 0..24usize {
        let saved = std::fs::read(out.join("state.json")).is_ok();
        let before = api.requests.load(Ordering::SeqCst);
        let mut child = command(&spec, &out, &server).spawn().unwrap();
        let after = 3 + (i * 7) % 17;
        let extra = Duration::from_millis(((i * 5) % 7) as u64);
        if kill_when(&mut child, &api, before + after, extra) {
            kills += 1;
        }
        let state = std::fs::read(out.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let low = state.as_ref().and_then(|s| {
            s["streams"]["events"]["windows"]["low"]
                .as_str()
                .map(str::to_owned)
        });
        let done = state
            .as_ref()
            .and_then(|s| {
                s["streams"]["events"]["windows"]["done"]
                    .as_array()
                    .map(Vec::len)
            })
            .unwrap_or(0);
        if saved {
            resumed += 1;
        }
        points.push((output(&out).len(), low, done));
    }
    let before = api.requests.load(Ordering::SeqCst);
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    let last = api.requests.load(Ordering::SeqCst) - before;
    let got = output(&out);
    let want = expected(&api);
    kill_support::assert_exactly_once(
        "windows kill -9 test",
        &got,
        &want,
        &format!(
            "{kills} real kills, {resumed} resumed from a saved state, {last} requests in the last run; (records, low-water mark, finished windows beyond it) after each killed run: {points:?}"
        ),
    );
    kill_support::assert_killed(kills, 20, 24);
    assert!(
        resumed >= 10,
        "only {resumed} runs resumed from a saved state"
    );
    // The kills landed mid-sync, and the last run fetched only what was left.
    assert!(
        points.iter().any(|(n, _, _)| *n > 0 && *n < want.len()),
        "{points:?}"
    );
    // Windows finished out of order were saved beyond the low-water mark, and resumed.
    assert!(points.iter().any(|(_, _, d)| *d > 0), "{points:?}");
    assert!(
        last < 144,
        "the last run fetched {last} requests: it started over"
    );
}

/// The PagerDuty stand-in: `GET /log_entries?since=&until=&offset=&limit=`, entries with
/// `since <= created_at < until`, newest first as the real API answers, offset paging
/// with `more`, and the real API's token header.
#[derive(Default)]
struct PagerDuty {
    entries: Mutex<Vec<(String, String)>>,
    asked: Mutex<Vec<(String, String)>>,
}

async fn log_entries(
    State(pd): State<Arc<PagerDuty>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, (StatusCode, String)> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if header("authorization") != Some("Token token=pd_test") {
        return Err((
            StatusCode::UNAUTHORIZED,
            r#"{"error":{"message":"Unauthorized"}}"#.into(),
        ));
    }
    if header("accept") != Some("application/vnd.pagerduty+json;version=2") {
        return Err((StatusCode::NOT_ACCEPTABLE, "{}".into()));
    }
    let since = q.get("since").cloned().unwrap_or_default();
    let until = q.get("until").cloned().unwrap_or_default();
    let offset: usize = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(25);
    if offset == 0 {
        pd.asked
            .lock()
            .unwrap()
            .push((since.clone(), until.clone()));
    }
    let mut all: Vec<(String, String)> = pd
        .entries
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at >= since && *at < until)
        .cloned()
        .collect();
    all.sort_by(|a, b| b.1.cmp(&a.1));
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(id, at)| json!({"id": id, "type": "trigger_log_entry", "created_at": at, "summary": format!("Triggered {id}")}))
        .collect();
    let more = offset + limit < all.len();
    Ok(axum::Json(
        json!({"log_entries": page, "limit": limit, "offset": offset, "more": more, "total": null}),
    ))
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn the_pagerduty_example_reads_log_entries_week_by_week() {
    let now = time::OffsetDateTime::now_utc();
    let pd = Arc::new(PagerDuty::default());
    // 250 entries over the last 83 days: more than one page in most weeks.
    for k in 1..=250i64 {
        let at = rfc3339(now - time::Duration::minutes(k * 480));
        pd.entries.lock().unwrap().push((format!("LE{k:04}"), at));
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (atx, arx) = std::sync::mpsc::channel();
    let state = pd.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            atx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new()
                .route("/log_entries", get(log_entries))
                .with_state(state);
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
    });
    let addr = arx.recv().unwrap();
    let _shutdown = tx;
    let spec = format!(
        "{}/../../connectors/pagerduty.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sync = || {
        let o = Command::new(env!("CARGO_BIN_EXE_runtime"))
            .args(["sync", &spec, "--out"])
            .arg(&out)
            .args(["--set", &format!("base_url=http://{addr}")])
            .env("PAGERDUTY_API_TOKEN", "pd_test")
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(0), "{text}");
        assert!(
            !text.contains("pd_test"),
            "the token is never printed: {text}"
        );
    };
    let ids = || -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        let text = std::fs::read_to_string(out.join("log_entries.jsonl")).unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            *m.entry(v["id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
        m
    };
    sync();
    let got = ids();
    assert_eq!(got.len(), 250, "every entry");
    assert!(got.values().all(|n| *n == 1), "once each");
    // 90 days from the default start to now, in contiguous 7-day windows.
    let mut asked = pd.asked.lock().unwrap().clone();
    asked.sort();
    assert_eq!(asked.len(), 13, "{asked:?}");
    let parse = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    };
    for w in asked.windows(2) {
        assert_eq!(w[0].1, w[1].0, "contiguous: {asked:?}");
    }
    for (a, b) in &asked[..12] {
        assert_eq!(parse(b) - parse(a), time::Duration::days(7));
    }
    let span = parse(&asked[12].1) - parse(&asked[0].0);
    assert!(
        (span - time::Duration::days(90)).abs() < time::Duration::minutes(2),
        "{span}"
    );

    // A new entry: the next run asks from the newest written (minus the 5-minute
    // lookback) and writes only the new entry.
    let newest = rfc3339(now - time::Duration::minutes(480));
    let state: Value =
        serde_json::from_slice(&std::fs::read(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["streams"]["log_entries"]["cursor"], newest.as_str());
    let fresh = rfc3339(time::OffsetDateTime::now_utc() - time::Duration::seconds(30));
    pd.entries.lock().unwrap().push(("LE9999".into(), fresh));
    let before = pd.asked.lock().unwrap().len();
    sync();
    let again = pd.asked.lock().unwrap()[before..].to_vec();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(
        again[0].0,
        rfc3339(parse(&newest) - time::Duration::minutes(5))
    );
    let got = ids();
    assert_eq!(got.len(), 251);
    assert!(got.values().all(|n| *n == 1), "{got:?}");
}

#[test]
fn too_many_windows_are_refused_before_any_request() {
    let api = seed(3, 60);
    let server = serve(api.clone());
    let dir = tempfile::tempdir().unwrap();
    // A day in half-second windows: 172,800 windows.
    let spec = spec(dir.path(), "500ms", 4, 10);
    let out = dir.path().join("out");
    let (code, text) = run(&spec, &out, &server);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("streams.events.incremental.windows: more than 100000 windows"),
        "{text}"
    );
    assert_eq!(api.requests.load(Ordering::SeqCst), 0);
}
