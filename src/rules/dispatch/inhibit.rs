//! Inhibition, as Alertmanager's `inhibit/`: an alert that explains another hides it. A firing `SourceDown` hides
//! that source's agent alerts; a pending or firing `AgentOffline` hides `AgentHeartbeatStale` for the same agent (one
//! notice per problem: an agent the platform reports offline is AgentOffline's business from the first evaluation
//! that sees it, not only once `for` has passed); a firing `AgentTokenRotationOverdue` hides
//! `AgentTokenRotationDue` for the same agent.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{Alert, AlertKey, AlertName, AlertState};

/// Which alerts inhibit others, computed once per pass. Nested maps so that lookups need no allocation.
pub struct Inhibitors {
    /// Accounts with a firing `SourceDown`.
    source_down: BTreeSet<String>,
    /// Per account, agents with a pending or firing `AgentOffline`.
    offline: BTreeMap<String, BTreeSet<String>>,
    /// Per account, agents with a firing `AgentTokenRotationOverdue`.
    overdue: BTreeMap<String, BTreeSet<String>>,
}

/// Returns a test that is true if and only if an alert key is `AgentHeartbeatStale` for an agent whose `AgentOffline`
/// is pending or firing in `alerts`: such an agent is `AgentOffline`'s alone, whoever delivers the alerts (the
/// built-in notifier through inhibition, Alertmanager by never being told). The same sets the engine inhibits with.
pub fn covered_by_agent_offline(alerts: &BTreeMap<AlertKey, Alert>) -> impl Fn(&AlertKey) -> bool {
    let inh = Inhibitors::from(alerts);
    move |k| {
        k.alertname == AlertName::AgentHeartbeatStale
            && inh
                .offline
                .get(&k.account)
                .is_some_and(|ids| ids.contains(&k.agent_id))
    }
}

impl Inhibitors {
    pub fn from(alerts: &BTreeMap<AlertKey, Alert>) -> Inhibitors {
        let mut inh = Inhibitors {
            source_down: BTreeSet::new(),
            offline: BTreeMap::new(),
            overdue: BTreeMap::new(),
        };
        for (k, a) in alerts {
            let inhibits = match a.state {
                AlertState::Firing => true,
                // An agent the platform reports offline is AgentOffline's business while it waits out `for`.
                AlertState::Pending => k.alertname == AlertName::AgentOffline,
                AlertState::Resolved => false,
            };
            if !inhibits {
                continue;
            }
            let agents = match k.alertname {
                AlertName::SourceDown => {
                    inh.source_down.insert(k.account.clone());
                    continue;
                }
                AlertName::AgentOffline => &mut inh.offline,
                AlertName::AgentTokenRotationOverdue => &mut inh.overdue,
                _ => continue,
            };
            agents
                .entry(k.account.clone())
                .or_default()
                .insert(k.agent_id.clone());
        }
        inh
    }

    /// Returns true if and only if another alert hides the alert with key `k`.
    pub fn inhibits(&self, k: &AlertKey) -> bool {
        self.inhibited_by(k).is_some()
    }

    /// The rule whose alert hides the alert with key `k`, if one does.
    pub fn inhibited_by(&self, k: &AlertKey) -> Option<AlertName> {
        let hit = |m: &BTreeMap<String, BTreeSet<String>>| {
            m.get(&k.account)
                .is_some_and(|ids| ids.contains(&k.agent_id))
        };
        if k.alertname.is_agent_level() && self.source_down.contains(&k.account) {
            Some(AlertName::SourceDown)
        } else if k.alertname == AlertName::AgentHeartbeatStale && hit(&self.offline) {
            Some(AlertName::AgentOffline)
        } else if k.alertname == AlertName::AgentTokenRotationDue && hit(&self.overdue) {
            Some(AlertName::AgentTokenRotationOverdue)
        } else {
            None
        }
    }
}
