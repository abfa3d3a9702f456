//! `push`: records to a write endpoint, each with a deterministic idempotency key, so a
//! retry (or a whole rerun) never creates a duplicate.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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

mod input;
mod results;

pub use input::{DEFAULT_MAX_LINE, parse_size};
pub use results::PushResult;

use input::{Line, LineReader, is_blank};
use results::{Results, open_results};
use tokio::sync::Semaphore;

/// Totals of a push run. Every non-blank input line lands in exactly one of `skipped_done`,
/// `created`, `conflicts`, `failed`, `not_sent`, `duplicates`, `invalid` and `too_long`, so
/// they add up to `read` ([`PushSummary::accounted`]).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PushSummary {
    /// Non-blank input lines read.
    pub read: u64,
    /// Skipped because an earlier run already sent them successfully.
    pub skipped_done: u64,
    /// Accepted by the API (2xx).
    pub created: u64,
    /// 409 or 422 answers (a 409 for a key in flight only once its retries ran out).
    pub conflicts: u64,
    /// Other failures.
    pub failed: u64,
    /// Not sent because the run stopped (on a conflict, or on an error that ends the run).
    pub not_sent: u64,
    /// Not sent because an earlier line of this run has the same idempotency key.
    pub duplicates: u64,
    /// Lines that are not JSON or have no idempotency key.
    pub invalid: u64,
    /// Lines longer than the limit, skipped unread.
    pub too_long: u64,
    /// HTTP requests, retries included.
    pub requests: u64,
    /// Retries, waits for a key in flight included.
    pub retries: u64,
    /// Why the run stopped before the end of the input (the results file could not be
    /// written, the input could not be read); the run failed when this is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl PushSummary {
    /// The lines accounted for by an outcome; equals `read` at the end of a run.
    pub fn accounted(&self) -> u64 {
        self.skipped_done
            + self.created
            + self.conflicts
            + self.failed
            + self.not_sent
            + self.duplicates
            + self.invalid
            + self.too_long
    }
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
    /// The longest input line, in bytes; a longer one is an outcome `too_long`.
    pub max_line: usize,
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

/// Sends every input record to the target, each key at most once at a time; retries a 409
/// for a key in flight a bounded number of times, never another 409 or a 422.
pub async fn push(engine: &Engine, opts: &PushOptions) -> Result<PushSummary, PushError> {
    let target = find_target(engine, &opts.target)?;
    // The input first: a wrong path leaves no empty results file behind.
    let (input_name, reader) = open_input(opts)?;
    let (results, done) = open_results(&opts.results, opts.max_line)?;
    let run = Run {
        engine,
        opts,
        job: Job {
            name: &opts.target,
            target: &target,
            body: target.body.as_ref().map(BodyTemplate::new),
        },
        done,
        out: Mutex::new(results),
        summary: Mutex::new(PushSummary::default()),
        stats: Stats::default(),
        stop: AtomicBool::new(false),
        halt: AtomicBool::new(false),
    };
    let budget = Arc::new(Semaphore::new(budget_bytes(opts.max_line) as usize));
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut lines = LineReader::new(reader, opts.max_line);
    let mut n = 0u64;
    let mut read_error = None;
    let to_send = std::iter::from_fn(|| {
        while !run.halt.load(Ordering::Relaxed) {
            let line = match lines.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => return None,
                Err(e) => {
                    read_error = Some(format!(
                        "cannot read {input_name} after line {n}: {e}; the run stopped"
                    ));
                    return None;
                }
            };
            n += 1;
            if let Some(send) = run.classify(n, line, &mut seen) {
                return Some(send);
            }
        }
        None
    });
    futures::stream::iter(to_send)
        .then(|send| {
            let budget = budget.clone();
            async move {
                // Bounds the input held by records in flight, whatever the concurrency.
                let cost = send.bytes.clamp(1, budget_bytes(opts.max_line));
                let permit = budget.acquire_many_owned(cost).await.ok();
                (send, permit)
            }
        })
        .for_each_concurrent(target.concurrency.max(1) as usize, |(send, _permit)| {
            run.send(send)
        })
        .await;
    Ok(run.finish(read_error))
}

/// The input bytes that records in flight may hold at once.
fn budget_bytes(max_line: usize) -> u32 {
    u32::try_from(max_line.max(IN_FLIGHT_BYTES)).unwrap_or(u32::MAX)
}

/// The input held by records in flight, at least (a longer `max_line` raises it).
const IN_FLIGHT_BYTES: usize = 64 * 1024 * 1024;

fn find_target(engine: &Engine, name: &str) -> Result<PushTarget, PushError> {
    engine.spec.push.get(name).cloned().ok_or_else(|| {
        let names: Vec<&str> = engine.spec.push.keys().map(String::as_str).collect();
        PushError(if names.is_empty() {
            format!("no push target `{name}`: the spec has no `push` section")
        } else {
            format!(
                "no push target `{name}` in the spec; it has: {}",
                names.join(", ")
            )
        })
    })
}

/// The input's name for messages, and a reader of it.
fn open_input(opts: &PushOptions) -> Result<(String, Box<dyn BufRead + Send>), PushError> {
    Ok(match &opts.input {
        Some(p) => {
            let f = File::open(p)
                .map_err(|e| PushError(format!("cannot read {}: {e}", p.display())))?;
            if f.metadata().is_ok_and(|m| m.is_dir()) {
                return Err(PushError(format!(
                    "cannot read {}: it is a folder; pass a JSON-lines file or `-`",
                    p.display()
                )));
            }
            (
                p.display().to_string(),
                Box::new(BufReader::with_capacity(READ_BUFFER, f)),
            )
        }
        None => (
            "standard input".to_owned(),
            Box::new(BufReader::with_capacity(READ_BUFFER, std::io::stdin())),
        ),
    })
}

/// The input read buffer: all a too-long line costs on top of the limit.
const READ_BUFFER: usize = 64 * 1024;

/// A record to send.
struct Outbound {
    line: u64,
    rec: Value,
    key: String,
    bytes: u32,
}

/// Everything a run shares between the reader and the records in flight.
struct Run<'a> {
    engine: &'a Engine,
    opts: &'a PushOptions,
    job: Job<'a>,
    done: HashSet<String>,
    out: Mutex<Results>,
    summary: Mutex<PushSummary>,
    stats: Stats,
    /// Set by a conflict under `on_conflict: stop`: no new record is sent.
    stop: AtomicBool,
    /// Set when the results file cannot be written: nothing more is read or sent.
    halt: AtomicBool,
}

impl Run<'_> {
    /// Decides what to do with one input line, in input order; `Some` when it is to be sent.
    fn classify(&self, n: u64, line: Line, seen: &mut HashMap<String, u64>) -> Option<Outbound> {
        let text = match line {
            Line::TooLong { bytes } => {
                self.bump(|s| s.read += 1);
                let max = self.opts.max_line;
                self.record(PushResult::local(
                    n,
                    "",
                    "too_long",
                    format!("line {n} is {bytes} bytes, more than the limit of {max} bytes (--max-line-size); skipped"),
                ));
                return None;
            }
            Line::Text(t) if is_blank(&t) => return None,
            Line::Text(t) => t,
        };
        self.bump(|s| s.read += 1);
        let invalid = |e: String| PushResult::local(n, "", "invalid", e);
        let rec: Value = match serde_json::from_slice(&text) {
            Ok(v) => v,
            Err(e) => {
                self.record(invalid(format!("line {n} is not JSON: {e}")));
                return None;
            }
        };
        let engine = self.engine;
        let idem = &self.job.target.idempotency;
        let key = match idempotency_key(&engine.spec.name, self.job.name, idem, &rec) {
            Ok(k) => k,
            Err(e) => {
                self.record(invalid(format!("line {n}: {e}")));
                return None;
            }
        };
        if self.done.contains(&key) {
            self.bump(|s| s.skipped_done += 1);
            return None;
        }
        if let Some(&first) = seen.get(&key) {
            self.record(PushResult {
                first_line: Some(first),
                ..PushResult::local(
                    n,
                    &key,
                    "duplicate_in_input",
                    format!(
                        "line {n} has the same idempotency key as line {first}; not sent again"
                    ),
                )
            });
            return None;
        }
        seen.insert(key.clone(), n);
        if self.stopped() {
            self.bump(|s| s.not_sent += 1);
            return None;
        }
        let bytes = u32::try_from(text.len()).unwrap_or(u32::MAX);
        Some(Outbound {
            line: n,
            rec,
            key,
            bytes,
        })
    }

    /// Whether no new record may be sent.
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.halt.load(Ordering::Relaxed)
    }

    /// Sends one record and records its outcome.
    async fn send(&self, s: Outbound) {
        // A record read before a stop waits here; it is not sent after the stop.
        if self.stopped() {
            self.bump(|s| s.not_sent += 1);
            return;
        }
        let result = send_one(self.engine, &self.job, &s.rec, &s.key, s.line, &self.stats).await;
        if matches!(result.outcome.as_str(), "conflict" | "rejected")
            && self.job.target.on_conflict == OnConflict::Stop
        {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.record(result);
    }

    fn bump(&self, f: impl FnOnce(&mut PushSummary)) {
        if let Ok(mut s) = self.summary.lock() {
            f(&mut s);
        }
    }

    /// Counts an outcome and appends it to the results file; a failed write halts the run.
    fn record(&self, r: PushResult) {
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
        self.bump(|s| match r.outcome.as_str() {
            "created" => s.created += 1,
            "conflict" | "rejected" => s.conflicts += 1,
            "duplicate_in_input" => s.duplicates += 1,
            "invalid" => s.invalid += 1,
            "too_long" => s.too_long += 1,
            _ => s.failed += 1,
        });
        let ok = match self.out.lock() {
            Ok(mut out) => out.write(&r),
            Err(_) => false,
        };
        if !ok {
            self.halt.store(true, Ordering::Relaxed);
        }
    }

    /// The totals, with the reason the run stopped early if it did.
    fn finish(self, read_error: Option<String>) -> PushSummary {
        let mut s = self.summary.into_inner().unwrap_or_default();
        let snap = self.stats.snapshot();
        s.requests = snap.requests;
        s.retries = snap.retries;
        let written = match self.out.into_inner() {
            Ok(mut out) => out.finish(),
            Err(_) => Err(format!(
                "cannot write the results file {}",
                self.opts.results.display()
            )),
        };
        s.stopped = written.err().or(read_error);
        s
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
        Err(e) => {
            return PushResult::local(line, key, "failed", engine.http.redact(&e.to_string()));
        }
    };
    let (result, waited) = send_waiting_in_flight(engine, &req, stats, &field, line).await;
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
                first_line: None,
                error: None,
            }
        }
        Err(e) => {
            let error = if waited > 0 && is_in_flight(&e) {
                format!(
                    "{}; the same key was still in flight after {waited} retries; run again later (a rerun sends it again with the same key)",
                    e.message
                )
            } else {
                e.message
            };
            PushResult {
                line,
                key: key.to_owned(),
                outcome: match e.status {
                    Some(409) => "conflict".into(),
                    Some(422) => "rejected".into(),
                    _ => "failed".into(),
                },
                status: e.status,
                id: None,
                first_line: None,
                error: Some(error),
            }
        }
    }
}

/// Sends a request; while the answer is a 409 saying the same key is still in flight, waits
/// (exponential backoff of `http.retry`) and asks again, at most [`IN_FLIGHT_RETRIES`] times.
/// Returns the last answer and how many times it waited.
async fn send_waiting_in_flight(
    engine: &Engine,
    req: &Outgoing,
    stats: &Stats,
    field: &str,
    line: u64,
) -> (Result<crate::http::Incoming, crate::http::HttpError>, u32) {
    let mut result = engine
        .http
        .send_except(req, stats, field, NEVER_RETRY)
        .await;
    let mut waited = 0;
    while waited < IN_FLIGHT_RETRIES {
        match &result {
            Err(e) if is_in_flight(e) => {
                let retry = &engine.spec.http.retry;
                let wait =
                    crate::http::backoff::exponential(retry.initial.get(), retry.max.get(), waited)
                        + crate::http::backoff::small_jitter();
                tracing::info!(
                    "{field}: line {line}: 409: the same key is still in flight, waiting {:.1}s (retry {}/{IN_FLIGHT_RETRIES})",
                    wait.as_secs_f64(),
                    waited + 1
                );
                Stats::add(&stats.retries, 1);
                stats.waited(wait);
                tokio::time::sleep(wait).await;
                waited += 1;
                result = engine
                    .http
                    .send_except(req, stats, field, NEVER_RETRY)
                    .await;
            }
            _ => break,
        }
    }
    (result, waited)
}

/// Whether a failed write is a 409 for the same key still being processed (IETF
/// Idempotency-Key draft): its body says so, or it answers our own retry of a request
/// whose first attempt may still be running. Any other 409 is a conflict.
fn is_in_flight(e: &crate::http::HttpError) -> bool {
    e.status == Some(409) && (e.attempts > 1 || says_in_flight(&e.snippet))
}

/// Whether a 409's body says the request is still in progress.
fn says_in_flight(body: &str) -> bool {
    let body = body.to_ascii_lowercase();
    IN_FLIGHT_WORDS.iter().any(|w| body.contains(w))
}

/// Words of a 409 body that mean "the first request with this key is still running".
const IN_FLIGHT_WORDS: &[&str] = &[
    "in progress",
    "in-progress",
    "in_progress",
    "in flight",
    "in-flight",
    "in_flight",
    "still being processed",
    "still processing",
];

/// A write's 409 and 422 are never retried by the HTTP layer, whatever `retry.on_status`
/// says; a 409 for a key in flight is waited out here instead.
const NEVER_RETRY: &[u16] = &[409, 422];

/// How often a 409 for a key in flight is retried before it is reported.
pub const IN_FLIGHT_RETRIES: u32 = 5;

/// The default results file of a target.
pub fn default_results(out_dir: &Path, target: &str) -> PathBuf {
    out_dir.join(format!("push-{target}.results.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: Option<u16>, attempts: u32, body: &str) -> crate::http::HttpError {
        crate::http::HttpError {
            message: String::new(),
            status,
            attempts,
            snippet: body.into(),
        }
    }

    /// Exactly when a 409 is "the same key still in flight" (docs/push.md): its body says
    /// so, or it answers our own resend; never a first attempt's plain conflict, nor any
    /// other status.
    #[test]
    fn a_409_is_in_flight_when_its_body_says_so_or_it_answers_a_resend() {
        let busy = r#"{"error": "Request_In_Progress"}"#;
        assert!(is_in_flight(&answer(Some(409), 1, busy)));
        assert!(is_in_flight(&answer(Some(409), 2, "already exists")));
        assert!(!is_in_flight(&answer(Some(409), 1, "already exists")));
        assert!(!is_in_flight(&answer(Some(409), 0, "")));
        assert!(!is_in_flight(&answer(Some(422), 2, busy)));
        assert!(!is_in_flight(&answer(Some(503), 1, busy)));
        assert!(!is_in_flight(&answer(None, 3, busy)));
        for words in IN_FLIGHT_WORDS {
            assert!(
                says_in_flight(&format!("x {} y", words.to_uppercase())),
                "{words}"
            );
        }
        assert!(!says_in_flight("conflict: already exists"));
        assert!(!says_in_flight(""));
    }

    #[test]
    fn whole_floats_are_integers_and_nothing_else_changes() {
        assert_eq!(canonical_number(&json!(7.0)), json!(7));
        assert_eq!(canonical_number(&json!(-3.0)), json!(-3));
        assert_eq!(canonical_number(&json!(7.5)), json!(7.5));
        assert_eq!(canonical_number(&json!(7)), json!(7));
        assert_eq!(canonical_number(&json!("7.0")), json!("7.0"));
        assert_eq!(canonical_number(&json!(true)), json!(true));
        // Beyond 2^53 a float is no longer an exact integer: kept as it is.
        assert_eq!(canonical_number(&json!(1.0e16)), json!(1.0e16));
        assert_eq!(canonical_number(&json!(9.0e15)), json!(9.0e15));
        assert_eq!(
            canonical_number(&json!(8_999_999_999_999_998.0)),
            json!(8_999_999_999_999_998_i64)
        );
    }

    #[test]
    fn a_key_field_must_be_a_non_empty_string_or_a_number() {
        let own = Idempotency {
            header: "Idempotency-Key".into(),
            key_field: Some("request_id".into()),
            key_fields: vec![],
        };
        let key = |v: Value| idempotency_key("s", "t", &own, &json!({ "request_id": v }));
        assert_eq!(key(json!("r-1")).unwrap(), "r-1");
        assert_eq!(key(json!(42)).unwrap(), "42");
        for bad in [json!(""), json!(null), json!(true), json!(["r"])] {
            let e = key(bad.clone()).unwrap_err();
            assert!(
                e.contains("`request_id` (idempotency.key_field)"),
                "{bad}: {e}"
            );
        }
        let derived = Idempotency {
            key_field: None,
            key_fields: vec!["a".into()],
            ..own
        };
        let e = idempotency_key("s", "t", &derived, &json!({"a": null})).unwrap_err();
        assert!(e.contains("`a` (one of idempotency.key_fields)"), "{e}");
        // `false`, `0` and `""` are values, not absences.
        for v in [json!(false), json!(0), json!("")] {
            assert!(idempotency_key("s", "t", &derived, &json!({ "a": v })).is_ok());
        }
    }

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

        // The connector is part of the namespace: two connectors with a target of the same
        // name and the same key values must not share keys on an API they both write to.
        assert_ne!(
            k1,
            idempotency_key("other_shop", "create", &idem, &r).unwrap()
        );
        // Field values are joined without ambiguity: ["ab","c"] is not ["a","bc"], nor
        // one field "abc", nor the number 7 the string "7".
        let two = |a: Value, b: Value| {
            idempotency_key(
                "shop",
                "create",
                &idem,
                &json!({"customer_id": a, "external_id": b}),
            )
            .unwrap()
        };
        assert_ne!(two(json!("ab"), json!("c")), two(json!("a"), json!("bc")));
        assert_ne!(two(json!("a,b"), json!("c")), two(json!("a"), json!("b,c")));
        assert_ne!(two(json!(7), json!("A-1")), two(json!("7"), json!("A-1")));
        let one = Idempotency {
            key_fields: vec!["customer_id".into()],
            ..idem.clone()
        };
        assert_ne!(
            idempotency_key("shop", "create", &one, &json!({"customer_id": "abc"})).unwrap(),
            two(json!("ab"), json!("c"))
        );

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
