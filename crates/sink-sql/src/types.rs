//! Column types: what a JSON value or a declared JSON schema becomes in a table, and how
//! two types combine when a field changes type (schema evolution).

use std::borrow::Cow;

use serde_json::Value;

/// The type of a column, the same six in every database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// JSON integers that fit in 64 bits.
    BigInt,
    /// Any JSON number.
    Double,
    /// `true` / `false`.
    Boolean,
    /// Strings that are RFC 3339 date-times (declared `format: date-time`, or all seen so).
    Timestamp,
    /// Strings; and the JSON text of any scalar once a field has held several kinds.
    Text,
    /// Objects and arrays; and any value once a field has held an object or array.
    Json,
}

impl SqlType {
    /// The type a single value asks for; `None` for `null`, which fits every column.
    pub fn of_value(v: &Value) -> Option<Self> {
        Some(match v {
            Value::Null => return None,
            Value::Bool(_) => Self::Boolean,
            Value::Number(n) if n.is_i64() => Self::BigInt,
            // Past i64: kept exactly as text rather than rounded to a double.
            Value::Number(n) if n.is_u64() => Self::Text,
            Value::Number(_) => Self::Double,
            Value::String(s) if is_datetime(s) => Self::Timestamp,
            Value::String(_) => Self::Text,
            Value::Array(_) | Value::Object(_) => Self::Json,
        })
    }

    /// The type a declared JSON schema gives a field; `None` when it says nothing usable
    /// (the records decide then).
    pub fn from_schema(schema: &Value) -> Option<Self> {
        let names: Vec<&str> = match schema.get("type") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => return None,
        };
        let datetime = schema.get("format").and_then(Value::as_str) == Some("date-time");
        names
            .into_iter()
            .filter_map(|t| match t {
                "integer" => Some(Self::BigInt),
                "number" => Some(Self::Double),
                "boolean" => Some(Self::Boolean),
                "string" if datetime => Some(Self::Timestamp),
                "string" => Some(Self::Text),
                "object" | "array" => Some(Self::Json),
                _ => None,
            })
            .reduce(Self::widen)
    }

    /// The smallest type that holds both: integer and number make number; anything with
    /// an object or array makes JSON (a variant column); any other mix makes text.
    pub fn widen(self, other: Self) -> Self {
        use SqlType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (BigInt, Double) | (Double, BigInt) => Double,
            (Json, _) | (_, Json) => Json,
            _ => Text,
        }
    }

    /// Whether a value can be stored in a column of this type as it is.
    pub fn accepts(self, v: &Value) -> bool {
        self.fits(Shape::of(v))
    }

    /// Whether a value of this shape can be stored in a column of this type as it is.
    pub fn fits(self, shape: Shape) -> bool {
        match (self, shape.ty) {
            (_, None) | (Self::Json, _) => true,
            (Self::Text, Some(t)) => t != Self::Json,
            (Self::Double, _) if shape.number => true,
            (t, Some(v)) => t == v,
        }
    }
}

/// What decides whether a value fits a column: the type it asks for alone (`None` for
/// null), and whether it is a number (any number fits a double column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The type the value asks for.
    pub ty: Option<SqlType>,
    /// Whether it is a JSON number.
    pub number: bool,
}

impl Shape {
    /// The shape of a parsed value.
    pub fn of(v: &Value) -> Self {
        Self {
            ty: SqlType::of_value(v),
            number: v.is_number(),
        }
    }
}

/// Whether a string is an RFC 3339 date-time.
pub fn is_datetime(s: &str) -> bool {
    datetime_micros(s).is_some()
}

/// The instant of an RFC 3339 date-time string, in microseconds since the Unix epoch;
/// `None` when it is not one. The common forms (`2024-01-31T10:00:00Z`, with a fraction
/// or an offset) are read by hand; the rest by the `time` crate, which has the last word.
pub fn datetime_micros(s: &str) -> Option<i64> {
    // Cheap shape check first: most strings are not dates.
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    common_datetime(b).or_else(|| timestamp_micros(s))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` with every field in range, or
/// `None` (the caller asks the `time` crate then): a subset of what it accepts.
fn common_datetime(b: &[u8]) -> Option<i64> {
    let num = |from: usize, len: usize| -> Option<i64> {
        b.get(from..from + len)?.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if year == 0 || day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if sep(i, b'.') {
        let digits = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(i + 1, digits)? * 10i64.pow(9 - digits as u32);
        i += 1 + digits;
    }
    let offset = match b.get(i..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            // `-00:00` (an unknown offset) is left to the `time` crate.
            if h > 23 || m > 59 || (*sign == b'-' && h == 0 && m == 0) {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    // As `time` computes it: nanoseconds, divided (rounding toward zero).
    i64::try_from((i128::from(secs) * 1_000_000_000 + i128::from(nanos)) / 1000).ok()
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 date-time as microseconds since the Unix epoch (its offset applied);
/// `None` when it is not one.
pub fn timestamp_micros(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

/// One value ready for a column of a given type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// SQL NULL.
    Null,
    /// A bigint.
    Int(i64),
    /// A double.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An RFC 3339 date-time, as sent.
    Timestamp(&'a str),
    /// Text: the string itself, or the JSON text of another scalar.
    Text(Cow<'a, str>),
    /// The JSON text of the value.
    Json(String),
}

impl<'a> Cell<'a> {
    /// The value for a column of type `ty`; the caller has widened the column so that
    /// `ty.accepts(v)`.
    pub fn new(ty: SqlType, v: &'a Value) -> Self {
        match (ty, v) {
            (_, Value::Null) => Cell::Null,
            (SqlType::Json, v) => Cell::Json(v.to_string()),
            (SqlType::BigInt, Value::Number(n)) => n.as_i64().map_or(Cell::Null, Cell::Int),
            (SqlType::Double, Value::Number(n)) => n.as_f64().map_or(Cell::Null, Cell::Float),
            (SqlType::Boolean, Value::Bool(b)) => Cell::Bool(*b),
            (SqlType::Timestamp, Value::String(s)) => Cell::Timestamp(s),
            (_, Value::String(s)) => Cell::Text(Cow::Borrowed(s)),
            (_, other) => Cell::Text(Cow::Owned(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_schemas_map_to_types() {
        assert_eq!(SqlType::of_value(&json!(1)), Some(SqlType::BigInt));
        assert_eq!(SqlType::of_value(&json!(1.5)), Some(SqlType::Double));
        assert_eq!(SqlType::of_value(&json!(u64::MAX)), Some(SqlType::Text));
        assert_eq!(SqlType::of_value(&json!(true)), Some(SqlType::Boolean));
        assert_eq!(
            SqlType::of_value(&json!("2024-01-01T00:00:00Z")),
            Some(SqlType::Timestamp)
        );
        assert_eq!(SqlType::of_value(&json!("2024-01-01")), Some(SqlType::Text));
        assert_eq!(SqlType::of_value(&json!({"a": 1})), Some(SqlType::Json));
        assert_eq!(SqlType::of_value(&json!([1])), Some(SqlType::Json));
        assert_eq!(SqlType::of_value(&json!(null)), None);
        let s = |v| SqlType::from_schema(&v);
        assert_eq!(
            s(json!({"type": ["integer", "null"]})),
            Some(SqlType::BigInt)
        );
        assert_eq!(
            s(json!({"type": ["integer", "number"]})),
            Some(SqlType::Double)
        );
        assert_eq!(
            s(json!({"type": "string", "format": "date-time"})),
            Some(SqlType::Timestamp)
        );
        assert_eq!(s(json!({"type": "object"})), Some(SqlType::Json));
        assert_eq!(s(json!({"description": "?"})), None);
    }

    #[test]
    fn widening_never_loses_a_value() {
        use SqlType::*;
        assert_eq!(BigInt.widen(Double), Double);
        assert_eq!(Timestamp.widen(Text), Text);
        assert_eq!(Boolean.widen(BigInt), Text);
        assert_eq!(Text.widen(Json), Json);
        assert!(Double.accepts(&json!(3)));
        assert!(!BigInt.accepts(&json!(3.5)));
        assert!(!Text.accepts(&json!({"a": 1})));
        assert!(Text.accepts(&json!(false)));
        assert!(!Timestamp.accepts(&json!("yesterday")));
        assert_eq!(
            Cell::new(Text, &json!(7)),
            Cell::Text(Cow::Owned("7".into()))
        );
        assert_eq!(Cell::new(Json, &json!("a")), Cell::Json("\"a\"".into()));
        assert_eq!(
            timestamp_micros("2024-02-01T10:00:00.5+02:00"),
            Some(1_706_774_400_500_000)
        );
        assert_eq!(timestamp_micros("soon"), None);
    }

    #[test]
    fn the_common_forms_read_as_time_reads_them() {
        for s in [
            "2024-01-01T00:00:00Z",
            "2024-02-29T23:59:59.123456789Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "1969-12-31T23:59:59.9999995Z",
            "0001-01-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999+14:00",
            "2024-06-01T10:00:00-07:30",
            "2024-06-01T10:00:00-00:00",
            "2024-06-01T10:00:00+24:00",
            "2024-06-01T10:00:60Z",
            "2024-06-01t10:00:00z",
            "2024-06-01 10:00:00Z",
            "2024-06-01T10:00:00.Z",
            "2024-06-01T10:00:00.1234567891Z",
            "2024-13-01T10:00:00Z",
            "2024-06-01T10:00:00",
            "2024-06-01T1a:00:00Z",
            "2024-06-01T10:00:00+0100",
        ] {
            let fast = common_datetime(s.as_bytes());
            if fast.is_some() {
                assert_eq!(fast, timestamp_micros(s), "{s}");
            }
            assert_eq!(datetime_micros(s), timestamp_micros(s), "{s}");
        }
        assert_eq!(common_datetime(b"1970-01-01T00:00:01.5Z"), Some(1_500_000));
    }
}
