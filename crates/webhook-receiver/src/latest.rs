//! The latest view: the newest version of each record by primary key, kept in the
//! store's `latest` table and materialised as `<out>/<view>.latest.jsonl`.
//!
//! The table is the truth; the file is rewritten from it (temporary file, fsync, rename)
//! so a reader never sees half a file, and a crash before a rewrite is repaired at the
//! next start.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::RunError;
use crate::sink::sync_dir;
use crate::store::{LatestError, Reader};
use crate::version::Version;

/// Path of a view's file.
pub fn path(out: &Path, view: &str) -> PathBuf {
    out.join(format!("{view}.latest.jsonl"))
}

/// Whether the version `candidate` (JSON text) replaces the kept one.
pub fn replaces(candidate: &str, kept: Option<&str>) -> bool {
    let Some(kept) = kept else {
        return true;
    };
    let parse = |s: &str| {
        serde_json::from_str::<Value>(s)
            .ok()
            .and_then(|v| Version::from_value(&v))
    };
    match (parse(candidate), parse(kept)) {
        (Some(c), Some(k)) => c.replaces(&k),
        // Unreadable versions were refused at receipt; keep what is kept.
        _ => false,
    }
}

/// Rewrites `<out>/<view>.latest.jsonl` from the table.
pub fn materialise(reader: &Reader, out: &Path, view: &str) -> Result<(), RunError> {
    let target = path(out, view);
    let tmp = out.join(format!(".{view}.latest.jsonl.tmp"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::Io { path, source }
    };
    let file = File::create(&tmp).map_err(io(&tmp))?;
    let mut w = BufWriter::new(file);
    reader
        .each_latest(view, |record| {
            w.write_all(record.as_bytes())?;
            w.write_all(b"\n")
        })
        .map_err(|e| match e {
            LatestError::Io(source) => RunError::Io {
                path: tmp.clone(),
                source,
            },
            LatestError::Store(s) => RunError::Worker(s.to_string()),
        })?;
    let file = w.into_inner().map_err(|e| RunError::Io {
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &target).map_err(io(&target))?;
    sync_dir(out).map_err(io(out))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_when_newer() {
        assert!(replaces("\"2024-01-02T00:00:00Z\"", None));
        // 23:00-02:00 is 01:00Z the next day: newer than 00:00Z, so it stays.
        assert!(!replaces(
            "\"2024-01-02T00:00:00Z\"",
            Some("\"2024-01-01T23:00:00-02:00\"")
        ));
        assert!(replaces("3", Some("2")));
        assert!(!replaces("2", Some("2")));
        assert!(!replaces("\"x\"", Some("2")));
    }
}
