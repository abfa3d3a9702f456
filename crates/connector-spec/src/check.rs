//! Checks of meaning: what the schema cannot say.

use std::path::Path;

use crate::diagnostic::Diagnostic;
use crate::load::locate;
use crate::model::Spec;
use crate::yaml::Node;

/// Adds a diagnostic for every template and JSONPath that does not compile.
pub fn check(path: &Path, tree: &Node, spec: &Spec, out: &mut Vec<Diagnostic>) {
    for (name, stream) in &spec.streams {
        let base = format!("/streams/{name}");
        if let Err(e) = stream.path.check() {
            out.push(Diagnostic::error(
                path,
                locate(tree, &format!("{base}/path")),
                format!("template does not parse: {e}"),
            ));
        }
        if let Err(e) = stream.records.check() {
            out.push(Diagnostic::error(
                path,
                locate(tree, &format!("{base}/records")),
                format!("JSONPath does not parse: {e}"),
            ));
        }
    }
    if let Err(e) = spec.http.base_url.check() {
        out.push(Diagnostic::error(
            path,
            locate(tree, "/http/base_url"),
            format!("template does not parse: {e}"),
        ));
    }
}
