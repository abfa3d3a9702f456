//! Shared by the kill -9 tests (incremental, date windows): the `runtime sync` command
//! they start and kill, its output read as (id, version) counts, and the kill itself.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `runtime sync SPEC --set base_url=http://ADDR --out OUT`, its output piped.
pub fn command(spec: &Path, out: &Path, addr: SocketAddr) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_runtime"));
    c.arg("sync")
        .arg(spec)
        .arg("--set")
        .arg(format!("base_url=http://{addr}"))
        .arg("--out")
        .arg(out)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs [`command`] to its end: the exit code and everything it printed.
pub fn run(spec: &Path, out: &Path, addr: SocketAddr) -> (i32, String) {
    let o = command(spec, out, addr).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

/// Every (id, version) in a JSON-lines file, with how many times each appears.
pub fn versions(file: &Path) -> BTreeMap<(u64, u64), usize> {
    let mut m = BTreeMap::new();
    let text = std::fs::read_to_string(file).unwrap_or_default();
    for line in text.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
        let key = (v["id"].as_u64().unwrap(), v["version"].as_u64().unwrap());
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

/// Waits until the server has counted `requests` requests (at most `within`), then
/// `extra`, then sends SIGKILL. True only when the kill landed on a live process: its wait
/// status says SIGKILL (a run that ended on its own first is not a kill).
pub fn kill_when(
    child: &mut Child,
    seen: &AtomicUsize,
    requests: usize,
    extra: Duration,
    within: Duration,
) -> bool {
    let started = Instant::now();
    while seen.load(Ordering::SeqCst) < requests && started.elapsed() < within {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(extra);
    let _ = child.kill();
    let status = child.wait().unwrap();
    status.signal() == Some(libc::SIGKILL)
}

/// The verdict of a kill -9 test: every wanted record written exactly once. Prints what
/// was found with `detail` (what else the test counted), then fails on a record lost or
/// written twice, and on any other difference from `want`.
pub fn assert_exactly_once<K: Ord + std::fmt::Debug>(
    test: &str,
    got: &BTreeMap<K, usize>,
    want: &BTreeMap<K, usize>,
    detail: &str,
) {
    let duplicated: usize = got.values().filter(|n| **n > 1).map(|n| n - 1).sum();
    let lost = want.keys().filter(|k| !got.contains_key(k)).count();
    eprintln!(
        "{test}: expected {} records, found {} distinct, {lost} lost, {duplicated} duplicated; {detail}",
        want.len(),
        got.len()
    );
    assert_eq!(lost, 0, "records lost");
    assert_eq!(duplicated, 0, "records duplicated");
    assert_eq!(got, want);
}

/// Fails unless at least `least` of the `runs` were killed while alive (a run that ended
/// before its kill proves nothing about resuming).
pub fn assert_killed(kills: usize, least: usize, runs: usize) {
    assert!(
        kills >= least,
        "only {kills} of {runs} runs were killed while alive"
    );
}
