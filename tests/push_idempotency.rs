//! `runtime push` against the demo API's idempotent `POST /orders`: a connection dropped
//! after the server committed the write is retried with the same key and creates no
//! duplicate; a whole rerun (results kept, cut short by a crash, or deleted) creates none.

mod push_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};

use demo_api::Fault;
use push_support::{
    TOKEN, created_by_external_id, demo, orders, orders_target, posts, posts_by_key, push,
    results_by_line, results_path, sandbox, spec, summary,
};
use serde_json::Value;

/// Arrival numbers (from 1, among `POST /orders`) of the requests whose connection the demo
/// drops after committing: a few first attempts and, at 2, possibly a retry; never six in a
/// row for one record, so every record gets through within `max_attempts: 6`.
const DROPPED_AT: [usize; 7] = [1, 2, 6, 11, 17, 23, 30];

#[test]
fn a_connection_dropped_after_the_commit_is_retried_with_the_same_key_and_no_duplicate() {
    let records = orders(30);
    let demo = demo();
    for &nth in &DROPPED_AT {
        demo.on_request("POST /orders", nth, |st| {
            st.push_fault("POST /orders", Fault::CommitThenDrop)
        });
    }
    let sb = sandbox(&spec("", &orders_target("    concurrency: 4")), &records);
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(0).expect_no_leak(TOKEN);

    // Exactly one order per input record, and no other.
    let created = created_by_external_id(&demo);
    let expected: Vec<String> = records
        .iter()
        .map(|r| r["external_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        created.keys().cloned().collect::<Vec<_>>(),
        expected,
        "created orders"
    );
    assert_eq!(demo.created_count(), records.len());

    // The log: every dropped request was committed (fault commit_then_drop, no answer), and
    // the same key came again and got the stored answer; no key got more than one 201 that
    // was not a replay.
    let log = posts(&demo);
    let by_key = posts_by_key(&demo);
    assert_eq!(by_key.len(), records.len(), "one key per record");
    let dropped: Vec<_> = log
        .iter()
        .filter(|r| r.fault.as_deref() == Some("commit_then_drop"))
        .collect();
    assert_eq!(
        dropped.len(),
        DROPPED_AT.len(),
        "every scripted drop was used"
    );
    assert!(dropped.iter().all(|r| r.status == 0));
    let mut replays = 0;
    for (key, reqs) in &by_key {
        let last = reqs.last().unwrap();
        assert_eq!(last.status, 201, "key {key}: last request {last:?}");
        assert!(
            reqs[..reqs.len() - 1]
                .iter()
                .all(|r| r.fault.as_deref() == Some("commit_then_drop")),
            "key {key}: only a dropped request is retried: {reqs:?}"
        );
        // The first request committed the order, so every later one was a replay.
        replays += reqs.len() - 1;
    }
    let retried_keys = by_key.values().filter(|r| r.len() > 1).count();

    // The results file: one `created` line per record, with the id of its order (for a
    // retried record, the id of the replayed answer is the id of the order first created).
    let res = results_by_line(&sb);
    assert_eq!(res.len(), records.len());
    for (i, rec) in records.iter().enumerate() {
        let r = &res[&(i as u64 + 1)];
        assert_eq!(r["outcome"], "created", "{r}");
        assert_eq!(r["status"], 201, "{r}");
        let ext = rec["external_id"].as_str().unwrap();
        assert_eq!(r["id"].as_u64(), Some(created[ext]), "{r}");
        assert!(by_key.contains_key(r["key"].as_str().unwrap()), "{r}");
    }

    let s = summary(&run);
    assert_eq!(s.read, 30);
    assert_eq!(s.created, 30);
    assert_eq!(
        s.requests as usize,
        log.len(),
        "summary requests vs the demo's log"
    );
    assert_eq!(s.retries as usize, DROPPED_AT.len(), "one retry per drop");
    assert_eq!(log.len(), records.len() + DROPPED_AT.len());
    println!(
        "dropped-connection counts: records {}, requests sent {}, retries {}, connections dropped after commit {}, records retried {}, orders created {}, replays {}",
        records.len(),
        log.len(),
        s.retries,
        dropped.len(),
        retried_keys,
        demo.created_count(),
        replays
    );
}

#[test]
fn a_rerun_sends_nothing_done_and_a_rerun_without_results_only_replays() {
    let records = orders(20);
    let demo = demo();
    let sb = sandbox(&spec("", &orders_target("    concurrency: 4")), &records);

    // 1. The first run creates every order.
    push(&sb, &demo, "create_orders", &[]).expect_code(0);
    assert_eq!(demo.created_count(), 20);
    let first = results_by_line(&sb);
    let ids: BTreeMap<u64, Value> = first.iter().map(|(l, r)| (*l, r["id"].clone())).collect();
    let keys: BTreeMap<u64, Value> = first.iter().map(|(l, r)| (*l, r["key"].clone())).collect();
    let first_text = std::fs::read_to_string(results_path(&sb)).unwrap();
    demo.clear_requests();

    // 2. The same run again, results kept: nothing to send.
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(0);
    assert_eq!(
        posts(&demo).len(),
        0,
        "a rerun sent requests for keys already created"
    );
    let s = summary(&run);
    assert_eq!((s.read, s.done, s.created, s.requests), (20, 20, 0, 0));
    assert_eq!(
        std::fs::read_to_string(results_path(&sb)).unwrap(),
        first_text,
        "a rerun with nothing to do changed the results file"
    );

    // 3. A crash cut the results file after 8 lines and in the middle of the 9th: the rerun
    // skips those 8 keys and sends the 12 others, which the API answers from its store.
    let lines: Vec<&str> = first_text.lines().collect();
    let torn = &lines[8][..lines[8].len() / 2];
    let kept: BTreeSet<String> = lines[..8]
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    std::fs::write(
        results_path(&sb),
        format!("{}\n{torn}", lines[..8].join("\n")),
    )
    .unwrap();
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(0);
    let sent = posts_by_key(&demo);
    assert_eq!(sent.len(), 12, "keys sent after the crash");
    assert!(
        sent.keys().all(|k| !kept.contains(k.as_str())),
        "a key already done was sent"
    );
    assert!(sent.values().all(|r| r.len() == 1 && r[0].status == 201));
    assert_eq!(
        demo.created_count(),
        20,
        "the rerun after a crash created a duplicate"
    );
    let s = summary(&run);
    assert_eq!((s.done, s.created, s.requests), (8, 12, 12));
    // The torn line stays as it was; every outcome written after it is whole, on its own
    // line, so a later rerun reads it.
    let text = std::fs::read_to_string(results_path(&sb)).unwrap();
    let mut whole = 0;
    for l in text.lines() {
        match serde_json::from_str::<Value>(l) {
            Ok(r) => {
                whole += 1;
                let line = r["line"].as_u64().unwrap();
                assert_eq!(
                    r["id"], ids[&line],
                    "line {line}: the replay answered another id"
                );
            }
            Err(_) => assert_eq!(l, torn, "results line {l:?} is not JSON"),
        }
    }
    assert_eq!(whole, 20, "results after the crash and rerun:\n{text}");
    demo.clear_requests();
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(0);
    assert_eq!(
        posts(&demo).len(),
        0,
        "keys done after the crash were sent again"
    );
    assert_eq!(summary(&run).done, 20);
    demo.clear_requests();

    // 4. The results file deleted: every record is sent again, every answer is the stored
    // one (same id), and nothing new is created.
    std::fs::remove_file(results_path(&sb)).unwrap();
    let run = push(&sb, &demo, "create_orders", &[]);
    run.expect_code(0);
    let sent = posts_by_key(&demo);
    assert_eq!(sent.len(), 20);
    assert!(sent.values().all(|r| r.len() == 1 && r[0].status == 201));
    assert_eq!(
        demo.created_count(),
        20,
        "the rerun without results created a duplicate"
    );
    created_by_external_id(&demo);
    let again = results_by_line(&sb);
    assert_eq!(again.len(), 20);
    for (line, r) in &again {
        assert_eq!(r["outcome"], "created");
        assert_eq!(
            r["key"], keys[line],
            "line {line}: the key changed between runs"
        );
        assert_eq!(
            r["id"], ids[line],
            "line {line}: the replay answered another id"
        );
    }

    // The demo marks those answers as replays: the same key and body, sent directly.
    let key = keys[&1].as_str().unwrap().to_owned();
    let body = records[0].to_string();
    let url = format!("{}/orders", demo.base_url());
    let (status, replayed, answer) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let resp = reqwest::Client::new()
            .post(url)
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let replayed = resp
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            resp.status().as_u16(),
            replayed,
            resp.json::<Value>().await.unwrap(),
        )
    });
    assert_eq!(status, 201);
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(answer["id"], ids[&1]);
    assert_eq!(demo.created_count(), 20);
}
