//! What every stream of a run shares: the spec, the configuration, the HTTP client.

use std::path::PathBuf;

use connector_spec::Spec;
use serde_json::Value;

use crate::config::ResolvedConfig;
use crate::http::Http;

/// The shared state of one run.
#[derive(Debug)]
pub struct Engine {
    /// The connector.
    pub spec: Spec,
    /// Its configuration.
    pub config: ResolvedConfig,
    /// Its HTTP client, shared by every stream so pacing is shared too.
    pub http: Http,
    /// Where output files go.
    pub out_dir: PathBuf,
    ctx: Value,
}

/// The engine could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

impl Engine {
    /// Builds the engine; renders the credentials with the configuration.
    pub fn new(spec: Spec, config: ResolvedConfig, out_dir: PathBuf) -> Result<Self, SetupError> {
        crate::host::check_names(&spec).map_err(|e| SetupError(e.0))?;
        for w in config.warnings() {
            tracing::warn!("{w}");
        }
        let ctx = config.context();
        let http = Http::new(&spec, &ctx, config.redactor().clone())
            .map_err(|e| SetupError(config.redact(&e.to_string())))?;
        Ok(Self {
            spec,
            config,
            http,
            out_dir,
            ctx,
        })
    }

    /// A fresh template context (`config`), to which a stream adds `parent` and `page`.
    pub fn context(&self) -> Value {
        self.ctx.clone()
    }
}
