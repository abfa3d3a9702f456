//! Shared by the `push*` end-to-end tests: the demo API in process, a push spec aimed at
//! its idempotent `POST /orders`, the real `runtime push`, and readers for what it left
//! behind (results file, summary line) and for what the demo saw (request log, orders).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use demo_api::{DataSizes, DemoConfig, DemoServer, RequestRecord};
use serde_json::{Value, json};

use crate::support::{Run, Sandbox};

/// The bearer token of every push test; a secret, so it must never be printed.
pub const TOKEN: &str = "push-secret-token-7f3a9c";

/// The demo API on 127.0.0.1:0 with few seeded rows (push tests only create orders).
pub fn demo() -> DemoServer {
    demo_with(Duration::ZERO)
}

/// The demo API whose `POST /orders` takes `delay` to process.
pub fn demo_with(delay: Duration) -> DemoServer {
    demo_api::spawn(DemoConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        sizes: DataSizes {
            orders: 5,
            products: 5,
            customers: 5,
            events: 5,
        },
        token: TOKEN.into(),
        rate_limit: 100_000,
        processing_delay: delay,
        ..DemoConfig::default()
    })
    .unwrap()
}

/// A spec named `shop` with bearer auth from the secret `config.api_key`, short retries,
/// `http_extra` lines under `http` (indented two spaces) and `targets` under `push`
/// (indented two spaces).
pub fn spec(http_extra: &str, targets: &str) -> String {
    let mut http = String::new();
    for l in http_extra.lines().filter(|l| !l.trim().is_empty()) {
        http.push_str(l);
        http.push('\n');
    }
    if !http.contains("retry:") {
        http.push_str("  retry: { max_attempts: 6, initial: 10ms, max: 50ms }\n");
    }
    format!(
        "version: 1\nname: shop\nconfig:\n  base_url: {{ type: string }}\n  api_key: {{ type: string, secret: true }}\nhttp:\n  base_url: \"{{{{ config.base_url }}}}\"\n  auth: {{ kind: bearer, token: \"{{{{ config.api_key }}}}\" }}\n{http}push:\n{}",
        targets.trim_start_matches('\n')
    )
}

/// One target `create_orders` (POST /orders, key from customer_id and external_id, the id
/// saved) with these extra lines (indented four spaces), e.g. `"    concurrency: 8"`.
pub fn orders_target(extra: &str) -> String {
    format!(
        "  create_orders:\n    method: POST\n    path: /orders\n    idempotency: {{ key_fields: [customer_id, external_id] }}\n    response_id: $.id\n{}\n",
        extra.trim_end()
    )
}

/// A new order as a pipeline would push it; `n` makes it unique.
pub fn order(n: usize) -> Value {
    json!({
        "customer_id": n % 7 + 1,
        "external_id": format!("EXT-{n:05}"),
        "total": (n as f64) * 1.5,
        "currency": "EUR",
        "request_id": format!("req-{n:05}"),
    })
}

/// Records as JSON lines, each ending with a newline.
pub fn jsonl(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

/// The orders `1..=n`.
pub fn orders(n: usize) -> Vec<Value> {
    (1..=n).map(order).collect()
}

/// A sandbox with `spec.yaml` and `input.jsonl` written.
pub fn sandbox(spec_text: &str, records: &[Value]) -> Sandbox {
    let sb = Sandbox::new();
    sb.spec(spec_text);
    sb.write("input.jsonl", &jsonl(records));
    sb
}

/// Path of the results file the tests pass with `--results`.
pub fn results_path(sb: &Sandbox) -> PathBuf {
    sb.path().join("results.jsonl")
}

/// `runtime push spec.yaml --target T --input input.jsonl --results results.jsonl
/// --set base_url=.. --set api_key=.. ARGS...`.
pub fn push(sb: &Sandbox, demo: &DemoServer, target: &str, args: &[&str]) -> Run {
    push_as(sb, demo, target, TOKEN, args, &[])
}

/// [`push`] with another token and extra environment variables.
pub fn push_as(
    sb: &Sandbox,
    demo: &DemoServer,
    target: &str,
    token: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    push_to(sb, &demo.base_url(), target, token, args, env)
}

/// [`push`] to any base URL.
pub fn push_to(
    sb: &Sandbox,
    base_url: &str,
    target: &str,
    token: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let spec = sb.path().join("spec.yaml");
    let input = sb.path().join("input.jsonl");
    let results = results_path(sb);
    let base = format!("base_url={base_url}");
    let key = format!("api_key={token}");
    let mut all: Vec<&str> = vec![
        "push",
        spec.to_str().unwrap(),
        "--target",
        target,
        "--input",
        input.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--set",
        &base,
        "--set",
        &key,
    ];
    all.extend_from_slice(args);
    sb.run_env(&all, env)
}

/// The results file's lines, parsed; checks that each line is one JSON object and that
/// the file ends with a newline.
#[track_caller]
pub fn results(sb: &Sandbox) -> Vec<Value> {
    let p = results_path(sb);
    let text =
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "results file does not end with a newline:\n{text}"
    );
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("results line {l:?} is not JSON: {e}"));
            assert!(v.is_object(), "results line {l:?} is not an object");
            v
        })
        .collect()
}

/// Results by input line number; fails on a line reported twice.
#[track_caller]
pub fn results_by_line(sb: &Sandbox) -> BTreeMap<u64, Value> {
    let mut out = BTreeMap::new();
    for r in results(sb) {
        let line = r["line"]
            .as_u64()
            .unwrap_or_else(|| panic!("no line in {r}"));
        assert!(
            out.insert(line, r.clone()).is_none(),
            "line {line} reported twice"
        );
    }
    out
}

/// The counts of the summary line `push T: a read, b created, ...; g requests, h retries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Records read.
    pub read: u64,
    /// Created (2xx).
    pub created: u64,
    /// Skipped: already created by an earlier run.
    pub done: u64,
    /// 409 and 422.
    pub conflicts: u64,
    /// Other failures.
    pub failed: u64,
    /// Not sent after a stop.
    pub not_sent: u64,
    /// Repeats of a key already seen in the run.
    pub duplicates: u64,
    /// Not JSON, or no key.
    pub invalid: u64,
    /// Longer than the line limit.
    pub too_long: u64,
    /// HTTP requests, retries included.
    pub requests: u64,
    /// Retries.
    pub retries: u64,
}

/// Parses the summary line of a push run's stdout.
#[track_caller]
pub fn summary(run: &Run) -> Summary {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("push "))
        .unwrap_or_else(|| panic!("no summary line in stdout:\n{}", run.stdout));
    let (_, counts) = line
        .split_once(": ")
        .unwrap_or_else(|| panic!("summary line {line:?}"));
    let mut s = Summary::default();
    for part in counts.split([',', ';']) {
        let part = part.trim();
        let (n, label) = part
            .split_once(' ')
            .unwrap_or_else(|| panic!("summary part {part:?} in {line:?}"));
        let n: u64 = n
            .parse()
            .unwrap_or_else(|_| panic!("summary part {part:?} in {line:?}"));
        let slot = match label {
            "read" => &mut s.read,
            "created" => &mut s.created,
            "already done" => &mut s.done,
            "conflicts" => &mut s.conflicts,
            "failed" => &mut s.failed,
            "not sent" => &mut s.not_sent,
            "duplicates" => &mut s.duplicates,
            "invalid" => &mut s.invalid,
            "too long" => &mut s.too_long,
            "requests" => &mut s.requests,
            "retries" => &mut s.retries,
            other => panic!("unknown summary label {other:?} in {line:?}"),
        };
        *slot = n;
    }
    assert_eq!(
        s.accounted(),
        s.read,
        "the counts do not add up to the lines read: {line:?}"
    );
    s
}

impl Summary {
    /// The lines some outcome accounts for; equals `read` in every run.
    pub fn accounted(&self) -> u64 {
        self.done
            + self.created
            + self.conflicts
            + self.failed
            + self.not_sent
            + self.duplicates
            + self.invalid
            + self.too_long
    }
}

/// The `POST /orders` requests the demo received, in arrival order.
pub fn posts(demo: &DemoServer) -> Vec<RequestRecord> {
    demo.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/orders")
        .collect()
}

/// `POST /orders` requests by idempotency key (a request without one fails the test).
#[track_caller]
pub fn posts_by_key(demo: &DemoServer) -> BTreeMap<String, Vec<RequestRecord>> {
    let mut out: BTreeMap<String, Vec<RequestRecord>> = BTreeMap::new();
    for r in posts(demo) {
        let k = r
            .idempotency_key
            .clone()
            .unwrap_or_else(|| panic!("POST /orders without Idempotency-Key: {r:?}"));
        out.entry(k).or_default().push(r);
    }
    out
}

/// Orders created through `POST /orders`, by external_id; fails on a duplicate.
#[track_caller]
pub fn created_by_external_id(demo: &DemoServer) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for o in demo.created_orders() {
        assert!(
            out.insert(o.external_id.clone(), o.id).is_none(),
            "duplicate order created for {}",
            o.external_id
        );
    }
    out
}

/// Whether a key looks like a UUID of version 5 (RFC 9562 layout).
pub fn is_uuid_v5(key: &str) -> bool {
    let b = key.as_bytes();
    key.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && key
            .chars()
            .enumerate()
            .all(|(i, c)| [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit())
        && b[14] == b'5'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}
