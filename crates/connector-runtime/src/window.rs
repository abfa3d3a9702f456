//! The incremental window: where a pass starts, which records it keeps, and the positions
//! (highest cursor, records at it) that the next checkpoint saves.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use connector_spec::{Incremental, Stream};
use serde_json::Value;

use crate::cursor::{CursorError, CursorKind};
use crate::engine::Engine;
use crate::render::render;
use crate::state::{Position, StreamState};
use crate::stream::StreamError;

/// The incremental side of a stream: where it starts, and what it has written.
#[derive(Debug)]
pub(crate) struct Inc {
    pub(crate) kind: CursorKind,
    pub(crate) spec: Incremental,
    prior: StreamState,
    start: String,
    pub(crate) end: Option<String>,
    track: Mutex<Track>,
}

/// Positions reached in this run: the stream's, and each partition's.
#[derive(Debug, Default)]
struct Track {
    top: Pos,
    partitions: BTreeMap<String, Pos>,
}

/// A position being tracked: highest cursor written, and the records at it (key -> hash).
#[derive(Debug, Default, Clone)]
struct Pos {
    cursor: Option<String>,
    keys: HashMap<String, String>,
}

impl Pos {
    fn from(p: &Position) -> Self {
        Self {
            cursor: p.cursor.clone(),
            keys: p
                .boundary
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    fn to_position(&self) -> Position {
        Position {
            cursor: self.cursor.clone(),
            boundary: self
                .keys
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// A short stable digest of a record as sent, to recognise it at the boundary.
pub(crate) fn digest(raw: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(raw.as_bytes())[..8])
}

impl Inc {
    pub(crate) fn new(
        engine: &Engine,
        name: &str,
        spec: &Incremental,
        prior: StreamState,
    ) -> Result<Self, StreamError> {
        let ctx = engine.context();
        let field = format!("streams.{name}.incremental");
        let rendered = |t: &connector_spec::Template, f: &str| {
            render(t, &ctx, &format!("{field}.{f}"))
                .map_err(|e| StreamError(engine.http.redact(&e.to_string())))
        };
        let start = rendered(&spec.start, "start")?;
        let end = match &spec.end {
            Some(t) => Some(rendered(t, "end")?),
            None => None,
        };
        let kind = CursorKind::new(spec).map_err(|e| StreamError(e.0))?;
        let track = Track {
            top: Pos::from(&prior.position),
            partitions: prior
                .partitions
                .iter()
                .map(|(k, p)| (k.clone(), Pos::from(p)))
                .collect(),
        };
        Ok(Self {
            kind,
            spec: spec.clone(),
            prior,
            start,
            end,
            track: Mutex::new(track),
        })
    }

    /// Records a written record's cursor in the position it belongs to.
    pub(crate) fn advance(
        &self,
        partition: Option<&str>,
        record: &Value,
        key: String,
        hash: String,
    ) -> Result<(), CursorError> {
        let Some(c) = self.kind.read(record) else {
            return Ok(());
        };
        let mut track = self
            .track
            .lock()
            .map_err(|_| CursorError("state lock poisoned".into()))?;
        let pos = match partition {
            Some(p) => track.partitions.entry(p.to_owned()).or_default(),
            None => &mut track.top,
        };
        let order = match &pos.cursor {
            None => Ordering::Greater,
            Some(m) => self.kind.compare(&c, m)?,
        };
        match order {
            Ordering::Greater => {
                pos.cursor = Some(c);
                pos.keys.clear();
                pos.keys.insert(key, hash);
            }
            Ordering::Equal => {
                pos.keys.insert(key, hash);
            }
            Ordering::Less => {}
        }
        Ok(())
    }

    /// The positions reached so far, as saved in the state: the stream's and each partition's.
    pub(crate) fn positions(&self) -> Result<(Position, BTreeMap<String, Position>), CursorError> {
        let track = self
            .track
            .lock()
            .map_err(|_| CursorError("state lock poisoned".into()))?;
        Ok((
            track.top.to_position(),
            track
                .partitions
                .iter()
                .map(|(k, p)| (k.clone(), p.to_position()))
                .collect(),
        ))
    }
}

/// Whether any ancestor of a stream is incremental.
pub(crate) fn has_incremental_ancestor(spec: &connector_spec::Spec, stream: &Stream) -> bool {
    let mut cur = stream.parent.as_ref().map(|p| p.stream.as_str());
    for _ in 0..spec.streams.len() {
        let Some(name) = cur else { return false };
        let Some(s) = spec.streams.get(name) else {
            return false;
        };
        if s.incremental.is_some() {
            return true;
        }
        cur = s.parent.as_ref().map(|p| p.stream.as_str());
    }
    false
}

/// The incremental window of one pass: what to ask the API for, and what to keep.
#[derive(Debug)]
pub(crate) struct Window {
    pub(crate) params: Vec<(String, String)>,
    pub(crate) lower: String,
    prior: Pos,
}

impl Window {
    pub(crate) fn new(inc: &Inc, partition: Option<&str>) -> Result<Self, CursorError> {
        let prior = match partition {
            Some(p) => inc
                .prior
                .partitions
                .get(p)
                .map(Pos::from)
                .unwrap_or_default(),
            None => Pos::from(&inc.prior.position),
        };
        let lookback = inc
            .spec
            .lookback
            .as_ref()
            .map(|d| d.get())
            .unwrap_or_default();
        let lower = match &prior.cursor {
            Some(c) => inc.kind.minus(c, lookback)?,
            None => inc.start.clone(),
        };
        let mut params = Vec::new();
        if let Some(p) = &inc.spec.param {
            params.push((p.clone(), lower.clone()));
        }
        if let (Some(p), Some(e)) = (&inc.spec.end_param, &inc.end) {
            params.push((p.clone(), e.clone()));
        }
        Ok(Self {
            params,
            lower,
            prior,
        })
    }

    /// False for a record before the window, or one already written at the boundary.
    pub(crate) fn keep(
        &self,
        inc: &Inc,
        record: &Value,
        key: &str,
        hash: &str,
    ) -> Result<bool, CursorError> {
        let Some(c) = inc.kind.read(record) else {
            return Ok(true);
        };
        if inc.kind.compare(&c, &self.lower)? == Ordering::Less {
            return Ok(false);
        }
        if let Some(b) = &self.prior.cursor {
            // The same record as already written at the boundary (same key, same bytes).
            let seen = self.prior.keys.get(key).is_some_and(|h| h == hash);
            if seen && inc.kind.compare(&c, b)? == Ordering::Equal {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inc(prior: StreamState) -> Inc {
        let spec = Incremental {
            cursor_field: "updated_at".into(),
            param: Some("updated_at_gte".into()),
            end_param: None,
            end: None,
            start: "2024-01-01T00:00:00Z".into(),
            lookback: None,
            cursor_type: connector_spec::CursorType::Datetime,
            format: None,
            sorted: true,
        };
        let track = Track {
            top: Pos::from(&prior.position),
            partitions: BTreeMap::new(),
        };
        Inc {
            kind: CursorKind::new(&spec).unwrap(),
            spec,
            prior,
            start: "2024-01-01T00:00:00Z".into(),
            end: None,
            track: Mutex::new(track),
        }
    }

    fn rec(id: u64, at: &str) -> Value {
        json!({"id": id, "updated_at": at})
    }

    #[test]
    fn boundary_drops_only_what_was_written() {
        let t = "2024-02-01T00:00:00Z";
        let written = rec(1, t);
        let prior = StreamState {
            position: Position {
                cursor: Some(t.into()),
                boundary: [("[1]".to_owned(), digest(&written.to_string()))].into(),
            },
            ..StreamState::default()
        };
        let inc = inc(prior);
        let w = Window::new(&inc, None).unwrap();
        assert_eq!(w.params, vec![("updated_at_gte".to_owned(), t.to_owned())]);
        let keep = |r: &Value, key: &str| w.keep(&inc, r, key, &digest(&r.to_string())).unwrap();
        assert!(!keep(&written, "[1]"), "the same record at the boundary");
        let newer_version = json!({"id": 1, "updated_at": t, "status": "paid"});
        assert!(
            keep(&newer_version, "[1]"),
            "another version at the same instant"
        );
        assert!(
            keep(&rec(2, t), "[2]"),
            "another record at the same instant"
        );
        assert!(
            !keep(&rec(3, "2024-01-31T23:59:59Z"), "[3]"),
            "before the window"
        );
        assert!(keep(&rec(4, "2024-02-01T00:00:01Z"), "[4]"));
    }

    #[test]
    fn positions_follow_the_highest_cursor() {
        let inc = inc(StreamState::default());
        let t1 = "2024-03-01T00:00:00Z";
        let t2 = "2024-03-01T01:00:00+01:00"; // the same instant, written otherwise
        inc.advance(None, &rec(1, t1), "[1]".into(), "a".into())
            .unwrap();
        inc.advance(None, &rec(2, t2), "[2]".into(), "b".into())
            .unwrap();
        inc.advance(
            None,
            &rec(3, "2024-02-01T00:00:00Z"),
            "[3]".into(),
            "c".into(),
        )
        .unwrap();
        let (top, _) = inc.positions().unwrap();
        assert_eq!(top.cursor.as_deref(), Some(t1));
        assert_eq!(
            top.boundary.keys().cloned().collect::<Vec<_>>(),
            vec!["[1]", "[2]"]
        );
        inc.advance(
            None,
            &rec(4, "2024-03-02T00:00:00Z"),
            "[4]".into(),
            "d".into(),
        )
        .unwrap();
        let (top, _) = inc.positions().unwrap();
        assert_eq!(
            top.boundary.keys().cloned().collect::<Vec<_>>(),
            vec!["[4]"]
        );
    }
}
