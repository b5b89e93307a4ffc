//! Hostile inputs and unlucky operators: upstream records that are duplicated, enormous or not UTF-8, a `Retry-After`
//! of a day, credential files that are devices, FIFOs, directories or readable by everyone, a token pasted where its
//! path belongs, cleartext SMTP AUTH, and an SMTP server that quotes the password back to `test-email`, to `run`'s
//! alert deliveries and to `report --send`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::exposition::sample;
use crate::support::fake_upstream::{FakeUpstream, Reply};
use crate::support::http::get_ok;
use crate::support::outbox::outbox_files;
use crate::support::process::{EXE, TestExporter};
use crate::support::simulator::spawn_sim;
use crate::support::smtp::{PASSWORD, SmtpServer, USER, password_forms};
use crate::support::wait::wait_until;
use onprem_agent_exporter::config::sources::SourceConfig;
use onprem_agent_exporter::domain::Provider;
use onprem_agent_exporter::poller::poll_once;
use onprem_agent_exporter::sim::SimOptions;
use onprem_agent_exporter::sources::ErrorReason;
use onprem_agent_exporter::sources::celigo::CeligoSource;
use onprem_agent_exporter::status::Registry;
use secrecy::SecretString;
use url::Url;

/// A Celigo source on `base` that retries fast and honours `Retry-After` for at most a second within a poll.
fn celigo(base: &Url) -> CeligoSource {
    let mut config = SourceConfig::new(
        "hostile",
        Provider::Celigo,
        base.clone(),
        SecretString::from("api-token-7f3c9a1e5b"),
    );
    config.request_timeout = Duration::from_secs(5);
    config.max_attempts = 2;
    config.max_retry_after = Duration::from_millis(50);
    CeligoSource::new(config)
        .unwrap()
        .with_backoff_base(Duration::from_millis(1))
}

#[tokio::test]
async fn duplicate_ids_enormous_names_and_a_record_that_is_not_utf8_cost_only_themselves() {
    let huge = "n".repeat(1_000_000);
    let mut body = Vec::new();
    body.extend_from_slice(b"[");
    for i in 0..50 {
        body.extend_from_slice(format!(r#"{{"_id":"dup","name":"copy {i}"}},"#).as_bytes());
    }
    body.extend_from_slice(format!(r#"{{"_id":"big","name":"{huge}"}},"#).as_bytes());
    body.extend_from_slice(b"{\"_id\":\"bad\",\"name\":\"caf\xe9\"},");
    body.extend_from_slice(br#"{"_id":"fine","name":"ok"}]"#);
    let upstream = FakeUpstream::start(|_| vec![Reply::raw(200, body)]).await;
    let source = celigo(&upstream.base);
    let registry = Registry::new([("hostile", Provider::Celigo)]);
    assert!(
        poll_once(&source, &registry, 0).await,
        "{:?}",
        registry.get(0).last_error
    );
    let status = registry.get(0);
    let agents = &status.agents.as_ref().unwrap().agents;
    let ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["dup", "big", "fine"]);
    assert_eq!(agents[0].name, "copy 0", "the first of the duplicates wins");
    assert!(
        agents[1].name.len() <= 1024 && agents[1].name.ends_with('…'),
        "{}",
        agents[1].name.len()
    );
    // 49 duplicates and the record that is not UTF-8.
    assert_eq!(status.error_count(ErrorReason::InvalidRecord), 50);
}

#[tokio::test]
async fn a_retry_after_of_a_day_is_honoured_across_polls() {
    let upstream =
        FakeUpstream::start(|_| vec![Reply::status(429).header("retry-after", "86400")]).await;
    let source = Arc::new(celigo(&upstream.base));
    let registry = Arc::new(Registry::new([("hostile", Provider::Celigo)]));
    let stop = tokio_util::sync::CancellationToken::new();
    let shutdown = stop.clone();
    let poller = tokio::spawn(onprem_agent_exporter::poller::run(
        source.clone(),
        registry.clone(),
        0,
        Duration::from_millis(20),
        shutdown,
    ));
    crate::support::wait::wait_until(
        "the first poll",
        async || (registry.get(0).polls > 0).then_some(()),
        || format!("{:?}", registry.get(0)),
    )
    .await;
    // Twenty poll intervals later, still the one poll of two attempts.
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.cancel();
    let _ = poller.await;
    assert_eq!(upstream.seen().len(), 2, "{:#?}", upstream.targets());
    let status = registry.get(0);
    let until = status
        .waiting_until(jiff::Timestamp::now())
        .expect("a not-before instant");
    let wait = until.duration_since(jiff::Timestamp::now()).as_secs_f64();
    assert!((86_000.0..=86_401.0).contains(&wait), "{wait}");
    let exposition = onprem_agent_exporter::metrics::Exposition::new(registry.clone())
        .render(onprem_agent_exporter::metrics::Format::Text);
    assert!(
        exposition.contains("onprem_agent_source_not_before_timestamp_seconds{"),
        "{exposition}"
    );
}

/// Writes a config whose one source reads its token from `token_file` (written as is) and runs `check-config` on it,
/// returning the exit code, everything printed, and how long it took.
fn check_config_with_token_file(dir: &Path, token_file: &str) -> (Option<i32>, String, Duration) {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!("sources:\n  - name: a\n    provider: celigo\n    token_file: {token_file:?}\n"),
    )
    .unwrap();
    let started = Instant::now();
    let out = Command::new(EXE)
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text, started.elapsed())
}

#[test]
fn check_config_refuses_devices_fifos_and_directories_as_token_files_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let status = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    for (path, what) in [
        (
            "/dev/zero".to_string(),
            "is a character device, not a regular file",
        ),
        (
            fifo.display().to_string(),
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            sub.display().to_string(),
            "is a directory, not a regular file",
        ),
    ] {
        let (code, text, took) = check_config_with_token_file(dir.path(), &path);
        assert_eq!(code, Some(1), "{path}: {text}");
        assert!(
            text.contains(&format!("the file named in token_file ({path}) {what}")),
            "{path}: {text}"
        );
        assert!(took < Duration::from_secs(1), "{path} took {took:?}");
    }
}

#[test]
fn check_config_warns_about_a_token_file_readable_by_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, text, _) = check_config_with_token_file(dir.path(), "token");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("readable by group or others"), "{text}");
    assert!(text.contains("0644"), "{text}");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, text, _) = check_config_with_token_file(dir.path(), "token");
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("readable by group or others"), "{text}");
}

#[test]
fn a_token_pasted_where_its_path_or_variable_belongs_is_never_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let pasted = "abcdef123456secret";
    let (code, text, _) = check_config_with_token_file(dir.path(), pasted);
    assert_eq!(code, Some(1), "{text}");
    assert!(!text.contains(pasted), "{text}");
    assert!(
        text.contains("the file named in token_file was not found"),
        "{text}"
    );
    assert!(text.contains("looks like a token"), "{text}");

    let config = dir.path().join("env.yaml");
    for (yaml, key, hint) in [
        (
            format!("token_env: {pasted}"),
            "token_env",
            "looks like a token",
        ),
        (format!("token: {pasted}"), "token", "token_file"),
    ] {
        std::fs::write(
            &config,
            format!("sources:\n  - name: a\n    provider: celigo\n    {yaml}\n"),
        )
        .unwrap();
        let out = Command::new(EXE)
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(!text.contains(pasted), "{key}: {text}");
        assert!(
            text.contains(&format!("sources[0].{key}")) && text.contains(hint),
            "{key}: {text}"
        );
    }
}

#[test]
fn check_config_refuses_smtp_auth_in_the_clear_to_another_host_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "t\n").unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "pw\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("config.yaml");
    for (host, extra, ok) in [
        ("smtp.example.com", "", false),
        ("smtp.example.com", ", allow_insecure_auth: true", true),
        ("127.0.0.1", "", true),
    ] {
        std::fs::write(
            &config,
            format!(
                "sources:\n  - name: a\n    provider: celigo\n    token_file: token\nalerting:\n  state_file: {}/state.json\n  email:\n    smtp: {{ host: {host}, tls: none, username: u, password_file: pw{extra} }}\n    from: a@example.com\n    to: [b@example.com]\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let out = Command::new(EXE)
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "{host}{extra}: {text}");
        if !ok {
            assert!(
                text.contains("alerting.email.smtp.tls") && text.contains("in the clear"),
                "{text}"
            );
        }
    }
}

/// Writes, in `dir`, an API token file, the SMTP password file (mode 0600) and `config.yaml`: one Celigo source
/// (on `base_url` when given) and an `alerting` section with `alerting_extra` that mails through the server on
/// `smtp_port` as [`USER`] without TLS. Returns the config's path; the state file is `dir/state.json`.
fn smtp_auth_config(
    dir: &Path,
    base_url: Option<&str>,
    smtp_port: u16,
    alerting_extra: &str,
) -> PathBuf {
    std::fs::write(dir.join("token"), format!("{SIM_TOKEN}\n")).unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let base_url = base_url.map_or(String::new(), |u| {
        format!("    base_url: {u}\n    poll_interval: 1s\n    request_timeout: 1s\n")
    });
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen_address: 127.0.0.1:0\nsources:\n  - name: a\n    provider: celigo\n    token_file: token\n{base_url}alerting:\n  state_file: {}/state.json\n{alerting_extra}  email:\n    smtp: {{ host: 127.0.0.1, port: {smtp_port}, tls: none, username: {USER}, password_file: pw, timeout: 5s }}\n    from: a@example.com\n    to: [b@example.com]\n",
            dir.display(),
        ),
    )
    .unwrap();
    config
}

/// The API token of the simulator the `run` and `report` tests poll.
const SIM_TOKEN: &str = "durability-api-key-3e81f0c4a9";

/// Fails naming `what` if `text` holds the SMTP password in any form a client sends it.
fn assert_no_password(what: &str, text: &str) {
    for form in password_forms() {
        assert!(
            !text.contains(&form),
            "the SMTP password ({form}) leaked into {what}:\n{text}"
        );
    }
}

#[test]
fn an_smtp_server_that_quotes_the_password_in_its_535_reply_gets_it_printed_nowhere() {
    let server = SmtpServer::start_echoing_credentials();
    let dir = tempfile::tempdir().unwrap();
    let config = smtp_auth_config(dir.path(), None, server.port, "");
    let out = Command::new(EXE)
        .arg("test-email")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("auth") && text.contains("535"), "{text}");
    assert!(
        text.contains("[REDACTED]"),
        "the server did not echo, so the test proves nothing: {text}"
    );
    assert_no_password("test-email's output", &text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_keeps_a_password_quoted_in_a_535_reply_out_of_its_log_outbox_state_and_pages() {
    let server = SmtpServer::start_echoing_credentials();
    let sim = spawn_sim(SIM_TOKEN, SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // The default fleet has overdue tokens and stale heartbeats, so alerts fire on the first evaluation.
    let config = smtp_auth_config(
        dir.path(),
        Some(&format!("http://{}", sim.addr)),
        server.port,
        "  evaluation_interval: 200ms\n  retry_initial_backoff: 200ms\n  group_wait: 200ms\n",
    );
    let exp = TestExporter::start(&config, dir.path().join("exporter.log"));
    let state_file = dir.path().join("state.json");
    let failed = "onprem_agent_notifications_total{channel=\"email\",outcome=\"failed\"}";
    // Two failed attempts: the first one and a retry, each refused with the echoing 535.
    wait_until(
        "two failed delivery attempts, the 535 in the log and a saved state file",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            let echoed = exp.logs().lines().any(|l| {
                l.contains("notification delivery failed")
                    && l.contains("535")
                    && l.contains("[REDACTED]")
            });
            (sample(&text, failed)? >= 2.0 && echoed && state_file.exists()).then_some(())
        },
        || exp.log_tail(),
    )
    .await;

    let mut outputs = outbox_files(&dir.path().join("state.json.outbox"), "while SMTP refuses");
    assert!(
        outputs.iter().any(|(what, _)| what.contains("pending")),
        "no pending outbox file to search: {:?}",
        outputs.iter().map(|(w, _)| w).collect::<Vec<_>>()
    );
    outputs.push((
        "the state file".into(),
        std::fs::read_to_string(&state_file).unwrap(),
    ));
    for path in ["/", "/metrics", "/api/v1/alerts"] {
        outputs.push((path.into(), get_ok(&exp.url(path)).await));
    }
    // The page says why the queue grows: the email destination's last error (redacted) and its age.
    let page = &outputs.iter().find(|(w, _)| w == "/").unwrap().1;
    let row = page
        .split("<tr>")
        .find(|r| r.starts_with("<td>email</td>"))
        .unwrap_or_else(|| panic!("no email row in the destinations table:\n{page}"));
    assert!(
        row.contains(" ago</td>") && row.contains("535") && row.contains("[REDACTED]"),
        "the email row must show the 535 and its age: {row}"
    );
    // Last, so that it holds every line written while the others were read.
    outputs.push(("the exporter's debug log".into(), exp.logs()));
    for (what, text) in &outputs {
        assert!(!text.is_empty(), "{what} is empty");
        assert_no_password(what, text);
    }
    assert!(server.received().is_empty(), "a message got through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_send_keeps_a_password_quoted_in_a_535_reply_out_of_its_output() {
    let server = SmtpServer::start_echoing_credentials();
    let sim = spawn_sim(SIM_TOKEN, SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = smtp_auth_config(
        dir.path(),
        Some(&format!("http://{}", sim.addr)),
        server.port,
        "",
    );
    // Blocking the runtime's worker would stall the simulator the command polls.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(EXE)
            .args(["report", "--send", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("overdue"),
        "no report was built from the fleet:\n{stdout}"
    );
    assert!(
        stderr.contains("535") && stderr.contains("[REDACTED]"),
        "the server did not echo, so the test proves nothing:\n{stderr}"
    );
    assert_no_password("report --send's stdout", &stdout);
    assert_no_password("report --send's stderr", &stderr);
}
