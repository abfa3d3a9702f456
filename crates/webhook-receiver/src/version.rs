//! Ordering the versions of a record: which of two deliveries is the newer one.
//!
//! RFC 3339 date-times compare as instants (so `+02:00` offsets and fractions order
//! right), numbers as numbers, other strings byte-wise. Values of different kinds do not
//! compare, and then the version already kept stays.

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A version value from a record's `version_field`.
#[derive(Debug, Clone, PartialEq)]
pub enum Version {
    /// An RFC 3339 date-time, as nanoseconds since the Unix epoch.
    Instant(i128),
    /// A whole number.
    Integer(i128),
    /// Any other number.
    Float(f64),
    /// A string that is not an RFC 3339 date-time.
    Text(String),
}

impl Version {
    /// Reads a version; `None` for null, booleans, arrays and objects, which do not order.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(match OffsetDateTime::parse(s, &Rfc3339) {
                Ok(t) => Version::Instant(t.unix_timestamp_nanos()),
                Err(_) => Version::Text(s.clone()),
            }),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Some(Version::Integer(i.into()))
                } else if let Some(u) = n.as_u64() {
                    Some(Version::Integer(u.into()))
                } else {
                    n.as_f64().map(Version::Float)
                }
            }
            _ => None,
        }
    }

    /// Orders two versions of the same kind; `None` when the kinds differ.
    pub fn compare(&self, other: &Version) -> Option<Ordering> {
        match (self, other) {
            (Version::Instant(a), Version::Instant(b)) => Some(a.cmp(b)),
            (Version::Integer(a), Version::Integer(b)) => Some(a.cmp(b)),
            (Version::Text(a), Version::Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (Version::Float(a), Version::Float(b)) => a.partial_cmp(b),
            // Integers and fractions are both numbers: compare them as such.
            (Version::Integer(a), Version::Float(b)) => (*a as f64).partial_cmp(b),
            (Version::Float(a), Version::Integer(b)) => a.partial_cmp(&(*b as f64)),
            _ => None,
        }
    }

    /// True when `self` is strictly newer than `kept`; equal or unordered versions keep what is kept.
    pub fn replaces(&self, kept: &Version) -> bool {
        self.compare(kept) == Some(Ordering::Greater)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(value: Value) -> Version {
        Version::from_value(&value).unwrap()
    }

    #[test]
    fn datetimes_compare_as_instants() {
        // Lexically "10:30+02:00" > "09:00Z", but it is 08:30Z, earlier.
        let a = v(json!("2024-05-01T10:30:00+02:00"));
        let b = v(json!("2024-05-01T09:00:00Z"));
        assert!(b.replaces(&a));
        assert!(!a.replaces(&b));
        let frac = v(json!("2024-05-01T09:00:00.5Z"));
        assert!(frac.replaces(&b));
        assert!(!b.replaces(&b.clone()), "equal does not replace");
    }

    #[test]
    fn numbers_compare_as_numbers() {
        assert!(v(json!(10)).replaces(&v(json!(9))));
        assert!(v(json!(9.5)).replaces(&v(json!(9))));
        assert!(!v(json!(9)).replaces(&v(json!(9.5))));
        assert!(v(json!(u64::MAX)).replaces(&v(json!(-1))));
    }

    #[test]
    fn different_kinds_keep_what_is_kept() {
        assert!(!v(json!(5)).replaces(&v(json!("2024-01-01T00:00:00Z"))));
        assert!(!v(json!("2024-01-01T00:00:00Z")).replaces(&v(json!(5))));
        assert!(Version::from_value(&json!(null)).is_none());
        assert!(Version::from_value(&json!(true)).is_none());
    }
}
