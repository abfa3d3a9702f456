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
    check_names(&loaded.spec)?;
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
    let (connector, path) = state_file(spec, out, state)?;
    crate::state::StateStore::open(&path, &connector).map_err(|e| UsageError(e.to_string()))
}

/// [`open_state`] for `state reset`: the state file's lock is taken first (refused while a
/// sync uses that state) and held until the returned lock is dropped; the named streams'
/// entries (all when empty) may be malformed, since they are about to be cleared.
pub fn open_state_for_reset(
    spec: &Path,
    out: Option<&Path>,
    state: Option<&Path>,
    streams: &[String],
) -> Result<(crate::state::StateStore, folder_lock::Lock), UsageError> {
    let (connector, path) = state_file(spec, out, state)?;
    let lock = crate::sink::lock_state(&path).map_err(|e| UsageError(e.0))?;
    let store = crate::state::StateStore::open_for_reset(&path, &connector, streams)
        .map_err(|e| UsageError(e.to_string()))?;
    Ok((store, lock))
}

/// The connector's name and the path of its state file.
fn state_file(
    spec: &Path,
    out: Option<&Path>,
    state: Option<&Path>,
) -> Result<(String, PathBuf), UsageError> {
    let loaded = connector_spec::load(spec).map_err(|e| UsageError(render_load_error(&e)))?;
    check_names(&loaded.spec)?;
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("output").join(&loaded.spec.name));
    let path = state
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out.join("state.json"));
    Ok((loaded.spec.name, path))
}

/// Refuses a spec with a name that cannot be part of a file name. `validate` already
/// reports these; this keeps a spec built some other way from reaching a path.
pub fn check_names(spec: &connector_spec::Spec) -> Result<(), UsageError> {
    use connector_spec::names::{NAME_RULE, is_name};
    let sections = [
        ("stream", spec.streams.keys().collect::<Vec<_>>()),
        ("webhook", spec.webhooks.keys().collect()),
        ("push target", spec.push.keys().collect()),
    ];
    let connector = std::iter::once(("connector", &spec.name));
    let all = sections
        .iter()
        .flat_map(|(what, names)| names.iter().map(move |n| (*what, *n)));
    match connector.chain(all).find(|(_, n)| !is_name(n)) {
        None => Ok(()),
        Some((what, name)) => Err(UsageError(format!(
            "{what} name {name:?} cannot be part of a file name; use {NAME_RULE}"
        ))),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "version: 1\nname: shop\nhttp: { base_url: \"https://x\" }\nstreams:\n  orders: { path: /o, records: \"$[*]\" }\n";

    #[test]
    fn a_name_that_is_a_path_never_reaches_the_engine() {
        let loaded = connector_spec::load_str(Path::new("t.yaml"), SPEC).unwrap();
        assert!(check_names(&loaded.spec).is_ok());
        for bad in ["../../../victim", "/tmp/victim", "a\nb", "a\0b", ".."] {
            let mut spec = loaded.spec.clone();
            let stream = spec.streams.shift_remove("orders").unwrap();
            spec.streams.insert(bad.to_owned(), stream);
            let e = check_names(&spec).unwrap_err();
            assert!(e.0.starts_with("stream name \""), "{e}");
            assert!(!e.0.contains('\n'), "{e:?}");
            let mut spec = loaded.spec.clone();
            spec.name = bad.to_owned();
            assert!(check_names(&spec).is_err(), "{bad:?}");
        }
    }
}
