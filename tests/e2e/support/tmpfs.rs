//! A small tmpfs mounted for one test, to make a state directory full or read-only for real. The tests run as root;
//! when mounting is impossible the test fails loudly, saying why: a skipped disk test would read as a passed one.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs; unmounted (lazily, so a process still holding a file cannot keep it) when dropped.
pub struct Tmpfs {
    pub dir: PathBuf,
}

fn mount(args: &[&str], dir: &Path) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {} {} failed ({}): {}",
            args.join(" "),
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=…`, e.g. `1m`) on a new directory `dir`.
    pub fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        if let Err(e) = mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &dir,
        ) {
            panic!(
                "{e}; this test needs root and a kernel that lets it mount tmpfs (it must not be skipped)"
            );
        }
        Tmpfs { dir }
    }

    /// Fills the file system: writes zeros into `<dir>/filler` until the disk says it is full.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.dir.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", self.dir.display()),
            }
        }
        let _ = f.sync_all();
    }

    /// Removes what [`Tmpfs::fill`] wrote.
    pub fn free(&self) {
        std::fs::remove_file(self.dir.join("filler")).unwrap();
    }

    /// Remounts read-only (`true`) or read-write (`false`). A remount to read-only fails while a file is open for
    /// writing, which the exporter does only for moments, so it is retried for up to five seconds.
    pub fn set_read_only(&self, read_only: bool) {
        let opt = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match mount(&["-o", opt], &self.dir) {
                Ok(()) => return,
                Err(e) if std::time::Instant::now() > deadline => panic!("{e}"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
