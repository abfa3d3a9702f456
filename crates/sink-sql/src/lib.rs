//! The table model the database sinks share: column types from the declared JSON schema
//! and the records, column names from field names, schema evolution (add, widen), the
//! SQL of the write modes and the state table, and the thread a sink runs on.
//!
//! Owns decisions, not connections: it links no database client and does no I/O except
//! through a [`worker::Backend`] that a database crate implements. It must not know the
//! engine's types (streams, state): the database crates translate.

pub mod plan;
pub mod publish;
mod reader;
pub mod scan;
pub mod sql;
pub mod table;
pub mod types;
pub mod worker;

pub use plan::{TableSpec, mode_for};
pub use publish::Target;
pub use scan::{Kind, Page, Raw};
pub use sql::{Dialect, Mode};
pub use table::{Change, Column, Table};
pub use types::{Cell, Shape, SqlType, datetime_micros, timestamp_micros};
pub use worker::{Backend, LoadError, Meta, Worker};

/// The state table's name, in the destination's schema.
pub const STATE_TABLE: &str = "_runtime_state";

/// A load id for this run: time and process, unique enough to tell runs apart.
pub fn load_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{}-{}",
        now.unix_timestamp_nanos() / 1000,
        std::process::id()
    )
}

/// Now, as RFC 3339 (the `_extracted_at` of a page).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
