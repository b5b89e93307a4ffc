//! `demo`: three simulators (Celigo, Planasonix, Calyptia) and the exporter in one process, with no config file and
//! no account, so a newcomer sees the whole product working on a mixed fleet with one command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::alerting::Alerting;
use crate::app::{AppError, Exporter};
use crate::config::alerting::{DEFAULT_RETRY_INITIAL_BACKOFF, EngineConfig};
use crate::config::reports::ReportsConfig;
use crate::config::sources::SourceConfig;
use crate::domain::Provider;
use crate::notify::NotifyError;
use crate::notify::email::EmailChannel;
use crate::server::AppState;
use crate::sim::{SimOptions, Simulator};

/// How the demo starts.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the exporter listens (the simulator takes a free port on 127.0.0.1).
    pub listen: SocketAddr,
    /// Agents in each simulated fleet.
    pub agents: usize,
    /// Time between polls. Short, so that the demo visibly moves.
    pub poll_interval: Duration,
    /// Where alert emails are written, one `.eml` file each.
    pub outbox: PathBuf,
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 9877)),
            agents: 25,
            poll_interval: Duration::from_secs(10),
            outbox: PathBuf::from("demo-outbox"),
        }
    }
}

/// One simulated account of the demo: the source name, the provider and the simulator's seed.
const ACCOUNTS: [(&str, Provider, u64); 3] = [
    ("demo-us", Provider::Celigo, crate::sim::DEFAULT_SEED),
    (
        "etl-prod",
        Provider::Planasonix,
        crate::sim::DEFAULT_SEED + 1,
    ),
    ("logging", Provider::Calyptia, crate::sim::DEFAULT_SEED + 2),
];

/// Runs the demo until `shutdown` is cancelled: one simulator per provider (Celigo, Planasonix with health polling,
/// Calyptia), each with `opts.agents` agents, and one exporter polling all three, so the dashboard shows a mixed
/// fleet. Prints the URLs to open on stdout once every server listens.
pub async fn run(opts: DemoOptions, shutdown: CancellationToken) -> Result<(), AppError> {
    // Bind the exporter first: a busy port is the likeliest failure and should be reported before anything starts.
    let listener = crate::app::bind(opts.listen).await?;
    let exporter_addr = listener.local_addr().map_err(|source| AppError::Bind {
        addr: opts.listen,
        source,
    })?;

    let mut tasks = JoinSet::new();
    let mut sources = Vec::with_capacity(ACCOUNTS.len());
    let mut upstreams = Vec::with_capacity(ACCOUNTS.len());
    for (name, provider, seed) in ACCOUNTS {
        let sim_bind = SocketAddr::from(([127, 0, 0, 1], 0));
        let sim_listener = crate::app::bind(sim_bind).await?;
        let sim_addr = sim_listener.local_addr().map_err(|source| AppError::Bind {
            addr: sim_bind,
            source,
        })?;
        // A fresh random key per run: nothing outside this process needs to know it.
        let simulator = Simulator::new(SimOptions {
            provider,
            agents: opts.agents,
            seed,
            token: format!("demo-{:032x}", rand::random::<u128>()),
            ..SimOptions::default()
        });
        let base_url =
            Url::parse(&format!("http://{sim_addr}")).expect("a socket address makes a valid URL");
        let mut source = SourceConfig::new(
            name,
            provider,
            base_url,
            SecretString::from(simulator.api_token().to_string()),
        );
        source.poll_interval = opts.poll_interval;
        source.request_timeout = Duration::from_secs(5).min(opts.poll_interval);
        source.health = provider == Provider::Planasonix;
        sources.push(source);
        upstreams.push(Upstream {
            account: name,
            provider,
            base: format!("http://{sim_addr}"),
            list_path: simulator.list_path(),
            token: simulator.api_token().to_string(),
        });

        let stop = shutdown.clone().cancelled_owned();
        tasks.spawn(async move {
            if let Err(e) = simulator.serve(sim_listener, stop).await {
                tracing::error!(error = %e, "the simulator stopped");
            }
            format!("{provider} simulator")
        });
    }

    let exporter = Exporter::new(&sources)?;
    exporter.spawn_pollers(&mut tasks, &shutdown);

    let base = format!("http://{exporter_addr}");
    // The rule engine runs with short demo timings; its mail goes to .eml files instead of an SMTP server.
    let mut state = AppState::new(exporter.registry.clone());
    // One process owns every source, as `run` without `--shard` says it: 0 of 1.
    state.metrics.register_shard(&crate::domain::Shard::ALL);
    let state_dir =
        std::env::temp_dir().join(format!("onprem-agent-exporter-demo-{}", std::process::id()));
    let to = "Operations <ops@demo.invalid>"
        .parse()
        .expect("a valid mailbox");
    let from = "Agent alerts <alerts@demo.invalid>"
        .parse()
        .expect("a valid mailbox");
    let channel = EmailChannel::file(&opts.outbox, from, vec![to]).map_err(|source| {
        AppError::Alerting(NotifyError::Outbox {
            path: opts.outbox.clone(),
            source,
        })
    })?;
    let mut engine = EngineConfig::demo(
        state_dir.join("state.json"),
        vec!["ops@demo.invalid".to_string()],
    );
    // So the demo's mails link back to its status page, as a configured exporter's do.
    engine.external_url = Some(base.clone());
    let alerting = Alerting::start(
        engine,
        DEFAULT_RETRY_INITIAL_BACKOFF,
        &ReportsConfig::default(),
        Some(Arc::new(channel)),
        exporter.registry.clone(),
        &mut tasks,
        &shutdown,
    )?;
    // Its alerts are simulated: let a visitor on this machine try silences, but nobody else.
    state.writes_open = opts.listen.ip().is_loopback();
    let routes = crate::app::attach(&mut state, alerting);
    // One write, once everything has started: a log line printed in between would split the banner.
    print!("{}", banner(&base, opts.agents, &upstreams, &opts.outbox));
    let result = crate::app::serve_with_tasks(
        listener,
        &crate::web::Web::plain(),
        crate::server::router(state, Some(routes)),
        tasks,
        shutdown,
    )
    .await;
    // The state file and the outbox's queue are the demo's alone; nothing should outlive it in /tmp.
    if let Err(e) = std::fs::remove_dir_all(&state_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %state_dir.display(), error = %e, "cannot remove the demo's temporary folder");
    }
    result
}

/// One simulated upstream as the banner lists it.
struct Upstream {
    /// The account name.
    account: &'static str,
    /// The provider.
    provider: Provider,
    /// The simulator's base URL.
    base: String,
    /// The agent list's path.
    list_path: String,
    /// The simulator's API key: a random, fake credential of this process's own simulator, printed so the reader
    /// can break the source through the control endpoint.
    token: String,
}

/// The text the demo prints on start: what to open, where the upstreams are and how to make one fail.
fn banner(base: &str, agents: usize, upstreams: &[Upstream], outbox: &std::path::Path) -> String {
    let mut b = format!(
        "onprem-agent-exporter demo: simulated Celigo, Planasonix and Calyptia fleets of {agents} agents each\n\
         \x20 status:   {base}/\n\
         \x20 metrics:  {base}/metrics\n\
         \x20 agents:   {base}/api/v1/agents\n\
         \x20 alerts:   {base}/api/v1/alerts\n\
         \x20 ready:    {base}/readyz\n"
    );
    for u in upstreams {
        b.push_str(&format!(
            "  upstream: {}{} ({} simulator, account {})\n",
            u.base, u.list_path, u.provider, u.account
        ));
    }
    b.push_str(&format!(
        "  emails:   {} (one .eml file per message)\n",
        outbox.display()
    ));
    if let Some(u) = upstreams.first() {
        b.push_str(&format!(
            "To see an outage, make account {} fail (and {{\"status\":null}} to end it):\n  \
             curl -X PUT -H 'Authorization: Bearer {}' -d '{{\"status\":500}}' {}/_sim/control\n",
            u.account, u.token, u.base
        ));
    }
    b.push_str("Press Ctrl-C to stop.\n");
    b
}
