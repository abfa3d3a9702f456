//! The record path of one page, as a sequence of small stages:
//!
//! fetch (request, send, retry a body cut short) -> select (records out of the body, a
//! [`Page`]) -> per record: transform -> window -> filter -> dedup -> limit -> cursor ->
//! output -> children; then checkpoint and the paginator's next target (fetch again).
//!
//! Transformations run first, so the primary key, the cursor, the filter and the output
//! all see the transformed record. The window runs before the filter so a record the
//! filter drops still moves the position only when it lies inside the window.
//!
//! A stream that needs no parsed record (no transform, filter, dedup, window, children
//! or `include`) never parses one: its lines are the bytes the API sent.

pub(crate) mod children;
pub(crate) mod dedup;
pub(crate) mod fetch;
pub(crate) mod filter;
pub(crate) mod output;
pub(crate) mod select;
pub(crate) mod transform;
pub(crate) mod window_stage;

use std::sync::Arc;

use serde_json::Value;

pub use children::Child;
pub use select::Page;

use crate::engine::Engine;
use crate::stats::Stats;
use crate::stream::{StreamError, StreamRun, primary_key};
use crate::window::digest;
use children::{Children, ForChildren};
use dedup::{Dedup, Limit};
use filter::Filter;
use output::Lines;
use transform::Transform;
use window_stage::WindowStage;

/// One record on its way through the stages: the bytes as sent, the parsed value when a
/// stage reads it, and the re-serialised text once a transformation changed it.
pub(crate) struct Rec<'a> {
    raw: &'a str,
    value: Option<Value>,
    text: Option<String>,
}

impl<'a> Rec<'a> {
    /// A record; parsed only when `parse` says a stage needs it.
    // Inlined: on the raw-bytes path this is a few moves per record, not a call.
    #[inline]
    pub(crate) fn new(raw: &'a str, parse: bool) -> Result<Self, StreamError> {
        if !parse {
            return Ok(Self {
                raw,
                value: None,
                text: None,
            });
        }
        Self::parsed(raw)
    }

    /// A record with its parsed value.
    fn parsed(raw: &'a str) -> Result<Self, StreamError> {
        let value = serde_json::from_str(raw).map_err(|e| StreamError(e.to_string()))?;
        Ok(Self {
            raw,
            value: Some(value),
            text: None,
        })
    }

    /// The parsed record, when it was parsed.
    #[inline]
    pub(crate) fn value(&self) -> Option<&Value> {
        self.value.as_ref()
    }

    /// The record's JSON as it is written: the bytes sent, unless a transformation
    /// changed it.
    #[inline]
    pub(crate) fn text(&self) -> &str {
        self.text.as_deref().unwrap_or(self.raw)
    }

    /// A digest of [`text`](Self::text), to recognise the record at the window's boundary.
    pub(crate) fn digest(&self) -> String {
        digest(self.text())
    }

    /// Runs the transformations; a changed record is written from its new value.
    fn transform(&mut self, t: &Transform, base: &minijinja::Value) -> Result<(), StreamError> {
        if let Some(v) = &mut self.value
            && t.apply(base, v)?
        {
            self.text = Some(serde_json::to_string(v).map_err(|e| StreamError(e.to_string()))?);
        }
        Ok(())
    }

    fn into_value(self) -> Option<Value> {
        self.value
    }
}

/// The stages that live as long as the stream (shared by its partitions).
#[derive(Default)]
pub(crate) struct Stages {
    pub(crate) transform: Option<Transform>,
    pub(crate) filter: Option<Filter>,
    pub(crate) dedup: Option<Dedup>,
    pub(crate) limit: Limit,
    pub(crate) children: Children,
}

impl Stages {
    /// Whether a record must be parsed in a pass with these partition stages.
    fn parse(&self, pass: &Pass<'_>) -> bool {
        self.transform.is_some()
            || self.filter.is_some()
            || self.dedup.is_some()
            || !self.children.is_empty()
            || pass.window.is_some()
            || !pass.include.is_empty()
    }

    /// Whether any stage evaluates templates over the record.
    pub(crate) fn templates(&self) -> bool {
        self.transform.is_some() || self.filter.is_some()
    }
}

/// The stages of one pass (a partition: one parent record, or the whole stream).
pub(crate) struct Pass<'s> {
    /// The incremental window, for an incremental stream.
    pub(crate) window: Option<WindowStage<'s>>,
    /// A child's `include` fields, taken from its parent record.
    pub(crate) include: Vec<(String, Value)>,
}

impl StreamRun {
    /// Runs a page's records through the stages and writes them; returns the records
    /// for the children. `base` is what templates read besides `record` (present when
    /// a transform or filter needs it). `lines` is the pass's buffer, empty when it
    /// returns normally.
    pub(crate) fn run_page(
        &self,
        engine: &Engine,
        pass: &Pass<'_>,
        page: &Page<'_>,
        base: Option<&minijinja::Value>,
        lines: &mut Lines,
    ) -> Result<Vec<ForChildren>, StreamError> {
        let st = &self.stages;
        let parse = st.parse(pass);
        if !parse {
            return self.run_plain(page, lines);
        }
        let mut written = 0u64;
        let mut parents = Vec::new();
        for raw in &page.records {
            let mut rec = Rec::new(raw.get(), parse)?;
            if let (Some(t), Some(b)) = (&st.transform, base) {
                rec.transform(t, b)?;
            }
            let key = match rec.value() {
                Some(v) if st.dedup.is_some() || pass.window.is_some() => {
                    Some(primary_key(&self.stream, v, &pass.include))
                }
                _ => None,
            };
            let hash = pass.window.as_ref().map(|_| rec.digest());
            if let (Some(w), Some(v), Some(k), Some(h)) = (&pass.window, rec.value(), &key, &hash)
                && !w.keeps(v, k, h)?
            {
                // Unchanged, so not written; a child with `all_records` still sees it.
                if st.children.want_all() && self.filter_keeps(base, v)? {
                    parents.extend(rec.into_value().map(|v| (Arc::new(v), false)));
                }
                continue;
            }
            if let (Some(v), Some(b), Some(f)) = (rec.value(), base, &st.filter)
                && !f.keeps(b, v)?
            {
                // Dropped, but the position still moves past it: a filtered stream
                // never fetches the same records again.
                if let (Some(w), Some(k), Some(h)) = (&pass.window, key, hash) {
                    self.track(engine, w, v, k, h, written)?;
                }
                Stats::add(&self.stats.filtered, 1);
                continue;
            }
            if let (Some(d), Some(k)) = (&st.dedup, &key)
                && !d.fresh(k)
            {
                continue;
            }
            if !st.limit.take() {
                break;
            }
            if let (Some(w), Some(v), Some(k), Some(h)) = (&pass.window, rec.value(), key, hash) {
                self.track(engine, w, v, k, h, written)?;
            }
            lines.push(&rec, &pass.include);
            written += 1;
            if lines.is_full() {
                self.write_lines(pass, lines.buf())?;
            }
            if !st.children.is_empty() {
                parents.extend(rec.into_value().map(|v| (Arc::new(v), true)));
            }
        }
        self.write_lines(pass, lines.buf())?;
        Stats::add(&self.stats.records, written);
        st.limit.settle();
        Ok(parents)
    }

    /// [`run_page`](Self::run_page) for a stream no stage reads (no transform, filter,
    /// dedup, window, children or `include`): each record's bytes go straight to the
    /// lines, and only the limit can stop the page.
    fn run_plain(
        &self,
        page: &Page<'_>,
        lines: &mut Lines,
    ) -> Result<Vec<ForChildren>, StreamError> {
        let limit = &self.stages.limit;
        let mut written = 0u64;
        for raw in &page.records {
            if !limit.take() {
                break;
            }
            lines.push_text(raw.get());
            written += 1;
            if lines.is_full() {
                self.write_out(lines.buf())?;
            }
        }
        self.write_out(lines.buf())?;
        Stats::add(&self.stats.records, written);
        limit.settle();
        Ok(Vec::new())
    }

    /// Whether the stream's filter (if any) keeps the record.
    fn filter_keeps(
        &self,
        base: Option<&minijinja::Value>,
        v: &Value,
    ) -> Result<bool, StreamError> {
        match (&self.stages.filter, base) {
            (Some(f), Some(b)) => f.keeps(b, v),
            _ => Ok(true),
        }
    }

    /// Moves the incremental position past a record (written or filtered out).
    fn track(
        &self,
        engine: &Engine,
        w: &WindowStage<'_>,
        record: &Value,
        key: String,
        hash: String,
        written_in_page: u64,
    ) -> Result<(), StreamError> {
        let label = match &self.stream.primary_key {
            Some(_) => format!("with key {}", crate::window::shown(&key)),
            None => format!(
                "number {}",
                self.stats
                    .records
                    .load(std::sync::atomic::Ordering::Relaxed)
                    + written_in_page
                    + 1
            ),
        };
        if let Some(c) = w.track(record, key, hash)? {
            self.warn_future(engine, w.inc(), &label, &c);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untouched_record_keeps_its_bytes() {
        let raw = r#"{"b": 1.50, "a": 2}"#;
        let fast = Rec::new(raw, false).unwrap();
        assert!(fast.value().is_none(), "not parsed when no stage reads it");
        assert_eq!(fast.text(), r#"{"b": 1.50, "a": 2}"#);
        let steps: Vec<connector_spec::transform::Step> =
            serde_json::from_str(r#"[{"remove": "zz"}]"#).unwrap();
        let noop = Transform::new(&steps, "s").unwrap();
        let mut rec = Rec::new(raw, true).unwrap();
        rec.transform(&noop, &minijinja::Value::from(())).unwrap();
        assert_eq!(
            rec.text(),
            raw,
            "a step that changed nothing keeps the bytes"
        );
        assert_eq!(rec.digest(), digest(raw));
        let steps: Vec<connector_spec::transform::Step> =
            serde_json::from_str(r#"[{"remove": "a"}]"#).unwrap();
        let t = Transform::new(&steps, "s").unwrap();
        rec.transform(&t, &minijinja::Value::from(())).unwrap();
        assert_eq!(rec.text(), r#"{"b":1.5}"#);
        assert_ne!(rec.digest(), digest(raw));
    }
}
