//! One executable per connector: a small shell script that runs this `runtime` binary
//! with the spec's absolute path in `RUNTIME_SPEC`, so a platform's fixed command
//! (`source-orders read --config ...`, `tap-orders --config ...`) serves that spec.

use std::path::{Path, PathBuf};

/// Why the wrapper could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// The spec is not usable.
    #[error("{0}")]
    Spec(String),
    /// A path cannot go into a shell script safely, or a file cannot be written.
    #[error("{0}")]
    Io(String),
}

/// The script's text: `exec RUNTIME airbyte|singer "$@"` with the spec in the environment.
pub fn script(runtime: &Path, spec: &Path, airbyte: bool) -> Result<String, WrapError> {
    let quote = |p: &Path| -> Result<String, WrapError> {
        let s = p
            .to_str()
            .ok_or_else(|| WrapError::Io(format!("{} is not UTF-8", p.display())))?;
        if s.contains(['\n', '\0']) {
            return Err(WrapError::Io(format!("{s:?} holds a newline or NUL")));
        }
        Ok(format!("'{}'", s.replace('\'', r"'\''")))
    };
    let mode = if airbyte { "airbyte" } else { "singer" };
    Ok(format!(
        "#!/bin/sh\n# Written by `runtime wrap`: serves one connector spec as {what}.\nRUNTIME_SPEC={spec}\nexport RUNTIME_SPEC\nexec {runtime} {mode} \"$@\"\n",
        what = if airbyte {
            "an Airbyte source"
        } else {
            "a Singer tap"
        },
        spec = quote(spec)?,
        runtime = quote(runtime)?,
    ))
}

/// Checks the spec, then writes the executable script to `output` (mode 0755).
pub fn write(spec: &Path, airbyte: bool, output: &Path) -> Result<PathBuf, WrapError> {
    let spec_abs =
        std::path::absolute(spec).map_err(|e| WrapError::Io(format!("{}: {e}", spec.display())))?;
    connector_runtime::host::prepare_spec(&spec_abs).map_err(|e| WrapError::Spec(e.0))?;
    let runtime = std::env::current_exe()
        .map_err(|e| WrapError::Io(format!("cannot find this runtime binary: {e}")))?;
    let text = script(&runtime, &spec_abs, airbyte)?;
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| WrapError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(output, text)
        .map_err(|e| WrapError::Io(format!("cannot write {}: {e}", output.display())))?;
    set_executable(output)?;
    Ok(output.to_path_buf())
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<(), WrapError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| WrapError::Io(format!("cannot make {} executable: {e}", path.display())))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<(), WrapError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_the_shell() {
        let s = script(Path::new("/opt/run time"), Path::new("/a/it's.yaml"), true).unwrap();
        assert!(s.contains("RUNTIME_SPEC='/a/it'\\''s.yaml'"), "{s}");
        assert!(s.contains("exec '/opt/run time' airbyte \"$@\""), "{s}");
        assert!(script(Path::new("/x"), Path::new("/a\nb"), false).is_err());
    }
}
