//! `runtime check` (one page per stream: what works, what fails) and `runtime discover`
//! (each stream's schema, declared or inferred).

mod support;

use serde_json::{Value, json};
use support::{Reply, Sandbox, recs, serve, spec, spec_full};

fn api() -> support::Server {
    serve(|r| {
        let key_ok = r.header("authorization") == Some("Bearer good");
        match r.path.as_str() {
            "/items" => Reply::json(format!(r#"{{"next": "c2", "items": [{}]}}"#, recs(1..=3))),
            "/items/1/parts" => Reply::json(r#"{"parts": [{"n": 1}, {"n": 2}]}"#),
            "/secure" if key_ok => Reply::json(r#"{"rows": []}"#),
            "/secure" => Reply::status(401, "bad token"),
            _ => Reply::status(404, "no"),
        }
    })
}

const STREAMS: &str = r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: cursor, next: $.next, param: c }
  parts:
    parent: { stream: items, key: id }
    path: "/items/{{ parent.id }}/parts"
    records: $.parts[*]
  secure:
    path: /secure
    records: $.rows[*]
"#;

fn probe_spec() -> String {
    spec_full(
        "  api_key: { type: string, secret: true }",
        r#"  auth: { kind: bearer, token: "{{ config.api_key }}" }"#,
        STREAMS,
    )
}

#[test]
fn check_says_what_works_and_what_fails() {
    let srv = api();
    let sb = Sandbox::new();
    sb.spec(&probe_spec());
    let run = sb.probe("check", &srv, &["--set", "api_key=bad"]);
    run.expect_code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let line = |s: &str| {
        *lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(s))
            .unwrap_or_else(|| panic!("no line for {s}:\n{}", run.stdout))
    };
    let items = line("items");
    assert!(items.starts_with("ok "), "{items}");
    assert!(
        items.contains("3 records on the first page")
            && items.contains(&format!("GET {}/items", srv.url())),
        "{items}"
    );
    let parts = line("parts");
    assert!(
        parts.starts_with("ok ") && parts.contains("2 records"),
        "{parts}"
    );
    assert!(parts.contains("/items/1/parts"), "{parts}");
    let secure = line("secure");
    assert!(secure.starts_with("FAIL "), "{secure}");
    assert!(
        secure.contains(&format!(
            "401 from GET {}/secure: the API rejected the credentials in config.api_key",
            srv.url()
        )),
        "{secure}"
    );
    run.expect_stdout(&["3 streams checked, 1 failed"]);
    run.expect_no_leak("Bearer bad");
    // One page per stream: the cursor is never followed.
    assert_eq!(srv.requests_to("/items").len(), 1);
    assert_eq!(srv.requests().len(), 3);
}

#[test]
fn check_passes_when_everything_works() {
    let srv = api();
    let sb = Sandbox::new();
    sb.spec(&probe_spec());
    let run = sb.probe("check", &srv, &["--set", "api_key=good"]);
    run.expect_code(0)
        .expect_stdout(&["3 streams checked, 0 failed"]);
    assert!(!run.stdout.contains("FAIL"), "{}", run.stdout);
}

#[test]
fn check_warns_about_a_records_path_that_matches_nothing() {
    let srv = serve(|_| Reply::json(r#"{"results": [{"id": 1}], "count": 1}"#));
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
"#,
    ));
    let run = sb.probe("check", &srv, &[]);
    run.expect_code(0).expect_stdout(&[
        "warning: records path $.items[*] matched nothing",
        "results, count",
    ]);
}

#[test]
fn discover_prints_declared_and_inferred_schemas() {
    let srv = serve(|r| match r.path.as_str() {
        "/orders" => Reply::json(
            r#"{"orders": [
                {"id": 1, "total": 12.50, "paid": true, "created_at": "2024-03-01T10:00:00Z", "tags": ["a"], "customer": {"name": "x"}, "note": null},
                {"id": 2, "total": 7, "paid": false, "created_at": "2024-03-02T11:30:00+01:00", "tags": [], "customer": {"name": "y"}}
            ]}"#,
        ),
        _ => Reply::json(r#"[{"sku": "a"}]"#),
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  orders:
    path: /orders
    primary_key: id
    records: $.orders[*]
  products:
    path: /products
    primary_key: sku
    records: $[*]
    schema:
      type: object
      properties:
        sku: { type: string }
        price: { type: [number, "null"] }
      required: [sku]
"#,
    ));
    let run = sb.probe("discover", &srv, &[]);
    run.expect_code(0);
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("discover output is not JSON ({e}):\n{}", run.stdout));
    assert_eq!(doc["connector"], "t");
    let products = &doc["streams"]["products"];
    assert_eq!(products["schema_source"], "declared");
    assert_eq!(
        products["schema"],
        json!({
            "type": "object",
            "properties": { "sku": { "type": "string" }, "price": { "type": ["number", "null"] } },
            "required": ["sku"]
        })
    );
    assert_eq!(products["primary_key"], json!(["sku"]));
    let orders = &doc["streams"]["orders"];
    assert_eq!(orders["schema_source"], "inferred");
    let s = &orders["schema"];
    assert_eq!(s["type"], "object");
    let p = &s["properties"];
    assert_eq!(p["id"]["type"], "integer");
    assert_eq!(p["total"]["type"], "number");
    assert_eq!(p["paid"]["type"], "boolean");
    assert_eq!(p["created_at"]["type"], "string");
    assert_eq!(p["created_at"]["format"], "date-time");
    assert_eq!(p["tags"]["type"], "array");
    assert_eq!(p["tags"]["items"]["type"], "string");
    assert_eq!(p["customer"]["type"], "object");
    assert_eq!(p["customer"]["properties"]["name"]["type"], "string");
    assert_eq!(p["note"]["type"], "null");
    assert_eq!(
        s["required"],
        json!(["id", "total", "paid", "created_at", "tags", "customer"])
    );
    assert_eq!(orders["primary_key"], json!(["id"]));
}

#[test]
fn check_and_discover_refuse_a_spec_that_does_not_load() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/sync/broken.yaml"
    );
    let sb = Sandbox::new();
    for cmd in ["check", "discover"] {
        sb.run(&[cmd, fixture, "--set", "base_url=http://127.0.0.1:9"])
            .expect_code(2)
            .expect_stderr(&["broken.yaml:12:5", "pagnation"]);
    }
}
