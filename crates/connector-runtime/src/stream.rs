//! One stream's pages: request, send, extract, write, paginate; once, or once per parent
//! record for a child stream.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use connector_spec::{JsonPath, Pagination, Stream};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::extract::{Extractor, write_line};
use crate::paginate::{Paginator, Step, Stop, Target};
use crate::report::Reporter;
use crate::request::{self, BodyTemplate};
use crate::sink::{Destination, RecordSink, StreamTarget, WriteMode};
use crate::state::StreamState;
use crate::stats::Stats;
use crate::window::{Inc, Window, digest, shown, tolerance_text};

/// Lines gathered before they are written, within a page: large enough that a typical
/// page goes out in one write, small enough that a huge page is not held twice.
const FLUSH_AT: usize = 4 * 1024 * 1024;

/// A message from a parent stream to its children.
#[derive(Debug, Clone)]
pub enum ParentMsg {
    /// One parent record.
    Record(Arc<Value>),
    /// The parent finished: true when it succeeded.
    End(bool),
}

/// The running state of one stream, shared by its partitions.
pub struct StreamRun {
    /// The stream's name.
    pub name: String,
    /// Its spec.
    pub stream: Stream,
    /// Its counters.
    pub stats: Arc<Stats>,
    extractor: Extractor,
    body: Option<BodyTemplate>,
    sink: Mutex<Option<Box<dyn RecordSink>>>,
    inc: Option<Inc>,
    /// Appends and checkpoints (incremental, or under an incremental parent).
    appends: bool,
    /// False with `--limit`: a partial look must not move the state.
    save: bool,
    children: Vec<mpsc::Sender<ParentMsg>>,
    limit: Option<u64>,
    written: AtomicU64,
    seen: Option<Mutex<HashSet<String>>>,
    warned_missing: AtomicBool,
    warned_future: AtomicBool,
    /// Set when the record limit is reached, so every partition stops.
    pub(crate) full: AtomicBool,
    reporter: Arc<dyn Reporter>,
    /// Its error rules, then `http.errors`.
    pub errors: crate::http::rules::StreamRules,
}

/// A stream failed; the message is fit to print.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StreamError(pub String);

impl StreamRun {
    /// Prepares a stream: its extractor, its sink, its children's channels. With a
    /// `prior` state the stream appends and checkpoints; without, it replaces.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: &Engine,
        name: &str,
        stream: &Stream,
        children: Vec<mpsc::Sender<ParentMsg>>,
        limit: Option<u64>,
        destination: &dyn Destination,
        prior: Option<StreamState>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Self, StreamError> {
        let others = meta_paths(&stream.pagination);
        let extractor = Extractor::new(&stream.records, &others);
        let appends = prior.is_some();
        let prior = prior.unwrap_or_default();
        let sink = destination
            .open(&StreamTarget {
                name,
                stream,
                mode: if appends {
                    WriteMode::Append
                } else {
                    WriteMode::Replace
                },
                prior: &prior,
            })
            .map_err(|e| StreamError(e.0))?;
        let inc = match (&stream.incremental, appends) {
            (Some(spec), true) => Some(Inc::new(
                engine,
                name,
                spec,
                prior,
                time::OffsetDateTime::now_utc(),
            )?),
            _ => None,
        };
        let dedup = stream.dedup && stream.primary_key.is_some();
        Ok(Self {
            name: name.to_owned(),
            stream: stream.clone(),
            stats: Arc::new(Stats::default()),
            extractor,
            body: stream.body.as_ref().map(BodyTemplate::new),
            sink: Mutex::new(Some(sink)),
            inc,
            appends,
            save: limit.is_none(),
            children,
            limit,
            written: AtomicU64::new(0),
            seen: dedup.then(|| Mutex::new(HashSet::new())),
            warned_missing: AtomicBool::new(false),
            warned_future: AtomicBool::new(false),
            full: AtomicBool::new(false),
            reporter,
            errors: crate::http::rules::StreamRules::new(&engine.spec, name, stream),
        })
    }

    /// Completes the output (replace, or final checkpoint); only called when every
    /// partition succeeded.
    pub fn commit(&self) -> Result<(), StreamError> {
        let sink = self
            .sink
            .lock()
            .map_err(|_| StreamError("output lock poisoned".into()))?
            .take()
            .ok_or_else(|| StreamError("the output was already closed".into()))?;
        let mut state = match self.appends && self.save {
            true => Some(self.state()?),
            false => None,
        };
        sink.commit(state.as_mut()).map_err(|e| StreamError(e.0))
    }

    /// Whether the output appends and checkpoints (incremental, or under an incremental parent).
    pub fn is_durable(&self) -> bool {
        self.appends
    }

    /// Drops the partial output: the previous output stays (full refresh), or the tail
    /// after the last checkpoint is redone on the next run (incremental).
    pub fn abandon(&self) {
        if let Ok(mut g) = self.sink.lock() {
            g.take();
        }
    }

    /// The state that covers what has been written so far.
    fn state(&self) -> Result<StreamState, StreamError> {
        let mut state = StreamState::default();
        if let Some(inc) = &self.inc {
            (state.position, state.partitions) = inc
                .positions()
                .map_err(|e| StreamError(format!("{}: {e}", self.name)))?;
        }
        Ok(state)
    }

    /// Has the sink make the output durable, then save the state that covers exactly it.
    fn checkpoint(&self) -> Result<(), StreamError> {
        if !(self.appends && self.save) {
            return Ok(());
        }
        let mut out = self
            .sink
            .lock()
            .map_err(|_| StreamError("output lock poisoned".into()))?;
        let sink = out
            .as_mut()
            .ok_or_else(|| StreamError("the output was already closed".into()))?;
        // Taken while the output is locked, so no record slips in between.
        let mut state = self.state()?;
        sink.checkpoint(&mut state).map_err(|e| StreamError(e.0))
    }

    /// Writes complete lines to the output and empties `buf`.
    fn write_out(&self, buf: &mut Vec<u8>) -> Result<(), StreamError> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut guard = self
            .sink
            .lock()
            .map_err(|_| StreamError("output lock poisoned".into()))?;
        guard
            .as_mut()
            .ok_or_else(|| StreamError("the output was already closed".into()))?
            .write(buf)
            .map_err(|e| StreamError(e.0))?;
        buf.clear();
        Ok(())
    }

    /// Tells the children the parent is over.
    pub async fn end_children(&self, ok: bool) {
        for c in &self.children {
            let _ = c.send(ParentMsg::End(ok)).await;
        }
    }

    /// Pages through the stream once (for a child stream: for one parent record).
    pub async fn run_partition(
        &self,
        engine: &Engine,
        parent: Option<&Value>,
    ) -> Result<Stop, StreamError> {
        let mut ctx = engine.context();
        if let (Some(p), Value::Object(m)) = (parent, &mut ctx) {
            m.insert("parent".into(), p.clone());
        }
        let include: Vec<(String, Value)> = match (&self.stream.parent, parent) {
            (Some(pr), Some(p)) => pr
                .include
                .iter()
                .map(|(new, field)| (new.clone(), p.get(field).cloned().unwrap_or(Value::Null)))
                .collect(),
            _ => Vec::new(),
        };
        if let (Some(pr), Some(p)) = (&self.stream.parent, parent)
            && p.get(&pr.key).is_none_or(Value::is_null)
        {
            return Err(StreamError(format!(
                "a record of parent stream {} has no `{}` (streams.{}.parent.key), so its children cannot be fetched; first bytes: {}",
                pr.stream,
                pr.key,
                self.name,
                crate::http::snippet(p.to_string().as_bytes())
            )));
        }
        let partition: Option<String> = match (&self.stream.parent, parent) {
            (Some(pr), Some(p)) => Some(match p.get(&pr.key) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            }),
            _ => None,
        };
        let window = match &self.inc {
            Some(inc) => Some(
                Window::new(inc, partition.as_deref())
                    .map_err(|e| StreamError(format!("{}: {e}", self.name)))?,
            ),
            None => None,
        };
        let extra = window
            .as_ref()
            .map(|w| w.params.clone())
            .unwrap_or_default();
        if let (Some(w), Some(inc), Value::Object(m)) = (&window, &self.inc, &mut ctx) {
            // For specs that place the window themselves (a body filter, a path segment).
            m.insert(
                "incremental".into(),
                serde_json::json!({"start": w.lower, "end": inc.end}),
            );
        }
        let mut pager = Paginator::new(&self.stream.pagination);
        let mut target = pager.first();
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut cut_retries = 0u32;
        loop {
            if self.full.load(Relaxed) {
                return Ok(Stop::MaxPages);
            }
            if let Value::Object(m) = &mut ctx
                && !matches!(self.stream.pagination, Pagination::None)
            {
                m.insert("page".into(), pager.vars());
            }
            let req = request::build(
                &engine.spec,
                &self.name,
                &self.stream,
                &ctx,
                self.body.as_ref(),
                &target,
                &extra,
            )
            .map_err(|e| StreamError(engine.http.redact(&e.to_string())))?;
            let reply = engine
                .http
                .fetch(&req, &self.stats, &self.name, &self.errors)
                .await
                .map_err(|e| StreamError(e.message))?;
            let resp = match self.errors.settle(reply, &self.stats, &self.full) {
                Ok(resp) => resp,
                Err(stop) => return Ok(stop),
            };
            let ct = resp
                .headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let mut page = match self.extractor.page(&resp.body, ct) {
                Ok(p) => p,
                // A 200 whose JSON stops early (a proxy or the API cut it under a matching
                // Content-Length): the same request again, as for any body cut short.
                Err(e) if e.cut_short && cut_retries + 1 < engine.spec.http.retry.max_attempts => {
                    cut_retries += 1;
                    let retry = &engine.spec.http.retry;
                    let wait = crate::http::backoff::full_jitter(
                        retry.initial.get(),
                        retry.max.get(),
                        cut_retries - 1,
                    );
                    tracing::warn!(
                        "{}: the JSON body of {} {} was cut short, waiting {:.1}s, attempt {}/{}",
                        self.name,
                        req.method,
                        engine.http.show_url(&req.url),
                        wait.as_secs_f64(),
                        cut_retries + 1,
                        retry.max_attempts
                    );
                    Stats::add(&self.stats.retries, 1);
                    self.stats.waited(wait);
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => {
                    return Err(StreamError(format!(
                        "{} {}: {}",
                        req.method,
                        engine.http.show_url(&req.url),
                        engine.http.redact(&e.message)
                    )));
                }
            };
            cut_retries = 0;
            Stats::add(&self.stats.pages, 1);
            if page.records.is_empty()
                && page.path_missing
                && !self.warned_missing.swap(true, Relaxed)
            {
                let keys = page
                    .meta
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                // The keys are the API's text: escaped, and cut when there are many.
                let keys = crate::printable::api_text(&keys);
                self.reporter.warning(
                    &self.name,
                    &format!(
                        "records path {} matched nothing in the response of {} {}; the body's top-level keys are: {keys}",
                        self.stream.records.source(),
                        req.method,
                        engine.http.show_url(&req.url)
                    ),
                );
            }
            let keep = (pager.cut(&page.records, &ctx))
                .map_err(|e| StreamError(format!("{}: {}", self.name, e.0)))?;
            page.records.truncate(keep);
            let count = page.records.len();
            buf.clear();
            let mut written = 0u64;
            let mut parents = Vec::new();
            let needs_value = self.seen.is_some()
                || !self.children.is_empty()
                || window.is_some()
                || !include.is_empty()
                || self.stream.filter.is_some();
            // What a filter sees besides the record: config, parent, page, incremental.
            let filter_base = self
                .stream
                .filter
                .as_ref()
                .map(|_| minijinja::Value::from(minijinja::value::Serde(&ctx)));
            for raw in &page.records {
                let value: Option<Value> = if needs_value {
                    Some(serde_json::from_str(raw.get()).map_err(|e| StreamError(e.to_string()))?)
                } else {
                    None
                };
                let key = match &value {
                    Some(v) if self.seen.is_some() || window.is_some() => {
                        Some(primary_key(&self.stream, v, &include))
                    }
                    _ => None,
                };
                let hash = self.inc.as_ref().map(|_| digest(raw.get()));
                if let (Some(w), Some(inc), Some(v), Some(k), Some(h)) =
                    (&window, &self.inc, &value, &key, &hash)
                    && !w
                        .keep(inc, v, k, h)
                        .map_err(|e| StreamError(format!("{}: {e}", self.name)))?
                {
                    continue;
                }
                if let (Some(f), Some(base), Some(v)) = (&self.stream.filter, &filter_base, &value)
                    && !self.keeps(f, base, v)?
                {
                    // Dropped, but the position still moves past it: a filtered stream
                    // never fetches the same records again.
                    if let (Some(inc), Some(k), Some(h)) = (&self.inc, key, hash) {
                        self.track(engine, inc, partition.as_deref(), v, k, h, written)?;
                    }
                    Stats::add(&self.stats.filtered, 1);
                    continue;
                }
                if let (Some(seen), Some(k)) = (&self.seen, &key) {
                    let fresh = seen.lock().map(|mut s| s.insert(k.clone())).unwrap_or(true);
                    if !fresh {
                        continue;
                    }
                }
                if let Some(limit) = self.limit
                    && self.written.fetch_add(1, Relaxed) >= limit
                {
                    self.full.store(true, Relaxed);
                    break;
                }
                if let (Some(inc), Some(v), Some(k), Some(h)) = (&self.inc, &value, key, hash) {
                    self.track(engine, inc, partition.as_deref(), v, k, h, written)?;
                }
                if include.is_empty() {
                    write_line(&mut buf, raw, &[]);
                } else {
                    // The record as the API sent it wins over a copied parent field.
                    let has = |k: &str| value.as_ref().is_some_and(|v| v.get(k).is_some());
                    let extra: Vec<(String, Value)> =
                        include.iter().filter(|(k, _)| !has(k)).cloned().collect();
                    write_line(&mut buf, raw, &extra);
                }
                written += 1;
                // A huge page's lines go out as they are made: one copy of the page
                // (the body) in memory, not two.
                if buf.len() >= FLUSH_AT {
                    self.write_out(&mut buf)?;
                }
                if let Some(v) = value
                    && !self.children.is_empty()
                {
                    parents.push(Arc::new(v));
                }
            }
            self.write_out(&mut buf)?;
            Stats::add(&self.stats.records, written);
            // Reached exactly at the page's end: no further page is needed.
            if self.limit.is_some_and(|l| self.written.load(Relaxed) >= l) {
                self.full.store(true, Relaxed);
            }
            for p in parents {
                for c in &self.children {
                    // A child that stopped listening has failed on its own; keep going.
                    let _ = c.send(ParentMsg::Record(p.clone())).await;
                }
            }
            if self.full.load(Relaxed) {
                return Ok(Stop::MaxPages);
            }
            // Sorted by the cursor: everything up to here is complete, so it can be saved.
            // Not with children in the run: their output must be durable before the
            // parent's state moves past the records that fed them.
            if self.inc.as_ref().is_some_and(|i| i.spec.sorted)
                && partition.is_none()
                && self.children.is_empty()
            {
                self.checkpoint()?;
            }
            let step = pager
                .advance(&page.meta, &resp.headers, count, &resp.url)
                .map_err(|e| {
                    StreamError(format!(
                        "{} {}: {}",
                        req.method,
                        engine.http.show_url(&req.url),
                        e.0
                    ))
                })?;
            match step {
                Step::Next(t) => target = t,
                Step::Done(stop) => return Ok(stop),
            }
            if let Target::Url(u) = &target {
                // Checked before it is sent: another origin or scheme is refused, not retried.
                engine.http.origins().check_next(u).map_err(|e| {
                    StreamError(format!(
                        "{} {}: {e} (next page URL: {})",
                        req.method,
                        engine.http.show_url(&req.url),
                        crate::http::snippet(engine.http.redact(u.as_str()).as_bytes())
                    ))
                })?;
                tracing::debug!(stream = %self.name, "next page: {}", engine.http.show_url(u));
            }
        }
    }
}

impl StreamRun {
    /// Whether the stream's `filter` keeps the record.
    fn keeps(
        &self,
        filter: &connector_spec::Condition,
        base: &minijinja::Value,
        record: &Value,
    ) -> Result<bool, StreamError> {
        let ctx = minijinja::context! {
            record => minijinja::Value::from(minijinja::value::Serde(record)),
            ..base.clone()
        };
        filter.holds(ctx).map_err(|e| {
            StreamError(format!(
                "streams.{}.filter `{}`: {}",
                self.name,
                filter.source(),
                crate::printable::api_text(&e.to_string())
            ))
        })
    }

    /// Moves the incremental position past a record (written or filtered out).
    #[allow(clippy::too_many_arguments)]
    fn track(
        &self,
        engine: &Engine,
        inc: &Inc,
        partition: Option<&str>,
        record: &Value,
        key: String,
        hash: String,
        written_in_page: u64,
    ) -> Result<(), StreamError> {
        let label = match &self.stream.primary_key {
            Some(_) => format!("with key {}", shown(&key)),
            None => format!(
                "number {}",
                self.stats.records.load(Relaxed) + written_in_page + 1
            ),
        };
        if let Some(c) = inc
            .advance(partition, record, key, hash)
            .map_err(|e| StreamError(format!("{}: {e}", self.name)))?
        {
            self.warn_future(engine, inc, &label, &c);
        }
        Ok(())
    }

    /// Says once per stream that a record's cursor lay too far ahead to be saved.
    fn warn_future(&self, engine: &Engine, inc: &Inc, label: &str, cursor: &str) {
        if self.warned_future.swap(true, Relaxed) {
            return;
        }
        let message = format!(
            "the record {label} has {} `{}`, further ahead of this machine's clock than incremental.future_tolerance ({}); it was written, but the saved cursor stays at the latest value within the tolerance (further such records of this run are not reported)",
            shown(&inc.spec.cursor_field),
            shown(cursor),
            tolerance_text(&inc.spec)
        );
        self.reporter
            .warning(&self.name, &engine.http.redact(&message));
    }
}

/// JSONPaths that read the page besides the records.
fn meta_paths(p: &Pagination) -> Vec<&JsonPath> {
    match p {
        Pagination::Offset { total, .. } => total.iter().collect(),
        Pagination::PageNumber {
            total, total_pages, ..
        } => total.iter().chain(total_pages.iter()).collect(),
        Pagination::Cursor { next, .. } => next.iter().collect(),
        Pagination::NextUrl { next, .. } => vec![next],
        Pagination::None | Pagination::LinkHeader { .. } => Vec::new(),
    }
}

/// A record's primary key as a compact JSON array, e.g. `[17]` or `["a",2]`.
pub fn primary_key(stream: &Stream, record: &Value, include: &[(String, Value)]) -> String {
    let Some(pk) = &stream.primary_key else {
        return record.to_string();
    };
    let values: Vec<&Value> = pk
        .fields()
        .iter()
        .map(|f| {
            record
                .get(*f)
                .or_else(|| include.iter().find(|(k, _)| k == f).map(|(_, v)| v))
                .unwrap_or(&Value::Null)
        })
        .collect();
    serde_json::to_string(&values).unwrap_or_default()
}
