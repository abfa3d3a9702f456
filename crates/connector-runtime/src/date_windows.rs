//! Date windows (`incremental.windows`): an incremental stream's range, from the
//! low-water mark (or the saved cursor minus `lookback`, or `start`) to `end` (or the
//! time the run started), cut into half-open windows `[a, b)`, each fetched as its own
//! pass with `incremental.start = a` and `incremental.end = b`, several at once.
//!
//! A stream with `partitions`, and a child stream, do this per partition (a partition's
//! key, or a parent key): each has its own range from its own saved cursor or low-water
//! mark, and its own windows state in the state's `partition_windows`.
//!
//! Exactly-once: a window's records go to a spool of its own while it is fetched; when
//! the window is complete, the spool is appended to the output and the checkpoint that
//! covers it is saved (under one lock, so no other window's records are in between).
//! The state holds the low-water mark (everything before it is complete) and the
//! finished windows beyond it; a run killed mid-way fetches only the windows that are
//! not finished. When every window is finished, the state collapses to the ordinary
//! cursor (the highest written), so the next run starts there.
//!
//! The output is grouped by window, windows in the order they finish.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::cursor::CursorKind;
use crate::engine::Engine;
use crate::paginate::Stop;
use crate::partitions::PassInput;
use crate::records::window_stage::WindowStage;
use crate::state::{Position, StreamState};
use crate::stream::{StreamError, StreamRun};
use crate::window::{Inc, Window, shown};

/// A window's lines kept in memory up to this size, then in an unnamed temporary file:
/// a window of millions of records must not live in memory, `concurrency` times over.
const IN_MEMORY: usize = 2 * 1024 * 1024;

/// Bytes read from a spool file at a time when it is appended to the output.
const CHUNK: usize = 1024 * 1024;

/// The saved progress of a windowed run that has not finished every window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WindowsState {
    /// The low-water mark: every record before it is written.
    pub low: String,
    /// Finished windows `[start, end)` beyond the low-water mark.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<(String, String)>,
    /// The position the windowed run started from: records at its cursor with the same
    /// key and bytes were written before it, so no window writes them again.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub base: Position,
}

fn is_empty(p: &Position) -> bool {
    p == &Position::default()
}

/// One date window in flight: its own view of the incremental side, and its spool.
pub(crate) struct DateWindow {
    inc: Inc,
    spool: Spool,
    start: String,
    end: String,
}

/// A stream's windows for this run and the progress through them.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The windows to fetch, in time order.
    windows: Vec<(String, String)>,
    concurrency: usize,
    /// Where the range ends: `incremental.end`, or the time the run started.
    upper: String,
    base: Position,
    progress: Mutex<Progress>,
    /// Held while a finished window's spool goes out and its checkpoint is saved.
    flushing: Mutex<()>,
}

/// The low-water mark and the finished windows beyond it.
#[derive(Debug)]
struct Progress {
    low: String,
    done: Vec<(String, String)>,
}

impl Plan {
    /// The windows of a top-level stream with `incremental.windows` and no `partitions`;
    /// `None` otherwise.
    pub(crate) fn new(
        name: &str,
        stream: &connector_spec::Stream,
        inc: Option<&Inc>,
        now: OffsetDateTime,
    ) -> Result<Option<Self>, StreamError> {
        let (Some(inc), None, true) = (inc, &stream.parent, stream.partitions.is_empty()) else {
            return Ok(None);
        };
        let Some(spec) = &inc.spec.windows else {
            return Ok(None);
        };
        let (low, done, base) = match &inc.prior.windows {
            Some(w) => (w.low.clone(), w.done.clone(), w.base.clone()),
            None => {
                let lower = Window::new(inc, None)
                    .map_err(|e| plan_err(name, e.0))?
                    .lower;
                (lower, Vec::new(), inc.prior.position.clone())
            }
        };
        let upper = range_end(inc, now);
        Self::build(name, &inc.kind, spec, upper, (low, done, base)).map(Some)
    }

    /// The windows over `[low, upper)` minus `done`, starting from `base`.
    fn build(
        name: &str,
        kind: &CursorKind,
        spec: &connector_spec::DateWindows,
        upper: String,
        (low, done, base): (String, Vec<(String, String)>, Position),
    ) -> Result<Self, StreamError> {
        let windows =
            layout(kind, &low, &done, &upper, spec.size.get()).map_err(|e| plan_err(name, e))?;
        Ok(Self {
            windows,
            concurrency: spec.concurrency.max(1) as usize,
            upper,
            base,
            progress: Mutex::new(Progress { low, done }),
            flushing: Mutex::new(()),
        })
    }

    /// The windows state to save with `position` (the highest cursor written): `None`
    /// once every window is finished and a cursor was written, so the state is the
    /// ordinary cursor again.
    pub(crate) fn saved(
        &self,
        kind: &CursorKind,
        position: &Position,
    ) -> Result<Option<WindowsState>, StreamError> {
        let p = self
            .progress
            .lock()
            .map_err(|_| StreamError("windows lock poisoned".into()))?;
        let complete = compare(kind, &p.low, &self.upper)? != Ordering::Less;
        Ok(match (complete, &position.cursor) {
            (true, Some(_)) => None,
            // Nothing written at all: the next run starts where this one ended.
            (true, None) => Some(WindowsState {
                low: p.low.clone(),
                ..WindowsState::default()
            }),
            (false, _) => Some(WindowsState {
                low: p.low.clone(),
                done: p.done.clone(),
                base: self.base.clone(),
            }),
        })
    }

    /// Marks `[a, b)` finished and moves the low-water mark over every finished window
    /// that now touches it.
    fn finish(&self, kind: &CursorKind, a: &str, b: &str) -> Result<(), StreamError> {
        let mut p = self
            .progress
            .lock()
            .map_err(|_| StreamError("windows lock poisoned".into()))?;
        p.done.push((a.to_owned(), b.to_owned()));
        loop {
            let low = p.low.clone();
            let mut moved = false;
            let mut kept = Vec::with_capacity(p.done.len());
            for (s, e) in std::mem::take(&mut p.done) {
                if compare(kind, &e, &p.low)? != Ordering::Greater {
                    continue;
                }
                if compare(kind, &s, &p.low)? != Ordering::Greater {
                    p.low = e;
                    moved = true;
                } else {
                    kept.push((s, e));
                }
            }
            p.done = kept;
            if !moved || p.low == low {
                return Ok(());
            }
        }
    }
}

/// A plan that cannot be laid out, named after the stream's `windows` block.
fn plan_err(name: &str, e: String) -> StreamError {
    StreamError(format!("streams.{name}.incremental.windows: {e}"))
}

/// Where the range ends: `incremental.end`, or `now` (to the second).
fn range_end(inc: &Inc, now: OffsetDateTime) -> String {
    match &inc.end {
        Some(e) => e.clone(),
        None => written(&inc.kind, now.replace_nanosecond(0).unwrap_or(now)),
    }
}

/// The date windows of a stream with `partitions`, or of a child stream: each partition
/// (a partition's key, or a parent key) gets a plan of its own when its pass starts, from
/// its own saved windows state or cursor; every plan ends at the same `upper`.
pub(crate) struct Keyed {
    name: String,
    spec: connector_spec::DateWindows,
    upper: String,
    /// The partitions' unfinished windows as saved before this run.
    prior: BTreeMap<String, WindowsState>,
    /// The partitions this run has started.
    live: Mutex<BTreeMap<String, Live>>,
    /// Held while a finished window's spool goes out and its checkpoint is saved: one for
    /// the whole stream, because a checkpoint covers every partition's output.
    flushing: Mutex<()>,
}

/// A partition this run has started: its windows are running, or what it saves.
enum Live {
    Running(Arc<Plan>),
    Ended(Option<WindowsState>),
}

impl Keyed {
    /// For a stream with `incremental.windows` and `partitions` or a `parent`.
    pub(crate) fn new(
        name: &str,
        stream: &connector_spec::Stream,
        inc: Option<&Inc>,
        now: OffsetDateTime,
    ) -> Option<Self> {
        let inc = inc?;
        let spec = inc.spec.windows.as_ref()?;
        if stream.parent.is_none() && stream.partitions.is_empty() {
            return None;
        }
        Some(Self {
            name: name.to_owned(),
            spec: spec.clone(),
            upper: range_end(inc, now),
            prior: inc.prior.partition_windows.clone(),
            live: Mutex::new(BTreeMap::new()),
            flushing: Mutex::new(()),
        })
    }

    /// The plan of partition `key`, or `None` when this run has already started it (a
    /// value listed twice, a parent record seen twice): its range is covered already.
    fn start(&self, inc: &Inc, key: &str) -> Result<Option<Arc<Plan>>, StreamError> {
        let mut live = locked(&self.live)?;
        if live.contains_key(key) {
            return Ok(None);
        }
        let from = match self.prior.get(key) {
            Some(w) => (w.low.clone(), w.done.clone(), w.base.clone()),
            None => {
                let lower = Window::new(inc, Some(key))
                    .map_err(|e| plan_err(&self.name, e.0))?
                    .lower;
                let base = inc.prior.partitions.get(key).cloned().unwrap_or_default();
                (lower, Vec::new(), base)
            }
        };
        let plan = Plan::build(&self.name, &inc.kind, &self.spec, self.upper.clone(), from)?;
        let plan = Arc::new(plan);
        live.insert(key.to_owned(), Live::Running(plan.clone()));
        Ok(Some(plan))
    }

    /// Partition `key` ran all its windows: its plan gives way to what it saves.
    fn end(&self, inc: &Inc, key: &str, plan: &Plan) -> Result<(), StreamError> {
        let position = inc.position_of(key).map_err(|e| StreamError(e.0))?;
        let saved = plan.saved(&inc.kind, &position)?;
        locked(&self.live)?.insert(key.to_owned(), Live::Ended(saved));
        Ok(())
    }

    /// The partitions' unfinished windows to save, given their positions: the saved
    /// ones this run has not started, and those of the started ones.
    pub(crate) fn saved(
        &self,
        kind: &CursorKind,
        positions: &BTreeMap<String, Position>,
    ) -> Result<BTreeMap<String, WindowsState>, StreamError> {
        let mut out = self.prior.clone();
        let none = Position::default();
        for (key, live) in locked(&self.live)?.iter() {
            let saved = match live {
                Live::Running(plan) => plan.saved(kind, positions.get(key).unwrap_or(&none))?,
                Live::Ended(s) => s.clone(),
            };
            match saved {
                Some(s) => out.insert(key.clone(), s),
                None => out.remove(key),
            };
        }
        Ok(out)
    }
}

/// Locks a windows mutex, as a stream error.
fn locked<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, StreamError> {
    m.lock()
        .map_err(|_| StreamError("windows lock poisoned".into()))
}

/// Compares two cursor values, as a stream error.
fn compare(kind: &CursorKind, a: &str, b: &str) -> Result<Ordering, StreamError> {
    kind.compare(a, b).map_err(|e| StreamError(e.0))
}

/// An instant written the way the cursor is.
fn written(kind: &CursorKind, t: OffsetDateTime) -> String {
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    kind.normalize(&text)
}

/// The windows that cover `[low, upper)` minus the finished ones, each at most `size`
/// long, in time order.
fn layout(
    kind: &CursorKind,
    low: &str,
    done: &[(String, String)],
    upper: &str,
    size: std::time::Duration,
) -> Result<Vec<(String, String)>, String> {
    let step = time::Duration::try_from(size)
        .ok()
        .filter(|s| s.is_positive())
        .ok_or_else(|| "`size` must be a positive length".to_owned())?;
    let cmp = |a: &str, b: &str| kind.compare(a, b).map_err(|e| e.0);
    let mut done: Vec<&(String, String)> = done.iter().collect();
    let mut order_err = None;
    done.sort_by(|x, y| {
        cmp(&x.0, &y.0).unwrap_or_else(|e| {
            order_err.get_or_insert(e);
            Ordering::Equal
        })
    });
    if let Some(e) = order_err {
        return Err(e);
    }
    let mut gaps = Vec::new();
    let mut cur = low.to_owned();
    for (s, e) in done {
        if cmp(&cur, upper)? != Ordering::Less {
            break;
        }
        if cmp(s, &cur)? == Ordering::Greater {
            let end = if cmp(s, upper)? == Ordering::Less {
                s
            } else {
                upper
            };
            gaps.push((cur.clone(), end.to_owned()));
        }
        if cmp(e, &cur)? == Ordering::Greater {
            cur = e.clone();
        }
    }
    if cmp(&cur, upper)? == Ordering::Less {
        gaps.push((cur, upper.to_owned()));
    }
    let mut out = Vec::new();
    for (a, b) in gaps {
        split(kind, &a, &b, step, &mut out)?;
    }
    Ok(out)
}

/// Cuts `[a, b)` into windows of `step`, the last one shorter; refuses more than
/// [`connector_spec::DateWindows::MAX_WINDOWS`] in all.
fn split(
    kind: &CursorKind,
    a: &str,
    b: &str,
    step: time::Duration,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    let end = kind.instant(b).map_err(|e| e.0)?;
    let mut from = a.to_owned();
    let mut t = kind.instant(a).map_err(|e| e.0)?;
    loop {
        if out.len() >= connector_spec::DateWindows::MAX_WINDOWS {
            return Err(format!(
                "more than {} windows from `{}` to `{}`; make `size` longer or `start` later",
                connector_spec::DateWindows::MAX_WINDOWS,
                shown(a),
                shown(b)
            ));
        }
        let next = t.checked_add(step).filter(|n| *n < end);
        let Some(n) = next else {
            out.push((from, b.to_owned()));
            return Ok(());
        };
        let to = written(kind, n);
        // A cursor written to the day cannot hold a window of hours.
        if kind.compare(&to, &from).map_err(|e| e.0)? != Ordering::Greater {
            return Err(format!(
                "`size` is shorter than the cursor's own precision (`{}` after `{}`)",
                shown(&to),
                shown(&from)
            ));
        }
        t = kind.instant(&to).map_err(|e| e.0)?;
        out.push((std::mem::replace(&mut from, to.clone()), to));
    }
}

/// Why a saved windows state cannot be resumed, or `Ok`.
pub(crate) fn check_state(
    spec: &connector_spec::Incremental,
    kind: &CursorKind,
    prior: &StreamState,
) -> Result<(), String> {
    if prior.windows.is_none() && prior.partition_windows.is_empty() {
        return Ok(());
    }
    if spec.windows.is_none() {
        return Err("it holds unfinished date windows, but the spec has no `incremental.windows`; put `windows` back to finish them, or start the stream over with `runtime state reset`".into());
    }
    let all = prior.windows.iter().map(|w| (None, w)).chain(
        prior
            .partition_windows
            .iter()
            .map(|(k, w)| (Some(k.as_str()), w)),
    );
    for (key, w) in all {
        let values = std::iter::once(&w.low)
            .chain(w.done.iter().flat_map(|(a, b)| [a, b]))
            .chain(w.base.cursor.iter());
        for v in values {
            if let Err(e) = kind.parses(v) {
                return Err(match key {
                    Some(k) => format!("the date windows of partition `{}`: {e}", shown(k)),
                    None => format!("its date windows: {e}"),
                });
            }
        }
    }
    Ok(())
}

impl DateWindow {
    fn new(inc: &Inc, start: &str, end: &str, base: &Position) -> Self {
        Self {
            inc: inc.window_of(start, end, base),
            spool: Spool::default(),
            start: start.to_owned(),
            end: end.to_owned(),
        }
    }
}

/// The window stage of a pass: the date window's, or the stream's own.
pub(crate) fn stage<'a>(
    inc: Option<&'a Inc>,
    input: &PassInput<'a>,
    stream: &'a str,
) -> Result<Option<WindowStage<'a>>, StreamError> {
    Ok(match (input.window, inc) {
        (Some(w), _) => Some(WindowStage::new(&w.inc, None, stream)?.spooled(&w.spool)),
        (None, Some(inc)) => Some(WindowStage::new(inc, input.state_key(), stream)?),
        (None, None) => None,
    })
}

/// Runs a top-level stream: window by window when it has date windows, else one pass.
pub(crate) async fn run(engine: &Engine, run: &StreamRun) -> Result<Stop, StreamError> {
    let (Some(plan), Some(inc)) = (&run.windows, &run.inc) else {
        return run.run_partition(engine, None).await;
    };
    let input = PassInput::default();
    run_windows(engine, run, inc, plan, &plan.flushing, None, &input).await?;
    Ok(stopped(run))
}

/// One pass of a partitioned or child stream (`input` names the partition or the parent
/// record): window by window, from the partition's own saved state, when the stream has
/// date windows; else one pass.
pub(crate) async fn run_keyed(
    engine: &Engine,
    run: &StreamRun,
    input: &PassInput<'_>,
) -> Result<Stop, StreamError> {
    let (Some(keyed), Some(inc), None) = (&run.keyed_windows, &run.inc, input.window) else {
        return run.run_pass(engine, input).await;
    };
    let key = match (input.partition, input.parent) {
        (Some(p), _) => p.key(),
        (None, Some(parent)) => run.child_key(parent)?,
        (None, None) => return run.run_pass(engine, input).await,
    };
    let Some(plan) = keyed.start(inc, &key)? else {
        tracing::debug!(
            "stream {}: partition {} came up again in this run; its windows are covered",
            run.name,
            shown(&key)
        );
        return Ok(Stop::NoNext);
    };
    run_windows(engine, run, inc, &plan, &keyed.flushing, Some(&key), input).await?;
    keyed.end(inc, &key, &plan)?;
    Ok(stopped(run))
}

/// How a windowed run ended: at `--limit`, or with every window fetched.
fn stopped(run: &StreamRun) -> Stop {
    if run.is_full() {
        Stop::MaxPages
    } else {
        Stop::NoNext
    }
}

/// Runs a plan's windows, at most `concurrency` at once and no more than the API's budget
/// needs; `key` is the partition they belong to, `input` the rest of their pass.
async fn run_windows(
    engine: &Engine,
    run: &StreamRun,
    inc: &Inc,
    plan: &Plan,
    flushing: &Mutex<()>,
    key: Option<&str>,
    input: &PassInput<'_>,
) -> Result<(), StreamError> {
    let first_error: Mutex<Option<StreamError>> = Mutex::new(None);
    let gate = engine.http.pass_gate(plan.concurrency);
    futures::stream::iter(&plan.windows)
        .for_each_concurrent(plan.concurrency, |(a, b)| {
            let first_error = &first_error;
            let gate = &gate;
            async move {
                // After a failure, start no more windows: the finished ones are saved.
                let failed = first_error.lock().map(|g| g.is_some()).unwrap_or(true);
                if failed || run.is_full() {
                    return;
                }
                let _slot = gate.enter().await;
                if first_error.lock().map(|g| g.is_some()).unwrap_or(true) {
                    return;
                }
                let window = DateWindow::new(inc, a, b, &plan.base);
                let pass = PassInput {
                    window: Some(&window),
                    ..*input
                };
                let result = match run.run_pass(engine, &pass).await {
                    Ok(_) => finish(run, flushing, plan, inc, key, &window),
                    Err(e) => Err(e),
                };
                if let Err(e) = result
                    && let Ok(mut g) = first_error.lock()
                {
                    g.get_or_insert(StreamError(format!(
                        "window from {} to {}: {}",
                        shown(&window.start),
                        shown(&window.end),
                        e.0
                    )));
                }
            }
        })
        .await;
    match first_error.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A window is complete: its records go out, its position joins its partition's (or the
/// stream's), and the checkpoint that covers both is saved, all while no other window's
/// records go out.
fn finish(
    run: &StreamRun,
    flushing: &Mutex<()>,
    plan: &Plan,
    inc: &Inc,
    key: Option<&str>,
    w: &DateWindow,
) -> Result<(), StreamError> {
    let _one = locked(flushing)?;
    w.spool.drain(run)?;
    let (reached, _) = w.inc.positions().map_err(|e| StreamError(e.0))?;
    inc.absorb_into(key, &reached)
        .map_err(|e| StreamError(e.0))?;
    plan.finish(&inc.kind, &w.start, &w.end)?;
    // With children, the state moves only once their output is durable: at the end.
    if run.stages.children.is_empty() {
        run.checkpoint()?;
    }
    Ok(())
}

impl StreamRun {
    /// Writes a pass's lines: to the date window's spool, or to the output.
    pub(crate) fn write_lines(
        &self,
        pass: &crate::records::Pass<'_>,
        buf: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        match pass.window.as_ref().and_then(WindowStage::spool) {
            Some(s) => s.push(buf),
            None => self.write_out(buf),
        }
    }
}

/// A window's complete lines, held until the window is finished.
#[derive(Default)]
pub(crate) struct Spool(Mutex<SpoolInner>);

#[derive(Default)]
struct SpoolInner {
    mem: Vec<u8>,
    file: Option<std::fs::File>,
}

impl Spool {
    /// Takes `buf`'s lines and empties it.
    fn push(&self, buf: &mut Vec<u8>) -> Result<(), StreamError> {
        let err = |e: std::io::Error| {
            StreamError(format!(
                "cannot keep a date window's records in a temporary file: {e}"
            ))
        };
        let mut s = self
            .0
            .lock()
            .map_err(|_| StreamError("spool lock poisoned".into()))?;
        if s.file.is_none() && s.mem.len() + buf.len() > IN_MEMORY {
            let mut f = tempfile::tempfile().map_err(err)?;
            f.write_all(&s.mem).map_err(err)?;
            s.mem = Vec::new();
            s.file = Some(f);
        }
        match &mut s.file {
            Some(f) => f.write_all(buf).map_err(err)?,
            None => s.mem.extend_from_slice(buf),
        }
        buf.clear();
        Ok(())
    }

    /// Appends everything held to the stream's output, in pieces of whole lines.
    fn drain(&self, run: &StreamRun) -> Result<(), StreamError> {
        let err = |e: std::io::Error| {
            StreamError(format!(
                "cannot read a date window's records back from its temporary file: {e}"
            ))
        };
        let mut s = self
            .0
            .lock()
            .map_err(|_| StreamError("spool lock poisoned".into()))?;
        let mut mem = std::mem::take(&mut s.mem);
        run.write_out(&mut mem)?;
        let Some(mut f) = s.file.take() else {
            return Ok(());
        };
        f.rewind().map_err(err)?;
        let mut pending: Vec<u8> = Vec::with_capacity(CHUNK);
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let n = f.read(&mut chunk).map_err(err)?;
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&chunk[..n]);
            if let Some(i) = memchr::memrchr(b'\n', &pending) {
                let rest = pending.split_off(i + 1);
                run.write_out(&mut pending)?;
                pending = rest;
            }
        }
        run.write_out(&mut pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind() -> CursorKind {
        let spec: connector_spec::Incremental =
            serde_json::from_value(serde_json::json!({"cursor_field": "u", "start": "x"})).unwrap();
        CursorKind::new(&spec).unwrap()
    }

    fn day(d: u32) -> String {
        format!("2024-01-{d:02}T00:00:00Z")
    }

    const DAY: std::time::Duration = std::time::Duration::from_secs(86400);

    #[test]
    fn a_range_is_cut_into_half_open_windows_the_last_shorter() {
        let w = layout(&kind(), &day(1), &[], "2024-01-08T12:00:00Z", 3 * DAY).unwrap();
        assert_eq!(
            w,
            vec![
                (day(1), day(4)),
                (day(4), day(7)),
                (day(7), "2024-01-08T12:00:00Z".into())
            ]
        );
        assert!(
            layout(&kind(), &day(5), &[], &day(5), DAY)
                .unwrap()
                .is_empty()
        );
        assert!(
            layout(&kind(), &day(6), &[], &day(5), DAY)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn finished_windows_are_skipped_even_with_another_size() {
        let done = vec![(day(3), day(5)), (day(6), day(7))];
        let w = layout(&kind(), &day(1), &done, &day(9), 3 * DAY).unwrap();
        assert_eq!(
            w,
            vec![(day(1), day(3)), (day(5), day(6)), (day(7), day(9))]
        );
    }

    #[test]
    fn too_many_windows_or_a_step_finer_than_the_cursor_are_refused() {
        let e = layout(
            &kind(),
            "1990-01-01T00:00:00Z",
            &[],
            &day(1),
            std::time::Duration::from_secs(60),
        )
        .unwrap_err();
        assert!(e.contains("more than 100000 windows"), "{e}");
        let spec: connector_spec::Incremental = serde_json::from_value(
            serde_json::json!({"cursor_field": "u", "start": "x", "format": "date"}),
        )
        .unwrap();
        let by_day = CursorKind::new(&spec).unwrap();
        let e = layout(&by_day, "2024-01-01", &[], "2024-01-03", DAY / 2).unwrap_err();
        assert!(e.contains("precision"), "{e}");
        let ok = layout(&by_day, "2024-01-01", &[], "2024-01-03", DAY).unwrap();
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn the_low_water_mark_moves_over_contiguous_finished_windows_only() {
        let plan = Plan {
            windows: Vec::new(),
            concurrency: 2,
            upper: day(5),
            base: Position::default(),
            progress: Mutex::new(Progress {
                low: day(1),
                done: Vec::new(),
            }),
            flushing: Mutex::new(()),
        };
        let k = kind();
        let cursor = Position {
            cursor: Some(day(3)),
            ..Position::default()
        };
        plan.finish(&k, &day(2), &day(3)).unwrap();
        plan.finish(&k, &day(4), &day(5)).unwrap();
        let s = plan.saved(&k, &cursor).unwrap().unwrap();
        assert_eq!(s.low, day(1));
        assert_eq!(s.done, vec![(day(2), day(3)), (day(4), day(5))]);
        plan.finish(&k, &day(1), &day(2)).unwrap();
        let s = plan.saved(&k, &cursor).unwrap().unwrap();
        assert_eq!((s.low, s.done), (day(3), vec![(day(4), day(5))]));
        plan.finish(&k, &day(3), &day(4)).unwrap();
        assert_eq!(
            plan.saved(&k, &cursor).unwrap(),
            None,
            "collapsed to the cursor"
        );
        let nothing = plan.saved(&k, &Position::default()).unwrap().unwrap();
        assert_eq!(
            nothing.low,
            day(5),
            "nothing written: the next run starts at the end"
        );
    }

    #[test]
    fn a_saved_state_is_checked_before_it_is_used() {
        let spec: connector_spec::Incremental = serde_json::from_value(
            serde_json::json!({"cursor_field": "u", "start": "x", "windows": {"size": "1d"}}),
        )
        .unwrap();
        let mut prior = StreamState {
            windows: Some(WindowsState {
                low: day(1),
                done: vec![(day(2), "soon".into())],
                base: Position::default(),
            }),
            ..StreamState::default()
        };
        let e = check_state(&spec, &kind(), &prior).unwrap_err();
        assert!(e.contains("`soon`"), "{e}");
        prior.windows.as_mut().unwrap().done.clear();
        assert!(check_state(&spec, &kind(), &prior).is_ok());
        let plain = connector_spec::Incremental {
            windows: None,
            ..spec
        };
        let e = check_state(&plain, &kind(), &prior).unwrap_err();
        assert!(e.contains("unfinished date windows"), "{e}");
    }

    /// A partitioned stream's incremental side, 2-day windows, its range ending on the 9th.
    fn partitioned(prior: StreamState) -> (connector_spec::Stream, Inc) {
        let stream: connector_spec::Stream = serde_json::from_value(serde_json::json!({
            "path": "/e", "records": "$[*]", "primary_key": "id",
            "partitions": {"region": ["eu", "us", "ap"]},
            "incremental": {"cursor_field": "u", "param": "since", "end_param": "until",
                "start": day(1), "end": day(9), "lookback": "1d",
                "windows": {"size": "2d", "concurrency": 2}}
        }))
        .unwrap();
        let spec = stream.incremental.clone().unwrap();
        let now = OffsetDateTime::now_utc();
        (stream, crate::window::test_inc(spec, prior, now))
    }

    fn at(cursor: &str) -> Position {
        Position {
            cursor: Some(cursor.into()),
            ..Position::default()
        }
    }

    #[test]
    fn each_partition_plans_from_its_own_saved_state() {
        let eu = r#"{"region":"eu"}"#;
        let us = r#"{"region":"us"}"#;
        let ap = r#"{"region":"ap"}"#;
        let halfway = WindowsState {
            low: day(3),
            done: vec![(day(5), day(7))],
            base: at(&day(2)),
        };
        let prior = StreamState {
            partitions: [(us.to_owned(), at(&day(6)))].into(),
            partition_windows: [(eu.to_owned(), halfway.clone())].into(),
            ..StreamState::default()
        };
        let (stream, inc) = partitioned(prior);
        assert!(
            Plan::new("s", &stream, Some(&inc), OffsetDateTime::now_utc())
                .unwrap()
                .is_none()
        );
        let keyed = Keyed::new("s", &stream, Some(&inc), OffsetDateTime::now_utc()).unwrap();
        // Unfinished windows: only the gaps, from the saved base.
        let p = keyed.start(&inc, eu).unwrap().unwrap();
        assert_eq!(p.windows, vec![(day(3), day(5)), (day(7), day(9))]);
        assert_eq!(p.base, at(&day(2)));
        // A cursor: from the cursor minus the lookback, its position the base.
        let us_plan = keyed.start(&inc, us).unwrap().unwrap();
        assert_eq!(us_plan.windows, vec![(day(5), day(7)), (day(7), day(9))]);
        assert_eq!(us_plan.base, at(&day(6)));
        // Nothing saved: from `start`.
        let ap_plan = keyed.start(&inc, ap).unwrap().unwrap();
        assert_eq!(ap_plan.windows.len(), 4);
        assert!(
            keyed.start(&inc, ap).unwrap().is_none(),
            "a value seen twice"
        );

        // `ap` finishes its first window, `us` all of them; `eu` is untouched.
        let k = &inc.kind;
        ap_plan.finish(k, &day(1), &day(3)).unwrap();
        inc.absorb_into(Some(ap), &at("2024-01-02T05:00:00Z"))
            .unwrap();
        let (_, positions) = inc.positions().unwrap();
        let saved = keyed.saved(k, &positions).unwrap();
        assert_eq!(saved[eu], halfway, "as saved, while it runs");
        assert_eq!(saved[ap].low, day(3));
        assert_eq!(saved[ap].base, Position::default());
        assert_eq!(saved[us].low, day(5), "none finished yet");
        us_plan.finish(k, &day(5), &day(7)).unwrap();
        us_plan.finish(k, &day(7), &day(9)).unwrap();
        inc.absorb_into(Some(us), &at(&day(8))).unwrap();
        keyed.end(&inc, us, &us_plan).unwrap();
        let (_, positions) = inc.positions().unwrap();
        let saved = keyed.saved(k, &positions).unwrap();
        assert!(!saved.contains_key(us), "all done: the plain cursor again");
        assert_eq!(positions[us], at(&day(8)));
        // A partition that wrote nothing in its whole range starts at its end next time.
        let x = keyed.start(&inc, "x").unwrap().unwrap();
        for (a, b) in &x.windows {
            x.finish(k, a, b).unwrap();
        }
        keyed.end(&inc, "x", &x).unwrap();
        let saved = keyed.saved(k, &positions).unwrap();
        assert_eq!(saved["x"].low, day(9));
        assert!(saved["x"].done.is_empty());
    }

    #[test]
    fn a_bad_partition_windows_state_is_refused_and_old_states_still_read() {
        let text = r#"{"cursor": "2024-01-02T00:00:00Z", "output_bytes": 7,
            "partitions": {"{\"r\":\"eu\"}": {"cursor": "2024-01-03T00:00:00Z"}},
            "windows": {"low": "2024-01-01T00:00:00Z"}}"#;
        let old: StreamState = serde_json::from_str(text).unwrap();
        assert!(old.partition_windows.is_empty());
        assert!(
            !serde_json::to_string(&old)
                .unwrap()
                .contains("partition_windows"),
            "not written when empty"
        );
        let (stream, _) = partitioned(StreamState::default());
        let spec = stream.incremental.unwrap();
        assert!(check_state(&spec, &kind(), &old).is_ok());
        let mut prior = old.clone();
        prior.partition_windows.insert(
            r#"{"r":"eu"}"#.into(),
            WindowsState {
                low: "yesterday".into(),
                ..WindowsState::default()
            },
        );
        let e = check_state(&spec, &kind(), &prior).unwrap_err();
        assert!(
            e.contains(r#"partition `{"r":"eu"}`"#) && e.contains("`yesterday`"),
            "{e}"
        );
        let back: StreamState =
            serde_json::from_str(&serde_json::to_string(&prior).unwrap()).unwrap();
        assert_eq!(back, prior);
        prior.windows = None;
        let plain = connector_spec::Incremental {
            windows: None,
            ..spec
        };
        let e = check_state(&plain, &kind(), &prior).unwrap_err();
        assert!(e.contains("unfinished date windows"), "{e}");
    }

    #[test]
    fn a_spool_keeps_whole_lines_in_memory_then_in_a_file() {
        let s = Spool::default();
        let line = format!("{{\"x\":\"{}\"}}\n", "y".repeat(1000));
        let mut total = Vec::new();
        for _ in 0..3000 {
            let mut buf = line.clone().into_bytes();
            total.extend_from_slice(&buf);
            s.push(&mut buf).unwrap();
            assert!(buf.is_empty());
        }
        assert!(s.0.lock().unwrap().file.is_some(), "over the memory limit");
        let mut back = Vec::new();
        {
            let mut g = s.0.lock().unwrap();
            let mut f = g.file.take().unwrap();
            f.rewind().unwrap();
            back.extend_from_slice(&g.mem);
            f.read_to_end(&mut back).unwrap();
        }
        assert_eq!(back, total);
    }
}
