//! The lock on the alerting state: one process at a time per `alerting.state_file`.
//!
//! Two exporters writing one state file and one outbox would each send what the other already sent and overwrite
//! each other's alert state. `run` therefore takes an exclusive advisory lock (`flock`, through `fs4`) on
//! `<state_file>.lock` before it starts, and holds it until it exits. The kernel drops the lock when the process
//! ends, however it ends, so a crash never leaves a stale lock behind; the file itself stays (removing it would let
//! a third process lock a new file while the second still holds the old one). The holder writes its pid into the
//! file, so that a second process can say who holds it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use fs4::{FileExt, TryLockError};

/// Why the state could not be locked. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "state file {state} is in use by another process ({holder}); only one exporter may use a state file \
         (lock file {lock})"
    )]
    Held {
        state: PathBuf,
        lock: PathBuf,
        /// `pid 1234`, or `pid unknown` when the holder has not written it (yet).
        holder: String,
    },
    /// The lock file could not be created, opened or locked.
    #[error("cannot lock the state file {state} through {lock}: {source}")]
    Io {
        state: PathBuf,
        lock: PathBuf,
        source: io::Error,
    },
}

/// The lock file of a state file: `<state_file>.lock`, next to it.
pub fn lock_path(state_file: &Path) -> PathBuf {
    let mut name = state_file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "state".into());
    name.push(".lock");
    state_file.with_file_name(name)
}

/// The held lock; released when dropped or when the process ends.
#[derive(Debug)]
pub struct StateLock {
    /// Open for as long as the lock is held: closing it releases the lock.
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// Locks `state_file` for this process, creating its folder and the lock file when missing, and writes this
    /// process's pid into the lock file. Fails at once, without waiting, when another process holds it.
    pub fn acquire(state_file: &Path) -> Result<StateLock, LockError> {
        let lock = lock_path(state_file);
        let io_error = |source| LockError::Io {
            state: state_file.to_path_buf(),
            lock: lock.clone(),
            source,
        };
        if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_error)?;
        }
        // Created if missing, without touching what a holder wrote into it.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(io_error)?;
        // The lock is held through a read-only descriptor (flock needs no write access), so that the lock alone
        // keeps no file open for writing on the state's file system, which could then not be remounted read-only.
        let mut file = File::open(&lock).map_err(io_error)?;
        // Called through the trait: `File::try_lock` of newer standard libraries has the same name.
        match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "pid unknown".to_string(),
                };
                return Err(LockError::Held {
                    state: state_file.to_path_buf(),
                    lock,
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_error(e)),
        }
        // Only the holder writes the file, through a descriptor closed right away.
        fs::write(&lock, format!("{}\n", std::process::id())).map_err(io_error)?;
        Ok(StateLock {
            _file: file,
            path: lock,
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_next_to_the_state_file() {
        assert_eq!(
            lock_path(Path::new("/var/lib/x/state.json")),
            PathBuf::from("/var/lib/x/state.json.lock")
        );
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_file_and_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("data/state.json");
        let first = StateLock::acquire(&state).unwrap();
        assert_eq!(
            fs::read_to_string(first.path()).unwrap().trim(),
            std::process::id().to_string()
        );
        // flock locks belong to the open file, so a second open in this process conflicts as another process would.
        let err = StateLock::acquire(&state).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{text}");
        assert!(text.contains(&state.display().to_string()), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        StateLock::acquire(&state).expect("free again once the holder is gone");
    }
}
