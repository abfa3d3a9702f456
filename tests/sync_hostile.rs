//! A hostile API against `runtime sync` (issue 11, item 8): control characters in what
//! it sends are escaped and cut in every message, values of the wrong type or size are
//! clear errors, and both extraction paths treat odd JSON alike. Also two operator
//! mistakes: a zero timeout and a secret too short to mask.

mod support;

use support::{Reply, Sandbox, serve, spec, spec_full};

/// Stderr holds no raw control character besides line ends, and no bidi override.
#[track_caller]
fn assert_clean(stderr: &str) {
    for c in stderr.chars() {
        let bad = (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c);
        assert!(!bad, "raw {c:?} in stderr:\n{stderr}");
    }
}

#[test]
fn a_cursor_with_control_characters_is_escaped_in_the_error() {
    // The same hostile cursor twice: the loop guard names it in its error.
    let srv = serve(|_| Reply::json(r#"{"items": [{"id": 1}], "next": "x\n\u001b[31m\u202e"}"#));
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
    run.expect_code(1)
        .expect_stderr(&["cursor `x\\n\\u{1b}[31m\\u{202e}` a second time"]);
    assert_clean(&run.stderr);
    // Sent as it came, percent-encoded in the query.
    assert_eq!(
        srv.param_seq("/items", "cursor")[1].as_deref(),
        Some("x\n\u{1b}[31m\u{202e}")
    );
}

#[test]
fn api_keys_in_a_warning_log_line_are_escaped() {
    let srv = serve(|_| Reply::json("{\"a\\nFAKE LINE\": 1, \"\\u001b[2Jb\": []}"));
    let sb = Sandbox::new();
    sb.spec(&spec(
        "  items: { path: /items, records: \"$.items[*]\" }\n",
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0)
        .expect_stderr(&["top-level keys are: a\\nFAKE LINE, \\u{1b}[2Jb"]);
    assert_clean(&run.stderr);
    assert!(!run.stderr.lines().any(|l| l.starts_with("FAKE LINE")));
}

#[test]
fn a_10_kb_error_body_is_cut() {
    let body = format!(
        "\u{1b}]0;pwned\u{7}{}{}",
        "E".repeat(5_000),
        "F".repeat(5_000)
    );
    let srv = serve(move |_| Reply::status(400, &body));
    let sb = Sandbox::new();
    sb.spec(&spec(
        "  items: { path: /items, records: \"$.items[*]\" }\n",
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "400 from GET",
        "; body: \\u{1b}]0;pwned\\u{7}EEEE",
        "E...",
    ]);
    assert!(!run.stderr.contains("FFFF"), "{}", run.stderr);
    assert!(
        run.stderr.len() < 2_000,
        "{} bytes:\n{}",
        run.stderr.len(),
        run.stderr
    );
    assert_clean(&run.stderr);
}

#[test]
fn a_cursor_of_the_wrong_type_names_the_path_and_the_type() {
    for (next, ty) in [
        (r#"{"after": "c2"}"#, "an object"),
        (r#"["c2"]"#, "an array"),
        ("true", "a boolean"),
    ] {
        let body = format!(r#"{{"items": [{{"id": 1}}], "meta": {{"next": {next}}}}}"#);
        let srv = serve(move |_| Reply::json(body.clone()));
        let sb = Sandbox::new();
        sb.spec(&spec(
            r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: cursor, next: $.meta.next, param: cursor }
"#,
        ));
        let run = sb.sync(&srv, &[]);
        run.expect_code(1).expect_stderr(&[
            "stream items failed",
            &format!("the next page value at $.meta.next is {ty}"),
        ]);
        assert_eq!(run.row("items").status, "FAILED");
    }
}

#[test]
fn a_negative_total_names_the_path() {
    let srv = serve(|_| Reply::json(r#"{"total": -1, "items": [{"id": 1}, {"id": 2}]}"#));
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: offset, limit: 2, total: $.total }
"#,
    ));
    sb.sync(&srv, &[])
        .expect_code(1)
        .expect_stderr(&["the count at $.total is the number -1"]);
}

#[test]
fn an_offset_past_64_bits_is_a_clear_error() {
    // Full pages of the limit: the next offset would not fit.
    let srv = serve(|_| {
        let items: Vec<String> = (1..=10).map(|i| format!(r#"{{"id": {i}}}"#)).collect();
        Reply::json(format!(
            r#"{{"total": 18446744073709551615, "items": [{}]}}"#,
            items.join(",")
        ))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: offset, limit: 10, start: 18446744073709551610, total: $.total }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1)
        .expect_stderr(&["the next offset (18446744073709551610 + 10) does not fit in 64 bits"]);
    assert!(!run.stderr.contains("internal error"), "{}", run.stderr);
}

#[test]
fn total_pages_at_the_maximum_neither_panics_nor_stops_early() {
    let srv = serve(|r| {
        let page = r.num("page", 1);
        let items = if page <= 2 {
            format!(r#"{{"id": {page}}}"#)
        } else {
            String::new()
        };
        Reply::json(format!(
            r#"{{"total_pages": 18446744073709551615, "items": [{items}]}}"#
        ))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: page_number, start: 1, total_pages: $.total_pages }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    assert_eq!(sb.ids("items"), vec![1, 2]);
}

#[test]
fn a_zero_timeout_is_refused_by_validate() {
    let sb = Sandbox::new();
    let path = sb.write(
        "zero.yaml",
        "version: 1\nname: t\nhttp:\n  base_url: \"https://x\"\n  timeout: 0s\nstreams:\n  a: { path: /a, records: \"$[*]\" }\n",
    );
    let run = sb.run(&["validate", path.to_str().unwrap()]);
    run.expect_code(2)
        .expect_stdout(&["zero.yaml:5:12: error: `0s` is zero", "zero timeout"]);
}

#[test]
fn a_secret_too_short_to_mask_is_a_warning() {
    let srv = serve(|_| Reply::json(r#"{"items": [{"id": 1}]}"#));
    let sb = Sandbox::new();
    sb.spec(&spec_full(
        "  api_key: { type: string, secret: true }",
        "  auth: { kind: bearer, token: \"{{ config.api_key }}\" }",
        "  items: { path: /items, records: \"$.items[*]\" }\n",
    ));
    let run = sb.sync(&srv, &["--set", "api_key=k3y"]);
    run.expect_code(0).expect_stderr(&[
        "config.api_key is a secret of fewer than 4 characters: too short to mask safely",
    ]);
    run.expect_no_leak("k3y");
    let long = sb.sync(&srv, &["--set", "api_key=long-enough"]);
    long.expect_code(0);
    assert!(!long.stderr.contains("too short"), "{}", long.stderr);
}

/// One stream through the fast path (`$.data[*]`), one through the general engine (a
/// filter); same server, same pages.
fn both_paths(body: &'static str) -> (Sandbox, support::Run) {
    let srv = serve(move |_| Reply::json(body));
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  fast:
    path: /d
    records: $.data[*]
    pagination: { kind: cursor, next: $.next, param: c }
  general:
    path: /d
    records: $.data[?@.id]
    pagination: { kind: cursor, next: $.next, param: c }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    (sb, run)
}

#[test]
fn duplicate_keys_give_the_same_output_on_both_paths() {
    let (sb, run) = both_paths(
        r#"{"data": [{"id": 1, "id": 2, "o": {"k": 1, "k": 2}}, {"id": 3}], "data": [{"id": 4, "v": 1, "v": 2}], "next": "x", "next": null}"#,
    );
    run.expect_code(0);
    assert_eq!(sb.lines("fast"), sb.lines("general"));
    assert_eq!(sb.lines("fast"), vec![r#"{"id":4,"v":2}"#]);
}

#[test]
fn lone_surrogates_are_refused_on_both_paths() {
    for body in [
        r#"{"data": [{"id": 1, "s": "\ud800"}], "next": null}"#,
        r#"{"data": [{"id": 1}], "next": "\udc00"}"#,
    ] {
        let (_, run) = both_paths(body);
        run.expect_code(1);
        let why = |stream: &str| {
            run.stderr
                .lines()
                .find(|l| l.starts_with(&format!("error: stream {stream} failed")))
                .and_then(|l| l.split_once("failed: "))
                .map(|(_, m)| m.to_owned())
                .unwrap_or_else(|| panic!("no error for {stream}:\n{}", run.stderr))
        };
        assert_eq!(why("fast"), why("general"));
        assert!(
            why("fast").contains("lone UTF-16 surrogate escape"),
            "{}",
            why("fast")
        );
    }
}
