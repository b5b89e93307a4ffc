//! The exporter binary as a child process that is killed when its guard drops.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http::get;

/// The sample of the notification queue's length in an exposition.
pub const QUEUE_LENGTH: &str = "onprem_agent_notification_queue_length ";

/// The binary under test.
pub const EXE: &str = env!("CARGO_BIN_EXE_onprem-agent-exporter");

/// `check-config` of the minimal valid config with `web_config` as its `--web.config.file`: how the exporter reads a
/// web config file, without starting a server.
pub fn check_web_config(web_config: &Path) -> std::process::Output {
    Command::new(EXE)
        .arg("check-config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid-minimal.yaml"))
        .arg("--web.config.file")
        .arg(web_config)
        .output()
        .expect("the exporter runs")
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
        TestExporter::start_with(config, log, &[])
    }

    /// [`TestExporter::start`] with further arguments for `run` (`--web.config.file FILE`, limits).
    ///
    /// The config must set `listen_address`, to port 0 or to a port [`crate::support::free_port`] found free (a
    /// test that must know its URL before start, for `external_url`): a test that takes the default port (9877)
    /// fails whenever anything else listens there, such as a demo left running.
    pub fn start_with(config: &Path, log: PathBuf, extra: &[&std::ffi::OsStr]) -> TestExporter {
        let text = std::fs::read_to_string(config).unwrap();
        assert!(
            text.lines().any(|l| {
                l.trim_start().starts_with("listen_address:")
                    && !l
                        .trim_end()
                        .trim_end_matches(['"', '\''])
                        .ends_with(":9877")
            }),
            "{} must set `listen_address: 127.0.0.1:0` (or a port free_port found) so the test takes a free \
             port:\n{text}",
            config.display()
        );
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
            .args(extra)
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

    /// Waits (at most 30 s) until `/readyz` answers 200, that is until the first poll has finished.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if get(&self.url("/readyz")).await.0 == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never ready; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last 40 lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = self.logs();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// What the alerting tests need of a running exporter: crashing it, and reading its progress from its log.
impl TestExporter {
    /// Sends SIGKILL, as a crash or the OOM killer would, and reaps the process.
    pub fn sigkill(mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL failed: {status}");
        let exit = self.child.wait().unwrap();
        assert_eq!(exit.signal(), Some(9), "the exporter ended with {exit}");
    }

    /// Waits until at least `span` has passed, the rule engine has run two more evaluation rounds, and the
    /// notification queue is empty: the shortest period after which a duplicate or late message would have arrived
    /// if one were coming. `seen` describes what was received, for the failure message.
    pub async fn quiet_period(&self, span: Duration, seen: impl Fn() -> String) {
        let until = Instant::now() + span;
        let rounds = self.rounds();
        super::wait::wait_until(
            "the quiet period: the span, two more evaluation rounds and an empty queue",
            async || {
                if Instant::now() < until || self.rounds() < rounds + 2 {
                    return None;
                }
                let (_, text) = get(&self.url("/metrics")).await;
                (super::exposition::sample(&text, QUEUE_LENGTH) == Some(0.0)).then_some(())
            },
            seen,
        )
        .await;
    }

    /// How many evaluation rounds the rule engine has logged so far.
    pub fn rounds(&self) -> usize {
        self.logs()
            .lines()
            .filter(|l| l.contains("\"rules evaluated\""))
            .count()
    }

    /// The ids of the notifications the rule engine handed to the outbox, from its `notification due` log lines.
    pub fn notification_ids(&self) -> Vec<String> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"] == "notification due")
            .filter_map(|v| v["id"].as_str().map(String::from))
            .collect()
    }
}
