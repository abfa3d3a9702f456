//! Incremental cursor values: read from records, compared by type, moved back by a lookback.

use std::cmp::Ordering;
use std::time::Duration;

use connector_spec::{CursorType, Incremental, JsonPath};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::OwnedFormatItem;
use time::format_description::well_known::Rfc3339;

/// How to read and compare one stream's cursor.
#[derive(Debug, Clone)]
pub struct CursorKind {
    field: Field,
    kind: CursorType,
    format: Option<OwnedFormatItem>,
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
            Some(f) => Some(
                time::format_description::parse_owned::<2>(f)
                    .map_err(|e| CursorError(format!("incremental.format `{f}`: {e}")))?,
            ),
            None => None,
        };
        Ok(Self {
            field,
            kind: inc.cursor_type,
            format,
        })
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
        match &self.format {
            Some(f) => OffsetDateTime::parse(s, f).ok().or_else(|| {
                time::PrimitiveDateTime::parse(s, f)
                    .ok()
                    .map(|p| p.assume_utc())
            }),
            None => OffsetDateTime::parse(s, &Rfc3339).ok(),
        }
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
            if self.format.is_some() {
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
                let out = match &self.format {
                    Some(f) => t.format(f),
                    None => t.format(&Rfc3339),
                };
                out.map_err(|e| CursorError(e.to_string()))
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
            sorted: false,
            future_tolerance: None,
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
