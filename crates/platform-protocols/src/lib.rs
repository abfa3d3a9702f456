//! A connector spec served as an Airbyte source or a Singer tap.
//!
//! Each protocol has one message type and one writer ([`airbyte::Writer`],
//! [`singer::Writer`]): nothing else in the workspace writes to standard output in
//! these modes. Records are the API's bytes spliced into the message, never
//! re-serialised; a STATE message is written only after the records it covers have been
//! flushed. The catalogs, the connection specification and the parsing of configured
//! catalogs and incoming state live here too, so the `runtime` binary only routes.

pub mod airbyte;
pub mod catalog;
pub mod commands;
pub mod connection;
pub mod destination;
pub mod error;
pub mod incoming;
pub mod read;
pub mod reporter;
pub mod singer;
pub mod wrapper;

pub use error::{FailureType, ProtocolError};

/// Milliseconds since the Unix epoch, for `emitted_at`.
pub fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Now as RFC 3339 with a `Z`, for Singer's `time_extracted`.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
