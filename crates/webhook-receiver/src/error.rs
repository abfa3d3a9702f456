//! What can go wrong: at start-up (the user's spec or configuration, exit status 2) and
//! while serving (disk, store, network, exit status 1).

use std::path::PathBuf;

use crate::verify::VerifierError;

/// The spec's webhooks cannot be served as configured.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Nothing to serve.
    #[error("the spec declares no webhooks; add a `webhooks:` section to use `serve`")]
    NoWebhooks,
    /// A secret template did not render (e.g. an unknown config key).
    #[error("webhooks.{webhook}.signature.secrets[{index}]: {message}")]
    Render {
        /// The webhook.
        webhook: String,
        /// Position of the secret.
        index: usize,
        /// The template error.
        message: String,
    },
    /// The signature section cannot be used.
    #[error("webhooks.{webhook}.{source}")]
    Verifier {
        /// The webhook.
        webhook: String,
        /// What is wrong.
        source: VerifierError,
    },
    /// Something else in a webhook's definition cannot be served.
    #[error("webhooks.{webhook}.{field}: {message}")]
    Invalid {
        /// The webhook.
        webhook: String,
        /// The field at fault.
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The event store could not be opened or written.
    #[error("event store {path}: {source}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A file or folder could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A background thread stopped unexpectedly.
    #[error("{0}")]
    Worker(String),
    /// Another process writes to the output folder (a usage error: exit status 2).
    #[error(transparent)]
    Locked(#[from] folder_lock::LockError),
}

impl RunError {
    /// Whether the user must change the command (another `--out`, or wait), rather than
    /// the machine being at fault.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Locked(folder_lock::LockError::Held { .. }))
    }
}
