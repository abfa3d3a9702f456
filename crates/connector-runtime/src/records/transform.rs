//! The transform stage: a stream's `transform` steps (or `defaults.transform`) reshape a
//! parsed record in place, in the written order.

use connector_spec::transform::{Paths, Step};
use serde_json::{Map, Value};

use crate::stream::StreamError;

/// A stream's transformation steps, ready to apply.
#[derive(Debug, Clone)]
pub(crate) struct Transform {
    steps: Vec<Step>,
    stream: String,
}

impl Transform {
    /// The stage for `steps`; `None` when there are none, so the stream keeps its raw bytes.
    pub(crate) fn new(steps: &[Step], stream: &str) -> Option<Self> {
        (!steps.is_empty()).then(|| Self {
            steps: steps.to_vec(),
            stream: stream.to_owned(),
        })
    }

    /// Applies every step to `record`; true when it changed. `base` holds what templates
    /// read besides `record` (config, parent, page, incremental).
    pub(crate) fn apply(
        &self,
        base: &minijinja::Value,
        record: &mut Value,
    ) -> Result<bool, StreamError> {
        let mut changed = false;
        for (i, step) in self.steps.iter().enumerate() {
            changed |= apply_step(step, base, record).map_err(|e| {
                StreamError(format!(
                    "streams.{}.transform[{i}] ({}): {}",
                    self.stream,
                    step.kind(),
                    crate::printable::api_text(&e)
                ))
            })?;
        }
        Ok(changed)
    }
}

/// One step; true when the record changed.
fn apply_step(step: &Step, base: &minijinja::Value, record: &mut Value) -> Result<bool, String> {
    let Value::Object(_) = record else {
        return Err(format!(
            "the record is {}, not an object: transformations work on objects",
            kind_of(record)
        ));
    };
    match step {
        Step::Add(fields) => {
            let ctx = minijinja::context! {
                record => minijinja::Value::from(minijinja::value::Serde(&*record)),
                ..base.clone()
            };
            let mut values = Vec::with_capacity(fields.len());
            for (field, t) in fields {
                let v = t
                    .eval(&ctx)
                    .map_err(|e| format!("`{field}`: `{}`: {e}", t.source()))?;
                values.push((field, v));
            }
            for (field, v) in values {
                set(record, &segments(field), v)?;
            }
            Ok(!fields.is_empty())
        }
        Step::Remove(paths) => Ok(paths
            .list()
            .iter()
            .fold(false, |c, p| take(record, &segments(p)).is_some() | c)),
        Step::Rename(fields) => {
            let mut changed = false;
            for (from, to) in fields {
                changed |= rename(record, from, to)?;
            }
            Ok(changed)
        }
        Step::Lift(paths) => {
            let mut changed = false;
            for p in paths.list() {
                changed |= lift(record, p)?;
            }
            Ok(changed)
        }
        Step::Keep(paths) => Ok(keep(record, paths)),
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The value at `path`, if every step on the way is an object holding the next name.
fn get<'v>(record: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(record, |v, s| v.as_object()?.get(*s))
}

/// Removes and returns the value at `path`.
fn take(record: &mut Value, path: &[&str]) -> Option<Value> {
    let (last, up) = path.split_last()?;
    let mut v = record;
    for s in up {
        v = v.as_object_mut()?.get_mut(*s)?;
    }
    v.as_object_mut()?.shift_remove(*last)
}

/// Puts `value` at `path`, making the objects on the way; a non-object on the way is an error.
fn set(record: &mut Value, path: &[&str], value: Value) -> Result<(), String> {
    let Some((last, up)) = path.split_last() else {
        return Ok(());
    };
    let mut v = record;
    for (i, s) in up.iter().enumerate() {
        v = match v {
            Value::Object(m) => m
                .entry(s.to_string())
                .or_insert_with(|| Value::Object(Map::new())),
            other => {
                return Err(format!(
                    "`{}` is {}, not an object, so `{}` cannot be set inside it",
                    up[..i].join("."),
                    kind_of(other),
                    path.join(".")
                ));
            }
        };
    }
    match v {
        Value::Object(m) => {
            m.insert(last.to_string(), value);
            Ok(())
        }
        other => Err(format!(
            "`{}` is {}, not an object, so `{}` cannot be set inside it",
            up.join("."),
            kind_of(other),
            path.join(".")
        )),
    }
}

/// Moves the value at `from` to `to`; a top-level field keeps its place.
fn rename(record: &mut Value, from: &str, to: &str) -> Result<bool, String> {
    if from == to {
        return Ok(false);
    }
    let (src, dst) = (segments(from), segments(to));
    if let ([f], [t], Value::Object(m)) = (src.as_slice(), dst.as_slice(), &mut *record) {
        let Some(at) = m.keys().position(|k| k == f) else {
            return Ok(false);
        };
        let Some(v) = m.shift_remove(*f) else {
            return Ok(false);
        };
        // A field already named `to` before the old place shifts it by one.
        let at = match m.keys().position(|k| k == t) {
            Some(i) if i < at => at - 1,
            _ => at,
        };
        m.shift_remove(*t);
        m.shift_insert(at.min(m.len()), (*t).to_owned(), v);
        return Ok(true);
    }
    match take(record, &src) {
        Some(v) => set(record, &dst, v).map(|()| true),
        None => Ok(false),
    }
}

/// Moves the fields of the object at `path` to the top level, in its place.
fn lift(record: &mut Value, path: &str) -> Result<bool, String> {
    let segs = segments(path);
    let at = match (segs.as_slice(), &*record) {
        ([one], Value::Object(m)) => m.keys().position(|k| k == one),
        _ => None,
    };
    match get(record, &segs) {
        None => return Ok(false),
        Some(Value::Object(_) | Value::Null) => {}
        Some(other) => {
            return Err(format!(
                "`{path}` is {}, not an object, so it cannot be lifted",
                kind_of(other)
            ));
        }
    }
    let Some(inner) = take(record, &segs) else {
        return Ok(false);
    };
    let Value::Object(m) = record else {
        return Ok(true);
    };
    let mut at = at.unwrap_or(m.len());
    if let Value::Object(fields) = inner {
        for (k, v) in fields {
            // What the record already has at the top level wins.
            if m.contains_key(&k) {
                continue;
            }
            m.shift_insert(at.min(m.len()), k, v);
            at += 1;
        }
    }
    Ok(true)
}

/// Keeps only `paths`, in their order; true when anything was dropped or moved.
fn keep(record: &mut Value, paths: &Paths) -> bool {
    let list = paths.list();
    let Value::Object(old) = record else {
        return false;
    };
    let flat = list.iter().all(|p| !p.contains('.'));
    if flat {
        let kept: Vec<&String> = old.keys().filter(|k| list.contains(&k.as_str())).collect();
        let wanted: Vec<&str> = list
            .iter()
            .copied()
            .filter(|p| old.contains_key(*p))
            .collect();
        if kept.len() == old.len() && kept.iter().zip(&wanted).all(|(a, b)| a == b) {
            return false;
        }
    }
    let mut out = Value::Object(Map::new());
    for p in list {
        let segs = segments(p);
        if let Some(v) = take(record, &segs) {
            // `out` is an object made here and only objects are made on the way.
            let _ = set(&mut out, &segs, v);
        }
    }
    *record = out;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(yaml: &str, mut record: Value) -> (Value, bool) {
        let steps: Vec<Step> = serde_json::from_str(yaml).unwrap();
        let t = Transform::new(&steps, "s").unwrap();
        let base = minijinja::Value::from(minijinja::value::Serde(json!({"config": {"k": 2}})));
        let changed = t.apply(&base, &mut record).unwrap();
        (record, changed)
    }

    fn text(v: &Value) -> String {
        v.to_string()
    }

    #[test]
    fn add_keeps_json_types_and_reads_the_record() {
        let (r, c) = run(
            r#"[{"add": {"n": "{{ record.a * config.k }}", "o": "{{ record.o }}", "s": "x{{ record.a }}", "lit": "plain", "deep.er": "{{ record.a > 0 }}"}}]"#,
            json!({"a": 3, "o": {"x": [1]}}),
        );
        assert!(c);
        assert_eq!(
            text(&r),
            r#"{"a":3,"o":{"x":[1]},"n":6,"s":"x3","lit":"plain","deep":{"er":true}}"#
        );
    }

    #[test]
    fn remove_nested_and_missing() {
        let (r, c) = run(
            r#"[{"remove": ["a.b", "nope", "x.y.z"]}]"#,
            json!({"a": {"b": 1, "c": 2}, "d": 3}),
        );
        assert!(c);
        assert_eq!(text(&r), r#"{"a":{"c":2},"d":3}"#);
        let (_, c) = run(r#"[{"remove": "nope"}]"#, json!({"a": 1}));
        assert!(!c, "nothing removed, nothing changed");
    }

    #[test]
    fn rename_keeps_the_place_and_moves_nested() {
        let (r, _) = run(
            r#"[{"rename": {"b": "bee", "n.x": "x", "missing": "m"}}]"#,
            json!({"a": 1, "b": 2, "c": 3, "n": {"x": 9}}),
        );
        assert_eq!(text(&r), r#"{"a":1,"bee":2,"c":3,"n":{},"x":9}"#);
        let (r, _) = run(
            r#"[{"rename": {"c": "a"}}]"#,
            json!({"a": 1, "b": 2, "c": 3}),
        );
        assert_eq!(text(&r), r#"{"b":2,"a":3}"#, "the target is replaced");
    }

    #[test]
    fn lift_puts_fields_in_the_objects_place_and_top_level_wins() {
        let (r, c) = run(
            r#"[{"lift": "properties"}]"#,
            json!({"id": "1", "properties": {"email": "a@b", "id": "other"}, "archived": false}),
        );
        assert!(c);
        assert_eq!(text(&r), r#"{"id":"1","email":"a@b","archived":false}"#);
        let (r, _) = run(r#"[{"lift": "p"}]"#, json!({"id": 1, "p": null}));
        assert_eq!(text(&r), r#"{"id":1}"#);
        let (_, c) = run(r#"[{"lift": "p"}]"#, json!({"id": 1}));
        assert!(!c);
    }

    #[test]
    fn lift_of_a_non_object_is_an_error() {
        let steps: Vec<Step> = serde_json::from_str(r#"[{"lift": "p"}]"#).unwrap();
        let t = Transform::new(&steps, "s").unwrap();
        let e = t
            .apply(&minijinja::Value::from(()), &mut json!({"p": "text"}))
            .unwrap_err();
        assert!(e.0.contains("streams.s.transform[0] (lift)"), "{e}");
        assert!(e.0.contains("`p` is a string"), "{e}");
    }

    #[test]
    fn keep_orders_and_reports_no_change_when_nothing_moves() {
        let (r, c) = run(
            r#"[{"keep": ["c", "a.x"]}]"#,
            json!({"a": {"x": 1, "y": 2}, "b": 2, "c": 3}),
        );
        assert!(c);
        assert_eq!(text(&r), r#"{"c":3,"a":{"x":1}}"#);
        let (_, c) = run(r#"[{"keep": ["a", "b", "zz"]}]"#, json!({"a": 1, "b": 2}));
        assert!(!c);
        let (_, c) = run(r#"[{"keep": ["b", "a"]}]"#, json!({"a": 1, "b": 2}));
        assert!(c, "reordered");
    }

    #[test]
    fn steps_run_in_order() {
        let (r, _) = run(
            r#"[{"add": {"n": "{{ record.a + 1 }}"}}, {"add": {"m": "{{ record.n * 10 }}"}}, {"remove": "a"}]"#,
            json!({"a": 1}),
        );
        assert_eq!(text(&r), r#"{"n":2,"m":20}"#);
    }

    #[test]
    fn a_non_object_record_or_path_is_an_error() {
        let steps: Vec<Step> = serde_json::from_str(r#"[{"add": {"a.b": "1"}}]"#).unwrap();
        let t = Transform::new(&steps, "s").unwrap();
        let base = minijinja::Value::from(());
        assert!(
            t.apply(&base, &mut json!([1]))
                .unwrap_err()
                .0
                .contains("a list")
        );
        let e = t.apply(&base, &mut json!({"a": 5})).unwrap_err();
        assert!(e.0.contains("`a` is a number"), "{e}");
        assert!(Transform::new(&[], "s").is_none());
    }
}
