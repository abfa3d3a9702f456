//! The engine: turns a loaded connector spec into requests, records, files and state.
//!
//! Owns HTTP (auth, rate limits, retries), pagination, record extraction, sinks,
//! incremental state and the sync orchestration. It must not parse command lines or
//! print for people directly: it reports through [`report`] events that a host renders.
#![deny(unsafe_code)]

pub mod config;
pub mod redact;

pub use config::{ConfigError, ResolvedConfig};
pub use redact::Redactor;
pub mod cursor;
mod date_windows;
pub mod engine;
pub mod extract;
pub mod host;
pub mod http;
pub mod infer;
pub mod json_scan;
pub mod origin;
pub mod paginate;
mod parallel_pages;
mod partition_lists;
pub mod partitions;
pub mod printable;
pub mod probe;
pub mod progress;
pub mod push;
pub mod records;
pub mod render;
pub mod report;
pub mod request;
pub mod sink;
pub mod state;
pub mod stats;
pub mod stream;
pub mod sync;
mod window;
