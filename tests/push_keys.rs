//! What `runtime push` sends: idempotency keys (the same record gets the same key across
//! runs and retries, another target gets other keys, `key_field` sends the record's own
//! key, a record without its key fields is reported without stopping the others), and the
//! method, path and body templates of a target.

mod push_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};

use demo_api::Fault;
use push_support::{
    TOKEN, created_by_external_id, demo, is_uuid_v5, jsonl, order, orders, orders_target, posts,
    posts_by_key, push, push_to, results_by_line, results_path, sandbox, spec, summary,
};
use serde_json::{Map, Value, json};
use support::{Reply, serve};

/// `create_orders`, the same again under another name, and one keyed by `request_id`.
fn three_targets() -> String {
    let mut t = orders_target("    concurrency: 3");
    t.push_str(&orders_target("    concurrency: 3").replacen(
        "create_orders",
        "create_orders_copy",
        1,
    ));
    t.push_str(
        "  by_request_id:\n    path: /orders\n    idempotency: { header: X-Request-Key, key_field: request_id }\n    concurrency: 3\n",
    );
    t
}

/// The record with its fields in reverse order: the same record, written differently.
fn rewritten(r: &Value) -> Value {
    let m: Map<String, Value> = r
        .as_object()
        .unwrap()
        .iter()
        .rev()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(m)
}

#[test]
fn the_same_record_gets_the_same_key_across_runs_retries_and_spellings() {
    let demo = demo();
    let records = orders(6);
    let sb = sandbox(&spec("", &three_targets()), &records);

    // Run 1, with the first attempt of two records answered 503 (retried, same key).
    demo.push_fault("POST /orders", Fault::status(503));
    demo.push_fault("POST /orders", Fault::status(503));
    push(&sb, &demo, "create_orders", &[]).expect_code(0);
    let first: BTreeMap<u64, String> = results_by_line(&sb)
        .iter()
        .map(|(l, r)| (*l, r["key"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(first.len(), 6);
    assert!(first.values().all(|k| is_uuid_v5(k)), "{first:?}");
    assert_eq!(
        first.values().collect::<BTreeSet<_>>().len(),
        6,
        "distinct records got the same key"
    );
    let by_key = posts_by_key(&demo);
    assert_eq!(
        by_key.keys().collect::<BTreeSet<_>>(),
        first.values().collect::<BTreeSet<_>>(),
        "keys in the results file vs keys the API saw"
    );
    // Each 503 was retried with the same key, which then got its order.
    let mut answered_503 = 0;
    for (key, reqs) in &by_key {
        let s: Vec<u16> = reqs.iter().map(|r| r.status).collect();
        assert_eq!(s.last(), Some(&201), "key {key}: {s:?}");
        assert!(
            s[..s.len() - 1].iter().all(|&c| c == 503),
            "key {key}: {s:?}"
        );
        answered_503 += s.len() - 1;
    }
    assert_eq!(answered_503, 2);
    assert_eq!(demo.created_count(), 6);

    // Run 2: results deleted, lines in another order, fields in another order. Same keys,
    // so the API replays every answer and creates nothing.
    std::fs::remove_file(results_path(&sb)).unwrap();
    let reordered: Vec<Value> = records.iter().rev().map(rewritten).collect();
    sb.write("input.jsonl", &jsonl(&reordered));
    demo.clear_requests();
    push(&sb, &demo, "create_orders", &[]).expect_code(0);
    let second = results_by_line(&sb);
    for (line, r) in &second {
        let original_line = 7 - line;
        assert_eq!(
            r["key"].as_str().unwrap(),
            first[&original_line],
            "line {line} (line {original_line} of run 1): another key"
        );
    }
    assert!(posts(&demo).iter().all(|r| r.status == 201));
    assert_eq!(
        demo.created_count(),
        6,
        "run 2 created orders: keys changed"
    );

    // Another target with the same key fields: other keys (so it creates its own orders).
    std::fs::remove_file(results_path(&sb)).unwrap();
    sb.write("input.jsonl", &jsonl(&records));
    demo.clear_requests();
    push(&sb, &demo, "create_orders_copy", &[]).expect_code(0);
    let copy_keys: BTreeSet<String> = posts_by_key(&demo).into_keys().collect();
    assert_eq!(copy_keys.len(), 6);
    assert!(copy_keys.iter().all(|k| is_uuid_v5(k)));
    assert!(
        copy_keys.iter().all(|k| !first.values().any(|f| f == k)),
        "another target reused a key of create_orders"
    );
}

#[test]
fn key_field_sends_the_records_own_key_in_the_configured_header() {
    // A plain loopback server shows every header the runtime sends.
    let srv = serve(|r| Reply::json(format!(r#"{{"id": {}}}"#, r.body.len())).with_status(201));
    let records = orders(4);
    let sb = sandbox(&spec("", &three_targets()), &records);
    push_to(&sb, &srv.url(), "by_request_id", TOKEN, &[], &[]).expect_code(0);
    let mut seen: Vec<String> = srv
        .requests()
        .iter()
        .map(|r| {
            assert_eq!(r.method, "POST");
            assert_eq!(r.path, "/orders");
            assert_eq!(
                r.header("idempotency-key"),
                None,
                "the default header was sent too"
            );
            r.header("x-request-key").unwrap().to_owned()
        })
        .collect();
    seen.sort();
    let want: Vec<String> = records
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, want);
    for (line, r) in results_by_line(&sb) {
        assert_eq!(r["key"], records[line as usize - 1]["request_id"], "{r}");
        assert_eq!(r["outcome"], "created", "{r}");
    }

    // The same with the demo API and the default header: it sees exactly the record's key.
    let demo = demo();
    let sb = sandbox(
        &spec(
            "",
            "  by_request_id:\n    path: /orders\n    idempotency: { key_field: request_id }\n    response_id: $.id\n",
        ),
        &records,
    );
    push(&sb, &demo, "by_request_id", &[]).expect_code(0);
    let mut seen: Vec<String> = posts(&demo)
        .iter()
        .map(|r| r.idempotency_key.clone().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, want);
    assert_eq!(demo.created_count(), 4);
}

#[test]
fn a_record_without_a_key_field_is_reported_and_the_others_go_on() {
    let demo = demo();
    let mut records = orders(5);
    records[2].as_object_mut().unwrap().remove("external_id");
    records[3]["customer_id"] = Value::Null;
    // on_conflict: stop must not stop on a failure that is not a conflict.
    let sb = sandbox(
        &spec(
            "",
            &orders_target("    concurrency: 1\n    on_conflict: stop"),
        ),
        &records,
    );
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(1);
    let res = results_by_line(&sb);
    assert_eq!(res.len(), 5);
    for (line, field) in [(3, "external_id"), (4, "customer_id")] {
        let r = &res[&line];
        assert_eq!(r["outcome"], "invalid", "{r}");
        let err = r["error"].as_str().unwrap();
        assert!(
            err.contains(&format!("line {line}")) && err.contains(field),
            "line {line}: the error names neither the line nor the field: {err}"
        );
        assert!(
            r.get("status").is_none(),
            "nothing was sent for line {line}: {r}"
        );
    }
    for line in [1, 2, 5] {
        assert_eq!(res[&line]["outcome"], "created");
    }
    assert_eq!(posts(&demo).len(), 3, "a record without its key was sent");
    let created = created_by_external_id(&demo);
    assert_eq!(
        created.keys().cloned().collect::<Vec<_>>(),
        ["EXT-00001", "EXT-00002", "EXT-00005"]
    );
    let s = summary(&run);
    assert_eq!(
        (s.read, s.created, s.invalid, s.not_sent),
        (5, 3, 2, 0),
        "{s:?}"
    );

    // key_field: a record without it, or with an empty one, is reported the same way.
    let mut records = vec![order(11), order(12), order(13)];
    records[0].as_object_mut().unwrap().remove("request_id");
    records[1]["request_id"] = json!("");
    let sb = sandbox(
        &spec(
            "",
            "  by_request_id:\n    path: /orders\n    idempotency: { key_field: request_id }\n",
        ),
        &records,
    );
    push(&sb, &demo, "by_request_id", &[]).expect_code(1);
    let res = results_by_line(&sb);
    assert_eq!(res[&1]["outcome"], "invalid");
    assert_eq!(res[&2]["outcome"], "invalid");
    assert!(res[&1]["error"].as_str().unwrap().contains("request_id"));
    assert_eq!(res[&3]["outcome"], "created");
}

#[test]
fn method_path_and_body_templates_render_from_the_record() {
    let srv = serve(|_| Reply::json(r#"{"data": {"id": "ord_7"}, "ok": true}"#).with_status(201));
    let targets = "  upsert:\n    method: PUT\n    path: \"/customers/{{ record.customer_id }}/orders/{{ record.external_id }}\"\n    body: { reference: \"{{ record.external_id }}\", source: pipeline, nested: { total: \"{{ record.total }}\" } }\n    idempotency: { key_fields: [external_id] }\n    response_id: $.data.id\n  as_is:\n    method: PATCH\n    path: /orders\n    idempotency: { key_fields: [external_id] }\n";
    let records = vec![order(1), order(2)];
    let sb = sandbox(&spec("", targets), &records);
    push_to(&sb, &srv.url(), "upsert", TOKEN, &[], &[]).expect_code(0);
    let mut reqs = srv.requests();
    reqs.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(reqs.len(), 2);
    for (req, rec) in reqs.iter().zip(&records) {
        assert_eq!(req.method, "PUT");
        assert_eq!(
            req.path,
            format!(
                "/customers/{}/orders/{}",
                rec["customer_id"],
                rec["external_id"].as_str().unwrap()
            )
        );
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({
                "reference": rec["external_id"],
                "source": "pipeline",
                // One expression keeps its type: the number goes out as a number.
                "nested": { "total": rec["total"] }
            })
        );
        assert!(is_uuid_v5(req.header("idempotency-key").unwrap()));
    }
    for r in results_by_line(&sb).values() {
        assert_eq!(r["id"], "ord_7", "response_id: {r}");
    }

    // Without `body`, the record goes as it is: same fields, same order, same types.
    std::fs::remove_file(results_path(&sb)).unwrap();
    push_to(&sb, &srv.url(), "as_is", TOKEN, &[], &[]).expect_code(0);
    let sent: Vec<Value> = srv
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(sent.len(), 2);
    for rec in &records {
        let got = sent
            .iter()
            .find(|s| s["external_id"] == rec["external_id"])
            .unwrap();
        assert_eq!(got, rec);
        assert_eq!(
            got.as_object().unwrap().keys().collect::<Vec<_>>(),
            rec.as_object().unwrap().keys().collect::<Vec<_>>(),
            "field order"
        );
    }
    // Keys depend on the target: `upsert` and `as_is` key the same fields differently.
    let keys = |method: &str| -> BTreeSet<String> {
        srv.requests()
            .iter()
            .filter(|r| r.method == method)
            .map(|r| r.header("idempotency-key").unwrap().to_owned())
            .collect()
    };
    assert!(keys("PUT").is_disjoint(&keys("PATCH")));
}
