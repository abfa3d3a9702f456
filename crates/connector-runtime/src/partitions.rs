//! Partitions: a stream's passes over the cartesian product of its `partitions` lists
//! (literal, a config list, or a field of another stream's records), each pass reading
//! its values as `partition.<name>` and keeping its incremental state under its own key.
//!
//! A list read from another stream uses the child-stream machinery: the other stream
//! runs first and sends its records over the same channel as to a child, with the same
//! end handshake, so it saves its own state only once this stream's output is durable.

use std::collections::HashSet;
use std::sync::Mutex;

use connector_spec::Stream;
use connector_spec::partitions::PartitionList;
use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::paginate::Stop;
use crate::partition_lists::Inbox;
use crate::stream::{ParentMsg, StreamError, StreamRun};
use crate::window::shown;

/// Most passes one stream runs (the product of its lists), so a typo in a config list
/// cannot start an unbounded run.
pub const MAX_PASSES: u64 = 1_000_000;

/// Most distinct values a list read from another stream collects (each is remembered
/// to drop duplicates).
pub const MAX_VALUES: usize = 1_000_000;

/// What one pass of a stream reads besides the config: a parent record (child streams),
/// a partition (streams with `partitions`), a date window (`incremental.windows`).
#[derive(Clone, Copy, Default)]
pub(crate) struct PassInput<'a> {
    /// The parent record of a child stream's pass.
    pub(crate) parent: Option<&'a Value>,
    /// The partition of a partitioned stream's pass.
    pub(crate) partition: Option<&'a Partition>,
    /// The date window of a windowed stream's pass.
    pub(crate) window: Option<&'a crate::date_windows::DateWindow>,
}

impl<'a> PassInput<'a> {
    /// The key the pass's incremental state is kept under, for a partition.
    pub(crate) fn state_key(&self) -> Option<String> {
        self.partition.map(Partition::key)
    }

    /// Adds `partition` to a template context.
    pub(crate) fn add_vars(&self, ctx: &mut Map<String, Value>) {
        if let Some(p) = self.partition {
            ctx.insert("partition".into(), Value::Object(p.values.clone()));
        }
    }
}

/// One combination of partition values, by list name in declared order.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    values: Map<String, Value>,
}

impl Partition {
    /// The stable key of its incremental state: the values as a compact JSON object in
    /// declared order, e.g. `{"repo":"acme/api","state":"open"}`.
    pub fn key(&self) -> String {
        serde_json::to_string(&self.values).unwrap_or_default()
    }
}

/// A stream a stream waits for: its parent, or the stream one of its partition lists
/// reads; the latter gets every record the other stream fetched.
pub(crate) struct Upstream<'a> {
    /// The other stream.
    pub stream: &'a str,
    /// The partition list it fills; `None` for the parent.
    pub list: Option<&'a str>,
    /// Whether it sends the records its incremental window drops too.
    pub all_records: bool,
}

/// Every [`Upstream`] of a stream, one per channel to open.
pub(crate) fn upstreams(stream: &Stream) -> Vec<Upstream<'_>> {
    stream
        .upstreams()
        .into_iter()
        .map(|e| Upstream {
            stream: e.stream,
            list: e.list,
            all_records: match (e.list, &stream.parent) {
                (None, Some(p)) => p.all_records,
                _ => true,
            },
        })
        .collect()
}

/// Whether a stream runs through [`run`].
pub(crate) fn declared(stream: &Stream) -> bool {
    !stream.partitions.is_empty()
}

/// Whether a partitioned stream runs one pass at a time, so a checkpoint in a pass covers
/// no half-written page of another pass (a record's position moves before its page is
/// written).
pub(crate) fn one_at_a_time(stream: &Stream) -> bool {
    declared(stream) && stream.partition_concurrency.unwrap_or(1) <= 1
}

/// One list, resolved: its values, or `None` for a list read from another stream.
pub(crate) struct List {
    pub(crate) name: String,
    pub(crate) values: Option<Vec<Value>>,
}

/// Runs every pass of a partitioned stream; `inboxes` carry the records of the streams
/// its lists read. One such list streams its values as they arrive; with several, each
/// is collected whole first. The first failed pass fails the stream and starts no more.
pub(crate) async fn run(
    engine: &Engine,
    run: &StreamRun,
    mut inboxes: Vec<Inbox>,
) -> Result<Stop, StreamError> {
    let mut lists = resolve(engine, &run.name, &run.stream)?;
    if inboxes.len() > 1 {
        crate::partition_lists::collect(&run.stream, &mut lists, std::mem::take(&mut inboxes))
            .await?;
    }
    let passes = Passes::new(engine, run);
    match inboxes.pop().map(|(_, rx)| rx) {
        None => {
            let total = count(&lists)?;
            if total == 0 {
                tracing::warn!(
                    "stream {}: a partition list is empty, so the stream makes no request",
                    run.name
                );
            }
            futures::stream::iter(0..total)
                .for_each_concurrent(passes.concurrency, |i| {
                    let p = nth(&lists, i, None);
                    let passes = &passes;
                    async move { passes.one(engine, &p).await }
                })
                .await;
            passes.outcome()
        }
        Some(rx) => from_stream(engine, run, &lists, rx, passes).await,
    }
}

/// The passes of a list read from another stream: one value (or batch) at a time as its
/// records arrive, each with the product of the other lists.
async fn from_stream(
    engine: &Engine,
    run: &StreamRun,
    lists: &[List],
    rx: mpsc::Receiver<ParentMsg>,
    passes: Passes<'_>,
) -> Result<Stop, StreamError> {
    let Some((_, src)) = run.stream.partition_stream() else {
        return Err(StreamError(format!(
            "{}: no partition list reads a stream",
            run.name
        )));
    };
    let upstream = src.stream.clone().unwrap_or_default();
    let per_unit = count(lists)?;
    let collector = Mutex::new(Collector::new(
        src.field.clone().unwrap_or_default(),
        src.batch.map(|b| b.max(1) as usize),
        src.separator().to_owned(),
        &upstream,
    ));
    // `End` is the last message: stop there, because the other stream keeps its
    // senders (so the channel stays open) until it has heard back from this one.
    let msgs = futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        let m = rx.recv().await?;
        let more = !matches!(m, ParentMsg::End(_));
        Some((m, more.then_some(rx)))
    });
    let units = msgs.flat_map(|m| {
        let units = match collector.lock() {
            Ok(mut c) => c.take(m),
            Err(_) => Err(StreamError("partition lock poisoned".into())),
        };
        let units = units.unwrap_or_else(|e| {
            passes.fail(e);
            Vec::new()
        });
        futures::stream::iter(units)
    });
    units
        .flat_map(|unit| {
            futures::stream::iter((0..per_unit).map(move |i| nth(lists, i, Some(&unit))))
        })
        .for_each_concurrent(passes.concurrency, |p| {
            let passes = &passes;
            async move { passes.one(engine, &p).await }
        })
        .await;
    let parent_ok = collector.into_inner().ok().and_then(|c| c.ended);
    passes.outcome()?;
    match parent_ok {
        Some(true) => Ok(Stop::NoNext),
        _ => Err(StreamError(format!(
            "stream {upstream}, whose records are this stream's partitions, failed, so this stream is incomplete; its previous output is kept"
        ))),
    }
}

/// The first partition of a stream, as templates read it, for `check` and `discover`;
/// `sample` gives another stream's first record. `Ok(None)` without partitions.
pub(crate) fn first<'v>(
    engine: &Engine,
    name: &str,
    stream: &Stream,
    sample: impl Fn(&str) -> Option<&'v Value>,
) -> Result<Option<Value>, String> {
    if !declared(stream) {
        return Ok(None);
    }
    let mut lists = resolve(engine, name, stream).map_err(|e| e.0)?;
    for l in &mut lists {
        if l.values.is_none()
            && let Some(PartitionList::From(src)) = stream.partitions.get(&l.name)
        {
            let other = src.stream.as_deref().unwrap_or_default();
            let field = src.field.as_deref().unwrap_or_default();
            let v = sample(other)
                .and_then(|r| r.get(field))
                .cloned()
                .ok_or_else(|| {
                    format!("skipped: stream {other} gave no record with `{field}` to try with")
                })?;
            l.values = Some(vec![v]);
        }
        if l.values.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!("skipped: partition list `{}` is empty", l.name));
        }
    }
    Ok(Some(Value::Object(nth(&lists, 0, None).values)))
}

/// The values of each list, in declared order: literal, or read from the config.
fn resolve(engine: &Engine, name: &str, stream: &Stream) -> Result<Vec<List>, StreamError> {
    let ctx = engine.context();
    let mut out = Vec::new();
    for (list, spec) in &stream.partitions {
        let values = match spec {
            PartitionList::Values(v) => Some(v.iter().map(|x| x.to_json()).collect()),
            PartitionList::From(src) => match &src.config {
                Some(key) => Some(config_list(&ctx, name, list, key)?),
                None => None,
            },
        };
        out.push(List {
            name: list.clone(),
            values,
        });
    }
    Ok(out)
}

/// A config value that must be a list of strings, numbers or booleans.
fn config_list(
    ctx: &Value,
    stream: &str,
    list: &str,
    key: &str,
) -> Result<Vec<Value>, StreamError> {
    let bad = |what: &str| {
        StreamError(format!(
            "streams.{stream}.partitions.{list}: config `{key}` {what}; give a list of strings, numbers or booleans, e.g. --set {key}='[\"a\",\"b\"]'"
        ))
    };
    let value = ctx.get("config").and_then(|c| c.get(key));
    let Some(Value::Array(items)) = value else {
        return Err(bad(if value.is_none_or(Value::is_null) {
            "has no value"
        } else {
            "is not a list"
        }));
    };
    if items
        .iter()
        .any(|v| !(v.is_string() || v.is_number() || v.is_boolean()))
    {
        return Err(bad("holds an item that is not a string, number or boolean"));
    }
    Ok(items.clone())
}

/// The number of combinations of the resolved lists (the list read from a stream counts
/// once); refused beyond [`MAX_PASSES`].
fn count(lists: &[List]) -> Result<u64, StreamError> {
    let mut total: u64 = 1;
    for l in lists {
        let n = l.values.as_ref().map_or(1, Vec::len) as u64;
        total = total.saturating_mul(n);
    }
    if total > MAX_PASSES {
        return Err(StreamError(format!(
            "the partition lists give {total} combinations, more than the {MAX_PASSES} a stream runs; shorten the lists"
        )));
    }
    Ok(total)
}

/// The `i`-th combination in declared order (the last list varies fastest); `unit` is
/// the value of the list read from a stream.
fn nth(lists: &[List], mut i: u64, unit: Option<&Value>) -> Partition {
    let mut values = Map::new();
    let mut picked: Vec<(&str, Value)> = Vec::with_capacity(lists.len());
    for l in lists.iter().rev() {
        let v = match &l.values {
            Some(vals) if !vals.is_empty() => {
                let n = vals.len() as u64;
                let v = vals[(i % n) as usize].clone();
                i /= n;
                v
            }
            Some(_) => Value::Null,
            None => unit.cloned().unwrap_or(Value::Null),
        };
        picked.push((&l.name, v));
    }
    for (k, v) in picked.into_iter().rev() {
        values.insert(k.to_owned(), v);
    }
    Partition { values }
}

/// Turns the other stream's messages into partition values: one field per record,
/// duplicates dropped, grouped into batches when the list says so.
pub(crate) struct Collector {
    field: String,
    batch: Option<usize>,
    join: String,
    upstream: String,
    seen: HashSet<String>,
    pending: Vec<Value>,
    /// Most distinct values kept: [`MAX_VALUES`] but in tests.
    limit: usize,
    /// The other stream's end: whether it succeeded.
    pub(crate) ended: Option<bool>,
}

impl Collector {
    pub(crate) fn new(field: String, batch: Option<usize>, join: String, upstream: &str) -> Self {
        Self {
            field,
            batch,
            join,
            upstream: upstream.to_owned(),
            seen: HashSet::new(),
            pending: Vec::new(),
            limit: MAX_VALUES,
            ended: None,
        }
    }

    /// The same with another limit of distinct values.
    #[cfg(test)]
    pub(crate) fn with_limit(self, limit: usize) -> Self {
        Self { limit, ..self }
    }

    /// The values (or joined batches) ready after this message.
    pub(crate) fn take(&mut self, msg: ParentMsg) -> Result<Vec<Value>, StreamError> {
        let record = match msg {
            ParentMsg::End(ok) => {
                self.ended = Some(ok);
                let rest = std::mem::take(&mut self.pending);
                return Ok(match (ok, rest.is_empty()) {
                    (true, false) => vec![self.joined(&rest)],
                    _ => Vec::new(),
                });
            }
            ParentMsg::Record(r) => r,
        };
        let value = match record.get(&self.field) {
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => v.clone(),
            _ => {
                return Err(StreamError(format!(
                    "a record of stream {} has no text or number `{}` to partition by; first bytes: {}",
                    self.upstream,
                    shown(&self.field),
                    crate::http::snippet(record.to_string().as_bytes())
                )));
            }
        };
        if !self.seen.insert(value.to_string()) {
            return Ok(Vec::new());
        }
        if self.seen.len() > self.limit {
            return Err(StreamError(format!(
                "stream {} gave more than {} distinct `{}` values to partition by, the most a partition list holds; filter that stream or partition by another field",
                self.upstream,
                self.limit,
                shown(&self.field)
            )));
        }
        let Some(size) = self.batch else {
            return Ok(vec![value]);
        };
        self.pending.push(value);
        if self.pending.len() < size {
            return Ok(Vec::new());
        }
        let full = std::mem::take(&mut self.pending);
        Ok(vec![self.joined(&full)])
    }

    /// A batch's values as one string, e.g. `1,2,3`.
    fn joined(&self, values: &[Value]) -> Value {
        let parts: Vec<String> = values
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        Value::String(parts.join(&self.join))
    }
}

/// Runs passes and remembers the first failure.
struct Passes<'r> {
    run: &'r StreamRun,
    concurrency: usize,
    /// Holds passes back to what the API's budget needs (at most `concurrency`).
    gate: crate::http::pass_gate::PassGate<'r>,
    first_error: Mutex<Option<StreamError>>,
}

impl<'r> Passes<'r> {
    fn new(engine: &'r Engine, run: &'r StreamRun) -> Self {
        let concurrency = run.stream.partition_concurrency.unwrap_or(1).max(1) as usize;
        Self {
            run,
            concurrency,
            gate: engine.http.pass_gate(concurrency),
            first_error: Mutex::new(None),
        }
    }

    fn failed(&self) -> bool {
        self.first_error.lock().map(|g| g.is_some()).unwrap_or(true)
    }

    fn fail(&self, e: StreamError) {
        if let Ok(mut g) = self.first_error.lock() {
            g.get_or_insert(e);
        }
    }

    /// One pass; one at a time, each finished pass is a checkpoint (not with children in
    /// the run: their output must be durable before the state moves).
    async fn one(&self, engine: &Engine, p: &Partition) {
        // After a failure, keep draining so the other stream is never blocked.
        if self.failed() || self.run.is_full() {
            return;
        }
        let _slot = self.gate.enter().await;
        if self.failed() || self.run.is_full() {
            return;
        }
        let input = PassInput {
            partition: Some(p),
            ..PassInput::default()
        };
        let done = crate::date_windows::run_keyed(engine, self.run, &input).await;
        // Only an incremental stream checkpoints a pass: under an incremental list
        // stream, the next run would otherwise redo the passes the checkpoint covered.
        let done = match done {
            Ok(_)
                if one_at_a_time(&self.run.stream)
                    && self.run.stages.children.is_empty()
                    && self.run.inc.is_some() =>
            {
                self.run.checkpoint()
            }
            other => other.map(|_| ()),
        };
        if let Err(e) = done {
            self.fail(StreamError(format!(
                "partition {}: {}",
                shown(&p.key()),
                e.0
            )));
        }
    }

    fn outcome(&self) -> Result<Stop, StreamError> {
        match self.first_error.lock().ok().and_then(|mut g| g.take()) {
            Some(e) => Err(e),
            None => Ok(Stop::NoNext),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn list(name: &str, values: Option<Vec<Value>>) -> List {
        List {
            name: name.into(),
            values,
        }
    }

    #[test]
    fn the_product_runs_in_declared_order_with_stable_keys() {
        let lists = vec![
            list("repo", Some(vec![json!("a/b"), json!("c/d")])),
            list("id", None),
            list("state", Some(vec![json!("open"), json!("closed")])),
        ];
        assert_eq!(count(&lists).unwrap(), 4);
        let keys: Vec<String> = (0..4)
            .map(|i| nth(&lists, i, Some(&json!(7))).key())
            .collect();
        assert_eq!(
            keys,
            [
                r#"{"repo":"a/b","id":7,"state":"open"}"#,
                r#"{"repo":"a/b","id":7,"state":"closed"}"#,
                r#"{"repo":"c/d","id":7,"state":"open"}"#,
                r#"{"repo":"c/d","id":7,"state":"closed"}"#,
            ]
        );
        let big = vec![
            list("a", Some(vec![json!(1); 1001])),
            list("b", Some(vec![json!(1); 1000])),
        ];
        assert!(count(&big).unwrap_err().0.contains("more than the 1000000"));
    }

    #[test]
    fn stream_values_are_deduplicated_and_batched() {
        let mut c = Collector::new("id".into(), Some(2), "|".into(), "accounts");
        let rec = |v: Value| ParentMsg::Record(Arc::new(json!({ "id": v })));
        assert!(c.take(rec(json!(1))).unwrap().is_empty());
        assert!(c.take(rec(json!(1))).unwrap().is_empty(), "a duplicate");
        assert_eq!(c.take(rec(json!("x"))).unwrap(), vec![json!("1|x")]);
        assert!(c.take(rec(json!(3))).unwrap().is_empty());
        assert_eq!(c.take(ParentMsg::End(true)).unwrap(), vec![json!("3")]);
        assert_eq!(c.ended, Some(true));
        let mut c = Collector::new("id".into(), None, ",".into(), "accounts");
        assert_eq!(c.take(rec(json!(5))).unwrap(), vec![json!(5)]);
        let e = c.take(rec(json!(null))).unwrap_err().0;
        assert!(
            e.contains("stream accounts has no text or number `id`"),
            "{e}"
        );
    }

    #[test]
    fn config_lists_must_be_lists_of_scalars() {
        let ctx = json!({"config": {"repos": ["a", 2, true], "one": "a", "deep": [[1]]}});
        assert_eq!(config_list(&ctx, "s", "r", "repos").unwrap().len(), 3);
        let e = config_list(&ctx, "s", "r", "one").unwrap_err().0;
        assert!(
            e.starts_with("streams.s.partitions.r: config `one` is not a list"),
            "{e}"
        );
        assert!(
            config_list(&ctx, "s", "r", "deep")
                .unwrap_err()
                .0
                .contains("not a string")
        );
        assert!(
            config_list(&ctx, "s", "r", "nope")
                .unwrap_err()
                .0
                .contains("has no value")
        );
    }
}
