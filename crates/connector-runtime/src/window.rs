//! The incremental window: where a pass starts, which records it keeps, and the positions
//! (highest cursor, records at it) that the next checkpoint saves.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use connector_spec::{Incremental, Stream};
use serde_json::Value;
use time::OffsetDateTime;

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
    pub(crate) prior: StreamState,
    start: String,
    pub(crate) end: Option<String>,
    /// A date window's end: records at or after it belong to a later window.
    upper: Option<String>,
    /// Time cursors after this are not saved (now plus `future_tolerance`); `None` for
    /// cursors that are not times.
    horizon: Option<OffsetDateTime>,
    track: Mutex<Track>,
}

/// The latest time cursor a run saves: `now` plus `future_tolerance`; `None` when the
/// cursor is not a time, or the tolerance reaches past the end of the calendar.
pub(crate) fn horizon(spec: &Incremental, now: OffsetDateTime) -> Option<OffsetDateTime> {
    if !spec.cursor_type.is_time() {
        return None;
    }
    let tolerance = time::Duration::try_from(spec.future_tolerance()).ok()?;
    now.checked_add(tolerance)
}

/// Why a saved position cannot be used, or `Ok` when every cursor in it reads as the
/// declared type and none lies beyond the horizon of `now`.
pub(crate) fn check_prior(
    spec: &Incremental,
    prior: &StreamState,
    now: OffsetDateTime,
) -> Result<(), String> {
    let kind = CursorKind::new(spec).map_err(|e| e.0)?;
    crate::date_windows::check_state(spec, &kind, prior)?;
    let limit = horizon(spec, now);
    let all = std::iter::once((None, &prior.position))
        .chain(prior.partitions.iter().map(|(k, p)| (Some(k), p)));
    for (partition, pos) in all {
        let Some(c) = &pos.cursor else { continue };
        let place = match partition {
            Some(k) => format!("the cursor of partition `{}`", shown(k)),
            None => "the cursor".to_owned(),
        };
        match kind.beyond(c, limit) {
            Err(_) => {
                return Err(format!(
                    "{place} `{}` does not read as `cursor_type: {}` ({})",
                    shown(c),
                    type_name(spec.cursor_type),
                    expected(spec)
                ));
            }
            Ok(true) => {
                return Err(format!(
                    "{place} `{}` lies further in the future than `future_tolerance` ({}); a record from the future froze it",
                    shown(c),
                    tolerance_text(spec)
                ));
            }
            Ok(false) => {}
        }
    }
    Ok(())
}

/// `future_tolerance` as written, or its default.
pub(crate) fn tolerance_text(spec: &Incremental) -> String {
    spec.future_tolerance
        .as_ref()
        .map_or_else(|| "1d".to_owned(), |d| d.as_str().to_owned())
}

/// What a cursor of the declared type looks like.
fn expected(spec: &Incremental) -> &'static str {
    match (spec.cursor_type, &spec.format) {
        (connector_spec::CursorType::Datetime, None) => "an RFC 3339 date-time expected",
        (connector_spec::CursorType::Datetime, Some(_)) => {
            "a date-time in incremental.format expected"
        }
        _ => "an integer expected",
    }
}

/// The spec's name of a cursor type.
fn type_name(t: connector_spec::CursorType) -> &'static str {
    use connector_spec::CursorType as T;
    match t {
        T::Datetime => "datetime",
        T::Integer => "integer",
        T::String => "string",
        T::UnixSeconds => "unix_seconds",
        T::UnixMillis => "unix_millis",
    }
}

/// At most this many characters of an API-controlled value go into a message.
const SHOWN: usize = 120;

/// API-controlled text made safe for one log line: control characters escaped, cut to
/// [`SHOWN`] characters.
pub(crate) fn shown(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == SHOWN {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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
        now: OffsetDateTime,
    ) -> Result<Self, StreamError> {
        let ctx = engine.context();
        let field = format!("streams.{name}.incremental");
        let rendered = |t: &connector_spec::Template, f: &str| {
            render(t, &ctx, &format!("{field}.{f}"))
                .map_err(|e| StreamError(engine.http.redact(&e.to_string())))
        };
        let kind = CursorKind::new(spec).map_err(|e| StreamError(e.0))?;
        let start = kind.normalize(&rendered(&spec.start, "start")?);
        let end = match &spec.end {
            Some(t) => Some(kind.normalize(&rendered(t, "end")?)),
            None => None,
        };
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
            upper: None,
            horizon: horizon(spec, now),
            track: Mutex::new(track),
        })
    }

    /// A date window's view `[start, end)`: records at `base`'s cursor with the same key
    /// and bytes were written before; positions are tracked apart until it is finished.
    pub(crate) fn window_of(&self, start: &str, end: &str, base: &Position) -> Self {
        Self {
            kind: self.kind.clone(),
            // A window saves nothing on its own, sorted or not: see `date_windows`.
            spec: Incremental {
                sorted: false,
                ..self.spec.clone()
            },
            prior: StreamState {
                position: base.clone(),
                ..StreamState::default()
            },
            start: start.to_owned(),
            end: Some(end.to_owned()),
            upper: Some(end.to_owned()),
            horizon: self.horizon,
            track: Mutex::new(Track::default()),
        }
    }

    /// Takes a finished date window's position into its partition's (a partition's key
    /// or a parent key), or into the stream's.
    pub(crate) fn absorb_into(
        &self,
        partition: Option<&str>,
        done: &Position,
    ) -> Result<(), CursorError> {
        let Some(c) = &done.cursor else {
            return Ok(());
        };
        self.at_pos(partition, c, |pos, order| match order {
            Ordering::Greater => *pos = Pos::from(done),
            Ordering::Equal => pos.keys.extend(done.boundary.clone()),
            Ordering::Less => {}
        })
    }

    /// Runs `f` on the position of `partition` (the stream's with `None`), under the
    /// lock, with how cursor `c` compares to the position's (`Greater` when it has none).
    fn at_pos(
        &self,
        partition: Option<&str>,
        c: &str,
        f: impl FnOnce(&mut Pos, Ordering),
    ) -> Result<(), CursorError> {
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
            Some(m) => self.kind.compare(c, m)?,
        };
        f(pos, order);
        Ok(())
    }

    /// Records a written record's cursor in the position it belongs to; returns the
    /// cursor instead when it lies beyond the horizon, so it is not saved.
    pub(crate) fn advance(
        &self,
        partition: Option<&str>,
        record: &Value,
        key: String,
        hash: String,
    ) -> Result<Option<String>, CursorError> {
        let Some(c) = self.kind.read(record) else {
            return Ok(None);
        };
        // One record stamped 9999-12-31 must not become the cursor: every later run
        // would ask for records after it and get none.
        if self.kind.beyond(&c, self.horizon)? {
            return Ok(Some(c));
        }
        self.at_pos(partition, &c, |pos, order| match order {
            Ordering::Greater => {
                pos.cursor = Some(c.clone());
                pos.keys.clear();
                pos.keys.insert(key, hash);
            }
            Ordering::Equal => {
                pos.keys.insert(key, hash);
            }
            Ordering::Less => {}
        })?;
        Ok(None)
    }

    /// The position reached so far by one partition.
    pub(crate) fn position_of(&self, partition: &str) -> Result<Position, CursorError> {
        let track = self
            .track
            .lock()
            .map_err(|_| CursorError("state lock poisoned".into()))?;
        Ok(track
            .partitions
            .get(partition)
            .map(Pos::to_position)
            .unwrap_or_default())
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

/// An incremental side built without an engine, for the unit tests of other modules:
/// `start` and `end` as written (no templates), the clock at `now`.
#[cfg(test)]
pub(crate) fn test_inc(spec: Incremental, prior: StreamState, now: OffsetDateTime) -> Inc {
    let kind = CursorKind::new(&spec).unwrap();
    let track = Track {
        top: Pos::from(&prior.position),
        partitions: prior
            .partitions
            .iter()
            .map(|(k, p)| (k.clone(), Pos::from(p)))
            .collect(),
    };
    Inc {
        start: kind.normalize(spec.start.source()),
        end: spec.end.as_ref().map(|e| kind.normalize(e.source())),
        kind,
        prior,
        upper: None,
        horizon: horizon(&spec, now),
        track: Mutex::new(track),
        spec,
    }
}

/// Whether any ancestor of a stream is incremental.
pub(crate) fn has_incremental_ancestor(spec: &connector_spec::Spec, stream: &Stream) -> bool {
    spec.ancestors_of(stream).iter().any(|n| {
        spec.streams
            .get(*n)
            .is_some_and(|s| s.incremental.is_some())
    })
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
            Some(c) if inc.upper.is_none() => inc.kind.minus(c, lookback)?,
            _ => inc.start.clone(),
        };
        let mut params = Vec::new();
        if let Some(p) = &inc.spec.param {
            params.push((p.clone(), inc.kind.sent(&lower)?));
        }
        if let (Some(p), Some(e)) = (&inc.spec.end_param, &inc.end) {
            params.push((p.clone(), inc.kind.sent(e)?));
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
        if let Some(u) = &inc.upper
            && inc.kind.compare(&c, u)? != Ordering::Less
        {
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
            param_format: None,
            sorted: true,
            future_tolerance: None,
            windows: None,
        };
        let track = Track {
            top: Pos::from(&prior.position),
            partitions: BTreeMap::new(),
        };
        Inc {
            kind: CursorKind::new(&spec).unwrap(),
            prior,
            start: "2024-01-01T00:00:00Z".into(),
            end: None,
            upper: None,
            horizon: horizon(&spec, now()),
            track: Mutex::new(track),
            spec,
        }
    }

    /// The injected clock of these tests.
    fn now() -> OffsetDateTime {
        OffsetDateTime::parse(
            "2024-06-01T00:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
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

    #[test]
    fn a_cursor_from_the_future_is_not_saved() {
        let inc = inc(StreamState::default());
        let t = "2024-05-31T00:00:00Z";
        assert_eq!(
            inc.advance(None, &rec(1, t), "[1]".into(), "a".into())
                .unwrap(),
            None
        );
        let far = "9999-12-31T23:59:59Z";
        assert_eq!(
            inc.advance(None, &rec(2, far), "[2]".into(), "b".into())
                .unwrap(),
            Some(far.to_owned())
        );
        // Within the default tolerance of a day after the injected now: saved.
        let soon = "2024-06-01T23:00:00Z";
        assert_eq!(
            inc.advance(None, &rec(3, soon), "[3]".into(), "c".into())
                .unwrap(),
            None
        );
        let late = "2024-06-02T00:00:01Z";
        assert!(
            inc.advance(None, &rec(4, late), "[4]".into(), "d".into())
                .unwrap()
                .is_some()
        );
        let (top, _) = inc.positions().unwrap();
        assert_eq!(top.cursor.as_deref(), Some(soon));
        assert_eq!(
            top.boundary.keys().cloned().collect::<Vec<_>>(),
            vec!["[3]"]
        );
    }

    #[test]
    fn a_saved_cursor_must_read_as_its_type_and_not_lie_ahead() {
        let spec = inc(StreamState::default()).spec;
        let at = |c: &str| StreamState {
            position: Position {
                cursor: Some(c.into()),
                boundary: BTreeMap::new(),
            },
            ..StreamState::default()
        };
        assert_eq!(
            check_prior(&spec, &at("2024-05-01T00:00:00Z"), now()),
            Ok(())
        );
        assert_eq!(check_prior(&spec, &StreamState::default(), now()), Ok(()));
        let e = check_prior(&spec, &at("not-a-date\n\u{1b}[2J"), now()).unwrap_err();
        assert!(
            e.contains("does not read as `cursor_type: datetime`"),
            "{e}"
        );
        assert!(
            e.contains("not-a-date\\n\\u{1b}[2J") && !e.contains('\n'),
            "escaped: {e}"
        );
        let e = check_prior(&spec, &at("9999-12-31T23:59:59Z"), now()).unwrap_err();
        assert!(
            e.contains("further in the future than `future_tolerance` (1d)"),
            "{e}"
        );
        let mut child = StreamState::default();
        child
            .partitions
            .insert("7".into(), at("yesterday").position);
        let e = check_prior(&spec, &child, now()).unwrap_err();
        assert!(e.contains("partition `7`"), "{e}");
        let ints = Incremental {
            cursor_type: connector_spec::CursorType::Integer,
            ..spec.clone()
        };
        assert_eq!(check_prior(&ints, &at("99999999999999"), now()), Ok(()));
        assert!(check_prior(&ints, &at("12a"), now()).is_err());
    }

    #[test]
    fn messages_name_the_type_the_format_and_the_tolerance() {
        use connector_spec::CursorType as T;
        let spec = inc(StreamState::default()).spec;
        assert_eq!(expected(&spec), "an RFC 3339 date-time expected");
        let formatted = Incremental {
            format: Some("[year]-[month]-[day]".into()),
            ..spec.clone()
        };
        assert_eq!(
            expected(&formatted),
            "a date-time in incremental.format expected"
        );
        let ints = Incremental {
            cursor_type: T::UnixSeconds,
            ..spec.clone()
        };
        assert_eq!(expected(&ints), "an integer expected");
        let names: Vec<&str> = [
            T::Datetime,
            T::Integer,
            T::String,
            T::UnixSeconds,
            T::UnixMillis,
        ]
        .into_iter()
        .map(type_name)
        .collect();
        assert_eq!(
            names,
            [
                "datetime",
                "integer",
                "string",
                "unix_seconds",
                "unix_millis"
            ]
        );
        assert_eq!(tolerance_text(&spec), "1d");
        let two_hours = Incremental {
            future_tolerance: Some(connector_spec::Duration::new("2h")),
            ..spec.clone()
        };
        assert_eq!(tolerance_text(&two_hours), "2h");
        // Not a time: no horizon at all, however far a cursor goes.
        let strings = Incremental {
            cursor_type: T::String,
            ..spec
        };
        assert_eq!(horizon(&strings, now()), None);
        assert!(horizon(&two_hours, now()).is_some_and(|h| h > now()));
    }

    #[test]
    fn a_grandchild_of_an_incremental_stream_has_an_incremental_ancestor() {
        let text = r#"
version: 1
name: t
http: { base_url: "http://x" }
streams:
  orders:
    path: /orders
    records: $[*]
    primary_key: id
    incremental: { cursor_field: updated_at, start: "2024-01-01T00:00:00Z" }
  items:
    parent: { stream: orders, key: id }
    path: "/orders/{{ parent.id }}/items"
    records: $[*]
  notes:
    parent: { stream: items, key: id }
    path: "/items/{{ parent.id }}/notes"
    records: $[*]
  products:
    path: /products
    records: $[*]
  reviews:
    parent: { stream: products, key: id }
    path: "/products/{{ parent.id }}/reviews"
    records: $[*]
"#;
        let spec = connector_spec::load_str(std::path::Path::new("t.yaml"), text)
            .unwrap()
            .spec;
        let has = |name: &str| has_incremental_ancestor(&spec, &spec.streams[name]);
        assert!(has("items"));
        assert!(has("notes"), "a grandchild");
        assert!(!has("orders"), "itself is not its ancestor");
        assert!(!has("products"));
        assert!(!has("reviews"));
    }

    #[test]
    fn a_date_window_keeps_its_half_open_range_and_hands_its_position_over() {
        let (a, b) = ("2024-02-01T00:00:00Z", "2024-02-08T00:00:00Z");
        let written = rec(1, a);
        let base = Position {
            cursor: Some(a.into()),
            boundary: [("[1]".to_owned(), digest(&written.to_string()))].into(),
        };
        let stream = inc(StreamState::default());
        let win = stream.window_of(a, b, &base);
        let w = Window::new(&win, None).unwrap();
        assert_eq!(
            w.lower, a,
            "the window's start, not the base cursor minus lookback"
        );
        let keep = |r: &Value, key: &str| w.keep(&win, r, key, &digest(&r.to_string())).unwrap();
        assert!(!keep(&written, "[1]"), "written at the base cursor before");
        assert!(keep(&rec(2, a), "[2]"), "the start is inside");
        assert!(keep(&rec(3, "2024-02-07T23:59:59Z"), "[3]"));
        assert!(
            !keep(&rec(4, b), "[4]"),
            "the end belongs to the next window"
        );
        assert!(!keep(&rec(5, "2024-01-31T23:59:59Z"), "[5]"));
        win.advance(
            None,
            &rec(3, "2024-02-07T23:59:59Z"),
            "[3]".into(),
            "c".into(),
        )
        .unwrap();
        let (reached, _) = win.positions().unwrap();
        assert_eq!(
            stream.positions().unwrap().0.cursor,
            None,
            "apart until finished"
        );
        stream.absorb_into(None, &reached).unwrap();
        stream.absorb_into(None, &base).unwrap();
        let (top, _) = stream.positions().unwrap();
        assert_eq!(top.cursor.as_deref(), Some("2024-02-07T23:59:59Z"));
        assert_eq!(top.boundary.keys().collect::<Vec<_>>(), vec!["[3]"]);
    }

    #[test]
    fn shown_text_is_escaped_and_bounded() {
        assert_eq!(shown("a\rb\u{1b}"), "a\\rb\\u{1b}");
        let long = "x".repeat(1000);
        assert_eq!(shown(&long).len(), SHOWN + 3);
        let off = Incremental {
            future_tolerance: Some(connector_spec::Duration::new("100000y")),
            ..inc(StreamState::default()).spec
        };
        assert_eq!(horizon(&off, now()), None, "past the calendar: no limit");
    }
}
