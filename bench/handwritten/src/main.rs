//! The baseline of `bench/run.sh`: the loop a person would write by hand to pull the
//! benchmark's orders, with nothing the runtime offers (no templates, retries, state,
//! progress or atomic output).
//!
//! Sequential on purpose: fetch a page, parse it into a `serde_json::Value`, write each
//! record as one JSON line, follow `next_cursor`. It owns nothing else and must stay this
//! small, or the comparison stops meaning "as fast as a hand-written client".
//!
//! Usage: `bench-handwritten <base-url> <out-dir>`; writes `<out-dir>/orders.jsonl` and
//! prints the number of records written.

use std::error::Error;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

/// Records per page asked for, as in the benchmark's connector spec.
const PAGE_SIZE: &str = "1000";

// One thread, like `reqwest::blocking` would use: the client does one thing at a time.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, out] = args.as_slice() else {
        eprintln!("usage: bench-handwritten <base-url> <out-dir>");
        return ExitCode::from(2);
    };
    match run(base, Path::new(out)).await {
        Ok(n) => {
            println!("{n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Pulls every page into `<out>/orders.jsonl`; returns the records written.
async fn run(base: &str, out: &Path) -> Result<u64, Box<dyn Error>> {
    fs::create_dir_all(out)?;
    let mut writer = BufWriter::new(File::create(out.join("orders.jsonl"))?);
    let client = reqwest::Client::new();
    let url = format!("{}/orders", base.trim_end_matches('/'));
    let mut cursor: Option<String> = None;
    let mut written = 0u64;
    loop {
        let mut req = client.get(&url).query(&[("limit", PAGE_SIZE)]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let body = req.send().await?.error_for_status()?.bytes().await?;
        let page: Value = serde_json::from_slice(&body)?;
        if let Some(orders) = page.get("orders").and_then(Value::as_array) {
            for record in orders {
                serde_json::to_writer(&mut writer, record)?;
                writer.write_all(b"\n")?;
                written += 1;
            }
        }
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    writer.flush()?;
    Ok(written)
}
