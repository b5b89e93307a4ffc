//! Debian's `prometheus` as a child process with a fresh TSDB, scraping one target, and a client for its HTTP API.
//!
//! Prometheus is required: when it is missing the test fails and says how to install it, because a skipped proof
//! proves nothing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::free_port;

/// A child process killed when dropped, so that a failing test never leaves one behind.
pub struct Running {
    pub name: &'static str,
    pub child: Child,
    /// The file its output goes to, shown when a test fails.
    pub log: PathBuf,
}

impl Running {
    /// The last 60 lines of the process's log.
    pub fn log_tail(&self) -> String {
        let log = &self.log;
        let text = std::fs::read_to_string(log)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", log.display()));
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "{} ({}):\n{}",
            self.name,
            log.display(),
            lines[lines.len().saturating_sub(60)..].join("\n")
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's `prometheus` on a free loopback port, with a fresh TSDB and our rules, scraping `target` every 2 s.
pub struct Prometheus {
    pub process: Running,
    /// For example `http://127.0.0.1:40124`.
    base: String,
    client: reqwest::Client,
    /// Holds the configuration, the TSDB and the log.
    _dir: tempfile::TempDir,
}

/// `rule_files` may be a glob, as in Prometheus's own configuration; `job` names the one scrape job.
pub fn start_prometheus(target: &Url, job: &str, rule_files: &Path) -> Prometheus {
    let host = target.host_str().expect("the metrics URL has a host");
    let port = target
        .port_or_known_default()
        .expect("the metrics URL has a port");
    let config = format!(
        "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nrule_files:\n  - {rules}\nscrape_configs:\n  \
         - job_name: {job}\n    scrape_timeout: 2s\n    metrics_path: {path}\n    static_configs:\n      \
         - targets: [{target}]\n",
        rules = serde_json::to_string(&rule_files.to_string_lossy()).expect("a path serialises"),
        path = serde_json::to_string(target.path()).expect("a path serialises"),
        target = serde_json::to_string(&format!("{host}:{port}")).expect("an address serialises"),
    );
    start_prometheus_with(&config)
}

/// Debian's `prometheus` on a free loopback port with a fresh TSDB and `config` as its configuration file.
pub fn start_prometheus_with(config: &str) -> Prometheus {
    let binary = require_program("prometheus");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(&config_file, config).expect("the Prometheus configuration can be written");

    let listen = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join("prometheus.log");
    let log_file = File::create(&log).expect("the Prometheus log can be created");
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdin(Stdio::null())
        .stdout(
            log_file
                .try_clone()
                .expect("the log file handle can be cloned"),
        )
        .stderr(log_file)
        .spawn()
        .expect("prometheus starts");
    Prometheus {
        process: Running {
            name: "prometheus",
            child,
            log,
        },
        base: format!("http://{listen}"),
        // No idle connections: the stack outlives the test (and so the tokio runtime) that started it, and a pooled
        // connection whose task lived on a finished test's runtime fails the next request with "dispatch gone".
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client"),
        _dir: dir,
    }
}

impl Prometheus {
    /// GETs an API path and returns its JSON body, or `null` while Prometheus is not answering yet.
    ///
    /// A transport error is retried a few times: a pooled keep-alive connection that Prometheus closed just as a
    /// request went out fails that request, which says nothing about the query.
    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Value {
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let response = self
                .client
                .get(format!("{}{path}", self.base))
                .query(params)
                .send()
                .await;
            if let Ok(response) = response
                && let Ok(body) = response.json::<Value>().await
            {
                return body;
            }
        }
        Value::Null
    }

    /// Runs an instant query: `Ok` with the result samples (a scalar counts as one), or `Err` with Prometheus's
    /// error.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let body = self.get("/api/v1/query", &[("query", expr)]).await;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        match &body["data"]["result"] {
            Value::Array(samples)
                if body["data"]["resultType"] == "vector"
                    || body["data"]["resultType"] == "matrix" =>
            {
                Ok(samples.clone())
            }
            scalar => Ok(vec![serde_json::json!({ "metric": {}, "value": scalar })]),
        }
    }

    /// Runs an instant query that must return exactly one number.
    pub async fn scalar(&self, expr: &str) -> f64 {
        let result = self
            .query(expr)
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(result.len(), 1, "{expr} must return one sample: {result:?}");
        sample_value(&result[0]).unwrap_or_else(|| panic!("{expr} returned no number: {result:?}"))
    }
}

/// The number in an instant-query sample (`"value": [time, "number"]`), if it is one.
pub fn sample_value(sample: &Value) -> Option<f64> {
    sample["value"][1].as_str()?.parse().ok()
}

/// The path of a required program, or a failure that says how to install it. Never a skip.
pub fn require_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is required by these tests and was not found on PATH. Install the test \
                 dependencies (as root): bash scripts/install-test-deps.sh"
            )
        })
}
