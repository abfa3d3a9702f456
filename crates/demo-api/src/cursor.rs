//! The opaque cursor of `GET /orders`: the `(updated_at, id)` position of the last record sent,
//! so the next page starts right after it whatever was inserted in between.
//!
//! Format: URL-safe base64 (no padding) of `o1:<updated_at in unix ns>:<id>`; the `o1` tag lets
//! the format change later without old cursors being misread.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid cursor `{shown}`: pass back the next_cursor of the previous page exactly as it was sent"
)]
pub struct CursorError {
    /// The cursor, shortened for the message.
    pub shown: String,
}

/// Encodes a position.
pub fn encode(updated_at_nanos: i128, id: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("o1:{updated_at_nanos}:{id}"))
}

/// Decodes a cursor made by [`encode`].
pub fn decode(cursor: &str) -> Result<(i128, u64), CursorError> {
    let err = || CursorError {
        shown: cursor.chars().take(40).collect(),
    };
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| err())?;
    let text = std::str::from_utf8(&raw).map_err(|_| err())?;
    let mut parts = text.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("o1"), Some(t), Some(id), None) => Ok((
            t.parse().map_err(|_| err())?,
            id.parse().map_err(|_| err())?,
        )),
        _ => Err(err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (t, id) in [
            (0i128, 0u64),
            (1_704_153_600_000_000_000, 42),
            (-5, u64::MAX),
        ] {
            let c = encode(t, id);
            assert!(
                c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(decode(&c), Ok((t, id)));
        }
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "!!!",
            "b3ZlcjpmbG93",
            &URL_SAFE_NO_PAD.encode("o1:x:1"),
            &URL_SAFE_NO_PAD.encode("o1:1:2:3"),
            &URL_SAFE_NO_PAD.encode("o2:1:2"),
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
