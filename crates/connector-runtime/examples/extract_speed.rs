//! Times `Extractor::page` (fast path, with its duplicate-key and surrogate scan) over a
//! folder of JSON pages: wall and CPU time of the process, best of several rounds.
//!
//! `cargo run --release -p connector-runtime --example extract_speed -- bench/.cache/orders-1000000/pages [rounds]`

use std::time::{Duration, Instant};

use connector_runtime::extract::Extractor;
use connector_spec::JsonPath;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: extract_speed <folder of JSON pages> [rounds]")?;
    let rounds: usize = match args.next() {
        Some(r) => r.parse().map_err(|e| format!("rounds `{r}`: {e}"))?,
        None => 5,
    };
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{dir}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let pages = paths
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let next = JsonPath::new("$.next_cursor");
    let ex = Extractor::new(&JsonPath::new("$.orders[*]"), &[&next]);
    let (mut wall, mut cpu) = (Duration::MAX, Duration::MAX);
    let mut records = 0;
    for _ in 0..rounds {
        let (c0, start) = (process_cpu(), Instant::now());
        records = 0;
        for p in &pages {
            let page = ex
                .page(std::hint::black_box(p), "application/json")
                .map_err(|e| e.to_string())?;
            records += page.records.len();
        }
        wall = wall.min(start.elapsed());
        if let (Some(c0), Some(c1)) = (c0, process_cpu()) {
            cpu = cpu.min(c1 - c0);
        }
    }
    println!(
        "{} pages, {records} records: wall {:.1} ms, CPU (all threads) {:.1} ms",
        pages.len(),
        wall.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e3
    );
    Ok(())
}

/// CPU time of the whole process so far (Linux: the sum over its threads' schedstat
/// would miss exited threads, so /proc/self/stat's utime+stime in clock ticks).
fn process_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = s.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}
