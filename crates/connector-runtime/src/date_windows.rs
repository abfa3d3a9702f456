//! Date windows (`incremental.windows`): a top-level incremental stream's range, from the
//! low-water mark (or the saved cursor minus `lookback`, or `start`) to `end` (or the
//! time the run started), cut into half-open windows `[a, b)`, each fetched as its own
//! pass with `incremental.start = a` and `incremental.end = b`, several at once.
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
use std::io::{Read, Seek, Write};
use std::sync::Mutex;

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
    /// The windows of a top-level stream with `incremental.windows`; `None` otherwise.
    pub(crate) fn new(
        name: &str,
        stream: &connector_spec::Stream,
        inc: Option<&Inc>,
        now: OffsetDateTime,
    ) -> Result<Option<Self>, StreamError> {
        let (Some(inc), None) = (inc, &stream.parent) else {
            return Ok(None);
        };
        let Some(spec) = &inc.spec.windows else {
            return Ok(None);
        };
        let err = |e: String| StreamError(format!("streams.{name}.incremental.windows: {e}"));
        let upper = match &inc.end {
            Some(e) => e.clone(),
            None => written(&inc.kind, now.replace_nanosecond(0).unwrap_or(now)),
        };
        let (low, done, base) = match &inc.prior.windows {
            Some(w) => (w.low.clone(), w.done.clone(), w.base.clone()),
            None => {
                let lower = Window::new(inc, None).map_err(|e| err(e.0))?.lower;
                (lower, Vec::new(), inc.prior.position.clone())
            }
        };
        let windows = layout(&inc.kind, &low, &done, &upper, spec.size.get()).map_err(err)?;
        Ok(Some(Self {
            windows,
            concurrency: spec.concurrency.max(1) as usize,
            upper,
            base,
            progress: Mutex::new(Progress { low, done }),
            flushing: Mutex::new(()),
        }))
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
    let Some(w) = &prior.windows else {
        return Ok(());
    };
    if spec.windows.is_none() {
        return Err("it holds unfinished date windows, but the spec has no `incremental.windows`; put `windows` back to finish them, or start the stream over with `runtime state reset`".into());
    }
    let values = std::iter::once(&w.low)
        .chain(w.done.iter().flat_map(|(a, b)| [a, b]))
        .chain(w.base.cursor.iter());
    for v in values {
        if let Err(e) = kind.parses(v) {
            return Err(format!("its date windows: {e}"));
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
    let first_error: Mutex<Option<StreamError>> = Mutex::new(None);
    // At most `concurrency` windows, and no more than the API's budget needs.
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
                let input = PassInput {
                    window: Some(&window),
                    ..PassInput::default()
                };
                let result = match run.run_pass(engine, &input).await {
                    Ok(_) => finish(run, plan, inc, &window),
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
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(if run.is_full() {
        Stop::MaxPages
    } else {
        Stop::NoNext
    })
}

/// A window is complete: its records go out, its position joins the stream's, and the
/// checkpoint that covers both is saved, all while no other window's records go out.
fn finish(run: &StreamRun, plan: &Plan, inc: &Inc, w: &DateWindow) -> Result<(), StreamError> {
    let _one = plan
        .flushing
        .lock()
        .map_err(|_| StreamError("windows lock poisoned".into()))?;
    w.spool.drain(run)?;
    let (reached, _) = w.inc.positions().map_err(|e| StreamError(e.0))?;
    inc.absorb(&reached).map_err(|e| StreamError(e.0))?;
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
