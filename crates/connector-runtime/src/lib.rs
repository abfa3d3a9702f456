//! The engine: turns a loaded connector spec into requests, records, files and state.
//!
//! Owns HTTP (auth, rate limits, retries), pagination, record extraction, sinks,
//! incremental state and the sync orchestration. It must not parse command lines or
//! print for people directly: it reports through [`report`] events that a host renders.

pub mod config;
pub mod redact;

pub use config::{ConfigError, ResolvedConfig};
pub use redact::Redactor;
pub mod http;
pub mod render;
pub mod stats;
pub mod extract;
pub mod paginate;
pub mod request;
pub mod sink;
pub mod engine;
pub mod report;
pub mod stream;
pub mod sync;
pub mod progress;
pub mod host;
