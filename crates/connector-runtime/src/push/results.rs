//! The results file: one JSON line per outcome, appended as each record finishes. A write
//! that fails is remembered and fails the run; nothing is dropped silently.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::PushError;
use super::input::{Line, LineReader};

/// The outcome of one record, as written to the results file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct PushResult {
    /// Line number in the input, from 1.
    pub line: u64,
    /// The idempotency key sent (empty when the line has none).
    pub key: String,
    /// `created` (2xx), `conflict` (409), `rejected` (422), `failed` (anything else),
    /// `duplicate_in_input`, `invalid` (not JSON, no key) or `too_long`.
    pub outcome: String,
    /// The last HTTP status, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The id the API returned (`response_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// For `duplicate_in_input`: the line that first had this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_line: Option<u64>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PushResult {
    /// An outcome with no HTTP answer behind it.
    pub fn local(line: u64, key: &str, outcome: &str, error: String) -> Self {
        Self {
            line,
            key: key.to_owned(),
            outcome: outcome.into(),
            status: None,
            id: None,
            first_line: None,
            error: Some(error),
        }
    }
}

/// The open results file and whether every write to it so far succeeded.
pub struct Results {
    file: File,
    path: PathBuf,
    written: u64,
    error: Option<String>,
    /// Held for the whole run: one push per results file.
    _lock: Option<folder_lock::Lock>,
}

/// Opens the results file for appending and reads the keys an earlier run already
/// `created` (a results file that is not a regular file, e.g. /dev/null, has none).
pub fn open_results(path: &Path, max_line: usize) -> Result<(Results, HashSet<String>), PushError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| PushError(format!("cannot create {}: {e}", dir.display())))?;
    }
    // One writer per results file, taken before it is read: a second push would send the
    // same records again and interleave its outcomes with ours. A device (/dev/null) is
    // nobody's record of outcomes and needs no lock.
    let device = std::fs::metadata(path).is_ok_and(|m| !m.is_file());
    let lock = if device {
        None
    } else {
        Some(
            folder_lock::Lock::file(path, Some("--results"))
                .map_err(|e| PushError(e.to_string()))?,
        )
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(|e| PushError(format!("cannot write {}: {e}", path.display())))?;
    let regular = file.metadata().map(|m| m.is_file()).unwrap_or(false);
    let done = if regular {
        done_keys(&mut file, path, max_line)?
    } else {
        HashSet::new()
    };
    let mut results = Results {
        file,
        path: path.to_owned(),
        written: 0,
        error: None,
        _lock: lock,
    };
    if regular && ends_mid_line(&mut results.file) {
        // A crash cut the last line short: start on a new line, or the first outcome of this
        // run would be glued to the torn one and lost to the next rerun.
        results.write_raw(b"\n");
        if let Some(e) = results.error.take() {
            return Err(PushError(e));
        }
    }
    Ok((results, done))
}

/// Keys that an earlier run already pushed successfully.
fn done_keys(file: &mut File, path: &Path, max_line: usize) -> Result<HashSet<String>, PushError> {
    let mut done = HashSet::new();
    let mut lines = LineReader::new(BufReader::new(&*file), max_line);
    loop {
        match lines.next_line() {
            Ok(None) => break,
            // A line cut short by a crash (or too long to be ours) is not counted as done.
            Ok(Some(Line::TooLong { .. })) => {}
            Ok(Some(Line::Text(l))) => {
                if let Ok(r) = serde_json::from_slice::<PushResult>(&l)
                    && r.outcome == "created"
                {
                    done.insert(r.key);
                }
            }
            Err(e) => return Err(PushError(format!("cannot read {}: {e}", path.display()))),
        }
    }
    Ok(done)
}

/// Whether a file ends in the middle of a line (its last write was cut short).
fn ends_mid_line(f: &mut File) -> bool {
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut last = [0u8; 1];
    len > 0
        && f.seek(SeekFrom::Start(len - 1)).is_ok()
        && f.read_exact(&mut last).is_ok()
        && last[0] != b'\n'
}

impl Results {
    /// Appends one outcome; false when it (or an earlier one) could not be written.
    pub fn write(&mut self, r: &PushResult) -> bool {
        match serde_json::to_vec(r) {
            Ok(mut line) => {
                line.push(b'\n');
                self.write_raw(&line);
                if self.error.is_none() {
                    self.written += 1;
                }
            }
            Err(e) => self.fail(&e.to_string()),
        }
        self.error.is_none()
    }

    /// Writes straight to the file (no user-space buffer: a crash loses at most this line).
    fn write_raw(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.file.write_all(bytes) {
            self.fail(&e.to_string());
        }
    }

    fn fail(&mut self, why: &str) {
        if self.error.is_none() {
            self.error = Some(format!(
                "cannot write the results file {}: {why}; {} outcomes were written before it failed, the later ones are lost and the run stopped; free the space or fix the permissions and run again: the records without a `created` outcome are sent again, which the idempotency key makes safe",
                self.path.display(),
                self.written
            ));
        }
    }

    /// Syncs the file to disk; the first write or sync error, if any.
    pub fn finish(&mut self) -> Result<(), String> {
        if self.error.is_none()
            && let Err(e) = self.file.sync_all()
            && !is_unsyncable(&e)
        {
            self.fail(&e.to_string());
        }
        self.error.clone().map_or(Ok(()), Err)
    }
}

/// Devices such as /dev/null cannot be synced, and need not be.
fn is_unsyncable(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::InvalidInput
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(line: u64, key: &str) -> PushResult {
        PushResult {
            line,
            key: key.into(),
            outcome: "created".into(),
            status: Some(201),
            id: None,
            first_line: None,
            error: None,
        }
    }

    #[test]
    fn done_keys_survive_a_torn_line_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/results.jsonl");
        let (mut r, done) = open_results(&path, 1024).unwrap();
        assert!(done.is_empty());
        assert!(r.write(&created(1, "a")));
        assert!(r.write(&PushResult::local(2, "b", "failed", "500".into())));
        r.finish().unwrap();
        drop(r);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"line\": 3, \"key\": \"c\", \"outc")
            .unwrap();
        let (mut r, done) = open_results(&path, 1024).unwrap();
        assert_eq!(done, HashSet::from(["a".to_owned()]));
        assert!(r.write(&created(3, "c")));
        r.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with(
                "\"outc\n{\"line\":3,\"key\":\"c\",\"outcome\":\"created\",\"status\":201}\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_full_disk_is_an_error_naming_the_file() {
        let path = Path::new("/dev/full");
        if !path.exists() {
            return;
        }
        let (mut r, done) = open_results(path, 1024).unwrap();
        assert!(done.is_empty(), "a device is not read for keys");
        assert!(!r.write(&created(1, "a")));
        assert!(!r.write(&created(2, "b")), "the error stays");
        let e = r.finish().unwrap_err();
        assert!(
            e.contains("/dev/full") && e.contains("0 outcomes were written"),
            "{e}"
        );
    }
}
