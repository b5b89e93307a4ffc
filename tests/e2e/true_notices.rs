//! A notice speaks only of what its recipients were told: a stale online agent is mailed (through aiosmtpd) and
//! posted to a webhook while two offline agents' stale alerts stay inhibited; when it recovers, the notice is
//! `[RESOLVED] … (2 still muted)`, never `[FIRING:0]`, and the webhook's status follows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use onprem_agent_exporter::config::email::TlsMode;
use serde_json::json;

use crate::support::fake_upstream::{FakeUpstream, Reply, ago};
use crate::support::http_sink::HttpSink;
use crate::support::process::TestExporter;
use crate::support::smtp::{PASSWORD, Received, ServerOptions, SmtpServer, USER};
use crate::support::wait::wait_until;

/// The fleet: `s1` online and silent for an hour until `recovered`, `o1` and `o2` offline and silent for days.
fn fleet(recovered: bool) -> Reply {
    let record = |id: &str, offline: bool, heartbeat: String| {
        json!({
            "_id": id,
            "name": format!("etl-{id}"),
            "offline": offline,
            "lastHeartbeatAt": heartbeat,
            "createdAt": "2024-06-01T08:00:00.000Z",
        })
    };
    Reply::json(json!([
        record("s1", false, if recovered { ago(1) } else { ago(3600) }),
        record("o1", true, ago(3 * 86_400)),
        record("o2", true, ago(4 * 86_400)),
    ]))
}

fn subjects(mails: &[Received]) -> Vec<String> {
    mails
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_told_alert_recovered_is_resolved_with_the_muted_ones_counted_never_firing_0()
{
    let recovered = Arc::new(AtomicBool::new(false));
    let r = recovered.clone();
    let upstream = FakeUpstream::route(move |_| fleet(r.load(Ordering::SeqCst))).await;
    let smtp = SmtpServer::start(ServerOptions {
        mode: TlsMode::None,
        cert: None,
        auth: true,
        port: None,
    });
    let hook = HttpSink::start(0, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("token"), "t0k3n\n").unwrap();
    std::fs::write(p.join("smtp-password"), format!("{PASSWORD}\n")).unwrap();
    // AgentOffline waits out a long `for`, pending: it inhibits the offline agents' stale alerts all along.
    let config = format!(
        "listen_address: 127.0.0.1:0\n\
         sources:\n\
         \x20 - {{ name: etl-prod, provider: celigo, base_url: \"{base}\", token_file: token, poll_interval: 1s, \
         max_attempts: 1 }}\n\
         alerting:\n\
         \x20 state_file: {state}\n\
         \x20 evaluation_interval: 200ms\n\
         \x20 retry_initial_backoff: 200ms\n\
         \x20 group_wait: 1s\n\
         \x20 group_interval: 1s\n\
         \x20 repeat_interval: 1h\n\
         \x20 rules:\n\
         \x20   agent_offline: {{ for: 1h }}\n\
         \x20   token_rotation: {{ enabled: false }}\n\
         \x20   source_down: {{ for: 1h }}\n\
         \x20 receivers:\n\
         \x20   - name: hook\n\
         \x20     webhook: {{ url: \"{hook}\" }}\n\
         \x20 default_receivers: [hook]\n\
         \x20 email:\n\
         \x20   smtp: {{ host: 127.0.0.1, port: {smtp}, tls: none, username: {USER}, password_file: {pw}, timeout: 5s }}\n\
         \x20   from: \"Agent alerts <alerts@example.com>\"\n\
         \x20   to: [\"ops@example.com\"]\n",
        base = upstream.base.as_str().trim_end_matches('/'),
        state = p.join("state.json").display(),
        hook = hook.url("/hook"),
        smtp = smtp.port,
        pw = p.join("smtp-password").display(),
    );
    std::fs::write(p.join("config.yaml"), config).unwrap();
    let exp = TestExporter::start(&p.join("config.yaml"), p.join("exporter.log"));
    let seen = || {
        format!(
            "mails: {:?}\nwebhook: {}\n{}",
            subjects(&smtp.received()),
            hook.summary(),
            exp.log_tail()
        )
    };

    let first = smtp.wait_for(1).await;
    assert_eq!(
        subjects(&first),
        ["[FIRING:1] AgentHeartbeatStale etl-prod"],
        "only s1 is told; o1 and o2 are inhibited: {}",
        seen()
    );
    let text = first[0].part("text/plain").unwrap_or_default();
    assert!(
        text.contains("etl-s1") && !text.contains("etl-o1"),
        "{text}"
    );
    wait_until(
        "the firing webhook",
        async || (!hook.requests().is_empty()).then_some(()),
        seen,
    )
    .await;

    recovered.store(true, Ordering::SeqCst);
    let mails = smtp.wait_for(2).await;
    let subjects = subjects(&mails);
    assert_eq!(
        subjects[1],
        "[RESOLVED] AgentHeartbeatStale etl-prod (2 still muted)",
        "{}",
        seen()
    );
    assert!(
        subjects.iter().all(|s| !s.starts_with("[FIRING:0]")),
        "{subjects:?}"
    );
    let webhook = wait_until(
        "the resolved webhook",
        async || {
            let posts = hook.requests();
            (posts.len() >= 2).then_some(posts)
        },
        seen,
    )
    .await;
    let statuses: Vec<&str> = webhook
        .iter()
        .map(|r| r.json["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"], "{}", seen());
    let alerts = webhook[1].json["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "only s1, which was told: {alerts:#?}");
    assert_eq!(alerts[0]["labels"]["agent_id"], "s1");
    assert_eq!(alerts[0]["status"], "resolved");
    // Nothing more: the inhibited alerts stay quiet while they are muted.
    exp.quiet_period(Duration::from_secs(2), seen).await;
    assert_eq!(smtp.received().len(), 2, "{}", seen());
}
