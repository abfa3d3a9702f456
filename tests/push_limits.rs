//! Push loses nothing and holds a bounded amount: an over-long input line is an outcome of
//! its own (and costs at most the limit), a results file that cannot be written fails the
//! run (and a rerun completes it without duplicates), and the summary's counts add up.

mod push_support;
mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use push_support::{
    TOKEN, demo, order, orders, orders_target, posts, push, results_by_line, results_path, sandbox,
    spec, summary,
};
use support::Run;

/// What a child run left: its outcome and its peak resident memory.
struct Measured {
    run: Run,
    peak_rss_mib: f64,
}

/// Runs `runtime ARGS` in `dir`, reaping it with `wait4` for its own peak RSS; with
/// `fsize`, the child may write no file past that many bytes (RLIMIT_FSIZE, SIGXFSZ
/// ignored so a write fails with EFBIG instead of killing it).
fn run_measured(dir: &Path, args: &[String], fsize: Option<u64>) -> Measured {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runtime"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RUNTIME_LOG")
        .env("NO_COLOR", "1");
    // SAFETY: setrlimit and signal are async-signal-safe; nothing else runs here.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(limit) = fsize {
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let (run, rss) = support::run_peak(cmd, args.to_vec(), Duration::from_secs(90));
    Measured {
        run,
        peak_rss_mib: rss as f64 / (1024.0 * 1024.0),
    }
}

/// The arguments of a push of the sandbox's input to `base_url`, outcomes to `results`
/// (`results.jsonl` in the sandbox when `None`).
fn push_args(
    sb: &support::Sandbox,
    base_url: &str,
    results: Option<&str>,
    extra: &[&str],
) -> Vec<String> {
    let p = |name: &str| sb.path().join(name).to_str().unwrap().to_owned();
    let results = results.map_or_else(|| p("results.jsonl"), str::to_owned);
    let mut args: Vec<String> = [
        "push",
        &p("spec.yaml"),
        "--target",
        "create_orders",
        "--input",
        &p("input.jsonl"),
        "--results",
        &results,
        "--set",
        &format!("base_url={base_url}"),
        "--set",
        &format!("api_key={TOKEN}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A valid order line of exactly `bytes` bytes (a long string field pads it).
fn padded_order(n: usize, bytes: usize) -> String {
    let mut rec = order(n);
    rec["note"] = serde_json::json!("");
    let bare = rec.to_string().len();
    rec["note"] = serde_json::json!("x".repeat(bytes.saturating_sub(bare)));
    rec.to_string()
}

/// Writes the input file line by line; `Big(n, bytes)` is an order of `bytes` bytes written
/// in small pieces, so the test process never holds it (it would count in the child's peak).
fn write_input(sb: &support::Sandbox, lines: &[Piece]) {
    use std::io::Write;
    let f = std::fs::File::create(sb.path().join("input.jsonl")).unwrap();
    let mut w = std::io::BufWriter::new(f);
    for l in lines {
        match l {
            Piece::Line(text) => writeln!(w, "{text}").unwrap(),
            Piece::Big(n, bytes) => {
                let head = padded_order(*n, 0);
                let head = head.strip_suffix("\"}").unwrap();
                w.write_all(head.as_bytes()).unwrap();
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = bytes - head.len() - 2;
                while left > 0 {
                    let k = left.min(chunk.len());
                    w.write_all(&chunk[..k]).unwrap();
                    left -= k;
                }
                w.write_all(b"\"}\n").unwrap();
            }
        }
    }
    w.flush().unwrap();
}

/// One input line for [`write_input`].
enum Piece {
    Line(String),
    Big(usize, usize),
}

#[test]
fn an_over_long_line_is_reported_the_rest_is_sent_and_memory_stays_bounded() {
    let demo = demo();
    let sb = sandbox(&spec("", &orders_target("    concurrency: 4")), &[]);
    // 48 MiB of one line under the default limit (16 MiB); read whole, it would cost
    // several times its size (parsed, rendered, sent).
    write_input(
        &sb,
        &[
            Piece::Line(order(1).to_string()),
            Piece::Big(2, 48 << 20),
            Piece::Line(order(3).to_string()),
        ],
    );
    let m = run_measured(
        sb.path(),
        &push_args(&sb, &demo.base_url(), None, &[]),
        None,
    );
    m.run.expect_code(1).expect_no_leak(TOKEN);
    let res = results_by_line(&sb);
    assert_eq!(res[&1]["outcome"], "created");
    assert_eq!(res[&3]["outcome"], "created");
    let r = &res[&2];
    assert_eq!(r["outcome"], "too_long", "{r}");
    let err = r["error"].as_str().unwrap();
    assert!(
        err.contains("line 2") && err.contains("16777216") && err.contains("--max-line-size"),
        "the error names the line, the limit and the flag: {err}"
    );
    assert_eq!(posts(&demo).len(), 2);
    let s = summary(&m.run);
    assert_eq!((s.read, s.created, s.too_long), (3, 2, 1), "{s:?}");
    eprintln!(
        "peak RSS with a 48 MiB line, 16 MiB limit: {:.1} MiB",
        m.peak_rss_mib
    );
    assert!(
        m.peak_rss_mib < 16.0 + 48.0,
        "peak RSS {:.1} MiB: the line was held",
        m.peak_rss_mib
    );
}

#[test]
fn a_small_max_line_size_is_honoured_and_a_line_under_it_is_sent() {
    let demo = demo();
    let sb = sandbox(&spec("", &orders_target("    concurrency: 2")), &[]);
    write_input(
        &sb,
        &[
            Piece::Line(padded_order(1, 900)),
            Piece::Big(2, 20 << 20),
            Piece::Line(padded_order(3, 1024)),
        ],
    );
    let m = run_measured(
        sb.path(),
        &push_args(&sb, &demo.base_url(), None, &["--max-line-size", "1KiB"]),
        None,
    );
    m.run.expect_code(1);
    let res = results_by_line(&sb);
    assert_eq!(res[&1]["outcome"], "created");
    assert_eq!(res[&2]["outcome"], "too_long");
    assert_eq!(
        res[&3]["outcome"], "created",
        "exactly the limit is allowed"
    );
    assert!(
        res[&2]["error"]
            .as_str()
            .unwrap()
            .contains("20971520 bytes"),
        "{}",
        res[&2]
    );
    eprintln!(
        "peak RSS with a 20 MiB line, 1 KiB limit: {:.1} MiB",
        m.peak_rss_mib
    );
    // Held whole, the 20 MiB line would cost several times its size.
    assert!(m.peak_rss_mib < 60.0, "peak RSS {:.1} MiB", m.peak_rss_mib);

    // A size that does not parse is a usage error naming it.
    let bad = run_measured(
        sb.path(),
        &push_args(
            &sb,
            &demo.base_url(),
            None,
            &["--max-line-size", "12 parsecs"],
        ),
        None,
    );
    bad.run.expect_code(2).expect_stderr(&["12 parsecs"]);
}

#[test]
fn a_full_results_file_fails_the_run_naming_it() {
    if !Path::new("/dev/full").exists() {
        eprintln!("no /dev/full here; skipped");
        return;
    }
    let demo = demo();
    let sb = sandbox(&spec("", &orders_target("    concurrency: 2")), &orders(5));
    let run = run_measured(
        sb.path(),
        &push_args(&sb, &demo.base_url(), Some("/dev/full"), &[]),
        None,
    )
    .run;
    run.expect_code(1).expect_stderr(&[
        "cannot write the results file /dev/full",
        "No space left on device",
    ]);
    assert!(
        !run.stdout.contains("5 created"),
        "a run that lost its outcomes does not look complete: {}",
        run.stdout
    );
    assert!(
        posts(&demo).len() <= 2,
        "records were sent after the results file failed: {}",
        posts(&demo).len()
    );
}

#[test]
fn a_results_folder_that_cannot_be_made_is_exit_2_naming_it() {
    let demo = demo();
    let sb = sandbox(&spec("", &orders_target("")), &orders(2));
    let inside_a_file = sb.path().join("input.jsonl").join("results.jsonl");
    let run = run_measured(
        sb.path(),
        &push_args(&sb, &demo.base_url(), inside_a_file.to_str(), &[]),
        None,
    )
    .run;
    run.expect_code(2).expect_stderr(&["input.jsonl"]);
    assert!(posts(&demo).is_empty());
}

#[test]
fn a_results_file_that_stops_growing_mid_run_fails_the_run_and_a_rerun_loses_nothing() {
    // The results file may not pass 1,500 bytes (as on a full disk): about ten outcomes fit.
    let demo = demo();
    let sb = sandbox(&spec("", &orders_target("    concurrency: 1")), &orders(40));
    let m = run_measured(
        sb.path(),
        &push_args(&sb, &demo.base_url(), None, &[]),
        Some(1500),
    );
    m.run.expect_code(1).expect_stderr(&[
        "cannot write the results file",
        "results.jsonl",
        "File too large",
        "outcomes were written before it failed",
    ]);
    let sent = posts(&demo).len();
    assert!(
        sent < 40,
        "the run went on after the results file failed: {sent} sent"
    );
    let written = std::fs::read_to_string(results_path(&sb)).unwrap();
    assert!(written.len() <= 1500);

    // The rerun (no limit) skips the outcomes that were written, sends the rest with the
    // same keys (those whose outcome was lost are replayed by the API), creates no duplicate.
    let again = push(&sb, &demo, "create_orders", &[]);
    again.expect_code(0);
    let s = summary(&again);
    assert_eq!(s.read, 40);
    assert_eq!(s.done + s.created, 40, "{s:?}");
    assert!(s.done >= 5, "the outcomes written before are kept: {s:?}");
    assert_eq!(demo.created_count(), 40, "one order per record, none twice");
    let res = results_by_line_lenient(&sb);
    assert_eq!(res, (1..=40).collect::<Vec<u64>>());
}

/// Lines with a `created` outcome in the results file, skipping the one torn line a failed
/// write may leave.
fn results_by_line_lenient(sb: &support::Sandbox) -> Vec<u64> {
    let text = std::fs::read_to_string(results_path(sb)).unwrap();
    let mut lines: Vec<u64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["outcome"] == "created")
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

#[test]
fn the_counts_add_up_to_the_lines_read() {
    let demo = demo();
    let target = orders_target("    concurrency: 3\n    on_conflict: skip");
    // An earlier run creates order 1.
    let sb = sandbox(&spec("", &target), &[order(1)]);
    push(&sb, &demo, "create_orders", &[]).expect_code(0);
    let mut no_key = order(9);
    no_key.as_object_mut().unwrap().remove("external_id");
    let lines = [
        order(1).to_string(),   // already done
        order(2).to_string(),   // created
        String::new(),          // blank: not a record
        "{not json".to_owned(), // invalid
        no_key.to_string(),     // invalid: no key
        order(2).to_string(),   // duplicate of line 2
        padded_order(3, 4096),  // too long
        "   ".to_owned(),       // blank
        order(4).to_string(),   // created
        order(4).to_string(),   // duplicate of line 9
    ];
    sb.write("input.jsonl", &format!("{}\n", lines.join("\n")));
    let run = push(&sb, &demo, "create_orders", &["--max-line-size", "2KiB"]);
    run.expect_code(1);
    let s = summary(&run);
    assert_eq!(
        (
            s.read,
            s.done,
            s.created,
            s.invalid,
            s.duplicates,
            s.too_long,
            s.failed,
            s.conflicts,
            s.not_sent
        ),
        (8, 1, 2, 2, 2, 1, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.accounted(), s.read);
    let res = results_by_line(&sb);
    let outcome = |l: u64| res[&l]["outcome"].as_str().unwrap().to_owned();
    assert_eq!(outcome(4), "invalid");
    assert_eq!(outcome(5), "invalid");
    assert_eq!(outcome(6), "duplicate_in_input");
    assert_eq!(outcome(7), "too_long");
    assert_eq!(outcome(10), "duplicate_in_input");
}
