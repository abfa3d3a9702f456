//! JSON-lines output files: one replaced only when complete (full refresh), one appended
//! to and cut back to its last checkpoint (incremental).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Buffer of the output writer. Smaller than a typical page, so a page's lines (built in
/// one buffer by the stream) go to the file in one write without an extra copy, while
/// small pages are still gathered into few syscalls.
const BUFFER: usize = 64 * 1024;

/// A stream's output being written to a temporary file next to its final place.
#[derive(Debug)]
pub struct JsonlSink {
    tmp: PathBuf,
    target: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl JsonlSink {
    /// Starts `<dir>/<stream>.jsonl`; nothing replaces the current file until [`commit`](Self::commit).
    pub fn create(dir: &Path, stream: &str) -> io::Result<Self> {
        if !connector_spec::names::is_name(stream) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("stream name {stream:?} cannot be part of a file name"),
            ));
        }
        fs::create_dir_all(dir)?;
        let target = dir.join(format!("{stream}.jsonl"));
        remove_stale_temps(dir, &format!(".{stream}.jsonl."));
        let tmp = dir.join(format!(".{stream}.jsonl.{}.tmp", std::process::id()));
        let file = File::create(&tmp)?;
        Ok(Self {
            tmp,
            target,
            writer: Some(BufWriter::with_capacity(BUFFER, file)),
        })
    }

    /// Appends complete lines.
    pub fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => w.write_all(lines),
            None => Err(io::Error::other("output already committed")),
        }
    }

    /// Flushes, syncs, and atomically replaces the stream's file with the new one.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        let Some(w) = self.writer.take() else {
            return Err(io::Error::other("output already committed"));
        };
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        replace(&self.tmp, &self.target)?;
        Ok(self.target.clone())
    }
}

impl Drop for JsonlSink {
    fn drop(&mut self) {
        // Not committed: the previous complete file stays, the partial one goes.
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Removes the temp files `<prefix><pid>.tmp` that dead runs left behind in `dir`.
///
/// The caller holds the folder's lock, so such a file can only be a dead process's; a
/// file whose pid is alive (another process, say one that ignores the lock) is left alone
/// all the same, and so is any name not of that exact form.
pub fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != me && folder_lock::pid_alive(pid) {
            tracing::debug!(file = %e.path().display(), pid, "temp file of a live process left alone");
            continue;
        }
        let _ = fs::remove_file(e.path());
    }
}

/// Renames `from` over `to` and syncs the folder, so the rename survives a crash.
pub fn replace(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_dir(to)
}

/// Syncs the folder holding `path`.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Writes a whole file atomically: temp file, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    replace(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_name_that_is_a_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("out");
        for bad in ["../victim", "/tmp/victim", "a\nb", ""] {
            let e = JsonlSink::create(&inner, bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(!inner.exists(), "nothing was created");
    }

    #[test]
    fn replaces_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("s.jsonl"), "old\n").unwrap();
        {
            let mut s = JsonlSink::create(dir.path(), "s").unwrap();
            s.write(b"new\n").unwrap();
        }
        assert_eq!(
            fs::read_to_string(dir.path().join("s.jsonl")).unwrap(),
            "old\n"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
        let mut s = JsonlSink::create(dir.path(), "s").unwrap();
        s.write(b"new\n").unwrap();
        s.commit().unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("s.jsonl")).unwrap(),
            "new\n"
        );
    }
}

/// Why an appended output cannot resume at its checkpointed length.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The file is shorter than the state says (or absent).
    #[error(
        "{path} has {len} bytes but the state says {checkpointed} were written; the file was changed outside the runtime"
    )]
    Short {
        /// The output file.
        path: String,
        /// Its length.
        len: u64,
        /// The checkpointed length.
        checkpointed: u64,
    },
    /// Cutting there would split a record.
    #[error(
        "the state says {checkpointed} bytes of {path} were written, but byte {checkpointed} is not the end of a line (the byte before it is not a newline); cutting there would split a record"
    )]
    MidLine {
        /// The output file.
        path: String,
        /// The checkpointed length.
        checkpointed: u64,
    },
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The output file.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// Checks, without changing anything, that the output at `path` can resume at
/// `checkpointed` bytes: an absent file can only resume at 0.
pub fn check_resume(path: &Path, checkpointed: u64) -> Result<(), ResumeError> {
    match File::open(path) {
        Ok(mut f) => line_end(&mut f, path, checkpointed).map(|_| ()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && checkpointed == 0 => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ResumeError::Short {
            path: path.display().to_string(),
            len: 0,
            checkpointed,
        }),
        Err(source) => Err(ResumeError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The file's length, once `checkpointed` is known to be 0 or to follow a newline.
fn line_end(file: &mut File, path: &Path, checkpointed: u64) -> Result<u64, ResumeError> {
    use io::{Read, Seek};
    let io_err = |source| ResumeError::Io {
        path: path.display().to_string(),
        source,
    };
    let len = file.metadata().map_err(io_err)?.len();
    if len < checkpointed {
        return Err(ResumeError::Short {
            path: path.display().to_string(),
            len,
            checkpointed,
        });
    }
    if checkpointed == 0 {
        return Ok(len);
    }
    let mut last = [0u8; 1];
    file.seek(io::SeekFrom::Start(checkpointed - 1))
        .and_then(|_| file.read_exact(&mut last))
        .map_err(io_err)?;
    if last[0] != b'\n' {
        return Err(ResumeError::MidLine {
            path: path.display().to_string(),
            checkpointed,
        });
    }
    Ok(len)
}

/// An incremental stream's output: appended to, synced at every checkpoint.
#[derive(Debug)]
pub struct AppendSink {
    path: PathBuf,
    writer: BufWriter<File>,
    len: u64,
}

impl AppendSink {
    /// Opens `<dir>/<stream>.jsonl` and cuts it back to `checkpointed` bytes: whatever
    /// follows was written after the last checkpoint and will be fetched again. Refuses,
    /// changing nothing, a length that is not a line end of the file.
    pub fn open(dir: &Path, stream: &str, checkpointed: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{stream}.jsonl"));
        let mut file = fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)?;
        let len = line_end(&mut file, &path, checkpointed).map_err(|e| match e {
            ResumeError::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        })?;
        if len > checkpointed {
            file.set_len(checkpointed)?;
            file.sync_all()?;
        }
        io::Seek::seek(&mut file, io::SeekFrom::Start(checkpointed))?;
        Ok(Self {
            path,
            writer: BufWriter::with_capacity(BUFFER, file),
            len: checkpointed,
        })
    }

    /// Appends complete lines.
    pub fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        self.writer.write_all(lines)?;
        self.len += lines.len() as u64;
        Ok(())
    }

    /// Makes everything written so far durable; returns the file's length.
    pub fn sync(&mut self) -> io::Result<u64> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data()?;
        Ok(self.len)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod append_tests {
    use super::*;

    #[test]
    fn cuts_back_to_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("s.jsonl"), "a\nb\npartial").unwrap();
        let mut s = AppendSink::open(dir.path(), "s", 4).unwrap();
        s.write(b"c\n").unwrap();
        assert_eq!(s.sync().unwrap(), 6);
        assert_eq!(
            fs::read_to_string(dir.path().join("s.jsonl")).unwrap(),
            "a\nb\nc\n"
        );
        let e = AppendSink::open(dir.path(), "s", 100).unwrap_err();
        assert!(e.to_string().contains("changed outside"), "{e}");
    }

    #[test]
    fn never_cuts_mid_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        fs::write(&p, "{\"a\":1}\n{\"b\":2}\n").unwrap();
        assert!(check_resume(&p, 0).is_ok());
        assert!(check_resume(&p, 8).is_ok());
        assert!(check_resume(&p, 16).is_ok());
        let e = check_resume(&p, 5).unwrap_err();
        assert!(matches!(e, ResumeError::MidLine { .. }), "{e}");
        assert!(e.to_string().contains("not the end of a line"), "{e}");
        assert!(matches!(
            check_resume(&p, 17).unwrap_err(),
            ResumeError::Short { len: 16, .. }
        ));
        let e = AppendSink::open(dir.path(), "s", 5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n",
            "a refused cut leaves the file alone"
        );
        let absent = dir.path().join("none.jsonl");
        assert!(check_resume(&absent, 0).is_ok());
        assert!(matches!(
            check_resume(&absent, 3).unwrap_err(),
            ResumeError::Short { len: 0, .. }
        ));
    }
}
