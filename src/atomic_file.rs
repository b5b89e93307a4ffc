//! Replacing a file so that a crash or a power cut leaves either its old or its new content, never a mix. The rule
//! state file and the outbox both write this way; the steps are easy to get subtly wrong (the directory fsync is the
//! one usually forgotten), so they are written once.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content, never a mix: write a
/// temporary file in the same directory, fsync it, rename it over `path`, then fsync the directory so the rename
/// itself survives a power cut.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    // `.<name>.tmp-<pid>`: hidden, in the same directory (a rename across file systems is not atomic), and apart
    // per process so that two processes never write into one temporary file.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Flushes `dir`'s entries to disk, so that a file created, renamed or removed in it stays so after a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Returns true if and only if `file_name` is a temporary file [`write()`] leaves behind when the process dies before
/// its rename. Also matches the `.<name>.tmp` files of earlier versions, which had no process id.
pub fn is_temporary(file_name: &str) -> bool {
    file_name.starts_with('.') && file_name.contains(".tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["state.json".to_string()], "saw {names:?}");
    }

    #[test]
    fn a_failed_atomic_write_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("state.json");
        let err = write(&path, b"new").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "saw {err}");
        let real = dir.path().join("state.json");
        fs::write(&real, b"old").unwrap();
        // A directory in the way of the rename makes it fail after the temporary file was written.
        let blocked = dir.path().join("blocked");
        fs::create_dir(blocked.join("").as_path()).unwrap();
        fs::write(blocked.join("x"), b"x").unwrap();
        assert!(write(&blocked, b"new").is_err());
        assert_eq!(fs::read(&real).unwrap(), b"old");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "saw {leftovers:?}");
    }

    #[test]
    fn only_hidden_temporary_names_are_temporary() {
        assert!(is_temporary(".0001-ab-1.json.tmp-4242"));
        assert!(is_temporary(".0001-ab-1.json.tmp"));
        assert!(!is_temporary("0001-ab-1.json"));
        assert!(!is_temporary("report.tmp.json"));
    }
}
