//! Date windows inside partitions and on child streams, end to end: the real binary
//! against a loopback events API whose records belong to a region and that filters by an
//! `updated_at` range (its end inclusive, so records on a window boundary come back
//! twice). Each region is a partition (or a parent record) with windows of its own; the
//! sync is also killed with SIGKILL at many points.

mod kill_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Logged, Reply, Server, serve};

const REGIONS: [&str; 3] = ["eu", "us", "ap"];

/// One event: id, region, version time, version.
#[derive(Debug, Clone)]
struct Event {
    id: u64,
    region: &'static str,
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
    /// Windows answered with 400: (region, since).
    failing: Mutex<BTreeSet<(String, String)>>,
    /// Windows whose last page was served: (region, since, until).
    served: Mutex<BTreeSet<(String, String, String)>>,
}

impl Api {
    fn upsert(&self, e: Event) {
        let mut g = self.events.lock().unwrap();
        g.retain(|x| x.id != e.id);
        g.push(e);
    }

    fn expected(&self) -> BTreeMap<(u64, u64), usize> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| ((e.id, e.version), 1))
            .collect()
    }
}

fn ts(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(1_704_067_200 + secs as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Leaves the in-flight count when the request is answered.
struct Flight<'a>(&'a AtomicUsize);

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `GET /accounts`: the regions as parent records. `GET /events?region=&since=&until=&
/// offset=&limit=`: the region's events with `since <= updated_at <= until`, sorted by
/// (updated_at, id).
fn answer(api: &Api, r: &Logged) -> Reply {
    if r.path == "/accounts" {
        let all: Vec<Value> = REGIONS.iter().map(|g| json!({ "id": g })).collect();
        return Reply::value(&json!(all));
    }
    api.requests.fetch_add(1, Ordering::SeqCst);
    let now = api.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _flight = Flight(&api.in_flight);
    api.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let region = r.param("region").unwrap_or_default().to_owned();
    let since = r.param("since").unwrap_or_default().to_owned();
    let until = r.param("until").unwrap_or_default().to_owned();
    let offset = r.num("offset", 0);
    let limit = r.num("limit", 10);
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
        std::thread::sleep(Duration::from_millis(delay as u64));
    }
    if api
        .failing
        .lock()
        .unwrap()
        .contains(&(region.clone(), since.clone()))
    {
        return Reply::status(400, r#"{"error": "bad window"}"#);
    }
    let mut all = api.events.lock().unwrap().clone();
    all.sort_by(|a, b| (&a.updated_at, a.id).cmp(&(&b.updated_at, b.id)));
    let page: Vec<Value> = all
        .iter()
        .filter(|e| e.region == region && e.updated_at >= since && e.updated_at <= until)
        .skip(offset)
        .take(limit)
        .map(|e| json!({"id": e.id, "region": e.region, "updated_at": e.updated_at, "version": e.version}))
        .collect();
    if page.len() < limit {
        api.served.lock().unwrap().insert((region, since, until));
    }
    Reply::value(&json!({ "events": page }))
}

/// `counts[i]` events in region `i`, three per `step` seconds from midnight, so many lie
/// on window boundaries; ids are distinct across regions.
fn seed(counts: [u64; 3], step: u64) -> Arc<Api> {
    let api = Arc::new(Api::default());
    for (i, n) in counts.iter().enumerate() {
        for k in 1..=*n {
            api.upsert(Event {
                id: (i as u64 + 1) * 10_000 + k,
                region: REGIONS[i],
                updated_at: ts((k - 1) / 3 * step),
                version: 1,
            });
        }
    }
    api
}

fn start(api: &Arc<Api>) -> Server {
    let api = api.clone();
    serve(move |r| answer(&api, r))
}

/// How the events stream reads its regions.
enum Shape {
    /// `partitions: { region: [eu, us, ap] }`, this many at once.
    Partitions(u32),
    /// A child of `accounts`, this many parent records at once.
    Child(u32),
}

/// The events spec: `size` windows, `concurrency` at once, from midnight to `end_h` hours.
fn spec(dir: &Path, shape: Shape, size: &str, concurrency: u32, end_h: u64) -> PathBuf {
    let (region, by) = match shape {
        Shape::Partitions(n) => (
            "partition.region",
            format!(
                "    partitions:\n      region: [eu, us, ap]\n    partition_concurrency: {n}\n"
            ),
        ),
        Shape::Child(n) => (
            "parent.id",
            format!("    parent: {{ stream: accounts, key: id, concurrency: {n} }}\n"),
        ),
    };
    let text = format!(
        r#"version: 1
name: regions
config:
  base_url: {{ type: string }}
http:
  base_url: "{{{{ config.base_url }}}}"
  retry: {{ max_attempts: 2, initial: 10ms, max: 20ms }}
streams:
  accounts:
    path: /accounts
    primary_key: id
    records: $[*]
  events:
    path: /events
    params: {{ region: "{{{{ {region} }}}}" }}
    primary_key: id
    records: $.events[*]
    pagination: {{ kind: offset, limit: 10 }}
{by}    incremental:
      cursor_field: updated_at
      param: since
      end_param: until
      start: "2024-01-01T00:00:00Z"
      end: "{end}"
      windows: {{ size: {size}, concurrency: {concurrency} }}
"#,
        end = ts(end_h * 3600)
    );
    let path = dir.join("regions.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(spec: &Path, out: &Path, server: &Server) -> (i32, String) {
    kill_support::run(spec, out, server_addr(server))
}

fn server_addr(server: &Server) -> std::net::SocketAddr {
    server.url().trim_start_matches("http://").parse().unwrap()
}

fn output(out: &Path) -> BTreeMap<(u64, u64), usize> {
    kill_support::versions(&out.join("events.jsonl"))
}

fn state(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("state.json")).unwrap()).unwrap()
}

/// The windows asked for from request `from` on: (region, since, until) of each first page.
fn asked(server: &Server, from: usize) -> Vec<(String, String, String)> {
    let mut w: Vec<(String, String, String)> = server.requests_to("/events")[from..]
        .iter()
        .filter(|r| r.num("offset", 0) == 0)
        .map(|r| {
            let p = |n: &str| r.param(n).unwrap_or_default().to_owned();
            (p("region"), p("since"), p("until"))
        })
        .collect();
    w.sort();
    w
}

/// `[from, to)` seconds cut every `step` seconds, for each region.
fn windows(per_region: &[(&str, u64)], to: u64, step: u64) -> Vec<(String, String, String)> {
    let mut w = Vec::new();
    for (region, from) in per_region {
        let mut a = *from;
        while a < to {
            let b = (a + step).min(to);
            w.push((region.to_string(), ts(a), ts(b)));
            a = b;
        }
    }
    w.sort();
    w
}

const H: u64 = 3600;

fn key(shape_child: bool, region: &str) -> String {
    match shape_child {
        true => region.to_owned(),
        false => format!(r#"{{"region":"{region}"}}"#),
    }
}

/// One sync, then a second after changes: every region's windows exactly once, then
/// every region from its own saved cursor.
fn each_region_gets_its_own_windows(shape: Shape) {
    let child = matches!(shape, Shape::Child(_));
    // Three events every 10 minutes: eu to 06:30, us to 09:50, ap to 04:50.
    let api = seed([120, 180, 90], 600);
    api.delay_ms.store(5, Ordering::SeqCst);
    let server = start(&api);
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), shape, "4h", 3, 20);
    let out = dir.path().join("out");
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    let all = [("eu", 0), ("us", 0), ("ap", 0)];
    assert_eq!(
        asked(&server, 0),
        windows(&all, 20 * H, 4 * H),
        "3 regions x 5 windows, each once"
    );
    assert_eq!(output(&out), api.expected(), "every event once");
    assert!(
        api.most_in_flight.load(Ordering::SeqCst) >= 2,
        "windows run at once"
    );
    let st = &state(&out)["streams"]["events"];
    let last = [("eu", 39 * 600), ("us", 59 * 600), ("ap", 29 * 600)];
    for (region, at) in last {
        assert_eq!(
            st["partitions"][key(child, region)]["cursor"],
            ts(at),
            "{st}"
        );
    }
    assert!(st.get("partition_windows").is_none(), "{st}");
    assert!(st.get("windows").is_none(), "{st}");

    // A new version of an eu event at its saved cursor, a new us event: the second run
    // asks each region from its own cursor, and writes exactly those.
    let before = server.requests_to("/events").len();
    api.upsert(Event {
        id: 10_120,
        region: "eu",
        updated_at: ts(39 * 600),
        version: 2,
    });
    api.upsert(Event {
        id: 20_999,
        region: "us",
        updated_at: ts(15 * H),
        version: 1,
    });
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    let from_cursors = [("eu", 39 * 600), ("us", 59 * 600), ("ap", 29 * 600)];
    assert_eq!(
        asked(&server, before),
        windows(&from_cursors, 20 * H, 4 * H)
    );
    let want: BTreeMap<(u64, u64), usize> = api
        .expected()
        .into_iter()
        .chain([((10_120, 1), 1)])
        .collect();
    assert_eq!(output(&out), want);
    let st = &state(&out)["streams"]["events"];
    assert_eq!(st["partitions"][key(child, "us")]["cursor"], ts(15 * H));
}

#[test]
fn each_partition_gets_its_own_windows_once_and_keeps_its_own_cursor() {
    each_region_gets_its_own_windows(Shape::Partitions(3));
}

#[test]
fn a_child_stream_gets_windows_per_parent_record() {
    each_region_gets_its_own_windows(Shape::Child(3));
}

#[test]
fn a_failing_window_keeps_what_every_partition_finished() {
    let api = seed([120, 180, 90], 600);
    api.delay_ms.store(3, Ordering::SeqCst);
    api.failing.lock().unwrap().insert(("us".into(), ts(8 * H)));
    let server = start(&api);
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), Shape::Partitions(3), "4h", 2, 20);
    let out = dir.path().join("out");
    let (code, text) = run(&spec, &out, &server);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains(
            r#"partition {"region":"us"}: window from 2024-01-01T08:00:00Z to 2024-01-01T12:00:00Z"#
        ),
        "{text}"
    );
    let finished = api.served.lock().unwrap().clone();
    let st = &state(&out)["streams"]["events"];
    let us = &st["partition_windows"][key(false, "us")];
    assert_eq!(
        us["low"],
        ts(8 * H),
        "everything before the failed window: {st}"
    );
    let written = output(&out);
    assert!(written.values().all(|n| *n == 1), "{written:?}");

    // The other regions finished: their state is the plain cursor again.
    for region in ["eu", "ap"] {
        assert!(
            st["partition_windows"].get(key(false, region)).is_none(),
            "{st}"
        );
        assert!(
            st["partitions"][key(false, region)]["cursor"].is_string(),
            "{st}"
        );
    }

    let before = server.requests_to("/events").len();
    api.failing.lock().unwrap().clear();
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    let again = asked(&server, before);
    // us: only its unfinished windows; eu and ap: from their cursors, as any next run.
    let us_again: BTreeSet<(String, String, String)> =
        again.iter().filter(|w| w.0 == "us").cloned().collect();
    assert!(
        us_again.is_disjoint(&finished),
        "a finished window was fetched again: {us_again:?} {finished:?}"
    );
    assert!(
        us_again.contains(&("us".into(), ts(8 * H), ts(12 * H))),
        "{us_again:?}"
    );
    let us_first: BTreeSet<(String, String, String)> =
        finished.iter().filter(|w| w.0 == "us").cloned().collect();
    let all: BTreeSet<(String, String, String)> = us_again.union(&us_first).cloned().collect();
    let every = windows(&[("us", 0)], 20 * H, 4 * H);
    assert_eq!(all, every.into_iter().collect(), "every us window once");
    let others: Vec<(String, String, String)> = again.into_iter().filter(|w| w.0 != "us").collect();
    assert_eq!(
        others,
        windows(&[("ap", 29 * 600), ("eu", 39 * 600)], 20 * H, 4 * H)
    );
    assert_eq!(output(&out), api.expected());
    assert!(
        state(&out)["streams"]["events"]
            .get("partition_windows")
            .is_none()
    );
}

#[test]
fn killed_at_many_points_resumes_only_the_unfinished_windows_of_each_partition() {
    // 1080 events a region, three every 4 minutes to 23:56; 1-hour windows of 45 events
    // and pages of 10: 5 requests a window, 24 windows a region, 360 requests in all; two
    // regions at once, two windows each.
    let api = seed([1080, 1080, 1080], 240);
    api.delay_ms.store(2, Ordering::SeqCst);
    api.even_hours_ms.store(4, Ordering::SeqCst);
    let server = start(&api);
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), Shape::Partitions(2), "1h", 2, 24);
    let out = dir.path().join("out");
    let addr = server_addr(&server);
    let mut kills = 0;
    let mut resumed = 0;
    let mut points = Vec::new();
    for i in 0..24usize {
        let saved = std::fs::read(out.join("state.json")).is_ok();
        let before = api.requests.load(Ordering::SeqCst);
        let mut child = kill_support::command(&spec, &out, addr).spawn().unwrap();
        // Four windows page side by side: the first ones finish after 12 or more requests.
        let after = 12 + (i * 7) % 23;
        let extra = Duration::from_millis(((i * 5) % 7) as u64);
        let within = Duration::from_secs(20);
        if kill_support::kill_when(&mut child, &api.requests, before + after, extra, within) {
            kills += 1;
        }
        if saved {
            resumed += 1;
        }
        let st = std::fs::read(out.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let parts = st
            .as_ref()
            .and_then(|s| {
                s["streams"]["events"]["partition_windows"]
                    .as_object()
                    .cloned()
            })
            .unwrap_or_default();
        let done: usize = parts
            .values()
            .map(|w| w["done"].as_array().map_or(0, Vec::len))
            .sum();
        points.push((output(&out).len(), parts.len(), done));
    }
    let before = api.requests.load(Ordering::SeqCst);
    let (code, text) = kill_support::run(&spec, &out, addr);
    assert_eq!(code, 0, "{text}");
    let last = api.requests.load(Ordering::SeqCst) - before;
    let got = output(&out);
    let want = api.expected();
    kill_support::assert_exactly_once(
        "partition windows kill -9 test",
        &got,
        &want,
        &format!(
            "{kills} real kills, {resumed} resumed from a saved state, {last} requests in the last run; (records, partitions with unfinished windows, finished windows beyond their low-water marks) after each killed run: {points:?}"
        ),
    );
    kill_support::assert_killed(kills, 20, 24);
    assert!(
        resumed >= 10,
        "only {resumed} runs resumed from a saved state"
    );
    assert!(
        points.iter().any(|(n, _, _)| *n > 0 && *n < want.len()),
        "{points:?}"
    );
    // Partitions were saved halfway, with windows finished beyond the low-water mark.
    assert!(points.iter().any(|(_, p, _)| *p > 0), "{points:?}");
    assert!(points.iter().any(|(_, _, d)| *d > 0), "{points:?}");
    assert!(
        last < 360,
        "the last run fetched {last} requests: it started over"
    );
    let st = &state(&out)["streams"]["events"];
    assert!(st.get("partition_windows").is_none(), "{st}");
    for region in REGIONS {
        assert_eq!(
            st["partitions"][key(false, region)]["cursor"],
            ts(359 * 240)
        );
    }
}
