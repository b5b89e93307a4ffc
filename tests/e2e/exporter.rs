//! End-to-end tests of the exporter binary against the in-process simulator, on real sockets on 127.0.0.1.
//!
//! Each test starts its own simulator (port 0) and its own `onprem-agent-exporter run` process (port 0, JSON logs
//! at debug level captured to a file), so tests are independent and can run in parallel.

use std::io::{BufRead, BufReader, Read as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use onprem_agent_exporter::sim::SimOptions;

use crate::support::exposition::{parse_text_with_python, parse_with_reference_parser, sample};
use crate::support::free_port;
use crate::support::hostile_fleet;
use crate::support::http::get;
use crate::support::process::{EXE, TestExporter};
use crate::support::simulator::{TestSim, spawn_sim};

const API_TOKEN: &str = "e2e-api-key-0c9f3b7d5e2a41c8";

/// A running exporter and the folder holding its config, token and log.
struct Running {
    exp: TestExporter,
    dir: tempfile::TempDir,
}

impl std::ops::Deref for Running {
    type Target = TestExporter;
    fn deref(&self) -> &TestExporter {
        &self.exp
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut TestExporter {
        &mut self.exp
    }
}

/// Writes a config for one Celigo source pointing at `sim` (extra keys appended to the source) and starts `run`.
fn spawn_exporter(sim: &TestSim, source_extra: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{API_TOKEN}\n")).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen_address: 127.0.0.1:0\nsources:\n  - name: e2e\n    provider: celigo\n    base_url: http://{}\n    token_file: token\n{source_extra}",
            sim.addr
        ),
    )
    .unwrap();
    let exp = TestExporter::start(&config, dir.path().join("exporter.log"));
    Running { exp, dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_age_grows_between_two_scrapes_with_no_poll_in_between() {
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let exp = spawn_exporter(&sim, "    poll_interval: 1h\n");
    exp.wait_ready().await;
    let requests = sim.sim.stats().requests;
    let (_, first) = get(&exp.url("/metrics")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, second) = get(&exp.url("/metrics")).await;
    assert_eq!(
        sim.sim.stats().requests,
        requests,
        "the exporter polled between the scrapes"
    );
    let line = first
        .lines()
        .find(|l| l.starts_with("onprem_agent_heartbeat_age_seconds{"))
        .expect("a heartbeat age series");
    let prefix = line.rsplit_once(' ').unwrap().0;
    let (a, b) = (
        sample(&first, prefix).unwrap(),
        sample(&second, prefix).unwrap(),
    );
    assert!(
        b - a >= 1.4 && b - a < 5.0,
        "age went from {a} to {b} over 1.5 s for {prefix}"
    );
    let token_prefix = first
        .lines()
        .find(|l| l.starts_with("onprem_agent_token_age_seconds{"))
        .and_then(|l| l.rsplit_once(' '))
        .unwrap()
        .0;
    let (ta, tb) = (
        sample(&first, token_prefix).unwrap(),
        sample(&second, token_prefix).unwrap(),
    );
    assert!(tb > ta, "token age did not grow: {ta} then {tb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_keeps_the_last_snapshot_and_sets_source_up_to_zero() {
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let exp = spawn_exporter(
        &sim,
        "    poll_interval: 1s\n    request_timeout: 1s\n    max_attempts: 1\n",
    );
    exp.wait_ready().await;
    let (_, before) = get(&exp.url("/metrics")).await;
    let agents_before = before
        .lines()
        .filter(|l| l.starts_with("onprem_agent_info{"))
        .count();
    assert_eq!(
        agents_before, 25,
        "expected the whole fleet before the outage"
    );

    sim.sim.control().set_status_override(Some(500));
    let deadline = Instant::now() + Duration::from_secs(20);
    let during = loop {
        let (_, text) = get(&exp.url("/metrics")).await;
        if sample(&text, "onprem_agent_source_up{") == Some(0.0) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "source_up never turned 0; log:\n{}",
            exp.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let agents_during = during
        .lines()
        .filter(|l| l.starts_with("onprem_agent_info{"))
        .count();
    assert_eq!(
        agents_during, 25,
        "the last good snapshot was not kept:\n{during}"
    );
    let errors = sample(
        &during,
        "onprem_agent_source_errors_total{account=\"e2e\",provider=\"celigo\",reason=\"http_5xx\"}",
    );
    assert!(
        errors.unwrap_or(0.0) >= 1.0,
        "http_5xx not counted: {errors:?}"
    );
    assert_eq!(sample(&during, "onprem_agent_source_agents{"), Some(25.0));

    let (_, api) = get(&exp.url("/api/v1/agents")).await;
    let doc: serde_json::Value = serde_json::from_str(&api).unwrap();
    let src = &doc["sources"][0];
    assert_eq!(src["up"], false, "{src}");
    assert_eq!(src["stale"], true, "{src}");
    assert_eq!(src["last_error"]["reason"], "http_5xx", "{src}");
    assert_eq!(src["agents"].as_array().map(Vec::len), Some(25));

    sim.sim.control().set_status_override(None);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = get(&exp.url("/metrics")).await;
        if sample(&text, "onprem_agent_source_up{") == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the source never recovered; log:\n{}",
            exp.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_counted_as_unauthorized() {
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    // The simulator answers every request as integrator.io does for a revoked key: 401 with a bare message.
    sim.sim.control().set_status_override(Some(401));
    let exp = spawn_exporter(&sim, "    poll_interval: 1h\n");
    exp.wait_ready().await;
    let (_, text) = get(&exp.url("/metrics")).await;
    assert_eq!(
        sample(&text, "onprem_agent_source_up{"),
        Some(0.0),
        "{text}"
    );
    let unauthorized = sample(
        &text,
        "onprem_agent_source_errors_total{account=\"e2e\",provider=\"celigo\",reason=\"unauthorized\"}",
    );
    assert_eq!(unauthorized, Some(1.0), "exposition:\n{text}");
    assert!(
        exp.logs().contains("unauthorized"),
        "the log does not say why:\n{}",
        exp.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_until_the_first_poll_has_finished() {
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    sim.sim.control().set_latency(Duration::from_secs(2));
    let exp = spawn_exporter(&sim, "    poll_interval: 1h\n");
    let (status, body) = get(&exp.url("/readyz")).await;
    assert_eq!(status, 503, "ready before the first poll: {body}");
    assert!(
        body.contains("e2e"),
        "503 body should name the pending source: {body}"
    );
    // /metrics answers at once even while the first poll is still waiting on the slow upstream.
    let started = Instant::now();
    let (status, _) = get(&exp.url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a scrape waited on the upstream: {:?}",
        started.elapsed()
    );
    exp.wait_ready().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_metrics_api_landing_page_logs_or_once_output() {
    // The simulator ignores `include` and sends full records, each with a fake `accessToken`.
    let sim = spawn_sim(
        API_TOKEN,
        SimOptions {
            honour_projection: false,
            ..SimOptions::default()
        },
    )
    .await;
    let tokens = sim.sim.access_tokens();
    assert_eq!(tokens.len(), 25);
    let exp = spawn_exporter(&sim, "    poll_interval: 1s\n    request_timeout: 1s\n");
    exp.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // a few polls' worth of debug logs

    let mut outputs = vec![
        ("/metrics".to_string(), get(&exp.url("/metrics")).await.1),
        (
            "/api/v1/agents".to_string(),
            get(&exp.url("/api/v1/agents")).await.1,
        ),
        ("/".to_string(), get(&exp.url("/")).await.1),
    ];
    let once = Command::new(EXE)
        .args(["--log-level", "debug", "once", "--config"])
        .arg(exp.dir.path().join("config.yaml"))
        .output()
        .unwrap();
    assert!(
        once.status.success(),
        "once failed: {}",
        String::from_utf8_lossy(&once.stderr)
    );
    outputs.push((
        "once stdout".into(),
        String::from_utf8_lossy(&once.stdout).into_owned(),
    ));
    outputs.push((
        "once stderr".into(),
        String::from_utf8_lossy(&once.stderr).into_owned(),
    ));
    outputs.push(("exporter log".into(), exp.logs()));
    // The fleet really was served with tokens: otherwise this test would prove nothing.
    let raw = sim.raw_agents(API_TOKEN).await;
    assert!(
        tokens.iter().any(|t| raw.contains(t.as_str())),
        "the simulator did not send accessTokens"
    );

    for (what, text) in &outputs {
        assert!(!text.is_empty(), "{what} is empty");
        assert!(!text.contains(API_TOKEN), "the API key leaked into {what}");
        for t in &tokens {
            assert!(
                !text.contains(t.as_str()),
                "an agent accessToken leaked into {what}"
            );
        }
        assert!(
            !text.contains("accessToken\""),
            "an accessToken field leaked into {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_gzipped_on_request_and_parse_with_the_reference_openmetrics_parser() {
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let exp = spawn_exporter(&sim, "    poll_interval: 1h\n");
    exp.wait_ready().await;
    let client = reqwest::Client::new();
    let resp = client
        .get(exp.url("/metrics"))
        .header(
            "Accept",
            "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        resp.headers()
    );
    let gz = resp.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert!(text.ends_with("# EOF\n"));

    let families = parse_with_reference_parser(&text);
    let info = &families["onprem_agent"];
    assert_eq!(info["type"], "info", "{info}");
    let samples = info["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 25);
    // Every name, with its quotes, backslashes, newlines and markup, survives escaping and parsing intact.
    let api: serde_json::Value =
        serde_json::from_str(&get(&exp.url("/api/v1/agents")).await.1).unwrap();
    let mut want: Vec<String> = api["sources"][0]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    let mut got: Vec<String> = samples
        .iter()
        .map(|s| s["labels"]["agent_name"].as_str().unwrap().to_string())
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(
        want.iter().any(|n| n.contains('\n')) && want.iter().any(|n| n.contains('"')),
        "the fleet lacks hard names"
    );
    for family in [
        "onprem_agent_offline",
        "onprem_agent_last_heartbeat_timestamp_seconds",
        "onprem_agent_heartbeat_age_seconds",
        "onprem_agent_token_last_rotated_timestamp_seconds",
        "onprem_agent_token_age_seconds",
        "onprem_agent_created_timestamp_seconds",
        "onprem_agent_source_up",
        "onprem_agent_source_last_success_timestamp_seconds",
        "onprem_agent_source_poll_duration_seconds",
        "onprem_agent_source_agents",
        "onprem_agent_source_errors",
        "onprem_agent_exporter_build",
    ] {
        assert!(
            families.get(family).is_some(),
            "family {family} missing; got {:?}",
            families.as_object().unwrap().keys()
        );
    }
    assert_eq!(families["onprem_agent_source_errors"]["type"], "counter");
    assert_eq!(
        families["onprem_agent_heartbeat_age_seconds"]["unit"],
        "seconds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_check_metrics_accepts_the_text_exposition() {
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let exp = spawn_exporter(&sim, "    poll_interval: 1h\n");
    exp.wait_ready().await;
    let (_, text) = get(&exp.url("/metrics")).await;
    promtool_check_metrics(&text);
}

/// Asserts that `promtool check metrics` (Prometheus's own parser and linter) accepts a text-format exposition.
fn promtool_check_metrics(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed; `make test` installs Debian's prometheus package");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hostile_names_versions_and_labels_of_every_provider_parse_in_both_formats_and_read_back_intact()
{
    use onprem_agent_exporter::metrics::{Exposition, Format};
    let exposition = Exposition::new(hostile_fleet::registry());

    let om = exposition.render(Format::OpenMetrics);
    let families = parse_with_reference_parser(&om);
    let label =
        |s: &serde_json::Value, name: &str| s["labels"][name].as_str().unwrap_or("").to_string();
    let got: std::collections::BTreeSet<(String, String, String, String)> =
        families["onprem_agent"]["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    label(s, "account"),
                    label(s, "provider"),
                    label(s, "agent_name"),
                    label(s, "version"),
                )
            })
            .collect();
    assert_eq!(got, hostile_fleet::expected_agents());
    for (family, provider, key) in [
        ("onprem_agent", "planasonix", "platform"),
        ("onprem_agent", "calyptia", "edition"),
        ("onprem_agent_last_error", "planasonix", "error"),
    ] {
        let values: Vec<String> = families[family]["samples"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| label(s, "provider") == provider)
            .map(|s| label(s, key))
            .collect();
        assert!(
            !values.is_empty()
                && values
                    .iter()
                    .all(|v| v.len() > 10_000 && v.ends_with("\"\\\n")),
            "{family} {key} of {provider} did not read back whole: {:?}",
            values.iter().map(|v| v.len()).collect::<Vec<_>>()
        );
    }

    promtool_check_metrics(&exposition.render(Format::Text));
}

#[test]
fn control_characters_in_label_values_are_replaced_so_every_parser_reads_both_formats() {
    use onprem_agent_exporter::metrics::{Exposition, Format};
    let exposition = Exposition::new(hostile_fleet::registry());
    let om = exposition.render(Format::OpenMetrics);
    let text = exposition.render(Format::Text);
    for (format, body) in [("OpenMetrics", &om), ("text", &text)] {
        let raw: Vec<char> = body
            .chars()
            .filter(|c| *c != '\n' && c.is_control())
            .collect();
        assert!(
            raw.is_empty(),
            "raw control characters in the {format} exposition: {raw:?}"
        );
    }
    let wanted: std::collections::BTreeSet<String> = hostile_fleet::CONTROL_NAMES
        .iter()
        .map(|n| hostile_fleet::as_exposed(n))
        .collect();
    assert!(wanted.iter().all(|n| n.contains('\u{FFFD}')), "{wanted:?}");
    let names = |families: &serde_json::Value| -> std::collections::BTreeSet<String> {
        ["onprem_agent", "onprem_agent_info"]
            .iter()
            .filter_map(|f| families[f]["samples"].as_array())
            .flatten()
            .filter_map(|s| s["labels"]["agent_name"].as_str().map(str::to_string))
            .filter(|n| wanted.contains(n))
            .collect()
    };
    assert_eq!(
        names(&parse_with_reference_parser(&om)),
        wanted,
        "OpenMetrics"
    );
    assert_eq!(names(&parse_text_with_python(&text)), wanted, "text");
    promtool_check_metrics(&text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_exporter_cleanly() {
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let mut exp = spawn_exporter(&sim, "    poll_interval: 1h\n");
    exp.wait_ready().await;
    let status = Command::new("kill")
        .args(["-TERM", &exp.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(code) = exp.child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code:?}; log:\n{}", exp.logs());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exp.logs().contains("SIGTERM received"), "{}", exp.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exits_non_zero_and_names_the_source_when_a_poll_fails() {
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    sim.sim.control().set_status_override(Some(401));
    let exp = spawn_exporter(&sim, "    poll_interval: 1h\n");
    let out = Command::new(EXE)
        .args(["once", "--format", "text", "--config"])
        .arg(exp.dir.path().join("config.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    // The cause once, in the poller's warning; then one line naming the failed source, not a copy of the cause.
    assert_eq!(
        stderr.matches("unauthorized (401)").count(),
        1,
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("1 of the sources failed (e2e)"),
        "stderr: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("onprem_agent_source_up{account=\"e2e\",provider=\"celigo\"} 0"),
        "{stdout}"
    );
    // As under `run` and `demo`: one process that owns every source is shard 0 of 1.
    assert!(
        stdout.contains("onprem_agent_exporter_shard_info{index=\"0\",total=\"1\"} 1"),
        "{stdout}"
    );
}

#[test]
fn check_config_names_the_file_line_and_key_of_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "sources:\n  - name: a\n    provider: celigo\n    token_env: X\n    bogus: 1\n",
    )
    .unwrap();
    let out = Command::new(EXE)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:5: sources[0].bogus: unknown field `bogus`",
            path.display()
        )),
        "stderr: {stderr}"
    );
}

#[test]
fn demo_prints_the_urls_to_open() {
    let mut child = Command::new(EXE)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        seen.push(line.clone());
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    for what in ["status:", "metrics:", "agents:", "upstream:", "curl -X PUT"] {
        assert!(text.contains(what), "demo output lacks {what}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_prints_every_agent_as_json_and_csv_most_urgent_first() {
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let exp = spawn_exporter(&sim, "    poll_interval: 1h\n");
    let config = exp.dir.path().join("config.yaml");
    let json = Command::new(EXE)
        .args(["report", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        json.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&json.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&json.stdout)));
    let text = doc.to_string();
    assert!(
        text.contains("overdue"),
        "the demo fleet has overdue tokens:\n{text}"
    );
    let csv = Command::new(EXE)
        .args(["report", "--format", "csv", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let csv = String::from_utf8_lossy(&csv.stdout);
    // A header and one row per agent (names with newlines are quoted, so count agent ids instead of lines).
    let ids = sim
        .sim
        .control()
        .fleet()
        .agents()
        .iter()
        .map(|a| a.id_hex())
        .collect::<Vec<_>>();
    assert_eq!(ids.len(), 25);
    for id in &ids {
        assert!(
            csv.contains(id.as_str()),
            "agent {id} missing from the CSV:\n{csv}"
        );
    }
    let first_status = csv.lines().nth(1).unwrap_or_default();
    assert!(
        first_status.contains("overdue"),
        "the most urgent agent should come first:\n{csv}"
    );
}

#[test]
fn test_email_names_the_step_that_failed() {
    // A port nothing listens on: the connect step must fail, and the command must say so.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t\n").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n  - name: a\n    provider: celigo\n    token_file: token\nalerting:\n  state_file: {}/state.json\n  email:\n    smtp: {{ host: 127.0.0.1, port: {port}, tls: none, timeout: 5s }}\n    from: \"Alerts <alerts@example.com>\"\n    to: [\"ops@example.com\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(EXE)
        .arg("test-email")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("test email failed: connect"),
        "stderr: {stderr}"
    );
}
