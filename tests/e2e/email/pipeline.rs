//! The whole alert path on real parts: the rule engine evaluates a snapshot, hands its notifications to the outbox,
//! and the outbox delivers them to aiosmtpd; then the token is rotated and the resolved notice follows; then a
//! restarted engine and outbox send nothing twice.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use onprem_agent_exporter::config::alerting::RawAlerting;
use onprem_agent_exporter::config::email::TlsMode;
use onprem_agent_exporter::domain::{Agent, AgentList, Provider};
use onprem_agent_exporter::notify::NotificationSink;
use onprem_agent_exporter::notify::email::EmailChannel;
use onprem_agent_exporter::notify::outbox::{self, Outbox, OutboxOptions};
use onprem_agent_exporter::rules::runner::{run_once, start_engine};
use onprem_agent_exporter::status::{Registry, SourceStatus};

use crate::support::smtp::{PASSWORD, ServerOptions, SmtpServer, USER};

fn publish(registry: &Registry, now: Timestamp, token_age_days: i64) {
    let mut a = Agent::new("a1", "<i>Lager</i> Süd");
    a.last_heartbeat = Some(now);
    a.token_rotated = Some(now - SignedDuration::from_hours(24 * token_age_days));
    a.version = Some("4.2.0".into());
    let mut s = SourceStatus::new("prod-us", Provider::Celigo);
    s.agents = Some(Arc::new(AgentList {
        polled_at: now,
        agents: vec![a],
    }));
    s.up = true;
    s.polls = 1;
    s.last_success = Some(now);
    s.last_attempt = Some(now);
    registry.publish(0, s);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overdue_token_alert_goes_from_the_engine_through_the_outbox_to_smtp_and_resolves_once()
{
    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state.json");
    let pw = dir.path().join("smtp-password");
    std::fs::write(&pw, PASSWORD).unwrap();
    let yaml = format!(
        "state_file: {}\nexternal_url: http://exporter.example.com:9877\ngroup_wait: 0s\ngroup_interval: 1m\n\
         email:\n  smtp: {{ host: localhost, port: {}, tls: none, username: {USER}, password_file: {} }}\n  \
         from: \"Agent alerts <alerts@example.com>\"\n  to: [\"ops@example.com\"]\n",
        state_file.display(),
        server.port,
        pw.display()
    );
    let raw: RawAlerting = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let cfg = raw
        .validate(std::path::Path::new("config.yaml"), "alerting")
        .unwrap_or_else(|e| panic!("{e}"));
    let channel = EmailChannel::smtp(
        cfg.email
            .as_ref()
            .expect("the test config has an email section"),
    );
    let outbox_dir = outbox::dir_for_state_file(&state_file);

    let registry = Registry::new([("prod-us", Provider::Celigo)]);
    // Rounds a minute apart; each round sees a fresh poll (the agent keeps heartbeating), so only the token rule
    // can fire.
    let mut now = Timestamp::now();
    {
        let engine = start_engine(cfg.engine.clone());
        let ob = Arc::new(Outbox::open(&outbox_dir, OutboxOptions::default()).unwrap());
        let sink: Arc<dyn NotificationSink> = ob.clone();
        for _ in 0..5 {
            publish(&registry, now, 120);
            run_once(&engine, &registry, &sink, &state_file, now).await;
            ob.deliver_due(&channel).await;
            now += SignedDuration::from_mins(1);
        }
        let got = server.wait_for(1).await;
        assert_eq!(
            got.len(),
            1,
            "firing notices: {:?}",
            got.iter().map(|m| m.header("Subject")).collect::<Vec<_>>()
        );
        assert_eq!(
            got[0].header("Subject").as_deref(),
            Some("[FIRING:1] AgentTokenRotationOverdue prod-us")
        );
        let html = got[0].part("text/html").unwrap();
        assert!(
            html.contains("&lt;i&gt;Lager&lt;/i&gt; Süd"),
            "html:\n{html}"
        );
        assert!(html.contains("4.2.0"), "html:\n{html}");
        assert_eq!(got[0].rcpt_tos, vec!["ops@example.com"]);

        // The token is rotated: one resolved notice follows.
        for _ in 0..10 {
            publish(&registry, now, 1);
            run_once(&engine, &registry, &sink, &state_file, now).await;
            ob.deliver_due(&channel).await;
            now += SignedDuration::from_mins(1);
        }
        let got = server.wait_for(2).await;
        let subjects: Vec<Option<String>> = got.iter().map(|m| m.header("Subject")).collect();
        assert_eq!(
            subjects,
            vec![
                Some("[FIRING:1] AgentTokenRotationOverdue prod-us".to_string()),
                Some("[RESOLVED] AgentTokenRotationOverdue prod-us".to_string())
            ]
        );
    }

    // A restart from the state file and the outbox sends nothing again.
    let engine = start_engine(cfg.engine.clone());
    let ob = Arc::new(Outbox::open(&outbox_dir, OutboxOptions::default()).unwrap());
    let sink: Arc<dyn NotificationSink> = ob.clone();
    for _ in 0..5 {
        publish(&registry, now, 1);
        run_once(&engine, &registry, &sink, &state_file, now).await;
        ob.deliver_due(&channel).await;
        now += SignedDuration::from_mins(1);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after: Vec<(Option<String>, Option<String>)> = server
        .received()
        .iter()
        .map(|m| (m.header("Subject"), m.header("Message-ID")))
        .collect();
    assert_eq!(after.len(), 2, "a restart sent more mail: {after:?}");
    let state = std::fs::read_to_string(&state_file).unwrap();
    assert!(
        !state.contains(PASSWORD),
        "the password is in the state file"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_enqueue_and_state_save_sends_no_duplicate_after_restart() {
    let server = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: false,
        port: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state.json");
    let yaml = format!(
        "state_file: {}\ngroup_wait: 0s\n\
         email:\n  smtp: {{ host: localhost, port: {}, tls: none }}\n  \
         from: \"Agent alerts <alerts@example.com>\"\n  to: [\"ops@example.com\"]\n",
        state_file.display(),
        server.port,
    );
    let raw: RawAlerting = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let cfg = raw
        .validate(std::path::Path::new("config.yaml"), "alerting")
        .unwrap_or_else(|e| panic!("{e}"));
    let channel = EmailChannel::smtp(
        cfg.email
            .as_ref()
            .expect("the test config has an email section"),
    );
    let outbox_dir = outbox::dir_for_state_file(&state_file);
    let registry = Registry::new([("prod-us", Provider::Celigo)]);
    let mut now = Timestamp::now();

    // A healthy round writes the state file; keep a copy of it, as a crash would leave it.
    let engine = start_engine(cfg.engine.clone());
    let ob = Arc::new(Outbox::open(&outbox_dir, OutboxOptions::default()).unwrap());
    let sink: Arc<dyn NotificationSink> = ob.clone();
    publish(&registry, now, 1);
    run_once(&engine, &registry, &sink, &state_file, now).await;
    let before = std::fs::read(&state_file).ok();

    // The token is overdue: the notification is enqueued and delivered; then the process "dies" before the saved
    // state matters: the old state file is put back.
    now += SignedDuration::from_mins(1);
    publish(&registry, now, 120);
    let mut rounds = 0;
    while server.received().is_empty() && rounds < 5 {
        run_once(&engine, &registry, &sink, &state_file, now).await;
        ob.deliver_due(&channel).await;
        rounds += 1;
    }
    assert_eq!(
        server.wait_for(1).await.len(),
        1,
        "the firing notice did not arrive"
    );
    drop((engine, sink, ob));
    match &before {
        Some(bytes) => std::fs::write(&state_file, bytes).unwrap(),
        None => std::fs::remove_file(&state_file).unwrap(),
    }

    // The restarted engine produces the same notification again; the outbox knows its id.
    let engine = start_engine(cfg.engine.clone());
    let ob = Arc::new(Outbox::open(&outbox_dir, OutboxOptions::default()).unwrap());
    let sink: Arc<dyn NotificationSink> = ob.clone();
    for _ in 0..rounds {
        run_once(&engine, &registry, &sink, &state_file, now).await;
        ob.deliver_due(&channel).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let subjects: Vec<Option<String>> = server
        .received()
        .iter()
        .map(|m| m.header("Subject"))
        .collect();
    assert_eq!(
        subjects,
        vec![Some(
            "[FIRING:1] AgentTokenRotationOverdue prod-us".to_string()
        )]
    );
}
