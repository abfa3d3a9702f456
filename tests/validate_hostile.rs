//! Hostile input to `runtime validate`: each gets a clear error quickly, with no panic,
//! no backtrace and no memory climb. The inputs are generated here, never checked in.
//!
//! This file's only child processes are these validate runs, so the peak memory of
//! its children (getrusage) measures them and nothing else.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Generous for a debug build on a busy machine; a release build takes milliseconds.
const QUICK: Duration = Duration::from_secs(1);

/// Peak resident memory allowed for one validate run.
const MAX_RSS_KB: i64 = 150 * 1024;

/// Runs validate on `file`; returns exit code, stdout and elapsed time.
fn run(file: &Path) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .arg("validate")
        .arg(file)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{}: {stderr}",
        file.display()
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        elapsed,
    )
}

fn children_peak_rss_kb() -> i64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss
}

fn alias_bomb() -> String {
    // Nine levels of ten aliases each: a billion leaves when expanded.
    let mut doc = String::from(
        "version: 1\nname: bomb\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        let refs = vec![format!("*a{p}"); 10].join(", ");
        doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    doc
}

#[test]
fn hostile_inputs_get_a_clear_error_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "alias_bomb.yaml",
            alias_bomb().into_bytes(),
            "YAML aliases are counted as expanded",
        ),
        (
            "deep_map.yaml",
            format!("a: {}1{}\n", "{a: ".repeat(10_000), "}".repeat(10_000)).into_bytes(),
            "nesting",
        ),
        (
            "deep.yaml",
            format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            "nesting",
        ),
        (
            // Block nesting grows quadratically in bytes; 2,000 levels is already 2 MB.
            "deep_block.yaml",
            (0..2_000)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect::<String>()
                .into_bytes(),
            "nesting",
        ),
        (
            "invalid_utf8.yaml",
            b"version: 1\nname: \xff\xfe oops\n".to_vec(),
            "not valid UTF-8",
        ),
        ("empty.yaml", Vec::new(), "the file is empty"),
        ("blank.yaml", b"\n\n   \n".to_vec(), "the file is empty"),
    ];
    for (name, bytes, fragment) in &cases {
        let path = d.join(name);
        std::fs::write(&path, bytes).unwrap();
        let (code, out, elapsed) = run(&path);
        assert_eq!(code, Some(2), "{name}: {out}");
        assert!(
            out.contains(fragment),
            "{name}: expected `{fragment}` in:\n{out}"
        );
        assert!(out.contains(": error: "), "{name}: {out}");
        assert!(elapsed < QUICK, "{name} took {elapsed:?}");
    }
    let (_, out, _) = run(&d.join("invalid_utf8.yaml"));
    assert!(out.contains("invalid_utf8.yaml:2:7: error:"), "{out}");

    // 50 MB: refused from its size, without being read.
    let big = d.join("big.yaml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(50 * 1024 * 1024).unwrap();
    drop(f);
    let (code, out, elapsed) = run(&big);
    assert_eq!(code, Some(2));
    assert!(out.contains("over the 4194304 byte limit"), "{out}");
    assert!(elapsed < QUICK, "50 MB took {elapsed:?}");

    // Just under the size limit, the parser's node budget still applies.
    let wide = d.join("wide.yaml");
    let line = "- [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t]\n";
    std::fs::write(
        &wide,
        format!("x:\n{}", line.repeat(4 * 1024 * 1024 / line.len() - 1)),
    )
    .unwrap();
    let (code, out, elapsed) = run(&wide);
    assert_eq!(code, Some(2));
    assert!(out.contains("nodes"), "{out}");
    assert!(elapsed < QUICK * 3, "wide file took {elapsed:?}");

    let peak = children_peak_rss_kb();
    assert!(peak < MAX_RSS_KB, "a validate run peaked at {peak} KB");
}

#[test]
fn a_fifo_is_refused_instead_of_read_forever() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("spec.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (code, out, elapsed) = run(&fifo);
    assert_eq!(code, Some(2));
    assert!(out.contains("not a regular file"), "{out}");
    assert!(elapsed < QUICK);
}

#[test]
fn folder_without_specs_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run(dir.path());
    assert_eq!(code, Some(2));
    assert!(
        out.contains("no spec files (*.yaml, *.yml) in this folder"),
        "{out}"
    );
}
