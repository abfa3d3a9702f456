//! Time and structured values in templates (issue 12, items 4 and 5), end to end: `now()`
//! and its filters in params and config defaults, `incremental.param_format` both ways, a
//! strftime cursor format, JSON bodies that keep their types, and list config values.

mod support;

use serde_json::{Value, json};
use support::{Reply, Sandbox, serve, spec, spec_full};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// The date `days` before now, as `YYYY-MM-DD`, read before and after a run: the run's
/// own `now()` lies between the two.
fn days_ago(days: i64) -> String {
    let t = OffsetDateTime::now_utc() - Duration::days(days);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

#[test]
fn now_shifted_and_formatted_goes_into_a_param() {
    let srv = serve(|_| Reply::json(r#"{"items": [{"id": 1}]}"#));
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    params:
      since: "{{ now() | shift(days=-30) | format_time('%Y-%m-%d') }}"
      day_start: "{{ now() | start_of('day') }}"
"#,
    ));
    let before = days_ago(30);
    sb.sync(&srv, &[]).expect_code(0);
    let after = days_ago(30);
    let req = &srv.requests()[0];
    let since = req.param("since").unwrap();
    assert!(
        since == before || since == after,
        "{since} vs {before}/{after}"
    );
    let start = req.param("day_start").unwrap();
    assert!(start.ends_with("T00:00:00Z"), "{start}");
}

#[test]
fn a_config_default_template_and_param_format_unix_seconds() {
    // The records carry RFC 3339; the API filters by Unix seconds.
    let srv = serve(|r| {
        let since: i64 = r.param("since").and_then(|s| s.parse().ok()).unwrap_or(0);
        let items: Vec<Value> = [1_714_521_600i64, 1_714_608_000]
            .iter()
            .enumerate()
            .filter(|(_, t)| **t >= since)
            .map(|(i, t)| {
                let at = OffsetDateTime::from_unix_timestamp(*t).unwrap();
                json!({"id": i + 1, "updated_at": at.format(&Rfc3339).unwrap()})
            })
            .collect();
        Reply::value(&json!({ "items": items }))
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        r#"  start: { type: datetime, default: "{{ now() | shift(days=-7) }}" }"#,
        "",
        r#"
  items:
    path: /items
    records: $.items[*]
    primary_key: id
    incremental:
      cursor_field: updated_at
      param: since
      param_format: unix_seconds
      start: "{{ config.start }}"
"#,
    ));
    // First run: the default, seven days before the run, sent as Unix seconds.
    let lo = (OffsetDateTime::now_utc() - Duration::days(7)).unix_timestamp();
    sb.sync(&srv, &[]).expect_code(0);
    let hi = (OffsetDateTime::now_utc() - Duration::days(7)).unix_timestamp();
    let first: i64 = srv.requests()[0].param("since").unwrap().parse().unwrap();
    assert!((lo..=hi).contains(&first), "{first} not in {lo}..={hi}");
    // Second run from a start in 2024: the saved cursor goes out as Unix seconds too.
    sb.sync(
        &srv,
        &["--full-refresh", "--set", "start=2024-01-01T00:00:00Z"],
    )
    .expect_code(0);
    assert_eq!(srv.requests()[1].param("since"), Some("1704067200"));
    sb.sync(&srv, &["--set", "start=2024-01-01T00:00:00Z"])
        .expect_code(0);
    assert_eq!(srv.requests()[2].param("since"), Some("1714608000"));
}

#[test]
fn unix_cursor_sent_as_rfc3339_and_a_strftime_cursor_format() {
    let srv = serve(|r| match r.path.as_str() {
        "/unix" => Reply::json(r#"{"items": [{"id": 1, "ts": 1714521600}]}"#),
        _ => Reply::json(r#"{"items": [{"id": 1, "at": "2024-05-01 12:00:00"}]}"#),
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  unix:
    path: /unix
    records: $.items[*]
    primary_key: id
    incremental:
      cursor_field: ts
      cursor_type: unix_seconds
      param: from
      param_format: rfc3339
      start: "{{ now() | shift(years=-10) }}"
  strf:
    path: /strf
    records: $.items[*]
    primary_key: id
    incremental:
      cursor_field: at
      format: "%Y-%m-%d %H:%M:%S"
      param: after
      start: "2024-01-01T00:00:00Z"
"#,
    ));
    sb.sync(&srv, &[]).expect_code(0);
    // The RFC 3339 start is converted to each cursor's own form before it is sent.
    let first_strf = srv.param_seq("/strf", "after");
    assert_eq!(first_strf[0].as_deref(), Some("2024-01-01 00:00:00"));
    let first_unix = srv.param_seq("/unix", "from")[0].clone().unwrap();
    assert!(first_unix.ends_with('Z'), "{first_unix}");
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(
        srv.param_seq("/unix", "from")[1].as_deref(),
        Some("2024-05-01T00:00:00Z")
    );
    assert_eq!(
        srv.param_seq("/strf", "after")[1].as_deref(),
        Some("2024-05-01 12:00:00")
    );
}

#[test]
fn a_body_keeps_the_types_of_its_expressions_and_lists_come_from_config() {
    let srv = serve(|r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        match body["cursor"].as_str() {
            None => Reply::json(r#"{"items": [{"id": 1}], "next": "c2"}"#),
            Some(_) => Reply::json(r#"{"items": [{"id": 2}], "next": null}"#),
        }
    });
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  accounts: { type: array, default: [main] }\n  filter: { type: object, default: {} }",
        "",
        r#"
  items:
    path: /search
    method: POST
    records: $.items[*]
    params:
      accounts: "{{ config.accounts | join(',') }}"
    body:
      limit: "{{ page.limit }}"
      cursor: "{{ page.cursor }}"
      accounts: "{{ config.accounts }}"
      first: "{{ config.accounts[0] }}"
      filter: "{{ config.filter }}"
      label: "page {{ page.index }}"
    pagination: { kind: cursor, next: $.next, param: cursor, page_size: { param: size, value: 50 } }
"#,
    ));
    sb.sync_env(&srv, &["--set", r#"accounts=["acme", "globex"]"#], &[])
        .expect_code(0);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    let body = |i: usize| serde_json::from_slice::<Value>(&reqs[i].body).unwrap();
    assert_eq!(
        body(0),
        json!({"limit": 50, "cursor": null, "accounts": ["acme", "globex"], "first": "acme", "filter": {}, "label": "page 0"})
    );
    assert_eq!(body(1)["cursor"], json!("c2"));
    assert_eq!(reqs[0].param("accounts"), Some("acme,globex"));
}

#[test]
fn a_list_config_value_that_is_not_json_is_a_clear_error() {
    let srv = serve(|_| Reply::json(r#"{"items": []}"#));
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  accounts: { type: array }",
        "",
        "  items: { path: /items, records: \"$.items[*]\" }\n",
    ));
    sb.sync(&srv, &["--set", "accounts=acme,globex"])
        .expect_code(2)
        .expect_stderr(&["config.accounts must be a JSON list such as [\"a\", \"b\"]"]);
    assert!(srv.requests().is_empty());
    sb.sync_env(&srv, &[], &[])
        .expect_code(2)
        .expect_stderr(&["config.accounts is required"]);
}
