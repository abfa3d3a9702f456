//! One writer per output folder or file.
//!
//! Owns: an exclusive advisory lock (`flock` through [`std::fs::File::try_lock`]) on a
//! lock file, with the holder's pid written into it, so a second process learns at once
//! who is writing; and [`pid_alive`], which clean-up code asks before it removes another
//! process's temporary file. The kernel releases the lock when the holder's last file
//! descriptor closes, so a `kill -9` leaves nothing stale: the lock file may remain, but
//! it locks nothing.
//!
//! Must not: wait for a lock (a held lock is an error at once, never a hang); write or
//! delete anything but its own lock file; remove a lock file (removing one that another
//! process has just opened would let two processes hold "the" lock).
//!
//! Limits: the lock is advisory (only processes that take it are kept out) and local
//! (on network file systems `flock` may not reach other machines).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file of a folder: `<folder>/.runtime.lock`.
pub const FOLDER_LOCK_FILE: &str = ".runtime.lock";

/// A holder writes its pid right after locking; a reader that finds the file still empty
/// looks again this many times, this far apart, before reporting "pid unknown".
const PID_READS: u32 = 10;
const PID_READ_PAUSE: Duration = Duration::from_millis(5);

/// The most a pid line can be; a larger lock file is not one of ours.
const PID_MAX_BYTES: u64 = 32;

/// An exclusive lock, held until dropped (or until the process ends, however it ends).
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("another runtime process ({}) is writing to {}; wait for it to finish{}", holder(*.pid), .target.display(), advice(*.flag))]
    Held {
        /// The folder or file the lock guards.
        target: PathBuf,
        /// The holder's pid, as it wrote it into the lock file.
        pid: Option<u32>,
        /// The command-line option that picks another target, e.g. `--out`.
        flag: Option<&'static str>,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {}: {source} (lock file {})", .target.display(), .lock_file.display())]
    Io {
        /// The folder or file the lock guards.
        target: PathBuf,
        /// The lock file.
        lock_file: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("pid {p}"),
        None => "pid unknown".to_owned(),
    }
}

fn advice(flag: Option<&str>) -> String {
    flag.map(|f| format!(" or use another {f}"))
        .unwrap_or_default()
}

impl Lock {
    /// Locks the folder `dir` (which must exist) through `<dir>/.runtime.lock`; `flag` is
    /// the option that picks another folder, named in the error.
    pub fn folder(dir: &Path, flag: Option<&'static str>) -> Result<Self, LockError> {
        Self::take(dir, dir.join(FOLDER_LOCK_FILE), flag)
    }

    /// Locks the file `path` through a hidden sidecar `.<file name>.lock` next to it (the
    /// folder must exist); `flag` is the option that picks another file.
    pub fn file(path: &Path, flag: Option<&'static str>) -> Result<Self, LockError> {
        Self::take(path, sidecar(path), flag)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn take(
        target: &Path,
        lock_file: PathBuf,
        flag: Option<&'static str>,
    ) -> Result<Self, LockError> {
        let io_err = |source| LockError::Io {
            target: target.to_path_buf(),
            lock_file: lock_file.clone(),
            source,
        };
        // No truncate on open: the file may be another process's, still holding its pid.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_file)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    target: target.to_path_buf(),
                    pid: read_pid(&lock_file),
                    flag,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        write_pid(&file).map_err(io_err)?;
        Ok(Self {
            file,
            path: lock_file,
        })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Closing the file would release the lock too; unlocking first says so explicitly.
        let _ = self.file.unlock();
    }
}

/// `<dir>/.<name>.lock` for `<dir>/<name>`.
fn sidecar(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.lock"))
}

fn write_pid(mut file: &File) -> io::Result<()> {
    file.set_len(0)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())
}

/// The pid in a held lock file; the holder writes it just after locking, so an empty file
/// is read again a few times.
fn read_pid(lock_file: &Path) -> Option<u32> {
    for attempt in 0..PID_READS {
        if attempt > 0 {
            std::thread::sleep(PID_READ_PAUSE);
        }
        let Ok(file) = File::open(lock_file) else {
            return None;
        };
        let mut text = String::new();
        if file.take(PID_MAX_BYTES).read_to_string(&mut text).is_err() {
            return None;
        }
        if !text.trim().is_empty() {
            return text.trim().parse().ok();
        }
    }
    None
}

/// Whether a process with this pid exists (a zombie counts, and so does one we may not
/// signal); `false` for pids no process can have.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled; it
    // touches no memory.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_a_folder_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::folder(dir.path(), Some("--out")).unwrap();
        let e = Lock::folder(dir.path(), Some("--out")).unwrap_err();
        let LockError::Held { pid, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(*pid, Some(std::process::id()));
        let text = e.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(text.ends_with("or use another --out"), "{text}");
        assert_eq!(first.path(), dir.path().join(FOLDER_LOCK_FILE));
    }

    #[test]
    fn released_on_drop_and_the_stale_file_locks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        drop(Lock::folder(dir.path(), None).unwrap());
        // The file stays with the old pid in it, as after a kill -9.
        std::fs::write(dir.path().join(FOLDER_LOCK_FILE), "999999\n").unwrap();
        let again = Lock::folder(dir.path(), None).unwrap();
        let text = std::fs::read_to_string(again.path()).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
    }

    #[test]
    fn a_file_is_locked_through_a_hidden_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("push-x.results.jsonl");
        let lock = Lock::file(&results, Some("--results")).unwrap();
        assert_eq!(lock.path(), dir.path().join(".push-x.results.jsonl.lock"));
        assert!(!results.exists(), "the guarded file is not created");
        let e = Lock::file(&results, Some("--results")).unwrap_err();
        assert!(e.to_string().contains("push-x.results.jsonl"), "{e}");
        // Another file in the same folder is another lock.
        Lock::file(&dir.path().join("state.json"), None).unwrap();
    }

    #[test]
    fn a_missing_folder_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = Lock::folder(&missing, None).unwrap_err();
        assert!(matches!(e, LockError::Io { .. }), "{e}");
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn an_unreadable_pid_is_reported_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Lock::folder(dir.path(), None).unwrap();
        std::fs::write(dir.path().join(FOLDER_LOCK_FILE), "not a pid").unwrap();
        let e = Lock::folder(dir.path(), None).unwrap_err();
        assert!(e.to_string().contains("pid unknown"), "{e}");
        assert!(!e.to_string().contains("use another"), "{e}");
    }

    #[test]
    fn pid_liveness() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid), "a reaped child is gone");
    }
}
