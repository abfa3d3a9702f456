//! The command line of `runtime sync`: `--limit`, `--streams`, `--concurrency`, the
//! summary table and its counters, retries, `--log-format json`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use support::{Logged, Reply, Sandbox, rec_lines, recs, serve, spec};

/// 10 records in offset pages at any path.
fn offset_api(r: &Logged) -> Reply {
    let offset = r.num("offset", 0);
    let limit = r.num("limit", 100);
    let ids: Vec<usize> = (offset + 1..=(offset + limit).min(10)).collect();
    Reply::json(format!(r#"{{"items": [{}]}}"#, recs(ids)))
}

const THREE: &str = r#"
  alpha:
    path: /alpha
    records: $.items[*]
    pagination: { kind: offset, limit: 3 }
  beta:
    path: /beta
    records: $.items[*]
    pagination: { kind: offset, limit: 3 }
  gamma:
    path: /gamma
    records: $.items[*]
    pagination: { kind: offset, limit: 3 }
"#;

#[test]
fn limit_caps_the_records_of_every_stream() {
    let srv = serve(offset_api);
    let sb = Sandbox::new();
    sb.spec(&spec(THREE));
    let run = sb.sync(&srv, &["--limit", "5"]);
    run.expect_code(0);
    for s in ["alpha", "beta", "gamma"] {
        assert_eq!(sb.lines(s), rec_lines(1..=5), "{s}");
        assert_eq!(srv.requests_to(&format!("/{s}")).len(), 2, "{s}");
        let row = run.row(s);
        assert_eq!((row.records, row.pages, row.requests), (5, 2, 2), "{s}");
    }
}

#[test]
fn limit_reached_at_a_page_end_asks_for_no_further_page() {
    let srv = serve(offset_api);
    let sb = Sandbox::new();
    sb.spec(&spec(THREE));
    sb.sync(&srv, &["--limit", "3", "--streams", "alpha"])
        .expect_code(0);
    assert_eq!(sb.lines("alpha"), rec_lines(1..=3));
    assert_eq!(
        srv.param_seq("/alpha", "offset"),
        [Some("0".to_owned())],
        "the limit was reached on the first page; a second request is wasted"
    );
}

#[test]
fn streams_option_selects_streams() {
    let srv = serve(offset_api);
    let sb = Sandbox::new();
    sb.spec(&spec(THREE));
    let run = sb.sync(&srv, &["--streams", "gamma,alpha"]);
    run.expect_code(0);
    assert_eq!(sb.out_files(), ["alpha.jsonl", "gamma.jsonl"]);
    assert!(srv.requests_to("/beta").is_empty());
    assert_eq!(sb.lines("alpha"), rec_lines(1..=10));
    assert_eq!(sb.lines("gamma"), rec_lines(1..=10));
    assert!(
        !run.stdout.lines().any(|l| l.starts_with("beta ")),
        "{}",
        run.stdout
    );
}

#[test]
fn an_unknown_stream_name_is_a_usage_error_with_a_suggestion() {
    let srv = serve(offset_api);
    let sb = Sandbox::new();
    sb.spec(&spec(THREE));
    let run = sb.sync(&srv, &["--streams", "alpha,gamam"]);
    run.expect_code(2)
        .expect_stderr(&["no stream named `gamam`", "did you mean `gamma`?"]);
    assert!(srv.requests().is_empty());
    assert!(sb.out_files().is_empty());
}

#[test]
fn concurrency_one_runs_every_stream() {
    let srv = serve(offset_api);
    let sb = Sandbox::new();
    sb.spec(&spec(THREE));
    let run = sb.sync(&srv, &["--concurrency", "1"]);
    run.expect_code(0);
    for s in ["alpha", "beta", "gamma"] {
        assert_eq!(sb.lines(s), rec_lines(1..=10), "{s}");
        assert_eq!(run.row(s).requests, 4);
    }
    // One stream at a time: each stream's requests are contiguous.
    let order: Vec<String> = srv.requests().iter().map(|r| r.path.clone()).collect();
    let mut runs = order.clone();
    runs.dedup();
    assert_eq!(runs.len(), 3, "streams interleaved: {order:?}");
}

#[test]
fn a_503_is_retried_and_counted_in_the_summary() {
    let calls = AtomicUsize::new(0);
    let srv = serve(move |r| {
        // The second request (offset 3) fails once.
        if r.path == "/alpha"
            && r.num("offset", 0) == 3
            && calls.fetch_add(1, Ordering::SeqCst) == 0
        {
            return Reply::status(503, "busy");
        }
        offset_api(r)
    });
    let sb = Sandbox::new();
    sb.spec(&spec(THREE));
    let run = sb.sync(&srv, &["--streams", "alpha,beta"]);
    run.expect_code(0)
        .expect_stderr(&["503 from GET", "/alpha?offset=3&limit=3", "attempt 2/3"]);
    assert_eq!(sb.lines("alpha"), rec_lines(1..=10));
    assert_eq!(
        srv.param_seq("/alpha", "offset"),
        [
            Some("0".into()),
            Some("3".into()),
            Some("3".into()),
            Some("6".into()),
            Some("9".into())
        ]
    );
    let a = run.row("alpha");
    assert_eq!(a.status, "ok");
    assert_eq!((a.records, a.pages, a.requests, a.retries), (10, 4, 5, 1));
    let b = run.row("beta");
    assert_eq!((b.records, b.pages, b.requests, b.retries), (10, 4, 4, 0));
}

#[test]
fn summary_table_lists_every_stream_with_its_counts() {
    let srv = serve(|r| match r.path.as_str() {
        "/one" => Reply::json(format!("[{}]", recs(1..=2))),
        _ => offset_api(r),
    });
    let sb = Sandbox::new();
    sb.spec(&spec(
        r#"
  one:
    path: /one
    records: $[*]
  many:
    path: /many
    records: $.items[*]
    pagination: { kind: offset, limit: 4 }
"#,
    ));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0);
    let one = run.row("one");
    assert_eq!(
        (
            one.status.as_str(),
            one.records,
            one.pages,
            one.requests,
            one.retries
        ),
        ("ok", 2, 1, 1, 0)
    );
    let many = run.row("many");
    assert_eq!((many.records, many.pages, many.requests), (10, 3, 3));
    // Rows in spec order, after the header and its rule.
    let lines: Vec<&str> = run.stdout.lines().collect();
    let h = lines.iter().position(|l| l.starts_with("stream ")).unwrap();
    assert!(lines[h + 1].chars().all(|c| c == '-'));
    assert!(lines[h + 2].starts_with("one "));
    assert!(lines[h + 3].starts_with("many "));
}

#[test]
fn log_format_json_writes_one_json_object_per_stderr_line() {
    let srv = serve(offset_api);
    let sb = Sandbox::new();
    let spec_path = sb.spec(&spec(THREE));
    let out = sb.out();
    let base = format!("base_url={}", srv.url());
    let run = sb.run(&[
        "--log-format",
        "json",
        "sync",
        spec_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        &base,
        "--streams",
        "alpha",
    ]);
    run.expect_code(0);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v.get("level").is_some(), "{l}");
    }
    assert!(
        run.stderr.contains("alpha: done, 10 records"),
        "{}",
        run.stderr
    );
}
