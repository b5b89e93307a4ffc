//! Replacing a file so that a crash or a power cut leaves either its old or its new content, never a mix. The rule
//! state file and the outbox both write this way; the steps are easy to get subtly wrong (the directory fsync is the
//! one usually forgotten), so they are written once.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How many symbolic links [`resolve`] follows before giving up, as Linux's own limit for path lookups.
const MAX_LINKS: usize = 40;

/// The file `path` names once every symbolic link at its end is followed: `path` itself when it is not a link (or
/// does not exist), else the link's target, relative targets read from the link's directory. The target need not
/// exist. Fails on a loop of links, after 40 of them.
///
/// `std::fs::canonicalize` is not used: it fails when the target does not exist yet, and it resolves every
/// directory on the way, which would move the temporary file of [`write()`] no differently but makes errors name a
/// path the operator never wrote.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is a loop of symbolic links (more than {MAX_LINKS})",
            path.display()
        ),
    ))
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content, never a mix: write a
/// temporary file in the same directory, fsync it, rename it over `path`, then fsync the directory so the rename
/// itself survives a power cut.
///
/// A `path` that is a symbolic link is written through to its target (see [`resolve`]): the rename replaces the
/// target, and the link stays a link. Renaming over the link itself would turn it into a regular file and leave the
/// target stale.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let path = &resolve(path)?;
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
    fn a_write_through_a_symbolic_link_replaces_its_target_and_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("state.json"), b"old").unwrap();
        let link = dir.path().join("state.json");
        std::os::unix::fs::symlink("data/state.json", &link).unwrap();
        // A link to a link, absolute this time.
        let link2 = dir.path().join("again.json");
        std::os::unix::fs::symlink(&link, &link2).unwrap();
        write(&link2, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            fs::symlink_metadata(&link2)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(data.join("state.json")).unwrap(), b"new");
        // A dangling link is written through too, creating its target.
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink("data/new.json", &dangling).unwrap();
        write(&dangling, b"first").unwrap();
        assert_eq!(fs::read(data.join("new.json")).unwrap(), b"first");
        // A loop fails instead of spinning.
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let err = write(&a, b"x").unwrap_err();
        assert!(err.to_string().contains("loop of symbolic links"), "{err}");
    }

    #[test]
    fn only_hidden_temporary_names_are_temporary() {
        assert!(is_temporary(".0001-ab-1.json.tmp-4242"));
        assert!(is_temporary(".0001-ab-1.json.tmp"));
        assert!(!is_temporary("0001-ab-1.json"));
        assert!(!is_temporary("report.tmp.json"));
    }
}
