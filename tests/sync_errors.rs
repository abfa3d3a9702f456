//! Bad input to `runtime sync`: configuration, unreachable hosts, refused credentials,
//! bodies that are not what the spec expects, specs that do not load. Each gives the
//! right exit status and a message that names the problem.

mod support;

use support::{Reply, Sandbox, closed_port, recs, serve, spec, spec_full};

const ITEMS: &str = r#"
  items:
    path: /items
    records: $.items[*]
"#;

fn bearer_spec() -> String {
    spec_full(
        "  api_key: { type: string, secret: true, env: T_ERRORS_API_KEY_3 }",
        r#"  auth: { kind: bearer, token: "{{ config.api_key }}" }"#,
        ITEMS,
    )
}

#[test]
fn a_missing_required_config_key_names_the_key_and_its_variable() {
    let srv = serve(|_| Reply::json(r#"{"items": []}"#));
    let sb = Sandbox::new();
    sb.spec(&bearer_spec());
    let run = sb.sync(&srv, &[]);
    run.expect_code(2).expect_stderr(&[
        "spec.yaml",
        "config.api_key is required",
        "--set api_key=",
        "T_ERRORS_API_KEY_3",
    ]);
    assert!(srv.requests().is_empty());
    assert!(!sb.has_output("items"));
}

#[test]
fn an_unknown_set_key_is_a_usage_error() {
    let srv = serve(|_| Reply::json(r#"{"items": []}"#));
    let sb = Sandbox::new();
    sb.spec(&bearer_spec());
    let run = sb.sync(&srv, &["--set", "api_key=k", "--set", "api_kye=k"]);
    run.expect_code(2)
        .expect_stderr(&["config.api_kye is not declared", "did you mean `api_key`?"]);
    assert!(srv.requests().is_empty());
}

#[test]
fn an_unreachable_host_fails_with_the_url() {
    let port = closed_port();
    let sb = Sandbox::new();
    let spec_path = sb.spec(&spec(ITEMS));
    let out = sb.out();
    let base = format!("base_url=http://127.0.0.1:{port}/api");
    let run = sb.run(&[
        "sync",
        spec_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        &base,
    ]);
    run.expect_code(1).expect_stderr(&[
        "stream items failed",
        &format!("GET http://127.0.0.1:{port}/api/items"),
        "could not connect",
        "gave up after 3 attempts",
    ]);
    assert!(!sb.has_output("items"));
    assert_eq!(run.row("items").requests, 3);
}

#[test]
fn a_401_says_which_config_key_was_rejected() {
    let srv = serve(|_| Reply::status(401, "invalid token"));
    let sb = Sandbox::new();
    sb.spec(&bearer_spec());
    let run = sb.sync(&srv, &["--set", "api_key=wrong-key-1"]);
    run.expect_code(1)
        .expect_stderr(&[&format!(
            "401 from GET {}/items: the API rejected the credentials in config.api_key",
            srv.url()
        )])
        .expect_no_leak("wrong-key-1");
    assert_eq!(srv.requests().len(), 1, "a 401 is not retried");
}

#[test]
fn a_404_points_at_the_path() {
    let srv = serve(|_| Reply::status(404, "no route"));
    let sb = Sandbox::new();
    sb.spec(&spec(ITEMS));
    sb.sync(&srv, &[]).expect_code(1).expect_stderr(&[
        &format!("404 from GET {}/items", srv.url()),
        "check the stream's `path`",
    ]);
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn a_500_that_never_ends_exhausts_the_retries() {
    let srv = serve(|_| Reply::status(500, "oops"));
    let sb = Sandbox::new();
    sb.spec(&spec(ITEMS));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1)
        .expect_stderr(&["gave up after 3 attempts", "500 from GET"]);
    assert_eq!(srv.requests().len(), 3);
    let row = run.row("items");
    assert_eq!(
        (row.status.as_str(), row.requests, row.retries),
        ("FAILED", 3, 2)
    );
}

#[test]
fn a_records_path_that_matches_nothing_warns_with_the_body_keys() {
    let srv = serve(|_| {
        Reply::json(format!(
            r#"{{"data": [{}], "meta": {{"count": 2}}}}"#,
            recs([1, 2])
        ))
    });
    let sb = Sandbox::new();
    sb.spec(&spec(ITEMS));
    let run = sb.sync(&srv, &[]);
    run.expect_code(0).expect_stderr(&[
        "records path $.items[*] matched nothing",
        "top-level keys are: data, meta",
    ]);
    assert_eq!(sb.text("items"), "");
    assert_eq!(run.row("items").records, 0);
}

#[test]
fn a_body_that_is_not_json_names_the_content_type_and_first_bytes() {
    let srv = serve(|_| {
        Reply::bytes(
            "text/html; charset=utf-8",
            "<html><body>Service temporarily down</body></html>",
        )
    });
    let sb = Sandbox::new();
    sb.spec(&spec(ITEMS));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        &format!("GET {}/items", srv.url()),
        "not JSON",
        "content-type: text/html; charset=utf-8",
        "<html><body>Service temporarily down",
    ]);
    assert!(!sb.has_output("items"));
}

#[test]
fn a_body_that_is_not_utf8_is_a_clear_error() {
    let body: Vec<u8> = b"{\"items\": [{\"name\": \"caf\xe9\"}]}".to_vec();
    let bad_at = body.iter().position(|b| *b == 0xe9).unwrap();
    let len = body.len();
    let srv = serve(move |_| Reply::bytes("application/json; charset=iso-8859-1", body.clone()));
    let sb = Sandbox::new();
    sb.spec(&spec(ITEMS));
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        &format!("GET {}/items", srv.url()),
        &format!("not UTF-8 (byte {bad_at} of {len}"),
        "charset=iso-8859-1",
    ]);
    assert!(!sb.has_output("items"));
}

#[test]
fn a_spec_that_does_not_load_is_exit_2_with_file_line_and_column() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/sync/broken.yaml"
    );
    let sb = Sandbox::new();
    let out = sb.out();
    let run = sb.run(&[
        "sync",
        fixture,
        "--out",
        out.to_str().unwrap(),
        "--set",
        "base_url=http://127.0.0.1:9",
    ]);
    run.expect_code(2)
        .expect_stderr(&["broken.yaml:12:5", "pagnation"]);
    assert!(!out.exists());
}

#[test]
fn a_spec_file_that_does_not_exist_is_exit_2() {
    let sb = Sandbox::new();
    let run = sb.run(&["sync", "nowhere.yaml"]);
    run.expect_code(2)
        .expect_stderr(&["nowhere.yaml", "cannot read"]);
}
