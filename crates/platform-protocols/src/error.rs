//! Errors of the protocol modes, classed the way Airbyte's TRACE messages class them.

/// Whose problem an error is, in Airbyte's words (`failure_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureType {
    /// The user's configuration, catalog or state is wrong: retrying will not help.
    Config,
    /// Something failed on the way (the API, the network): a retry may work.
    Transient,
    /// A fault of the runtime or of the environment.
    System,
}

impl FailureType {
    /// The protocol's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureType::Config => "config_error",
            FailureType::Transient => "transient_error",
            FailureType::System => "system_error",
        }
    }
}

/// Why a protocol command cannot go on; the message is fit to print (no secrets).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    /// What went wrong and what to do, in plain words.
    pub message: String,
    /// Whose problem it is.
    pub failure: FailureType,
}

impl ProtocolError {
    /// A problem with the user's input (config, catalog, state, spec).
    pub fn config(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            failure: FailureType::Config,
        }
    }

    /// A problem on the way (API, network), worth a retry.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            failure: FailureType::Transient,
        }
    }

    /// A problem of the runtime or its environment.
    pub fn system(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            failure: FailureType::System,
        }
    }
}
