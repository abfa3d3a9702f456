//! `push`: records to a write endpoint, each with a deterministic idempotency key, so a
//! retry (or a whole rerun) never creates a duplicate.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use connector_spec::{Idempotency, OnConflict, PushTarget, WriteMethod};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::engine::Engine;
use crate::http::Outgoing;
use crate::render::render;
use crate::request::{BodyTemplate, join};
use crate::stats::Stats;

/// The outcome of one record, as written to the results file.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PushResult {
    /// Line number in the input, from 1.
    pub line: u64,
    /// The idempotency key sent.
    pub key: String,
    /// `created` (2xx), `conflict` (409), `rejected` (422), `failed` (anything else).
    pub outcome: String,
    /// The last HTTP status, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The id the API returned (`response_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Totals of a push run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PushSummary {
    /// Records read.
    pub read: u64,
    /// Skipped because an earlier run already sent them successfully.
    pub skipped_done: u64,
    /// Accepted by the API (2xx).
    pub created: u64,
    /// 409 or 422 answers.
    pub conflicts: u64,
    /// Other failures.
    pub failed: u64,
    /// Not sent because the run stopped on a conflict.
    pub not_sent: u64,
    /// HTTP requests, retries included.
    pub requests: u64,
    /// Retries.
    pub retries: u64,
}

/// A push that could not run at all.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PushError(pub String);

/// Where the records come from and where outcomes go.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The target's name in the spec.
    pub target: String,
    /// A JSON-lines file, or `None` for standard input.
    pub input: Option<PathBuf>,
    /// The results file (appended to; keys already `created` there are skipped).
    pub results: PathBuf,
}

/// The idempotency key of a record: its own key field, or a UUIDv5 of the key fields in a
/// namespace of the connector and target, so the same record always gets the same key.
pub fn idempotency_key(
    connector: &str,
    target: &str,
    idem: &Idempotency,
    record: &Value,
) -> Result<String, String> {
    if let Some(f) = &idem.key_field {
        return match record.get(f) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(format!("the record has no `{f}` (idempotency.key_field)")),
        };
    }
    let mut parts = Vec::with_capacity(idem.key_fields.len());
    for f in &idem.key_fields {
        match record.get(f) {
            Some(v) if !v.is_null() => parts.push(canonical_number(v)),
            _ => {
                return Err(format!(
                    "the record has no `{f}` (one of idempotency.key_fields)"
                ));
            }
        }
    }
    let namespace = Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("connector-runtime:{connector}/push/{target}").as_bytes(),
    );
    let name = serde_json::to_string(&parts).map_err(|e| e.to_string())?;
    Ok(Uuid::new_v5(&namespace, name.as_bytes()).to_string())
}

/// `1.0` and `1` are the same key value: a number with no fraction is written as an integer,
/// so a record that went through a float-happy tool keeps its key.
fn canonical_number(v: &Value) -> Value {
    match v.as_f64() {
        Some(f) if v.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
        _ => v.clone(),
    }
}

/// Keys that an earlier run already pushed successfully.
fn done_keys(results: &Path) -> Result<HashSet<String>, PushError> {
    let file = match File::open(results) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(PushError(format!("cannot read {}: {e}", results.display()))),
    };
    let mut done = HashSet::new();
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        // A line cut short by a crash is simply not counted as done.
        if let Ok(r) = serde_json::from_str::<PushResult>(&line)
            && r.outcome == "created"
        {
            done.insert(r.key);
        }
    }
    Ok(done)
}

/// Whether a file ends in the middle of a line (its last write was cut short).
fn ends_mid_line(path: &Path) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut last = [0u8; 1];
    len > 0
        && f.seek(SeekFrom::Start(len - 1)).is_ok()
        && f.read_exact(&mut last).is_ok()
        && last[0] != b'\n'
}

/// Sends every input record to the target; never retries a 409 or 422.
pub async fn push(engine: &Engine, opts: &PushOptions) -> Result<PushSummary, PushError> {
    let target = engine
        .spec
        .push
        .get(&opts.target)
        .ok_or_else(|| {
            let names: Vec<&str> = engine.spec.push.keys().map(String::as_str).collect();
            PushError(if names.is_empty() {
                format!(
                    "no push target `{}`: the spec has no `push` section",
                    opts.target
                )
            } else {
                format!(
                    "no push target `{}` in the spec; it has: {}",
                    opts.target,
                    names.join(", ")
                )
            })
        })?
        .clone();
    // The input first: a wrong path leaves no empty results file behind.
    let reader: Box<dyn BufRead + Send> = match &opts.input {
        Some(p) => {
            Box::new(BufReader::new(File::open(p).map_err(|e| {
                PushError(format!("cannot read {}: {e}", p.display()))
            })?))
        }
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    if let Some(dir) = opts.results.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| PushError(format!("cannot create {}: {e}", dir.display())))?;
    }
    // One writer per results file, taken before it is read: a second push would send
    // the same records again and interleave its outcomes with ours.
    let _results_lock = folder_lock::Lock::file(&opts.results, Some("--results"))
        .map_err(|e| PushError(e.to_string()))?;
    let done = done_keys(&opts.results)?;
    let torn = ends_mid_line(&opts.results);
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&opts.results)
        .map_err(|e| PushError(format!("cannot write {}: {e}", opts.results.display())))?;
    if torn {
        // A crash cut the last line short: start on a new line, or the first outcome of this
        // run would be glued to the torn one and lost to the next rerun.
        out.write_all(b"\n")
            .map_err(|e| PushError(format!("cannot write {}: {e}", opts.results.display())))?;
    }
    let out = Arc::new(Mutex::new(out));
    let stats = Stats::default();
    let summary = Mutex::new(PushSummary::default());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let job = &Job {
        name: &opts.target,
        target: &target,
        body: target.body.as_ref().map(BodyTemplate::new),
    };
    let lines = futures::stream::iter(reader.lines().enumerate());
    lines
        .for_each_concurrent(target.concurrency.max(1) as usize, |(i, line)| {
            let (target, out, summary, stats, stop, done) =
                (&target, &out, &summary, &stats, &stop, &done);
            async move {
                let n = i as u64 + 1;
                let line = match line {
                    Ok(l) if l.trim().is_empty() => return,
                    Ok(l) => l,
                    Err(e) => {
                        record(
                            out,
                            summary,
                            PushResult::failed(n, "", format!("cannot read the input: {e}")),
                        );
                        return;
                    }
                };
                bump(summary, |s| s.read += 1);
                let rec: Value = match serde_json::from_str(&line) {
                    Ok(v) => v,
                    Err(e) => {
                        record(
                            out,
                            summary,
                            PushResult::failed(n, "", format!("line {n} is not JSON: {e}")),
                        );
                        return;
                    }
                };
                let key = match idempotency_key(
                    &engine.spec.name,
                    &opts.target,
                    &target.idempotency,
                    &rec,
                ) {
                    Ok(k) => k,
                    Err(e) => {
                        record(
                            out,
                            summary,
                            PushResult::failed(n, "", format!("line {n}: {e}")),
                        );
                        return;
                    }
                };
                if done.contains(&key) {
                    bump(summary, |s| s.skipped_done += 1);
                    return;
                }
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    bump(summary, |s| s.not_sent += 1);
                    return;
                }
                let result = send_one(engine, job, &rec, &key, n, stats).await;
                if matches!(result.outcome.as_str(), "conflict" | "rejected")
                    && target.on_conflict == OnConflict::Stop
                {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                record(out, summary, result);
            }
        })
        .await;
    let mut s = summary.into_inner().unwrap_or_default();
    let snap = stats.snapshot();
    s.requests = snap.requests;
    s.retries = snap.retries;
    if let Ok(f) = out.lock() {
        let _ = f.sync_all();
    }
    Ok(s)
}

impl PushResult {
    fn failed(line: u64, key: &str, error: String) -> Self {
        Self {
            line,
            key: key.to_owned(),
            outcome: "failed".into(),
            status: None,
            id: None,
            error: Some(error),
        }
    }
}

fn bump(summary: &Mutex<PushSummary>, f: impl FnOnce(&mut PushSummary)) {
    if let Ok(mut s) = summary.lock() {
        f(&mut s);
    }
}

/// Appends an outcome (flushed at once, so a crash loses at most the line being written).
fn record(out: &Mutex<File>, summary: &Mutex<PushSummary>, r: PushResult) {
    if r.outcome != "created" {
        tracing::warn!(
            "line {}{}: {}: {}",
            r.line,
            if r.key.is_empty() {
                String::new()
            } else {
                format!(" (key {})", r.key)
            },
            r.outcome,
            r.error.as_deref().unwrap_or("")
        );
    }
    bump(summary, |s| match r.outcome.as_str() {
        "created" => s.created += 1,
        "conflict" | "rejected" => s.conflicts += 1,
        _ => s.failed += 1,
    });
    if let (Ok(mut f), Ok(mut line)) = (out.lock(), serde_json::to_vec(&r)) {
        line.push(b'\n');
        let _ = f.write_all(&line);
    }
}

/// A push target ready to send to: its name, its spec, its body compiled once.
struct Job<'a> {
    name: &'a str,
    target: &'a PushTarget,
    body: Option<BodyTemplate>,
}

async fn send_one(
    engine: &Engine,
    job: &Job<'_>,
    rec: &Value,
    key: &str,
    line: u64,
    stats: &Stats,
) -> PushResult {
    let mut ctx = engine.context();
    if let Value::Object(m) = &mut ctx {
        m.insert("record".into(), rec.clone());
    }
    let (target, field) = (job.target, format!("push.{}", job.name));
    let built = (|| {
        let base = render(&engine.spec.http.base_url, &ctx, "http.base_url")?;
        let path = render(&target.path, &ctx, &format!("{field}.path"))?;
        let url = join(&base, &path).map_err(|message| crate::render::RenderError {
            field: format!("{field}.path"),
            message,
        })?;
        let mut headers = Vec::new();
        for (k, t) in engine.spec.http.headers.iter().chain(target.headers.iter()) {
            headers.push((k.clone(), render(t, &ctx, &format!("{field}.headers.{k}"))?));
        }
        headers.push((target.idempotency.header.clone(), key.to_owned()));
        let body = match &job.body {
            Some(b) => b.render(&ctx, &format!("{field}.body"))?,
            None => rec.clone(),
        };
        Ok::<_, crate::render::RenderError>(Outgoing {
            method: match target.method {
                WriteMethod::Post => reqwest::Method::POST,
                WriteMethod::Put => reqwest::Method::PUT,
                WriteMethod::Patch => reqwest::Method::PATCH,
            },
            url,
            headers,
            body: Some(serde_json::to_vec(&body).unwrap_or_default()),
        })
    })();
    let req = match built {
        Ok(r) => r,
        Err(e) => return PushResult::failed(line, key, engine.http.redact(&e.to_string())),
    };
    // A 409 right after our own retry means our first attempt is still being processed:
    // wait for it (same key) instead of reporting a conflict that is not one.
    let mut result = engine
        .http
        .send_except(&req, stats, &field, NEVER_RETRY)
        .await;
    for n in 0..IN_FLIGHT_WAITS {
        match &result {
            Err(e) if e.status == Some(409) && e.attempts > 1 => {
                let retry = &engine.spec.http.retry;
                let wait =
                    crate::http::backoff::exponential(retry.initial.get(), retry.max.get(), n);
                tracing::info!(
                    "{field}: line {line}: 409 after a retry: the first attempt is still in flight, waiting {:.1}s",
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
                result = engine
                    .http
                    .send_except(&req, stats, &field, NEVER_RETRY)
                    .await;
            }
            _ => break,
        }
    }
    match result {
        Ok(resp) => {
            let id = target.response_id.as_ref().and_then(|p| {
                let body: Value = serde_json::from_slice(&resp.body).ok()?;
                p.first(&body).ok().flatten().cloned()
            });
            PushResult {
                line,
                key: key.to_owned(),
                outcome: "created".into(),
                status: Some(resp.status),
                id,
                error: None,
            }
        }
        Err(e) => PushResult {
            line,
            key: key.to_owned(),
            outcome: match e.status {
                Some(409) => "conflict".into(),
                Some(422) => "rejected".into(),
                _ => "failed".into(),
            },
            status: e.status,
            id: None,
            error: Some(e.message),
        },
    }
}

/// A write's 409 (in flight, or a conflict) and 422 (key reused with another body) are
/// reported, never repeated blindly.
const NEVER_RETRY: &[u16] = &[409, 422];

/// How often a 409 that follows our own retry is waited out.
const IN_FLIGHT_WAITS: u32 = 4;

/// The default results file of a target.
pub fn default_results(out_dir: &Path, target: &str) -> PathBuf {
    out_dir.join(format!("push-{target}.results.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_deterministic_and_scoped() {
        let idem = Idempotency {
            header: "Idempotency-Key".into(),
            key_field: None,
            key_fields: vec!["customer_id".into(), "external_id".into()],
        };
        let r = json!({"customer_id": 7, "external_id": "A-1", "total": 3});
        let k1 = idempotency_key("shop", "create", &idem, &r).unwrap();
        let k2 = idempotency_key(
            "shop",
            "create",
            &idem,
            &json!({"external_id": "A-1", "customer_id": 7, "total": 9}),
        )
        .unwrap();
        assert_eq!(k1, k2, "same key fields, same key, whatever else changes");
        assert_ne!(k1, idempotency_key("shop", "update", &idem, &r).unwrap());
        assert_ne!(
            k1,
            idempotency_key(
                "shop",
                "create",
                &idem,
                &json!({"customer_id": 8, "external_id": "A-1"})
            )
            .unwrap()
        );
        assert!(idempotency_key("shop", "create", &idem, &json!({"customer_id": 7})).is_err());
        let float = json!({"customer_id": 7.0, "external_id": "A-1"});
        assert_eq!(
            idempotency_key("shop", "create", &idem, &float).unwrap(),
            k1,
            "7.0 is 7"
        );
        assert_eq!(Uuid::parse_str(&k1).unwrap().get_version_num(), 5);

        let own = Idempotency {
            key_field: Some("request_id".into()),
            key_fields: vec![],
            ..idem
        };
        assert_eq!(
            idempotency_key("s", "t", &own, &json!({"request_id": "r-1"})).unwrap(),
            "r-1"
        );
    }
}
