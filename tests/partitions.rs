//! Partitions end to end: the product of literal and config lists in declared order, each
//! pass's values in the path, the query and the body, incremental state per partition
//! across runs, a list read from another stream in batches, a failing partition, the
//! checks of `validate`, and kills with SIGKILL at many points.

mod kill_support;
mod support;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Logged, Reply, Sandbox, Server, serve, spec_full};

/// One issue: repo, state, id, update time (seconds after 2024-01-01).
#[derive(Debug, Clone)]
struct Issue {
    repo: String,
    state: String,
    id: u64,
    at: u64,
}

fn ts(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(1_704_067_200 + secs as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn secs(t: &str) -> u64 {
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp() - 1_704_067_200) as u64
}

type Db = Arc<Mutex<Vec<Issue>>>;

/// `POST /repos/{owner}/{repo}/issues?state=..&since=..&after=..`: the issues of one repo
/// and state updated at or after `since`, oldest first, 2 per page (cursor `after`); the
/// body must name the same repo. A repo named `broken/*` answers 500.
fn issues_api(r: &Logged, db: &Db, pad: usize) -> Reply {
    let Some(repo) = r
        .path
        .strip_prefix("/repos/")
        .and_then(|p| p.strip_suffix("/issues"))
    else {
        return Reply::status(404, "not found");
    };
    if repo.starts_with("broken/") {
        return Reply::status(500, "boom");
    }
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    if body["repo"] != json!(repo) {
        return Reply::status(400, "the body names another repo");
    }
    let state = r.param("state").unwrap_or_default();
    let since = r.param("since").map_or(0, secs);
    let mut hits: Vec<Issue> = db
        .lock()
        .unwrap()
        .iter()
        .filter(|i| i.repo == repo && i.state == state && i.at >= since)
        .cloned()
        .collect();
    hits.sort_by_key(|i| (i.at, i.id));
    let from = r.num("after", 0);
    let page: Vec<Value> = hits
        .iter()
        .skip(from)
        .take(2)
        .map(|i| json!({"id": i.id, "repo": i.repo, "state": i.state, "updated_at": ts(i.at), "pad": "x".repeat(pad)}))
        .collect();
    let next = if from + 2 < hits.len() {
        json!((from + 2).to_string())
    } else {
        Value::Null
    };
    Reply::value(&json!({"items": page, "next": next}))
}

const ISSUES: &str = r#"
  issues:
    method: POST
    path: "/repos/{{ partition.repo }}/issues"
    params: { state: "{{ partition.state }}" }
    body: { repo: "{{ partition.repo }}" }
    primary_key: id
    records: $.items[*]
    pagination: { kind: cursor, next: $.next, param: after }
    incremental: { cursor_field: updated_at, param: since, start: "2024-01-01T00:00:00Z" }
    partitions:
      repo: { config: repos }
      state: [open, closed]
"#;

fn issues_spec() -> String {
    spec_full("  repos: { type: array }", "", ISSUES)
}

/// Issues 1..=n spread over the repos and states, `at` growing with the id.
fn seed(repos: &[&str], n: u64) -> Db {
    let mut v = Vec::new();
    for id in 1..=n {
        let repo = repos[(id as usize) % repos.len()];
        let state = if id % 3 == 0 { "closed" } else { "open" };
        v.push(Issue {
            repo: repo.into(),
            state: state.into(),
            id,
            at: id * 10,
        });
    }
    Arc::new(Mutex::new(v))
}

fn state(sb: &Sandbox) -> Value {
    serde_json::from_slice(&std::fs::read(sb.out().join("state.json")).unwrap()).unwrap()
}

/// (repo, state) of each request, in order, first pages only.
fn passes(server: &Server) -> Vec<(String, String)> {
    server
        .requests()
        .iter()
        .filter(|r| r.param("after").is_none())
        .map(|r| {
            (
                r.path.clone(),
                r.param("state").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_product_runs_in_declared_order_and_each_partition_keeps_its_own_state() {
    let db = seed(&["acme/api", "acme/web"], 12);
    let d = db.clone();
    let server = serve(move |r| issues_api(r, &d, 0));
    let sb = Sandbox::new();
    sb.spec(&issues_spec());
    let repos = r#"repos=["acme/api","acme/web"]"#;
    sb.sync(&server, &["--set", repos]).expect_code(0);
    assert_eq!(
        passes(&server),
        [
            ("/repos/acme/api/issues".into(), "open".into()),
            ("/repos/acme/api/issues".into(), "closed".into()),
            ("/repos/acme/web/issues".into(), "open".into()),
            ("/repos/acme/web/issues".into(), "closed".into()),
        ]
    );
    let mut ids = sb.ids("issues");
    ids.sort();
    assert_eq!(ids, (1..=12).collect::<Vec<_>>());
    // Each partition's cursor, under a key made of its values.
    let st = state(&sb);
    let parts = st["streams"]["issues"]["partitions"].as_object().unwrap();
    let cursors: BTreeMap<&str, &str> = parts
        .iter()
        .map(|(k, v)| (k.as_str(), v["cursor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        cursors,
        BTreeMap::from([
            (r#"{"repo":"acme/api","state":"closed"}"#, ts(120).as_str()),
            (r#"{"repo":"acme/api","state":"open"}"#, ts(100).as_str()),
            (r#"{"repo":"acme/web","state":"closed"}"#, ts(90).as_str()),
            (r#"{"repo":"acme/web","state":"open"}"#, ts(110).as_str()),
        ])
    );
    // A new issue in one partition; the second run sends each partition its own cursor
    // and writes only the new issue.
    db.lock().unwrap().push(Issue {
        repo: "acme/web".into(),
        state: "open".into(),
        id: 13,
        at: 500,
    });
    let before = server.requests().len();
    sb.sync(&server, &["--set", repos]).expect_code(0);
    let sent: Vec<(String, String, String)> = server.requests()[before..]
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.param("state").unwrap_or_default().to_owned(),
                r.param("since").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want = [
        ("/repos/acme/api/issues", "open", ts(100)),
        ("/repos/acme/api/issues", "closed", ts(120)),
        ("/repos/acme/web/issues", "open", ts(110)),
        ("/repos/acme/web/issues", "closed", ts(90)),
    ];
    assert_eq!(
        sent,
        want.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.clone()))
            .collect::<Vec<_>>()
    );
    let mut ids = sb.ids("issues");
    ids.sort();
    assert_eq!(ids, (1..=13).collect::<Vec<_>>(), "the new issue, once");
}

#[test]
fn a_failing_partition_fails_the_stream_and_saves_no_state_past_it() {
    let db = seed(&["acme/api", "broken/x", "acme/web"], 9);
    let d = db.clone();
    let server = serve(move |r| issues_api(r, &d, 0));
    let sb = Sandbox::new();
    sb.spec(&issues_spec());
    let repos = r#"repos=["acme/api","broken/x","acme/web"]"#;
    sb.sync(&server, &["--set", repos])
        .expect_code(1)
        .expect_stderr(&[r#"partition {"repo":"broken/x","state":"open"}"#]);
    let st = state(&sb);
    let keys: Vec<&String> = st["streams"]["issues"]["partitions"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        keys,
        [r#"{"repo":"acme/api","state":"closed"}"#],
        "the passes before the failure (api/open has no issues), nothing after it"
    );
    assert!(
        !passes(&server).iter().any(|(p, _)| p.contains("acme/web")),
        "no pass starts after a failure"
    );
    // Without the broken repo, the next run finishes the rest, with nothing twice.
    let repos = r#"repos=["acme/api","acme/web"]"#;
    sb.sync(&server, &["--set", repos]).expect_code(0);
    let mut ids = sb.ids("issues");
    ids.sort();
    let want: Vec<i64> = (1..=9).filter(|i| i % 3 != 1).collect();
    assert_eq!(ids, want);
}

/// `/customers?page=N`: 125 customers with 5 ids repeated (120 distinct), 50 per page;
/// `/charges?customer=a,b,c`: one charge per customer named.
fn billing(r: &Logged) -> Reply {
    match r.path.as_str() {
        "/customers" => {
            let page = r.num("page", 1);
            let all: Vec<u64> = (1..=120).chain(1..=5).collect();
            let recs: Vec<Value> = all
                .iter()
                .skip((page - 1) * 50)
                .take(50)
                .map(|id| json!({"id": format!("cus_{id}")}))
                .collect();
            Reply::value(&json!({ "data": recs }))
        }
        "/charges" => {
            let ids = r.param("customer").unwrap_or_default();
            let recs: Vec<Value> = ids
                .split(',')
                .map(|c| json!({"id": format!("ch_{c}"), "customer": c}))
                .collect();
            Reply::value(&json!({ "data": recs }))
        }
        _ => Reply::status(404, "not found"),
    }
}

#[test]
fn a_list_from_another_stream_is_deduplicated_and_sent_in_batches() {
    let server = serve(billing);
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "",
        "",
        r#"
  customers:
    path: /customers
    primary_key: id
    records: $.data[*]
    pagination: { kind: page_number, page_param: page, size: 50 }
  charges:
    path: /charges
    params: { customer: "{{ partition.customer }}" }
    primary_key: id
    records: $.data[*]
    partitions:
      customer: { stream: customers, field: id, batch: 50, join: "," }
"#,
    ));
    sb.sync(&server, &[]).expect_code(0);
    let batches: Vec<Vec<String>> = server
        .requests_to("/charges")
        .iter()
        .map(|r| {
            r.param("customer")
                .unwrap()
                .split(',')
                .map(str::to_owned)
                .collect()
        })
        .collect();
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        [50, 50, 20]
    );
    let want: Vec<String> = (1..=120).map(|i| format!("cus_{i}")).collect();
    assert_eq!(batches.concat(), want, "in order, each once");
    assert_eq!(sb.records("charges").len(), 120);
    // Only the customers stream is asked for: charges do not run; charges asked for:
    // customers run first.
    let sb2 = Sandbox::new();
    sb2.spec(&std::fs::read_to_string(sb.path().join("spec.yaml")).unwrap());
    sb2.sync(&server, &["--streams", "charges"]).expect_code(0);
    assert_eq!(sb2.records("charges").len(), 120);
    // `check` tries each stream with its first partition: the first customer's id.
    let before = server.requests_to("/charges").len();
    sb.probe("check", &server, &[])
        .expect_code(0)
        .expect_stdout(&["2 streams checked, 0 failed"]);
    let tried = server.requests_to("/charges");
    assert_eq!(tried.len(), before + 1);
    assert_eq!(tried[before].param("customer"), Some("cus_1"));
}

#[test]
fn validate_points_at_each_partition_mistake() {
    let sb = Sandbox::new();
    let path = sb.spec(&spec_full(
        "  repos: { type: array }",
        "",
        r#"
  accounts: { path: /a, records: "$[*]" }
  issues:
    path: "/repos/{{ partition.rpo }}/issues"
    records: $[*]
    partitions:
      repo: { config: repoz }
      id: { stream: acounts, field: id }
"#,
    ));
    sb.run(&["validate", path.to_str().unwrap()])
        .expect_code(2)
        .expect_stdout(&[
            "spec.yaml:12:22: error: `partition.rpo` is not declared",
            "did you mean `partition.repo`?",
            "spec.yaml:15:23: error: config `repoz` is not declared in `config`",
            "did you mean `repos`?",
            "spec.yaml:16:21: error: stream `acounts` does not exist",
            "did you mean `accounts`?",
        ]);
    let path = sb.spec(&spec_full(
        "",
        "",
        r#"
  issues:
    path: /x
    records: $[*]
    partitions:
      state: []
      kind: { confg: x }
"#,
    ));
    sb.run(&["validate", path.to_str().unwrap()])
        .expect_code(2)
        .expect_stdout(&[
            "spec.yaml:13:14: error: expected at least 1 item",
            "spec.yaml:14:15: error: unknown field `confg`",
            "did you mean `config`?",
        ]);
}

/// Every (id) in the output with how many times it appears.
fn counts(sb: &Sandbox) -> BTreeMap<i64, usize> {
    let mut m = BTreeMap::new();
    for id in sb.ids("issues") {
        *m.entry(id).or_insert(0) += 1;
    }
    m
}

#[test]
fn a_partitioned_stream_killed_at_many_points_resumes_without_loss_or_duplicates() {
    let repos = ["r/a", "r/b", "r/c", "r/d"];
    let db = seed(&repos, 160);
    let d = db.clone();
    let server = serve(move |r| {
        std::thread::sleep(Duration::from_millis(8));
        issues_api(r, &d, 20_000)
    });
    let sb = Sandbox::new();
    sb.spec(&issues_spec());
    // The same connector with `sorted: true`: a checkpoint after every page, not only
    // after every pass.
    let sorted = issues_spec().replace(
        "start: \"2024-01-01T00:00:00Z\" }",
        "start: \"2024-01-01T00:00:00Z\", sorted: true }",
    );
    assert!(sorted.contains("sorted: true"));
    let sorted = sb.write("sorted.yaml", &sorted);
    let set = format!("repos={}", serde_json::to_string(&repos).unwrap());
    let command = |i: usize| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_runtime"));
        let spec = if i.is_multiple_of(2) {
            sorted.clone()
        } else {
            sb.path().join("spec.yaml")
        };
        c.arg("sync")
            .arg(spec)
            .arg("--out")
            .arg(sb.out())
            .args([
                "--set",
                &format!("base_url={}", server.url()),
                "--set",
                &set,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut kills = 0;
    let mut longer = 0;
    for i in 0..16usize {
        // An output longer than its checkpoint is a tail the next run cuts back.
        let file = std::fs::metadata(sb.output("issues")).map_or(0, |m| m.len());
        let saved = std::fs::read(sb.out().join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["streams"]["issues"]["output_bytes"].as_u64())
            .unwrap_or(0);
        if file > saved {
            longer += 1;
        }
        let before = server.requests().len();
        let mut child = command(i).spawn().unwrap();
        let wait_for = before + 2 + (i * 5) % 17;
        let started = Instant::now();
        while server.requests().len() < wait_for && started.elapsed() < Duration::from_secs(10) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(((i * 7) % 11) as u64));
        let _ = child.kill();
        if child.wait().unwrap().signal() == Some(libc::SIGKILL) {
            kills += 1;
        }
        // New issues between runs land in several partitions.
        if i % 4 == 3 {
            let mut g = db.lock().unwrap();
            let id = 1000 + i as u64;
            g.push(Issue {
                repo: repos[i % 4].into(),
                state: "open".into(),
                id,
                at: 5000 + i as u64,
            });
        }
    }
    let out = sb.sync(&server, &["--set", &set]);
    out.expect_code(0);
    let got = counts(&sb);
    let want: BTreeMap<i64, usize> = db
        .lock()
        .unwrap()
        .iter()
        .map(|i| (i.id as i64, 1))
        .collect();
    kill_support::assert_exactly_once(
        "partition kill -9 test",
        &got,
        &want,
        &format!("{kills} kills, {longer} restarts with an output longer than its checkpoint"),
    );
    kill_support::assert_killed(kills, 12, 16);
    assert!(longer >= 3, "only {longer} restarts cut an output back");
}

#[test]
fn partition_concurrency_runs_passes_at_once_and_an_empty_config_list_runs_none() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    let server = serve(move |_| {
        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(60));
        f.fetch_sub(1, Ordering::SeqCst);
        Reply::json("[]")
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  shards: { type: array }",
        "",
        r#"
  events:
    path: "/events/{{ partition.shard }}"
    records: $[*]
    partitions: { shard: { config: shards } }
    partition_concurrency: 4
"#,
    ));
    sb.sync(&server, &["--set", "shards=[1,2,3,4,5,6,7,8]"])
        .expect_code(0);
    assert_eq!(server.requests().len(), 8);
    assert!(
        peak.load(Ordering::SeqCst) >= 2,
        "passes ran one at a time despite partition_concurrency: 4"
    );
    sb.sync(&server, &["--set", "shards=[]"])
        .expect_code(0)
        .expect_stderr(&["a partition list is empty"]);
    assert_eq!(server.requests().len(), 8, "no request for an empty list");
    assert_eq!(sb.text("events"), "");
}
