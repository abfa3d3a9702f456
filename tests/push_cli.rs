//! The `runtime push` command line: input from a file or standard input, a line that is not
//! JSON, an unknown target, the default results file, and secrets kept out of every output.

mod push_support;
mod support;

use demo_api::Fault;
use push_support::{
    TOKEN, demo, jsonl, order, orders, orders_target, posts, push, push_as, results,
    results_by_line, results_path, sandbox, spec, summary,
};
use serde_json::Value;
use support::{Run, Sandbox};

/// (line, key, outcome) of every result, sorted by line.
fn outcomes(rows: &[Value]) -> Vec<(u64, String, String)> {
    let mut v: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["key"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn input_from_a_file_and_from_stdin_give_the_same_results() {
    let records = orders(6);
    let target = orders_target("    concurrency: 3");

    let demo_a = demo();
    let sb_a = sandbox(&spec("", &target), &records);
    let run = push(&sb_a, &demo_a, "create_orders", &[]);
    run.expect_code(0)
        .expect_stdout(&["push create_orders:", "results.jsonl"]);
    let from_file = outcomes(&results(&sb_a));
    assert_eq!(from_file.len(), 6);

    // `--input -` (also the default), no `--results`: output/<connector>/push-<target>...
    let demo_b = demo();
    let sb_b = Sandbox::new();
    let spec_path = sb_b.spec(&spec("", &target));
    let base = format!("base_url={}", demo_b.base_url());
    let key = format!("api_key={TOKEN}");
    let run = sb_b.run_stdin(
        &[
            "push",
            spec_path.to_str().unwrap(),
            "--target",
            "create_orders",
            "--input",
            "-",
            "--set",
            &base,
            "--set",
            &key,
        ],
        &[],
        jsonl(&records).as_bytes(),
    );
    run.expect_code(0);
    let default = sb_b
        .path()
        .join("output/shop/push-create_orders.results.jsonl");
    let text = std::fs::read_to_string(&default)
        .unwrap_or_else(|e| panic!("no default results file {}: {e}", default.display()));
    let from_stdin: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(outcomes(&from_stdin), from_file);
    assert_eq!(demo_b.created_count(), 6);
    assert_eq!(summary(&run).created, 6);
}

#[test]
fn a_line_that_is_not_json_is_reported_with_its_number_and_the_rest_goes_on() {
    let demo = demo();
    let sb = sandbox(&spec("", &orders_target("    concurrency: 2")), &[]);
    let input = format!(
        "{}\n{{\"customer_id\": 3, \"external_id\": \n\n{}\n",
        order(1),
        order(4)
    );
    sb.write("input.jsonl", &input);
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(1);
    let res = results_by_line(&sb);
    assert_eq!(
        res.keys().copied().collect::<Vec<_>>(),
        [1, 2, 4],
        "the blank line 3 is not a record"
    );
    assert_eq!(res[&1]["outcome"], "created");
    assert_eq!(res[&4]["outcome"], "created");
    let bad = &res[&2];
    assert_eq!(bad["outcome"], "invalid", "{bad}");
    let err = bad["error"].as_str().unwrap();
    assert!(
        err.contains("line 2") && err.contains("not JSON"),
        "error: {err}"
    );
    assert_eq!(posts(&demo).len(), 2);
    let s = summary(&run);
    assert_eq!((s.read, s.created, s.invalid), (3, 2, 1), "{s:?}");
}

#[test]
fn an_unknown_target_is_exit_2_naming_the_targets() {
    let demo = demo();
    let targets = format!(
        "{}{}",
        orders_target(""),
        orders_target("").replacen("create_orders", "refund_orders", 1)
    );
    let sb = sandbox(&spec("", &targets), &orders(2));
    let run = push(&sb, &demo, "create_order", &[]);
    run.expect_code(2)
        .expect_stderr(&["create_order", "create_orders", "refund_orders"]);
    assert!(posts(&demo).is_empty());
    assert!(!results_path(&sb).exists(), "a results file was created");

    // A spec without push targets says so.
    let sb = sandbox(&spec("", "  {}\n").replace("push:\n  {}\n", ""), &orders(1));
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(2)
        .expect_stderr(&["create_orders", "no `push` section"]);
    assert!(posts(&demo).is_empty());
}

#[test]
fn a_missing_input_file_is_a_clear_error() {
    let demo = demo();
    let sb = sandbox(&spec("", &orders_target("")), &[]);
    std::fs::remove_file(sb.path().join("input.jsonl")).unwrap();
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(2).expect_stderr(&["input.jsonl"]);
    assert!(posts(&demo).is_empty());
    assert!(
        !results_path(&sb).exists(),
        "an empty results file was left behind"
    );
}

/// Fails if `secret` is in stdout, stderr or the results file.
#[track_caller]
fn assert_no_secret(sb: &Sandbox, run: &Run, secret: &str) {
    run.expect_no_leak(secret);
    let text = std::fs::read_to_string(results_path(sb)).unwrap_or_default();
    assert!(
        !text.contains(secret),
        "the secret is in the results file:\n{text}"
    );
}

#[test]
fn the_bearer_token_never_reaches_stdout_stderr_or_the_results_file() {
    let demo = demo();
    let records = orders(4);
    let target = orders_target("    concurrency: 1\n    on_conflict: skip");
    let sb = sandbox(&spec("", &target), &records);

    // Debug logging, a retried 503 and an error answer that quotes the token back.
    demo.push_fault("POST /orders", Fault::status(503));
    demo.push_fault(
        "POST /orders",
        Fault::Status {
            code: 400,
            headers: vec![],
            body: format!(
                r#"{{"error": "bad_request", "message": "token {TOKEN} may not create"}}"#
            ),
        },
    );
    let run = push_as(
        &sb,
        &demo,
        "create_orders",
        TOKEN,
        &[],
        &[("RUNTIME_LOG", "debug")],
    );
    run.expect_code(1);
    assert!(
        posts(&demo).iter().all(|r| r.authorized),
        "the token was not sent"
    );
    let res = results(&sb);
    let failed: Vec<_> = res.iter().filter(|r| r["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{res:?}");
    assert_eq!(failed[0]["status"], 400);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("may not create"),
        "the error quotes the answer: {}",
        failed[0]
    );
    assert_no_secret(&sb, &run, TOKEN);

    // A wrong token: every record fails with 401, and the wrong token is not printed either.
    let wrong = "wrong-secret-token-55d2e1";
    let sb = sandbox(&spec("", &target), &records);
    let run = push_as(
        &sb,
        &demo,
        "create_orders",
        wrong,
        &[],
        &[("RUNTIME_LOG", "debug")],
    );
    run.expect_code(1);
    let res = results(&sb);
    assert_eq!(res.len(), 4);
    assert!(
        res.iter()
            .all(|r| r["outcome"] == "failed" && r["status"] == 401),
        "{res:?}"
    );
    assert!(
        res[0]["error"].as_str().unwrap().contains("config.api_key"),
        "the error names the setting: {}",
        res[0]
    );
    assert_no_secret(&sb, &run, wrong);
}
