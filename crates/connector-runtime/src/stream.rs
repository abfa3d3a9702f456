//! One stream's pages: request, send, extract, write, paginate; once, or once per parent
//! record for a child stream.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use connector_spec::{JsonPath, Pagination, Stream};
use serde_json::Value;

use crate::engine::Engine;
use crate::extract::Extractor;
use crate::paginate::{Paginator, Stop};
use crate::partitions::PassInput;
use crate::records::dedup::{Dedup, Limit};
use crate::records::fetch::{self, CutShort};
use crate::records::filter::Filter;
use crate::records::output::Lines;
use crate::records::transform::Transform;
use crate::records::window_stage::WindowStage;
use crate::records::{Child, Page, Pass, Stages, children::Children};
use crate::report::Reporter;
use crate::request::BodyTemplate;
use crate::sink::{Destination, RecordSink, StreamTarget, WriteMode};
use crate::state::StreamState;
use crate::stats::Stats;
use crate::window::{Inc, shown, tolerance_text};

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
    pub(crate) extractor: Extractor,
    pub(crate) body: Option<BodyTemplate>,
    sink: Mutex<Option<Box<dyn RecordSink>>>,
    pub(crate) inc: Option<Inc>,
    /// Its date windows, for a top-level stream with `incremental.windows`.
    pub(crate) windows: Option<crate::date_windows::Plan>,
    /// Its date windows per partition, for a stream with `partitions` or a `parent`.
    pub(crate) keyed_windows: Option<crate::date_windows::Keyed>,
    /// Appends and checkpoints (incremental, or under an incremental parent).
    appends: bool,
    /// False with `--limit`: a partial look must not move the state.
    save: bool,
    /// The record stages that outlive a partition: transform, filter, dedup, limit, children.
    pub(crate) stages: Stages,
    warned_missing: AtomicBool,
    warned_future: AtomicBool,
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
        children: Vec<Child>,
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
        let windows = crate::date_windows::Plan::new(
            name,
            stream,
            inc.as_ref(),
            time::OffsetDateTime::now_utc(),
        )?;
        let keyed_windows = crate::date_windows::Keyed::new(
            name,
            stream,
            inc.as_ref(),
            time::OffsetDateTime::now_utc(),
        );
        let dedup = stream.dedup && stream.primary_key.is_some();
        let stages = Stages {
            transform: Transform::new(engine.spec.transform_of(stream), name),
            filter: Filter::new(stream.filter.as_ref(), name),
            dedup: dedup.then(Dedup::default),
            limit: Limit::new(limit),
            children: Children::new(children),
        };
        Ok(Self {
            name: name.to_owned(),
            stream: stream.clone(),
            stats: Arc::new(Stats::default()),
            extractor,
            body: stream.body.as_ref().map(BodyTemplate::new),
            sink: Mutex::new(Some(sink)),
            inc,
            windows,
            keyed_windows,
            appends,
            save: limit.is_none(),
            stages,
            warned_missing: AtomicBool::new(false),
            warned_future: AtomicBool::new(false),
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
            if let Some(w) = &self.windows {
                state.windows = w.saved(&inc.kind, &state.position)?;
            }
            if let Some(k) = &self.keyed_windows {
                state.partition_windows = k.saved(&inc.kind, &state.partitions)?;
            }
        }
        Ok(state)
    }

    /// Has the sink make the output durable, then save the state that covers exactly it.
    pub(crate) fn checkpoint(&self) -> Result<(), StreamError> {
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
    pub(crate) fn write_out(&self, buf: &mut Vec<u8>) -> Result<(), StreamError> {
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
        self.stages.children.end(ok).await;
    }

    /// Pages through the stream once (for a child stream: for one parent record, window
    /// by window when it has date windows).
    pub async fn run_partition(
        &self,
        engine: &Engine,
        parent: Option<&Value>,
    ) -> Result<Stop, StreamError> {
        let input = PassInput {
            parent,
            partition: None,
            window: None,
        };
        crate::date_windows::run_keyed(engine, self, &input).await
    }

    /// Pages through one pass of the stream (a parent record, a partition, or the whole
    /// stream): each page is fetched, selected and run through the record stages (see
    /// [`crate::records`]).
    pub(crate) async fn run_pass(
        &self,
        engine: &Engine,
        input: &PassInput<'_>,
    ) -> Result<Stop, StreamError> {
        let pass = self.pass(input)?;
        let mut ctx = self.context(engine, input, &pass);
        let extra = pass
            .window
            .as_ref()
            .map(|w| w.params().to_vec())
            .unwrap_or_default();
        let mut pager = Paginator::new(&self.stream.pagination);
        // Offset and page-number pages may be fetched ahead once the first tells the total.
        let ahead = self.stream.pagination.page_concurrency() > 1;
        let mut target = pager.first();
        let mut cut = CutShort::default();
        // One buffer for every page of the pass: a page's lines reuse the capacity the
        // previous page grew, instead of allocating and growing it again.
        let mut lines = Lines::new();
        loop {
            if self.is_full() {
                return Ok(Stop::MaxPages);
            }
            if let Value::Object(m) = &mut ctx
                && !matches!(self.stream.pagination, Pagination::None)
            {
                m.insert("page".into(), pager.vars());
            }
            let req = fetch::request(engine, self, &ctx, &target, &extra)?;
            let resp = match fetch::send(engine, self, &req).await? {
                Ok(resp) => resp,
                // An error rule said skip or end.
                Err(stop) => return Ok(stop),
            };
            let page = match Page::select(&self.extractor, &resp) {
                Ok(p) => p,
                Err(e) => {
                    cut.again(engine, self, &req, e).await?;
                    continue;
                }
            };
            cut.reset();
            let step = self.take_page(engine, &pass, &ctx, &mut pager, page, &req, &mut lines);
            target = match step.await? {
                Ok(t) => t,
                Err(stop) => return Ok(stop),
            };
            if ahead && pager.pages() == 1 && pager.planned_pages().is_some_and(|p| p > 2) {
                let rest = crate::parallel_pages::Rest {
                    pass: &pass,
                    ctx,
                    extra: &extra,
                    pager,
                    lines,
                };
                return crate::parallel_pages::run(engine, self, rest).await;
            }
        }
    }

    /// A fetched page through the stages and out, then the paginator's next target, or
    /// why the pass ends there.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn take_page(
        &self,
        engine: &Engine,
        pass: &Pass<'_>,
        ctx: &Value,
        pager: &mut Paginator,
        mut page: Page<'_>,
        req: &crate::http::Outgoing,
        lines: &mut Lines,
    ) -> Result<Result<crate::paginate::Target, Stop>, StreamError> {
        Stats::add(&self.stats.pages, 1);
        self.warn_missing(engine, &page, req);
        // `stop_when` and `next_record` read the records as the API sent them.
        let keep = pager
            .cut(&page.records, ctx)
            .map_err(|e| StreamError(format!("{}: {}", self.name, e.0)))?;
        page.records.truncate(keep);
        // What transforms and filters read besides `record`: config, parent, page, incremental.
        let base = self
            .stages
            .templates()
            .then(|| minijinja::Value::from(minijinja::value::Serde(ctx)));
        let parents = self.run_page(engine, pass, &page, base.as_ref(), lines)?;
        self.stages.children.feed(parents).await;
        if self.is_full() {
            return Ok(Err(Stop::MaxPages));
        }
        self.checkpoint_sorted(pass)?;
        fetch::next(engine, self, pager, &page, req)
    }

    /// The stages of one pass: the parent's partition key and `include` fields, the window.
    fn pass<'a>(&'a self, input: &PassInput<'a>) -> Result<Pass<'a>, StreamError> {
        let (Some(pr), Some(p)) = (&self.stream.parent, input.parent) else {
            let window = crate::date_windows::stage(self.inc.as_ref(), input, &self.name)?;
            return Ok(Pass {
                window,
                include: Vec::new(),
            });
        };
        let include = pr
            .include
            .iter()
            .map(|(new, field)| (new.clone(), p.get(field).cloned().unwrap_or(Value::Null)))
            .collect();
        let partition = self.child_key(p)?;
        let window = match (&self.inc, input.window) {
            (_, Some(_)) => crate::date_windows::stage(self.inc.as_ref(), input, &self.name)?,
            (Some(inc), None) => Some(WindowStage::new(inc, Some(partition), &self.name)?),
            (None, None) => None,
        };
        Ok(Pass { window, include })
    }

    /// The key a child stream keeps a parent record's state under: its `parent.key`.
    pub(crate) fn child_key(&self, p: &Value) -> Result<String, StreamError> {
        let Some(pr) = &self.stream.parent else {
            return Err(StreamError(format!("{}: not a child stream", self.name)));
        };
        match p.get(&pr.key) {
            None | Some(Value::Null) => Err(StreamError(format!(
                "a record of parent stream {} has no `{}` (streams.{}.parent.key), so its children cannot be fetched; first bytes: {}",
                pr.stream,
                pr.key,
                self.name,
                crate::http::snippet(p.to_string().as_bytes())
            ))),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Ok(v.to_string()),
        }
    }

    /// What the pass's templates read: config, the parent record, the window.
    fn context(&self, engine: &Engine, input: &PassInput<'_>, pass: &Pass<'_>) -> Value {
        let mut ctx = engine.context();
        if let Value::Object(m) = &mut ctx {
            if let Some(p) = input.parent {
                m.insert("parent".into(), p.clone());
            }
            input.add_vars(m);
            // For specs that place the window themselves (a body filter, a path segment).
            if let Some(w) = &pass.window {
                m.insert("incremental".into(), w.vars());
            }
        }
        ctx
    }

    /// Says once per stream that the records path matched nothing in a body.
    fn warn_missing(&self, engine: &Engine, page: &Page<'_>, req: &crate::http::Outgoing) {
        if !(page.records.is_empty() && page.path_missing)
            || self.warned_missing.swap(true, Relaxed)
        {
            return;
        }
        // The keys are the API's text: escaped, and cut when there are many.
        let keys = crate::printable::api_text(&page.top_keys());
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

    /// Sorted by the cursor: everything up to here is complete, so it can be saved.
    /// Not with children in the run: their output must be durable before the parent's
    /// state moves past the records that fed them.
    fn checkpoint_sorted(&self, pass: &Pass<'_>) -> Result<(), StreamError> {
        let whole = pass.window.as_ref().is_some_and(|w| {
            w.inc().spec.sorted
                && (!w.is_partition() || crate::partitions::one_at_a_time(&self.stream))
        });
        if whole && self.stages.children.is_empty() {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Whether `--limit` is reached, so every partition stops.
    pub(crate) fn is_full(&self) -> bool {
        self.stages.limit.is_full()
    }

    /// Says once per stream that a record's cursor lay too far ahead to be saved.
    pub(crate) fn warn_future(&self, engine: &Engine, inc: &Inc, label: &str, cursor: &str) {
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
        Pagination::Cursor { next, has_more, .. } => next.iter().chain(has_more).collect(),
        Pagination::NextUrl { next, has_more, .. } => {
            std::iter::once(next).chain(has_more).collect()
        }
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
