//! Incremental sync end to end: the real binary against a loopback orders API whose data
//! changes between and during runs, killed with SIGKILL at many points.

mod kill_support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::{Value, json};

/// One order on the server: its id, its version time, and a payload that changes with it.
#[derive(Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    updated_at: String,
    version: u64,
}

impl Order {
    fn json(&self) -> Value {
        json!({"id": self.id, "updated_at": self.updated_at, "version": self.version, "note": format!("order {} v{}", self.id, self.version)})
    }
}

#[derive(Default)]
struct Db {
    /// Comments per order id: (comment id, updated_at).
    comments: Mutex<BTreeMap<u64, Vec<(u64, String)>>>,
    orders: Mutex<Vec<Order>>,
    requests: AtomicUsize,
    delay_ms: AtomicUsize,
    /// Bytes of padding added to each served order, so a few pages outgrow the writer's
    /// buffer and reach the file before the checkpoint that covers them.
    pad: AtomicUsize,
    /// (after this many requests, apply this change): data changing during a run.
    during: Mutex<Vec<(usize, Order)>>,
}

fn ts(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(1_704_067_200 + secs as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

impl Db {
    fn upsert(&self, o: Order) {
        let mut g = self.orders.lock().unwrap();
        g.retain(|x| x.id != o.id);
        g.push(o);
    }

    fn snapshot(&self) -> Vec<Order> {
        self.orders.lock().unwrap().clone()
    }
}

/// `GET /orders?updated_at_gte=&cursor=&limit=`: sorted by (updated_at, id); the cursor is
/// the position of the last record, so changes during paging neither skip nor repeat.
async fn orders(
    State(db): State<Arc<Db>>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::Json<Value> {
    let n = db.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let delay = db.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    {
        let mut during = db.during.lock().unwrap();
        let due: Vec<Order> = during
            .iter()
            .filter(|(at, _)| *at <= n)
            .map(|(_, o)| o.clone())
            .collect();
        during.retain(|(at, _)| *at > n);
        for o in due {
            db.upsert(o);
        }
    }
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
    let gte = q.get("updated_at_gte").cloned();
    let after: Option<(String, u64)> = q.get("cursor").and_then(|c| {
        let (t, i) = c.split_once('|')?;
        Some((t.to_owned(), i.parse().ok()?))
    });
    let mut all = db.snapshot();
    all.sort_by(|a, b| (&a.updated_at, a.id).cmp(&(&b.updated_at, b.id)));
    let page: Vec<Order> = all
        .into_iter()
        .filter(|o| gte.as_ref().is_none_or(|g| o.updated_at >= *g))
        .filter(|o| {
            after
                .as_ref()
                .is_none_or(|(t, i)| (&o.updated_at, o.id) > (t, *i))
        })
        .take(limit)
        .collect();
    let next = (page.len() == limit)
        .then(|| page.last().map(|o| format!("{}|{}", o.updated_at, o.id)))
        .flatten();
    let pad = "x".repeat(db.pad.load(Ordering::SeqCst));
    let orders: Vec<Value> = page
        .iter()
        .map(|o| {
            let mut v = o.json();
            if !pad.is_empty() {
                v["pad"] = json!(pad);
            }
            v
        })
        .collect();
    axum::Json(json!({"orders": orders, "next_cursor": next}))
}

/// `GET /orders/{id}/comments`: every comment of an order, unfiltered (client-side filtering).
async fn comments(
    State(db): State<Arc<Db>>,
    axum::extract::Path(id): axum::extract::Path<u64>,
) -> axum::Json<Value> {
    db.requests.fetch_add(1, Ordering::SeqCst);
    let all = db
        .comments
        .lock()
        .unwrap()
        .get(&id)
        .cloned()
        .unwrap_or_default();
    axum::Json(
        json!({"comments": all.iter().map(|(c, t)| json!({"id": c, "updated_at": t})).collect::<Vec<_>>()}),
    )
}

/// A server on its own thread and runtime, alive as long as the returned guard.
struct Server {
    addr: SocketAddr,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn serve(db: Arc<Db>) -> Server {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (atx, arx) = std::sync::mpsc::channel();
    let state = db;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            atx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new()
                .route("/orders", get(orders))
                .route("/orders/{id}/comments", get(comments))
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
    Server {
        addr,
        _shutdown: tx,
    }
}

/// Orders 1..=n, three per timestamp, so many records share a boundary value.
fn seed(n: u64) -> Arc<Db> {
    let db = Arc::new(Db::default());
    for id in 1..=n {
        db.upsert(Order {
            id,
            updated_at: ts(id / 3),
            version: 1,
        });
    }
    db
}

fn spec(dir: &Path, server_filter: bool, page: u64) -> PathBuf {
    let param = if server_filter {
        "param: updated_at_gte"
    } else {
        ""
    };
    let text = format!(
        r#"version: 1
name: inc
config:
  base_url: {{ type: string }}
http:
  base_url: "{{{{ config.base_url }}}}"
  retry: {{ max_attempts: 3, initial: 10ms, max: 50ms }}
streams:
  orders:
    path: /orders
    primary_key: id
    records: $.orders[*]
    pagination: {{ kind: cursor, next: $.next_cursor, param: cursor, page_size: {{ param: limit, value: {page} }} }}
    incremental:
      cursor_field: updated_at
      {param}
      start: "2023-01-01T00:00:00Z"
      sorted: true
"#
    );
    let path = dir.join("inc.yaml");
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
    kill_support::versions(&out.join("orders.jsonl"))
}

fn lines(out: &Path) -> usize {
    std::fs::read_to_string(out.join("orders.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn expected(db: &Db) -> BTreeMap<(u64, u64), usize> {
    db.snapshot()
        .into_iter()
        .map(|o| ((o.id, o.version), 1))
        .collect()
}

/// SIGKILL once the server has seen `requests` requests and `extra` more time; true
/// only when the kill landed on a live process.
fn kill_when(child: &mut Child, db: &Db, requests: usize, extra: Duration) -> bool {
    let within = Duration::from_secs(30);
    kill_support::kill_when(child, &db.requests, requests, extra, within)
}

/// The output file's length and the length the state says is durable (0 without state).
fn lengths(out: &Path) -> (u64, u64) {
    let file = std::fs::metadata(out.join("orders.jsonl")).map_or(0, |m| m.len());
    let saved = std::fs::read(out.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["streams"]["orders"]["output_bytes"].as_u64())
        .unwrap_or(0);
    (file, saved)
}

#[test]
fn killed_at_many_points_resumes_without_loss_or_duplicates() {
    let db = seed(1200);
    db.delay_ms.store(15, Ordering::SeqCst);
    db.pad.store(2000, Ordering::SeqCst);
    let server = serve(db.clone());
    let dir = tempfile::tempdir().unwrap();
    let sorted = spec(dir.path(), true, 25);
    // The same connector, saving its state only at the end of a run: a kill after its
    // first page lands between a write and the checkpoint that would cover it, so the
    // next run must cut the output back to the saved length.
    let unsorted_dir = tempfile::tempdir().unwrap();
    let unsorted = spec(unsorted_dir.path(), true, 25);
    let text = std::fs::read_to_string(&unsorted).unwrap();
    std::fs::write(&unsorted, text.replace("sorted: true", "sorted: false")).unwrap();
    let out = dir.path().join("out");
    let mut kills = 0;
    let mut longer = 0;
    let mut points = Vec::new();
    for i in 0..24usize {
        // Before each run: an output longer than its checkpoint is a tail to cut back.
        let (file, saved) = lengths(&out);
        if saved > 0 && file > saved {
            longer += 1;
        }
        let before = db.requests.load(Ordering::SeqCst);
        let spec = if i % 3 == 1 { &unsorted } else { &sorted };
        let mut child = command(spec, &out, &server).spawn().unwrap();
        // Different points: right after start, mid-page, between pages, mid-write; an
        // unsorted run once two pages (about 100 KB, more than the writer buffers) are written.
        let pages = if i % 3 == 1 { 3 + i % 2 } else { 1 + i % 3 };
        let extra = Duration::from_millis(((i * 7) % 19) as u64);
        if kill_when(&mut child, &db, before + pages, extra) {
            kills += 1;
        }
        points.push((lines(&out), db.requests.load(Ordering::SeqCst) - before));
    }
    let (code, text) = run(&sorted, &out, &server);
    assert_eq!(code, 0, "{text}");
    let got = output(&out);
    let want = expected(&db);
    kill_support::assert_exactly_once(
        "kill -9 test",
        &got,
        &want,
        &format!(
            "{kills} real kills, {longer} restarts with an output longer than its checkpoint; (lines, requests) per killed run: {points:?}"
        ),
    );
    kill_support::assert_killed(kills, 20, 24);
    assert!(
        longer >= 4,
        "only {longer} runs restarted with an output longer than its checkpoint: the cut-back was not exercised"
    );
    // The kills really landed mid-sync: the output grew across the killed runs.
    assert!(points.windows(2).any(|w| w[0].0 < w[1].0), "{points:?}");
    assert!(points.iter().any(|(l, _)| *l < want.len()), "{points:?}");
}

#[test]
fn second_run_without_changes_writes_nothing_with_one_request() {
    let db = seed(300);
    let server = serve(db.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), true, 50);
    let out = dir.path().join("out");
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    assert_eq!(output(&out), expected(&db));
    let before = db.requests.load(Ordering::SeqCst);
    let size = std::fs::metadata(out.join("orders.jsonl")).unwrap().len();
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        db.requests.load(Ordering::SeqCst) - before,
        1,
        "one request for an unchanged stream"
    );
    assert_eq!(
        std::fs::metadata(out.join("orders.jsonl")).unwrap().len(),
        size,
        "0 records written"
    );
    let state: Value =
        serde_json::from_slice(&std::fs::read(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["streams"]["orders"]["cursor"], ts(100));
    assert_eq!(
        state["streams"]["orders"]["boundary"]
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["[300]".to_owned()])
    );
}

#[test]
fn changes_between_runs_appear_once() {
    let db = seed(200);
    let server = serve(db.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), true, 30);
    let out = dir.path().join("out");
    assert_eq!(run(&spec, &out, &server).0, 0);
    // An update at exactly the saved cursor (same timestamp, new version), an update
    // later on, an insert at the boundary and an insert after it.
    let last = ts(200 / 3);
    db.upsert(Order {
        id: 199,
        updated_at: last.clone(),
        version: 2,
    });
    db.upsert(Order {
        id: 5,
        updated_at: ts(500),
        version: 2,
    });
    db.upsert(Order {
        id: 201,
        updated_at: last,
        version: 1,
    });
    db.upsert(Order {
        id: 202,
        updated_at: ts(600),
        version: 1,
    });
    let size = lines(&out);
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    let got = output(&out);
    assert_eq!(
        lines(&out),
        size + 4,
        "exactly the four changes were appended"
    );
    for k in [(199, 2), (5, 2), (201, 1), (202, 1)] {
        assert_eq!(got.get(&k), Some(&1), "{k:?} once");
    }
    assert!(got.values().all(|n| *n == 1));
}

#[test]
fn changes_during_a_run_are_neither_lost_nor_duplicated() {
    let db = seed(300);
    // After the 3rd request: an order already paged through moves to the end, and a new
    // one appears in the middle of the range still to come.
    db.during.lock().unwrap().push((
        3,
        Order {
            id: 2,
            updated_at: ts(900),
            version: 2,
        },
    ));
    db.during.lock().unwrap().push((
        3,
        Order {
            id: 301,
            updated_at: ts(80),
            version: 1,
        },
    ));
    let server = serve(db.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), true, 20);
    let out = dir.path().join("out");
    let (code, text) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{text}");
    let got = output(&out);
    assert_eq!(got.get(&(301, 1)), Some(&1));
    assert_eq!(got.get(&(2, 2)), Some(&1));
    assert!(got.values().all(|n| *n == 1));
    // Every current version is there; the old version of order 2 was written before it changed.
    for (k, _) in expected(&db) {
        assert!(got.contains_key(&k), "{k:?} missing");
    }
    let (code, _) = run(&spec, &out, &server);
    assert_eq!(code, 0);
    assert_eq!(output(&out), got, "nothing more on the next run");
}

#[test]
fn boundary_timestamp_across_a_page_break() {
    // Ten records share one timestamp and straddle the page break (page size 4).
    let db = Arc::new(Db::default());
    for id in 1..=3 {
        db.upsert(Order {
            id,
            updated_at: ts(1),
            version: 1,
        });
    }
    for id in 4..=13 {
        db.upsert(Order {
            id,
            updated_at: ts(2),
            version: 1,
        });
    }
    let server = serve(db.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), true, 4);
    let out = dir.path().join("out");
    assert_eq!(run(&spec, &out, &server).0, 0);
    assert_eq!(output(&out), expected(&db));
    // New records at the same boundary timestamp arrive; one old one is updated in place.
    db.upsert(Order {
        id: 14,
        updated_at: ts(2),
        version: 1,
    });
    db.upsert(Order {
        id: 15,
        updated_at: ts(2),
        version: 1,
    });
    db.upsert(Order {
        id: 6,
        updated_at: ts(2),
        version: 2,
    });
    assert_eq!(run(&spec, &out, &server).0, 0);
    let got = output(&out);
    assert_eq!(got.get(&(14, 1)), Some(&1));
    assert_eq!(got.get(&(15, 1)), Some(&1));
    // Same timestamp and same key, but a new version: the content differs, so it is kept.
    assert_eq!(got.get(&(6, 2)), Some(&1));
    assert!(got.values().all(|n| *n == 1), "{got:?}");
    assert_eq!(got.len(), 16);
}

#[test]
fn client_side_filtering_matches_server_side() {
    let db = seed(240);
    let server = serve(db.clone());
    let dir = tempfile::tempdir().unwrap();
    let server_spec = spec(dir.path(), true, 25);
    let server_out = dir.path().join("server");
    assert_eq!(run(&server_spec, &server_out, &server).0, 0);
    let client_dir = tempfile::tempdir().unwrap();
    let client_spec = spec(client_dir.path(), false, 25);
    let client_out = dir.path().join("client");
    assert_eq!(run(&client_spec, &client_out, &server).0, 0);
    db.upsert(Order {
        id: 7,
        updated_at: ts(700),
        version: 2,
    });
    db.upsert(Order {
        id: 241,
        updated_at: ts(50),
        version: 1,
    });
    db.upsert(Order {
        id: 242,
        updated_at: ts(80),
        version: 1,
    });
    assert_eq!(run(&server_spec, &server_out, &server).0, 0);
    assert_eq!(run(&client_spec, &client_out, &server).0, 0);
    let a = std::fs::read_to_string(server_out.join("orders.jsonl")).unwrap();
    let b = std::fs::read_to_string(client_out.join("orders.jsonl")).unwrap();
    assert_eq!(a, b);
    // 242 lands on the saved cursor: both see it. 241 is older than the saved cursor:
    // neither does (that is what a cursor means), and both agree.
    assert!(
        a.contains("\"id\":242,") && a.contains("\"id\":7,\"updated_at\":\"2024-01-01T00:11:40Z\"")
    );
    assert!(!a.contains("\"id\":241,"));
}

#[test]
fn refuses_bad_state_files_without_touching_them() {
    let db = seed(10);
    let server = serve(db.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), true, 5);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    for (content, needle) in [
        ("{oops", "not valid JSON"),
        ("{\"version\": 2, \"connector\": \"inc\"}", "newer runtime"),
        (
            "{\"version\": 1, \"connector\": \"other\", \"streams\": {}}",
            "belongs to connector `other`",
        ),
    ] {
        std::fs::write(out.join("state.json"), content).unwrap();
        let (code, text) = run(&spec, &out, &server);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains(needle), "{needle}: {text}");
        assert_eq!(
            std::fs::read_to_string(out.join("state.json")).unwrap(),
            content
        );
    }
    std::fs::remove_file(out.join("state.json")).unwrap();
    assert_eq!(run(&spec, &out, &server).0, 0);
    let show = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["state", "show"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&show.stdout).contains("\"cursor\""));
    let reset = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["state", "reset"])
        .arg(&spec)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(reset.status.success());
    let state: Value =
        serde_json::from_slice(&std::fs::read(out.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["streams"], json!({}));
    // After a reset the output is rebuilt from the start, not appended to.
    assert_eq!(run(&spec, &out, &server).0, 0);
    assert_eq!(output(&out), expected(&db));
}

#[test]
fn child_streams_keep_state_per_parent_partition() {
    let db = seed(6);
    for order in 1..=6u64 {
        let list = (1..=2).map(|c| (order * 10 + c, ts(c))).collect();
        db.comments.lock().unwrap().insert(order, list);
    }
    let server = serve(db.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), true, 4);
    let mut text = std::fs::read_to_string(&spec).unwrap();
    text.push_str(
        r#"  comments:
    parent: { stream: orders, key: id, include: { order_id: id } }
    path: "/orders/{{ parent.id }}/comments"
    primary_key: id
    records: $.comments[*]
    incremental: { cursor_field: updated_at, start: "2023-01-01T00:00:00Z" }
"#,
    );
    std::fs::write(&spec, text).unwrap();
    let out = dir.path().join("out");
    let (code, log) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{log}");
    let count = |out: &Path| {
        std::fs::read_to_string(out.join("comments.jsonl"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(count(&out), 12);
    // Order 5 changes and gets a new comment; order 2 gets a comment but does not change,
    // so it is not offered again (that is what an incremental parent means).
    db.upsert(Order {
        id: 5,
        updated_at: ts(50),
        version: 2,
    });
    db.comments
        .lock()
        .unwrap()
        .get_mut(&5)
        .unwrap()
        .push((53, ts(9)));
    db.comments
        .lock()
        .unwrap()
        .get_mut(&2)
        .unwrap()
        .push((23, ts(9)));
    let (code, log) = run(&spec, &out, &server);
    assert_eq!(code, 0, "{log}");
    let lines: Vec<Value> = std::fs::read_to_string(out.join("comments.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        13,
        "only the new comment of order 5 was appended"
    );
    assert_eq!(
        lines[12],
        json!({"order_id": 5, "id": 53, "updated_at": ts(9)})
    );
    let state: Value =
        serde_json::from_slice(&std::fs::read(out.join("state.json")).unwrap()).unwrap();
    let parts = &state["streams"]["comments"]["partitions"];
    assert_eq!(parts["5"]["cursor"], ts(9));
    assert_eq!(parts["1"]["cursor"], ts(2));
    assert_eq!(parts.as_object().unwrap().len(), 6);
}

#[test]
fn full_refresh_ignores_the_state_and_rewrites_the_output() {
    let db = seed(40);
    let server = serve(db.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), true, 10);
    let out = dir.path().join("out");
    assert_eq!(run(&spec, &out, &server).0, 0);
    assert_eq!(run(&spec, &out, &server).0, 0);
    assert_eq!(lines(&out), 40);
    let before = db.requests.load(Ordering::SeqCst);
    let o = command(&spec, &out, &server)
        .arg("--full-refresh")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Every page again (4 full pages and an empty one), and the file holds each record once.
    assert_eq!(db.requests.load(Ordering::SeqCst) - before, 5);
    assert_eq!(output(&out), expected(&db));
    // The state was rebuilt by that run: the next plain run is back to one request.
    let before = db.requests.load(Ordering::SeqCst);
    assert_eq!(run(&spec, &out, &server).0, 0);
    assert_eq!(db.requests.load(Ordering::SeqCst) - before, 1);
}
