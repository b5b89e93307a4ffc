//! What the process-level benches share: the child processes they start (killed on exit, on an error and by the
//! deadline), the simulator, a bounded `main`, `/proc` memory figures and waiting for an exporter to listen.
//!
//! Included by each bench with `#[path = "support/process.rs"] mod process;`: a bench is a binary of its own, and
//! this is not a bench target (cargo discovers `benches/*.rs` and `benches/*/main.rs` only).

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
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

/// Starts `simulate` with `agents` Celigo agents, 1,000 per page, on a free loopback port (remembered like [`spawn`]'s
/// children) and returns the address its first line names. Its stdout is read to the end on a thread of its own.
pub async fn start_simulator(agents: usize, token: &str) -> anyhow::Result<SocketAddr> {
    let (_, stdout) = spawn(
        Command::new(env!("CARGO_BIN_EXE_onprem-agent-exporter"))
            .args(["--log-level", "warn", "simulate", "--listen", "127.0.0.1:0"])
            .args(["--agents", &agents.to_string(), "--page-size", "1000"])
            .env("ONPREM_AGENT_SIM_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let stdout = stdout.context("the simulator's stdout")?;
    let (first, line) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = first.send(reader.read_line(&mut line).map(|_| line));
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = line.await??;
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("no simulator address in {line:?}"))
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
