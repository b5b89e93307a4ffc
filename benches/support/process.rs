//! What the process-level benches share: the child processes they start (killed on exit, on an error and by the
//! deadline), a bounded `main`, `/proc` memory figures and waiting for an exporter to listen.
//!
//! Included by each bench with `#[path = "support/process.rs"] mod process;`: a bench is a binary of its own, and
//! this is not a bench target (cargo discovers `benches/*.rs` and `benches/*/main.rs` only).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The child processes, killed by the deadline thread, on an error and on exit.
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

/// Kills and reaps every child started through [`spawn`].
pub fn kill_all_children() {
    for mut child in std::mem::take(&mut *CHILDREN.lock().unwrap_or_else(|p| p.into_inner())) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `name` from the environment as whole seconds, or `default`.
pub fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default),
    )
}

/// Runs `run` on a multi-threaded runtime, bounded by `BENCH_TIMEOUT_SECS` (default `default_timeout_secs`): past
/// it every child is killed and the process exits 2. An error exits 1; either way no child outlives the bench.
pub fn main_bounded<F: Future<Output = anyhow::Result<()>>>(default_timeout_secs: u64, run: F) {
    let deadline = env_secs("BENCH_TIMEOUT_SECS", default_timeout_secs);
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        eprintln!(
            "bench: still running after {deadline:?}; killing the child processes and giving up"
        );
        kill_all_children();
        std::process::exit(2);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    let result = runtime.block_on(run);
    kill_all_children();
    if let Err(e) = result {
        eprintln!("bench: error: {e:#}");
        std::process::exit(1);
    }
}

/// Spawns `command`, remembering it so it is killed on exit; returns its pid and stdout.
pub fn spawn(command: &mut Command) -> anyhow::Result<(u32, Option<ChildStdout>)> {
    let mut child = command.spawn().context("start a child process")?;
    let (pid, stdout) = (child.id(), child.stdout.take());
    CHILDREN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(child);
    Ok((pid, stdout))
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`).
pub fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// The address an exporter started with `--log-format json` logs as `listening` in `log`, waiting at most 60 s.
pub async fn listening_addr(log: &Path) -> anyhow::Result<SocketAddr> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "listening").then(|| v["addr"].as_str()?.parse().ok())?
        }) {
            return Ok(addr);
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the exporter did not listen within 60 s; log:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// "met" or "NOT met", for a goal.
pub fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}
