//! Time in templates: `now()` and the filters that shift, round, read and write
//! date-times, e.g. `{{ now() | shift(days=-30) | format_time("%Y-%m-%d") }}`.
//!
//! Date-times travel between filters as RFC 3339 strings in UTC, so any step can be
//! printed as it is; a filter also takes a date (`2024-05-01`) or Unix seconds.

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind};
use time::{Date, Duration, Month, OffsetDateTime, Time};

use crate::timefmt::{TimeFormat, read_any};

/// The functions and filters this module adds.
pub(crate) const FUNCTIONS: [&str; 1] = ["now"];

/// Adds `now()` and the time filters to `env`.
pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_function("now", now);
    env.add_filter("shift", shift);
    env.add_filter("start_of", start_of);
    env.add_filter("format_time", format_time);
    env.add_filter("parse_time", parse_time);
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

fn rfc3339(t: OffsetDateTime) -> Result<Value, Error> {
    TimeFormat::Rfc3339
        .format(t.to_offset(time::UtcOffset::UTC))
        .map(Value::from)
        .map_err(|e| invalid(e.0))
}

/// The current time in UTC, to the second.
fn now() -> Result<Value, Error> {
    let t = OffsetDateTime::now_utc();
    rfc3339(t.replace_nanosecond(0).unwrap_or(t))
}

/// Reads a filter's input: an RFC 3339 string, a date, or Unix seconds.
fn input(v: &Value, filter: &str) -> Result<OffsetDateTime, Error> {
    let text = match v.as_str() {
        Some(s) => s.to_owned(),
        None if v.is_integer() => v.to_string(),
        None => {
            return Err(invalid(format!(
                "{filter}: expected a date-time (RFC 3339, a date or Unix seconds), got {}",
                v.kind()
            )));
        }
    };
    read_any(&text).ok_or_else(|| {
        invalid(format!(
            "{filter}: `{}` is not a date-time (RFC 3339 such as 2024-05-01T00:00:00Z, a date such as 2024-05-01, or Unix seconds); read other forms with `parse_time(\"<format>\")` first",
            cut(&text)
        ))
    })
}

/// At most 60 characters of a value, for an error message.
pub(crate) fn cut(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Moves a date-time by whole calendar units: `shift(days=-1, hours=2)`.
fn shift(v: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let mut t = input(&v, "shift")?;
    let get = |k: &str| kwargs.get::<Option<i64>>(k).map(Option::unwrap_or_default);
    let (years, months) = (get("years")?, get("months")?);
    let (weeks, days, hours) = (get("weeks")?, get("days")?, get("hours")?);
    let (minutes, seconds) = (get("minutes")?, get("seconds")?);
    kwargs.assert_all_used()?;
    let overflow = || invalid("shift: the result is outside the calendar".into());
    let total_months = years
        .checked_mul(12)
        .and_then(|y| y.checked_add(months))
        .ok_or_else(overflow)?;
    t = add_months(t, total_months).ok_or_else(overflow)?;
    let span = [
        (weeks, 7 * 86_400),
        (days, 86_400),
        (hours, 3_600),
        (minutes, 60),
        (seconds, 1),
    ]
    .iter()
    .try_fold(0i64, |acc, (n, unit)| {
        n.checked_mul(*unit)?.checked_add(acc)
    })
    .ok_or_else(overflow)?;
    t = t
        .checked_add(Duration::seconds(span))
        .ok_or_else(overflow)?;
    rfc3339(t)
}

/// Adds calendar months; the day is clamped to the end of a shorter month.
fn add_months(t: OffsetDateTime, months: i64) -> Option<OffsetDateTime> {
    if months == 0 {
        return Some(t);
    }
    let index = i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1;
    let target = index.checked_add(months)?;
    let year = i32::try_from(target.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(target.rem_euclid(12) + 1).ok()?).ok()?;
    let day = t.day().min(month.length(year));
    Some(t.replace_date(Date::from_calendar_date(year, month, day).ok()?))
}

/// Rounds a date-time down to the start of its `year`, `month`, `week` (Monday), `day`,
/// `hour` or `minute`.
fn start_of(v: Value, unit: &str) -> Result<Value, Error> {
    let t = input(&v, "start_of")?;
    let d = t.date();
    let bad = || invalid("start_of: the result is outside the calendar".into());
    let t = match unit {
        "year" => t
            .replace_date(Date::from_calendar_date(d.year(), Month::January, 1).map_err(|_| bad())?)
            .replace_time(Time::MIDNIGHT),
        "month" => t
            .replace_date(Date::from_calendar_date(d.year(), d.month(), 1).map_err(|_| bad())?)
            .replace_time(Time::MIDNIGHT),
        "week" => {
            let back = i64::from(d.weekday().number_days_from_monday());
            t.replace_time(Time::MIDNIGHT)
                .checked_sub(Duration::days(back))
                .ok_or_else(bad)?
        }
        "day" => t.replace_time(Time::MIDNIGHT),
        "hour" => t.replace_time(Time::from_hms(t.hour(), 0, 0).map_err(|_| bad())?),
        "minute" => t.replace_time(Time::from_hms(t.hour(), t.minute(), 0).map_err(|_| bad())?),
        other => {
            return Err(invalid(format!(
                "start_of: unknown unit `{}`; use year, month, week, day, hour or minute",
                cut(other)
            )));
        }
    };
    rfc3339(t)
}

/// Writes a date-time in a format (`rfc3339`, `date`, `unix_seconds`, `unix_millis`,
/// `unix_micros`, a strftime pattern); the Unix forms are numbers.
fn format_time(v: Value, format: &str) -> Result<Value, Error> {
    let t = input(&v, "format_time")?;
    let f = TimeFormat::parse(format).map_err(|e| invalid(format!("format_time: {}", e.0)))?;
    let text = f
        .format(t)
        .map_err(|e| invalid(format!("format_time: {}", e.0)))?;
    if f.is_integer() {
        return text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| invalid(format!("format_time: {text} does not fit in 64 bits")));
    }
    Ok(Value::from(text))
}

/// Reads a date-time written in a format, giving RFC 3339 in UTC.
fn parse_time(v: Value, format: &str) -> Result<Value, Error> {
    let f = TimeFormat::parse(format).map_err(|e| invalid(format!("parse_time: {}", e.0)))?;
    let text = match v.as_str() {
        Some(s) => s.to_owned(),
        None => v.to_string(),
    };
    let t = f.read(&text).ok_or_else(|| {
        invalid(format!(
            "parse_time: `{}` is not a date-time in the format `{format}`",
            cut(&text)
        ))
    })?;
    rfc3339(t)
}

/// Whether `s` is an RFC 3339 date-time (for tests and checks).
#[cfg(test)]
fn is_rfc3339(s: &str) -> bool {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str) -> Result<String, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        register(&mut env);
        env.render_str(src, ()).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn shift_moves_by_calendar_units() {
        let r = |s: &str| render(s).unwrap();
        assert_eq!(
            r("{{ '2024-03-31T10:00:00Z' | shift(days=-30) }}"),
            "2024-03-01T10:00:00Z"
        );
        assert_eq!(
            r("{{ '2024-03-31T10:00:00Z' | shift(months=-1) }}"),
            "2024-02-29T10:00:00Z"
        );
        assert_eq!(
            r("{{ '2024-01-31' | shift(months=1, hours=1) }}"),
            "2024-02-29T01:00:00Z"
        );
        assert_eq!(
            r("{{ '2024-05-01T00:00:00Z' | shift(years=-1, weeks=1) }}"),
            "2023-05-08T00:00:00Z"
        );
        assert_eq!(
            r("{{ 1714521600 | shift(seconds=1) }}"),
            "2024-05-01T00:00:01Z"
        );
        assert!(render("{{ '2024-05-01' | shift(fortnights=1) }}").is_err());
        assert!(
            render("{{ 'soon' | shift(days=1) }}")
                .unwrap_err()
                .contains("not a date-time")
        );
    }

    #[test]
    fn format_and_parse_round_trip() {
        let r = |s: &str| render(s).unwrap();
        assert_eq!(
            r("{{ '2024-05-01T12:34:56Z' | format_time('%Y-%m-%d %H:%M:%S') }}"),
            "2024-05-01 12:34:56"
        );
        assert_eq!(
            r("{{ '2024-05-01T12:34:56Z' | format_time('unix_millis') + 1 }}"),
            "1714566896001"
        );
        assert_eq!(
            r("{{ '2024-05-01T12:34:56Z' | format_time('date') }}"),
            "2024-05-01"
        );
        assert_eq!(
            r("{{ '01/05/2024' | parse_time('%d/%m/%Y') }}"),
            "2024-05-01T00:00:00Z"
        );
        assert!(
            render("{{ '2024-05-01' | format_time('YYYY') }}")
                .unwrap_err()
                .contains("strftime")
        );
    }

    #[test]
    fn start_of_rounds_down() {
        let r = |s: &str| render(s).unwrap();
        assert_eq!(
            r("{{ '2024-05-01T12:34:56Z' | start_of('day') }}"),
            "2024-05-01T00:00:00Z"
        );
        assert_eq!(
            r("{{ '2024-05-01T12:34:56Z' | start_of('week') }}"),
            "2024-04-29T00:00:00Z"
        );
        assert_eq!(
            r("{{ '2024-05-17T12:34:56Z' | start_of('month') }}"),
            "2024-05-01T00:00:00Z"
        );
        assert_eq!(
            r("{{ '2024-05-17T12:34:56Z' | start_of('hour') }}"),
            "2024-05-17T12:00:00Z"
        );
    }

    #[test]
    fn now_is_utc_to_the_second() {
        let n = render("{{ now() }}").unwrap();
        assert!(
            is_rfc3339(&n) && n.ends_with('Z') && !n.contains('.'),
            "{n}"
        );
        let before = render("{{ now() | shift(days=-30) }}").unwrap();
        assert!(before < n, "{before} {n}");
    }
}
