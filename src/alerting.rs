//! Wires the alerting half into a running process: the rule engine's loop, the durable outbox and its delivery
//! worker, the scheduled reports, and what the HTTP server shows of them (metrics, the landing page section and
//! the `/api/v1/alerts` and `/api/v1/silences` routes).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use jiff::Timestamp;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::alerting::EngineConfig;
use crate::config::alerting::Rules;
use crate::config::reports::ReportsConfig;
use crate::domain::Silence;
use crate::metrics::{self, names};
use crate::notify::outbox::{self, Deliver, Outbox, OutboxOptions};
use crate::notify::{NotificationSink, NotifyError};
use crate::page::AlertsPanel;
use crate::rules::api;
use crate::rules::dispatch::nflog::{self, HandedOver, Recording};
use crate::rules::engine::{AlertCounts, Published, SharedEngine, Snapshot, lock};
use crate::rules::health::{self, StateHealth};
use crate::rules::silences::SilenceStore;
use crate::rules::views::views;
use crate::server::{LandingSection, ReadinessCheck};
use crate::status::Registry;

/// The running alerting half, as the HTTP server sees it.
pub struct Alerting {
    /// The engine, shared with its loop and the API.
    pub engine: SharedEngine,
    /// The outbox, shared with its delivery worker.
    pub outbox: Arc<Outbox>,
    /// Alert counts as of the last evaluation. Scrapes read these instead of locking the engine, which at a large
    /// fleet can be busy evaluating for a good fraction of a second.
    counts: Arc<ArcSwap<AlertCounts>>,
    /// Whether the silence API takes `POST` and `DELETE` (`--web.enable-admin-api`); false until
    /// [`crate::app::attach`] copies [`crate::server::AppState::writes_open`] here.
    pub writes_open: bool,
    /// Whether the state file can be written lately; shared with the engine's loop.
    health: Arc<StateHealth>,
    /// The alerts as of the last evaluation, for the status page.
    published: Published,
    /// The silences, for the status page.
    silences: Arc<SilenceStore>,
    /// The default rules, whose thresholds the status page shows.
    rules: Rules,
}

impl Alerting {
    /// Loads the state, opens the outbox next to the state file, and starts the engine loop (every
    /// `engine_config.evaluation_interval`), the delivery worker (first retry after `retry_initial_backoff`) and
    /// (when configured) the report schedule on `tasks`. Without a `channel` (no `alerting.email`) the engine's
    /// notifications are dropped: the alerts themselves reach people through the Alertmanagers.
    pub fn start(
        engine_config: EngineConfig,
        retry_initial_backoff: Duration,
        reports: &ReportsConfig,
        channel: Option<Arc<dyn Deliver>>,
        registry: Arc<Registry>,
        tasks: &mut JoinSet<String>,
        shutdown: &CancellationToken,
    ) -> Result<Alerting, NotifyError> {
        let outbox = Arc::new(Outbox::open(
            outbox::dir_for_state_file(&engine_config.state_file),
            OutboxOptions {
                initial_backoff: retry_initial_backoff,
                ..OutboxOptions::default()
            },
        )?);
        let interval = engine_config.evaluation_interval;
        let health = Arc::new(StateHealth::new(Timestamp::now()));
        let handed_over = Arc::new(HandedOver::open(nflog::path_beside(
            &engine_config.state_file,
        )));
        let engine = crate::rules::runner::start_engine_with(engine_config, &health, || {
            // Migration: a first start after an upgrade has no record yet; what the outbox last delivered stands in.
            if handed_over.is_empty() {
                outbox.notified()
            } else {
                handed_over.last()
            }
        });
        let (counts, published, silences, rules) = {
            let e = lock(&engine);
            (
                e.published_counts(),
                e.published(),
                Arc::clone(e.silence_store()),
                e.config().rules.clone(),
            )
        };

        let delivery: Arc<dyn NotificationSink> = match channel {
            Some(_) => outbox.clone(),
            None => Arc::new(NoChannel),
        };
        let sink: Arc<dyn NotificationSink> = Arc::new(Recording {
            inner: delivery,
            log: handed_over,
        });
        let (e, r, h, stop) = (
            engine.clone(),
            registry.clone(),
            health.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            crate::rules::runner::run(e, r, sink, interval, h, stop).await;
            "rule engine".to_string()
        });
        if let Some(channel) = channel {
            let (o, stop) = (outbox.clone(), shutdown.clone());
            tasks.spawn(async move {
                outbox::run(o, channel, stop).await;
                "notification delivery".to_string()
            });
        }
        if let Some(tc) = reports.token_compliance.clone() {
            let (r, o, stop) = (registry, outbox.clone(), shutdown.clone());
            tasks.spawn(async move {
                crate::report::run_schedule(tc, r, o, stop).await;
                "report schedule".to_string()
            });
        }
        Ok(Alerting {
            engine,
            outbox,
            counts,
            writes_open: false,
            health,
            published,
            silences,
            rules,
        })
    }

    /// The `/api/v1/alerts` and `/api/v1/silences` routes. Silence writes depend only on the silences file: the
    /// store answers 503 when it cannot write it, whatever the state file's trouble.
    pub fn router(&self) -> Router {
        api::router(self.engine.clone(), self.writes_open)
    }

    /// The collector of the alerting half's families, for the exporter's metrics registry.
    pub fn collector(&self) -> AlertingCollector {
        AlertingCollector {
            counts: self.counts.clone(),
            outbox: self.outbox.clone(),
            health: self.health.clone(),
        }
    }

    /// What the alerting half cannot do now, one sentence each: queue notifications, save its state. Empty when all
    /// is well. `/readyz` answers 503 with these, and the landing page shows them.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(p) = self.outbox.metrics().enqueue_problem() {
            out.push(format!(
                "notifications cannot be queued ({p}); they are retried every evaluation"
            ));
        }
        if let Some(p) = self.health.problem() {
            out.push(format!(
                "the alert state cannot be saved ({p}); the engine keeps it in memory and tries again every evaluation"
            ));
        }
        out
    }
}

impl ReadinessCheck for Alerting {
    fn problems(&self) -> Vec<String> {
        Alerting::problems(self)
    }
}

/// The label set of a family with one unlabelled gauge sample.
const NO_LABELS: [(&str, &str); 0] = [];

/// The engine's sink when no channel renders notifications (only Alertmanagers are configured): accepts and drops.
struct NoChannel;

impl NotificationSink for NoChannel {
    fn enqueue(&self, _: &[crate::domain::Notification]) -> Result<(), crate::domain::SinkError> {
        Ok(())
    }
}

/// The rule engine's and the outbox's families: alert counts, notifications sent and the outbox's length.
pub struct AlertingCollector {
    /// The counts the engine published after its last evaluation; read without the engine's lock.
    counts: Arc<ArcSwap<AlertCounts>>,
    /// The outbox, for its delivery counters and length (plain atomics).
    outbox: Arc<Outbox>,
    /// The state file's save record (plain atomics).
    health: Arc<StateHealth>,
}

impl fmt::Debug for AlertingCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertingCollector").finish_non_exhaustive()
    }
}

impl Collector for AlertingCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let counts = self.counts.load();
        let mut fam = metrics::family(
            &mut encoder,
            names::ALERTS,
            "Alerts of the built-in rule engine by name, severity and state (pending or firing).",
            MetricType::Gauge,
        )?;
        for (alertname, severity, state, n) in counts.iter() {
            let labels = [
                ("alertname", alertname.as_str()),
                ("severity", severity.as_str()),
                ("state", *state),
            ];
            fam.encode_family(&labels)?.encode_gauge(n)?;
        }
        let m = self.outbox.metrics();
        let mut fam = metrics::family(
            &mut encoder,
            names::NOTIFICATIONS,
            outbox::NOTIFICATIONS_TOTAL_HELP,
            MetricType::Counter,
        )?;
        for (channel, outcome, n) in m.totals() {
            let labels = [("channel", channel), ("outcome", outcome)];
            fam.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
        metrics::family(
            &mut encoder,
            names::NOTIFICATION_QUEUE,
            outbox::NOTIFICATION_QUEUE_LENGTH_HELP,
            MetricType::Gauge,
        )?
        .encode_gauge(&m.queue_length())?;
        metrics::family(
            &mut encoder,
            names::NOTIFICATION_ENQUEUE_FAILURES,
            outbox::ENQUEUE_FAILURES_HELP,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, _, u64>(&m.enqueue_failures(), None)?;
        let mut fam = metrics::family(
            &mut encoder,
            names::NOTIFICATION_LAST_ENQUEUE,
            outbox::LAST_ENQUEUE_HELP,
            MetricType::Gauge,
        )?;
        metrics::gauge(&mut fam, &NO_LABELS, m.last_enqueue_seconds())?;
        metrics::family(
            &mut encoder,
            names::STATE_SAVE_FAILURES,
            health::SAVE_FAILURES_HELP,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, _, u64>(&self.health.save_failures(), None)?;
        let mut fam = metrics::family(
            &mut encoder,
            names::STATE_LAST_SAVE,
            health::LAST_SAVE_HELP,
            MetricType::Gauge,
        )?;
        metrics::gauge(&mut fam, &NO_LABELS, self.health.last_save_seconds())?;
        metrics::family(
            &mut encoder,
            names::STATE_CORRUPT,
            health::CORRUPT_HELP,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, _, u64>(&self.health.corrupt_files(), None)
    }
}

impl LandingSection for Alerting {
    fn contribute(&self, now: Timestamp, page: &mut crate::page::PageData) {
        let rules = &self.rules;
        page.thresholds.heartbeat_stale_after = rules.heartbeat_after;
        page.thresholds.token.max_age = rules.token_max_age;
        page.thresholds.token.warn_before = rules.token_warn_before;
        page.alerts = Some(alerts_panel(
            &self.published.load(),
            &self.silences.snapshot(),
            self.writes_open,
            now,
        ));
        page.problems.extend(self.problems());
        let m = self.outbox.metrics();
        let health = page.notifications.get_or_insert_with(Default::default);
        health.queued = m.queue_length();
        health.sent = m.sent();
        health.failed = m.failed();
        // Per destination, the newest of its last failed attempt (why the queue grows) and its last refusal for
        // good. Names, status codes and error chains only; a receiver's URL or key never reaches the page.
        let failures = self.outbox.last_errors().into_iter();
        let refusals = self.outbox.rejections().into_iter().map(|r| {
            (
                format!("{} ({})", r.receiver, r.channel.as_str()),
                r.at,
                format!(
                    "answered HTTP {} for {}; refused for good, not retried",
                    r.status, r.group_key
                ),
            )
        });
        for (channel, at, why) in failures.chain(refusals) {
            match health.channels.iter_mut().find(|c| c.channel == channel) {
                Some(c) => {
                    if c.last_failure.as_ref().is_none_or(|(t, _)| *t < at) {
                        c.last_failure = Some((at, why));
                    }
                }
                None => health.channels.push(crate::page::ChannelHealth {
                    channel,
                    last_failure: Some((at, why)),
                }),
            }
        }
    }
}

/// The status page's alerts data: every alert not yet resolved, the number of active silences, and whether the
/// silence API takes writes (`writes_open`, from `--web.enable-admin-api`). The page groups, orders and escapes them
/// ([`crate::page`]). Reads the published `snapshot` and `silences`, never the engine.
pub fn alerts_panel(
    snapshot: &Snapshot,
    silences: &[Silence],
    writes_open: bool,
    now: Timestamp,
) -> AlertsPanel {
    AlertsPanel {
        alerts: views(&snapshot.alerts, silences, now)
            .into_iter()
            .filter(|a| a.state != "resolved")
            .collect(),
        active_silences: silences.iter().filter(|s| s.is_active(now)).count(),
        writes_open,
    }
}
