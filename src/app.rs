//! Wires the pieces into a running exporter: one poller task per source, the HTTP server, and (when configured)
//! the rule engine and notifier. Also the one-shot `once` mode.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alerting::Alerting;
use crate::config::Config;
use crate::config::sources::SourceConfig;
use crate::server::AppState;
use crate::sources::{BuildError, Source};
use crate::status::Registry;
use crate::web::Web;

/// Why the exporter could not start or stopped unexpectedly.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A source's client could not be built.
    #[error(transparent)]
    Source(#[from] BuildError),
    /// The HTTP server failed.
    #[error("the HTTP server stopped: {0}")]
    Server(#[source] std::io::Error),
    /// The alerting half could not start (outbox directory, state file).
    #[error("cannot start alerting: {0}")]
    Alerting(#[from] crate::notify::NotifyError),
    /// The HTTP client of the Slack, Teams, PagerDuty and webhook receivers could not be built.
    #[error("cannot set up the notification receivers: {0}")]
    Receivers(#[from] crate::notify::http::HttpError),
    /// An Alertmanager's HTTP client could not be built.
    #[error("cannot start the Alertmanager channel: {0}")]
    Alertmanager(#[from] crate::notify::alertmanager::PushError),
    /// A background task ended although no shutdown was requested.
    #[error("the {0} task stopped unexpectedly")]
    TaskStopped(String),
}

/// The sources of a config and the registry their pollers publish into.
pub struct Exporter {
    /// One client per configured source, in config order.
    pub sources: Vec<Arc<dyn Source>>,
    /// The configured sources, parallel to `sources`.
    pub configs: Vec<SourceConfig>,
    /// Where pollers publish and readers read.
    pub registry: Arc<Registry>,
}

impl Exporter {
    /// Builds every source's client. Fails on the first source that cannot be built.
    pub fn new(configs: &[SourceConfig]) -> Result<Exporter, BuildError> {
        let sources = configs
            .iter()
            .map(crate::sources::build)
            .collect::<Result<Vec<_>, _>>()?;
        let registry = Arc::new(Registry::new(
            configs.iter().map(|c| (c.name.as_str(), c.provider)),
        ));
        Ok(Exporter {
            sources,
            configs: configs.to_vec(),
            registry,
        })
    }

    /// Starts one poller per source on `tasks`.
    pub fn spawn_pollers(&self, tasks: &mut JoinSet<String>, shutdown: &CancellationToken) {
        for (i, (source, cfg)) in self.sources.iter().zip(&self.configs).enumerate() {
            let (source, registry, shutdown) =
                (source.clone(), self.registry.clone(), shutdown.clone());
            let interval = cfg.poll_interval;
            let label = format!("poller for source {}", cfg.name);
            tasks.spawn(async move {
                crate::poller::run(source, registry, i, interval, shutdown).await;
                label
            });
        }
    }

    /// Polls every source once, concurrently, and returns the names and errors of the sources that failed.
    pub async fn poll_all_once(&self) -> Vec<(String, String)> {
        let mut tasks = JoinSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            let (source, registry) = (source.clone(), self.registry.clone());
            tasks.spawn(
                async move { crate::poller::poll_once(source.as_ref(), &registry, i).await },
            );
        }
        while tasks.join_next().await.is_some() {}
        self.registry
            .snapshot()
            .iter()
            .filter(|s| !s.up)
            .map(|s| {
                let msg = s
                    .last_error
                    .as_ref()
                    .map_or("unknown error".to_string(), |e| {
                        format!("{}: {}", e.reason, e.message)
                    });
                (s.name.clone(), msg)
            })
            .collect()
    }
}

/// Binds `addr`, naming it in the error.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })
}

/// Runs the exporter for `config` on `listener` until `shutdown` is cancelled.
///
/// Returns an error if the server or a background task stops on its own: a poller that died silently would freeze
/// its source's metrics, which is worse than exiting and being restarted.
pub async fn run(
    config: &Config,
    web: &Web,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    let owned = owned_sources(config);
    let exporter = Exporter::new(&owned)?;
    let mut tasks = JoinSet::new();
    exporter.spawn_pollers(&mut tasks, &shutdown);
    let mut state = AppState::new(exporter.registry.clone());
    state.writes_open = web.admin_api();
    if web.admin_api() && !web.requires_auth() {
        tracing::warn!(
            "--web.enable-admin-api is set and the web config has no basic_auth_users: anyone who reaches the port \
             can create and delete silences"
        );
    }
    state.metrics.register_shard(&config.shard);
    state.sections.push(Arc::new(config.shard));
    let mut routes = None;
    if let Some(alerting) = &config.alerting {
        let channel = (alerting.email.is_some() || !alerting.receivers.is_empty())
            .then(|| {
                crate::notify::dispatch::Channels::new(
                    alerting
                        .email
                        .as_ref()
                        .map(crate::notify::email::EmailChannel::smtp),
                    &alerting.receivers,
                )
                .map(|c| Arc::new(c) as Arc<dyn crate::notify::outbox::Deliver>)
            })
            .transpose()?;
        let running = Alerting::start(
            alerting.engine.clone(),
            alerting.retry_initial_backoff,
            &config.reports,
            channel,
            exporter.registry.clone(),
            &mut tasks,
            &shutdown,
        )?;
        if !alerting.alertmanagers.is_empty() {
            let ams = crate::notify::alertmanager::Alertmanagers::start(
                &alerting.alertmanagers,
                running.engine.clone(),
                alerting.resend_delay,
                &mut tasks,
                &shutdown,
            )?;
            state.metrics.register_collector(Box::new(ams.collector()));
        }
        routes = Some(attach(&mut state, running));
    }
    serve_with_tasks(
        listener,
        web,
        crate::server::router(state, routes),
        tasks,
        shutdown,
    )
    .await
}

/// The sources of `config` its shard owns, in config order (all of them when not sharded).
pub fn owned_sources(config: &Config) -> Vec<SourceConfig> {
    config
        .sources
        .iter()
        .filter(|s| config.shard.owns(&s.name))
        .cloned()
        .collect()
}

/// Adds a running alerting half to the server state (metrics, landing section) and returns its API routes.
pub fn attach(state: &mut AppState, mut alerting: Alerting) -> axum::Router {
    alerting.writes_open = state.writes_open;
    let routes = alerting.router();
    let alerting = Arc::new(alerting);
    state
        .metrics
        .register_collector(Box::new(alerting.collector()));
    state.checks.push(alerting.clone());
    state.sections.push(alerting);
    routes
}

/// How long the background tasks have to end on their own at shutdown before they are aborted: longer than a
/// notification channel's request timeout, so that a message being sent is finished and not sent twice.
pub const TASKS_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// Serves `app` while `tasks` run; returns when shutdown is requested or something stops on its own.
pub async fn serve_with_tasks(
    listener: TcpListener,
    web: &Web,
    app: axum::Router,
    mut tasks: JoinSet<String>,
    shutdown: CancellationToken,
) -> Result<(), AppError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, scheme = web.scheme(), basic_auth = web.requires_auth(), "listening");
    }
    let server = web.serve(listener, app, shutdown.clone());
    tokio::pin!(server);
    loop {
        tokio::select! {
            result = &mut server => {
                // Every task watches `shutdown` and ends on its own (the rule engine saves its state, the outbox
                // finishes the messages it is sending); only one still running after the grace period is aborted.
                shutdown.cancel();
                let ended = async { while tasks.join_next().await.is_some() {} };
                if tokio::time::timeout(TASKS_GRACE, ended).await.is_err() {
                    tracing::warn!(grace = ?TASKS_GRACE, "background tasks still running at shutdown; aborting them");
                }
                tasks.shutdown().await;
                return result.map_err(AppError::Server);
            }
            Some(done) = tasks.join_next() => {
                if shutdown.is_cancelled() {
                    continue;
                }
                let what = match done {
                    Ok(label) => label,
                    Err(e) => format!("background ({e})"),
                };
                tracing::error!(task = %what, "a background task stopped unexpectedly");
                return Err(AppError::TaskStopped(what));
            }
        }
    }
}
