//! Reading a spec file: bytes -> YAML tree with positions -> checks -> typed [`Spec`].

use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Location, Severity};
use crate::model::Spec;
use crate::yaml::{self, Node};

/// A spec that passed every check, ready for the engine.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The file it came from.
    pub path: PathBuf,
    /// The spec, with every template and JSONPath compiled.
    pub spec: Spec,
    /// Things that work but probably not as meant.
    pub warnings: Vec<Diagnostic>,
}

/// Every error found in a spec file (never empty), plus any warnings.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render_plain(.diagnostics))]
pub struct LoadError {
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// The file's text, when it could be read, for rendering source snippets.
    pub source_text: Option<String>,
}

fn render_plain(ds: &[Diagnostic]) -> String {
    ds.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl LoadError {
    fn one(path: &Path, location: Location, message: impl Into<String>) -> Self {
        Self {
            diagnostics: vec![Diagnostic::error(path, location, message)],
            source_text: None,
        }
    }
}

/// Reads and checks a spec file.
pub fn load(path: &Path) -> Result<LoadedSpec, LoadError> {
    let text = read(path)?;
    load_str(path, &text)
}

/// Reads a spec file as text, refusing what cannot be a spec before reading it all.
pub fn read(path: &Path) -> Result<String, LoadError> {
    let start = Location {
        line: 1,
        col: 1,
        len: 1,
    };
    let meta = std::fs::metadata(path)
        .map_err(|e| LoadError::one(path, start, format!("cannot read the file: {e}")))?;
    if meta.is_dir() {
        return Err(LoadError::one(
            path,
            start,
            "this is a folder, not a spec file",
        ));
    }
    if !meta.is_file() {
        // A FIFO or a device would block or never end.
        return Err(LoadError::one(path, start, "this is not a regular file"));
    }
    if meta.len() > yaml::MAX_BYTES as u64 {
        return Err(LoadError::one(
            path,
            start,
            format!(
                "file is {} bytes, over the {} byte limit for a spec; a connector spec is a few kilobytes",
                meta.len(),
                yaml::MAX_BYTES
            ),
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| LoadError::one(path, start, format!("cannot read the file: {e}")))?;
    match String::from_utf8(bytes) {
        Ok(t) => Ok(t),
        Err(e) => {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let good = String::from_utf8_lossy(good);
            let line = good.matches('\n').count() + 1;
            let col = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Err(LoadError {
                diagnostics: vec![Diagnostic::error(
                    path,
                    Location { line, col, len: 1 },
                    "the file is not valid UTF-8; save it as UTF-8",
                )],
                // The valid part, so the report can show the line up to the bad byte.
                source_text: Some(good.into_owned()),
            })
        }
    }
}

/// Checks spec text as if it came from `path`.
///
/// Runs the three layers: YAML syntax (which stops at the first error), then the
/// schema, then meaning on every section the schema accepted, so one run reports
/// as much as can be known.
pub fn load_str(path: &Path, text: &str) -> Result<LoadedSpec, LoadError> {
    let fail = |diagnostics: Vec<Diagnostic>| LoadError {
        diagnostics,
        source_text: Some(text.to_owned()),
    };
    let tree = match yaml::parse(text) {
        Ok(t) => t,
        Err(e) => return Err(fail(vec![Diagnostic::error(path, e.location, e.message)])),
    };
    let json = tree.to_json();
    let schema = crate::schema_errors::check(path, &tree, &json);
    let mut diagnostics = schema.diagnostics;
    let spec = if diagnostics.is_empty() {
        match serde_path_to_error::deserialize::<_, Spec>(&json) {
            Ok(spec) => Some(spec),
            Err(e) => {
                // The schema should have caught it; report what serde says, where it says.
                let pointer = to_pointer(&e.path().to_string());
                diagnostics.push(Diagnostic::error(
                    path,
                    locate(&tree, &pointer),
                    e.inner().to_string(),
                ));
                None
            }
        }
    } else {
        None
    };
    crate::check::check(
        &crate::check::Input {
            file: path,
            text,
            tree: &tree,
            json: &json,
            bad: &schema.bad_pointers,
            unknown: &schema.unknown_fields,
            spec: spec.as_ref(),
        },
        &mut diagnostics,
    );
    diagnostics.sort_by_key(|d| (d.location.line, d.location.col));
    diagnostics.dedup();
    let errors = diagnostics.iter().any(|d| d.severity == Severity::Error);
    match spec {
        Some(spec) if !errors => Ok(LoadedSpec {
            path: path.to_owned(),
            spec,
            warnings: diagnostics,
        }),
        _ => Err(fail(diagnostics)),
    }
}

/// serde_path_to_error's `a.b[0].c` to a JSON Pointer `/a/b/0/c`.
fn to_pointer(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    let mut out = String::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            out.push('/');
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                out.push('/');
                out.push_str(&rest[1..end]);
                rest = &rest[end + 1..];
            }
        } else {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

/// Where a JSON Pointer points in the tree (the key when there is one).
pub fn locate(tree: &Node, pointer: &str) -> Location {
    let (node, key) = tree.find(pointer);
    key.unwrap_or(node.location)
}
