//! One writer per output folder or file: a second `sync`, `serve` or `push` on what a
//! running one writes exits 2 at once, naming the folder (or file) and the holder's pid,
//! without a request to the API; the first finishes with every record exactly once; a
//! holder killed with `kill -9` leaves no stale lock; and clean-up never removes a live
//! process's temporary file.

#[path = "webhooks_support.rs"]
mod hooks;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Reply, Run, Sandbox, Server, serve};

/// Longest the tests wait for anything; the gate opens itself after this, so a failing
/// test cannot leave a server thread blocked for ever.
const PATIENCE: Duration = Duration::from_secs(30);

/// A second process must give up within this (it includes starting a debug binary).
const AT_ONCE: Duration = Duration::from_secs(5);

/// Holds requests until the test opens it.
#[derive(Default)]
struct Gate(AtomicBool);

impl Gate {
    fn wait(&self) {
        let deadline = Instant::now() + PATIENCE;
        while !self.0.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn open(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn item(id: usize) -> String {
    format!(r#"{{"id": {id}, "name": "item {id}"}}"#)
}

fn page(ids: std::ops::RangeInclusive<usize>, next: Option<&str>) -> Reply {
    let data: Vec<String> = ids.map(item).collect();
    let next = next.map_or(String::new(), |n| format!(r#", "next": "{n}""#));
    Reply::json(format!(r#"{{"data": [{}]{next}}}"#, data.join(", ")))
}

/// `/items`: ids 1-50, then (once the gate is open) 51-100; `/events`: one incremental
/// record.
fn items_api(gate: Arc<Gate>) -> Server {
    serve(move |r| match (r.path.as_str(), r.param("page")) {
        ("/items", None) => page(1..=50, Some("2")),
        ("/items", Some(_)) => {
            gate.wait();
            page(51..=100, None)
        }
        ("/events", _) => {
            Reply::json(r#"{"data": [{"id": 1, "updated_at": "2024-05-01T00:00:00Z"}]}"#)
        }
        _ => Reply::status(404, "{}"),
    })
}

const SYNC_SPEC: &str = r#"version: 1
name: shop
config:
  base_url: { type: string }
http:
  base_url: "{{ config.base_url }}"
  retry: { max_attempts: 2, initial: 10ms, max: 50ms }
streams:
  items:
    path: /items
    records: $.data[*]
    pagination: { kind: cursor, next: $.next, param: page }
  events:
    path: /events
    primary_key: id
    records: $.data[*]
    incremental: { cursor_field: updated_at, start: "2024-01-01T00:00:00Z" }
"#;

/// Starts the binary in the sandbox without waiting; its output goes to files there.
fn spawn(sb: &Sandbox, tag: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(args)
        .current_dir(sb.path())
        .env_remove("RUNTIME_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(sb.path().join(format!("{tag}.stdout"))).unwrap())
        .stderr(std::fs::File::create(sb.path().join(format!("{tag}.stderr"))).unwrap())
        .spawn()
        .expect("cannot start the runtime binary")
}

/// Waits for a spawned run to end; its exit code and standard error.
fn finish(sb: &Sandbox, tag: &str, mut child: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("runtime ({tag}) did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = std::fs::read_to_string(sb.path().join(format!("{tag}.stderr"))).unwrap();
    (status.code(), stderr)
}

/// Waits until `n` requests to `path` arrived.
fn wait_for_requests(server: &Server, path: &str, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while server.requests_to(path).len() < n {
        assert!(Instant::now() < deadline, "no request {n} to {path}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sync_args(sb: &Sandbox, server: &Server) -> Vec<String> {
    vec![
        "sync".into(),
        sb.path().join("spec.yaml").display().to_string(),
        "--out".into(),
        sb.out().display().to_string(),
        "--set".into(),
        format!("base_url={}", server.url()),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The temp file a running sync writes `items` to.
fn temp_of(sb: &Sandbox, pid: u32) -> PathBuf {
    sb.out().join(format!(".items.jsonl.{pid}.tmp"))
}

/// Runs `f`, checking that it ends within [`AT_ONCE`].
fn quickly(f: impl FnOnce() -> Run) -> Run {
    let started = Instant::now();
    let run = f();
    assert!(
        started.elapsed() < AT_ONCE,
        "took {:?}: {run:?}",
        started.elapsed()
    );
    run
}

#[test]
fn a_second_sync_on_the_same_folder_exits_2_and_the_first_completes_exactly_once() {
    let sb = Sandbox::new();
    sb.spec(SYNC_SPEC);
    let gate = Arc::new(Gate::default());
    let server = items_api(gate.clone());
    let args = sync_args(&sb, &server);
    let first = spawn(&sb, "first", &strs(&args));
    let pid = first.id();
    wait_for_requests(&server, "/items", 2);
    assert!(
        temp_of(&sb, pid).exists(),
        "the first run writes a temp file"
    );
    let before = server.requests().len();

    let second = quickly(|| sb.run(&strs(&args)));
    let out = sb.out().display().to_string();
    second.expect_code(2).expect_stderr(&[
        &format!("error: another runtime process (pid {pid}) is writing to {out}"),
        "wait for it to finish or use another --out",
    ]);
    assert_eq!(
        server.requests().len(),
        before,
        "the second run asked the API"
    );
    assert!(
        temp_of(&sb, pid).exists(),
        "the first run's temp file was removed"
    );

    // The state file is the first run's too: resetting it waits for the run to end.
    let spec = sb.path().join("spec.yaml").display().to_string();
    let reset = quickly(|| sb.run(&["state", "reset", &spec, "--out", &out]));
    reset.expect_code(2).expect_stderr(&[
        &format!("(pid {pid}) is writing to {out}/state.json"),
        "wait for it to finish",
    ]);

    gate.open();
    let (code, stderr) = finish(&sb, "first", first);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sb.ids("items"), (1..=100).collect::<Vec<i64>>());
    assert_eq!(sb.ids("events"), [1]);
    assert!(!temp_of(&sb, pid).exists());
    assert_eq!(
        sb.out_files(),
        ["events.jsonl", "items.jsonl", "state.json"]
    );

    // Nobody holds the folder any more: the next run and a reset just work.
    let again = sb.run(&strs(&args));
    again.expect_code(0);
    assert_eq!(sb.ids("items"), (1..=100).collect::<Vec<i64>>());
    sb.run(&["state", "reset", &spec, "--out", &out])
        .expect_code(0)
        .expect_stdout(&["reset events"]);
}

#[test]
fn a_sync_killed_with_kill_9_leaves_no_stale_lock() {
    let sb = Sandbox::new();
    sb.spec(SYNC_SPEC);
    let gate = Arc::new(Gate::default());
    let server = items_api(gate.clone());
    let args = sync_args(&sb, &server);
    let mut first = spawn(&sb, "first", &strs(&args));
    let pid = first.id();
    wait_for_requests(&server, "/items", 2);
    first.kill().unwrap();
    first.wait().unwrap();
    // What the killed run left: its pid in the lock file, its temp file.
    let lock = std::fs::read_to_string(sb.out().join(".runtime.lock")).unwrap();
    assert_eq!(lock.trim(), pid.to_string());
    assert!(temp_of(&sb, pid).exists());

    gate.open();
    let next = quickly(|| sb.run(&strs(&args)));
    next.expect_code(0);
    assert_eq!(sb.ids("items"), (1..=100).collect::<Vec<i64>>());
    assert!(!temp_of(&sb, pid).exists(), "a dead run's temp file stays");
    assert_eq!(
        sb.out_files(),
        ["events.jsonl", "items.jsonl", "state.json"]
    );
}

/// The pid of a process that has ended (and been reaped).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn clean_up_leaves_a_live_processs_temp_file_alone() {
    let sb = Sandbox::new();
    sb.spec(SYNC_SPEC);
    let gate = Arc::new(Gate::default());
    gate.open();
    let server = items_api(gate);
    std::fs::create_dir_all(sb.out()).unwrap();
    // This test process is alive and is not the sync: as if a writer ignored the lock.
    let live = temp_of(&sb, std::process::id());
    std::fs::write(&live, "live\n").unwrap();
    let dead = temp_of(&sb, dead_pid());
    std::fs::write(&dead, "dead\n").unwrap();
    let dead_state = sb.out().join(format!(".state.json.{}.tmp", dead_pid()));
    std::fs::write(&dead_state, "{}").unwrap();
    let not_ours = sb.out().join(".items.jsonl.backup.tmp");
    std::fs::write(&not_ours, "keep\n").unwrap();

    sb.run(&strs(&sync_args(&sb, &server))).expect_code(0);
    assert_eq!(sb.ids("items"), (1..=100).collect::<Vec<i64>>());
    assert_eq!(std::fs::read_to_string(&live).unwrap(), "live\n");
    assert_eq!(std::fs::read_to_string(&not_ours).unwrap(), "keep\n");
    assert!(!dead.exists(), "a dead run's temp file stays");
    assert!(!dead_state.exists(), "a dead run's state temp file stays");
}

fn serve_args(out: &Path) -> Vec<String> {
    let mut v = vec!["serve".to_owned(), hooks::SPEC.to_owned()];
    v.extend(hooks::secret_args());
    v.extend(["--listen", "127.0.0.1:0", "--out"].map(String::from));
    v.push(out.display().to_string());
    v
}

#[test]
fn a_second_serve_on_the_same_folder_exits_2_and_kill_9_leaves_no_stale_lock() {
    let sb = Sandbox::new();
    let first = hooks::Server::start(sb.path());
    let pid = first.pid();
    let out = first.out.clone();

    let second = quickly(|| sb.run(&strs(&serve_args(&out))));
    second.expect_code(2).expect_stderr(&[
        &format!(
            "error: another runtime process (pid {pid}) is writing to {}",
            out.display()
        ),
        "or use another --out",
    ]);
    assert!(
        !second.stdout.contains("listening"),
        "the second serve listened: {second:?}"
    );

    // A sync into the folder serve writes is another writer of it.
    let api = serve(|_| Reply::json(r#"{"orders": []}"#));
    let mut sync_args: Vec<String> = ["sync", hooks::SPEC, "--out"].map(String::from).into();
    sync_args.push(out.display().to_string());
    sync_args.extend(hooks::secret_args());
    sync_args.extend(["--set".to_owned(), format!("base_url={}", api.url())]);
    let sync = quickly(|| sb.run(&strs(&sync_args)));
    sync.expect_code(2)
        .expect_stderr(&[&format!("(pid {pid}) is writing to")]);
    assert!(api.requests().is_empty());

    first.kill9();
    let third = hooks::Server::start(sb.path());
    assert_eq!(third.out, out);
    let ended = third.terminate();
    assert!(ended.status.success(), "{}", ended.stderr);
}

const PUSH_SPEC: &str = r#"version: 1
name: shop
config:
  base_url: { type: string }
http:
  base_url: "{{ config.base_url }}"
  retry: { max_attempts: 2, initial: 10ms, max: 50ms }
push:
  create_orders:
    method: POST
    path: /orders
    idempotency: { key_field: external_id }
    response_id: $.id
"#;

/// `POST /orders` held at the gate, then created.
fn orders_api(gate: Arc<Gate>) -> Server {
    serve(move |r| {
        gate.wait();
        let rec: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        Reply::json(format!(
            r#"{{"id": "{}"}}"#,
            rec["external_id"].as_str().unwrap_or("")
        ))
        .with_status(201)
    })
}

fn push_args(sb: &Sandbox, server: &Server, results: &Path) -> Vec<String> {
    let input: String = (1..=5)
        .map(|n| format!("{{\"external_id\": \"EXT-{n}\"}}\n"))
        .collect();
    let input_path = sb.write("input.jsonl", &input);
    vec![
        "push".into(),
        sb.path().join("spec.yaml").display().to_string(),
        "--target".into(),
        "create_orders".into(),
        "--input".into(),
        input_path.display().to_string(),
        "--results".into(),
        results.display().to_string(),
        "--set".into(),
        format!("base_url={}", server.url()),
    ]
}

fn created(results: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(results)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["outcome"] == "created")
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_second_push_to_the_same_results_file_exits_2_and_kill_9_leaves_no_stale_lock() {
    let sb = Sandbox::new();
    sb.spec(PUSH_SPEC);
    let results = sb.path().join("results.jsonl");
    let gate = Arc::new(Gate::default());
    let server = orders_api(gate.clone());
    let args = push_args(&sb, &server, &results);
    let first = spawn(&sb, "first", &strs(&args));
    let pid = first.id();
    wait_for_requests(&server, "/orders", 1);
    let before = server.requests().len();

    let second = quickly(|| sb.run(&strs(&args)));
    second.expect_code(2).expect_stderr(&[
        &format!(
            "error: another runtime process (pid {pid}) is writing to {}",
            results.display()
        ),
        "or use another --results",
    ]);
    assert_eq!(server.requests().len(), before, "the second push sent");

    gate.open();
    let (code, stderr) = finish(&sb, "first", first);
    assert_eq!(code, Some(0), "{stderr}");
    let keys: Vec<String> = (1..=5).map(|n| format!("EXT-{n}")).collect();
    assert_eq!(created(&results), keys);
    assert_eq!(
        server.requests_to("/orders").len(),
        5,
        "each record sent once"
    );

    // kill -9 of a holder: the next push starts normally.
    let held = Arc::new(Gate::default());
    let slow = orders_api(held.clone());
    let other = sb.path().join("other.results.jsonl");
    let args = push_args(&sb, &slow, &other);
    let mut killed = spawn(&sb, "killed", &strs(&args));
    wait_for_requests(&slow, "/orders", 1);
    killed.kill().unwrap();
    killed.wait().unwrap();
    held.open();
    let next = quickly(|| sb.run(&strs(&args)));
    next.expect_code(0);
    assert_eq!(created(&other), keys);
}
