//! The rotated OAuth2 refresh token, kept beside the state file.
//!
//! An API that rotates refresh tokens invalidates the old one when it hands out a new
//! one, so the new one must outlive the process: it is written to `<state>.tokens.json`
//! (`state.json` -> `state.tokens.json`) through a temporary file, fsync and rename, with
//! owner-only permissions, before the access token that came with it is used. The file
//! also holds a digest of the configured refresh token it descends from: when the user
//! authorises again and configures a new refresh token, the saved one is stale and ignored.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest token file read: it holds one token and a digest.
const MAX_FILE: u64 = 64 * 1024;

/// The token file beside a state file: `state.json` -> `state.tokens.json`.
pub fn beside(state: &Path) -> PathBuf {
    let stem = state
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    state.with_file_name(format!("{stem}.tokens.json"))
}

/// What the file holds.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    version: u32,
    /// SHA-256 (hex) of the configured refresh token this one descends from.
    configured_sha256: String,
    refresh_token: String,
}

/// Reading or writing the token file failed; the message names the file, never the token.
#[derive(Debug, thiserror::Error)]
#[error("refresh token file {path}: {message}")]
pub struct StoreError {
    /// The file.
    pub path: String,
    /// What went wrong and what to do.
    pub message: String,
}

/// The hex SHA-256 of a configured refresh token.
fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The saved refresh token, when the file exists and descends from `configured`.
pub fn load(path: &Path, configured: &str) -> Result<Option<String>, StoreError> {
    let err = |message: String| StoreError {
        path: path.display().to_string(),
        message,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(format!("cannot read it: {e}"))),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("cannot read it: {e}")))?;
    let saved: Saved = (bytes.len() as u64 <= MAX_FILE)
        .then(|| serde_json::from_slice(&bytes).ok())
        .flatten()
        .filter(|s: &Saved| s.version == 1 && !s.refresh_token.is_empty())
        .ok_or_else(|| {
            err("it is not a token file this runtime wrote; delete it to start again from the configured refresh token".into())
        })?;
    Ok((saved.configured_sha256 == digest(configured)).then_some(saved.refresh_token))
}

/// Saves a rotated refresh token: temporary file (0600), fsync, rename, fsync of the folder.
pub fn save(path: &Path, configured: &str, token: &str) -> Result<(), StoreError> {
    let err = |e: io::Error| StoreError {
        path: path.display().to_string(),
        message: format!("cannot save the rotated refresh token: {e}"),
    };
    let doc = Saved {
        version: 1,
        configured_sha256: digest(configured),
        refresh_token: token.to_owned(),
    };
    let bytes = serde_json::to_vec(&doc).map_err(|e| err(io::Error::other(e)))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = owner_only().open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename itself is durable only once the folder is.
        File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(err)
}

/// Options that create a new file readable and writable by its owner only.
fn owner_only() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_sits_beside_the_state() {
        assert_eq!(
            beside(Path::new("/o/state.json")),
            PathBuf::from("/o/state.tokens.json")
        );
        assert_eq!(
            beside(Path::new("acme.json")),
            PathBuf::from("acme.tokens.json")
        );
    }

    #[test]
    fn saved_owner_only_and_read_back_only_for_the_same_configured_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.tokens.json");
        assert_eq!(load(&p, "rt-1").unwrap(), None);
        save(&p, "rt-1", "rt-2").unwrap();
        assert_eq!(load(&p, "rt-1").unwrap().as_deref(), Some("rt-2"));
        // A newly configured token (the user authorised again) wins over the saved one.
        assert_eq!(load(&p, "rt-9").unwrap(), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        save(&p, "rt-1", "rt-3").unwrap();
        assert_eq!(load(&p, "rt-1").unwrap().as_deref(), Some("rt-3"));
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_foreign_file_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.tokens.json");
        fs::write(&p, "rt-secret-garbage").unwrap();
        let e = load(&p, "rt-1").unwrap_err().to_string();
        assert!(e.contains("delete it"), "{e}");
        assert!(!e.contains("rt-secret"), "{e}");
    }
}
