//! Every pagination kind and stop rule of `runtime sync`, against loopback servers that
//! implement them; output checked line by line against the bytes served.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use support::{Reply, Sandbox, rec_lines, recs, serve, spec};

/// Ids `offset+1 ..= min(offset+count, n)`.
fn window(n: usize, offset: usize, count: usize) -> Vec<usize> {
    (offset + 1..=n.min(offset + count)).collect()
}

fn opt(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some((*s).to_owned())).collect()
}

#[test]
fn offset_stops_on_a_short_page() {
    let srv = serve(|r| {
        let ids = window(7, r.num("offset", 0), r.num("limit", 100));
        Reply::json(format!(r#"{{"items": [{}]}}"#, recs(ids)))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: offset, limit: 3 }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=7));
    assert_eq!(srv.param_seq("/items", "offset"), opt(&["0", "3", "6"]));
    assert_eq!(srv.param_seq("/items", "limit"), opt(&["3", "3", "3"]));
    let row = run.row("items");
    assert_eq!((row.records, row.pages, row.requests), (7, 3, 3));
}

#[test]
fn offset_stops_when_the_total_is_reached() {
    // 6 records in pages of 3: without the total a third, empty page would be asked for.
    let srv = serve(|r| {
        let ids = window(6, r.num("offset", 0), r.num("limit", 100));
        Reply::json(format!(r#"{{"total": 6, "items": [{}]}}"#, recs(ids)))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: offset, limit: 3, total: $.total }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=6));
    assert_eq!(srv.param_seq("/items", "offset"), opt(&["0", "3"]));
}

#[test]
fn offset_with_start_and_renamed_params_stops_on_an_empty_page() {
    let srv = serve(|r| {
        let ids = window(10, r.num("skip", 0), r.num("take", 100));
        Reply::json(format!(r#"{{"items": [{}]}}"#, recs(ids)))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: offset, limit: 4, start: 2, offset_param: skip, limit_param: take }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(3..=10));
    assert_eq!(srv.param_seq("/items", "skip"), opt(&["2", "6", "10"]));
    assert_eq!(srv.param_seq("/items", "take"), opt(&["4", "4", "4"]));
    assert_eq!(srv.param_seq("/items", "offset"), vec![None, None, None]);
    let row = run.row("items");
    assert_eq!((row.records, row.pages, row.requests), (8, 3, 3));
}

#[test]
fn page_number_from_zero_stops_on_an_empty_page() {
    // Two records a page whatever is asked; no size in the spec, so only the empty page stops.
    let srv = serve(|r| {
        let page = r.num("p", 99);
        Reply::json(format!(r#"{{"rows": [{}]}}"#, recs(window(5, page * 2, 2))))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  rows:
    path: /rows
    records: $.rows[*]
    pagination: { kind: page_number, page_param: p, start: 0 }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("rows"), rec_lines(1..=5));
    assert_eq!(srv.param_seq("/rows", "p"), opt(&["0", "1", "2", "3"]));
    let row = run.row("rows");
    assert_eq!((row.records, row.pages, row.requests), (5, 4, 4));
}

#[test]
fn page_number_from_one_stops_after_total_pages() {
    // Three full pages: only total_pages says the third is the last.
    let srv = serve(|r| {
        let page = r.num("page", 99);
        Reply::json(format!(
            r#"{{"total_pages": 3, "rows": [{}]}}"#,
            recs(window(6, (page - 1) * 2, 2))
        ))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  rows:
    path: /rows
    records: $.rows[*]
    pagination: { kind: page_number, total_pages: $.total_pages }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.lines("rows"), rec_lines(1..=6));
    assert_eq!(srv.param_seq("/rows", "page"), opt(&["1", "2", "3"]));
}

#[test]
fn page_number_stops_when_the_total_record_count_is_reached() {
    let srv = serve(|r| {
        let page = r.num("page", 99);
        Reply::json(format!(
            r#"{{"count": "6", "rows": [{}]}}"#,
            recs(window(6, (page - 1) * 3, 3))
        ))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  rows:
    path: /rows
    records: $.rows[*]
    pagination: { kind: page_number, total: $.count }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.lines("rows"), rec_lines(1..=6));
    assert_eq!(srv.param_seq("/rows", "page"), opt(&["1", "2"]));
}

#[test]
fn page_number_with_size_stops_on_a_short_page() {
    let srv = serve(|r| {
        let page = r.num("page", 99);
        let size = r.num("per_page", 1);
        Reply::json(format!(
            r#"{{"rows": [{}]}}"#,
            recs(window(12, (page - 1) * size, size))
        ))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  rows:
    path: /rows
    records: $.rows[*]
    pagination: { kind: page_number, size: 5, size_param: per_page }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("rows"), rec_lines(1..=12));
    assert_eq!(srv.param_seq("/rows", "page"), opt(&["1", "2", "3"]));
    assert_eq!(srv.param_seq("/rows", "per_page"), opt(&["5", "5", "5"]));
    assert_eq!(run.row("rows").pages, 3);
}

/// A cursor API over `n` records: the cursor is an opaque token naming the next offset.
fn cursor_page(n: usize, cursor: Option<&str>, size: usize) -> (Vec<usize>, Option<String>) {
    let from = cursor
        .and_then(|c| c.strip_prefix("opaque-"))
        .map_or(0, |c| c.parse().unwrap());
    let ids = window(n, from, size);
    let next = (from + size < n).then(|| format!("opaque-{}", from + size));
    (ids, next)
}

#[test]
fn cursor_from_a_body_jsonpath() {
    let srv = serve(|r| {
        let (ids, next) = cursor_page(5, r.param("cursor"), r.num("limit", 100));
        let next = next.map_or("null".into(), |c| format!("\"{c}\""));
        Reply::json(format!(
            r#"{{"data": [{}], "meta": {{"next_cursor": {next}}}}}"#,
            recs(ids)
        ))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  things:
    path: /things
    records: $.data[*]
    params: { sort: id }
    pagination: { kind: cursor, next: $.meta.next_cursor, param: cursor, page_size: { param: limit, value: 2 } }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("things"), rec_lines(1..=5));
    assert_eq!(
        srv.param_seq("/things", "cursor"),
        vec![None, Some("opaque-2".into()), Some("opaque-4".into())]
    );
    assert_eq!(srv.param_seq("/things", "limit"), opt(&["2", "2", "2"]));
    assert_eq!(srv.param_seq("/things", "sort"), opt(&["id", "id", "id"]));
    let row = run.row("things");
    assert_eq!((row.records, row.pages, row.requests), (5, 3, 3));
}

#[test]
fn cursor_from_a_response_header() {
    let srv = serve(|r| {
        let (ids, next) = cursor_page(7, r.param("after"), 3);
        let reply = Reply::json(format!("[{}]", recs(ids)));
        match next {
            Some(c) => reply.header("X-Next-Cursor", &c),
            None => reply,
        }
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  things:
    path: /things
    records: $[*]
    pagination: { kind: cursor, next_header: X-Next-Cursor, param: after }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.lines("things"), rec_lines(1..=7));
    assert_eq!(
        srv.param_seq("/things", "after"),
        vec![None, Some("opaque-3".into()), Some("opaque-6".into())]
    );
}

#[test]
fn next_url_relative_to_the_request() {
    // Page 1 links with an absolute path, page 2 with a query-only reference.
    let srv = serve(|r| {
        let page = r.num("page", 1);
        let next = match page {
            1 => r#""/v1/items?page=2&size=2""#,
            2 => r#""?page=3&size=2""#,
            _ => "null",
        };
        Reply::json(format!(
            r#"{{"items": [{}], "links": {{"next": {next}}}}}"#,
            recs(window(6, (page - 1) * 2, 2))
        ))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /v1/items
    params: { size: "2" }
    records: $.items[*]
    pagination: { kind: next_url, next: $.links.next }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=6));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.path == "/v1/items"), "{reqs:?}");
    assert_eq!(
        srv.param_seq("/v1/items", "page"),
        vec![None, Some("2".into()), Some("3".into())]
    );
    assert_eq!(srv.param_seq("/v1/items", "size"), opt(&["2", "2", "2"]));
}

#[test]
fn next_url_absolute_is_used_as_given() {
    // The API moves the client to another path for later pages.
    let srv = serve(|r| {
        let host = r.header("host").unwrap().to_owned();
        let (ids, next) = match (r.path.as_str(), r.param("token")) {
            ("/items", None) => (window(5, 0, 2), Some("t1")),
            ("/pages/more", Some("t1")) => (window(5, 2, 2), Some("t2")),
            ("/pages/more", Some("t2")) => (window(5, 4, 2), None),
            _ => return Reply::status(404, "no such page"),
        };
        let next = next.map_or("null".into(), |t| {
            format!("\"http://{host}/pages/more?token={t}\"")
        });
        Reply::json(format!(r#"{{"next": {next}, "items": [{}]}}"#, recs(ids)))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: next_url, next: $.next }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=5));
    let paths: Vec<String> = srv
        .requests()
        .iter()
        .map(|r| format!("{}?{}", r.path, r.raw_query()))
        .collect();
    assert_eq!(
        paths,
        ["/items?", "/pages/more?token=t1", "/pages/more?token=t2"]
    );
}

#[test]
fn link_header_with_several_links_in_one_header() {
    let srv = serve(|r| {
        let host = r.header("host").unwrap().to_owned();
        let page = r.num("page", 1);
        let mut links = vec![
            format!("<http://{host}/events?page=1>; rel=\"first\""),
            format!("<http://{host}/events?page=3>; rel=\"last\""),
        ];
        if page < 3 {
            links.push(format!(
                "<http://{host}/events?page={}>; rel=\"next\"",
                page + 1
            ));
        }
        if page > 1 {
            links.push(format!(
                "<http://{host}/events?page={}>; rel=\"prev\"",
                page - 1
            ));
        }
        Reply::json(format!("[{}]", recs(window(6, (page - 1) * 2, 2))))
            .header("Link", &links.join(", "))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  events:
    path: /events
    records: $[*]
    pagination: { kind: link_header }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("events"), rec_lines(1..=6));
    assert_eq!(
        srv.param_seq("/events", "page"),
        vec![None, Some("2".into()), Some("3".into())]
    );
    assert_eq!(run.row("events").requests, 3);
}

#[test]
fn link_header_on_repeated_lines_with_relative_targets_and_multi_type_rel() {
    let srv = serve(|r| {
        let page = r.num("page", 1);
        let body = Reply::json(format!("[{}]", recs(window(6, (page - 1) * 2, 2))));
        match page {
            // Two header lines; the next link is relative to the request URL.
            1 => body
                .header("Link", "</events?page=1>; rel=\"first\"")
                .header("Link", "<events?page=2>; rel=\"next\""),
            // One link with two relation types, after another link in the same line.
            2 => body.header("Link", "</events?page=1>; rel=prev").header(
                "Link",
                "</events?page=1>; rel=\"first\", </events?page=3>; rel=\"last next\"",
            ),
            // No next: the end.
            _ => body
                .header("Link", "</events?page=2>; rel=\"prev\"")
                .header("Link", "</events?page=1>; rel=\"first\""),
        }
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  events:
    path: /events
    records: $[*]
    pagination: { kind: link_header, rel: next }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(sb.lines("events"), rec_lines(1..=6));
    assert_eq!(
        srv.param_seq("/events", "page"),
        vec![None, Some("2".into()), Some("3".into())]
    );
    assert!(srv.requests().iter().all(|r| r.path == "/events"));
}

#[test]
fn max_pages_stops_an_endless_api() {
    // Every page has records and a fresh cursor: only max_pages ends it.
    let n = AtomicUsize::new(0);
    let srv = serve(move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        Reply::json(format!(
            r#"{{"next": "c{}", "items": [{}]}}"#,
            i + 1,
            recs([2 * i + 1, 2 * i + 2])
        ))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: cursor, next: $.next, param: c, max_pages: 3 }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=6));
    assert_eq!(srv.requests().len(), 3);
    assert_eq!(run.row("items").pages, 3);
}

#[test]
fn an_empty_page_stops_even_with_a_next_link() {
    let srv = serve(|r| {
        let page = r.num("page", 1);
        let ids = if page <= 2 {
            window(4, (page - 1) * 2, 2)
        } else {
            vec![]
        };
        Reply::json(format!("[{}]", recs(ids)))
            .header("Link", &format!("</items?page={}>; rel=\"next\"", page + 1))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $[*]
    pagination: { kind: link_header }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=4));
    assert_eq!(srv.requests().len(), 3);
    let row = run.row("items");
    assert_eq!((row.records, row.pages), (4, 3));
}

/// A Stripe-style list: the last id is always there to page on, `has_more` says whether
/// it is worth it; page 3 of `broken` leaves the flag out.
fn listing(r: &support::Logged, broken: bool) -> Reply {
    let after: usize = r.param("starting_after").map_or(0, |a| a.parse().unwrap());
    let ids = window(5, after, 2);
    let last = ids.last().copied().unwrap_or(after);
    let more = if broken && after == 4 {
        String::new()
    } else {
        format!(r#", "has_more": {}"#, last < 5)
    };
    Reply::json(format!(
        r#"{{"data": [{}], "last": "{last}"{more}}}"#,
        recs(ids)
    ))
}

const LISTING: &str = r#"
  items:
    path: /items
    records: $.data[*]
    pagination: { kind: cursor, next: $.last, has_more: $.has_more, param: starting_after, page_size: { param: limit, value: 2 } }
"#;

#[test]
fn has_more_false_is_the_last_page() {
    let srv = serve(|r| listing(r, false));
    let sb = Sandbox::new();
    sb.spec(&spec(LISTING));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.lines("items"), rec_lines(1..=5));
    // Without `has_more`, a fourth request after "5" would come back empty.
    assert_eq!(
        srv.param_seq("/items", "starting_after"),
        vec![None, Some("2".into()), Some("4".into())]
    );
    assert_eq!(run.row("items").requests, 3);
}

#[test]
fn a_page_without_has_more_fails_the_stream() {
    let srv = serve(|r| listing(r, true));
    let sb = Sandbox::new();
    sb.spec(&spec(LISTING));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "stream items failed",
        "pagination.has_more $.has_more is absent or null, not true or false",
    ]);
    assert_eq!(run.row("items").status, "FAILED");
}

#[test]
fn a_repeated_cursor_fails_the_stream_instead_of_looping() {
    let srv = serve(|_| Reply::json(format!(r#"{{"next": "stuck", "items": [{}]}}"#, recs([1]))));
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: cursor, next: $.next, param: cursor }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "stream items failed",
        "cursor `stuck` a second time",
        "instead of looping",
    ]);
    assert_eq!(
        srv.param_seq("/items", "cursor"),
        vec![None, Some("stuck".into())]
    );
    assert!(!sb.has_output("items"));
    assert_eq!(sb.out_files(), Vec::<String>::new());
    assert_eq!(run.row("items").status, "FAILED");
}

#[test]
fn a_repeated_next_url_fails_the_stream_instead_of_looping() {
    let srv = serve(|_| {
        Reply::json(format!(
            r#"{{"next": "/items?page=2", "items": [{}]}}"#,
            recs([1])
        ))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: next_url, next: $.next }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "stream items failed",
        "next URL",
        "/items?page=2",
        "a second time",
    ]);
    assert_eq!(srv.requests().len(), 2);
    assert!(!sb.has_output("items"));
}

#[test]
fn a_cursor_cycle_a_b_a_fails_the_stream_instead_of_looping() {
    // No cursor -> "a" -> "b" -> "a": each step new to the one before, a loop all the same.
    let srv = serve(|r| {
        let next = match r.param("cursor") {
            None => "a",
            Some("a") => "b",
            _ => "a",
        };
        Reply::json(format!(r#"{{"next": "{next}", "items": [{}]}}"#, recs([1])))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: cursor, next: $.next, param: cursor }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "stream items failed",
        "cursor `a` a second time (page 3)",
        "instead of looping",
    ]);
    assert_eq!(
        srv.param_seq("/items", "cursor"),
        vec![None, Some("a".into()), Some("b".into())]
    );
    assert!(!sb.has_output("items"));
}

#[test]
fn a_next_url_back_to_the_first_page_fails_the_stream_instead_of_looping() {
    // Page 1 is `/items` (never named by the API); page 2 points back at it.
    let srv = serve(|r| {
        let next = if r.param("page").is_some() {
            "/items"
        } else {
            "/items?page=2"
        };
        Reply::json(format!(r#"{{"next": "{next}", "items": [{}]}}"#, recs([1])))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: next_url, next: $.next }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1)
        .expect_stderr(&["stream items failed", "/items` a second time (page 2)"]);
    assert_eq!(srv.requests().len(), 2);
    assert!(!sb.has_output("items"));
}

#[test]
fn records_are_written_byte_exact_one_per_line() {
    // Numbers, escapes, key order and inner spacing stay as served.
    let body = r#"{"items": [{"id": 1, "price": 12.50, "big": 123456789012345678901234567890, "z": 1, "a": {"y": [1.0, 2e3]}}, {"id":2,"name":"caf\u00e9 \"q\" ☕","price":0.10}], "next": null}"#;
    let srv = serve(move |_| Reply::json(body));
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: next_url, next: $.next }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(
        sb.text("items"),
        concat!(
            r#"{"id": 1, "price": 12.50, "big": 123456789012345678901234567890, "z": 1, "a": {"y": [1.0, 2e3]}}"#,
            "\n",
            r#"{"id":2,"name":"caf\u00e9 \"q\" ☕","price":0.10}"#,
            "\n"
        )
    );
}

#[test]
fn a_pretty_printed_body_gives_one_line_per_record() {
    let body = "[\n  {\n    \"id\": 1,\n    \"price\": 12.50,\n    \"tags\": [\n      \"a b\",\n      \"c\\nd\"\n    ],\n    \"nested\": {\n      \"z\": 1,\n      \"a\": 2\n    }\n  },\n  {\n    \"id\": 2\n  }\n]\n";
    let srv = serve(move |_| Reply::json(body));
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $[*]
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(
        sb.text("items"),
        "{\"id\":1,\"price\":12.50,\"tags\":[\"a b\",\"c\\nd\"],\"nested\":{\"z\":1,\"a\":2}}\n{\"id\":2}\n"
    );
}

#[test]
fn records_stay_byte_exact_when_the_total_sits_next_to_them() {
    // `{"data": {"items": [...], "total": N}}` is a common shape; the total's JSONPath
    // shares the records' first field, which must not change how records are written.
    let srv = serve(|r| {
        let ids = window(3, r.num("offset", 0), r.num("limit", 100));
        Reply::json(format!(
            r#"{{"data": {{"items": [{}], "total": 3}}}}"#,
            recs(ids)
        ))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.data.items[*]
    pagination: { kind: offset, limit: 2, total: $.data.total }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(srv.requests().len(), 2);
    assert_eq!(sb.lines("items"), rec_lines(1..=3));
}
