//! The connector format: what a connector YAML file may say, and whether it says it right.
//!
//! Owns the types of the format (`version: 1`), their JSON Schema, loading YAML with
//! source positions, the three layers of checks (YAML syntax, schema, meaning), the
//! compiled templates and JSONPaths that the engine uses, and the `runtime validate`
//! report. It reads spec files (and the record schema files they name) and does no
//! other I/O: no network, no async runtime, no printing. The engine lives in
//! `connector-runtime`.

pub mod auth;
mod check;
pub mod condition;
pub mod date_windows;
pub mod diagnostic;
pub mod duration;
pub mod error_rules;
pub mod jsonpath;
pub mod load;
pub mod model;
pub mod names;
pub mod page_param;
pub mod partitions;
pub mod report;
pub mod schema;
mod schema_errors;
mod source_text;
mod suggest;
pub mod template;
mod template_time;
pub mod timefmt;
pub mod transform;
pub mod upstreams;
pub mod yaml;

pub use condition::Condition;
pub use date_windows::DateWindows;
pub use diagnostic::{Diagnostic, Location, Severity};
pub use duration::Duration;
pub use error_rules::{Action, ErrorRule};
pub use jsonpath::{JsonPath, JsonPathError};
pub use load::{LoadError, LoadedSpec, load, load_str};
pub use model::*;
pub use page_param::{PageParam, ParamIn, Placement};
pub use template::{Template, TemplateError};
pub use timefmt::{FormatError, TimeFormat};
