//! Email delivery against a real SMTP server (aiosmtpd): the three TLS modes with AUTH, rendering and escaping as
//! received, `test-email` diagnostics, an SMTP outage through the outbox, the compliance report, the demo's file
//! transport, and that the SMTP password never leaks.

mod pipeline;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::free_port;
use crate::support::smtp::{
    PASSWORD, Received, ServerOptions, SmtpServer, TestCa, USER, email_config,
};
use jiff::Timestamp;
use onprem_agent_exporter::config::email::{RawEmail, TlsMode};
use onprem_agent_exporter::config::reports::TokenPolicy;
use onprem_agent_exporter::domain::{Agent, AgentList, AlertName, Provider};
use onprem_agent_exporter::notify::email::{EmailChannel, SmtpError, TestEmailError, test_email};
use onprem_agent_exporter::notify::outbox::{self, Outbox, OutboxOptions};
use onprem_agent_exporter::notify::{
    AlertLine, Notification, NotificationSink, NotificationStatus, Severity,
};
use onprem_agent_exporter::report;
use onprem_agent_exporter::status::SourceStatus;

/// An agent name built to break things: HTML, quotes, a CR/LF header injection attempt and non-ASCII text.
const EVIL_NAME: &str = "<b>Lager</b> & \"Süd\"\r\nBcc: victim@example.com";

fn line(id: &str, name: &str) -> AlertLine {
    AlertLine {
        agent_id: Some(id.to_string()),
        agent_name: Some(name.to_string()),
        version: Some("1.2.3".to_string()),
        value: "97d 3h".to_string(),
        threshold: "90d".to_string(),
        since: Timestamp::from_second(1_780_000_000).unwrap(),
        resolved_at: None,
        ..AlertLine::default()
    }
}

fn notification(id: &str) -> Notification {
    Notification {
        id: id.to_string(),
        group_key: "AgentTokenRotationOverdue/prod-us".to_string(),
        status: NotificationStatus::Firing,
        alertname: AlertName::AgentTokenRotationOverdue,
        severity: Severity::Critical,
        account: "prod-us".to_string(),
        provider: Some(Provider::Celigo),
        to: vec![
            "ops@example.com".to_string(),
            "oncall@example.com".to_string(),
        ],
        receivers: vec![],
        firing: vec![
            line("a1", EVIL_NAME),
            line("a2", "plain-agent"),
            line("a3", "dritter Agent"),
        ],
        resolved: vec![],
        created_at: Timestamp::now(),
        external_url: Some("http://exporter.example.com:9877".to_string()),
        muted: vec![],
        still_muted: 0,
        source_problem: None,
    }
}

/// Everything a received alert must satisfy, whatever the transport.
fn assert_alert_as_received(m: &Received) {
    let raw = m.raw_text();
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("[FIRING:3] AgentTokenRotationOverdue prod-us"),
        "message:\n{raw}"
    );
    let mut rcpt = m.rcpt_tos.clone();
    rcpt.sort();
    assert_eq!(
        rcpt,
        vec!["oncall@example.com", "ops@example.com"],
        "envelope recipients; message:\n{raw}"
    );
    let to = m.header("To").unwrap_or_default();
    assert!(
        to.contains("ops@example.com") && to.contains("oncall@example.com"),
        "To: {to}"
    );
    assert!(
        m.header("From")
            .unwrap_or_default()
            .contains("alerts@example.com"),
        "message:\n{raw}"
    );
    let head = raw.split("\r\n\r\n").next().unwrap();
    assert!(
        !head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
        "a header was injected:\n{head}"
    );

    let text = m
        .part("text/plain")
        .unwrap_or_else(|| panic!("no text part:\n{raw}"));
    let html = m
        .part("text/html")
        .unwrap_or_else(|| panic!("no HTML part:\n{raw}"));
    for who in ["a1", "a2", "a3", "plain-agent", "dritter Agent"] {
        assert!(text.contains(who), "text part lacks {who:?}:\n{text}");
        assert!(html.contains(who), "HTML part lacks {who:?}:\n{html}");
    }
    assert!(
        html.contains("&lt;b&gt;Lager&lt;/b&gt; &amp; &quot;Süd&quot;"),
        "the agent name is not escaped in HTML:\n{html}"
    );
    assert!(
        !html.contains("<b>Lager"),
        "raw markup from upstream in HTML:\n{html}"
    );
    assert!(
        html.contains("href=\"http://exporter.example.com:9877\""),
        "no link to the exporter:\n{html}"
    );
    assert!(
        html.contains("97d 3h / 90d"),
        "value / threshold missing:\n{html}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("Bcc:")),
        "a forged line in the text part:\n{text}"
    );
    assert!(
        !raw.contains(PASSWORD),
        "the SMTP password is in the message:\n{raw}"
    );
}

async fn deliver_and_check(mode: TlsMode, ca: Option<&TestCa>) {
    let server = SmtpServer::start(ServerOptions {
        mode,
        cert: ca.map(|c| (c.cert_file.as_path(), c.key_file.as_path())),
        auth: true,
        port: None,
    });
    let channel = EmailChannel::smtp(&email_config(mode, server.port, ca, true));
    channel
        .send_notification(&notification("0001-aa-1"))
        .await
        .unwrap_or_else(|e| panic!("delivery over {mode} failed: {e}"));
    let got = server.wait_for(1).await;
    assert_eq!(got.len(), 1, "messages received over {mode}");
    assert_eq!(
        got[0].auth_user.as_deref(),
        Some(USER),
        "the server saw no AUTH over {mode}"
    );
    assert_alert_as_received(&got[0]);
}

#[tokio::test]
async fn an_alert_arrives_over_plain_smtp_with_auth_readable_and_escaped() {
    deliver_and_check(TlsMode::None, None).await;
}

#[tokio::test]
async fn an_alert_arrives_over_starttls_with_auth_readable_and_escaped() {
    let ca = TestCa::new();
    deliver_and_check(TlsMode::Starttls, Some(&ca)).await;
}

#[tokio::test]
async fn an_alert_arrives_over_implicit_tls_with_auth_readable_and_escaped() {
    let ca = TestCa::new();
    deliver_and_check(TlsMode::Tls, Some(&ca)).await;
}

#[tokio::test]
async fn a_resolved_notice_says_resolved_in_the_subject() {
    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: false,
        port: None,
    });
    let mut n = notification("0001-aa-2");
    n.status = NotificationStatus::Resolved;
    n.resolved = std::mem::take(&mut n.firing);
    for l in &mut n.resolved {
        l.resolved_at = Some(Timestamp::now());
    }
    EmailChannel::smtp(&email_config(TlsMode::None, server.port, None, false))
        .send_notification(&n)
        .await
        .unwrap();
    let got = server.wait_for(1).await;
    assert_eq!(
        got[0].header("Subject").as_deref(),
        Some("[RESOLVED] AgentTokenRotationOverdue prod-us")
    );
    let text = got[0].part("text/plain").unwrap();
    assert!(
        text.contains("Resolved:") && text.contains("resolved 20"),
        "text:\n{text}"
    );
}

#[tokio::test]
async fn the_config_section_with_a_password_file_and_a_ca_file_delivers_over_starttls() {
    let ca = TestCa::new();
    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::Starttls,
        cert: Some((&ca.cert_file, &ca.key_file)),
        auth: true,
        port: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("smtp-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let yaml = format!(
        "smtp: {{ host: localhost, port: {}, tls: starttls, username: {USER}, password_file: {}, ca_file: {} }}\n\
         from: \"Agent alerts <alerts@example.com>\"\nto: [\"ops@example.com\"]\n",
        server.port,
        pw.display(),
        ca_file.display()
    );
    let raw: RawEmail = serde_saphyr::from_str(&yaml).unwrap();
    let cfg = raw
        .validate(std::path::Path::new("config.yaml"), "alerting.email")
        .unwrap_or_else(|e| panic!("{e}"));
    test_email(&cfg, None)
        .await
        .unwrap_or_else(|e| panic!("test-email failed: {e}"));
    let got = server.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_tos, vec!["ops@example.com"]);
    assert!(
        got[0].header("Subject").unwrap().starts_with("[TEST]"),
        "{}",
        got[0].raw_text()
    );
}

// ---- test-email diagnostics: each names its step ----

fn expect_step(result: Result<(), TestEmailError>, step: &str) -> SmtpError {
    match result {
        Err(TestEmailError::Smtp(e)) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("{step}:")),
                "expected the {step} step, got: {shown}"
            );
            assert!(
                !shown.contains(PASSWORD),
                "the password is in the error: {shown}"
            );
            e
        }
        other => panic!("expected an SMTP error at the {step} step, got {other:?}"),
    }
}

#[tokio::test]
async fn test_email_reports_a_refused_connection_as_the_connect_step_naming_host_and_port() {
    let port = free_port();
    let e = expect_step(
        test_email(&email_config(TlsMode::None, port, None, false), None).await,
        "connect",
    );
    assert!(e.to_string().contains(&format!("localhost:{port}")), "{e}");
}

#[tokio::test]
async fn test_email_reports_an_unknown_host_as_the_dns_step() {
    let mut cfg = email_config(TlsMode::None, 25, None, false);
    cfg.smtp.host = "no-such-host.invalid".to_string();
    let e = expect_step(test_email(&cfg, None).await, "dns");
    assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
}

#[tokio::test]
async fn test_email_reports_a_wrong_password_as_the_auth_step_naming_the_user() {
    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: None,
    });
    let mut cfg = email_config(TlsMode::None, server.port, None, true);
    cfg.smtp.credentials.as_mut().unwrap().password = "wrong-password".to_string().into();
    let e = expect_step(test_email(&cfg, None).await, "auth");
    assert!(e.to_string().contains(USER), "{e}");
    assert!(!e.to_string().contains("wrong-password"), "{e}");
}

#[tokio::test]
async fn test_email_reports_a_rejected_recipient_naming_the_address() {
    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: None,
    });
    let cfg = email_config(TlsMode::None, server.port, None, true);
    let e = expect_step(
        test_email(&cfg, Some("reject-me@example.com")).await,
        "recipient",
    );
    assert!(e.to_string().contains("reject-me@example.com"), "{e}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn test_email_reports_an_untrusted_certificate_as_the_tls_step() {
    let ca = TestCa::new();
    for mode in [TlsMode::Starttls, TlsMode::Tls] {
        let server = SmtpServer::start(ServerOptions {
            mode,
            cert: Some((&ca.cert_file, &ca.key_file)),
            auth: true,
            port: None,
        });
        // The client does not trust the test CA.
        let cfg = email_config(mode, server.port, None, true);
        expect_step(test_email(&cfg, None).await, "tls");
    }
}

#[tokio::test]
async fn a_ca_certificate_used_as_the_server_certificate_is_refused_even_when_trusted() {
    let ca = TestCa::new();
    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::Tls,
        cert: Some((&ca.ca_as_leaf_cert_file, &ca.ca_as_leaf_key_file)),
        auth: true,
        port: None,
    });
    let cfg = email_config(TlsMode::Tls, server.port, Some(&ca), true);
    expect_step(test_email(&cfg, None).await, "tls");
}

#[tokio::test]
async fn starttls_is_never_skipped_when_the_server_does_not_offer_it() {
    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: None,
    });
    let ca = TestCa::new();
    let cfg = email_config(TlsMode::Starttls, server.port, Some(&ca), true);
    expect_step(test_email(&cfg, None).await, "starttls");
    assert!(server.received().is_empty());
}

// ---- outage and restart through the outbox ----

fn fast_options() -> OutboxOptions {
    OutboxOptions {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        ..OutboxOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_an_smtp_outage_each_queued_email_arrives_exactly_once() {
    let port = free_port();
    let state_dir = tempfile::tempdir().unwrap();
    let outbox_dir = outbox::dir_for_state_file(&state_dir.path().join("state.json"));
    let ob = Arc::new(Outbox::open(&outbox_dir, fast_options()).unwrap());
    let channel = Arc::new(EmailChannel::smtp(&email_config(
        TlsMode::None,
        port,
        None,
        true,
    )));
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let worker = tokio::spawn(outbox::run(ob.clone(), channel.clone(), stopped));

    let ids = ["0001-aa-1", "0001-bb-1", "0001-cc-1"];
    let batch: Vec<Notification> = ids.iter().map(|id| notification(id)).collect();
    ob.enqueue(&batch).unwrap();
    // The engine hands the same notifications over again (a crash before its state write): still three.
    ob.enqueue(&batch).unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ob.metrics().failed() < 6 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ob.metrics().failed() >= 6,
        "failed attempts while SMTP is down: {}",
        ob.metrics().failed()
    );
    assert_eq!(ob.metrics().queue_length(), 3);

    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: Some(port),
    });
    let got = server.wait_for(3).await;
    // Let retries that could duplicate happen, then count again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got_after = server.received();
    assert_eq!(
        (got.len(), got_after.len()),
        (3, 3),
        "messages received after the outage"
    );
    let mut message_ids: Vec<String> = got_after
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    message_ids.sort();
    message_ids.dedup();
    assert_eq!(message_ids.len(), 3, "Message-IDs: {message_ids:?}");
    for m in &got_after {
        assert_alert_as_received(m);
    }
    assert_eq!((ob.metrics().sent(), ob.metrics().queue_length()), (3, 0));

    stop.cancel();
    worker.await.unwrap();
    drop(ob);

    // A restarted process that is handed the same notifications again sends nothing more.
    let ob = Arc::new(Outbox::open(&outbox_dir, fast_options()).unwrap());
    ob.enqueue(&batch).unwrap();
    assert!(
        ob.pending_ids().is_empty(),
        "pending after restart: {:?}",
        ob.pending_ids()
    );
    ob.deliver_due(channel.as_ref()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.received().len(), 3);
    for f in walk(&outbox_dir) {
        let content = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(
            !content.contains(PASSWORD),
            "the password is in outbox file {}",
            f.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

// ---- the compliance report ----

#[tokio::test]
async fn the_compliance_report_arrives_with_a_csv_attachment_listing_every_agent() {
    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: None,
    });
    let now = Timestamp::now();
    let mut agents = Vec::new();
    for (id, name, days) in [
        ("r1", "fresh", 3),
        ("r2", EVIL_NAME, 120),
        ("r3", "soon", 80),
    ] {
        let mut a = Agent::new(id, name);
        a.token_rotated = Some(now - jiff::SignedDuration::from_hours(24 * days));
        agents.push(a);
    }
    let mut s = SourceStatus::new("prod-us", Provider::Celigo);
    s.agents = Some(Arc::new(AgentList {
        polled_at: now,
        agents,
    }));
    s.up = true;
    s.polls = 1;
    let r = report::build(&[Arc::new(s)], TokenPolicy::default(), now);
    let cfg = email_config(TlsMode::None, server.port, None, true);
    report::send_now(&r, &["security@example.com".parse().unwrap()], &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = server.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.rcpt_tos, vec!["security@example.com"]);
    assert!(
        m.header("Message-ID")
            .is_some_and(|id| id.starts_with('<') && id.contains('@')),
        "the report has no Message-ID:\n{}",
        m.raw_text()
    );
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("[REPORT] Token rotation compliance: 1 overdue, 1 due soon of 3 agents"),
        "{}",
        m.raw_text()
    );
    let attachments = m.attachments();
    assert_eq!(attachments.len(), 1, "attachments: {attachments:?}");
    let (name, csv) = &attachments[0];
    assert!(
        name.starts_with("token-compliance-") && name.ends_with(".csv"),
        "{name}"
    );
    let rows: Vec<&str> = csv
        .split("\r\n")
        .filter(|l| l.starts_with("overdue") || l.starts_with("due soon") || l.starts_with("ok"))
        .collect();
    assert_eq!(rows.len(), 3, "csv:\n{csv}");
    assert!(
        rows[0].starts_with("overdue,prod-us,celigo,r2,"),
        "most urgent first:\n{csv}"
    );
    let html = m.part("text/html").unwrap();
    assert!(html.contains("&lt;b&gt;Lager&lt;/b&gt;"), "html:\n{html}");
    let text = m.part("text/plain").unwrap();
    assert!(
        text.contains("3 agents: 1 overdue, 1 due soon, 1 ok."),
        "text:\n{text}"
    );
}

// ---- the demo's file transport ----

#[tokio::test]
async fn the_file_transport_writes_one_readable_eml_file_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo-outbox");
    let channel = EmailChannel::file(
        &out,
        "Agent alerts <alerts@example.com>".parse().unwrap(),
        vec!["ops@example.com".parse().unwrap()],
    )
    .unwrap();
    channel
        .send_notification(&notification("0002-dd-1"))
        .await
        .unwrap();
    let files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "files: {files:?}");
    assert_eq!(files[0].extension().unwrap(), "eml");
    let m = Received {
        raw: std::fs::read(&files[0]).unwrap(),
        rcpt_tos: vec!["ops@example.com".into(), "oncall@example.com".into()],
        auth_user: None,
    };
    assert_alert_as_received(&m);
}

// ---- secrets in logs ----

/// A `MakeWriter` that keeps everything logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_smtp_password_appears_in_no_log_line_at_trace_level() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let ob = Arc::new(Outbox::open(dir.path(), fast_options()).unwrap());
    ob.enqueue(&[notification("0003-ee-1")]).unwrap();
    let good = EmailChannel::smtp(&email_config(TlsMode::None, server.port, None, true));
    let mut bad_cfg = email_config(TlsMode::None, server.port, None, true);
    bad_cfg.smtp.credentials.as_mut().unwrap().password = format!("{PASSWORD}-but-wrong").into();
    let bad = EmailChannel::smtp(&bad_cfg);
    ob.deliver_due(&bad).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    ob.deliver_due(&good).await;
    tracing::debug!(config = ?good, "channel");

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("will retry"),
        "the failed attempt was not logged:\n{text}"
    );
    assert!(
        text.contains("delivered"),
        "the delivery was not logged:\n{text}"
    );
    assert!(
        !text.contains(PASSWORD),
        "the password is in the logs:\n{text}"
    );
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn test_email_gives_up_on_a_silent_server_within_the_timeout_naming_the_greeting_step() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts connections and never says a word.
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let mut cfg = email_config(TlsMode::None, port, None, false);
    cfg.smtp.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let e = expect_step(test_email(&cfg, None).await, "greeting");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}: {e}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_notification_sent_again_after_a_lost_record_carries_the_same_message_id() {
    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: false,
        port: None,
    });
    let channel = EmailChannel::smtp(&email_config(TlsMode::None, server.port, None, false));
    // The same notification twice, as the outbox sends it again when a crash lost the record of the first send.
    let n = notification("0001-aa-7");
    for _ in 0..2 {
        channel.send_notification(&n).await.expect("delivered");
    }
    channel
        .send_notification(&notification("0001-aa-8"))
        .await
        .expect("delivered");
    let got = server.wait_for(3).await;
    let ids: Vec<String> = got
        .iter()
        .map(|m| m.header("Message-ID").unwrap_or_default())
        .collect();
    assert!(!ids[0].is_empty(), "{ids:?}");
    assert_eq!(ids[0], ids[1], "the idempotency key of a re-sent mail");
    assert_ne!(ids[1], ids[2], "another notification, another Message-ID");
}
