//! The Alertmanager channel: pushes every firing alert, and every alert that resolved in the last 15 minutes, to
//! each listed Alertmanager with `POST /api/v2/alerts`, keeping the contract Prometheus keeps (`rules/alerting.go`,
//! `notifier/`).
//!
//! - A firing alert is sent when it starts firing, then again every `resend_delay`, with `startsAt` = when it fired
//!   (from the state file, so it survives restarts) and `endsAt = now + 4 × max(evaluation_interval,
//!   resend_delay)`: Alertmanager resolves it on its own if the exporter goes away for that long.
//! - A resolved alert is sent at once with `endsAt` = when it resolved, then every `resend_delay` for
//!   [`RESOLVED_RETENTION`], so that an Alertmanager that missed one push still learns it.
//! - Inhibited and silenced alerts are sent too: with Alertmanager, inhibition and silences are its job.
//! - Labels identify the alert and nothing else (`alertname`, `severity`, `account`, `provider`, and `agent_id`,
//!   `agent_name` for agent alerts); values and thresholds change every evaluation and go into the catalog's
//!   `summary`, `description` and `runbook` annotations ([`crate::domain::catalog`], the same as on every other path), or
//!   Alertmanager would see a new alert each time.
//!
//! Each Alertmanager has its own bounded queue ([`QUEUE_CAPACITY`], oldest dropped first and counted), its own
//! batches ([`MAX_BATCH`]) and its own timeout, on its own task: a dead one never delays another. A failed batch is
//! counted and not retried, as in Prometheus: the next resend (at most `resend_delay` later) carries the same alerts,
//! and `endsAt` leaves room for several failures.
//!
//! [`Tracker`] decides what is due from the engine's state and `now`, without I/O, so tests drive it with any clock.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::alertmanagers::{AlertmanagerAuth, AlertmanagerConfig};
use crate::domain::{Alert, AlertKey, AlertState};
use crate::metrics::{self, names};
use crate::rules::engine::{Published, SharedEngine, lock};
use crate::telemetry::error_chain;

/// How long a resolved alert keeps being re-sent: Prometheus's `resolvedRetention`.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// The most alerts waiting for one Alertmanager; beyond it the oldest are dropped and counted. Prometheus's
/// `--alertmanager.notification-queue-capacity` default: a fleet of thousands of alerts fits, and a dead
/// Alertmanager cannot grow the process without bound.
pub const QUEUE_CAPACITY: usize = 10_000;

/// The most alerts in one `POST`, as Prometheus's `maxBatchSize`.
pub const MAX_BATCH: usize = 64;

/// One alert in the body of `POST /api/v2/alerts` (`postableAlert` in Alertmanager's `api/v2/openapi.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// `alertname`, `severity`, `account`, `provider` (+ `agent_id`, `agent_name`).
    pub labels: BTreeMap<&'static str, String>,
    /// `summary`, `description` and `runbook`, from [`crate::domain::catalog`].
    pub annotations: BTreeMap<&'static str, String>,
    /// When the alert fired.
    pub starts_at: Timestamp,
    /// When it resolved, or until when it is valid if not re-sent.
    pub ends_at: Timestamp,
    /// A link to the agent or source on the exporter's page; absent without `alerting.external_url`.
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// What the tracker remembers of one alert it has sent.
#[derive(Debug, Clone)]
struct Sent {
    /// The alert as last sent (its `ends_at` is recomputed on each send).
    alert: PostableAlert,
    /// When it was last pushed.
    last_sent: Timestamp,
    /// When it resolved; `None` while firing.
    resolved_at: Option<Timestamp>,
}

/// Decides which alerts are due for Alertmanager, as Prometheus's `needsSending`. Holds one entry per firing alert
/// and per alert resolved in the last [`RESOLVED_RETENTION`], so it is bounded by the engine's own alert count.
#[derive(Debug)]
pub struct Tracker {
    /// See [`RawAlerting::resend_delay`](crate::config::alerting::RawAlerting::resend_delay).
    resend_delay: Duration,
    /// `4 × max(evaluation_interval, resend_delay)`.
    validity: Duration,
    /// `alerting.external_url`, without a trailing slash.
    external_url: Option<String>,
    /// What was sent, by alert.
    sent: BTreeMap<AlertKey, Sent>,
}

impl Tracker {
    /// A tracker that has sent nothing yet.
    pub fn new(
        resend_delay: Duration,
        evaluation_interval: Duration,
        external_url: Option<String>,
    ) -> Tracker {
        Tracker {
            resend_delay,
            validity: 4 * resend_delay.max(evaluation_interval),
            external_url,
            sent: BTreeMap::new(),
        }
    }

    /// Returns the alerts due at `now`, given every alert the engine holds: firing ones that are new or were last
    /// sent `resend_delay` ago, alerts that stopped firing since the last call, and resolved ones to repeat.
    pub fn due<'a>(
        &mut self,
        alerts: impl IntoIterator<Item = (&'a AlertKey, &'a Alert)>,
        now: Timestamp,
    ) -> Vec<PostableAlert> {
        let mut firing = BTreeMap::new();
        for (k, a) in alerts {
            match (a.state, a.fired_at) {
                (AlertState::Firing, Some(fired)) => {
                    firing.insert(k.clone(), self.postable(a, fired));
                }
                (AlertState::Resolved, _) => {
                    if let (Some(s), Some(at)) = (self.sent.get_mut(k), a.resolved_at) {
                        s.resolved_at.get_or_insert(at);
                    }
                }
                _ => {}
            }
        }
        let resend = SignedDuration::try_from(self.resend_delay).unwrap_or(SignedDuration::MAX);
        let validity = SignedDuration::try_from(self.validity).unwrap_or(SignedDuration::MAX);
        let retention = SignedDuration::try_from(RESOLVED_RETENTION).unwrap_or(SignedDuration::MAX);
        let mut out = Vec::new();
        for (k, alert) in firing.iter() {
            let entry = self.sent.get(k);
            let fresh = entry
                .is_none_or(|s| s.resolved_at.is_some() || s.alert.starts_at != alert.starts_at);
            if fresh
                || entry.is_some_and(|s| s.last_sent.saturating_add(resend).is_ok_and(|t| t <= now))
            {
                let mut alert = alert.clone();
                alert.ends_at = now.saturating_add(validity).unwrap_or(Timestamp::MAX);
                out.push(alert.clone());
                self.sent.insert(
                    k.clone(),
                    Sent {
                        alert,
                        last_sent: now,
                        resolved_at: None,
                    },
                );
            } else if let Some(s) = self.sent.get_mut(k) {
                // Values change every evaluation; the next resend carries the latest.
                s.alert.annotations = alert.annotations.clone();
            }
        }
        self.sent.retain(|k, s| {
            if firing.contains_key(k) {
                return true;
            }
            let newly = s.resolved_at.is_none() || s.alert.ends_at != s.resolved_at.unwrap_or(now);
            let resolved_at = *s.resolved_at.get_or_insert(now);
            if resolved_at
                .saturating_add(retention)
                .is_ok_and(|t| t <= now)
            {
                return false;
            }
            if newly || s.last_sent.saturating_add(resend).is_ok_and(|t| t <= now) {
                s.alert.ends_at = resolved_at;
                s.last_sent = now;
                out.push(s.alert.clone());
            }
            true
        });
        out
    }

    /// The alert as Alertmanager gets it, `ends_at` still to be set.
    fn postable(&self, a: &Alert, fired: Timestamp) -> PostableAlert {
        let mut labels = BTreeMap::from([
            ("alertname", a.alertname.as_str().to_string()),
            ("severity", a.severity.as_str().to_string()),
            ("account", a.account.clone()),
            ("provider", a.provider.to_string()),
        ]);
        if let Some(id) = &a.agent_id {
            labels.insert("agent_id", id.clone());
            labels.insert("agent_name", a.agent_name.clone().unwrap_or_default());
        }
        let detail = if a.summary.is_empty() {
            &a.value
        } else {
            &a.summary
        };
        let annotations = crate::domain::catalog::annotations(&crate::domain::catalog::Subject {
            alertname: a.alertname.as_str(),
            account: &a.account,
            provider: a.provider.as_str(),
            agent_id: a.agent_id.as_deref(),
            agent_name: a.agent_name.as_deref(),
            detail,
        });
        PostableAlert {
            labels,
            annotations,
            starts_at: fired,
            ends_at: fired,
            generator_url: self
                .external_url
                .as_deref()
                .map(|base| generator_url(base, a)),
        }
    }
}

/// The exporter's status page, pointed at the agent's row (`#agent-<account>-<id>`, the link emails carry too) or
/// the source's row (`#source-<account>`).
pub fn generator_url(base: &str, a: &Alert) -> String {
    let link = match &a.agent_id {
        Some(id) => crate::rules::dispatch::lines::agent_link(base, &a.account, id),
        None => crate::rules::dispatch::lines::source_link(base, &a.account),
    };
    link.unwrap_or_else(|| base.to_string())
}

/// Counters and gauges of one Alertmanager, plain atomics read by the collector.
#[derive(Debug, Default)]
pub struct QueueMetrics {
    /// Alerts an Alertmanager accepted.
    pub sent: AtomicU64,
    /// Alerts in batches that failed (connection, timeout, non-2xx).
    pub errors: AtomicU64,
    /// Alerts dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Unix time in milliseconds of the last accepted batch; 0 before the first.
    pub last_success_ms: AtomicU64,
}

/// One Alertmanager: its client, its queue and its counters.
pub struct Target {
    /// `…/api/v2/alerts`.
    endpoint: String,
    /// The base URL as configured, the `alertmanager` label value. Never carries credentials (the config rejects
    /// them).
    pub label: String,
    /// The client, with this Alertmanager's timeout and CA.
    client: reqwest::Client,
    /// The credentials.
    auth: AlertmanagerAuth,
    /// Alerts waiting; a `std` mutex because it is never held across an `.await`.
    queue: Mutex<VecDeque<PostableAlert>>,
    /// Wakes the sender when alerts are queued.
    wake: Notify,
    /// Sent, errors, dropped, last success.
    pub metrics: QueueMetrics,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Why a batch did not reach an Alertmanager.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The HTTP client could not be built (a bad CA file).
    #[error("cannot build the HTTP client for Alertmanager {url}: {source}")]
    Client {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// Connection, timeout or body error.
    #[error("POST {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The Alertmanager answered with an error status.
    #[error("POST {url}: HTTP {status}")]
    Status { url: String, status: u16 },
}

impl Target {
    /// A target for `cfg`, with an empty queue.
    pub fn new(cfg: &AlertmanagerConfig) -> Result<Target, PushError> {
        let label = cfg.url.as_str().trim_end_matches('/').to_string();
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(concat!("onprem-agent-exporter/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &cfg.ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|source| PushError::Client {
                    url: label.clone(),
                    source,
                })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder.build().map_err(|source| PushError::Client {
            url: label.clone(),
            source,
        })?;
        Ok(Target {
            endpoint: format!("{label}/api/v2/alerts"),
            label,
            client,
            auth: cfg.auth.clone(),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            metrics: QueueMetrics::default(),
        })
    }

    /// Queues `alerts`, dropping the oldest beyond [`QUEUE_CAPACITY`], and wakes the sender.
    pub fn push(&self, alerts: &[PostableAlert]) {
        if alerts.is_empty() {
            return;
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.extend(alerts.iter().cloned());
        let over = q.len().saturating_sub(QUEUE_CAPACITY);
        if over > 0 {
            q.drain(..over);
            self.metrics
                .dropped
                .fetch_add(over as u64, Ordering::Relaxed);
            tracing::warn!(alertmanager = %self.label, dropped = over, "Alertmanager queue full; dropped the oldest alerts");
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Alerts waiting.
    pub fn queue_length(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Takes up to [`MAX_BATCH`] alerts off the queue.
    fn next_batch(&self) -> Vec<PostableAlert> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let n = q.len().min(MAX_BATCH);
        q.drain(..n).collect()
    }

    /// Sends one batch.
    pub async fn post(&self, batch: &[PostableAlert]) -> Result<(), PushError> {
        let mut req = self.client.post(&self.endpoint).json(batch);
        req = match &self.auth {
            AlertmanagerAuth::None => req,
            AlertmanagerAuth::Basic { username, password } => {
                req.basic_auth(username, Some(password.expose_secret()))
            }
            AlertmanagerAuth::Bearer(t) => req.bearer_auth(t.expose_secret()),
        };
        let resp = req.send().await.map_err(|source| PushError::Request {
            url: self.endpoint.clone(),
            source: source.without_url(),
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(PushError::Status {
                url: self.endpoint.clone(),
                status: status.as_u16(),
            });
        }
        Ok(())
    }

    /// Sends whatever is queued, batch after batch, until `shutdown` turns true.
    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let batch = self.next_batch();
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
            let n = batch.len() as u64;
            match self.post(&batch).await {
                Ok(()) => {
                    self.metrics.sent.fetch_add(n, Ordering::Relaxed);
                    let ms = Timestamp::now().as_millisecond().max(0) as u64;
                    self.metrics.last_success_ms.store(ms, Ordering::Relaxed);
                }
                Err(e) => {
                    self.metrics.errors.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(alertmanager = %self.label, alerts = n, error = %error_chain(&e), "cannot push alerts to Alertmanager; the next resend carries them");
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
        }
    }
}

/// The running Alertmanager channel, as the metrics registry sees it.
#[derive(Debug, Clone)]
pub struct Alertmanagers {
    /// One per configured Alertmanager, in config order.
    pub targets: Arc<Vec<Arc<Target>>>,
}

impl Alertmanagers {
    /// Builds one target per Alertmanager and starts, on `tasks`, one sender per target and the loop that reads
    /// the engine every `evaluation_interval` and queues what is due to every target.
    pub fn start(
        configs: &[AlertmanagerConfig],
        engine: SharedEngine,
        resend_delay: Duration,
        tasks: &mut JoinSet<String>,
        shutdown: &CancellationToken,
    ) -> Result<Alertmanagers, PushError> {
        let targets: Vec<Arc<Target>> = configs
            .iter()
            .map(|c| Target::new(c).map(Arc::new))
            .collect::<Result<_, _>>()?;
        for t in &targets {
            let (t, stop) = (t.clone(), shutdown.clone());
            let label = format!("Alertmanager sender for {}", t.label);
            tasks.spawn(async move {
                t.run(stop).await;
                label
            });
        }
        let (interval, external_url, published) = {
            let e = lock(&engine);
            (
                e.config().evaluation_interval,
                e.config().external_url.clone(),
                e.published(),
            )
        };
        let tracker = Tracker::new(resend_delay, interval, external_url);
        let all = Arc::new(targets);
        let (t, stop) = (all.clone(), shutdown.clone());
        tasks.spawn(async move {
            feed(published, tracker, t, interval, stop).await;
            "Alertmanager feed".to_string()
        });
        Ok(Alertmanagers { targets: all })
    }

    /// The collector of the per-Alertmanager families.
    pub fn collector(&self) -> AlertmanagerCollector {
        AlertmanagerCollector {
            targets: self.targets.clone(),
        }
    }
}

/// Every `interval`, queues what the tracker says is due to every target, until `shutdown` turns true. Reads the
/// alerts the engine published after its last evaluation; never waits on an evaluation.
async fn feed(
    published: Published,
    mut tracker: Tracker,
    targets: Arc<Vec<Arc<Target>>>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let snapshot = published.load_full();
        let due = tracker.due(pushable(&snapshot.alerts), Timestamp::now());
        for t in targets.iter() {
            t.push(&due);
        }
    }
}

/// The engine's alerts that Alertmanager should see: all of them, except `AgentHeartbeatStale` for an agent whose
/// `AgentOffline` is pending or firing. That is not inhibition (Alertmanager's job, which it could not do during
/// the pending window it never sees) but the rule's own meaning: an agent the platform reports offline is covered by
/// `AgentOffline` only, as in the Prometheus rules of `alerts/` (`unless … onprem_agent_offline == 1`).
pub fn pushable(alerts: &BTreeMap<AlertKey, Alert>) -> impl Iterator<Item = (&AlertKey, &Alert)> {
    let covered = crate::rules::dispatch::inhibit::covered_by_agent_offline(alerts);
    alerts.iter().filter(move |(k, _)| !covered(k))
}

/// A counter family of [`AlertmanagerCollector`]: its name, its HELP and the counter it reads.
type CounterFamily = (&'static str, &'static str, fn(&QueueMetrics) -> &AtomicU64);

/// `onprem_agent_alertmanager_*{alertmanager}`.
pub struct AlertmanagerCollector {
    /// The targets, whose counters are atomics.
    targets: Arc<Vec<Arc<Target>>>,
}

impl fmt::Debug for AlertmanagerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerCollector")
            .finish_non_exhaustive()
    }
}

impl Collector for AlertmanagerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let counters: [CounterFamily; 3] = [
            (
                names::ALERTMANAGER_SENT,
                "Alerts an Alertmanager accepted, by Alertmanager.",
                |m| &m.sent,
            ),
            (
                names::ALERTMANAGER_ERRORS,
                "Alerts in pushes to an Alertmanager that failed (connection, timeout or error status), by Alertmanager.",
                |m| &m.errors,
            ),
            (
                names::ALERTMANAGER_DROPPED,
                "Alerts dropped because an Alertmanager's queue was full, by Alertmanager.",
                |m| &m.dropped,
            ),
        ];
        for (name, help, field) in counters {
            let mut fam = metrics::family(&mut encoder, name, help, MetricType::Counter)?;
            for t in self.targets.iter() {
                let n = field(&t.metrics).load(Ordering::Relaxed);
                fam.encode_family(&[("alertmanager", t.label.as_str())])?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        let mut fam = metrics::family(
            &mut encoder,
            names::ALERTMANAGER_QUEUE,
            "Alerts waiting to be pushed to an Alertmanager, by Alertmanager.",
            MetricType::Gauge,
        )?;
        for t in self.targets.iter() {
            metrics::gauge(
                &mut fam,
                &[("alertmanager", t.label.as_str())],
                t.queue_length() as f64,
            )?;
        }
        let mut fam = metrics::family(
            &mut encoder,
            names::ALERTMANAGER_LAST_SUCCESS,
            "Unix time of the last push an Alertmanager accepted (0 before the first), by Alertmanager.",
            MetricType::Gauge,
        )?;
        for t in self.targets.iter() {
            let ms = t.metrics.last_success_ms.load(Ordering::Relaxed);
            metrics::gauge(
                &mut fam,
                &[("alertmanager", t.label.as_str())],
                ms as f64 / 1000.0,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AlertName;
    use crate::domain::Severity;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn alert(name: AlertName, agent: Option<&str>, state: AlertState, fired: i64) -> Alert {
        Alert {
            alertname: name,
            account: "prod".into(),
            provider: crate::domain::Provider::Celigo,
            agent_id: agent.map(str::to_string),
            agent_name: agent.map(|a| format!("name-{a}")),
            version: Some("1.2.3".into()),
            severity: Severity::Critical,
            value: "12m".into(),
            threshold: "10m".into(),
            value_seconds: Some(720),
            threshold_seconds: Some(600),
            summary: "last heartbeat 12 min ago; limit 10 min".into(),
            state,
            active_at: t(fired - 60),
            fired_at: Some(t(fired)),
            keep_firing_since: None,
            resolved_at: None,
        }
    }

    fn map(alerts: &[Alert]) -> BTreeMap<AlertKey, Alert> {
        alerts.iter().map(|a| (a.key(), a.clone())).collect()
    }

    #[test]
    fn staleness_of_an_agent_whose_offline_alert_is_pending_or_firing_is_never_pushed() {
        for offline_state in [AlertState::Pending, AlertState::Firing] {
            let alerts = map(&[
                alert(AlertName::AgentOffline, Some("a"), offline_state, 0),
                alert(
                    AlertName::AgentHeartbeatStale,
                    Some("a"),
                    AlertState::Firing,
                    0,
                ),
                alert(
                    AlertName::AgentHeartbeatStale,
                    Some("b"),
                    AlertState::Firing,
                    0,
                ),
            ]);
            let kept: Vec<(AlertName, String)> = pushable(&alerts)
                .map(|(k, _)| (k.alertname, k.agent_id.clone()))
                .collect();
            assert_eq!(
                kept,
                vec![
                    (AlertName::AgentHeartbeatStale, "b".to_string()),
                    (AlertName::AgentOffline, "a".to_string()),
                ],
                "AgentOffline {offline_state:?}"
            );
        }
        let resolved = map(&[
            alert(AlertName::AgentOffline, Some("a"), AlertState::Resolved, 0),
            alert(
                AlertName::AgentHeartbeatStale,
                Some("a"),
                AlertState::Firing,
                0,
            ),
        ]);
        assert_eq!(
            pushable(&resolved).count(),
            2,
            "a resolved AgentOffline covers nothing"
        );
    }

    #[test]
    fn a_firing_alert_carries_identity_labels_values_in_annotations_and_an_absolute_link() {
        let mut tr = Tracker::new(
            Duration::from_secs(60),
            Duration::from_secs(5),
            Some("https://exp.example.com:9877".into()),
        );
        let alerts = map(&[alert(
            AlertName::AgentOffline,
            Some("a 1"),
            AlertState::Firing,
            0,
        )]);
        let due = tr.due(&alerts, t(10));
        assert_eq!(due.len(), 1, "{due:?}");
        let a = &due[0];
        let labels: Vec<(&str, &str)> = a.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            labels,
            [
                ("account", "prod"),
                ("agent_id", "a 1"),
                ("agent_name", "name-a 1"),
                ("alertname", "AgentOffline"),
                ("provider", "celigo"),
                ("severity", "critical")
            ]
        );
        assert_eq!(a.starts_at, t(0));
        assert_eq!(a.ends_at, t(10 + 240), "4 × max(5s, 60s) after now");
        assert_eq!(
            a.generator_url.as_deref(),
            Some("https://exp.example.com:9877/#agent-prod-a%201")
        );
        assert!(
            a.annotations["description"].contains("last heartbeat 12 min ago; limit 10 min"),
            "{:?}",
            a.annotations
        );
        assert_eq!(
            a.annotations.keys().copied().collect::<Vec<_>>(),
            ["description", "runbook", "summary"]
        );
        let json = serde_json::to_value(a).unwrap();
        for key in [
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
    }

    #[test]
    fn firing_alerts_are_resent_every_resend_delay_and_resolved_ones_for_fifteen_minutes() {
        let mut tr = Tracker::new(Duration::from_secs(60), Duration::from_secs(5), None);
        let mut a = alert(AlertName::SourceDown, None, AlertState::Firing, 0);
        assert_eq!(tr.due(&map(&[a.clone()]), t(0)).len(), 1);
        assert!(
            tr.due(&map(&[a.clone()]), t(30)).is_empty(),
            "not before resend_delay"
        );
        assert_eq!(tr.due(&map(&[a.clone()]), t(60)).len(), 1);
        // The engine resolves it at 90 s: sent at once with endsAt = resolved_at.
        a.state = AlertState::Resolved;
        a.resolved_at = Some(t(88));
        let due = tr.due(&map(&[a.clone()]), t(90));
        assert_eq!((due.len(), due[0].ends_at), (1, t(88)), "{due:?}");
        assert!(tr.due(&BTreeMap::new(), t(100)).is_empty());
        let again = tr.due(&BTreeMap::new(), t(150));
        assert_eq!((again.len(), again[0].ends_at), (1, t(88)));
        assert!(
            tr.due(&BTreeMap::new(), t(88 + 15 * 60)).is_empty(),
            "forgotten after 15 minutes"
        );
        assert!(tr.sent.is_empty());
    }

    #[test]
    fn an_alert_that_vanishes_is_resolved_now_and_one_that_fires_again_is_sent_at_once() {
        let mut tr = Tracker::new(Duration::from_secs(60), Duration::from_secs(5), None);
        let a = alert(AlertName::AgentOffline, Some("x"), AlertState::Firing, 0);
        tr.due(&map(std::slice::from_ref(&a)), t(0));
        let due = tr.due(&BTreeMap::new(), t(20));
        assert_eq!(due[0].ends_at, t(20));
        let mut again = a.clone();
        again.fired_at = Some(t(25));
        let due = tr.due(&map(&[again]), t(25));
        assert_eq!((due.len(), due[0].starts_at), (1, t(25)));
    }

    #[test]
    fn pending_alerts_are_not_sent_and_inhibited_ones_are() {
        let mut tr = Tracker::new(Duration::from_secs(60), Duration::from_secs(5), None);
        let mut pending = alert(AlertName::AgentOffline, Some("p"), AlertState::Pending, 0);
        pending.fired_at = None;
        let down = alert(AlertName::SourceDown, None, AlertState::Firing, 0);
        let stale = alert(
            AlertName::AgentHeartbeatStale,
            Some("q"),
            AlertState::Firing,
            0,
        );
        let due = tr.due(&map(&[pending, down, stale]), t(1));
        let names: Vec<&str> = due.iter().map(|a| a.labels["alertname"].as_str()).collect();
        assert_eq!(names, ["AgentHeartbeatStale", "SourceDown"]);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_them() {
        let target = Target::new(&AlertmanagerConfig::new(
            "http://127.0.0.1:9".parse().unwrap(),
        ))
        .unwrap();
        let mut tr = Tracker::new(Duration::from_secs(60), Duration::from_secs(5), None);
        let one = tr.due(
            &map(&[alert(AlertName::SourceDown, None, AlertState::Firing, 0)]),
            t(0),
        );
        for _ in 0..QUEUE_CAPACITY + 5 {
            target.push(&one);
        }
        assert_eq!(target.queue_length(), QUEUE_CAPACITY);
        assert_eq!(target.metrics.dropped.load(Ordering::Relaxed), 5);
        assert_eq!(target.next_batch().len(), MAX_BATCH);
    }
}
