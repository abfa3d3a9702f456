//! Output files: a stream's file is replaced only when the stream completes; a failed
//! run keeps the last good file and leaves no temporary files behind.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{Reply, Sandbox, rec_lines, recs, serve, spec};

const STREAMS: &str = r#"
  items:
    path: /items
    records: $.items[*]
    pagination: { kind: page_number, size: 2 }
  other:
    path: /other
    records: $[*]
"#;

/// `generation` 1: 6 items in pages of 2; later generations: page 3 of items answers 400,
/// and `other` serves different records.
fn api(generation: Arc<AtomicUsize>) -> support::Server {
    serve(move |r| {
        let g = generation.load(Ordering::SeqCst);
        match r.path.as_str() {
            "/items" => {
                let page = r.num("page", 1);
                if g > 1 && page == 3 {
                    return Reply::status(400, "page 3 is broken today");
                }
                let ids: Vec<usize> = ((page - 1) * 2 + 1..=(page * 2).min(6)).collect();
                Reply::json(format!(r#"{{"items": [{}]}}"#, recs(ids)))
            }
            "/other" if g == 1 => Reply::json(format!("[{}]", recs(1..=4))),
            "/other" => Reply::json(format!("[{}]", recs(20..=21))),
            _ => Reply::status(404, "no"),
        }
    })
}

#[test]
fn a_stream_failing_midway_keeps_its_last_good_file_and_leaves_no_temp_files() {
    let generation = Arc::new(AtomicUsize::new(1));
    let srv = api(generation.clone());
    let sb = Sandbox::new();
    sb.spec(&spec(STREAMS));
    sb.sync(&srv, &[]).expect_code(0);
    let good = sb.text("items");
    assert_eq!(sb.lines("items"), rec_lines(1..=6));
    assert_eq!(sb.lines("other"), rec_lines(1..=4));

    generation.store(2, Ordering::SeqCst);
    let run = sb.sync(&srv, &[]);
    run.expect_code(1).expect_stderr(&[
        "stream items failed: 400 from GET",
        "/items?page=3",
        "page 3 is broken today",
    ]);
    assert_eq!(sb.text("items"), good, "the last good output was touched");
    // The other stream still ran and replaced its file.
    assert_eq!(sb.lines("other"), rec_lines(20..=21));
    assert_eq!(sb.out_files(), ["items.jsonl", "other.jsonl"]);
    assert_eq!(run.row("items").status, "FAILED");
    assert_eq!(run.row("items").pages, 2);
    assert_eq!(run.row("other").status, "ok");
}

#[test]
fn a_first_run_that_fails_writes_no_file_for_the_stream() {
    let generation = Arc::new(AtomicUsize::new(2));
    let srv = api(generation);
    let sb = Sandbox::new();
    sb.spec(&spec(STREAMS));
    sb.sync(&srv, &[]).expect_code(1);
    assert_eq!(sb.out_files(), ["other.jsonl"]);
}

#[test]
fn a_successful_rerun_replaces_the_whole_file() {
    let generation = Arc::new(AtomicUsize::new(1));
    let srv = api(generation.clone());
    let sb = Sandbox::new();
    sb.spec(&spec(STREAMS));
    sb.sync(&srv, &["--streams", "other"]).expect_code(0);
    assert_eq!(sb.lines("other"), rec_lines(1..=4));
    generation.store(2, Ordering::SeqCst);
    sb.sync(&srv, &["--streams", "other"]).expect_code(0);
    // Shorter than before: nothing of the old file may remain.
    assert_eq!(
        sb.text("other"),
        format!("{}\n", rec_lines(20..=21).join("\n"))
    );
    assert_eq!(sb.out_files(), ["other.jsonl"]);
}

#[test]
fn the_output_folder_is_created_when_missing() {
    let generation = Arc::new(AtomicUsize::new(1));
    let srv = api(generation);
    let sb = Sandbox::new();
    let spec_path = sb.spec(&spec(STREAMS));
    let out = sb.path().join("deep/er/out");
    let base = format!("base_url={}", srv.url());
    sb.run(&[
        "sync",
        spec_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        &base,
        "--streams",
        "other",
    ])
    .expect_code(0)
    .expect_stdout(&["output: "]);
    assert_eq!(
        std::fs::read_to_string(out.join("other.jsonl")).unwrap(),
        format!("{}\n", rec_lines(1..=4).join("\n"))
    );
}
