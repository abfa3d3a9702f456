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
use crate::request;
use crate::sink::JsonlSink;
use crate::stats::Stats;

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
    sink: Mutex<Option<JsonlSink>>,
    children: Vec<mpsc::Sender<ParentMsg>>,
    limit: Option<u64>,
    written: AtomicU64,
    seen: Option<Mutex<HashSet<String>>>,
    warned_missing: AtomicBool,
    /// Set when the record limit is reached, so every partition stops.
    pub(crate) full: AtomicBool,
    reporter: Arc<dyn Reporter>,
}

/// A stream failed; the message is fit to print.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StreamError(pub String);

impl StreamRun {
    /// Prepares a stream: its extractor, its output file, its children's channels.
    pub fn new(
        engine: &Engine,
        name: &str,
        stream: &Stream,
        children: Vec<mpsc::Sender<ParentMsg>>,
        limit: Option<u64>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Self, StreamError> {
        let others = meta_paths(&stream.pagination);
        let extractor = Extractor::new(&stream.records, &others);
        let sink = JsonlSink::create(&engine.out_dir, name).map_err(|e| {
            StreamError(format!(
                "cannot write to {}: {e}",
                engine.out_dir.join(format!("{name}.jsonl")).display()
            ))
        })?;
        let dedup = stream.dedup && stream.primary_key.is_some();
        Ok(Self {
            name: name.to_owned(),
            stream: stream.clone(),
            stats: Arc::new(Stats::default()),
            extractor,
            sink: Mutex::new(Some(sink)),
            children,
            limit,
            written: AtomicU64::new(0),
            seen: dedup.then(|| Mutex::new(HashSet::new())),
            warned_missing: AtomicBool::new(false),
            full: AtomicBool::new(false),
            reporter,
        })
    }

    /// Makes the output the stream's file; only called when every partition succeeded.
    pub fn commit(&self) -> Result<(), StreamError> {
        let sink = self.sink.lock().ok().and_then(|mut g| g.take());
        match sink {
            Some(s) => s
                .commit()
                .map(|_| ())
                .map_err(|e| StreamError(format!("cannot finish the output file: {e}"))),
            None => Err(StreamError("the output was already closed".into())),
        }
    }

    /// Drops the partial output, keeping the previous file.
    pub fn abandon(&self) {
        if let Ok(mut g) = self.sink.lock() {
            g.take();
        }
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
        let mut pager = Paginator::new(&self.stream.pagination);
        let mut target = pager.first();
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            if self.full.load(Relaxed) {
                return Ok(Stop::MaxPages);
            }
            if let Value::Object(m) = &mut ctx {
                if !matches!(self.stream.pagination, Pagination::None) {
                    m.insert("page".into(), pager.vars());
                }
            }
            let req = request::build(&engine.spec, &self.name, &self.stream, &ctx, &target, &[])
                .map_err(|e| StreamError(engine.http.redact(&e.to_string())))?;
            let resp = engine
                .http
                .send(&req, &self.stats, &self.name)
                .await
                .map_err(|e| StreamError(e.message))?;
            let ct = resp
                .headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let page = self.extractor.page(&resp.body, ct).map_err(|e| {
                StreamError(format!(
                    "{} {}: {}",
                    req.method,
                    engine.http.show_url(&req.url),
                    engine.http.redact(&e.0)
                ))
            })?;
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
            let count = page.records.len();
            buf.clear();
            let mut written = 0u64;
            let mut parents = Vec::new();
            for raw in &page.records {
                if let Some(limit) = self.limit {
                    if self.written.fetch_add(1, Relaxed) >= limit {
                        self.full.store(true, Relaxed);
                        break;
                    }
                }
                let needs_value = self.seen.is_some() || !self.children.is_empty();
                let value: Option<Value> = if needs_value {
                    Some(serde_json::from_str(raw.get()).map_err(|e| StreamError(e.to_string()))?)
                } else {
                    None
                };
                if let (Some(seen), Some(v)) = (&self.seen, &value) {
                    let key = primary_key(&self.stream, v, &include);
                    let fresh = seen.lock().map(|mut s| s.insert(key)).unwrap_or(true);
                    if !fresh {
                        continue;
                    }
                }
                write_line(&mut buf, raw, &include);
                written += 1;
                if let Some(v) = value {
                    if !self.children.is_empty() {
                        parents.push(Arc::new(v));
                    }
                }
            }
            if !buf.is_empty() {
                let mut guard = self
                    .sink
                    .lock()
                    .map_err(|_| StreamError("output lock poisoned".into()))?;
                match guard.as_mut() {
                    Some(s) => s
                        .write(&buf)
                        .map_err(|e| StreamError(format!("cannot write the output: {e}")))?,
                    None => return Err(StreamError("the output was already closed".into())),
                }
            }
            Stats::add(&self.stats.records, written);
            for p in parents {
                for c in &self.children {
                    // A child that stopped listening has failed on its own; keep going.
                    let _ = c.send(ParentMsg::Record(p.clone())).await;
                }
            }
            if self.full.load(Relaxed) {
                return Ok(Stop::MaxPages);
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
                tracing::debug!(stream = %self.name, "next page: {}", engine.http.show_url(u));
            }
        }
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

/// A record's primary key as one string (fields joined by a unit separator).
pub fn primary_key(stream: &Stream, record: &Value, include: &[(String, Value)]) -> String {
    let Some(pk) = &stream.primary_key else {
        return record.to_string();
    };
    pk.fields()
        .iter()
        .map(|f| {
            let v = record
                .get(*f)
                .or_else(|| include.iter().find(|(k, _)| k == f).map(|(_, v)| v));
            match v {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("\u{1f}")
}
