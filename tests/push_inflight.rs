//! Keys that repeat within one input are sent once and the repeats reported; a 409 that says
//! the same key is still in flight is waited out with backoff, a bounded number of times.

mod push_support;
mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use push_support::{
    TOKEN, demo_with, order, orders, orders_target, posts, posts_by_key, push, push_to,
    results_by_line, sandbox, spec, summary,
};
use serde_json::Value;
use support::{Reply, serve};

/// The demo API's answer to a key still being processed.
const IN_FLIGHT: &str = r#"{"error": "request_in_progress", "message": "a request with this Idempotency-Key is still being processed; retry later"}"#;

#[test]
fn duplicate_lines_are_sent_once_each_and_reported() {
    // Each order twice in a row, then all once more: at concurrency 8 against an API that
    // takes 150 ms per order, a repeat sent at once would find its key in flight (409) and,
    // under the default `on_conflict: stop`, leave most records unsent.
    let demo = demo_with(Duration::from_millis(150));
    let mut records = Vec::new();
    for n in 1..=20 {
        records.push(order(n));
        records.push(order(n));
    }
    records.extend(orders(20));
    let sb = sandbox(&spec("", &orders_target("    concurrency: 8")), &records);
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(0).expect_no_leak(TOKEN);

    let by_key = posts_by_key(&demo);
    assert_eq!(by_key.len(), 20, "every distinct record is sent");
    for (key, reqs) in &by_key {
        let statuses: Vec<u16> = reqs.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [201], "key {key} was sent more than once");
    }
    assert_eq!(demo.created_count(), 20);

    let res = results_by_line(&sb);
    assert_eq!(res.len(), 60, "every line has an outcome");
    let mut first_of: HashMap<String, u64> = HashMap::new();
    for (line, r) in &res {
        let key = r["key"].as_str().unwrap().to_owned();
        match first_of.get(&key) {
            None => {
                assert_eq!(r["outcome"], "created", "line {line}: {r}");
                first_of.insert(key, *line);
            }
            Some(first) => {
                assert_eq!(r["outcome"], "duplicate_in_input", "line {line}: {r}");
                assert_eq!(r["first_line"], *first, "line {line}: {r}");
                assert!(r.get("status").is_none(), "line {line} was sent: {r}");
                let err = r["error"].as_str().unwrap();
                assert!(err.contains(&format!("line {first}")), "{err}");
            }
        }
    }
    let s = summary(&run);
    assert_eq!(
        (s.read, s.created, s.duplicates, s.conflicts, s.not_sent),
        (60, 20, 40, 0, 0),
        "{s:?}"
    );
    assert_eq!((s.requests, s.retries), (20, 0), "{s:?}");

    // A rerun skips what is done, duplicates included.
    demo.clear_requests();
    let again = push(&sb, &demo, "create_orders", &[]);
    again.expect_code(0);
    assert!(posts(&demo).is_empty());
    let s = summary(&again);
    assert_eq!((s.read, s.done, s.duplicates), (60, 60, 0), "{s:?}");
}

/// Request bodies received, by idempotency key.
type Bodies = Arc<Mutex<HashMap<String, Vec<Vec<u8>>>>>;

/// A server whose `POST /orders` answers `409 in flight` to the first `busy` requests of
/// each key, then 201; it logs the bodies it got per key.
fn busy_server(busy: usize) -> (support::Server, Bodies) {
    let seen: Bodies = Arc::default();
    let log = seen.clone();
    let srv = serve(move |r| {
        let key = r.header("idempotency-key").unwrap_or("").to_owned();
        let mut seen = log.lock().unwrap();
        let bodies = seen.entry(key).or_default();
        bodies.push(r.body.clone());
        if bodies.len() <= busy {
            Reply::json(IN_FLIGHT).with_status(409)
        } else {
            Reply::json(format!(r#"{{"id": {}}}"#, bodies.len())).with_status(201)
        }
    });
    (srv, seen)
}

#[test]
fn a_409_for_a_key_in_flight_is_retried_with_backoff_then_created() {
    let (srv, seen) = busy_server(2);
    let target = orders_target("    concurrency: 2");
    let sb = sandbox(&spec("", &target), &orders(3));
    let run = push_to(&sb, &srv.url(), "create_orders", TOKEN, &[], &[]);
    run.expect_code(0);
    let res = results_by_line(&sb);
    for (line, r) in &res {
        assert_eq!(r["outcome"], "created", "line {line}: {r}");
        assert_eq!(r["status"], 201, "line {line}: {r}");
        assert_eq!(r["id"], 3, "line {line}: the third request created it: {r}");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for (key, bodies) in seen.iter() {
        assert_eq!(bodies.len(), 3, "key {key}: two 409s, then 201");
        assert!(
            bodies.iter().all(|b| b == &bodies[0]),
            "key {key}: the retry sent another body"
        );
    }
    let s = summary(&run);
    assert_eq!(
        (s.created, s.conflicts, s.requests, s.retries),
        (3, 0, 9, 6),
        "{s:?}"
    );
    assert!(
        run.stderr.contains("still in flight"),
        "the wait is logged: {}",
        run.stderr
    );
}

#[test]
fn a_key_in_flight_for_too_long_is_reported_after_five_retries() {
    let (srv, seen) = busy_server(usize::MAX);
    // The default `on_conflict: stop`: the record after it is not sent.
    let target = orders_target("    concurrency: 1");
    let sb = sandbox(&spec("", &target), &orders(2));
    let started = Instant::now();
    let run = push_to(&sb, &srv.url(), "create_orders", TOKEN, &[], &[]);
    run.expect_code(1);
    let res = results_by_line(&sb);
    assert_eq!(res.len(), 1, "{res:?}");
    let r = &res[&1];
    assert_eq!(r["outcome"], "conflict", "{r}");
    assert_eq!(r["status"], 409, "{r}");
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains("still in flight after 5 retries"),
        "the error says why: {err}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "line 2 was sent after a stop"
    );
    assert_eq!(srv.requests().len(), 6, "the first request and 5 retries");
    let s = summary(&run);
    assert_eq!(
        (s.conflicts, s.not_sent, s.requests, s.retries),
        (1, 1, 6, 5),
        "{s:?}"
    );
    // Backoff of http.retry (10 ms doubling to 50 ms): bounded, not a minute.
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// A server whose `POST /orders` answers each key's requests with `script` in turn (then
/// 201); the 409s say nothing about a key in flight.
fn scripted_server(script: &'static [u16]) -> (support::Server, Bodies) {
    let seen: Bodies = Arc::default();
    let log = seen.clone();
    let srv = serve(move |r| {
        let key = r.header("idempotency-key").unwrap_or("").to_owned();
        let mut seen = log.lock().unwrap();
        let bodies = seen.entry(key).or_default();
        bodies.push(r.body.clone());
        match script.get(bodies.len() - 1) {
            Some(409) => Reply::json(r#"{"error": "conflict", "message": "duplicate request"}"#)
                .with_status(409),
            Some(s) => Reply::status(*s, "busy"),
            None => Reply::json(format!(r#"{{"id": {}}}"#, bodies.len())).with_status(201),
        }
    });
    (srv, seen)
}

#[test]
fn a_409_answering_our_own_retry_is_waited_out_though_its_body_says_nothing() {
    // The first attempt got a 503 (a gateway's, say: the API may still be working on it), so
    // the HTTP layer sent the same key again; the 409 that answers that retry is the first
    // attempt still in flight, whatever its body says: waited out, then created.
    let (srv, seen) = scripted_server(&[503, 409]);
    let sb = sandbox(&spec("", &orders_target("    concurrency: 1")), &orders(1));
    let run = push_to(&sb, &srv.url(), "create_orders", TOKEN, &[], &[]);
    run.expect_code(0);
    let res = results_by_line(&sb);
    assert_eq!(res[&1]["outcome"], "created", "{res:?}");
    assert_eq!(res[&1]["id"], 3, "{res:?}");
    let seen = seen.lock().unwrap();
    let bodies = seen.values().next().unwrap();
    assert_eq!(bodies.len(), 3, "503, 409, then 201");
    let s = summary(&run);
    assert_eq!((s.created, s.requests, s.retries), (1, 3, 2), "{s:?}");
}

#[test]
fn a_409_to_a_first_attempt_that_says_nothing_of_a_key_in_flight_is_never_retried() {
    // The same 409, but in answer to the key's first request: a conflict, reported at once.
    let (srv, seen) = scripted_server(&[409]);
    let sb = sandbox(&spec("", &orders_target("    concurrency: 1")), &orders(1));
    let run = push_to(&sb, &srv.url(), "create_orders", TOKEN, &[], &[]);
    run.expect_code(1);
    let res = results_by_line(&sb);
    assert_eq!(res[&1]["outcome"], "conflict", "{res:?}");
    assert_eq!(res[&1]["status"], 409, "{res:?}");
    assert_eq!(seen.lock().unwrap().values().next().unwrap().len(), 1);
    let s = summary(&run);
    assert_eq!((s.conflicts, s.requests, s.retries), (1, 1, 0), "{s:?}");
}

#[test]
fn a_key_in_flight_from_another_client_is_waited_out_and_replayed() {
    // Another client posted the same order (same key, same body) a moment earlier; the demo
    // takes 600 ms to process it. The push must wait for it, not report a conflict, and get
    // the same order back, not a second one.
    let demo = demo_with(Duration::from_millis(600));
    let target = "  by_request_id:\n    path: /orders\n    idempotency: { key_field: request_id }\n    response_id: $.id\n";
    let http = "  retry: { max_attempts: 3, initial: 100ms, max: 300ms }";
    let sb = sandbox(&spec(http, target), &[order(1)]);
    let body = serde_json::to_string(&order(1)).unwrap();
    let addr = demo.base_url().trim_start_matches("http://").to_owned();
    let other = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /orders HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {TOKEN}\r\nidempotency-key: req-00001\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while posts(&demo).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the other client's POST never arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let run = push(&sb, &demo, "by_request_id", &[]);
    let answer = other.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    run.expect_code(0);
    let res = results_by_line(&sb);
    assert_eq!(res[&1]["outcome"], "created", "{:?}", res[&1]);
    let body_start = answer.find("\r\n\r\n").unwrap() + 4;
    let theirs: Value = serde_json::from_str(answer[body_start..].trim()).unwrap();
    assert_eq!(res[&1]["id"], theirs["id"], "the same order, replayed");
    assert_eq!(demo.created_count(), 1);
    let statuses: Vec<u16> = posts(&demo).iter().map(|r| r.status).collect();
    assert_eq!(statuses.first(), Some(&201), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&201), "{statuses:?}");
    assert!(
        statuses[1..statuses.len() - 1].iter().all(|s| *s == 409) && statuses.len() >= 3,
        "at least one 409 waited out: {statuses:?}"
    );
    assert!(summary(&run).retries >= 1);
}

#[test]
fn a_duplicate_after_an_invalid_line_keeps_the_first_valid_line() {
    // Line 2 is not JSON, line 4 repeats line 1 and line 5 repeats line 3.
    let input = format!(
        "{}\n{{\"customer_id\": \n{}\n{}\n{}\n",
        order(1),
        order(2),
        order(1),
        order(2)
    );
    let demo = demo_with(Duration::ZERO);
    let sb = sandbox(&spec("", &orders_target("    concurrency: 4")), &[]);
    sb.write("input.jsonl", &input);
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(1);
    let res = results_by_line(&sb);
    assert_eq!(res[&2]["outcome"], "invalid");
    assert_eq!(res[&4]["first_line"], 1);
    assert_eq!(res[&5]["first_line"], 3);
    assert_eq!(posts(&demo).len(), 2);
    let s = summary(&run);
    assert_eq!((s.read, s.created, s.invalid, s.duplicates), (5, 2, 1, 2));
}
