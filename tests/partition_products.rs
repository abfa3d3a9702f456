//! Partitions from two streams at once (issue 13): `usage` runs once per account x region
//! x state, the accounts and the regions read from two other streams. The exact requests
//! in declared order, the records, the state per partition; one stream run at a time
//! (no deadlock on the stream permit); an upstream that fails or gives nothing; an
//! upstream that is itself a child stream of the other with more records than a channel
//! holds; kills with SIGKILL at many points; what `validate` refuses.

mod kill_support;
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Logged, Reply, Sandbox, Server, serve, spec};

fn ts(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(1_704_067_200 + secs as i64).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn secs(t: &str) -> u64 {
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp() - 1_704_067_200) as u64
}

/// One usage record of an account, region and state.
#[derive(Debug, Clone)]
struct Usage {
    id: u64,
    account: String,
    region: String,
    state: &'static str,
    at: u64,
}

/// What the stand-in API serves.
#[derive(Default)]
struct Db {
    /// (id, update time).
    accounts: Vec<(String, u64)>,
    regions: Vec<String>,
    usage: Vec<Usage>,
    /// `/regions` answers 404 (not retried).
    regions_fail: bool,
    /// Padding in each usage record, to make writes take time.
    pad: usize,
    /// `/usage/{this account}/...` answers 404.
    usage_fail: Option<String>,
}

type World = Arc<Mutex<Db>>;

/// `/accounts?since=&page=`: updated at or after `since`, oldest first, 3 per page;
/// `/regions`: all codes; `/usage/{account}/{region}?state=&since=&after=`: 2 per page.
fn api(r: &Logged, w: &World) -> Reply {
    let db = w.lock().unwrap();
    let since = r.param("since").map_or(0, secs);
    match r.path.as_str() {
        "/accounts" => {
            let mut hits: Vec<&(String, u64)> =
                db.accounts.iter().filter(|a| a.1 >= since).collect();
            hits.sort_by_key(|a| (a.1, a.0.clone()));
            let page = r.num("page", 1);
            let recs: Vec<Value> = hits
                .iter()
                .skip((page - 1) * 3)
                .take(3)
                .map(|(id, at)| json!({"id": id, "updated_at": ts(*at)}))
                .collect();
            Reply::value(&json!(recs))
        }
        "/regions" if db.regions_fail => Reply::status(404, "no regions here"),
        "/regions" => {
            let recs: Vec<Value> = db.regions.iter().map(|c| json!({"code": c})).collect();
            Reply::value(&json!(recs))
        }
        path => {
            let parts: Vec<&str> = path.split('/').collect();
            let ["", "usage", account, region] = parts[..] else {
                return Reply::status(404, "not found");
            };
            if db.usage_fail.as_deref() == Some(account) {
                return Reply::status(404, "no such account");
            }
            let state = r.param("state").unwrap_or_default();
            let mut hits: Vec<&Usage> = db
                .usage
                .iter()
                .filter(|u| {
                    u.account == account && u.region == region && u.state == state && u.at >= since
                })
                .collect();
            hits.sort_by_key(|u| (u.at, u.id));
            let from = r.num("after", 0);
            let page: Vec<Value> = hits
                .iter()
                .skip(from)
                .take(2)
                .map(|u| json!({"id": u.id, "account": u.account, "region": u.region, "state": u.state, "updated_at": ts(u.at), "pad": "x".repeat(db.pad)}))
                .collect();
            let next = match from + 2 < hits.len() {
                true => json!((from + 2).to_string()),
                false => Value::Null,
            };
            Reply::value(&json!({"items": page, "next": next}))
        }
    }
}

const STREAMS: &str = r#"
  accounts:
    path: /accounts
    primary_key: id
    records: $[*]
    pagination: { kind: page_number, page_param: page, size: 3 }
    incremental: { cursor_field: updated_at, param: since, start: "2024-01-01T00:00:00Z" }
  regions:
    path: /regions
    primary_key: code
    records: $[*]
  usage:
    path: "/usage/{{ partition.account }}/{{ partition.region }}"
    params: { state: "{{ partition.state }}" }
    primary_key: id
    records: $.items[*]
    pagination: { kind: cursor, next: $.next, param: after }
    incremental: { cursor_field: updated_at, param: since, start: "2024-01-01T00:00:00Z" }
    partitions:
      account: { stream: accounts, field: id }
      region: { stream: regions, field: code }
      state: [open, closed]
"#;

fn usage(id: u64, account: &str, region: &str, state: &'static str, at: u64) -> Usage {
    Usage {
        id,
        account: account.into(),
        region: region.into(),
        state,
        at,
    }
}

fn world(accounts: &[(&str, u64)], regions: &[&str], usages: Vec<Usage>) -> World {
    Arc::new(Mutex::new(Db {
        accounts: accounts.iter().map(|(a, t)| (a.to_string(), *t)).collect(),
        regions: regions.iter().map(|r| r.to_string()).collect(),
        usage: usages,
        ..Db::default()
    }))
}

fn state(sb: &Sandbox) -> Value {
    serde_json::from_slice(&std::fs::read(sb.out().join("state.json")).unwrap()).unwrap()
}

/// (account/region, state, since) of each first page of `/usage`, in order.
fn usage_passes(server: &Server, from: usize) -> Vec<(String, String, String)> {
    server.requests()[from..]
        .iter()
        .filter(|r| r.path.starts_with("/usage/") && r.param("after").is_none())
        .map(|r| {
            (
                r.path["/usage/".len()..].to_owned(),
                r.param("state").unwrap_or_default().to_owned(),
                r.param("since").unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn sorted_ids(sb: &Sandbox, stream: &str) -> Vec<i64> {
    let mut ids = sb.ids(stream);
    ids.sort();
    ids
}

#[test]
fn two_stream_lists_times_a_literal_list_run_in_declared_order_with_state_per_partition() {
    let w = world(
        &[("a1", 10), ("a2", 20), ("a1", 10)],
        &["eu", "us", "eu"],
        vec![
            usage(1, "a1", "eu", "open", 100),
            usage(2, "a1", "eu", "open", 110),
            usage(3, "a1", "eu", "open", 120),
            usage(4, "a1", "us", "closed", 100),
            usage(5, "a2", "eu", "closed", 130),
        ],
    );
    let w2 = w.clone();
    let server = serve(move |r| api(r, &w2));
    let sb = Sandbox::new();
    sb.spec(&spec(STREAMS));
    // One stream at a time: the first upstream waits for `usage` without its permit, or
    // the second upstream could never start.
    sb.sync(&server, &["--concurrency", "1"]).expect_code(0);
    let start = ts(0);
    let want: Vec<(String, String, String)> = [
        ("a1/eu", "open"),
        ("a1/eu", "closed"),
        ("a1/us", "open"),
        ("a1/us", "closed"),
        ("a2/eu", "open"),
        ("a2/eu", "closed"),
        ("a2/us", "open"),
        ("a2/us", "closed"),
    ]
    .iter()
    .map(|(p, s)| (p.to_string(), s.to_string(), start.clone()))
    .collect();
    assert_eq!(
        usage_passes(&server, 0),
        want,
        "declared order, the last list fastest"
    );
    assert_eq!(
        server.requests_to("/usage/a1/eu").len(),
        3,
        "a1/eu/open has two pages"
    );
    assert_eq!(sorted_ids(&sb, "usage"), [1, 2, 3, 4, 5]);
    let st = state(&sb);
    let parts = st["streams"]["usage"]["partitions"].as_object().unwrap();
    let cursors: BTreeMap<&str, &str> = parts
        .iter()
        .map(|(k, v)| (k.as_str(), v["cursor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        cursors,
        BTreeMap::from([
            (
                r#"{"account":"a1","region":"eu","state":"open"}"#,
                ts(120).as_str()
            ),
            (
                r#"{"account":"a1","region":"us","state":"closed"}"#,
                ts(100).as_str()
            ),
            (
                r#"{"account":"a2","region":"eu","state":"closed"}"#,
                ts(130).as_str()
            ),
        ])
    );
    assert_eq!(
        st["streams"]["accounts"]["cursor"],
        json!(ts(20)),
        "the upstream saved its state once usage's output was durable"
    );
    // A new account and new usage: the accounts stream gives only what it fetched (a2 at
    // its cursor, and a3), each partition asks from its own cursor.
    {
        let mut db = w.lock().unwrap();
        db.accounts.push(("a3".into(), 30));
        db.usage.push(usage(6, "a2", "eu", "closed", 140));
        db.usage.push(usage(7, "a3", "us", "open", 50));
    }
    let before = server.requests().len();
    sb.sync(&server, &["--streams", "usage"]).expect_code(0);
    let got = usage_passes(&server, before);
    let firsts: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|(p, s, t)| (p.as_str(), s.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        firsts,
        [
            ("a2/eu", "open", start.as_str()),
            ("a2/eu", "closed", ts(130).as_str()),
            ("a2/us", "open", start.as_str()),
            ("a2/us", "closed", start.as_str()),
            ("a3/eu", "open", start.as_str()),
            ("a3/eu", "closed", start.as_str()),
            ("a3/us", "open", start.as_str()),
            ("a3/us", "closed", start.as_str()),
        ]
    );
    assert_eq!(sorted_ids(&sb, "usage"), [1, 2, 3, 4, 5, 6, 7], "each once");
    assert_eq!(state(&sb)["streams"]["accounts"]["cursor"], json!(ts(30)));
}

#[test]
fn a_failing_upstream_fails_the_product_and_no_state_moves() {
    let w = world(
        &[("a1", 10), ("a2", 20)],
        &["eu"],
        vec![usage(1, "a1", "eu", "open", 100)],
    );
    w.lock().unwrap().regions_fail = true;
    let w2 = w.clone();
    let server = serve(move |r| api(r, &w2));
    let sb = Sandbox::new();
    sb.spec(&spec(STREAMS));
    sb.sync(&server, &[]).expect_code(1).expect_stderr(&[
        "stream regions, whose records are the values of partition list `region`, failed, so this stream did not run",
        "a child stream failed, so this stream's state was not saved",
    ]);
    assert!(server.requests_to("/usage/a1/eu").is_empty(), "no pass ran");
    let st = std::fs::read(sb.out().join("state.json"))
        .map(|b| serde_json::from_slice::<Value>(&b).unwrap())
        .unwrap_or(json!({}));
    assert!(
        st["streams"]["accounts"].is_null() && st["streams"]["usage"].is_null(),
        "neither accounts nor usage saved a state: {st}"
    );
    // Fixed: the next run fetches the accounts again and runs every pass, once.
    w.lock().unwrap().regions_fail = false;
    sb.sync(&server, &[]).expect_code(0);
    assert_eq!(sb.ids("usage"), [1]);
    assert_eq!(state(&sb)["streams"]["accounts"]["cursor"], json!(ts(20)));
    // An upstream with no records: no pass, no failure, the states move.
    w.lock().unwrap().regions.clear();
    w.lock().unwrap().accounts.push(("a3".into(), 30));
    let before = server.requests().len();
    sb.sync(&server, &[])
        .expect_code(0)
        .expect_stderr(&["a partition list is empty"]);
    assert!(usage_passes(&server, before).is_empty());
    assert_eq!(state(&sb)["streams"]["accounts"]["cursor"], json!(ts(30)));
}

#[test]
fn an_upstream_that_is_a_child_of_the_other_never_stalls_the_product() {
    // 300 accounts (more than a channel holds), each with its region from a child
    // stream; the product of accounts in batches of 100 times the 2 regions.
    let server = serve(|r| match r.path.as_str() {
        "/accounts" => {
            let recs: Vec<Value> = (1..=300).map(|i| json!({"id": format!("a{i}")})).collect();
            Reply::value(&json!(recs))
        }
        "/report" => Reply::value(
            &json!([{"id": format!("{}@{}", r.param("accounts").unwrap_or_default().len(), r.param("region").unwrap_or_default())}]),
        ),
        p => {
            let n: usize = p
                .trim_start_matches("/accounts/a")
                .trim_end_matches("/region")
                .parse()
                .unwrap_or(0);
            let code = if n.is_multiple_of(2) { "eu" } else { "us" };
            Reply::value(&json!([{ "code": code }]))
        }
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  accounts: { path: /accounts, records: "$[*]" }
  regions:
    parent: { stream: accounts, key: id }
    path: "/accounts/{{ parent.id }}/region"
    records: $[*]
  report:
    path: /report
    params: { accounts: "{{ partition.account }}", region: "{{ partition.region }}" }
    records: $[*]
    partitions:
      account: { stream: accounts, field: id, batch: 100 }
      region: { stream: regions, field: code }
"#,
    ));
    sb.sync(&server, &[]).expect_code(0);
    let sent: Vec<(usize, String)> = server
        .requests_to("/report")
        .iter()
        .map(|r| {
            let ids = r.param("accounts").unwrap();
            (
                ids.split(',').count(),
                r.param("region").unwrap().to_owned(),
            )
        })
        .collect();
    // The regions' order is the order their records arrived, and the child runs its
    // parents' passes concurrently: `us` (from a1) or `eu` (from a2) may come first.
    let regions: Vec<String> = sent.iter().take(2).map(|(_, r)| r.clone()).collect();
    assert!(
        regions == ["us", "eu"] || regions == ["eu", "us"],
        "{sent:?}"
    );
    let want: Vec<(usize, String)> = (0..3)
        .flat_map(|_| regions.iter().map(|r| (100, r.clone())))
        .collect();
    assert_eq!(
        sent, want,
        "3 batches x the regions in the order they arrived"
    );
    let first = &server.requests_to("/report")[0];
    assert!(first.param("accounts").unwrap().starts_with("a1,a2,a3,"));
    assert_eq!(sb.records("report").len(), 6);
}

#[test]
fn without_incremental_of_its_own_a_pass_is_no_checkpoint_so_a_failed_run_is_redone_whole() {
    // `usage` appends (its accounts list reads an incremental stream) but has no cursor
    // of its own: a checkpoint after each pass would make the next run, which gets the
    // same accounts again, write those passes twice.
    let text = spec(STREAMS).replace(
        "    incremental: { cursor_field: updated_at, param: since, start: \"2024-01-01T00:00:00Z\" }\n    partitions:",
        "    partitions:",
    );
    assert_eq!(text.matches("incremental:").count(), 1);
    let w = world(
        &[("a1", 10), ("a2", 20)],
        &["eu"],
        vec![
            usage(1, "a1", "eu", "open", 100),
            usage(2, "a1", "eu", "closed", 100),
            usage(3, "a2", "eu", "open", 100),
        ],
    );
    w.lock().unwrap().usage_fail = Some("a2".into());
    let w2 = w.clone();
    let server = serve(move |r| api(r, &w2));
    let sb = Sandbox::new();
    sb.spec(&text);
    sb.sync(&server, &[])
        .expect_code(1)
        .expect_stderr(&[r#"partition {"account":"a2","region":"eu","state":"open"}"#]);
    w.lock().unwrap().usage_fail = None;
    sb.sync(&server, &[]).expect_code(0);
    assert_eq!(sorted_ids(&sb, "usage"), [1, 2, 3], "each once");
    assert_eq!(
        usage_passes(&server, 0).len(),
        3 + 4,
        "the second run redid every pass"
    );
}

/// Every usage id in the output, with how many times it appears.
fn counts(sb: &Sandbox) -> BTreeMap<i64, usize> {
    let mut m = BTreeMap::new();
    for id in sb.ids("usage") {
        *m.entry(id).or_insert(0) += 1;
    }
    m
}

#[test]
fn a_product_of_two_stream_lists_killed_at_many_points_resumes_without_loss_or_duplicates() {
    let accounts: Vec<(String, u64)> = (1..=8).map(|i| (format!("a{i}"), i * 10)).collect();
    let regions = ["eu", "us"];
    let mut usages = Vec::new();
    let mut id = 0;
    for (a, _) in &accounts {
        for r in regions {
            for (k, st) in ["open", "closed"].into_iter().enumerate() {
                id += 1;
                usages.push(usage(id, a, r, st, 100 + id * 3 + k as u64));
            }
        }
    }
    let w = Arc::new(Mutex::new(Db {
        accounts,
        regions: regions.iter().map(|r| r.to_string()).collect(),
        usage: usages,
        pad: 20_000,
        ..Db::default()
    }));
    let seen = Arc::new(AtomicUsize::new(0));
    let (w2, s2) = (w.clone(), seen.clone());
    let server = serve(move |r| {
        s2.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(8));
        api(r, &w2)
    });
    let sb = Sandbox::new();
    let plain = sb.spec(&spec(STREAMS));
    // The same with `sorted: true` on usage: a checkpoint after every page too.
    let sorted_text = spec(STREAMS).replace(
        "param: since, start: \"2024-01-01T00:00:00Z\" }\n    partitions",
        "param: since, start: \"2024-01-01T00:00:00Z\", sorted: true }\n    partitions",
    );
    assert!(sorted_text.contains("sorted: true"));
    let sorted = sb.write("sorted.yaml", &sorted_text);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], server.port()));
    let (mut kills, mut ended) = (0, 0);
    for i in 0..16usize {
        let spec = if i % 2 == 0 { &sorted } else { &plain };
        let mut child = kill_support::command(spec, &sb.out(), addr)
            .spawn()
            .unwrap();
        // Some runs end on their own, so the accounts stream moves its cursor and the
        // next runs start from it.
        let at = match i % 5 == 2 {
            true => usize::MAX,
            false => seen.load(Ordering::SeqCst) + 2 + (i * 7) % 23,
        };
        let extra = Duration::from_millis(((i * 7) % 11) as u64);
        if kill_support::kill_when(&mut child, &seen, at, extra, Duration::from_secs(10)) {
            kills += 1;
        } else {
            ended += 1;
        }
        // Two new accounts with usage between runs, so that a run after one that ended
        // (and moved the accounts' cursor) still has passes to kill.
        let mut db = w.lock().unwrap();
        for j in 0..2u64 {
            let n = 100 + i as u64 * 2 + j;
            let account = format!("a{n}");
            db.accounts.push((account.clone(), n));
            for (k, r) in regions.iter().enumerate() {
                db.usage.push(usage(
                    1000 + n * 10 + k as u64,
                    &account,
                    r,
                    "open",
                    900 + n,
                ));
            }
        }
    }
    let (code, text) = kill_support::run(&plain, &sb.out(), addr);
    assert_eq!(code, 0, "{text}");
    let got = counts(&sb);
    let want: BTreeMap<i64, usize> = w
        .lock()
        .unwrap()
        .usage
        .iter()
        .map(|u| (u.id as i64, 1))
        .collect();
    kill_support::assert_exactly_once(
        "partition product kill -9 test",
        &got,
        &want,
        &format!("{kills} kills, {ended} runs ended on their own"),
    );
    kill_support::assert_killed(kills, 8, 16);
    assert!(ended >= 2, "only {ended} runs ended on their own");
}

#[test]
fn validate_points_at_a_cycle_through_the_second_list_and_a_second_changes_only_list() {
    let sb = Sandbox::new();
    let path = sb.spec(&spec(
        r#"
  accounts:
    path: /accounts
    primary_key: id
    records: $[*]
    incremental: { cursor_field: updated_at, start: "2024-01-01T00:00:00Z" }
  usage:
    path: /usage
    records: $[*]
    partitions:
      account: { stream: accounts, field: id }
      region: { stream: regions, field: code }
  regions:
    parent: { stream: usage, key: id }
    path: /regions
    records: $[*]
"#,
    ));
    sb.run(&["validate", path.to_str().unwrap()])
        .expect_code(2)
        .expect_stdout(&[
            "spec.yaml:19:25: error: partition list `region` closes a cycle of streams: usage -> regions -> usage",
            "or from `config`",
            "spec.yaml:19:25: error: partition lists `account` and `region` both read a stream that fetches only what changed",
        ]);
}
