//! Times the duplicate-key and surrogate scan over a folder of JSON pages: the scan as
//! it was before the SIMD version, today's byte loop (the portable fallback) and the
//! SIMD scan, interleaved round by round, best of several rounds each.
//!
//! `cargo run --release -p connector-runtime --example scan_speed -- bench/.cache/orders-1000000/pages [rounds [only]]`
//! (`only`: time just the scanner whose name starts so, e.g. `simd`).

mod original;

use std::time::{Duration, Instant};

use connector_runtime::json_scan::{Scan, scan, scan_bytes};

/// A scan to time.
type Scanner = fn(&[u8]) -> Scan;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: scan_speed <folder of JSON pages> [rounds]")?;
    let rounds: usize = match args.next() {
        Some(r) => r.parse().map_err(|e| format!("rounds `{r}`: {e}"))?,
        None => 5,
    };
    let pages = read_pages(&dir)?;
    let bytes: usize = pages.iter().map(Vec::len).sum();
    println!("{} pages, {:.1} MB", pages.len(), bytes as f64 / 1e6);
    let scanners: [(&str, Scanner); 3] = [
        ("before (ac52bb5)", before),
        ("byte loop", scan_bytes),
        ("simd", scan),
    ];
    let only = args.next();
    let mut best = [Duration::MAX; 3];
    let mut cpu = [Duration::MAX; 3];
    // Per scanner and page, the best time of a scan right after another of the same page.
    let mut hot = vec![[Duration::MAX; 3]; pages.len()];
    let mut found = [(0, 0); 3];
    for _ in 0..rounds {
        for (i, (name, f)) in scanners.iter().enumerate() {
            if only.as_ref().is_some_and(|o| !name.starts_with(o.as_str())) {
                continue;
            }
            let c = thread_cpu();
            let (d, r) = time(&pages, *f);
            if let (Some(c0), Some(c1)) = (c, thread_cpu()) {
                cpu[i] = cpu[i].min(c1 - c0);
            }
            best[i] = best[i].min(d);
            found[i] = r;
            for (p, h) in pages.iter().zip(&mut hot) {
                std::hint::black_box(f(p));
                let start = Instant::now();
                std::hint::black_box(f(std::hint::black_box(p)));
                h[i] = h[i].min(start.elapsed());
            }
        }
    }
    if only.is_none() && found.iter().any(|f| *f != found[0]) {
        return Err(format!(
            "the scans disagree (pages with duplicates, with lone surrogates): {found:?}"
        ));
    }
    let mb_s = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    let hot: Vec<Duration> = (0..3)
        .map(|i| {
            hot.iter()
                .fold(Duration::ZERO, |s, h| s.saturating_add(h[i]))
        })
        .collect();
    println!(
        "best of {rounds} rounds; wall and CPU time of one pass over all pages; hot: each page scanned right after a scan of it, best per page, summed"
    );
    for (i, (name, _)) in scanners.iter().enumerate() {
        if best[i] == Duration::MAX {
            continue;
        }
        println!(
            "{name:>17}: wall {:6.1} ms {:5.0} MB/s {:4.2}x | CPU {:6.1} ms {:5.0} MB/s {:4.2}x | hot {:6.1} ms {:5.0} MB/s {:4.2}x",
            best[i].as_secs_f64() * 1e3,
            mb_s(best[i]),
            best[0].as_secs_f64() / best[i].as_secs_f64(),
            cpu[i].as_secs_f64() * 1e3,
            mb_s(cpu[i]),
            cpu[0].as_secs_f64() / cpu[i].as_secs_f64(),
            hot[i].as_secs_f64() * 1e3,
            mb_s(hot[i]),
            hot[0].as_secs_f64() / hot[i].as_secs_f64(),
        );
    }
    Ok(())
}

/// This thread's CPU time so far (Linux): on a busy machine it is steadier than the
/// wall clock, which also counts the time other processes held the core.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn before(t: &[u8]) -> Scan {
    let s = original::scan(t);
    Scan {
        duplicate_keys: s.duplicate_keys,
        lone_surrogate: s.lone_surrogate,
    }
}

fn read_pages(dir: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{dir}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect()
}

/// Scans every page once: the time, and how many pages had duplicates and surrogates.
fn time(pages: &[Vec<u8>], f: Scanner) -> (Duration, (usize, usize)) {
    let start = Instant::now();
    let mut found = (0, 0);
    for p in pages {
        let s = std::hint::black_box(f(std::hint::black_box(p)));
        found.0 += usize::from(s.duplicate_keys);
        found.1 += usize::from(s.lone_surrogate.is_some());
    }
    (start.elapsed(), found)
}
