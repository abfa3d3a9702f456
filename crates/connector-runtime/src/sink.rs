//! JSON-lines output files that replace the previous file only when complete.

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

/// An incremental stream's output: appended to, synced at every checkpoint.
#[derive(Debug)]
pub struct AppendSink {
    path: PathBuf,
    writer: BufWriter<File>,
    len: u64,
}

impl AppendSink {
    /// Opens `<dir>/<stream>.jsonl` and cuts it back to `checkpointed` bytes: whatever
    /// follows was written after the last checkpoint and will be fetched again.
    pub fn open(dir: &Path, stream: &str, checkpointed: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{stream}.jsonl"));
        let file = fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)?;
        let len = file.metadata()?.len();
        if len < checkpointed {
            return Err(io::Error::other(format!(
                "{} has {len} bytes but the state says {checkpointed} were written; the file was changed outside the runtime: restore it, or run `runtime state reset` for this stream",
                path.display()
            )));
        }
        if len > checkpointed {
            file.set_len(checkpointed)?;
            file.sync_all()?;
        }
        let mut file = file;
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
}
