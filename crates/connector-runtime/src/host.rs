//! The steps every command shares: load the spec, resolve its configuration, build the
//! engine. Errors here are the user's to fix (exit status 2).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use connector_spec::LoadedSpec;

use crate::config::ResolvedConfig;
use crate::engine::Engine;

/// A problem with the spec, the configuration or the command line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A spec with its configuration, ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The checked spec.
    pub loaded: LoadedSpec,
    /// Its configuration values.
    pub config: ResolvedConfig,
}

/// Loads and checks the spec, then resolves its configuration from the process environment.
pub fn prepare(
    spec: &Path,
    config: Option<&Path>,
    sets: &[String],
) -> Result<Prepared, UsageError> {
    let loaded = connector_spec::load(spec).map_err(|e| UsageError(render_load_error(&e)))?;
    let env = |k: &str| std::env::var(k).ok();
    let config = ResolvedConfig::resolve(&loaded.spec, config, sets, &env)
        .map_err(|e| UsageError(format!("{}: {e}", spec.display())))?;
    Ok(Prepared { loaded, config })
}

impl Prepared {
    /// The output folder: the one given, or `output/<connector name>`.
    pub fn out_dir(&self, given: Option<&Path>) -> PathBuf {
        given
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("output").join(&self.loaded.spec.name))
    }

    /// The engine for this spec.
    pub fn engine(&self, out_dir: PathBuf) -> Result<Arc<Engine>, UsageError> {
        Engine::new(self.loaded.spec.clone(), self.config.clone(), out_dir)
            .map(Arc::new)
            .map_err(|e| UsageError(e.0))
    }
}

/// The state file of a spec: the one given, or `<out>/state.json` with `<out>` defaulting
/// to `output/<connector name>`. Loads only the spec: no configuration is needed.
pub fn open_state(
    spec: &Path,
    out: Option<&Path>,
    state: Option<&Path>,
) -> Result<crate::state::StateStore, UsageError> {
    let (path, name) = state_path(spec, out, state)?;
    crate::state::StateStore::open(&path, &name).map_err(|e| UsageError(e.to_string()))
}

/// [`open_state`] for `state reset`: the named streams' entries (all when empty) may be
/// malformed, since they are about to be cleared.
pub fn open_state_for_reset(
    spec: &Path,
    out: Option<&Path>,
    state: Option<&Path>,
    streams: &[String],
) -> Result<crate::state::StateStore, UsageError> {
    let (path, name) = state_path(spec, out, state)?;
    crate::state::StateStore::open_for_reset(&path, &name, streams)
        .map_err(|e| UsageError(e.to_string()))
}

/// The state file's path and the connector's name.
fn state_path(
    spec: &Path,
    out: Option<&Path>,
    state: Option<&Path>,
) -> Result<(PathBuf, String), UsageError> {
    let loaded = connector_spec::load(spec).map_err(|e| UsageError(render_load_error(&e)))?;
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("output").join(&loaded.spec.name));
    let path = state
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out.join("state.json"));
    Ok((path, loaded.spec.name))
}

/// A spec's errors as `validate` prints them: location, message, the source line, a caret.
fn render_load_error(e: &connector_spec::LoadError) -> String {
    e.diagnostics
        .iter()
        .map(|d| connector_spec::report::render_diagnostic(d, e.source_text.as_deref()))
        .collect::<Vec<_>>()
        .join("")
        .trim_end()
        .to_owned()
}
