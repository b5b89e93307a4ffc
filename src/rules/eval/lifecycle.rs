//! The lifecycle, as in Prometheus: a new alert is pending, and fires once its condition has held for `for`; a
//! firing alert whose condition clears keeps firing for `keep_firing_for`, then resolves; a pending one just goes.
//! A resolved alert stays until its resolved notice has gone out (or nobody was told it fired).

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::{Observed, offline, plus};
use crate::config::alerting::EngineConfig;
use crate::domain::{Alert, AlertName, AlertState, group_key};
use crate::rules::state::{GroupLog, State};

/// Advances every alert of `state` by what the rules `seen` at `now` (sources in `held` neither start nor resolve
/// anything), and opens the notification-log group of each newly firing alert. Returns true if and only if the
/// state changed in a way worth saving.
pub fn advance(
    config: &EngineConfig,
    state: &mut State,
    (mut seen, held): Observed,
    now: Timestamp,
) -> bool {
    let alerts = &mut state.alerts;
    let mut gone = Vec::new();
    let mut changed = false;
    for (key, alert) in alerts.iter_mut() {
        let settings = config.rules_for(&key.account).settings(key.alertname);
        match seen.remove(key) {
            Some(obs) => {
                alert.provider = obs.provider;
                alert.agent_name = obs.agent_name;
                alert.version = obs.version;
                alert.value = obs.value;
                alert.threshold = obs.threshold;
                alert.value_seconds = obs.value_seconds;
                alert.threshold_seconds = obs.threshold_seconds;
                alert.summary = obs.summary;
                offline::describe(alert, now);
                alert.severity = config.rules_for(&key.account).severity(key.alertname);
                changed |= alert.keep_firing_since.take().is_some();
                match alert.state {
                    AlertState::Pending => {
                        if now >= plus(alert.active_at, settings.for_) {
                            alert.state = AlertState::Firing;
                            alert.fired_at = Some(now);
                            changed = true;
                        }
                    }
                    AlertState::Firing => {}
                    // The condition came back before the resolved notice went out: to the recipient it never
                    // stopped, so it simply keeps firing.
                    AlertState::Resolved => {
                        alert.state = AlertState::Firing;
                        alert.resolved_at = None;
                        changed = true;
                    }
                }
            }
            None if held.contains(&(key.account.clone(), key.alertname.is_agent_level())) => {}
            None => match alert.state {
                AlertState::Pending => gone.push(key.clone()),
                AlertState::Firing => {
                    changed |= alert.keep_firing_since.is_none();
                    let since = *alert.keep_firing_since.get_or_insert(now);
                    if now >= plus(since, settings.keep_firing_for) {
                        alert.state = AlertState::Resolved;
                        alert.resolved_at = Some(now);
                        alert.keep_firing_since = None;
                    }
                }
                AlertState::Resolved => {}
            },
        }
    }
    changed |= !gone.is_empty() || !seen.is_empty();
    for key in gone {
        alerts.remove(&key);
    }
    for (key, obs) in seen {
        let rules = config.rules_for(&key.account);
        let for_ = rules.settings(key.alertname).for_;
        let firing = now >= plus(obs.start, for_);
        let mut alert = Alert {
            alertname: key.alertname,
            account: key.account.clone(),
            provider: obs.provider,
            agent_id: key.alertname.is_agent_level().then(|| key.agent_id.clone()),
            agent_name: obs.agent_name,
            version: obs.version,
            severity: rules.severity(key.alertname),
            value: obs.value,
            threshold: obs.threshold,
            value_seconds: obs.value_seconds,
            threshold_seconds: obs.threshold_seconds,
            summary: obs.summary,
            state: if firing {
                AlertState::Firing
            } else {
                AlertState::Pending
            },
            active_at: obs.start,
            fired_at: firing.then_some(now),
            keep_firing_since: None,
            resolved_at: None,
        };
        offline::describe(&mut alert, now);
        alerts.insert(key, alert);
    }
    // A resolved alert that no notification listed as firing has nobody to tell.
    let groups = &mut state.groups;
    let count = alerts.len();
    alerts.retain(|k, a| {
        a.state != AlertState::Resolved
            || groups
                .get(&group_key(k.alertname, &k.account))
                .is_some_and(|g| g.notified.contains(&k.agent_id))
    });
    changed |= alerts.len() != count;
    let firing: BTreeSet<(AlertName, &str)> = alerts
        .values()
        .filter(|a| a.state == AlertState::Firing)
        .map(|a| (a.alertname, a.account.as_str()))
        .collect();
    for (alertname, account) in firing {
        groups
            .entry(group_key(alertname, account))
            .or_insert_with(|| {
                changed = true;
                GroupLog {
                    alertname,
                    account: account.to_string(),
                    created_at: now,
                    next_flush: plus(now, config.group_wait),
                    last_sent: None,
                    notified: BTreeSet::new(),
                }
            });
    }
    changed
}
