//! Where the docs, `validate` and the runtime disagreed while real connectors were being
//! translated (issue 12, item 8): each case now agrees, and a test holds it there.

mod support;

use support::{Reply, Sandbox, serve, spec};

/// Validates `streams` (indented two spaces) in a test spec; returns the run.
fn validate(sb: &Sandbox, streams: &str) -> support::Run {
    let path = sb.spec(&spec(streams));
    sb.run(&["validate", path.to_str().unwrap()])
}

#[test]
fn a_short_page_does_not_end_a_cursor_stream() {
    // docs/format.md: a cursor stream ends when the next cursor is missing, whatever the
    // page's length (cursor APIs return short pages mid-stream).
    let srv = serve(|r| match r.param("cursor") {
        None => Reply::json(r#"{"items": [{"id": 1}, {"id": 2}], "next": "b"}"#),
        Some("b") => Reply::json(r#"{"items": [{"id": 3}], "next": null}"#),
        Some(_) => Reply::status(500, "unexpected"),
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: cursor, next: $.next, param: cursor, page_size: { param: size, value: 5 } }
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(srv.requests().len(), 2);
    let out = std::fs::read_to_string(sb.out().join("items.jsonl")).unwrap();
    assert_eq!(out.lines().count(), 3);
}

#[test]
fn a_param_the_paginator_sends_cannot_be_set_again() {
    let sb = Sandbox::new();
    let run = validate(
        &sb,
        r#"
  items:
    path: /items
    records: $.items[*]
    params:
      cursor: "x"
      limit: "10"
    pagination: { kind: cursor, next: $.next, param: cursor }
"#,
    );
    run.expect_code(2).expect_stdout(&[
        "spec.yaml:13:7: error: query parameter `cursor` is also sent by `pagination.param`",
        "remove `cursor` here",
    ]);
    assert!(!run.stdout.contains("`limit`"), "{}", run.stdout);
}

#[test]
fn a_dotted_cursor_field_is_refused_with_the_jsonpath_to_write() {
    let sb = Sandbox::new();
    validate(
        &sb,
        r#"
  items:
    path: /items
    records: $.items[*]
    primary_key: id
    incremental:
      cursor_field: attributes.updated
      start: "2024-01-01T00:00:00Z"
"#,
    )
    .expect_code(2)
    .expect_stdout(&[
        "spec.yaml:14:21: error: `attributes.updated` is read as one field named `attributes.updated`",
        "write the JSONPath `$.attributes.updated`",
    ]);
}

#[test]
fn a_get_stream_with_a_body_is_refused() {
    let sb = Sandbox::new();
    validate(
        &sb,
        r#"
  items:
    path: /items
    records: $.items[*]
    body: { q: "x" }
"#,
    )
    .expect_code(2)
    .expect_stdout(&[
        "spec.yaml:12:5: error: stream `items` has a `body` but its method is GET",
        "add `method: POST`",
    ]);
}

#[test]
fn now_is_known_and_a_jsonpath_without_dollar_says_so() {
    let sb = Sandbox::new();
    let run = validate(
        &sb,
        r#"
  items:
    path: /items
    records: data.items
    params: { since: "{{ now() | shift(days=-1) }}" }
"#,
    );
    run.expect_code(2).expect_stdout(&[
        "spec.yaml:11:14: error: `data.items` is not a JSONPath: a JSONPath starts with `$`",
        "write `$.data.items`",
    ]);
    assert!(!run.stdout.contains("unknown variable"), "{}", run.stdout);
    assert!(!run.stdout.contains("^\\$"), "{}", run.stdout);
}

#[test]
fn cursor_formats_are_strftime_or_refused_with_what_to_write() {
    let sb = Sandbox::new();
    let inc = |format: &str| {
        format!(
            r#"
  items:
    path: /items
    records: $.items[*]
    primary_key: id
    incremental:
      cursor_field: at
      format: "{format}"
      param_format: unix_seconds
      param: since
      start: "2024-01-01T00:00:00Z"
"#
        )
    };
    validate(&sb, &inc("%Y-%m-%d %H:%M:%S")).expect_code(0);
    validate(&sb, &inc("YYYY-MM-DD HH:mm:ss"))
        .expect_code(2)
        .expect_stdout(&[
            "spec.yaml:15:15: error: `YYYY-MM-DD HH:mm:ss` is not a date-time format",
            "%Y-%m-%d %H:%M:%S",
        ]);
    validate(&sb, &inc("%Y-%Q"))
        .expect_code(2)
        .expect_stdout(&["unknown `%` specifier"]);
}

#[test]
fn a_templated_config_default_reads_no_variable() {
    let sb = Sandbox::new();
    let path = sb.spec(&support::spec_full(
        "  since: { type: datetime, default: \"{{ config.base_url }}\" }",
        "",
        "  items: { path: /items, records: \"$.items[*]\" }\n",
    ));
    sb.run(&["validate", path.to_str().unwrap()])
        .expect_code(2)
        .expect_stdout(&["default of `config.since` reads `config.base_url`"]);
}
