//! `runtime airbyte` and `runtime singer` against the bundled demo API: every message
//! kind, configured catalogs, incoming state, and bad input (a TRACE error and a
//! non-zero exit, nothing on stdout that is not a protocol message).

mod support;

use std::collections::{BTreeMap, BTreeSet};

use demo_api::{DataSizes, DemoConfig, DemoServer};
use serde_json::{Value, json};
use support::{Run, Sandbox};

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../connectors/orders.yaml");

fn demo(orders: usize) -> DemoServer {
    demo_api::spawn(DemoConfig {
        sizes: DataSizes {
            orders,
            products: 120,
            customers: 60,
            events: 230,
        },
        ..DemoConfig::default()
    })
    .unwrap()
}

/// Writes the Airbyte config file for the demo.
fn config(sb: &Sandbox, demo: &DemoServer) -> String {
    let doc = json!({"base_url": demo.base_url(), "api_key": demo.token()});
    sb.write("config.json", &doc.to_string())
        .to_str()
        .unwrap()
        .to_owned()
}

/// Every stdout line as a JSON object with a `type`; fails on anything else.
#[track_caller]
fn messages(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}\n{}", run.stderr));
            assert!(v["type"].is_string(), "no type: {l}");
            v
        })
        .collect()
}

fn of_type<'a>(msgs: &'a [Value], t: &str) -> Vec<&'a Value> {
    msgs.iter().filter(|m| m["type"] == t).collect()
}

fn records_of<'a>(msgs: &'a [Value], stream: &str) -> Vec<&'a Value> {
    msgs.iter()
        .filter(|m| m["type"] == "RECORD" && m["record"]["stream"] == stream)
        .map(|m| &m["record"]["data"])
        .collect()
}

fn airbyte(sb: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["airbyte"];
    all.extend_from_slice(args);
    sb.run_env(&all, &[("RUNTIME_SPEC", SPEC)])
}

/// Checks the one TRACE error of a failed run and that stdout holds only messages.
#[track_caller]
fn expect_trace_error(run: &Run, failure: &str, fragments: &[&str]) {
    run.expect_code(1);
    let msgs = messages(run);
    let errors = of_type(&msgs, "TRACE")
        .into_iter()
        .filter(|m| m["trace"]["type"] == "ERROR")
        .collect::<Vec<_>>();
    assert_eq!(errors.len(), 1, "{}", run.stdout);
    let e = &errors[0]["trace"]["error"];
    assert_eq!(e["failure_type"], failure, "{e}");
    let text = e["message"].as_str().unwrap();
    for f in fragments {
        assert!(text.contains(f), "TRACE message {text:?} lacks {f:?}");
    }
    assert!(
        of_type(&msgs, "RECORD").is_empty(),
        "records despite the error"
    );
}

#[test]
fn spec_marks_secrets_and_requires_what_has_no_default() {
    let sb = Sandbox::new();
    let run = airbyte(&sb, &["spec"]);
    run.expect_code(0);
    let msgs = messages(&run);
    assert_eq!(msgs.len(), 1);
    let cs = &msgs[0]["spec"]["connectionSpecification"];
    assert_eq!(cs["properties"]["api_key"]["airbyte_secret"], true);
    assert_eq!(cs["required"], json!(["api_key"]));
    assert_eq!(msgs[0]["spec"]["supportsIncremental"], true);
}

#[test]
fn check_succeeds_with_the_key_and_fails_without_leaking_a_wrong_one() {
    let api = demo(20);
    let sb = Sandbox::new();
    let cfg = config(&sb, &api);
    let run = airbyte(&sb, &["check", "--config", &cfg]);
    run.expect_code(0);
    let msgs = messages(&run);
    assert_eq!(msgs.len(), 1, "{}", run.stdout);
    assert_eq!(msgs[0]["connectionStatus"]["status"], "SUCCEEDED");

    let bad = sb.write(
        "bad.json",
        &json!({"base_url": api.base_url(), "api_key": "wrong-key-123456"}).to_string(),
    );
    let run = airbyte(&sb, &["check", "--config", bad.to_str().unwrap()]);
    run.expect_code(0).expect_no_leak("wrong-key-123456");
    let msgs = messages(&run);
    assert_eq!(msgs[0]["connectionStatus"]["status"], "FAILED");
    assert!(
        msgs[0]["connectionStatus"]["message"]
            .as_str()
            .unwrap()
            .contains("401"),
        "{}",
        run.stdout
    );
}

#[test]
fn discover_describes_modes_cursor_and_keys() {
    let api = demo(20);
    let sb = Sandbox::new();
    let cfg = config(&sb, &api);
    let run = airbyte(&sb, &["discover", "--config", &cfg]);
    run.expect_code(0);
    let msgs = messages(&run);
    assert_eq!(msgs.len(), 1);
    let streams = msgs[0]["catalog"]["streams"].as_array().unwrap();
    let by: BTreeMap<&str, &Value> = streams
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s))
        .collect();
    assert_eq!(
        by.keys().copied().collect::<Vec<_>>(),
        ["customers", "events", "order_items", "orders", "products"]
    );
    let o = by["orders"];
    assert_eq!(
        o["supported_sync_modes"],
        json!(["full_refresh", "incremental"])
    );
    assert_eq!(o["source_defined_cursor"], true);
    assert_eq!(o["default_cursor_field"], json!(["updated_at"]));
    assert_eq!(o["source_defined_primary_key"], json!([["id"]]));
    assert_eq!(
        o["json_schema"]["properties"]["updated_at"]["format"],
        "date-time"
    );
    assert_eq!(
        by["products"]["supported_sync_modes"],
        json!(["full_refresh"])
    );
    assert_eq!(
        by["order_items"]["source_defined_primary_key"],
        json!([["order_id"], ["line"]])
    );
    assert!(by["order_items"]["json_schema"]["properties"]["order_id"].is_object());
}

/// A full read: every stream's records, byte for byte as the API sent them, STATE for
/// the incremental streams after their records, statuses from STARTED to COMPLETE.
#[test]
fn read_emits_every_record_then_state_and_statuses() {
    let api = demo(30);
    let sb = Sandbox::new();
    let cfg = config(&sb, &api);
    let run = airbyte(&sb, &["read", "--config", &cfg]);
    run.expect_code(0).expect_no_leak(api.token());
    let msgs = messages(&run);

    let orders = api.orders();
    let items: usize = orders.iter().map(|o| api.items(o.id).unwrap().len()).sum();
    for (stream, n) in [
        ("orders", orders.len()),
        ("order_items", items),
        ("products", 120),
        ("customers", 60),
        ("events", 230),
    ] {
        assert_eq!(records_of(&msgs, stream).len(), n, "{stream}");
    }
    // The record is the API's bytes: compact, as sent.
    let first = run
        .stdout
        .lines()
        .find(|l| l.contains("\"stream\":\"orders\""))
        .unwrap();
    let data =
        &first[first.find("\"data\":").unwrap() + 7..first.rfind(",\"emitted_at\"").unwrap()];
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(serde_json::to_string(&v).unwrap(), data);

    // Each stream's last STATE comes after its last record.
    for stream in ["orders", "order_items"] {
        let last_record = msgs
            .iter()
            .rposition(|m| m["type"] == "RECORD" && m["record"]["stream"] == stream)
            .unwrap();
        let last_state = msgs
            .iter()
            .rposition(|m| {
                m["type"] == "STATE" && m["state"]["stream"]["stream_descriptor"]["name"] == stream
            })
            .unwrap_or_else(|| panic!("no STATE for {stream}"));
        assert!(
            last_state > last_record,
            "{stream}: STATE before its records"
        );
    }
    // recordCount of every STATE adds up to the records emitted before it.
    let mut since: BTreeMap<String, u64> = BTreeMap::new();
    for m in &msgs {
        if m["type"] == "RECORD" {
            *since
                .entry(m["record"]["stream"].as_str().unwrap().into())
                .or_default() += 1;
        }
        if m["type"] == "STATE" {
            let name = m["state"]["stream"]["stream_descriptor"]["name"]
                .as_str()
                .unwrap();
            let n = since.remove(name).unwrap_or(0);
            assert_eq!(
                m["state"]["sourceStats"]["recordCount"].as_f64(),
                Some(n as f64)
            );
            assert_eq!(m["state"]["stream"]["stream_state"]["connector"], "orders");
        }
    }
    // Statuses: STARTED first, COMPLETE last, per stream.
    for stream in ["orders", "order_items", "products", "customers", "events"] {
        let statuses: Vec<&str> = msgs
            .iter()
            .filter(|m| {
                m["type"] == "TRACE"
                    && m["trace"]["type"] == "STREAM_STATUS"
                    && m["trace"]["stream_status"]["stream_descriptor"]["name"] == stream
            })
            .map(|m| m["trace"]["stream_status"]["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses.first(), Some(&"STARTED"), "{stream}: {statuses:?}");
        assert_eq!(statuses.last(), Some(&"COMPLETE"), "{stream}: {statuses:?}");
    }
}

fn state_file(sb: &Sandbox, msgs: &[Value]) -> String {
    // What a platform keeps: the last STATE of each stream.
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for m in of_type(msgs, "STATE") {
        let name = m["state"]["stream"]["stream_descriptor"]["name"]
            .as_str()
            .unwrap();
        last.insert(name.into(), m["state"].clone());
    }
    let list: Vec<Value> = last.into_values().collect();
    sb.write("state.json", &Value::Array(list).to_string())
        .to_str()
        .unwrap()
        .to_owned()
}

fn catalog(sb: &Sandbox, name: &str, streams: &[(&str, &str)]) -> String {
    let list: Vec<Value> = streams
        .iter()
        .map(|(s, mode)| {
            json!({"stream": {"name": s, "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                   "sync_mode": mode, "destination_sync_mode": "append"})
        })
        .collect();
    sb.write(name, &json!({ "streams": list }).to_string())
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn read_with_state_fetches_only_the_changes() {
    let api = demo(40);
    let sb = Sandbox::new();
    let cfg = config(&sb, &api);
    let cat = catalog(
        &sb,
        "catalog.json",
        &[("orders", "incremental"), ("order_items", "incremental")],
    );
    let run = airbyte(&sb, &["read", "--config", &cfg, "--catalog", &cat]);
    run.expect_code(0);
    let first = messages(&run);
    assert_eq!(records_of(&first, "orders").len(), 40);
    assert!(records_of(&first, "products").is_empty(), "not selected");
    let state = state_file(&sb, &first);

    let now = time::OffsetDateTime::now_utc();
    let touched: BTreeSet<u64> = [3u64, 17, 29].into();
    for id in &touched {
        api.state().touch_order(*id, now).unwrap();
    }
    let run = airbyte(
        &sb,
        &[
            "read",
            "--config",
            &cfg,
            "--catalog",
            &cat,
            "--state",
            &state,
        ],
    );
    run.expect_code(0);
    let second = messages(&run);
    let ids: BTreeSet<u64> = records_of(&second, "orders")
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    // The cursor's boundary may bring back records at exactly the saved value; none here.
    assert_eq!(ids, touched);
    let item_orders: BTreeSet<u64> = records_of(&second, "order_items")
        .iter()
        .map(|r| r["order_id"].as_u64().unwrap())
        .collect();
    assert_eq!(item_orders, touched);
}

#[test]
fn a_child_alone_runs_its_parent_without_emitting_it() {
    let api = demo(10);
    let sb = Sandbox::new();
    let cfg = config(&sb, &api);
    let cat = catalog(&sb, "catalog.json", &[("order_items", "full_refresh")]);
    let run = airbyte(&sb, &["read", "--config", &cfg, "--catalog", &cat]);
    run.expect_code(0);
    let msgs = messages(&run);
    assert!(records_of(&msgs, "orders").is_empty());
    assert!(!records_of(&msgs, "order_items").is_empty());
    assert!(
        msgs.iter().all(
            |m| m["state"]["stream"]["stream_descriptor"]["name"] != "orders"
                && m["trace"]["stream_status"]["stream_descriptor"]["name"] != "orders"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn bad_input_is_a_trace_error_and_a_failed_exit() {
    let api = demo(5);
    let sb = Sandbox::new();
    let cfg = config(&sb, &api);

    let cat = catalog(&sb, "unknown.json", &[("invoices", "full_refresh")]);
    let run = airbyte(&sb, &["read", "--config", &cfg, "--catalog", &cat]);
    expect_trace_error(&run, "config_error", &["`invoices`", "orders, order_items"]);

    let other = json!([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "orders"},
        "stream_state": {"connector": "github", "version": 1, "position": {"output_bytes": 0}}}}]);
    let st = sb.write("other.json", &other.to_string());
    let run = airbyte(
        &sb,
        &["read", "--config", &cfg, "--state", st.to_str().unwrap()],
    );
    expect_trace_error(&run, "config_error", &["belongs to connector `github`"]);

    let legacy = sb.write("legacy.json", r#"{"orders": {"updated_at": "2024-01-01"}}"#);
    let run = airbyte(
        &sb,
        &[
            "read",
            "--config",
            &cfg,
            "--state",
            legacy.to_str().unwrap(),
        ],
    );
    expect_trace_error(
        &run,
        "config_error",
        &["not a list of per-stream STREAM states"],
    );

    let missing = sb.write(
        "missing.json",
        &json!({"base_url": api.base_url()}).to_string(),
    );
    for cmd in ["check", "discover", "read"] {
        let run = sb.run_env(
            &["airbyte", cmd, "--config", missing.to_str().unwrap()],
            &[("RUNTIME_SPEC", SPEC)],
        );
        expect_trace_error(&run, "config_error", &["config.api_key is required"]);
    }
}

#[test]
fn singer_tap_schema_records_state_and_rerun() {
    let api = demo(25);
    let sb = Sandbox::new();
    let cfg = config(&sb, &api);
    let env = [("RUNTIME_SPEC", SPEC)];

    let run = sb.run_env(&["singer", "--config", &cfg, "--discover"], &env);
    run.expect_code(0);
    let mut cat: Value = serde_json::from_str(&run.stdout).unwrap();
    let streams = cat["streams"].as_array_mut().unwrap();
    let orders = streams
        .iter()
        .find(|s| s["tap_stream_id"] == "orders")
        .unwrap();
    assert_eq!(orders["replication_key"], "updated_at");
    assert_eq!(orders["key_properties"], json!(["id"]));
    assert_eq!(
        orders["metadata"][0]["metadata"]["replication-method"],
        "INCREMENTAL"
    );
    // Deselect everything but orders.
    for s in streams.iter_mut() {
        if s["tap_stream_id"] != "orders" {
            s["metadata"][0]["metadata"]["selected"] = json!(false);
        }
    }
    let cat_path = sb.write("catalog.json", &cat.to_string());

    let run = sb.run_env(
        &[
            "singer",
            "--config",
            &cfg,
            "--catalog",
            cat_path.to_str().unwrap(),
        ],
        &env,
    );
    run.expect_code(0);
    let msgs = messages(&run);
    assert_eq!(msgs[0]["type"], "SCHEMA");
    assert_eq!(msgs[0]["stream"], "orders");
    assert_eq!(msgs[0]["key_properties"], json!(["id"]));
    assert_eq!(msgs[0]["bookmark_properties"], json!(["updated_at"]));
    let recs: Vec<&Value> = of_type(&msgs, "RECORD");
    assert_eq!(recs.len(), 25);
    assert!(
        recs.iter()
            .all(|r| r["stream"] == "orders" && r["time_extracted"].is_string())
    );
    let last = msgs.last().unwrap();
    assert_eq!(last["type"], "STATE", "the state ends the output");
    let mark = &last["value"]["bookmarks"]["orders"];
    assert_eq!(mark["replication_key"], "updated_at");
    assert!(mark["replication_key_value"].is_string());
    let state = sb.write("state.json", &last["value"].to_string());

    api.state()
        .touch_order(7, time::OffsetDateTime::now_utc())
        .unwrap();
    let run = sb.run_env(
        &[
            "singer",
            "--config",
            &cfg,
            "--properties",
            cat_path.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
        &env,
    );
    run.expect_code(0);
    let msgs = messages(&run);
    let ids: Vec<u64> = of_type(&msgs, "RECORD")
        .iter()
        .map(|r| r["record"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [7]);

    let bad = sb.write(
        "bad-state.json",
        r#"{"bookmarks": {"orders": {"replication_key_value": "x"}}}"#,
    );
    let run = sb.run_env(
        &["singer", "--config", &cfg, "--state", bad.to_str().unwrap()],
        &env,
    );
    run.expect_code(1)
        .expect_stderr(&["not written by this runtime"]);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn a_wrapped_spec_is_one_executable() {
    let sb = Sandbox::new();
    let exe = sb.path().join("bin/source-orders");
    sb.run(&["wrap", SPEC, "--airbyte", "-o", exe.to_str().unwrap()])
        .expect_code(0);
    let out = std::process::Command::new(&exe)
        .arg("spec")
        .env_remove("RUNTIME_SPEC")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["type"], "SPEC");
    let tap = sb.path().join("bin/tap-orders");
    sb.run(&["wrap", SPEC, "--singer", "-o", tap.to_str().unwrap()])
        .expect_code(0);
    let out = std::process::Command::new(&tap)
        .arg("--about")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "tap-orders");
}

#[test]
fn full_refresh_ignores_the_incoming_state_for_the_whole_family() {
    let api = demo(15);
    let sb = Sandbox::new();
    let cfg = config(&sb, &api);
    let inc = catalog(
        &sb,
        "inc.json",
        &[("orders", "incremental"), ("order_items", "incremental")],
    );
    let run = airbyte(&sb, &["read", "--config", &cfg, "--catalog", &inc]);
    run.expect_code(0);
    let state = state_file(&sb, &messages(&run));
    // The child read in full needs every parent record, so orders starts over too.
    let full = catalog(
        &sb,
        "full.json",
        &[("orders", "incremental"), ("order_items", "full_refresh")],
    );
    let run = airbyte(
        &sb,
        &[
            "read",
            "--config",
            &cfg,
            "--catalog",
            &full,
            "--state",
            &state,
        ],
    );
    run.expect_code(0);
    let msgs = messages(&run);
    assert_eq!(records_of(&msgs, "orders").len(), 15);
    let items: usize = api
        .orders()
        .iter()
        .map(|o| api.items(o.id).unwrap().len())
        .sum();
    assert_eq!(records_of(&msgs, "order_items").len(), items);
}

#[test]
fn a_failing_stream_is_a_trace_error_and_incomplete() {
    let api = demo(5);
    let sb = Sandbox::new();
    let bad = sb.write(
        "bad.json",
        &json!({"base_url": api.base_url(), "api_key": "wrong-key-123456"}).to_string(),
    );
    let cat = catalog(&sb, "cat.json", &[("products", "full_refresh")]);
    let run = airbyte(
        &sb,
        &["read", "--config", bad.to_str().unwrap(), "--catalog", &cat],
    );
    run.expect_code(1).expect_no_leak("wrong-key-123456");
    let msgs = messages(&run);
    let traces: Vec<&Value> = of_type(&msgs, "TRACE");
    let error = traces
        .iter()
        .find(|m| m["trace"]["type"] == "ERROR")
        .expect("a TRACE error");
    assert_eq!(error["trace"]["error"]["failure_type"], "transient_error");
    assert_eq!(
        error["trace"]["error"]["stream_descriptor"]["name"],
        "products"
    );
    assert!(
        error["trace"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("401")
    );
    let last_status = traces
        .iter()
        .rev()
        .find(|m| m["trace"]["type"] == "STREAM_STATUS")
        .unwrap();
    assert_eq!(
        last_status["trace"]["stream_status"]["status"],
        "INCOMPLETE"
    );
}
