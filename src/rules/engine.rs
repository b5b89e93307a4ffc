//! The pure rule engine: from the sources' snapshot, its state and `now`, decide which alerts are pending, firing or
//! resolved, and which notifications are due. It does no I/O and never reads the clock.
//!
//! One call to [`Engine::evaluate`] runs the two stages in order: [`crate::rules::eval`] (each rule observes, then
//! the lifecycle advances alerts) and [`crate::rules::dispatch`] (inhibition, muting, grouping, the notification
//! log, routing). The engine only holds what both need and the undo record of the last pass.

use arc_swap::ArcSwap;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::alerting::EngineConfig;
use crate::domain::{Alert, AlertKey, AlertName, AlertState, Notification, Severity, Silence};
use crate::rules::dispatch::group::Dispatch;
use crate::rules::dispatch::nflog::Undo;
use crate::rules::eval::{self, lifecycle};
use crate::rules::silences::{NewSilence, Refusal, SilenceStore};
use crate::rules::state::State;
use crate::status::SourceStatus;

/// The rule engine and the state it owns. Shared with the HTTP API behind an `Arc<std::sync::Mutex<Engine>>`:
/// every method is quick and synchronous, so the lock is never held across an `.await`.
///
/// The views for people ([`crate::rules::views`]) add methods in their own file; that is why `state` is visible to
/// the `rules` module. Silences are not the engine's: it reads the [`SilenceStore`]'s published copy once per
/// evaluation, and a silence write never takes the engine's lock.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    state: State,
    /// The silences, in their own store with their own file and lock.
    silences: Arc<SilenceStore>,
    /// Set when the state changed in a way worth saving; the runner takes it after each round. Set where the
    /// change is made rather than by comparing states: a comparison would copy every alert each round.
    dirty: bool,
    /// What the last [`Engine::evaluate`] changed in the notification log, so that [`Engine::rollback`] can undo it
    /// without a copy of the whole state per round.
    undo: Option<Undo>,
    /// [`Engine::alert_counts`] as of the last evaluation, for readers that must not wait for the engine's lock
    /// (the `/metrics` scrape): an evaluation of a large fleet holds the lock for a noticeable time.
    published: Arc<ArcSwap<AlertCounts>>,
    /// The alerts as of the last evaluation, for readers that must never wait for an evaluation.
    snapshot: Published,
}

/// What readers see of the engine's alerts: an immutable copy made after each evaluation (and at start, from the
/// loaded state). The HTTP API, the status page and the Alertmanager feed load it without the engine's lock.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every pending, firing, or resolved-but-not-yet-notified alert.
    pub alerts: BTreeMap<AlertKey, Alert>,
}

/// The handle readers load [`Snapshot`]s from.
pub type Published = Arc<ArcSwap<Snapshot>>;

/// The engine as the HTTP server, the runner and the metrics renderer share it.
pub type SharedEngine = Arc<Mutex<Engine>>;

/// Locks the engine. A panic elsewhere while it was locked leaves the data usable (every change is a plain field
/// update), so a poisoned lock is taken over rather than taking the API down with it.
pub fn lock(engine: &SharedEngine) -> MutexGuard<'_, Engine> {
    engine
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `(alertname, severity, state, count)` rows for `onprem_agent_alerts{alertname,severity,state}`.
pub type AlertCounts = Vec<(String, Severity, &'static str, u64)>;

impl Engine {
    /// An engine running `config`, starting from `state` (fresh, or loaded from the state file), with its silences
    /// in a store kept in memory: the silences a state file of the previous version held go there.
    pub fn new(config: EngineConfig, mut state: State) -> Engine {
        let silences = std::mem::take(&mut state.silences);
        let store = SilenceStore::in_memory(config.silences, silences);
        Engine::with_silences(config, state, Arc::new(store))
    }

    /// An engine running `config` from `state`, muting with the silences of `silences`.
    pub fn with_silences(
        config: EngineConfig,
        state: State,
        silences: Arc<SilenceStore>,
    ) -> Engine {
        let engine = Engine {
            config,
            state,
            silences,
            dirty: false,
            undo: None,
            published: Arc::new(ArcSwap::from_pointee(Vec::new())),
            snapshot: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
        };
        engine.publish();
        engine
    }

    /// Publishes the alerts for readers.
    fn publish(&self) {
        self.snapshot.store(Arc::new(Snapshot {
            alerts: self.state.alerts.clone(),
        }));
    }

    /// The handle readers load the alerts from, without the engine's lock. Take it once at start.
    pub fn published(&self) -> Published {
        Arc::clone(&self.snapshot)
    }

    /// The configuration the engine runs on.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The current state, for saving and for tests.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Returns true if and only if the state changed in a way worth saving since the last call, and clears the flag.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Marks the state as needing a save, after a failed write.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Undoes the notification log changes of the last [`Engine::evaluate`], whose notifications the sink
    /// refused: the groups, the sequences and the resolved alerts go back, so the next evaluation produces the same
    /// notifications with the same ids. Alert lifecycles and silences stay as they are. Does nothing when there is
    /// nothing to undo.
    pub fn rollback(&mut self) {
        if let Some(undo) = self.undo.take() {
            undo.apply(&mut self.state);
            self.publish();
        }
    }

    /// Evaluates every rule against `sources` at `now`, advances alert lifecycles, and returns the notifications
    /// that are due, in group-key order. The caller hands them to the sink before saving the state.
    pub fn evaluate(&mut self, sources: &[Arc<SourceStatus>], now: Timestamp) -> Vec<Notification> {
        let observed = eval::observe(&self.config, sources, now);
        self.dirty |= lifecycle::advance(&self.config, &mut self.state, observed, now);
        let mut undo = Undo::record(&self.state);
        let silences = self.silences.snapshot();
        let state = &mut self.state;
        let mut dispatch = Dispatch {
            config: &self.config,
            alerts: &mut state.alerts,
            groups: &mut state.groups,
            sequences: &mut state.sequences,
            epoch: state.epoch,
            silences: &silences,
            undo: &mut undo,
            dirty: false,
        };
        let notifications = dispatch.flush_due(sources, now);
        self.dirty |= dispatch.dirty;
        self.undo = Some(undo);
        self.published.store(Arc::new(self.alert_counts()));
        self.publish();
        notifications
    }

    /// The silence store the engine mutes with; the API writes to it directly.
    pub fn silence_store(&self) -> &Arc<SilenceStore> {
        &self.silences
    }

    /// Every silence kept now (expired ones for a day), as the store last published them.
    pub fn silences(&self) -> Arc<Vec<Silence>> {
        self.silences.snapshot()
    }

    /// [`SilenceStore::add`] on the engine's store.
    pub fn add_silence(&self, new: NewSilence, now: Timestamp) -> Result<Silence, Refusal> {
        self.silences.add(new, now)
    }

    /// [`SilenceStore::delete`] on the engine's store; `None` also when the deletion could not be saved.
    pub fn delete_silence(&self, id: &str) -> Option<Silence> {
        self.silences.delete(id).ok().flatten()
    }

    /// Every enabled rule appears with its default severity even at zero, so a query sees `0` rather than nothing.
    pub fn alert_counts(&self) -> AlertCounts {
        let mut counts: BTreeMap<(AlertName, Severity, &'static str), u64> = BTreeMap::new();
        for name in AlertName::ALL {
            if self.config.rules.settings(name).enabled {
                let severity = self.config.rules.severity(name);
                for state in [AlertState::Pending, AlertState::Firing] {
                    counts.insert((name, severity, state.as_str()), 0);
                }
            }
        }
        for a in self.state.alerts.values() {
            if a.state != AlertState::Resolved {
                *counts
                    .entry((a.alertname, a.severity, a.state.as_str()))
                    .or_default() += 1;
            }
        }
        counts
            .into_iter()
            .map(|((name, severity, state), n)| (name.as_str().to_string(), severity, state, n))
            .collect()
    }

    /// A handle to [`Engine::alert_counts`] as of the last evaluation, to read without locking the engine. Take it
    /// once at start; it is empty until the first evaluation.
    pub fn published_counts(&self) -> Arc<ArcSwap<AlertCounts>> {
        Arc::clone(&self.published)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::alerting::{MuteWindow, Route};
    use std::time::Duration;

    use crate::domain::matcher::{LabelName, Matcher, RawMatcher};
    use crate::domain::{Agent, AgentList, AlertLine, NotificationStatus, Provider, SourceProblem};
    use crate::rules::eval::plus;
    use crate::rules::silences::NewSilence;
    use crate::sources::ErrorReason;
    use crate::status::SourceError;

    const DAY: u64 = 86_400;

    /// Monday 2026-01-05, 12:00 UTC (13:00 in Berlin).
    pub(crate) fn t0() -> Timestamp {
        "2026-01-05T12:00:00Z".parse().unwrap()
    }

    pub(crate) fn at(secs: u64) -> Timestamp {
        plus(t0(), Duration::from_secs(secs))
    }

    pub(crate) fn ago(now: Timestamp, secs: u64) -> Timestamp {
        now.checked_sub(Duration::from_secs(secs)).unwrap()
    }

    pub(crate) fn config() -> EngineConfig {
        EngineConfig::new("state.json", vec!["ops@example.com".to_string()])
    }

    /// A healthy agent as of `now`: fresh heartbeat, young token, current version.
    fn agent(id: &str, now: Timestamp) -> Agent {
        let mut a = Agent::new(id, format!("edge-{id}"));
        a.last_heartbeat = Some(now);
        a.created_at = Some(ago(now, 365 * DAY));
        a.token_rotated = Some(ago(now, 10 * DAY));
        a.version = Some("1.5.0".to_string());
        a
    }

    fn up(name: &str, agents: Vec<Agent>, now: Timestamp) -> Arc<SourceStatus> {
        let mut s = SourceStatus::new(name, Provider::Celigo);
        s.agents = Some(Arc::new(AgentList {
            polled_at: now,
            agents,
        }));
        s.up = true;
        s.polls = 1;
        s.last_attempt = Some(now);
        s.last_success = Some(now);
        Arc::new(s)
    }

    /// A source whose polls have failed since `since`, keeping `agents` from its last good poll.
    fn down(name: &str, agents: Vec<Agent>, since: Timestamp) -> Arc<SourceStatus> {
        let mut s = (*up(name, agents, since)).clone();
        s.up = false;
        s.polls = 2;
        s.failing_since = Some(since);
        s.last_error = Some(SourceError {
            reason: ErrorReason::Unauthorized,
            message: "401 Unauthorized".to_string(),
            url: Some("https://api.example/v1/agents".to_string()),
        });
        Arc::new(s)
    }

    /// One line per notification: `FIRING AgentOffline/prod-us firing=[a1,a2] resolved=[a3] to=[ops@example.com]`.
    fn summary(n: &Notification) -> String {
        let ids = |lines: &[AlertLine]| {
            lines
                .iter()
                .map(|l| l.agent_id.clone().unwrap_or_else(|| "-".into()))
                .collect::<Vec<_>>()
                .join(",")
        };
        let status = match n.status {
            NotificationStatus::Firing => "FIRING",
            NotificationStatus::Resolved => "RESOLVED",
        };
        let muted = if n.muted.is_empty() {
            String::new()
        } else {
            format!(" muted=[{}]", ids(&n.muted))
        };
        format!(
            "{status} {} firing=[{}] resolved=[{}]{muted} to=[{}]",
            n.group_key,
            ids(&n.firing),
            ids(&n.resolved),
            n.to.join(",")
        )
    }

    fn summaries(ns: &[Notification]) -> Vec<String> {
        ns.iter().map(summary).collect()
    }

    /// The alerts in the engine, as `alertname/account/agent:state`, for assertions that print what they saw.
    fn alerts(e: &Engine) -> Vec<String> {
        e.state()
            .alerts
            .values()
            .map(|a| {
                format!(
                    "{}/{}/{}:{}",
                    a.alertname,
                    a.account,
                    a.agent_id.as_deref().unwrap_or("-"),
                    a.state.as_str()
                )
            })
            .collect()
    }

    /// Evaluates once on a fresh engine and returns the alerts.
    fn alerts_after_one_round(
        config: EngineConfig,
        sources: &[Arc<SourceStatus>],
        now: Timestamp,
    ) -> Vec<String> {
        let mut e = Engine::new(config, State::new(now));
        e.evaluate(sources, now);
        alerts(&e)
    }

    #[test]
    fn heartbeat_staleness_fires_just_past_after_and_includes_agents_that_never_sent_one() {
        let now = t0();
        // (heartbeat age in s, created age in s, expected alerts)
        let cases: [(Option<u64>, Option<u64>, &[&str]); 6] = [
            (Some(599), Some(DAY), &[]),
            (Some(600), Some(DAY), &[]),
            (Some(601), Some(DAY), &["AgentHeartbeatStale/prod/a:firing"]),
            (None, Some(601), &["AgentHeartbeatStale/prod/a:firing"]),
            (None, Some(599), &[]),
            (None, None, &[]),
        ];
        for (hb, created, want) in cases {
            let mut a = agent("a", now);
            a.last_heartbeat = hb.map(|s| ago(now, s));
            a.created_at = created.map(|s| ago(now, s));
            let got = alerts_after_one_round(config(), &[up("prod", vec![a], now)], now);
            assert_eq!(got, want, "heartbeat age {hb:?}, created {created:?} ago");
        }
    }

    #[test]
    fn an_offline_agent_is_pending_then_fires_after_for() {
        let mut a = agent("a", t0());
        a.offline = true;
        let mut e = Engine::new(config(), State::new(t0()));
        let mut seen = Vec::new();
        for secs in [0, 299, 300] {
            let now = at(secs);
            a.last_heartbeat = Some(now);
            e.evaluate(&[up("prod", vec![a.clone()], now)], now);
            seen.push((secs, alerts(&e)));
        }
        let want = vec![
            (0, vec!["AgentOffline/prod/a:pending".to_string()]),
            (299, vec!["AgentOffline/prod/a:pending".to_string()]),
            (300, vec!["AgentOffline/prod/a:firing".to_string()]),
        ];
        assert_eq!(seen, want);
        let healthy =
            alerts_after_one_round(config(), &[up("prod", vec![agent("a", t0())], t0())], t0());
        assert!(healthy.is_empty(), "a healthy agent raised {healthy:?}");
    }

    #[test]
    fn token_rotation_is_due_before_max_age_and_overdue_after_it() {
        let now = t0();
        // (token age in days, expected alerts); max_age 90d, warn_before 14d.
        let cases: [(Option<u64>, &[&str]); 6] = [
            (Some(75), &[]),
            (Some(77), &["AgentTokenRotationDue/prod/a:firing"]),
            (Some(89), &["AgentTokenRotationDue/prod/a:firing"]),
            (Some(90), &["AgentTokenRotationDue/prod/a:firing"]),
            // Due ends where Overdue begins, so no Alertmanager needs an inhibit rule to see one alert per token.
            (Some(91), &["AgentTokenRotationOverdue/prod/a:firing"]),
            // A provider without token dates never triggers the token rules.
            (None, &[]),
        ];
        for (days, want) in cases {
            let mut a = agent("a", now);
            a.token_rotated = days.map(|d| ago(now, d * DAY));
            let got = alerts_after_one_round(config(), &[up("prod", vec![a], now)], now);
            assert_eq!(got, want, "token age {days:?} days");
        }
    }

    #[test]
    fn source_down_fires_once_polls_have_failed_for_longer_than_for() {
        let now = t0();
        // (failing for s, expected)
        let cases: [(u64, &[&str]); 3] = [
            (0, &["SourceDown/prod/-:pending"]),
            (599, &["SourceDown/prod/-:pending"]),
            (600, &["SourceDown/prod/-:firing"]),
        ];
        for (secs, want) in cases {
            let got =
                alerts_after_one_round(config(), &[down("prod", vec![], ago(now, secs))], now);
            assert_eq!(got, want, "failing for {secs}s");
        }
        let e = {
            let mut e = Engine::new(config(), State::new(now));
            e.evaluate(&[down("prod", vec![], ago(now, 3600))], now);
            e
        };
        let a = e.state().alerts.values().next().unwrap();
        assert_eq!(a.value, "polls failing for 1h (unauthorized)", "saw {a:?}");
        let never_polled = Arc::new(SourceStatus::new("prod", Provider::Celigo));
        assert!(alerts_after_one_round(config(), &[never_polled], now).is_empty());
    }

    #[test]
    fn version_outdated_is_off_without_min_version_and_compares_semantic_versions() {
        let now = t0();
        let mut with_min = config();
        with_min.rules.min_version = Some(semver::Version::new(1, 4, 0));
        with_min.rules.version_outdated.enabled = true;
        let cases: [(Option<&str>, bool); 6] = [
            (Some("1.3.9"), true),
            (Some("1.4.0"), false),
            (Some("1.10.0"), false),
            (Some("v1.2"), true),
            (Some("not a version"), false),
            (None, false),
        ];
        for (version, fires) in cases {
            let mut a = agent("a", now);
            a.version = version.map(str::to_string);
            let sources = [up("prod", vec![a], now)];
            let got = alerts_after_one_round(with_min.clone(), &sources, now);
            let want: &[&str] = if fires {
                &["AgentVersionOutdated/prod/a:firing"]
            } else {
                &[]
            };
            assert_eq!(got, want, "version {version:?}");
            assert!(
                alerts_after_one_round(config(), &sources, now).is_empty(),
                "fired without min_version"
            );
        }
    }

    /// Drives an engine through time, one evaluation per call.
    struct World {
        engine: Engine,
    }

    impl World {
        fn new(config: EngineConfig) -> World {
            World {
                engine: Engine::new(config, State::new(t0())),
            }
        }

        fn eval(&mut self, secs: u64, sources: &[Arc<SourceStatus>]) -> Vec<String> {
            summaries(&self.engine.evaluate(sources, at(secs)))
        }
    }

    fn stale(id: &str, now: Timestamp) -> Agent {
        let mut a = agent(id, now);
        a.last_heartbeat = Some(ago(now, 3600));
        a
    }

    #[test]
    fn source_down_inhibits_the_agent_alerts_of_that_source() {
        let mut w = World::new(config());
        assert_eq!(
            w.eval(0, &[up("prod", vec![stale("a", at(0))], at(0))]),
            Vec::<String>::new()
        );
        // The API key is revoked: polls fail from t0 - 20m on, so SourceDown fires at once.
        let broken = [down("prod", vec![stale("a", at(0))], ago(at(10), 1200))];
        assert_eq!(w.eval(10, &broken), Vec::<String>::new());
        let got = w.eval(40, &broken);
        assert_eq!(
            got,
            vec!["FIRING SourceDown/prod firing=[-] resolved=[] to=[ops@example.com]"]
        );
        assert!(alerts(&w.engine).contains(&"AgentHeartbeatStale/prod/a:firing".to_string()));
    }

    #[test]
    fn agent_offline_inhibits_heartbeat_stale_for_the_same_agent_only() {
        let mut cfg = config();
        cfg.rules.agent_offline.for_ = Duration::ZERO;
        let mut w = World::new(cfg);
        let mut a = stale("a", at(0));
        a.offline = true;
        let b = stale("b", at(0));
        let sources = [up("prod", vec![a, b], at(0))];
        w.eval(0, &sources);
        let got = w.eval(30, &sources);
        assert_eq!(
            got,
            vec![
                "FIRING AgentHeartbeatStale/prod firing=[b] resolved=[] to=[ops@example.com]",
                "FIRING AgentOffline/prod firing=[a] resolved=[] to=[ops@example.com]",
            ]
        );
    }

    #[test]
    fn overdue_inhibits_due_for_the_same_agent() {
        let mut w = World::new(config());
        let mut a = agent("a", at(0));
        a.token_rotated = Some(ago(at(0), 100 * DAY));
        let mut b = agent("b", at(0));
        b.token_rotated = Some(ago(at(0), 80 * DAY));
        let sources = [up("prod", vec![a, b], at(0))];
        w.eval(0, &sources);
        let got = w.eval(30, &sources);
        assert_eq!(
            got,
            vec![
                "FIRING AgentTokenRotationDue/prod firing=[b] resolved=[] to=[ops@example.com]",
                "FIRING AgentTokenRotationOverdue/prod firing=[a] resolved=[] to=[ops@example.com]",
            ]
        );
    }

    #[test]
    fn group_wait_then_group_interval_batch_alerts_of_one_rule_and_account() {
        let mut w = World::new(config());
        let mut log = Vec::new();
        for secs in (0..=660).step_by(10) {
            let now = at(secs);
            let mut agents = vec![stale("a", now)];
            if secs >= 60 {
                agents.push(stale("b", now));
            }
            if secs >= 120 {
                agents.push(stale("c", now));
            }
            let mut other = stale("x", now);
            other.offline = secs >= 100;
            agents.push(other);
            for line in w.eval(secs, &[up("prod", agents, now)]) {
                log.push(format!("{secs}s {line}"));
            }
        }
        assert_eq!(
            log,
            vec![
                // group_wait 30s after the first alert.
                "30s FIRING AgentHeartbeatStale/prod firing=[a,x] resolved=[] to=[ops@example.com]",
                // b and c joined later: they wait for the next group_interval (5m after 30s). x went offline at
                // 100s: from then on it is AgentOffline's (pending, then firing), so it is muted here, not resolved.
                // b and c joined a group already told: listed first.
                "330s FIRING AgentHeartbeatStale/prod firing=[b,c,a] resolved=[] muted=[x] to=[ops@example.com]",
                // x went offline at 100s: that group fires 5m later (for) plus its own group_wait.
                "430s FIRING AgentOffline/prod firing=[x] resolved=[] to=[ops@example.com]",
            ],
        );
    }

    #[test]
    fn a_condition_that_clears_before_for_sends_nothing() {
        let mut w = World::new(config());
        let mut log = Vec::new();
        for secs in (0..=900).step_by(30) {
            let now = at(secs);
            let mut a = agent("a", now);
            a.offline = secs < 240;
            log.extend(w.eval(secs, &[up("prod", vec![a], now)]));
        }
        assert!(log.is_empty(), "saw {log:?}");
        assert!(alerts(&w.engine).is_empty(), "saw {:?}", alerts(&w.engine));
        assert!(
            w.engine.state().groups.is_empty(),
            "saw {:?}",
            w.engine.state().groups
        );
    }

    #[test]
    fn repeat_interval_resends_an_unchanged_firing_group() {
        let mut w = World::new(config());
        let mut times = Vec::new();
        for secs in (0..=(9 * 3600)).step_by(60) {
            let now = at(secs);
            if !w
                .eval(secs, &[up("prod", vec![stale("a", now)], now)])
                .is_empty()
            {
                times.push(secs);
            }
        }
        // First at group_wait (rounded up to the next evaluation), then each time 4h have passed at a flush.
        assert_eq!(times, vec![60, 60 + 4 * 3600, 60 + 8 * 3600]);
    }

    #[test]
    fn keep_firing_for_holds_a_cleared_alert_before_it_resolves() {
        let mut cfg = config();
        cfg.rules.heartbeat_stale.keep_firing_for = Duration::from_secs(120);
        let mut e = Engine::new(cfg, State::new(t0()));
        let mut seen = Vec::new();
        for secs in [0, 60, 120, 179, 180] {
            let now = at(secs);
            let a = if secs == 0 {
                stale("a", now)
            } else {
                agent("a", now)
            };
            e.evaluate(&[up("prod", vec![a], now)], now);
            seen.push((secs, alerts(&e)));
        }
        let firing = vec!["AgentHeartbeatStale/prod/a:firing".to_string()];
        let resolved = vec!["AgentHeartbeatStale/prod/a:resolved".to_string()];
        // The condition held at 0s only. As in Prometheus, keep_firing_for counts from the first evaluation that saw
        // it clear (60s), so the alert resolves at 180s; it was notified at 60s, so the resolved alert stays for its
        // notice.
        assert_eq!(
            seen,
            vec![
                (0, firing.clone()),
                (60, firing.clone()),
                (120, firing.clone()),
                (179, firing),
                (180, resolved),
            ]
        );
    }

    /// Fires `a` and `b`, notifies, then lets `a` recover; returns everything sent after the first notification.
    fn partial_then_full_recovery(send_resolved: bool) -> Vec<String> {
        let mut cfg = config();
        cfg.send_resolved = send_resolved;
        let mut w = World::new(cfg);
        let both = |now| vec![stale("a", now), stale("b", now)];
        w.eval(0, &[up("prod", both(at(0)), at(0))]);
        let first = w.eval(30, &[up("prod", both(at(30)), at(30))]);
        assert_eq!(
            first,
            vec!["FIRING AgentHeartbeatStale/prod firing=[a,b] resolved=[] to=[ops@example.com]"]
        );
        let mut log = Vec::new();
        for secs in (60..=1200).step_by(30) {
            let now = at(secs);
            let a = agent("a", now);
            let b = if secs < 500 {
                stale("b", now)
            } else {
                agent("b", now)
            };
            for line in w.eval(secs, &[up("prod", vec![a, b], now)]) {
                log.push(format!("{secs}s {line}"));
            }
        }
        assert!(
            w.engine.state().alerts.is_empty(),
            "saw {:?}",
            alerts(&w.engine)
        );
        assert!(
            w.engine.state().groups.is_empty(),
            "saw {:?}",
            w.engine.state().groups
        );
        log
    }

    #[test]
    fn resolved_notices_follow_send_resolved() {
        assert_eq!(
            partial_then_full_recovery(true),
            vec![
                "330s FIRING AgentHeartbeatStale/prod firing=[b] resolved=[a] to=[ops@example.com]",
                "630s RESOLVED AgentHeartbeatStale/prod firing=[] resolved=[b] to=[ops@example.com]",
            ]
        );
        assert_eq!(partial_then_full_recovery(false), Vec::<String>::new());
    }

    #[test]
    fn a_silence_holds_back_matching_alerts_until_it_expires() {
        let mut w = World::new(config());
        let silence = NewSilence {
            matchers: vec![RawMatcher {
                name: LabelName::AgentName,
                value: "edge-(a|b)".into(),
                is_regex: true,
                is_equal: true,
            }],
            starts_at: None,
            ends_at: Some(at(600)),
            duration: None,
            created_by: Some("ops".into()),
            comment: Some("planned maintenance".into()),
        };
        let s = w.engine.add_silence(silence, at(0)).unwrap();
        let id = uuid::Uuid::parse_str(&s.id).expect("a UUID");
        assert_eq!(id.get_version_num(), 4, "saw {}", s.id);
        let mut log = Vec::new();
        for secs in (0..=1000).step_by(10) {
            let now = at(secs);
            let sources = [up("prod", vec![stale("a", now), stale("c", now)], now)];
            for line in w.eval(secs, &sources) {
                log.push(format!("{secs}s {line}"));
            }
        }
        assert_eq!(
            log,
            vec![
                "30s FIRING AgentHeartbeatStale/prod firing=[c] resolved=[] to=[ops@example.com]",
                // The silence ended at 600s; the next flush (330s + 5m) lists a as new.
                "630s FIRING AgentHeartbeatStale/prod firing=[a,c] resolved=[] to=[ops@example.com]",
            ]
        );
        let views = w.engine.alerts(at(100));
        let a = views
            .iter()
            .find(|v| v.agent_id.as_deref() == Some("a"))
            .unwrap();
        assert_eq!(a.silenced_by, vec![s.id.clone()], "saw {a:?}");
    }

    fn berlin_lunch() -> MuteWindow {
        MuteWindow {
            name: "lunch".into(),
            time_zone: jiff::tz::TimeZone::get("Europe/Berlin").unwrap(),
            weekdays: 1, // Monday only
            times: vec![(12 * 60 + 30, 14 * 60)],
            matchers: vec![],
        }
    }

    #[test]
    fn a_mute_window_is_read_in_its_time_zone() {
        // (UTC instant, inside Berlin's Monday 12:30–14:00?)
        let cases = [
            ("2026-01-05T11:29:00Z", false), // 12:29 in Berlin (UTC+1)
            ("2026-01-05T11:30:00Z", true),  // 12:30
            ("2026-01-05T12:59:00Z", true),  // 13:59
            ("2026-01-05T13:00:00Z", false), // 14:00
            ("2026-01-12T11:30:00Z", true),  // next Monday
            ("2026-01-06T11:30:00Z", false), // Tuesday
            ("2026-07-06T10:30:00Z", true),  // summer time, UTC+2: 12:30 on a Monday
            ("2026-07-06T11:30:00Z", true),  // 13:30
            ("2026-07-06T12:00:00Z", false), // 14:00
        ];
        let w = berlin_lunch();
        for (utc, want) in cases {
            let now: Timestamp = utc.parse().unwrap();
            assert_eq!(w.contains(now), want, "at {utc}");
        }
    }

    #[test]
    fn a_mute_window_past_midnight_belongs_to_the_day_it_starts() {
        let w = MuteWindow {
            name: "friday night".into(),
            time_zone: jiff::tz::TimeZone::get("America/New_York").unwrap(),
            weekdays: 1 << 4, // Friday
            times: vec![(22 * 60, 2 * 60)],
            matchers: vec![],
        };
        let cases = [
            ("2026-01-10T02:59:00Z", false), // Fri 21:59 in New York (UTC-5)
            ("2026-01-10T03:00:00Z", true),  // Fri 22:00
            ("2026-01-10T06:59:00Z", true),  // Sat 01:59
            ("2026-01-10T07:00:00Z", false), // Sat 02:00
            ("2026-01-11T03:30:00Z", false), // Sat 22:30
        ];
        for (utc, want) in cases {
            assert_eq!(w.contains(utc.parse().unwrap()), want, "at {utc}");
        }
    }

    #[test]
    fn a_muted_group_waits_for_the_window_to_end_then_notifies() {
        let mut cfg = config();
        cfg.mute_windows = vec![berlin_lunch()];
        let mut w = World::new(cfg);
        let mut log = Vec::new();
        // t0 is 13:00 in Berlin, inside the window until 14:00 (t0 + 1h).
        for secs in (0..=4200).step_by(30) {
            let now = at(secs);
            for line in w.eval(secs, &[up("prod", vec![stale("a", now)], now)]) {
                log.push(format!("{secs}s {line}"));
            }
        }
        // Flushes at 30s, 330s, ... 3330s are muted; 3630s (13:00 UTC + 30s = 14:00:30 Berlin) is not.
        assert_eq!(
            log,
            vec![
                "3630s FIRING AgentHeartbeatStale/prod firing=[a] resolved=[] to=[ops@example.com]"
            ]
        );
    }

    #[test]
    fn routes_pick_recipients_by_rule_or_severity_first_match_wins() {
        let mut cfg = config();
        cfg.routes = vec![
            Route {
                alertname: Some(AlertName::SourceDown),
                severity: None,
                account: None,
                to: vec!["oncall@example.com".into()],
                receivers: vec![],
            },
            Route {
                alertname: None,
                severity: Some(Severity::Warning),
                account: None,
                to: vec!["security@example.com".into()],
                receivers: vec![],
            },
            Route {
                alertname: Some(AlertName::SourceDown),
                severity: None,
                account: None,
                to: vec!["never@example.com".into()],
                receivers: vec![],
            },
        ];
        let cases = [
            (AlertName::SourceDown, "oncall@example.com"),
            (AlertName::AgentTokenRotationDue, "security@example.com"),
            (AlertName::AgentTokenRotationOverdue, "ops@example.com"),
            (AlertName::AgentOffline, "ops@example.com"),
        ];
        for (name, want) in cases {
            let severity = cfg.rules.severity(name);
            assert_eq!(
                cfg.recipients(name, severity, "prod"),
                vec![want.to_string()],
                "for {name}"
            );
        }
        // And end to end.
        let mut w = World::new(cfg);
        let mut a = agent("a", at(0));
        a.token_rotated = Some(ago(at(0), 80 * DAY));
        w.eval(0, &[up("prod", vec![a.clone()], at(0))]);
        let got = w.eval(30, &[up("prod", vec![a], at(30))]);
        assert_eq!(
            got,
            vec![
                "FIRING AgentTokenRotationDue/prod firing=[a] resolved=[] to=[security@example.com]"
            ]
        );
    }

    #[test]
    fn overrides_change_thresholds_for_one_source_only() {
        let mut cfg = config();
        let mut relaxed = cfg.rules.clone();
        relaxed.heartbeat_after = Duration::from_secs(2 * 3600);
        cfg.overrides.insert("lab".into(), relaxed);
        let now = t0();
        let sources = [
            up("prod", vec![stale("a", now)], now),
            up("lab", vec![stale("b", now)], now),
        ];
        let got = alerts_after_one_round(cfg, &sources, now);
        assert_eq!(got, vec!["AgentHeartbeatStale/prod/a:firing"]);
    }

    #[test]
    fn rule_matchers_narrow_a_rule_to_some_agents() {
        let mut cfg = config();
        cfg.rules.heartbeat_stale.matchers = vec![
            Matcher::new(RawMatcher {
                name: LabelName::AgentName,
                value: "edge-lab.*".into(),
                is_regex: true,
                is_equal: false,
            })
            .unwrap(),
        ];
        let now = t0();
        let sources = [up("prod", vec![stale("a", now), stale("lab1", now)], now)];
        assert_eq!(
            alerts_after_one_round(cfg, &sources, now),
            vec!["AgentHeartbeatStale/prod/a:firing"]
        );
    }

    #[test]
    fn a_failing_source_holds_its_agent_alerts_instead_of_resolving_or_starting_them() {
        let mut w = World::new(config());
        w.eval(
            0,
            &[up(
                "prod",
                vec![stale("a", at(0)), agent("b", at(0))],
                at(0),
            )],
        );
        // The poll fails: `a` stays firing although the data is old; `b` does not turn stale on old data.
        let failing = [down(
            "prod",
            vec![stale("a", at(0)), agent("b", at(0))],
            at(3500),
        )];
        w.eval(3600, &failing);
        assert_eq!(
            alerts(&w.engine),
            vec![
                "AgentHeartbeatStale/prod/a:firing",
                "SourceDown/prod/-:pending"
            ],
        );
    }

    #[test]
    fn alerts_of_a_source_no_longer_configured_resolve() {
        let mut w = World::new(config());
        w.eval(0, &[up("old", vec![stale("a", at(0))], at(0))]);
        w.eval(30, &[up("old", vec![stale("a", at(30))], at(30))]);
        let got = w.eval(330, &[]);
        assert_eq!(
            got,
            vec!["RESOLVED AgentHeartbeatStale/old firing=[] resolved=[a] to=[ops@example.com]"]
        );
    }

    #[test]
    fn notification_ids_are_unique_and_the_same_state_gives_the_same_id() {
        let mut w = World::new(config());
        w.eval(0, &[up("prod", vec![stale("a", at(0))], at(0))]);
        let before = w.engine.state().clone();
        let first = w
            .engine
            .evaluate(&[up("prod", vec![stale("a", at(30))], at(30))], at(30));
        // The same round again from the same state (a crash before the state was saved) gives the same id.
        let mut again = Engine::new(config(), before.clone());
        let replay = again.evaluate(&[up("prod", vec![stale("a", at(30))], at(30))], at(30));
        assert_eq!(first[0].id, replay[0].id);
        // So does a rollback after the sink refused the batch.
        w.engine.rollback();
        let retried = w
            .engine
            .evaluate(&[up("prod", vec![stale("a", at(31))], at(31))], at(31));
        assert_eq!(retried[0].id, first[0].id);
        let later = w
            .engine
            .evaluate(&[up("prod", vec![agent("a", at(400))], at(400))], at(400));
        assert_eq!(
            summaries(&later),
            vec!["RESOLVED AgentHeartbeatStale/prod firing=[] resolved=[a] to=[ops@example.com]"]
        );
        assert_ne!(later[0].id, first[0].id);
        assert!(
            first[0]
                .id
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '-'),
            "id {:?} is not [0-9a-f-]",
            first[0].id
        );
    }

    #[test]
    fn a_restart_sends_no_duplicate_and_still_sends_the_resolved_notice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut e = Engine::new(config(), State::new(t0()));
        e.evaluate(&[up("prod", vec![stale("a", at(0))], at(0))], at(0));
        let sent = e.evaluate(&[up("prod", vec![stale("a", at(30))], at(30))], at(30));
        assert_eq!(sent.len(), 1, "saw {:?}", summaries(&sent));
        e.state().save(&path).unwrap();
        drop(e);

        // The restarted process has not polled yet, then polls the same problem.
        let loaded = crate::rules::state::load(&path, at(100));
        assert!(loaded.problem.is_none(), "saw {:?}", loaded.problem);
        let mut e = Engine::new(config(), loaded.state);
        let mut log = Vec::new();
        let not_polled = Arc::new(SourceStatus::new("prod", Provider::Celigo));
        log.extend(summaries(&e.evaluate(&[not_polled], at(100))));
        for secs in (110..=600).step_by(10) {
            let now = at(secs);
            log.extend(summaries(
                &e.evaluate(&[up("prod", vec![stale("a", now)], now)], now),
            ));
        }
        assert!(log.is_empty(), "a restart sent {log:?}");
        // The agent recovers: the resolved notice still arrives.
        let got = e.evaluate(&[up("prod", vec![agent("a", at(700))], at(700))], at(700));
        assert_eq!(
            summaries(&got),
            vec!["RESOLVED AgentHeartbeatStale/prod firing=[] resolved=[a] to=[ops@example.com]"]
        );
    }

    #[test]
    fn alert_counts_list_every_enabled_rule_at_zero_and_count_pending_and_firing() {
        let mut a = stale("a", t0());
        a.offline = true;
        let mut e = Engine::new(config(), State::new(t0()));
        e.evaluate(&[up("prod", vec![a], t0())], t0());
        let counts: Vec<String> = e
            .alert_counts()
            .into_iter()
            .filter(|(name, ..)| name.starts_with("Agent"))
            .map(|(name, sev, state, n)| format!("{name} {} {state} {n}", sev.as_str()))
            .collect();
        assert_eq!(
            counts,
            vec![
                "AgentHeartbeatStale critical firing 1",
                "AgentHeartbeatStale critical pending 0",
                "AgentOffline critical firing 0",
                "AgentOffline critical pending 1",
                "AgentTokenRotationDue warning firing 0",
                "AgentTokenRotationDue warning pending 0",
                "AgentTokenRotationOverdue critical firing 0",
                "AgentTokenRotationOverdue critical pending 0",
            ]
        );
    }

    #[test]
    fn the_state_keeps_the_failure_reason_but_not_the_upstream_error_message() {
        let mut s = (*down("prod", vec![], ago(t0(), 3600))).clone();
        s.last_error = Some(SourceError {
            reason: ErrorReason::Unauthorized,
            message: "401 from https://api.example/v1/agents?token=SECRET-TOKEN".to_string(),
            url: None,
        });
        let mut e = Engine::new(config(), State::new(t0()));
        e.evaluate(&[Arc::new(s)], t0());
        let json = String::from_utf8(e.state().to_json()).unwrap();
        assert!(
            json.contains("unauthorized"),
            "the reason is missing from {json}"
        );
        assert!(
            !json.contains("SECRET-TOKEN"),
            "the upstream message leaked into {json}"
        );
    }

    #[test]
    fn the_published_counts_follow_each_evaluation_without_the_lock() {
        let mut e = Engine::new(config(), State::new(t0()));
        let handle = e.published_counts();
        assert!(
            handle.load().is_empty(),
            "counts before the first evaluation"
        );
        e.evaluate(&[up("prod", vec![stale("a", t0())], t0())], t0());
        assert_eq!(**handle.load(), e.alert_counts());
        let firing: u64 = handle
            .load()
            .iter()
            .filter(|(_, _, state, _)| *state == "firing")
            .map(|(.., n)| n)
            .sum();
        assert_eq!(firing, 1, "saw {:?}", handle.load());
    }

    #[test]
    fn the_state_changes_worth_saving_are_flagged_and_growing_ages_are_not() {
        let mut e = Engine::new(config(), State::new(t0()));
        e.evaluate(&[up("prod", vec![stale("a", at(0))], at(0))], at(0));
        assert!(e.take_dirty(), "a new alert was not flagged");
        e.evaluate(&[up("prod", vec![stale("a", at(0))], at(5))], at(5));
        assert!(!e.take_dirty(), "a growing age was flagged");
    }

    #[test]
    fn an_inhibited_alert_sends_no_resolved_notice_until_it_really_resolves() {
        let mut w = World::new(config());
        let mut log = Vec::new();
        // The token is 89 days old at 0s: due now, overdue a day later; it is rotated at 2 days.
        for secs in (0..=(3 * DAY)).step_by(300) {
            let now = at(secs);
            let mut a = agent("a", now);
            a.token_rotated = Some(if secs < 2 * DAY {
                ago(at(0), 89 * DAY)
            } else {
                at(2 * DAY)
            });
            for line in w.eval(secs, &[up("prod", vec![a], now)]) {
                log.push(format!("{}h {line}", secs / 3600));
            }
        }
        let due = "AgentTokenRotationDue/prod";
        let overdue = "AgentTokenRotationOverdue/prod";
        let ops = "to=[ops@example.com]";
        // Due repeats every 4h until the token is overdue at 24h; from then on Due is hidden, neither repeated nor
        // reported resolved, while Overdue repeats. Rotated at 48h: both resolve, and both groups say so.
        let mut want: Vec<String> = (0..24)
            .step_by(4)
            .map(|h| format!("{h}h FIRING {due} firing=[a] resolved=[] {ops}"))
            .collect();
        want.extend(
            (24..48)
                .step_by(4)
                .map(|h| format!("{h}h FIRING {overdue} firing=[a] resolved=[] {ops}")),
        );
        want.push(format!("48h RESOLVED {due} firing=[] resolved=[a] {ops}"));
        want.push(format!(
            "48h RESOLVED {overdue} firing=[] resolved=[a] {ops}"
        ));
        assert_eq!(log, want);
    }

    #[test]
    fn the_demo_timings_fire_and_resolve_within_two_minutes() {
        let mut w = World::new(EngineConfig::demo(
            "demo.json",
            vec!["demo@example.com".into()],
        ));
        let mut log = Vec::new();
        for secs in (0..=120).step_by(5) {
            let now = at(secs);
            let mut a = agent("a", now);
            a.offline = (5..50).contains(&secs);
            for line in w.eval(secs, &[up("demo", vec![a], now)]) {
                log.push(format!("{secs}s {line}"));
            }
        }
        assert_eq!(
            log,
            vec![
                "20s FIRING AgentOffline/demo firing=[a] resolved=[] to=[demo@example.com]",
                "60s RESOLVED AgentOffline/demo firing=[] resolved=[a] to=[demo@example.com]",
            ]
        );
    }

    #[test]
    fn with_default_settings_an_offline_agent_with_an_old_heartbeat_is_reported_once_as_agent_offline()
     {
        let mut w = World::new(config());
        let mut log = Vec::new();
        let mut notices = Vec::new();
        // o1..o4: offline with heartbeats an hour old from the start. s1: online but stale. o5: online and stale,
        // then reported offline at 20 min (the platform noticed late).
        for secs in (0..=3600).step_by(10) {
            let now = at(secs);
            let mut agents: Vec<Agent> = (1..=4)
                .map(|i| {
                    let mut a = stale(&format!("o{i}"), now);
                    a.offline = true;
                    a
                })
                .collect();
            agents.push(stale("s1", now));
            let mut late = stale("o5", now);
            late.offline = secs >= 1200;
            agents.push(late);
            let sent = w.engine.evaluate(&[up("prod", agents, now)], now);
            log.extend(sent.iter().map(|n| format!("{secs}s {}", summary(n))));
            notices.extend(sent);
        }
        let listed = |n: &Notification, id: &str| {
            n.firing
                .iter()
                .chain(&n.resolved)
                .any(|l| l.agent_id.as_deref() == Some(id))
        };
        for n in notices
            .iter()
            .filter(|n| n.alertname == AlertName::AgentHeartbeatStale)
        {
            for id in ["o1", "o2", "o3", "o4"] {
                assert!(
                    !listed(n, id),
                    "{id} is offline yet listed as stale: {log:#?}"
                );
            }
            // o5 was stale while online; once offline it is only muted, never reported resolved.
            assert!(
                !n.resolved
                    .iter()
                    .any(|l| l.agent_id.as_deref() == Some("o5")),
                "o5 reported resolved while still stale: {log:#?}"
            );
        }
        let offline: Vec<&Notification> = notices
            .iter()
            .filter(|n| n.alertname == AlertName::AgentOffline)
            .collect();
        for id in ["o1", "o2", "o3", "o4", "o5"] {
            let announced = offline
                .iter()
                .filter(|n| n.status == NotificationStatus::Firing && listed(n, id))
                .count();
            assert!(announced >= 1, "{id} never reported offline: {log:#?}");
        }
        // Within the hour (below repeat_interval) each group speaks once per change only.
        assert_eq!(
            log,
            vec![
                "30s FIRING AgentHeartbeatStale/prod firing=[o5,s1] resolved=[] to=[ops@example.com]",
                "330s FIRING AgentOffline/prod firing=[o1,o2,o3,o4] resolved=[] to=[ops@example.com]",
                "1530s FIRING AgentOffline/prod firing=[o5,o1,o2,o3,o4] resolved=[] to=[ops@example.com]",
            ],
        );
    }

    #[test]
    fn a_group_whose_alerts_become_inhibited_is_not_reported_resolved_until_every_alert_resolved() {
        let mut w = World::new(config());
        let mut log = Vec::new();
        let mut last = None;
        // a..e are stale and online; at 60s a..d go offline (AgentOffline pending inhibits their staleness); at 400s
        // e recovers; at 1000s a..d are back online with fresh heartbeats.
        for secs in (0..=1500).step_by(10) {
            let now = at(secs);
            let agents: Vec<Agent> = ["a", "b", "c", "d", "e"]
                .into_iter()
                .map(|id| {
                    let mut a = if (id == "e" && secs >= 400) || secs >= 1000 {
                        agent(id, now)
                    } else {
                        stale(id, now)
                    };
                    a.offline = id != "e" && (60..1000).contains(&secs);
                    a
                })
                .collect();
            for n in w.engine.evaluate(&[up("prod", agents, now)], now) {
                if n.alertname == AlertName::AgentHeartbeatStale {
                    log.push(format!("{secs}s {}", summary(&n)));
                    last = Some(n);
                }
            }
        }
        assert_eq!(
            log,
            vec![
                "30s FIRING AgentHeartbeatStale/prod firing=[a,b,c,d,e] resolved=[] to=[ops@example.com]",
                "630s FIRING AgentHeartbeatStale/prod firing=[] resolved=[e] muted=[a,b,c,d] to=[ops@example.com]",
                "1230s RESOLVED AgentHeartbeatStale/prod firing=[] resolved=[a,b,c,d] to=[ops@example.com]",
            ],
        );
        let muted = w.engine.state().alerts.is_empty();
        assert!(muted, "left {:?}", alerts(&w.engine));
        let last = last.unwrap();
        assert!(last.muted.is_empty(), "saw {last:?}");
    }

    #[test]
    fn a_muted_line_says_what_mutes_it() {
        let mut w = World::new(config());
        let both = |now| vec![stale("a", now), stale("b", now)];
        w.eval(0, &[up("prod", both(at(0)), at(0))]);
        w.eval(30, &[up("prod", both(at(30)), at(30))]);
        let silence = NewSilence {
            matchers: vec![RawMatcher {
                name: LabelName::AgentId,
                value: "a".into(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: None,
            ends_at: Some(at(3600)),
            duration: None,
            created_by: None,
            comment: Some("disk swap".into()),
        };
        let s = w.engine.add_silence(silence, at(40)).unwrap();
        // b recovers at 300s; a is silenced, not resolved.
        let got = w.engine.evaluate(
            &[up(
                "prod",
                vec![stale("a", at(330)), agent("b", at(330))],
                at(330),
            )],
            at(330),
        );
        assert_eq!(
            summaries(&got),
            vec![
                "FIRING AgentHeartbeatStale/prod firing=[] resolved=[b] muted=[a] to=[ops@example.com]"
            ]
        );
        assert_eq!(
            got[0].muted[0].muted_by.as_deref(),
            Some(format!("silenced by {} (disk swap)", s.id).as_str())
        );
    }

    #[test]
    fn lines_carry_numbers_a_plain_sentence_and_a_link_per_agent() {
        let mut cfg = config();
        cfg.external_url = Some("https://exporter.example.com/".into());
        cfg.rules.agent_offline.for_ = Duration::ZERO;
        let mut w = World::new(cfg);
        let mut token = agent("t", at(0));
        token.token_rotated = Some(ago(at(0), 97 * DAY));
        let mut off = agent("o", at(0));
        off.offline = true;
        let fleet = |now| vec![token.clone(), off.clone(), stale("s", now)];
        w.engine
            .evaluate(&[up("prod eu", fleet(at(0)), at(0))], at(0));
        let sent = w
            .engine
            .evaluate(&[up("prod eu", fleet(at(720)), at(720))], at(720));
        let line = |rule: &str| {
            sent.iter()
                .find(|n| n.alertname.as_str() == rule)
                .unwrap_or_else(|| panic!("no {rule} in {:?}", summaries(&sent)))
                .firing[0]
                .clone()
        };
        let offline = line("AgentOffline");
        assert_eq!(
            offline.summary,
            "reported offline for 12m; last heartbeat 12m ago"
        );
        assert_eq!(
            (offline.value_seconds, offline.threshold_seconds),
            (Some(720), Some(0))
        );
        assert_eq!(
            offline.link.as_deref(),
            Some("https://exporter.example.com/#agent-prod%20eu-o")
        );
        let overdue = line("AgentTokenRotationOverdue");
        assert_eq!(overdue.summary, "token 97d old; policy 90d");
        assert_eq!(overdue.threshold_seconds, Some(90 * DAY));
        let stale_line = line("AgentHeartbeatStale");
        assert_eq!(stale_line.summary, "last heartbeat 1h ago; limit 10m");
        assert_eq!(stale_line.value_seconds, Some(3600));
        let views = w.engine.alerts(at(720));
        let view = views
            .iter()
            .find(|v| v.alertname == AlertName::AgentTokenRotationOverdue)
            .unwrap();
        assert_eq!(
            (view.value_seconds, view.threshold_seconds),
            (Some(97 * DAY + 720), Some(90 * DAY)),
            "saw {view:?}"
        );
    }

    #[test]
    fn a_notice_whose_told_alerts_all_resolved_is_resolved_and_counts_the_never_told_muted_ones() {
        let mut w = World::new(config());
        let offline = |id: &str, now| {
            let mut a = stale(id, now);
            a.offline = true;
            a
        };
        let sick = |now| vec![stale("s1", now), offline("o1", now), offline("o2", now)];
        assert_eq!(
            w.eval(0, &[up("prod", sick(at(0)), at(0))]),
            Vec::<String>::new()
        );
        let got = w.eval(30, &[up("prod", sick(at(30)), at(30))]);
        assert_eq!(
            got,
            ["FIRING AgentHeartbeatStale/prod firing=[s1] resolved=[] to=[ops@example.com]"]
        );
        // s1 recovers; o1 and o2 stay stale, inhibited by AgentOffline, and were never told.
        let healed = |now| vec![agent("s1", now), offline("o1", now), offline("o2", now)];
        let sent = w
            .engine
            .evaluate(&[up("prod", healed(at(330)), at(330))], at(330));
        let stale_notices: Vec<&Notification> = sent
            .iter()
            .filter(|n| n.alertname == AlertName::AgentHeartbeatStale)
            .collect();
        assert_eq!(stale_notices.len(), 1, "saw {:?}", summaries(&sent));
        let n = stale_notices[0];
        assert_eq!(
            summary(n),
            "RESOLVED AgentHeartbeatStale/prod firing=[] resolved=[s1] to=[ops@example.com]"
        );
        assert_eq!(n.still_muted, 2, "saw {n:?}");
    }

    #[test]
    fn agent_offline_says_how_old_the_last_heartbeat_is_or_that_there_never_was_one() {
        let mut cfg = config();
        cfg.rules.agent_offline.for_ = Duration::ZERO;
        let now = at(0);
        let mut old = agent("old", now);
        old.offline = true;
        old.last_heartbeat = Some(ago(now, 3 * DAY));
        let mut never = agent("never", now);
        never.offline = true;
        never.last_heartbeat = None;
        let mut e = Engine::new(cfg, State::new(now));
        e.evaluate(&[up("prod", vec![old, never], now)], now);
        let summaries: Vec<(String, String)> = e
            .state()
            .alerts
            .values()
            .filter(|a| a.alertname == AlertName::AgentOffline)
            .map(|a| (a.agent_id.clone().unwrap_or_default(), a.summary.clone()))
            .collect();
        assert_eq!(
            summaries,
            [
                (
                    "never".to_string(),
                    "reported offline for 0s; never sent a heartbeat".to_string()
                ),
                (
                    "old".to_string(),
                    "reported offline for 0s; last heartbeat 3d ago".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_source_down_notice_says_what_failed() {
        let mut w = World::new(config());
        let broken = [down(
            "prod",
            vec![agent("a", at(0)), agent("b", at(0))],
            ago(at(0), 1200),
        )];
        w.eval(0, &broken);
        let sent = w.engine.evaluate(&broken, at(30));
        let problem = *sent[0].source_problem.clone().expect("a source problem");
        assert_eq!(
            problem,
            SourceProblem {
                reason: "unauthorized".into(),
                message: "401 Unauthorized".into(),
                url: Some("https://api.example/v1/agents".into()),
                failing_since: Some(ago(at(0), 1200)),
                last_success: Some(ago(at(0), 1200)),
                agents_in_last_snapshot: Some(2),
            }
        );
        assert_eq!(
            sent[0].firing[0].summary,
            "polls failing for 20m 30s (unauthorized); alert after 10m"
        );
    }
}
