//! The bundled demo API, in process on port 0, synced with `connectors/orders.yaml`:
//! every stream's records equal the demo data, each exactly once by primary key.

mod support;

use std::collections::BTreeMap;

use demo_api::{DataSizes, DemoConfig};
use serde::Serialize;
use serde_json::Value;
use support::Sandbox;

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../connectors/orders.yaml");

/// Records of a stream keyed by primary key; fails on a repeated key.
#[track_caller]
fn by_key(sb: &Sandbox, stream: &str, key: impl Fn(&Value) -> String) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for v in sb.records(stream) {
        let k = key(&v);
        assert!(
            out.insert(k.clone(), v).is_none(),
            "{stream}: record {k} written twice"
        );
    }
    out
}

/// Starts the demo API with these many orders and syncs every stream of orders.yaml.
fn sync_demo(orders: usize) -> (demo_api::DemoServer, Sandbox, support::Run) {
    let demo = demo_api::spawn(DemoConfig {
        sizes: DataSizes {
            orders,
            products: 120,
            customers: 60,
            events: 230,
        },
        ..DemoConfig::default()
    })
    .unwrap();
    let sb = Sandbox::new();
    let out = sb.out();
    let base = format!("base_url={}", demo.base_url());
    let key = format!("api_key={}", demo.token());
    let run = sb.run(&[
        "sync",
        SPEC,
        "--out",
        out.to_str().unwrap(),
        "--set",
        &base,
        "--set",
        &key,
    ]);
    (demo, sb, run)
}

fn expected<T: Serialize>(items: &[T], key: impl Fn(&Value) -> String) -> BTreeMap<String, Value> {
    items
        .iter()
        .map(|i| {
            let v = serde_json::to_value(i).unwrap();
            (key(&v), v)
        })
        .collect()
}

fn id(v: &Value) -> String {
    v["id"].to_string()
}

#[test]
fn orders_connector_pulls_every_record_of_the_demo_api_once() {
    let (demo, sb, run) = sync_demo(130);
    run.expect_code(0).expect_no_leak(demo.token());

    let orders = demo.orders();
    assert_eq!(by_key(&sb, "orders", id), expected(&orders, id));

    let mut items = Vec::new();
    for o in &orders {
        items.extend(demo.items(o.id).unwrap());
    }
    let item_key = |v: &Value| format!("{}/{}", v["order_id"], v["line"]);
    assert_eq!(
        by_key(&sb, "order_items", item_key),
        expected(&items, item_key)
    );

    let sku = |v: &Value| v["sku"].to_string();
    assert_eq!(
        by_key(&sb, "products", sku),
        expected(&demo.products(), sku)
    );
    assert_eq!(
        by_key(&sb, "customers", id),
        expected(&demo.customers(), id)
    );
    assert_eq!(by_key(&sb, "events", id), expected(&demo.events(), id));

    for (stream, n) in [
        ("orders", orders.len()),
        ("order_items", items.len()),
        ("products", 120),
        ("customers", 60),
        ("events", 230),
    ] {
        let row = run.row(stream);
        assert_eq!(
            (row.status.as_str(), row.records),
            ("ok", n as u64),
            "{stream}"
        );
    }

    // Each order's items were asked for exactly once.
    let mut item_calls: BTreeMap<String, usize> = BTreeMap::new();
    for r in demo.requests() {
        if r.path.starts_with("/orders/") && r.path.ends_with("/items") {
            *item_calls.entry(r.path.clone()).or_default() += 1;
        }
    }
    assert_eq!(item_calls.len(), orders.len());
    assert!(item_calls.values().all(|n| *n == 1), "{item_calls:?}");
}

#[test]
fn orders_connector_writes_each_record_as_the_api_sent_it() {
    // The demo API sends compact JSON, so each output line must be exactly the compact
    // JSON of its own value: no key twice, nothing reformatted.
    let (_demo, sb, run) = sync_demo(12);
    run.expect_code(0);
    for stream in ["orders", "order_items", "products", "customers", "events"] {
        for line in sb.lines(stream) {
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                serde_json::to_string(&v).unwrap(),
                line,
                "{stream}: a line is not the record as the API sent it (a repeated key?)"
            );
        }
    }
}
