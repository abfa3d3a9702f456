//! Pagination that reads the records (issue 12, item 6: `next_record`, `stop_when`) and
//! paginator values placed in a header or the JSON body (issue 13, item 3), end to end:
//! each test asserts the exact requests the loopback API saw. Last, the Shopify-style
//! example connector against a stand-in that pages and filters the way the real API does.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use serde_json::{Value, json};
use support::{Logged, Reply, Sandbox, serve, spec};

/// The requests' bodies, parsed.
fn bodies(reqs: &[Logged]) -> Vec<Value> {
    reqs.iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[test]
fn a_number_cursor_from_the_last_record_pages_until_a_short_page() {
    let srv = serve(|r| {
        let from = r.num("from_id", 1);
        let limit = r.num("limit", 100);
        let items: Vec<Value> = (from..=5).take(limit).map(|i| json!({"id": i})).collect();
        Reply::value(&json!({ "items": items }))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: cursor, next_record: "{{ record.id + 1 }}", param: from_id, page_size: { param: limit, value: 2 } }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    let queries: Vec<String> = srv.requests().iter().map(|r| r.raw_query()).collect();
    // No cursor on the first page; the last page (one record of two) ends the stream.
    assert_eq!(
        queries,
        vec!["limit=2", "limit=2&from_id=3", "limit=2&from_id=5"]
    );
    assert_eq!(sb.ids("items"), vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_string_cursor_from_the_last_record_pages_until_an_empty_page() {
    let names = ["ant", "bee", "cat", "dog", "eel"];
    let srv = serve(move |r| {
        let after = r.param("after").unwrap_or("");
        let items: Vec<Value> = names
            .iter()
            .filter(|n| **n > after)
            .take(2)
            .map(|n| json!({"name": n}))
            .collect();
        Reply::value(&json!({ "items": items }))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: cursor, next_record: "{{ record.name }}", param: after }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    let after: Vec<Option<String>> = srv.param_seq("/items", "after");
    assert_eq!(
        after,
        vec![
            None,
            Some("bee".into()),
            Some("dog".into()),
            Some("eel".into())
        ]
    );
    assert_eq!(sb.records("items").len(), 5);
}

/// Events 1..=n, `created_at` on day `id` of January 2024, served newest first in pages of
/// `per_page` (by `page`), with no date filter: the only way to stop early is `stop_when`.
fn newest_first(r: &Logged, n: usize) -> Reply {
    let page = r.num("page", 1);
    let per = r.num("per_page", 3);
    let events: Vec<Value> = (1..=n)
        .rev()
        .skip((page - 1) * per)
        .take(per)
        .map(|i| json!({"id": i, "created_at": format!("2024-01-{i:02}T00:00:00Z")}))
        .collect();
    Reply::value(&json!({ "events": events }))
}

#[test]
fn stop_when_ends_a_newest_first_feed_at_the_window_and_the_next_run_resumes() {
    let total = Arc::new(AtomicUsize::new(10));
    let t = total.clone();
    let srv = serve(move |r| newest_first(r, t.load(SeqCst)));
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  events:
    path: /events
    records: $.events[*]
    primary_key: id
    pagination: { kind: page_number, size: 3, size_param: per_page, stop_when: record.created_at < incremental.start }
    incremental:
      cursor_field: created_at
      start: "2024-01-05T00:00:00Z"
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    // Page 3 starts with day 4, older than the start: it and the rest are dropped, and
    // page 4 is never asked for.
    assert_eq!(
        srv.param_seq("/events", "page"),
        vec![Some("1".into()), Some("2".into()), Some("3".into())]
    );
    assert_eq!(sb.ids("events"), vec![10, 9, 8, 7, 6, 5]);

    // Two new events; the next run stops at the first event older than the saved cursor.
    total.store(12, SeqCst);
    sb.sync(&srv, &[]).expect_code(0);
    let pages = srv.param_seq("/events", "page");
    assert_eq!(pages[3..], [Some("1".into()), Some("2".into())]);
    assert_eq!(sb.ids("events"), vec![10, 9, 8, 7, 6, 5, 12, 11]);
}

#[test]
fn a_cursor_and_a_page_size_in_headers_and_a_cursor_no_header_can_carry() {
    let srv = serve(|r| match r.header("x-page-token") {
        None => Reply::json(r#"{"items": [{"id": 1}, {"id": 2}], "next": "t2"}"#),
        Some("t2") => Reply::json(r#"{"items": [{"id": 3}], "next": "t3\r\nX-Evil: 1"}"#),
        Some(_) => Reply::status(500, "unexpected"),
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: cursor, next: $.next, param: { header: X-Page-Token }, page_size: { param: { header: X-Page-Size }, value: 2 } }
"#,
    ));
    // The second cursor holds a line break: a clear error, not a smuggled header.
    sb.sync(&srv, &[])
        .expect_code(1)
        .expect_stderr(&["cannot be sent in header `X-Page-Token`"]);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].header("x-page-token"), None);
    assert_eq!(reqs[1].header("x-page-token"), Some("t2"));
    assert!(reqs.iter().all(|r| r.header("x-page-size") == Some("2")));
    assert!(reqs.iter().all(|r| r.query.is_empty()), "{reqs:?}");
}

#[test]
fn a_graphql_cursor_goes_in_the_body_and_is_left_out_on_the_first_page() {
    let srv = serve(|r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        match body["variables"]["after"].as_str() {
            None => Reply::json(
                r#"{"data": {"items": {"nodes": [{"id": 1}, {"id": 2}], "pageInfo": {"endCursor": "c2"}}}}"#,
            ),
            Some("c2") => Reply::json(
                r#"{"data": {"items": {"nodes": [{"id": 3}], "pageInfo": {"endCursor": null}}}}"#,
            ),
            Some(_) => Reply::status(500, "unexpected"),
        }
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /graphql
    method: POST
    body: { query: "query($after: String) { items(first: 2, after: $after) { id } }", variables: { first: 2 } }
    records: $.data.items.nodes[*]
    pagination: { kind: cursor, next: $.data.items.pageInfo.endCursor, param: { body: variables.after } }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    let q = "query($after: String) { items(first: 2, after: $after) { id } }";
    assert_eq!(
        bodies(&srv.requests()),
        vec![
            json!({"query": q, "variables": {"first": 2}}),
            json!({"query": q, "variables": {"first": 2, "after": "c2"}}),
        ]
    );
    assert_eq!(sb.ids("items"), vec![1, 2, 3]);
}

#[test]
fn offset_and_page_numbers_go_in_a_body_made_for_them_as_numbers() {
    let srv = serve(|r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let (from, size) = match (&body["paging"], &body["page"]) {
            (Value::Object(p), _) => (p["offset"].as_u64(), p["limit"].as_u64()),
            (_, Value::Number(n)) => (n.as_u64().map(|n| (n - 1) * 2), body["per_page"].as_u64()),
            _ => (None, None),
        };
        let (Some(from), Some(size)) = (from, size) else {
            return Reply::status(400, "no paging in the body");
        };
        let items: Vec<Value> = (from + 1..=5)
            .take(size as usize)
            .map(|i| json!({"id": i}))
            .collect();
        Reply::value(&json!({ "results": items }))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  by_offset:
    path: /search
    method: POST
    records: $.results[*]
    primary_key: id
    dedup: true
    pagination: { kind: offset, limit: 2, offset_param: { body: paging.offset }, limit_param: { body: paging.limit } }
  by_page:
    path: /search
    method: POST
    records: $.results[*]
    pagination: { kind: page_number, page_param: { body: page }, size: 2, size_param: { body: per_page } }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    let all = bodies(&srv.requests());
    let offsets: Vec<&Value> = all.iter().filter(|b| b.get("paging").is_some()).collect();
    let pages: Vec<&Value> = all.iter().filter(|b| b.get("page").is_some()).collect();
    assert_eq!(
        offsets,
        vec![
            &json!({"paging": {"offset": 0, "limit": 2}}),
            &json!({"paging": {"offset": 2, "limit": 2}}),
            &json!({"paging": {"offset": 4, "limit": 2}}),
        ]
    );
    assert_eq!(
        pages,
        vec![
            &json!({"page": 1, "per_page": 2}),
            &json!({"page": 2, "per_page": 2}),
            &json!({"page": 3, "per_page": 2}),
        ]
    );
    assert!(
        srv.requests()
            .iter()
            .all(|r| r.query.is_empty() && r.header("content-type") == Some("application/json"))
    );
    assert_eq!(sb.ids("by_offset"), vec![1, 2, 3, 4, 5]);
    assert_eq!(sb.ids("by_page"), vec![1, 2, 3, 4, 5]);
}

#[test]
fn validate_refuses_placements_that_cannot_work_at_their_position() {
    let sb = Sandbox::new();
    let path = sb.spec(&spec(
        r#"
  items:
    path: /items
    headers: { x-cursor: "fixed" }
    records: $.items[*]
    pagination: { kind: cursor, next: $.next, param: { body: variables.after } }
  others:
    path: /others
    headers: { X-Cursor: "fixed" }
    records: $.items[*]
    pagination: { kind: cursor, next: $.next, param: { header: x-cursor }, stop_when: recrd.id > 3 }
  posted:
    path: /posted
    method: POST
    body: { variables: { after: "{{ page.cursor }}" } }
    records: $.items[*]
    pagination: { kind: cursor, next: $.next, next_record: "{{ record.id }}", param: { body: variables.after } }
"#,
    ));
    sb.run(&["validate", path.to_str().unwrap()])
        .expect_code(2)
        .expect_stdout(&[
            "spec.yaml:13:62: error: `pagination.param` goes in the body, but the stream's method is GET",
            "add `method: POST`",
            "spec.yaml:18:64: error: header `x-cursor` of `pagination.param` is also sent by the stream's `headers`",
            "spec.yaml:18:87: error: unknown variable `recrd`",
            "spec.yaml:22:26: error: body field `variables.after` is also filled by `pagination.param`",
            "spec.yaml:24:47: error: cursor pagination takes the cursor from one place, not both `next` and `next_record`",
        ]);
}

/// Minutes since 2024-01-01T00:00 UTC of a Shopify date-time (`2024-01-01T10:00:00-05:00`
/// or with `Z`), for comparing instants written with different offsets.
fn minutes(t: &str) -> i64 {
    let n = |a: usize, b: usize| t[a..b].parse::<i64>().unwrap();
    let local = (n(8, 10) - 1) * 1440 + n(11, 13) * 60 + n(14, 16);
    let off = match &t[19..] {
        "Z" | "" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().unwrap() * 60 + o[4..6].parse::<i64>().unwrap())
        }
    };
    local - off
}

/// `m` minutes after midnight of 2024-01-01 in the shop's time zone (UTC-5), as Shopify
/// writes it.
fn shop_time(m: i64) -> String {
    format!(
        "2024-01-{:02}T{:02}:{:02}:00-05:00",
        1 + m / 1440,
        m % 1440 / 60,
        m % 60
    )
}

/// A list endpoint the way Shopify's answers: `since_id` (ids ascending), `limit` (at
/// most 250), `updated_at_min` (inclusive).
fn shopify_list(r: &Logged, key: &str, items: &[Value]) -> Reply {
    let limit = r.num("limit", 50);
    if limit > 250 {
        return Reply::status(400, r#"{"errors": {"limit": "must be at most 250"}}"#);
    }
    let since = r.num("since_id", 0) as u64;
    let min = r.param("updated_at_min").map(minutes);
    let mut page: Vec<&Value> = items
        .iter()
        .filter(|o| o["id"].as_u64().unwrap() > since)
        .filter(|o| min.is_none_or(|m| minutes(o["updated_at"].as_str().unwrap()) >= m))
        .collect();
    page.sort_by_key(|o| o["id"].as_u64());
    page.truncate(limit);
    Reply::value(&json!({ key: page }))
}

#[test]
fn the_shopify_example_pages_by_since_id_and_link_and_resumes_by_updated_at_min() {
    let generation = Arc::new(AtomicUsize::new(1));
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (generation.clone(), calls.clone());
    let srv = serve(move |r| {
        let n = c.fetch_add(1, SeqCst) + 1;
        let level = format!("{}/40", n.min(40));
        if r.header("x-shopify-access-token") != Some("shpat_test") {
            return Reply::status(
                401,
                r#"{"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}"#,
            );
        }
        if n == 1 {
            // The bucket overflowed once; the real API says `Retry-After: 2.0`.
            return Reply::status(429, r#"{"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}"#)
                .header("retry-after", "0.05")
                .header("x-shopify-shop-api-call-limit", "40/40");
        }
        let mut orders: Vec<Value> = (1..=600)
            .map(|i| json!({"id": i, "name": format!("#{}", 1000 + i), "updated_at": shop_time(i as i64)}))
            .collect();
        if g.load(SeqCst) == 2 {
            for i in [10, 20] {
                orders[i - 1]["updated_at"] = json!(shop_time(2000));
            }
            orders.push(json!({"id": 601, "name": "#1601", "updated_at": shop_time(2000)}));
        }
        let customers: Vec<Value> = (1..=3)
            .map(|i| json!({"id": 70 + i, "email": format!("c{i}@example.com"), "updated_at": shop_time(i)}))
            .collect();
        let reply = match r.path.as_str() {
            "/admin/api/2024-01/orders.json" => shopify_list(r, "orders", &orders),
            "/admin/api/2024-01/customers.json" => shopify_list(r, "customers", &customers),
            "/admin/api/2024-01/products.json" => {
                let at: usize = match r.param("page_info") {
                    Some(p)
                        if r.query
                            .iter()
                            .any(|(k, _)| k != "page_info" && k != "limit") =>
                    {
                        let _ = p;
                        return Reply::status(
                            400,
                            r#"{"errors": {"page_info": "Cannot pass other params with page_info"}}"#,
                        );
                    }
                    Some(p) => p.trim_start_matches("eyJ").parse().unwrap_or(0),
                    None => 0,
                };
                let products: Vec<Value> =
                    (at..5).take(2).map(|i| json!({"id": 500 + i})).collect();
                let mut reply = Reply::value(&json!({ "products": products }));
                if at + 2 < 5 {
                    let host = r.header("host").unwrap_or("");
                    let link = format!(
                        "<http://{host}/admin/api/2024-01/products.json?limit=2&page_info=eyJ{}>; rel=\"next\"",
                        at + 2
                    );
                    reply = reply.header("link", &link);
                }
                reply
            }
            _ => Reply::status(404, r#"{"errors": "Not Found"}"#),
        };
        reply.header("x-shopify-shop-api-call-limit", &level)
    });
    let sb = Sandbox::new();
    let text = std::fs::read_to_string(format!(
        "{}/../../connectors/shopify_shop.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    sb.spec(&text);
    let env = [("SHOPIFY_ACCESS_TOKEN", "shpat_test")];
    sb.sync_env(&srv, &[], &env)
        .expect_code(0)
        .expect_no_leak("shpat_test");
    let orders = srv.requests_to("/admin/api/2024-01/orders.json");
    let queries: Vec<String> = orders.iter().map(|r| r.raw_query()).collect();
    let since = |s: &str| {
        format!("status=any&limit=250&since_id={s}&updated_at_min=2024-01-01T00%3A00%3A00Z")
    };
    let first = "status=any&limit=250&updated_at_min=2024-01-01T00%3A00%3A00Z".to_owned();
    // The 429 (whichever stream met it) was retried; then 250, 250, 100 (short: the end).
    let tail = &queries[queries.len() - 3..];
    assert_eq!(tail, [first, since("250"), since("500")]);
    assert_eq!(sb.ids("orders"), (1..=600).collect::<Vec<i64>>());
    assert_eq!(sb.ids("customers"), vec![71, 72, 73]);
    assert_eq!(sb.ids("products"), vec![500, 501, 502, 503, 504]);

    // Next run: two orders changed and one is new; only they come back.
    generation.store(2, SeqCst);
    let before = srv.requests_to("/admin/api/2024-01/orders.json").len();
    sb.sync_env(&srv, &[], &env).expect_code(0);
    let orders = srv.requests_to("/admin/api/2024-01/orders.json");
    assert_eq!(orders.len(), before + 1, "one short page");
    let min = orders[before].param("updated_at_min").unwrap().to_owned();
    assert_eq!(
        minutes(&min),
        minutes(&shop_time(600)),
        "resumes at the newest update: {min}"
    );
    let ids = sb.ids("orders");
    assert_eq!(ids.len(), 603);
    assert_eq!(ids[600..], [10, 20, 601]);
}
