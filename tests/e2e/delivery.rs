//! Delivery per destination, with the real binary: three webhook receivers that accept the connection and never
//! answer hold up only their own messages, and the first email still reaches Debian's aiosmtpd on time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use onprem_agent_exporter::sim::SimOptions;
use tokio::net::TcpListener;

use crate::support::process::TestExporter;
use crate::support::simulator::spawn_sim;
use crate::support::smtp::{PASSWORD, ServerOptions, SmtpServer, USER};
use crate::support::wait::wait_until;

const API_TOKEN: &str = "delivery-api-key-3e9b71c04d2a58f6";

/// A receiver that accepts TCP connections, reads nothing and never answers; counts the connections it holds.
struct BlackHole {
    port: u16,
    held: Arc<AtomicUsize>,
}

impl BlackHole {
    async fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = Arc::new(AtomicUsize::new(0));
        let count = held.clone();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                // Kept open, never read or written: the request hangs until the client gives up.
                open.push(socket);
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        BlackHole { port, held }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_email_arrives_on_time_while_three_webhooks_never_answer() {
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let server = SmtpServer::start(ServerOptions {
        mode: onprem_agent_exporter::config::email::TlsMode::None,
        cert: None,
        auth: true,
        port: None,
    });
    let holes = [
        BlackHole::start().await,
        BlackHole::start().await,
        BlackHole::start().await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("token"), format!("{API_TOKEN}\n")).unwrap();
    std::fs::write(p.join("smtp-password"), format!("{PASSWORD}\n")).unwrap();
    // The default fleet has offline agents: AgentOffline fires first and goes only to the three hung webhooks. Then
    // the source fails, and SourceDown goes only to email.
    let config = format!(
        "listen_address: 127.0.0.1:0\n\
         sources:\n\
         \x20 - name: e2e\n\
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
         \x20 group_interval: 1h\n\
         \x20 repeat_interval: 1h\n\
         \x20 rules:\n\
         \x20   heartbeat_stale: {{ enabled: false }}\n\
         \x20   token_rotation: {{ enabled: false }}\n\
         \x20   agent_offline: {{ for: 1s }}\n\
         \x20   source_down: {{ for: 1s }}\n\
         \x20 receivers:\n\
         \x20   - {{ name: hook-1, webhook: {{ url: \"http://127.0.0.1:{h1}/a\" }} }}\n\
         \x20   - {{ name: hook-2, webhook: {{ url: \"http://127.0.0.1:{h2}/b\" }} }}\n\
         \x20   - {{ name: hook-3, webhook: {{ url: \"http://127.0.0.1:{h3}/c\" }} }}\n\
         \x20 routes:\n\
         \x20   - {{ alertname: AgentOffline, receivers: [hook-1, hook-2, hook-3] }}\n\
         \x20 email:\n\
         \x20   smtp: {{ host: 127.0.0.1, port: {smtp}, tls: none, username: {USER}, password_file: {pw}, timeout: 5s }}\n\
         \x20   from: \"Agent alerts <alerts@example.com>\"\n\
         \x20   to: [\"ops@example.com\"]\n",
        sim = sim.addr,
        token = p.join("token").display(),
        state = p.join("state.json").display(),
        pw = p.join("smtp-password").display(),
        smtp = server.port,
        h1 = holes[0].port,
        h2 = holes[1].port,
        h3 = holes[2].port,
    );
    std::fs::write(p.join("config.yaml"), config).unwrap();
    let exp = TestExporter::start(&p.join("config.yaml"), p.join("exporter.log"));
    let seen = || {
        let held: Vec<usize> = holes
            .iter()
            .map(|h| h.held.load(Ordering::SeqCst))
            .collect();
        format!(
            "connections held by the webhooks: {held:?}; emails: {}\n--- exporter log (tail) ---\n{}",
            server.received().len(),
            exp.log_tail()
        )
    };
    wait_until(
        "all three webhooks holding a request that never gets an answer",
        async || {
            holes
                .iter()
                .all(|h| h.held.load(Ordering::SeqCst) >= 1)
                .then_some(())
        },
        seen,
    )
    .await;
    assert!(
        server.received().is_empty(),
        "an email before the source failed: {}",
        seen()
    );

    let failed_at = Instant::now();
    sim.sim.control().set_status_override(Some(500));
    let mail = wait_until(
        "the SourceDown email",
        async || server.received().into_iter().next(),
        seen,
    )
    .await;
    let took = failed_at.elapsed();
    let subject = mail.header("Subject").unwrap_or_default();
    assert!(
        subject.contains("SourceDown"),
        "first email: {subject:?}\n{}",
        seen()
    );
    // The failing poll (up to 1 s), `for` (1 s), `group_wait` (1 s) and a few seconds of slack for a loaded machine;
    // the hung webhooks (10 s timeout each) would have held it up for 30 s and more had they shared one queue.
    assert!(
        took < Duration::from_secs(9),
        "the first email took {took:?} after the source failed\n{}",
        seen()
    );
    assert!(
        holes.iter().all(|h| h.held.load(Ordering::SeqCst) >= 1),
        "{}",
        seen()
    );
}
