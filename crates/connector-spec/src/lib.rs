//! The connector format: what a connector YAML file may say, and whether it says it right.
//!
//! Owns the types of the format (`version: 1`), their JSON Schema, loading YAML with
//! source positions, the schema and semantic checks, and the compiled templates and
//! JSONPaths that the engine uses. It does no I/O beyond reading spec files and has no
//! async runtime: the engine lives in `connector-runtime`.

pub mod duration;
pub mod jsonpath;
pub mod model;
pub mod template;

pub use duration::Duration;
pub use jsonpath::{JsonPath, JsonPathError};
pub use model::*;
pub use template::{Template, TemplateError};
pub mod check;
pub mod diagnostic;
pub mod load;
pub mod yaml;

pub use diagnostic::{Diagnostic, Location, Severity};
pub use load::{LoadError, LoadedSpec, load, load_str};
pub mod schema;
