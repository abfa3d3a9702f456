//! Date-time formats as a spec writes them, for cursors, sent values and templates.
//!
//! One name space for all three: `rfc3339`, `date`, `unix_seconds`, `unix_millis`,
//! `unix_micros`, a strftime pattern (`%Y-%m-%d %H:%M:%S`, as Airbyte and Python write
//! them) or a `time` format description (`[year]-[month]-[day]`). Anything else is refused
//! when the spec is checked, so a format never fails first at run time.

use chrono::format::{Item, StrftimeItems};
use time::format_description::OwnedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// A date-time format.
#[derive(Debug, Clone)]
pub enum TimeFormat {
    /// RFC 3339, e.g. `2024-05-01T12:00:00Z` (written in UTC).
    Rfc3339,
    /// A calendar date, `2024-05-01` (read as midnight UTC).
    Date,
    /// Seconds since 1970-01-01T00:00:00Z.
    UnixSeconds,
    /// Milliseconds since the epoch.
    UnixMillis,
    /// Microseconds since the epoch.
    UnixMicros,
    /// A strftime pattern, e.g. `%Y-%m-%d %H:%M:%S` (times without an offset are UTC).
    Strftime(String),
    /// A `time` format description, e.g. `[year]-[month]-[day] [hour]:[minute]:[second]`.
    Description(OwnedFormatItem),
}

/// A format that is not one of those above; the message says what to write.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct FormatError(pub String);

impl TimeFormat {
    /// Reads a format as written in the spec.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        Ok(match text {
            "rfc3339" => Self::Rfc3339,
            "date" => Self::Date,
            "unix_seconds" | "unix" => Self::UnixSeconds,
            "unix_millis" => Self::UnixMillis,
            "unix_micros" => Self::UnixMicros,
            t if t.contains('%') => {
                if let Some(bad) = strftime_error(t) {
                    return Err(FormatError(bad));
                }
                Self::Strftime(t.to_owned())
            }
            t if t.contains('[') => {
                Self::Description(time::format_description::parse_owned::<2>(t).map_err(|e| {
                    FormatError(format!("`{t}` is not a time format description: {e}"))
                })?)
            }
            t => {
                return Err(FormatError(format!(
                    "`{t}` is not a date-time format: use `rfc3339`, `date`, `unix_seconds`, `unix_millis`, `unix_micros` or a strftime pattern such as `%Y-%m-%d %H:%M:%S`"
                )));
            }
        })
    }

    /// Whether values in this format are integers (JSON numbers when rendered).
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            Self::UnixSeconds | Self::UnixMillis | Self::UnixMicros
        )
    }

    /// Writes `t` in this format: RFC 3339 and format descriptions keep its offset, a
    /// date and strftime patterns are in UTC.
    pub fn format(&self, t: OffsetDateTime) -> Result<String, FormatError> {
        let ns = t.unix_timestamp_nanos();
        Ok(match self {
            Self::Rfc3339 => t
                .format(&Rfc3339)
                .map_err(|e| FormatError(format!("{t} cannot be written as RFC 3339: {e}")))?,
            Self::Date => {
                let t = t.to_offset(UtcOffset::UTC);
                format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
            }
            Self::UnixSeconds => t.unix_timestamp().to_string(),
            Self::UnixMillis => (ns.div_euclid(1_000_000)).to_string(),
            Self::UnixMicros => (ns.div_euclid(1_000)).to_string(),
            Self::Strftime(f) => {
                let c = to_chrono(t)?;
                let items: Vec<Item<'_>> = StrftimeItems::new(f).collect();
                c.format_with_items(items.into_iter()).to_string()
            }
            Self::Description(d) => t
                .format(d)
                .map_err(|e| FormatError(format!("cannot write {t} in the format: {e}")))?,
        })
    }

    /// Reads `s` in this format; a value without an offset is UTC.
    pub fn read(&self, s: &str) -> Option<OffsetDateTime> {
        let s = s.trim();
        match self {
            Self::Rfc3339 => OffsetDateTime::parse(s, &Rfc3339).ok(),
            Self::Date => {
                let d =
                    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
                        .ok()?;
                Some(d.midnight().assume_utc())
            }
            Self::UnixSeconds => OffsetDateTime::from_unix_timestamp(s.parse().ok()?).ok(),
            Self::UnixMillis => OffsetDateTime::from_unix_timestamp_nanos(
                s.parse::<i128>().ok()?.checked_mul(1_000_000)?,
            )
            .ok(),
            Self::UnixMicros => OffsetDateTime::from_unix_timestamp_nanos(
                s.parse::<i128>().ok()?.checked_mul(1_000)?,
            )
            .ok(),
            Self::Strftime(f) => read_strftime(s, f),
            Self::Description(d) => OffsetDateTime::parse(s, d)
                .ok()
                .or_else(|| PrimitiveDateTime::parse(s, d).ok().map(|p| p.assume_utc()))
                .or_else(|| {
                    time::Date::parse(s, d)
                        .ok()
                        .map(|d| d.midnight().assume_utc())
                }),
        }
    }
}

/// Reads any of the forms a template filter accepts without a format: RFC 3339, a
/// date, or an integer of Unix seconds.
pub fn read_any(s: &str) -> Option<OffsetDateTime> {
    TimeFormat::Rfc3339
        .read(s)
        .or_else(|| TimeFormat::Date.read(s))
        .or_else(|| TimeFormat::UnixSeconds.read(s))
}

/// The first unknown strftime specifier of `f`, in words.
fn strftime_error(f: &str) -> Option<String> {
    if StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
        Some(format!(
            "`{f}` is not a valid strftime pattern: it has an unknown `%` specifier (use e.g. `%Y-%m-%d`, `%H:%M:%S`, `%z`; `%%` for a literal %)"
        ))
    } else {
        None
    }
}

fn to_chrono(t: OffsetDateTime) -> Result<chrono::DateTime<chrono::Utc>, FormatError> {
    let ns = t.unix_timestamp_nanos();
    let secs = i64::try_from(ns.div_euclid(1_000_000_000))
        .map_err(|_| FormatError(format!("{t} is out of range")))?;
    let sub = u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, sub)
        .ok_or_else(|| FormatError(format!("{t} is out of range")))
}

fn from_chrono(c: chrono::DateTime<chrono::Utc>) -> Option<OffsetDateTime> {
    let ns = i128::from(c.timestamp()) * 1_000_000_000 + i128::from(c.timestamp_subsec_nanos());
    OffsetDateTime::from_unix_timestamp_nanos(ns).ok()
}

fn read_strftime(s: &str, f: &str) -> Option<OffsetDateTime> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(d) = DateTime::parse_from_str(s, f) {
        return from_chrono(d.to_utc());
    }
    if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
        return from_chrono(n.and_utc());
    }
    if f.contains("%s")
        && let Ok(secs) = s.parse::<i64>()
    {
        return OffsetDateTime::from_unix_timestamp(secs).ok();
    }
    NaiveDate::parse_from_str(s, f)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|n| from_chrono(n.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    #[test]
    fn every_kind_writes_and_reads_back() {
        let t = at("2024-05-01T12:34:56Z");
        for (name, text) in [
            ("rfc3339", "2024-05-01T12:34:56Z"),
            ("unix_seconds", "1714566896"),
            ("unix_millis", "1714566896000"),
            ("unix_micros", "1714566896000000"),
            ("%Y-%m-%d %H:%M:%S", "2024-05-01 12:34:56"),
            ("%d/%m/%Y %H:%M:%S%z", "01/05/2024 12:34:56+0000"),
            (
                "[year]-[month]-[day]T[hour]:[minute]:[second]",
                "2024-05-01T12:34:56",
            ),
        ] {
            let f = TimeFormat::parse(name).unwrap();
            assert_eq!(f.format(t).unwrap(), text, "{name}");
            assert_eq!(f.read(text), Some(t), "{name}");
        }
        let d = TimeFormat::parse("date").unwrap();
        assert_eq!(d.format(t).unwrap(), "2024-05-01");
        assert_eq!(d.read("2024-05-01"), Some(at("2024-05-01T00:00:00Z")));
        let day = TimeFormat::parse("%Y-%m-%d").unwrap();
        assert_eq!(day.read("2024-05-01"), Some(at("2024-05-01T00:00:00Z")));
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let f = TimeFormat::parse("%Y-%m-%dT%H:%M:%S%:z").unwrap();
        assert_eq!(
            f.read("2024-05-01T14:00:00+02:00"),
            Some(at("2024-05-01T12:00:00Z"))
        );
        assert_eq!(
            TimeFormat::Date
                .format(at("2024-05-01T01:00:00+02:00"))
                .unwrap(),
            "2024-04-30"
        );
    }

    #[test]
    fn unknown_formats_are_refused_with_what_to_write() {
        let e = TimeFormat::parse("YYYY-MM-DD").unwrap_err();
        assert!(e.0.contains("strftime"), "{e}");
        let e = TimeFormat::parse("%Y-%Q").unwrap_err();
        assert!(e.0.contains("unknown `%` specifier"), "{e}");
        assert!(TimeFormat::parse("[year]-[nonsense]").is_err());
    }

    #[test]
    fn read_any_takes_rfc3339_dates_and_unix_seconds() {
        assert_eq!(read_any("2024-05-01"), Some(at("2024-05-01T00:00:00Z")));
        assert_eq!(read_any("1714566896"), Some(at("2024-05-01T12:34:56Z")));
        assert_eq!(read_any("yesterday"), None);
    }
}
