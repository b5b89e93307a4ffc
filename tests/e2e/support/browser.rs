//! A real headless Chromium: loads a page, runs it and returns the DOM it built (Chromium's own `--dump-dom`), or
//! its layout at a desktop and a phone width and a screenshot (driven by `playwright-core`, tests/e2e/browser/).
//! Missing Chromium, Node or the driver fails the test (install them with scripts/install-test-deps.sh), never skips
//! it.

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

/// The folder of the Playwright driver: its package.json, lock file and `layout.mjs`; `node_modules` is installed
/// there by scripts/install-test-deps.sh (`npm ci`).
const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/browser");

/// Loads `url` in Chromium driven by `playwright-core` at 1400×900 and at 390×844 (a phone, touch and mobile
/// viewport) and returns what `layout.mjs` measured for each, under `desktop` and `phone`: the page's scroll
/// width, the landmarks' offsets, the agent rows whose name or state is off screen, the tables that scroll in
/// their box. With `screenshot`, also saves the desktop view there as a PNG. Fails, never skips, when Node, the
/// driver or Chromium is missing.
pub fn layout(url: &str, screenshot: Option<&Path>) -> serde_json::Value {
    require_program("chromium");
    let node = require_program("node");
    assert!(
        Path::new(DRIVER)
            .join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is not installed in {DRIVER}; run scripts/install-test-deps.sh"
    );
    let mut c = Command::new(node);
    c.current_dir(DRIVER).arg("layout.mjs").arg(url);
    if let Some(path) = screenshot {
        c.arg(path);
    }
    let out = c.output().expect("run node layout.mjs");
    assert!(
        out.status.success(),
        "node layout.mjs {url} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "layout.mjs printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
