//! The pure rule engine: from the sources' snapshot, its state and `now`, decide which alerts are pending, firing or
//! resolved, and which notifications are due. It does no I/O and never reads the clock.
//!
//! One call to [`Engine::evaluate`] does, in order:
//! 1. **Observe.** Each rule looks at each source (and, for agent rules, each agent) and says whether its
//!    condition holds and since when. A source whose last poll failed, or that has not been polled yet, is *held*:
//!    its stale data starts nothing and resolves nothing (only `SourceDown` speaks for it).
//! 2. **Lifecycle** (Prometheus): a new alert is pending, and fires once its condition has held for `for`; a firing
//!    alert whose condition clears keeps firing for `keep_firing_for`, then resolves; a pending one just goes.
//! 3. **Notify** (Alertmanager): firing alerts join their group (rule × source). A new group is looked at after
//!    `group_wait`, then every `group_interval`. It notifies when an alert appeared that the last notification did
//!    not list, when listed alerts resolved (if `send_resolved`), when everything resolved, or when nothing changed
//!    for `repeat_interval`. Silenced and inhibited alerts are left out of notifications; a muted group waits.
//!
//! Inhibition: a firing `SourceDown` hides that source's agent alerts; a firing `AgentOffline` hides
//! `AgentHeartbeatStale` for the same agent; a firing `AgentTokenRotationOverdue` hides `AgentTokenRotationDue` for
//! the same agent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::Agent;
use crate::notify::{AlertLine, Notification, NotificationStatus, Severity};
use crate::rules::AlertName;
use crate::rules::config::{EngineConfig, Rules, parse_version};
use crate::rules::matcher::{LabelName, Matcher, RawMatcher, all_match};
use crate::rules::state::{Alert, AlertKey, AlertState, GroupLog, Silence, State, group_key, severity_str};
use crate::status::SourceStatus;

/// How long an expired silence stays listed before it is forgotten.
const EXPIRED_SILENCE_KEPT: Duration = Duration::from_secs(24 * 3600);

/// The rule engine and the state it owns. Shared with the HTTP API behind an `Arc<std::sync::Mutex<Engine>>`:
/// every method is quick and synchronous, so the lock is never held across an `.await`.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    state: State,
    /// Set when the state changed in a way worth saving; the runner takes it after each round.
    dirty: bool,
}

/// What a rule saw for one alert in one evaluation.
struct Observation {
    /// When the condition started to hold, from the data when the data says; else `now`.
    start: Timestamp,
    provider: String,
    agent_name: Option<String>,
    version: Option<String>,
    value: String,
    threshold: String,
}

/// A silence request, as `POST /api/v1/silences` takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// At least one; every matcher must match for the silence to apply.
    pub matchers: Vec<RawMatcher>,
    /// Default: now.
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
    /// When the silence ends; give this or `duration`.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// How long from `starts_at` (`2h`, `1d`); give this or `ends_at`.
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// One alert as the API and the landing page show it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub alertname: AlertName,
    pub severity: Severity,
    /// `pending`, `firing` or `resolved` (resolved, awaiting its notice).
    pub state: &'static str,
    pub account: String,
    pub provider: String,
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    pub version: Option<String>,
    pub value: String,
    pub threshold: String,
    pub active_at: Timestamp,
    pub fired_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// Ids of the active silences that match.
    pub silenced_by: Vec<String>,
    /// Whether another firing alert hides this one.
    pub inhibited: bool,
}

/// Which firing alerts inhibit others, computed once per pass.
struct Inhibitors {
    source_down: BTreeSet<String>,
    offline: BTreeSet<(String, String)>,
    overdue: BTreeSet<(String, String)>,
}

impl Inhibitors {
    fn from(alerts: &BTreeMap<AlertKey, Alert>) -> Inhibitors {
        let mut inh = Inhibitors {
            source_down: BTreeSet::new(),
            offline: BTreeSet::new(),
            overdue: BTreeSet::new(),
        };
        for (k, a) in alerts {
            if a.state != AlertState::Firing {
                continue;
            }
            match k.alertname {
                AlertName::SourceDown => {
                    inh.source_down.insert(k.account.clone());
                }
                AlertName::AgentOffline => {
                    inh.offline.insert((k.account.clone(), k.agent_id.clone()));
                }
                AlertName::AgentTokenRotationOverdue => {
                    inh.overdue.insert((k.account.clone(), k.agent_id.clone()));
                }
                _ => {}
            }
        }
        inh
    }

    /// Returns true if and only if a firing alert hides the alert with key `k`.
    fn inhibits(&self, k: &AlertKey) -> bool {
        let agent = || (k.account.clone(), k.agent_id.clone());
        (k.alertname.is_agent_level() && self.source_down.contains(&k.account))
            || (k.alertname == AlertName::AgentHeartbeatStale && self.offline.contains(&agent()))
            || (k.alertname == AlertName::AgentTokenRotationDue && self.overdue.contains(&agent()))
    }
}

impl Engine {
    /// An engine running `config`, starting from `state` (fresh, or loaded from the state file).
    pub fn new(config: EngineConfig, state: State) -> Engine {
        Engine {
            config,
            state,
            dirty: false,
        }
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

    /// Undoes an evaluation whose notifications the sink refused: alerts, the notification log and the sequences
    /// go back to `before`, so the next evaluation produces the same notifications with the same ids. Silences are
    /// kept as they are now, since the API may have changed them in between.
    pub fn rollback(&mut self, before: State) {
        let silences = std::mem::take(&mut self.state.silences);
        let next_silence = self.state.next_silence;
        self.state = before;
        self.state.silences = silences;
        self.state.next_silence = next_silence;
    }

    /// Evaluates every rule against `sources` at `now`, advances alert lifecycles, and returns the notifications
    /// that are due, in group-key order. The caller hands them to the sink before saving the state.
    pub fn evaluate(&mut self, sources: &[Arc<SourceStatus>], now: Timestamp) -> Vec<Notification> {
        let before = significant(&self.state);
        let (seen, held) = self.observe(sources, now);
        self.advance(seen, &held, now);
        let notifications = self.flush_due(now);
        let cutoff = now.checked_sub(EXPIRED_SILENCE_KEPT).unwrap_or(Timestamp::MIN);
        self.state.silences.retain(|s| s.ends_at > cutoff);
        if significant(&self.state) != before {
            self.dirty = true;
        }
        notifications
    }

    /// Step 1: what every rule sees now, and which `(account, agent level?)` pairs are held.
    fn observe(
        &self,
        sources: &[Arc<SourceStatus>],
        now: Timestamp,
    ) -> (BTreeMap<AlertKey, Observation>, BTreeSet<(String, bool)>) {
        let mut seen = BTreeMap::new();
        let mut held = BTreeSet::new();
        for s in sources {
            let rules = self.config.rules_for(&s.name);
            let provider = s.provider.as_str().to_string();
            if s.polls == 0 {
                held.insert((s.name.clone(), false));
            } else if !s.up && rules.source_down.enabled {
                let since = s.failing_since.unwrap_or(now);
                let reason = s.last_error.as_ref().map(|e| e.reason.as_str()).unwrap_or("unknown");
                seen.insert(
                    AlertKey {
                        alertname: AlertName::SourceDown,
                        account: s.name.clone(),
                        agent_id: String::new(),
                    },
                    Observation {
                        start: since,
                        provider: provider.clone(),
                        agent_name: None,
                        version: None,
                        value: format!("polls failing for {} ({reason})", human(elapsed(now, since))),
                        threshold: format!("failing for {}", human(rules.source_down.for_)),
                    },
                );
            }
            match (&s.agents, s.up) {
                (Some(list), true) => {
                    for agent in &list.agents {
                        observe_agent(&mut seen, rules, &s.name, &provider, agent, now);
                    }
                }
                _ => {
                    held.insert((s.name.clone(), true));
                }
            }
        }
        (seen, held)
    }

    /// Step 2: the lifecycle, and the groups of newly firing alerts.
    fn advance(&mut self, mut seen: BTreeMap<AlertKey, Observation>, held: &BTreeSet<(String, bool)>, now: Timestamp) {
        let config = &self.config;
        let alerts = &mut self.state.alerts;
        let mut gone = Vec::new();
        for (key, alert) in alerts.iter_mut() {
            let settings = config.rules_for(&key.account).settings(key.alertname);
            match seen.remove(key) {
                Some(obs) => {
                    alert.provider = obs.provider;
                    alert.agent_name = obs.agent_name;
                    alert.version = obs.version;
                    alert.value = obs.value;
                    alert.threshold = obs.threshold;
                    alert.severity = config.rules_for(&key.account).severity(key.alertname);
                    alert.last_true_at = now;
                    match alert.state {
                        AlertState::Pending => {
                            if now >= plus(alert.active_at, settings.for_) {
                                alert.state = AlertState::Firing;
                                alert.fired_at = Some(now);
                            }
                        }
                        AlertState::Firing => {}
                        // The condition came back before the resolved notice went out: to the recipient it never
                        // stopped, so it simply keeps firing.
                        AlertState::Resolved => {
                            alert.state = AlertState::Firing;
                            alert.resolved_at = None;
                        }
                    }
                }
                None if held.contains(&(key.account.clone(), key.alertname.is_agent_level())) => {}
                None => match alert.state {
                    AlertState::Pending => gone.push(key.clone()),
                    AlertState::Firing => {
                        if now >= plus(alert.last_true_at, settings.keep_firing_for) {
                            alert.state = AlertState::Resolved;
                            alert.resolved_at = Some(now);
                        }
                    }
                    AlertState::Resolved => {}
                },
            }
        }
        for key in gone {
            alerts.remove(&key);
        }
        for (key, obs) in seen {
            let rules = config.rules_for(&key.account);
            let for_ = rules.settings(key.alertname).for_;
            let firing = now >= plus(obs.start, for_);
            let alert = Alert {
                alertname: key.alertname,
                account: key.account.clone(),
                provider: obs.provider,
                agent_id: key.alertname.is_agent_level().then(|| key.agent_id.clone()),
                agent_name: obs.agent_name,
                version: obs.version,
                severity: rules.severity(key.alertname),
                value: obs.value,
                threshold: obs.threshold,
                state: if firing { AlertState::Firing } else { AlertState::Pending },
                active_at: obs.start,
                fired_at: firing.then_some(now),
                last_true_at: now,
                resolved_at: None,
            };
            alerts.insert(key, alert);
        }
        // A resolved alert that no notification listed as firing has nobody to tell.
        let groups = &mut self.state.groups;
        alerts.retain(|k, a| {
            a.state != AlertState::Resolved
                || groups
                    .get(&group_key(k.alertname, &k.account))
                    .is_some_and(|g| g.notified.contains(&k.agent_id))
        });
        for a in alerts.values() {
            if a.state == AlertState::Firing {
                groups.entry(a.group_key()).or_insert_with(|| GroupLog {
                    alertname: a.alertname,
                    account: a.account.clone(),
                    created_at: now,
                    next_flush: plus(now, config.group_wait),
                    last_sent: None,
                    notified: BTreeSet::new(),
                });
            }
        }
    }

    /// Step 3: looks at every group that is due and returns the notifications to send.
    fn flush_due(&mut self, now: Timestamp) -> Vec<Notification> {
        let inhibitors = Inhibitors::from(&self.state.alerts);
        let due: Vec<String> = self
            .state
            .groups
            .iter()
            .filter(|(_, g)| now >= g.next_flush)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for gk in due {
            if let Some(n) = self.flush(&gk, &inhibitors, now) {
                out.push(n);
            }
            if let Some(g) = self.state.groups.get_mut(&gk) {
                g.next_flush = plus(now, self.config.group_interval);
            }
        }
        // A group with no alert left and nothing notified is over; the next alert starts a new one.
        let alerts = &self.state.alerts;
        self.state.groups.retain(|_, g| {
            !g.notified.is_empty() || alerts.values().any(|a| a.alertname == g.alertname && a.account == g.account)
        });
        out
    }

    /// Looks at one group, Alertmanager's dedup stage: returns the notification if one is needed, and updates the
    /// notification log.
    fn flush(&mut self, gk: &str, inhibitors: &Inhibitors, now: Timestamp) -> Option<Notification> {
        let group = self.state.groups.get(gk)?.clone();
        let rules = self.config.rules_for(&group.account);
        let severity = rules.severity(group.alertname);
        if self.muted(group.alertname, &group.account, severity, now) {
            return None;
        }
        let members: Vec<&Alert> = self
            .state
            .alerts
            .range(
                AlertKey {
                    alertname: group.alertname,
                    account: group.account.clone(),
                    agent_id: String::new(),
                }..,
            )
            .take_while(|(k, _)| k.alertname == group.alertname && k.account == group.account)
            .map(|(_, a)| a)
            .collect();
        let mut firing = Vec::new();
        let mut resolved = Vec::new();
        let mut held_back = BTreeSet::new();
        for a in &members {
            let key = a.key();
            let suppressed = inhibitors.inhibits(&key) || self.silenced_by(a, now).next().is_some();
            match (a.state, suppressed) {
                (AlertState::Pending, _) => {}
                (AlertState::Firing, false) => firing.push(*a),
                (AlertState::Resolved, false) if group.notified.contains(&key.agent_id) => resolved.push(*a),
                (AlertState::Resolved, false) => {}
                (_, true) => {
                    if group.notified.contains(&key.agent_id) {
                        held_back.insert(key.agent_id);
                    }
                }
            }
        }
        let firing_ids: BTreeSet<String> = firing.iter().map(|a| a.key().agent_id).collect();
        if firing.is_empty() && resolved.is_empty() {
            // Nothing visible. Forget listed agents whose alert no longer exists at all.
            let g = self.state.groups.get_mut(gk)?;
            let alerts = &self.state.alerts;
            g.notified.retain(|id| {
                alerts.contains_key(&AlertKey {
                    alertname: group.alertname,
                    account: group.account.clone(),
                    agent_id: id.clone(),
                })
            });
            return None;
        }
        let send_resolved = self.config.send_resolved;
        let needed = !firing_ids.is_subset(&group.notified)
            || firing.is_empty()
            || (send_resolved && !resolved.is_empty())
            || group.last_sent.is_none_or(|t| now >= plus(t, self.config.repeat_interval));
        if !needed {
            return None;
        }
        let status = if firing.is_empty() {
            NotificationStatus::Resolved
        } else {
            NotificationStatus::Firing
        };
        let emit = status == NotificationStatus::Firing || send_resolved;
        let notification = emit.then(|| {
            let seq = self.state.sequences.entry(gk.to_string()).or_insert(0);
            *seq += 1;
            let mut firing_lines: Vec<AlertLine> = firing.iter().map(|a| line(a)).collect();
            let mut resolved_lines: Vec<AlertLine> = if send_resolved {
                resolved.iter().map(|a| line(a)).collect()
            } else {
                Vec::new()
            };
            let order = |l: &AlertLine| (l.agent_name.clone(), l.agent_id.clone());
            firing_lines.sort_by_key(order);
            resolved_lines.sort_by_key(order);
            Notification {
                id: format!("{:x}-{:016x}-{}", self.state.epoch, fnv1a(gk), seq),
                group_key: gk.to_string(),
                status,
                alertname: group.alertname.as_str().to_string(),
                severity,
                account: group.account.clone(),
                provider: members.first().map(|a| a.provider.clone()).unwrap_or_default(),
                to: self.config.recipients(group.alertname, severity, &group.account),
                firing: firing_lines,
                resolved: resolved_lines,
                created_at: now,
                external_url: self.config.external_url.clone(),
            }
        });
        let done: Vec<AlertKey> = resolved.iter().map(|a| a.key()).collect();
        for k in done {
            self.state.alerts.remove(&k);
        }
        let g = self.state.groups.get_mut(gk)?;
        g.notified = firing_ids.into_iter().chain(held_back).collect();
        if notification.is_some() {
            g.last_sent = Some(now);
        }
        notification
    }

    /// Returns true if and only if a mute window holds back the group `(alertname, account)` at `now`.
    fn muted(&self, alertname: AlertName, account: &str, severity: Severity, now: Timestamp) -> bool {
        let label = |n: LabelName| match n {
            LabelName::Alertname => alertname.as_str().to_string(),
            LabelName::Account => account.to_string(),
            LabelName::Severity => severity_str(severity).to_string(),
            LabelName::AgentId | LabelName::AgentName => String::new(),
        };
        self.config
            .mute_windows
            .iter()
            .any(|w| all_match(&w.matchers, &label) && w.contains(now))
    }

    /// The active silences that match `alert` at `now`.
    fn silenced_by<'a>(&'a self, alert: &'a Alert, now: Timestamp) -> impl Iterator<Item = &'a Silence> + 'a {
        self.state
            .silences
            .iter()
            .filter(move |s| s.is_active(now) && s.matches(alert))
    }

    /// Every alert, most severe first, for `GET /api/v1/alerts` and the landing page.
    pub fn alerts(&self, now: Timestamp) -> Vec<AlertView> {
        let inhibitors = Inhibitors::from(&self.state.alerts);
        let mut views: Vec<AlertView> = self
            .state
            .alerts
            .iter()
            .map(|(k, a)| AlertView {
                alertname: a.alertname,
                severity: a.severity,
                state: a.state.as_str(),
                account: a.account.clone(),
                provider: a.provider.clone(),
                agent_id: a.agent_id.clone(),
                agent_name: a.agent_name.clone(),
                version: a.version.clone(),
                value: a.value.clone(),
                threshold: a.threshold.clone(),
                active_at: a.active_at,
                fired_at: a.fired_at,
                resolved_at: a.resolved_at,
                silenced_by: self.silenced_by(a, now).map(|s| s.id.clone()).collect(),
                inhibited: inhibitors.inhibits(k),
            })
            .collect();
        views.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.alertname.cmp(&b.alertname))
                .then(a.account.cmp(&b.account))
                .then(a.agent_name.cmp(&b.agent_name))
        });
        views
    }

    /// Counts for `onprem_agent_alerts{alertname,severity,state}`: pending and firing alerts per rule and severity.
    /// Every enabled rule appears with its default severity even at zero, so a query sees `0` rather than nothing.
    pub fn alert_counts(&self) -> Vec<(String, Severity, &'static str, u64)> {
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
                *counts.entry((a.alertname, a.severity, a.state.as_str())).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .map(|((name, severity, state), n)| (name.as_str().to_string(), severity, state, n))
            .collect()
    }

    /// Every silence, including those that expired in the last day.
    pub fn silences(&self) -> &[Silence] {
        &self.state.silences
    }

    /// Validates and adds a silence. The error is a sentence for the API client.
    pub fn add_silence(&mut self, new: NewSilence, now: Timestamp) -> Result<Silence, String> {
        if new.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        if new.matchers.len() > 32 {
            return Err("a silence takes at most 32 matchers".into());
        }
        let matchers = new
            .matchers
            .into_iter()
            .map(Matcher::new)
            .collect::<Result<Vec<_>, _>>()?;
        let starts_at = new.starts_at.unwrap_or(now);
        let ends_at = match (new.ends_at, new.duration) {
            (Some(_), Some(_)) => return Err("give ends_at or duration, not both".into()),
            (None, None) => return Err("give ends_at or duration".into()),
            (Some(t), None) => t,
            (None, Some(d)) => {
                let d = humantime::parse_duration(d.trim()).map_err(|e| format!("bad duration {d:?}: {e}"))?;
                starts_at
                    .checked_add(d)
                    .map_err(|_| format!("duration {} is too long", humantime::format_duration(d)))?
            }
        };
        if ends_at <= starts_at {
            return Err(format!("ends_at ({ends_at}) must be after starts_at ({starts_at})"));
        }
        if ends_at <= now {
            return Err(format!("ends_at ({ends_at}) is in the past"));
        }
        let text = |s: Option<String>, what: &str| -> Result<String, String> {
            let s = s.unwrap_or_default();
            if s.chars().count() > 1000 {
                return Err(format!("{what} is longer than 1000 characters"));
            }
            Ok(s)
        };
        let silence = Silence {
            id: format!("{:x}-{}", self.state.epoch, self.state.next_silence),
            matchers,
            starts_at,
            ends_at,
            created_by: text(new.created_by, "created_by")?,
            comment: text(new.comment, "comment")?,
            created_at: now,
        };
        self.state.next_silence += 1;
        self.state.silences.push(silence.clone());
        self.dirty = true;
        Ok(silence)
    }

    /// Removes the silence `id`. Returns true if and only if it existed.
    pub fn delete_silence(&mut self, id: &str) -> bool {
        let before = self.state.silences.len();
        self.state.silences.retain(|s| s.id != id);
        let removed = self.state.silences.len() != before;
        self.dirty |= removed;
        removed
    }
}

/// Evaluates the agent rules for one agent.
fn observe_agent(
    seen: &mut BTreeMap<AlertKey, Observation>,
    rules: &Rules,
    account: &str,
    provider: &str,
    agent: &Agent,
    now: Timestamp,
) {
    let label = |n: LabelName| match n {
        LabelName::AgentId => agent.id.clone(),
        LabelName::AgentName => agent.name.clone(),
        _ => String::new(),
    };
    let mut add = |alertname: AlertName, start: Timestamp, value: String, threshold: String| {
        seen.insert(
            AlertKey {
                alertname,
                account: account.to_string(),
                agent_id: agent.id.clone(),
            },
            Observation {
                start,
                provider: provider.to_string(),
                agent_name: Some(agent.name.clone()),
                version: agent.version.clone(),
                value,
                threshold,
            },
        );
    };
    let applies = |s: &crate::rules::config::RuleSettings| s.enabled && all_match(&s.matchers, &label);

    if applies(&rules.heartbeat_stale) {
        let after = rules.heartbeat_after;
        let threshold = human(after);
        match (agent.last_heartbeat, agent.created_at) {
            (Some(hb), _) if elapsed(now, hb) > after => {
                let value = format!("last heartbeat {} ago", human(elapsed(now, hb)));
                add(AlertName::AgentHeartbeatStale, plus(hb, after), value, threshold);
            }
            (None, Some(created)) if elapsed(now, created) > after => {
                let value = format!("never (created {} ago)", human(elapsed(now, created)));
                add(AlertName::AgentHeartbeatStale, plus(created, after), value, threshold);
            }
            // No heartbeat and no creation date: nothing to measure from, so no verdict.
            _ => {}
        }
    }
    if applies(&rules.agent_offline) && agent.offline {
        let threshold = if rules.agent_offline.for_.is_zero() {
            "offline".to_string()
        } else {
            format!("offline for {}", human(rules.agent_offline.for_))
        };
        add(AlertName::AgentOffline, now, "offline".to_string(), threshold);
    }
    if let Some(rotated) = agent.token_rotated.filter(|_| applies(&rules.token_rotation)) {
        let age = elapsed(now, rotated);
        let max = rules.token_max_age;
        let due_at = max.saturating_sub(rules.token_warn_before);
        if age > max {
            add(
                AlertName::AgentTokenRotationOverdue,
                plus(rotated, max),
                human(age),
                format!("max age {}", human(max)),
            );
        }
        if age > due_at {
            add(
                AlertName::AgentTokenRotationDue,
                plus(rotated, due_at),
                human(age),
                format!("due at {} (max age {})", human(due_at), human(max)),
            );
        }
    }
    if let (true, Some(min), Some(version)) = (
        applies(&rules.version_outdated),
        &rules.min_version,
        agent.version.as_deref(),
    ) {
        // A version that is not semantic versioning cannot be compared, so it raises nothing.
        if parse_version(version).is_some_and(|v| v < *min) {
            add(AlertName::AgentVersionOutdated, now, version.to_string(), format!(">= {min}"));
        }
    }
}

/// The notification line for an alert. `since` is when the condition began (for a token, the day it became
/// due), which reads better than when this process first saw it.
fn line(a: &Alert) -> AlertLine {
    AlertLine {
        agent_id: a.agent_id.clone(),
        agent_name: a.agent_name.clone(),
        version: a.version.clone(),
        value: a.value.clone(),
        threshold: a.threshold.clone(),
        since: a.active_at,
        resolved_at: a.resolved_at,
    }
}

/// The state without the fields that change on every evaluation (values, `last_true_at`), to decide whether a save
/// is worth it.
fn significant(state: &State) -> State {
    let mut s = state.clone();
    for a in s.alerts.values_mut() {
        a.value.clear();
        a.last_true_at = a.active_at;
    }
    s
}

/// `t + d`, saturating at the end of time.
fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// `now - then`, or zero when `then` lies in the future (clock skew upstream).
fn elapsed(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(then)).unwrap_or(Duration::ZERO)
}

/// A duration for people: the two largest units, e.g. `97d 3h`, `3h 12m`, `4m 5s`, `42s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let pair = |a: u64, ua: &str, b: u64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua} {b}{ub}")
        }
    };
    if days > 0 {
        pair(days, "d", hours, "h")
    } else if hours > 0 {
        pair(hours, "h", minutes, "m")
    } else if minutes > 0 {
        pair(minutes, "m", seconds, "s")
    } else {
        format!("{seconds}s")
    }
}

/// FNV-1a, 64 bits: a stable hash (unlike `DefaultHasher`) for the group part of notification ids.
fn fnv1a(s: &str) -> u64 {
    s.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
