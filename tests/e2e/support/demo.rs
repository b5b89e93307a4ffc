//! The `demo` command as a child process: its banner parsed (status URL, the simulator control command), stopped
//! with SIGTERM or killed when the guard drops.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::process::EXE;

/// A running demo; killed when dropped.
pub struct TestDemo {
    pub child: Child,
    /// The whole banner, for failure messages.
    pub banner: String,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    /// The control endpoint of the first simulated account and the key it takes, from the banner's curl line.
    pub control_url: String,
    pub control_token: String,
    /// The account that control endpoint breaks.
    pub control_account: String,
}

impl Drop for TestDemo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestDemo {
    /// Starts `demo --listen 127.0.0.1:0` with `extra` arguments and `TMPDIR=tmp` (so its temporary folder is the
    /// test's), logs to `log`, and reads the banner up to `Press Ctrl-C`.
    pub fn start(extra: &[&str], tmp: &Path, log: &Path) -> TestDemo {
        let mut child = Command::new(EXE)
            .args(["demo", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("TMPDIR", tmp)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start the demo");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = String::new();
        while let Some(Ok(line)) = lines.next() {
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        let field = |prefix: &str| {
            banner
                .lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| {
                    panic!(
                        "no `{prefix}` line in the demo's banner:\n{banner}\nlog:\n{}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    )
                })
        };
        let base = field("status:").trim_end_matches('/').to_string();
        let curl = field("curl -X PUT");
        let control_token = curl
            .split("Bearer ")
            .nth(1)
            .and_then(|t| t.split('\'').next())
            .expect("a bearer key in the curl line")
            .to_string();
        let control_url = curl
            .split_whitespace()
            .last()
            .expect("a URL at the end of the curl line")
            .to_string();
        let control_account = banner
            .lines()
            .find_map(|l| l.strip_prefix("To see an outage, make account "))
            .and_then(|l| l.split_whitespace().next())
            .expect("the account the control line breaks")
            .to_string();
        TestDemo {
            child,
            banner,
            base,
            control_url,
            control_token,
            control_account,
        }
    }

    /// Sends SIGTERM and waits for the demo to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        self.child.wait().expect("wait for the demo")
    }
}
