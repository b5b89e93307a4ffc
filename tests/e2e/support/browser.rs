//! A real headless Chromium: loads a page, runs it and returns the DOM it built, or a screenshot. Missing Chromium
//! fails the test (install it with scripts/install-test-deps.sh), never skips it.

use std::path::Path;
use std::process::Command;

use super::prometheus::require_program;

/// Arguments every run takes: headless, no sandbox (tests may run as root in a container, where Chromium's sandbox
/// cannot start), a profile of its own so parallel runs do not share state, and a fixed window width so the page is
/// laid out as on a desktop.
fn chromium(profile: &Path) -> Command {
    let mut c = Command::new(require_program("chromium"));
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1400,1800",
        // Lets the page finish loading and laying out; the page's own refresh (30 s) is far beyond it.
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The DOM of `url` after load, as Chromium serializes it.
pub fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(profile.path())
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium --dump-dom {url} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Saves a PNG screenshot of `url` to `path`.
pub fn screenshot(url: &str, path: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(profile.path())
        .arg(format!("--screenshot={}", path.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success() && path.is_file(),
        "chromium --screenshot of {url} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
