//! Incremental cursor values: read from records, compared by type, moved back by a lookback.

use std::cmp::Ordering;
use std::time::Duration;

use connector_spec::{CursorType, Incremental, JsonPath, TimeFormat};
use serde_json::Value;
use time::OffsetDateTime;

/// How to read and compare one stream's cursor.
#[derive(Debug, Clone)]
pub struct CursorKind {
    field: Field,
    kind: CursorType,
    /// How a datetime cursor is written (RFC 3339 unless `incremental.format` says).
    format: TimeFormat,
    /// Whether `incremental.format` was given, for messages.
    custom_format: bool,
    /// How the value sent in `param`/`end_param` is written, when not as the cursor.
    param_format: Option<TimeFormat>,
}

#[derive(Debug, Clone)]
enum Field {
    Name(String),
    Path(JsonPath),
}

/// A cursor value that cannot be read or compared.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CursorError(pub String);

impl CursorKind {
    /// From the stream's `incremental` block.
    pub fn new(inc: &Incremental) -> Result<Self, CursorError> {
        let field = if inc.cursor_field.starts_with('$') {
            Field::Path(JsonPath::new(inc.cursor_field.as_str()))
        } else {
            Field::Name(inc.cursor_field.clone())
        };
        let format = match &inc.format {
            Some(f) => {
                TimeFormat::parse(f).map_err(|e| CursorError(format!("incremental.format: {e}")))?
            }
            None => TimeFormat::Rfc3339,
        };
        let param_format = match &inc.param_format {
            Some(f) => Some(
                TimeFormat::parse(f)
                    .map_err(|e| CursorError(format!("incremental.param_format: {e}")))?,
            ),
            None => None,
        };
        Ok(Self {
            field,
            kind: inc.cursor_type,
            format,
            custom_format: inc.format.is_some(),
            param_format,
        })
    }

    /// A cursor or window bound as the API wants it in `param`/`end_param`: as it is,
    /// or the same instant in `incremental.param_format`.
    pub fn sent(&self, v: &str) -> Result<String, CursorError> {
        let Some(f) = &self.param_format else {
            return Ok(v.to_owned());
        };
        let t = self.instant(v)?;
        f.format(t)
            .map_err(|e| CursorError(format!("incremental.param_format: {e}")))
    }

    /// A bound written in a template (`incremental.start`/`end`) in the cursor's own form:
    /// an RFC 3339 time such as `now() | shift(days=-30)` is converted for a cursor
    /// written otherwise (another format, Unix seconds or millis); anything else is kept.
    pub fn normalize(&self, v: &str) -> String {
        if !self.kind.is_time() || self.parses(v).is_ok() {
            return v.to_owned();
        }
        let Some(t) = connector_spec::timefmt::read_any(v) else {
            return v.to_owned();
        };
        let own = match self.kind {
            CursorType::UnixSeconds => TimeFormat::UnixSeconds.format(t),
            CursorType::UnixMillis => TimeFormat::UnixMillis.format(t),
            _ => self.format.format(t),
        };
        own.unwrap_or_else(|_| v.to_owned())
    }

    /// The instant a time cursor stands for.
    pub(crate) fn instant(&self, v: &str) -> Result<OffsetDateTime, CursorError> {
        let unix = match self.kind {
            CursorType::UnixSeconds => TimeFormat::UnixSeconds,
            CursorType::UnixMillis => TimeFormat::UnixMillis,
            CursorType::Datetime => {
                return self.datetime(v).ok_or_else(|| self.bad_datetime(v));
            }
            CursorType::Integer | CursorType::String => {
                return Err(CursorError(format!(
                    "cursor value `{}` is not a time, so it has no other format",
                    show(v)
                )));
            }
        };
        unix.read(v)
            .ok_or_else(|| CursorError(format!("cursor value `{}` is not a Unix time", show(v))))
    }

    /// The cursor value of a record, as written in it (`None` when absent or null).
    pub fn read(&self, record: &Value) -> Option<String> {
        let v = match &self.field {
            Field::Name(n) => record.get(n.as_str()),
            Field::Path(p) => p.first(record).ok().flatten(),
        }?;
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn datetime(&self, s: &str) -> Option<OffsetDateTime> {
        self.format.read(s)
    }

    /// Orders two cursor values by the declared type.
    pub fn compare(&self, a: &str, b: &str) -> Result<Ordering, CursorError> {
        match self.kind {
            CursorType::String => Ok(a.cmp(b)),
            CursorType::Integer | CursorType::UnixSeconds | CursorType::UnixMillis => {
                let pa = a.trim().parse::<i128>();
                let pb = b.trim().parse::<i128>();
                match (pa, pb) {
                    (Ok(x), Ok(y)) => Ok(x.cmp(&y)),
                    _ => Err(CursorError(format!(
                        "cursor values `{}` and `{}` are not both integers",
                        show(a),
                        show(b)
                    ))),
                }
            }
            CursorType::Datetime => match (self.datetime(a), self.datetime(b)) {
                (Some(x), Some(y)) => Ok(x.cmp(&y)),
                (None, _) => Err(self.bad_datetime(a)),
                (_, None) => Err(self.bad_datetime(b)),
            },
        }
    }

    fn bad_datetime(&self, s: &str) -> CursorError {
        CursorError(format!(
            "cursor value `{}` is not a date-time{}; set incremental.cursor_type or incremental.format",
            show(s),
            if self.custom_format {
                " in incremental.format"
            } else {
                " (RFC 3339 expected)"
            }
        ))
    }

    fn integer(&self, v: &str) -> Result<i128, CursorError> {
        v.trim()
            .parse::<i128>()
            .map_err(|_| CursorError(format!("cursor value `{}` is not an integer", show(v))))
    }

    /// Whether `v` reads as the declared type (a saved cursor that does not is refused).
    pub fn parses(&self, v: &str) -> Result<(), CursorError> {
        self.beyond(v, None).map(|_| ())
    }

    /// Whether a time cursor lies after `horizon` (now plus `future_tolerance`); always
    /// false for integers and strings, where "the future" means nothing, and without a horizon.
    pub fn beyond(&self, v: &str, horizon: Option<OffsetDateTime>) -> Result<bool, CursorError> {
        match self.kind {
            CursorType::String => Ok(false),
            CursorType::Integer => self.integer(v).map(|_| false),
            CursorType::UnixSeconds => {
                let x = self.integer(v)?;
                Ok(horizon.is_some_and(|h| x > i128::from(h.unix_timestamp())))
            }
            CursorType::UnixMillis => {
                let x = self.integer(v)?;
                Ok(horizon.is_some_and(|h| x > h.unix_timestamp_nanos() / 1_000_000))
            }
            CursorType::Datetime => {
                let t = self.datetime(v).ok_or_else(|| self.bad_datetime(v))?;
                Ok(horizon.is_some_and(|h| t > h))
            }
        }
    }

    /// The value `lookback` earlier, written the way the API writes it.
    pub fn minus(&self, v: &str, lookback: Duration) -> Result<String, CursorError> {
        if lookback.is_zero() {
            return Ok(v.to_owned());
        }
        match self.kind {
            CursorType::String => Ok(v.to_owned()),
            CursorType::Integer | CursorType::UnixSeconds => {
                let x = self.integer(v)?;
                // The value comes from the API: an edge of i128 must not panic or wrap.
                x.checked_sub(i128::from(lookback.as_secs()))
                    .map(|v| v.to_string())
                    .ok_or_else(|| {
                        CursorError(format!(
                            "cursor value `{}` minus the lookback overflows",
                            show(v)
                        ))
                    })
            }
            CursorType::UnixMillis => {
                let x = self.integer(v)?;
                let back = i128::try_from(lookback.as_millis()).unwrap_or(i128::MAX);
                Ok(x.saturating_sub(back).to_string())
            }
            CursorType::Datetime => {
                let t = self
                    .datetime(v)
                    .ok_or_else(|| self.bad_datetime(v))?
                    .checked_sub(time::Duration::try_from(lookback).unwrap_or(time::Duration::MAX))
                    .ok_or_else(|| {
                        CursorError(format!(
                            "cursor value `{}` minus the lookback is out of range",
                            show(v)
                        ))
                    })?;
                self.format
                    .format(t)
                    .map_err(|e| CursorError(e.to_string()))
            }
        }
    }
}

/// A cursor value from the API, fit for a message.
fn show(v: &str) -> String {
    crate::printable::api_text(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(kind: CursorType, format: Option<&str>) -> Incremental {
        Incremental {
            cursor_field: "updated_at".into(),
            param: None,
            end_param: None,
            end: None,
            start: "x".into(),
            lookback: None,
            cursor_type: kind,
            format: format.map(str::to_owned),
            param_format: None,
            sorted: false,
            future_tolerance: None,
            windows: None,
        }
    }

    #[test]
    fn datetimes_compare_as_instants() {
        let c = CursorKind::new(&inc(CursorType::Datetime, None)).unwrap();
        assert_eq!(
            c.compare("2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00Z")
                .unwrap(),
            Ordering::Equal
        );
        assert_eq!(
            c.compare("2024-01-02T00:00:00Z", "2024-01-01T23:00:00Z")
                .unwrap(),
            Ordering::Greater
        );
        assert!(c.compare("yesterday", "2024-01-01T00:00:00Z").is_err());
        assert_eq!(
            c.minus("2024-01-01T00:00:00Z", Duration::from_secs(3600))
                .unwrap(),
            "2023-12-31T23:00:00Z"
        );
    }

    #[test]
    fn only_time_cursors_can_lie_in_the_future() {
        let h = Some(OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap());
        let c = CursorKind::new(&inc(CursorType::Datetime, None)).unwrap();
        assert!(c.beyond("9999-12-31T23:59:59Z", h).unwrap());
        assert!(
            !c.beyond("2023-11-14T22:13:20Z", h).unwrap(),
            "exactly the horizon"
        );
        assert!(!c.beyond("9999-12-31T23:59:59Z", None).unwrap());
        assert!(c.parses("not-a-date").is_err());
        let c = CursorKind::new(&inc(CursorType::UnixSeconds, None)).unwrap();
        assert!(c.beyond("1700000001", h).unwrap());
        assert!(!c.beyond("1700000000", h).unwrap());
        assert!(c.parses("1.5").is_err());
        assert_eq!(c.minus("100", Duration::from_secs(60)).unwrap(), "40");
        let c = CursorKind::new(&inc(CursorType::UnixMillis, None)).unwrap();
        assert!(c.beyond("1700000000001", h).unwrap());
        assert!(!c.beyond("1700000000000", h).unwrap());
        assert_eq!(c.minus("100000", Duration::from_secs(60)).unwrap(), "40000");
        let c = CursorKind::new(&inc(CursorType::Integer, None)).unwrap();
        assert!(
            !c.beyond("99999999999999999999", h).unwrap(),
            "an id has no future"
        );
        assert!(c.parses("{}").is_err());
        let c = CursorKind::new(&inc(CursorType::String, None)).unwrap();
        assert!(!c.beyond("~~~~", h).unwrap());
    }

    #[test]
    fn other_formats_and_types() {
        let c = CursorKind::new(&inc(
            CursorType::Datetime,
            Some("[year]-[month]-[day] [hour]:[minute]:[second]"),
        ))
        .unwrap();
        assert_eq!(
            c.compare("2024-01-02 00:00:00", "2024-01-01 23:59:59")
                .unwrap(),
            Ordering::Greater
        );
        assert_eq!(
            c.minus("2024-01-02 00:00:00", Duration::from_secs(1))
                .unwrap(),
            "2024-01-01 23:59:59"
        );
        let c = CursorKind::new(&inc(CursorType::Integer, None)).unwrap();
        assert_eq!(c.compare("10", "9").unwrap(), Ordering::Greater);
        let c = CursorKind::new(&inc(CursorType::String, None)).unwrap();
        assert_eq!(c.compare("10", "9").unwrap(), Ordering::Less);
        assert_eq!(
            c.read(&serde_json::json!({"updated_at": 5})),
            Some("5".into())
        );
    }

    #[test]
    fn hostile_cursor_values_sent_in_another_format_are_errors_not_panics() {
        let mut spec = inc(CursorType::UnixMillis, None);
        spec.param_format = Some("%Y-%m-%d".into());
        let k = CursorKind::new(&spec).unwrap();
        assert_eq!(k.sent("1714521600000").unwrap(), "2024-05-01");
        for v in [
            "99999999999999999999999999999999999",
            "-99999999999999999999",
            "1e3",
            "x\n",
        ] {
            assert!(k.sent(v).is_err(), "{v}");
            assert_eq!(k.normalize(v), v, "kept as it is: {v}");
        }
        let mut spec = inc(CursorType::Datetime, None);
        spec.param_format = Some("unix_seconds".into());
        let k = CursorKind::new(&spec).unwrap();
        assert_eq!(k.sent("2024-05-01T00:00:00+02:00").unwrap(), "1714514400");
        assert!(k.sent("9999-99-99T00:00:00Z").is_err());
        let mut spec = inc(CursorType::Integer, None);
        spec.param_format = Some("unix_seconds".into());
        assert!(
            CursorKind::new(&spec).unwrap().sent("5").is_err(),
            "an id is not a time"
        );
    }

    #[test]
    fn lookback_at_the_edges_is_an_error_not_a_panic() {
        let k = CursorKind::new(&inc(CursorType::Integer, None)).unwrap();
        let min = i128::MIN.to_string();
        let e = k.minus(&min, Duration::from_secs(60)).unwrap_err();
        assert!(e.0.contains("overflows"), "{e}");
        let e = k.minus("1\n\u{1b}x", Duration::from_secs(60)).unwrap_err();
        assert!(e.0.contains("1\\n\\u{1b}x"), "{e}");
        let k = CursorKind::new(&inc(CursorType::Datetime, None)).unwrap();
        assert!(k.minus("0001-01-01T00:00:00Z", Duration::MAX).is_err());
    }
}
