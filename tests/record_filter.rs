//! A stream's `filter` (issue 12, item 2), end to end: dropped records are not written, a
//! dropped record still moves the incremental cursor (a filtered stream never stalls), a
//! filter that reads a missing field is a clear error, and `validate` checks it.

mod support;

use support::{Reply, Sandbox, serve, spec};

const STREAM: &str = r#"
  events:
    path: /events
    records: $.items[*]
    primary_key: id
    filter: record.type not in ["internal", "test"] and record.amount >= config_min
    incremental:
      cursor_field: updated_at
      param: since
      start: "2024-01-01T00:00:00Z"
"#;

fn events() -> &'static str {
    r#"{"items": [
        {"id": 1, "type": "sale", "amount": 5, "updated_at": "2024-02-01T00:00:00Z"},
        {"id": 2, "type": "internal", "amount": 9, "updated_at": "2024-02-02T00:00:00Z"},
        {"id": 3, "type": "sale", "amount": 1, "updated_at": "2024-02-03T00:00:00Z"},
        {"id": 4, "type": "test", "amount": 7, "updated_at": "2024-02-04T00:00:00Z"}
    ]}"#
}

#[test]
fn dropped_records_are_not_written_but_move_the_cursor() {
    let srv = serve(|_| Reply::json(events()));
    let sb = Sandbox::new();
    sb.spec(&spec(&STREAM.replace("config_min", "2")));
    sb.sync(&srv, &[]).expect_code(0);
    let out = std::fs::read_to_string(sb.out().join("events.jsonl")).unwrap();
    let ids: Vec<&str> = out.lines().map(|l| &l[..8]).collect();
    assert_eq!(ids, vec![r#"{"id": 1"#], "{out}");
    // The newest record was filtered out, yet the next run starts after it.
    sb.sync(&srv, &[]).expect_code(0);
    assert_eq!(
        srv.param_seq("/events", "since")[1].as_deref(),
        Some("2024-02-04T00:00:00Z")
    );
    let out = std::fs::read_to_string(sb.out().join("events.jsonl")).unwrap();
    assert_eq!(
        out.lines().count(),
        1,
        "nothing new, nothing repeated: {out}"
    );
}

#[test]
fn a_filter_reading_a_missing_field_is_a_clear_error() {
    let srv =
        serve(|_| Reply::json(r#"{"items": [{"id": 1, "updated_at": "2024-02-01T00:00:00Z"}]}"#));
    let sb = Sandbox::new();
    sb.spec(&spec(&STREAM.replace("config_min", "2")));
    sb.sync(&srv, &[])
        .expect_code(1)
        .expect_stderr(&["streams.events.filter `record.type not in"]);
    // Nothing saved: the next run starts from the same place.
    assert!(
        !sb.out().join("state.json").exists() || {
            let s = std::fs::read_to_string(sb.out().join("state.json")).unwrap();
            !s.contains("2024-02-01")
        }
    );
}

#[test]
fn validate_checks_the_filter_at_its_position() {
    let sb = Sandbox::new();
    let path = sb.spec(&spec(&STREAM.replace("config_min", "recrd.amount")));
    sb.run(&["validate", path.to_str().unwrap()])
        .expect_code(2)
        .expect_stdout(&[
            "spec.yaml:13:74: error: unknown variable `recrd`",
            "did you mean `record`?",
        ]);
    let path = sb.spec(&spec(&STREAM.replace(
        r#"record.type not in ["internal", "test"] and record.amount >= config_min"#,
        r#""{{ record.type != 'x' }}""#,
    )));
    sb.run(&["validate", path.to_str().unwrap()])
        .expect_code(2)
        .expect_stdout(&["a condition is an expression without braces"]);
}
