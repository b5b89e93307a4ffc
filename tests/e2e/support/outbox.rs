//! The files the exporter keeps next to its state file (the outbox folder), read as text so a test can search them
//! for secrets.

use std::path::{Path, PathBuf};

/// Every file under `dir`, in any folder depth.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `(description, content)` of every file in the outbox folder `dir` now. A file that vanished between listing and
/// reading (a temp file renamed, a delivered message removed) is skipped: its content is in the renamed file or the
/// email.
pub fn outbox_files(dir: &Path, when: &str) -> Vec<(String, String)> {
    walk(dir)
        .into_iter()
        .filter_map(|f| {
            let content = std::fs::read_to_string(&f).ok()?;
            Some((format!("outbox file {} ({when})", f.display()), content))
        })
        .collect()
}
