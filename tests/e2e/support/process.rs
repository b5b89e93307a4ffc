//! Test support shared by the process-level tests: the simulator serving on a free port of 127.0.0.1, and the
//! exporter binary as a child process that is killed when its guard drops.
#![allow(dead_code)] // each test binary uses a different part of it

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use onprem_agent_exporter::sim::Simulator;
use tokio::sync::watch;

/// The binary under test.
pub const EXE: &str = env!("CARGO_BIN_EXE_onprem-agent-exporter");

/// A simulator serving on a free port of 127.0.0.1 until dropped.
pub struct TestSim {
    pub sim: Simulator,
    pub addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

/// Serves `sim` on a free port of 127.0.0.1 until the returned guard drops.
pub async fn serve_sim(sim: Simulator) -> TestSim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the simulator");
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = watch::channel(false);
    let server = sim.clone();
    tokio::spawn(async move {
        let _ = server
            .serve(listener, async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
    });
    TestSim {
        sim,
        addr,
        _stop: tx,
    }
}

/// An exporter process; killed when dropped.
pub struct TestExporter {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Drop for TestExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestExporter {
    /// Starts `run --config CONFIG` with JSON logs at debug level going to `log`, and waits (at most 20 s) until it
    /// reports the address it listens on.
    pub fn start(config: &Path, log: PathBuf) -> TestExporter {
        let child = Command::new(EXE)
            .args([
                "--log-format",
                "json",
                "--log-level",
                "debug",
                "run",
                "--config",
            ])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the exporter");
        // Owned by the guard from here on, so a failed start still kills the process.
        let mut exporter = TestExporter {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = exporter.logs();
            if let Some(addr) = text.lines().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["message"] == "listening").then(|| v["addr"].as_str()?.parse().ok())?
            }) {
                exporter.addr = addr;
                return exporter;
            }
            if let Ok(Some(status)) = exporter.child.try_wait() {
                panic!("the exporter exited at start ({status}); log:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "the exporter did not report its address within 20 s; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 40 lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = self.logs();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// Parses an OpenMetrics exposition with Python's reference parser (Debian's `python3-prometheus-client`, run with
/// `/usr/bin/python3`) and returns its families as JSON. Fails the test, showing the parser's error and the head of
/// the exposition, if the parser rejects it.
pub fn parse_with_reference_parser(exposition: &str) -> serde_json::Value {
    use std::io::Write as _;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/support/parse_openmetrics.py"
    );
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 must exist; `make test` installs python3-prometheus-client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the reference OpenMetrics parser rejected the exposition: {}\n--- exposition head ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        exposition.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
