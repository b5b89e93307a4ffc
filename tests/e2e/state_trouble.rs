//! The alert state on a bad disk: a state directory on a small tmpfs made full and then read-only, and a state file
//! that is corrupt (truncated, random bytes, the wrong shape, empty) behind a symbolic link. The exporter must say
//! what it cannot do (metrics, `/readyz`, the silence API), lose nothing it acknowledged, and mail nothing twice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use onprem_agent_exporter::config::email::TlsMode;
use onprem_agent_exporter::sim::SimOptions;

use crate::support::exposition::sample;
use crate::support::http::{get, get_ok};
use crate::support::process::TestExporter;
use crate::support::simulator::{TestSim, spawn_sim};
use crate::support::smtp::{PASSWORD, ServerOptions, SmtpServer, USER};
use crate::support::tmpfs::Tmpfs;
use crate::support::wait::wait_until;

const API_TOKEN: &str = "state-trouble-api-key-0b7e4f1a93";
const ACCOUNT: &str = "disk";
const SAVE_FAILURES: &str = "onprem_agent_state_save_failures_total ";
const LAST_SAVE: &str = "onprem_agent_state_last_save_timestamp_seconds ";
const ENQUEUE_FAILURES: &str = "onprem_agent_notification_enqueue_failures_total ";
const LAST_ENQUEUE: &str = "onprem_agent_notification_last_enqueue_timestamp_seconds ";
const CORRUPT: &str = "onprem_agent_state_corrupt_files_total ";
const QUEUE: &str = crate::support::process::QUEUE_LENGTH;
const SENT: &str = "onprem_agent_notifications_total{channel=\"email\",outcome=\"sent\"}";
const SOURCE_DOWN_FIRING: &str =
    "onprem_agent_alerts{alertname=\"SourceDown\",severity=\"critical\",state=\"firing\"}";

/// Writes `config.yaml` in `dir`: one Celigo source on `sim`, only the SourceDown rule (`for: 1s`), fast timers, the
/// state file at `state_file`, and aiosmtpd on `smtp_port` with AUTH.
fn write_config(dir: &Path, sim: &TestSim, smtp_port: u16, state_file: &Path) -> PathBuf {
    std::fs::write(dir.join("token"), format!("{API_TOKEN}\n")).unwrap();
    std::fs::write(dir.join("smtp-password"), format!("{PASSWORD}\n")).unwrap();
    let config = format!(
        "listen_address: 127.0.0.1:0\n\
         sources:\n\
         \x20 - name: {ACCOUNT}\n\
         \x20   provider: celigo\n\
         \x20   base_url: http://{sim}\n\
         \x20   token_file: {token}\n\
         \x20   poll_interval: 1s\n\
         \x20   request_timeout: 1s\n\
         \x20   max_attempts: 1\n\
         alerting:\n\
         \x20 state_file: {state}\n\
         \x20 evaluation_interval: 200ms\n\
         \x20 retry_initial_backoff: 200ms\n\
         \x20 group_wait: 1s\n\
         \x20 group_interval: 2s\n\
         \x20 rules:\n\
         \x20   heartbeat_stale: {{ enabled: false }}\n\
         \x20   agent_offline: {{ enabled: false }}\n\
         \x20   token_rotation: {{ enabled: false }}\n\
         \x20   source_down: {{ for: 1s }}\n\
         \x20 email:\n\
         \x20   smtp: {{ host: 127.0.0.1, port: {smtp_port}, tls: none, username: {USER}, password_file: {pw}, timeout: 5s }}\n\
         \x20   from: \"Agent alerts <alerts@example.com>\"\n\
         \x20   to: [\"ops@example.com\"]\n",
        sim = sim.addr,
        token = dir.join("token").display(),
        state = state_file.display(),
        pw = dir.join("smtp-password").display(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

fn smtp() -> SmtpServer {
    SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: None,
    })
}

/// The subjects received so far, and the exporter's log tail, for failure messages.
fn context(server: &SmtpServer, exp: &TestExporter) -> String {
    let subjects: Vec<String> = server
        .received()
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect();
    format!(
        "--- emails ---\n{subjects:#?}\n--- exporter log (tail) ---\n{}",
        exp.log_tail()
    )
}

/// The distinct notification ids the engine handed over (each attempt is logged, so ids repeat while it retries).
fn notification_ids(exp: &TestExporter) -> Vec<String> {
    let mut ids: Vec<String> = exp
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "notification due")
        .filter_map(|v| v["id"].as_str().map(String::from))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

async fn metrics(exp: &TestExporter) -> String {
    get_ok(&exp.url("/metrics")).await
}

/// `POST /api/v1/silences` for the account; returns the status and body.
async fn post_silence(exp: &TestExporter) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(exp.url("/api/v1/silences"))
        .json(&serde_json::json!({
            "matchers": [{ "name": "account", "value": "nothing-here" }],
            "duration": "1h",
            "created_by": "test",
            "comment": "disk trouble"
        }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_then_read_only_state_disk_is_reported_and_every_notification_arrives_once_after_it_recovers()
 {
    let server = smtp();
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(dir.path().join("state"), "1m");
    let config = write_config(dir.path(), &sim, server.port, &disk.dir.join("state.json"));
    // Silence writes are open (`--web.enable-admin-api`), so that the 503 below is about the state, not the flag.
    let exp = TestExporter::start_with(
        &config,
        dir.path().join("exporter.log"),
        &[std::ffi::OsStr::new("--web.enable-admin-api")],
    );
    exp.wait_ready().await;
    let healthy = metrics(&exp).await;
    assert_eq!(sample(&healthy, SAVE_FAILURES), Some(0.0), "{healthy}");
    assert_eq!(sample(&healthy, ENQUEUE_FAILURES), Some(0.0), "{healthy}");

    // Full: the source goes down, so the engine has a new alert to save and then a notification to queue.
    disk.fill();
    // Every write after this instant fails; the last successes must be from before it.
    let trouble_began = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    sim.sim.control().set_status_override(Some(500));
    let text = wait_until(
        "failed saves and failed enqueues while the disk is full",
        async || {
            let text = metrics(&exp).await;
            (sample(&text, SAVE_FAILURES)? > 0.0 && sample(&text, ENQUEUE_FAILURES)? > 0.0)
                .then_some(text)
        },
        || context(&server, &exp),
    )
    .await;
    assert!(sample(&text, LAST_SAVE).unwrap() <= trouble_began, "{text}");
    assert!(
        sample(&text, LAST_ENQUEUE).unwrap() <= trouble_began,
        "{text}"
    );
    assert_eq!(sample(&text, QUEUE), Some(0.0), "{text}");
    let (status, body) = get(&exp.url("/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("notifications cannot be queued") && body.contains("No space left on device"),
        "{body}"
    );
    assert!(body.contains("the alert state cannot be saved"), "{body}");
    let (status, body) = post_silence(&exp).await;
    assert_eq!(
        status, 503,
        "a silence write while the state cannot be saved: {body}"
    );
    assert!(body.contains("cannot be saved"), "{body}");
    let landing = get_ok(&exp.url("/")).await;
    assert!(
        landing.contains("notifications cannot be queued"),
        "{landing}"
    );

    // Read-only: still reported, now for that reason.
    disk.free();
    disk.set_read_only(true);
    let failures = sample(&metrics(&exp).await, ENQUEUE_FAILURES).unwrap();
    wait_until(
        "failed enqueues on the read-only disk",
        async || {
            let (status, body) = get(&exp.url("/readyz")).await;
            let more = sample(&metrics(&exp).await, ENQUEUE_FAILURES)? > failures;
            (status == 503 && more && body.contains("Read-only file system")).then_some(())
        },
        || context(&server, &exp),
    )
    .await;
    assert!(server.received().is_empty(), "{}", context(&server, &exp));

    // Space returns: the one notification goes out, once.
    disk.set_read_only(false);
    wait_until(
        "the notification to be delivered and /readyz to recover",
        async || {
            let text = metrics(&exp).await;
            let ready = get(&exp.url("/readyz")).await.0 == 200;
            (ready && sample(&text, SENT)? >= 1.0 && sample(&text, QUEUE)? == 0.0).then_some(())
        },
        || context(&server, &exp),
    )
    .await;
    exp.quiet_period(Duration::from_secs(3), || context(&server, &exp))
        .await;
    let text = metrics(&exp).await;
    assert!(sample(&text, LAST_SAVE).unwrap() > trouble_began, "{text}");
    assert!(
        sample(&text, LAST_ENQUEUE).unwrap() > trouble_began,
        "{text}"
    );
    let ids = notification_ids(&exp);
    let got: Vec<String> = server
        .received()
        .iter()
        .map(|m| m.header("Message-ID").unwrap_or_default())
        .collect();
    let want: Vec<String> = ids.iter().map(|id| format!("<{id}@example.com>")).collect();
    assert_eq!(got, want, "{}", context(&server, &exp));
    assert_eq!(got.len(), 1, "{}", context(&server, &exp));
    let (status, body) = post_silence(&exp).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_is_counted_kept_aside_and_nothing_already_delivered_is_sent_again() {
    let server = smtp();
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // The state file is a symbolic link into another directory: it must stay one.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let link = dir.path().join("state.json");
    std::os::unix::fs::symlink(data.join("state.json"), &link).unwrap();
    let config = write_config(dir.path(), &sim, server.port, &link);
    sim.sim.control().set_status_override(Some(500));

    let exp = TestExporter::start(&config, dir.path().join("first.log"));
    let firing = format!("[FIRING:1] SourceDown {ACCOUNT}");
    wait_until(
        "the FIRING email",
        async || (server.received().len() == 1).then_some(()),
        || context(&server, &exp),
    )
    .await;
    exp.quiet_period(Duration::from_secs(1), || context(&server, &exp))
        .await;
    drop(exp);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let good = std::fs::read(data.join("state.json")).unwrap();

    let random: Vec<u8> = (0..600u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: [(&str, Vec<u8>); 4] = [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("random bytes", random),
        (
            "the wrong shape",
            br#"{"version":1,"alerts":{"no":"list"}}"#.to_vec(),
        ),
        ("empty", Vec::new()),
    ];
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        std::fs::write(&link, &bytes).unwrap();
        let exp = TestExporter::start(&config, dir.path().join(format!("restart-{i}.log")));
        wait_until(
            "the corrupt file counted and SourceDown firing again",
            async || {
                let text = metrics(&exp).await;
                (sample(&text, CORRUPT)? == 1.0 && sample(&text, SOURCE_DOWN_FIRING)? == 1.0)
                    .then_some(())
            },
            || format!("{what}:\n{}", context(&server, &exp)),
        )
        .await;
        // A duplicate would follow group_wait (1 s) after the first failed poll.
        exp.quiet_period(Duration::from_secs(3), || context(&server, &exp))
            .await;
        let subjects: Vec<String> = server
            .received()
            .iter()
            .map(|m| m.header("Subject").unwrap_or_default())
            .collect();
        assert_eq!(
            subjects,
            std::slice::from_ref(&firing),
            "after {what}:\n{}",
            context(&server, &exp)
        );
        assert!(
            exp.logs().contains("alert state file is unreadable"),
            "{what}: {}",
            exp.log_tail()
        );
        drop(exp);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{what}: the link became a file"
        );
    }
    let copies = std::fs::read_dir(&data)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".corrupt-")
        })
        .count();
    assert_eq!(copies, 3, "corrupt copies kept");

    // The rebuilt state still knows what it announced: the resolved notice arrives, once.
    let exp = TestExporter::start(&config, dir.path().join("last.log"));
    sim.sim.control().set_status_override(None);
    let resolved = format!("[RESOLVED] SourceDown {ACCOUNT}");
    wait_until(
        "the RESOLVED email",
        async || (server.received().len() >= 2).then_some(()),
        || context(&server, &exp),
    )
    .await;
    exp.quiet_period(Duration::from_secs(2), || context(&server, &exp))
        .await;
    let subjects: Vec<String> = server
        .received()
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect();
    assert_eq!(subjects, [firing, resolved], "{}", context(&server, &exp));
}
