//! Output files: `<out>/<sink>.jsonl`, appended and fsynced before the events are marked
//! done, and checked against the store after a crash so no event is written twice.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// An output file open for appending.
pub struct SinkFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl SinkFile {
    /// Opens (or creates) `<dir>/<stem>.jsonl`.
    pub fn open(dir: &Path, stem: &str) -> io::Result<Self> {
        let path = dir.join(format!("{stem}.jsonl"));
        let existed = path.exists();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if !existed {
            // The new name must survive a crash as well as the data written under it.
            sync_dir(dir)?;
        }
        let len = file.metadata()?.len();
        Ok(Self { path, file, len })
    }

    /// Appends `bytes` and waits until they are on disk; returns the new length.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<u64> {
        self.file.write_all(bytes)?;
        self.file.sync_data()?;
        self.len += bytes.len() as u64;
        Ok(self.len)
    }

    /// Size of the file in bytes, as far as this process wrote it.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// fsyncs a folder, so that files created or renamed in it stay after a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What a sink file held after a restart, compared with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// How many of the oldest pending events of this sink are already in the file
    /// (written, then the process died before marking them done).
    pub present: usize,
    /// Length of the file now (after dropping a torn last line, if any).
    pub len: u64,
    /// Something the operator should know.
    pub warning: Option<String>,
}

/// Compares `path` with its last committed length and the lines of its pending events.
///
/// Bytes past the committed length are ours exactly when they are the first pending
/// lines in order: those events count as written. A torn last line (a crash in the
/// middle of a write) is cut off. Anything else was written by someone else and is left
/// alone, with a warning.
pub fn recover(path: &Path, committed: u64, pending: &[String]) -> io::Result<Recovered> {
    let actual = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    if actual == committed {
        return Ok(Recovered {
            present: 0,
            len: actual,
            warning: None,
        });
    }
    if actual < committed {
        return Ok(Recovered {
            present: 0,
            len: actual,
            warning: Some(format!(
                "{} is shorter than the receiver left it ({actual} < {committed} bytes); it was changed by something else",
                path.display()
            )),
        });
    }
    let expected: usize = pending.iter().map(|l| l.len() + 1).sum();
    let extra_len = actual - committed;
    let foreign = || Recovered {
        present: 0,
        len: actual,
        warning: Some(format!(
            "{} has {extra_len} bytes the receiver did not write; events written before the crash may repeat",
            path.display()
        )),
    };
    if extra_len > expected as u64 {
        return Ok(foreign());
    }
    let mut extra = Vec::with_capacity(extra_len as usize);
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    file.seek(SeekFrom::Start(committed))?;
    Read::by_ref(&mut file)
        .take(extra_len)
        .read_to_end(&mut extra)?;
    let mut pos = 0;
    let mut present = 0;
    for line in pending {
        let rest = &extra[pos..];
        if rest.is_empty() {
            break;
        }
        let whole = rest.len() > line.len()
            && rest.starts_with(line.as_bytes())
            && rest[line.len()] == b'\n';
        if whole {
            pos += line.len() + 1;
            present += 1;
            continue;
        }
        let mut full = line.as_bytes().to_vec();
        full.push(b'\n');
        if full.starts_with(rest) {
            // A torn write of this very line: cut it, it is written again in full.
            let len = committed + pos as u64;
            file.set_len(len)?;
            file.sync_all()?;
            return Ok(Recovered {
                present,
                len,
                warning: None,
            });
        }
        return Ok(foreign());
    }
    if pos == extra.len() {
        Ok(Recovered {
            present,
            len: actual,
            warning: None,
        })
    } else {
        Ok(foreign())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn counts_written_lines_and_cuts_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(&path, "old\n{\"a\":1}\n{\"a\":2}\n{\"a\"").unwrap();
        let pending = lines(&["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"]);
        let r = recover(&path, 4, &pending).unwrap();
        assert_eq!(r.present, 2);
        assert_eq!(r.len, 4 + 16);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "old\n{\"a\":1}\n{\"a\":2}\n"
        );
    }

    #[test]
    fn all_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(&path, "{\"a\":1}\n").unwrap();
        let r = recover(&path, 0, &lines(&["{\"a\":1}", "{\"a\":2}"])).unwrap();
        assert_eq!((r.present, r.len, r.warning), (1, 8, None));
    }

    #[test]
    fn foreign_bytes_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        std::fs::write(&path, "{\"b\":9}\n").unwrap();
        let r = recover(&path, 0, &lines(&["{\"a\":1}"])).unwrap();
        assert_eq!((r.present, r.len), (0, 8));
        assert!(r.warning.is_some());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"b\":9}\n");
    }

    #[test]
    fn missing_or_shorter_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let r = recover(&path, 0, &lines(&["x"])).unwrap();
        assert_eq!((r.present, r.len, r.warning), (0, 0, None));
        let r = recover(&path, 10, &lines(&["x"])).unwrap();
        assert_eq!(r.len, 0);
        assert!(r.warning.is_some());
    }
}
