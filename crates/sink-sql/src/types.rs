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
        match (self, v) {
            (_, Value::Null) | (Self::Json, _) => true,
            (Self::Text, v) => !v.is_object() && !v.is_array(),
            (Self::Double, Value::Number(_)) => true,
            (t, v) => Self::of_value(v) == Some(t),
        }
    }
}

/// Whether a string is an RFC 3339 date-time.
pub fn is_datetime(s: &str) -> bool {
    // Cheap shape check first: most strings are not dates.
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
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
}
