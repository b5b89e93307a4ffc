//! The alerting half as a real process: the exporter binary (`run --config`) against the in-process simulator and
//! Debian's aiosmtpd, on 127.0.0.1 only. It is SIGKILLed after a notification and restarted from its state file,
//! its SMTP server is missing while alerts fire, and everything it writes or sends is searched for secrets.
//!
//! Every wait is bounded and, when it runs out, says what it saw: the emails received so far and the tail of the
//! exporter's log. Every child process is killed when its guard is dropped, so a failed assertion leaves nothing
//! running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use onprem_agent_exporter::config::email::TlsMode;
use onprem_agent_exporter::sim::SimOptions;

use crate::support::exposition::sample;
use crate::support::free_port;
use crate::support::http::get_ok;
use crate::support::outbox::outbox_files;
use crate::support::process::TestExporter;
use crate::support::simulator::{TestSim, spawn_sim};
use crate::support::smtp::{PASSWORD, Received, ServerOptions, SmtpServer, USER};
use crate::support::wait::wait_until;

const API_TOKEN: &str = "alerting-api-key-7d41c0e9b2f85a36";
/// The source's name, and so the account every subject ends with.
const ACCOUNT: &str = "e2e";
/// Timer settings added to every test's `alerting` section. The rule evaluation interval and the outbox's first
/// retry delay are 5 s by default; 200ms makes every wait below a fraction of a second.
const FAST_TIMERS: &str = "  evaluation_interval: 200ms\n  retry_initial_backoff: 200ms\n";

/// One test's files: the config, the API token and SMTP password files, the state file (with its outbox next to
/// it) and the logs of every exporter process started from them.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// Writes a config with one Celigo source polling `sim` every second, and an `alerting` section mailing to
    /// aiosmtpd on `smtp_port` with AUTH; `alerting_extra` is added to the `alerting` section as is.
    fn new(sim: &TestSim, smtp_port: u16, alerting_extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("token"), format!("{API_TOKEN}\n")).unwrap();
        std::fs::write(p.join("smtp-password"), format!("{PASSWORD}\n")).unwrap();
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
             \x20 external_url: http://exporter.example.com:9877\n\
             {FAST_TIMERS}\
             {alerting_extra}\
             \x20 email:\n\
             \x20   smtp: {{ host: 127.0.0.1, port: {smtp_port}, tls: none, username: {USER}, password_file: {pw}, timeout: 5s }}\n\
             \x20   from: \"Agent alerts <alerts@example.com>\"\n\
             \x20   to: [\"ops@example.com\"]\n",
            sim = sim.addr,
            token = p.join("token").display(),
            state = p.join("state.json").display(),
            pw = p.join("smtp-password").display(),
        );
        std::fs::write(p.join("config.yaml"), config).unwrap();
        Setup { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    fn outbox_dir(&self) -> PathBuf {
        self.dir.path().join("state.json.outbox")
    }

    /// Starts `run --config` with JSON logs at debug level going to `<log_name>.log`, and waits until it listens.
    fn start(&self, log_name: &str) -> TestExporter {
        TestExporter::start(
            &self.config(),
            self.dir.path().join(format!("{log_name}.log")),
        )
    }
}

const QUEUE: &str = crate::support::process::QUEUE_LENGTH;
const FAILED: &str = "onprem_agent_notifications_total{channel=\"email\",outcome=\"failed\"}";
const SENT: &str = "onprem_agent_notifications_total{channel=\"email\",outcome=\"sent\"}";
const SOURCE_DOWN_FIRING: &str =
    "onprem_agent_alerts{alertname=\"SourceDown\",severity=\"critical\",state=\"firing\"}";

/// One line per message received so far: its Message-ID and subject.
fn summary(server: &SmtpServer) -> String {
    let got = server.received();
    if got.is_empty() {
        return "(no email)".to_string();
    }
    got.iter()
        .map(|m| {
            format!(
                "{} {}",
                m.header("Message-ID").unwrap_or_default(),
                m.header("Subject").unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a failed wait shows: the emails so far and the exporter's log tail.
fn context(server: Option<&SmtpServer>, exp: &TestExporter) -> String {
    format!(
        "--- emails received ---\n{}\n--- exporter log (tail) ---\n{}",
        server.map_or("(no SMTP server running)".to_string(), summary),
        exp.log_tail()
    )
}

fn subjects_starting(server: &SmtpServer, prefix: &str) -> Vec<Received> {
    server
        .received()
        .into_iter()
        .filter(|m| m.header("Subject").is_some_and(|s| s.starts_with(prefix)))
        .collect()
}

/// Asserts what every alert email must be, as mailparse reads it: the subject, `To:`, the envelope recipient, AUTH,
/// and both a text and an HTML part that name the account and carry `body_marker`.
fn assert_readable(m: &Received, subject: &str, body_marker: &str) {
    let raw = m.raw_text();
    assert_eq!(
        m.header("Subject").as_deref(),
        Some(subject),
        "message:\n{raw}"
    );
    assert_eq!(
        m.header("To").as_deref(),
        Some("ops@example.com"),
        "message:\n{raw}"
    );
    assert_eq!(m.rcpt_tos, vec!["ops@example.com"], "message:\n{raw}");
    assert_eq!(
        m.auth_user.as_deref(),
        Some(USER),
        "no AUTH; message:\n{raw}"
    );
    let text = m
        .part("text/plain")
        .unwrap_or_else(|| panic!("no text part:\n{raw}"));
    let html = m
        .part("text/html")
        .unwrap_or_else(|| panic!("no HTML part:\n{raw}"));
    for (name, part) in [("text", &text), ("HTML", &html)] {
        assert!(
            part.contains(&format!("on account {ACCOUNT} (celigo)")),
            "the {name} part does not name the account:\n{part}"
        );
        assert!(
            part.contains(body_marker),
            "the {name} part lacks {body_marker:?}:\n{part}"
        );
    }
    assert!(
        html.contains("href=\"http://exporter.example.com:9877\""),
        "no link to the exporter:\n{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_email_survives_a_sigkill_and_the_resolved_notice_still_arrives_exactly_once() {
    let started = Instant::now();
    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: None,
    });
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    // Only SourceDown is on, so every email this test sees is about the outage.
    let setup = Setup::new(
        &sim,
        server.port,
        "  group_wait: 1s\n  group_interval: 2s\n  rules:\n\
         \x20   heartbeat_stale: { enabled: false }\n\
         \x20   agent_offline: { enabled: false }\n\
         \x20   token_rotation: { enabled: false }\n\
         \x20   source_down: { for: 1s }\n",
    );
    let exp = setup.start("first");
    // One good poll first, so the SourceDown email has a last good snapshot to count.
    wait_until(
        "the first successful poll",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            (sample(&text, "onprem_agent_source_up{") == Some(1.0)).then_some(())
        },
        || context(Some(&server), &exp),
    )
    .await;

    sim.sim.control().set_status_override(Some(500));
    let firing_subject = format!("[FIRING:1] SourceDown {ACCOUNT}");
    let resolved_subject = format!("[RESOLVED] SourceDown {ACCOUNT}");
    wait_until(
        "the FIRING SourceDown email",
        async || (!subjects_starting(&server, &firing_subject).is_empty()).then_some(()),
        || context(Some(&server), &exp),
    )
    .await;
    let fired_after = started.elapsed();
    // The outbox logs the delivery once the server accepted it, naming the group and the recipients.
    let delivered = wait_until(
        "the `notification delivered` log line",
        async || {
            exp.logs()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["message"] == "notification delivered")
        },
        || context(Some(&server), &exp),
    )
    .await;
    assert_eq!(
        delivered["group"],
        format!("SourceDown/{ACCOUNT}"),
        "{delivered}"
    );
    assert_eq!(delivered["channel"], "email", "{delivered}");
    assert!(
        delivered["to"]
            .as_str()
            .is_some_and(|to| to.contains("ops@example.com")),
        "{delivered}"
    );
    assert!(
        exp.notification_ids()
            .iter()
            .any(|id| delivered["id"] == id.as_str()),
        "the delivered id is none the engine handed over: {delivered}"
    );
    exp.sigkill();

    // The fault is still there: the restarted process sees the source down again, from its own first failed poll.
    let exp = setup.start("second");
    let state_log = exp
        .logs()
        .lines()
        .find(|l| l.contains("alert state loaded"))
        .map(String::from);
    wait_until(
        "the restarted exporter to report SourceDown firing",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            (sample(&text, "onprem_agent_source_up{") == Some(0.0)
                && sample(&text, SOURCE_DOWN_FIRING) == Some(1.0))
            .then_some(())
        },
        || context(Some(&server), &exp),
    )
    .await;
    // The restarted engine would mail a duplicate once group_wait (1 s) and group_interval (2 s) have passed.
    exp.quiet_period(Duration::from_secs(3), || context(Some(&server), &exp))
        .await;
    let firing = subjects_starting(&server, "[FIRING");
    assert_eq!(
        firing.len(),
        1,
        "a second FIRING email after the restart (state: {state_log:?}):\n{}",
        context(Some(&server), &exp)
    );

    sim.sim.control().set_status_override(None);
    wait_until(
        "the RESOLVED SourceDown email",
        async || (!subjects_starting(&server, &resolved_subject).is_empty()).then_some(()),
        || context(Some(&server), &exp),
    )
    .await;
    // Let a duplicate resolved notice, or a late firing one, arrive if one were coming: the group is due again
    // after group_interval (2 s).
    exp.quiet_period(Duration::from_secs(2), || context(Some(&server), &exp))
        .await;

    let all = server.received();
    let subjects: Vec<String> = all
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect();
    assert_eq!(
        subjects,
        vec![firing_subject.clone(), resolved_subject.clone()],
        "exactly one FIRING and one RESOLVED SourceDown email, in that order:\n{}",
        context(Some(&server), &exp)
    );
    assert_readable(&all[0], &firing_subject, "polls failing for");
    // The SourceDown email says what failed.
    let text = all[0].part("text/plain").unwrap_or_default();
    for want in [
        "Reason: http_5xx".to_string(),
        format!("URL: http://{}/v1/agents", sim.addr),
        "Last error: ".to_string(),
        "Failing since: ".to_string(),
        "Agents in the last good snapshot: 25".to_string(),
    ] {
        assert!(
            text.contains(&want),
            "the SourceDown email lacks {want:?}:\n{text}"
        );
    }
    assert!(
        !text.contains('?'),
        "a query string in the SourceDown email:\n{text}"
    );
    assert_readable(&all[1], &resolved_subject, "Resolved");
    let ids: Vec<String> = all
        .iter()
        .map(|m| m.header("Message-ID").unwrap_or_default())
        .collect();
    assert_ne!(ids[0], ids[1], "both emails carry one Message-ID");
    eprintln!(
        "fired after {fired_after:?}, resolved notice after {:?} in all",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_queued_during_an_smtp_outage_arrive_exactly_once_after_recovery() {
    let started = Instant::now();
    // Nothing listens here until the outage ends.
    let port = free_port();
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    // The default fleet always has overdue and due tokens and stale heartbeats. A group interval of an hour makes
    // every group mail exactly once during the test, so each expected email is one notification id.
    let setup = Setup::new(
        &sim,
        port,
        "  group_wait: 1s\n  group_interval: 1h\n  repeat_interval: 1h\n",
    );
    let exp = setup.start("exporter");

    // The first delivery attempt fails at once, and a retry follows 5 s later (the outbox's first backoff).
    let (queued, failed) = wait_until(
        "queued emails and two failed delivery attempts",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            let queued = sample(&text, QUEUE)?;
            let failed = sample(&text, FAILED)?;
            (queued > 0.0 && failed >= queued + 1.0).then_some((queued, failed))
        },
        || context(None, &exp),
    )
    .await;
    let expected = exp.notification_ids();
    assert_eq!(
        expected.len() as f64,
        queued,
        "the queue does not hold the notifications the engine handed over ({expected:?}):\n{}",
        exp.log_tail()
    );
    let pending = std::fs::read_dir(setup.outbox_dir().join("pending"))
        .unwrap()
        .count();
    assert_eq!(pending, expected.len(), "pending outbox files");
    let outage = started.elapsed();

    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: Some(port),
    });
    wait_until(
        "the queue to drain",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            (sample(&text, QUEUE) == Some(0.0)).then_some(())
        },
        || context(Some(&server), &exp),
    )
    .await;
    // Let any duplicate arrive if one were coming: a redelivery would follow the outbox's next attempt.
    exp.quiet_period(Duration::from_secs(1), || context(Some(&server), &exp))
        .await;

    let text = get_ok(&exp.url("/metrics")).await;
    let got = server.received();
    assert_eq!(
        exp.notification_ids(),
        expected,
        "new notifications during the test make the expected set uncertain:\n{}",
        exp.log_tail()
    );
    assert_eq!(
        sample(&text, SENT),
        Some(expected.len() as f64),
        "sent counter:\n{}",
        context(Some(&server), &exp)
    );
    let mut by_message_id: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_subject: BTreeMap<String, usize> = BTreeMap::new();
    for m in &got {
        *by_message_id
            .entry(m.header("Message-ID").unwrap_or_default())
            .or_default() += 1;
        *by_subject
            .entry(m.header("Subject").unwrap_or_default())
            .or_default() += 1;
    }
    let mut want: Vec<String> = expected
        .iter()
        .map(|id| format!("<{id}@example.com>"))
        .collect();
    want.sort();
    assert_eq!(
        by_message_id.keys().cloned().collect::<Vec<_>>(),
        want,
        "the Message-IDs received are not the notifications queued:\n{}",
        summary(&server)
    );
    assert!(
        by_message_id.values().all(|&n| n == 1) && by_subject.values().all(|&n| n == 1),
        "a duplicate arrived:\n{}",
        summary(&server)
    );
    for m in &got {
        let subject = m.header("Subject").unwrap_or_default();
        assert!(
            subject.starts_with("[FIRING:") && subject.ends_with(&format!(" {ACCOUNT}")),
            "unexpected subject {subject:?}"
        );
        assert_readable(m, &subject, "Firing");
    }
    let pending = std::fs::read_dir(setup.outbox_dir().join("pending"))
        .unwrap()
        .count();
    assert_eq!(pending, 0, "pending outbox files after the drain");
    eprintln!(
        "{} emails; {failed} failed attempts in the first {outage:?}; done after {:?}",
        got.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_emails_the_state_file_the_outbox_or_the_logs() {
    // The simulator ignores `include` and sends full records, each with its agent's `accessToken`.
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
    // SMTP is down at first, so the notifications sit in the outbox as files that can be searched.
    let port = free_port();
    let setup = Setup::new(&sim, port, "  group_wait: 1s\n  group_interval: 2s\n");
    let exp = setup.start("exporter");

    let mut outputs: Vec<(String, String)> = Vec::new();
    wait_until(
        "queued notifications",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            (sample(&text, QUEUE)? > 0.0 && sample(&text, FAILED)? > 0.0).then_some(())
        },
        || context(None, &exp),
    )
    .await;
    outputs.extend(outbox_files(&setup.outbox_dir(), "during the outage"));
    assert!(
        outputs.iter().any(|(what, _)| what.contains("pending")),
        "no pending outbox file to search: {:?}",
        outputs.iter().map(|(w, _)| w).collect::<Vec<_>>()
    );

    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: Some(port),
    });
    wait_until(
        "the queue to drain",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            (sample(&text, QUEUE) == Some(0.0) && sample(&text, SENT)? > 0.0).then_some(())
        },
        || context(Some(&server), &exp),
    )
    .await;

    let got = server.received();
    assert!(!got.is_empty(), "no email to search");
    // The emails list agents from the full records: what is searched below really came from them.
    let agents: serde_json::Value =
        serde_json::from_str(&get_ok(&exp.url("/api/v1/agents")).await).unwrap();
    let ids: Vec<String> = agents["sources"][0]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str().map(String::from))
        .collect();
    assert!(
        got.iter().any(|m| m
            .part("text/plain")
            .is_some_and(|t| ids.iter().any(|id| t.contains(id.as_str())))),
        "no email lists an agent id of {ids:?}:\n{}",
        summary(&server)
    );
    for (i, m) in got.iter().enumerate() {
        outputs.push((format!("email {i}"), m.raw_text()));
        for (mime, part) in [
            ("text", m.part("text/plain")),
            ("html", m.part("text/html")),
        ] {
            outputs.push((format!("email {i} {mime} part"), part.unwrap_or_default()));
        }
    }
    outputs.push((
        "the state file".into(),
        std::fs::read_to_string(setup.state_file()).unwrap(),
    ));
    outputs.extend(outbox_files(&setup.outbox_dir(), "after the outage"));
    let alerts = get_ok(&exp.url("/api/v1/alerts")).await;
    let doc: serde_json::Value = serde_json::from_str(&alerts).unwrap();
    assert!(
        doc["alerts"].as_array().is_some_and(|a| !a.is_empty()),
        "no alerts listed: {alerts}"
    );
    outputs.push(("/api/v1/alerts".into(), alerts));
    outputs.push(("the exporter's debug log".into(), exp.logs()));

    // The fleet really was served with tokens: otherwise this test would prove nothing.
    let raw = sim.raw_agents(API_TOKEN).await;
    assert!(
        tokens.iter().all(|t| raw.contains(t.as_str())),
        "the simulator did not send every accessToken"
    );

    for (what, text) in &outputs {
        assert!(!text.is_empty(), "{what} is empty");
        assert!(!text.contains(API_TOKEN), "the API key leaked into {what}");
        assert!(
            !text.contains(PASSWORD),
            "the SMTP password leaked into {what}"
        );
        for t in &tokens {
            assert!(
                !text.contains(t.as_str()),
                "an agent accessToken leaked into {what}"
            );
        }
        assert!(
            !text.contains("accessToken"),
            "an accessToken field leaked into {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_the_platform_reports_offline_is_mailed_once_as_agent_offline_and_never_as_stale()
{
    use onprem_agent_exporter::sim::fleet::Behaviour;

    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: None,
    });
    // The default fleet has dead and never-connected agents: offline, with heartbeats hours to weeks old or none.
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let offline: Vec<String> = sim
        .sim
        .control()
        .fleet()
        .agents()
        .iter()
        .filter(|a| {
            matches!(
                a.behaviour,
                Behaviour::Dead { .. } | Behaviour::NeverConnected
            )
        })
        .map(|a| a.id_hex())
        .collect();
    assert!(
        !offline.is_empty(),
        "the default fleet has no offline agent"
    );
    // Default rules (AgentHeartbeatStale `for: 0s`) except AgentOffline's `for`, shortened from 5m to 3s: still
    // longer than group_wait, so the stale group is looked at while AgentOffline is pending, the case that used to
    // mail the same agents twice.
    let setup = Setup::new(
        &sim,
        server.port,
        "  group_wait: 1s\n  group_interval: 2s\n  rules:\n\
         \x20   agent_offline: { for: 3s }\n",
    );
    let exp = setup.start("offline");
    let offline_subject = "[FIRING:";
    wait_until(
        "the FIRING AgentOffline email",
        async || {
            server
                .received()
                .iter()
                .any(|m| {
                    m.header("Subject").is_some_and(|s| {
                        s.starts_with(offline_subject) && s.contains("AgentOffline")
                    })
                })
                .then_some(())
        },
        || context(Some(&server), &exp),
    )
    .await;
    // Long enough for a stale notice at the next group_interval, had one been coming.
    exp.quiet_period(Duration::from_secs(3), || context(Some(&server), &exp))
        .await;

    let all = server.received();
    let text = |m: &Received| m.part("text/plain").unwrap_or_default();
    let subject = |m: &Received| m.header("Subject").unwrap_or_default();
    for m in all
        .iter()
        .filter(|m| subject(m).contains("AgentHeartbeatStale"))
    {
        let body = text(m);
        for id in &offline {
            assert!(
                !body.contains(id.as_str()),
                "offline agent {id} is in a stale notice:\n{body}\n{}",
                context(Some(&server), &exp)
            );
        }
        assert!(
            !subject(m).starts_with("[RESOLVED]"),
            "a stale notice claims resolution:\n{body}"
        );
    }
    let offline_mails: Vec<&Received> = all
        .iter()
        .filter(|m| subject(m).contains("AgentOffline"))
        .collect();
    let first = text(offline_mails[0]);
    for id in &offline {
        assert!(
            first.contains(id.as_str()),
            "offline agent {id} missing from the first AgentOffline email:\n{first}"
        );
    }
    // Later AgentOffline emails may repeat the group's list only when someone new joined it (a flapping agent);
    // without a newcomer there is no second email for the same agents.
    for later in &offline_mails[1..] {
        let body = text(later);
        assert!(
            body.lines()
                .any(|l| l.starts_with("- ") && !offline.iter().any(|id| l.contains(id.as_str()))),
            "an AgentOffline email repeats the same agents with nobody new:\n{body}"
        );
    }

    // The API gives the numbers beside the text: the stale alerts (inhibited) and the offline ones.
    let alerts = get_ok(&exp.url("/api/v1/alerts")).await;
    let doc: serde_json::Value = serde_json::from_str(&alerts).unwrap();
    let list = doc["alerts"].as_array().cloned().unwrap_or_default();
    let of = |rule: &str, id: &str| {
        list.iter()
            .find(|a| a["alertname"] == rule && a["agent_id"] == id)
            .unwrap_or_else(|| panic!("no {rule} alert for {id} in {alerts}"))
            .clone()
    };
    for id in &offline {
        let off = of("AgentOffline", id);
        assert_eq!(off["threshold_seconds"], 3, "{off}");
        assert!(
            off["value_seconds"].as_u64().is_some_and(|v| v >= 3),
            "{off}"
        );
        let stale = of("AgentHeartbeatStale", id);
        assert_eq!(stale["threshold_seconds"], 600, "{stale}");
        assert!(
            stale["value_seconds"].as_u64().is_some_and(|v| v > 600),
            "{stale}"
        );
        assert_eq!(stale["inhibited"], true, "{stale}");
    }
}
