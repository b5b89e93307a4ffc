//! `AgentOffline`: the platform says the agent is offline.

use std::time::Duration;

use jiff::Timestamp;

use super::{Finding, Rule, elapsed};
use crate::config::alerting::{RuleSettings, Rules};
use crate::domain::{Agent, Alert, AlertName};
use crate::humanize::{duration as human, words};

/// See the module documentation.
pub struct Offline;

impl Rule for Offline {
    fn settings<'r>(&self, rules: &'r Rules) -> &'r RuleSettings {
        &rules.agent_offline
    }

    fn agent(&self, rules: &Rules, agent: &Agent, now: Timestamp, found: &mut Vec<Finding>) {
        if !agent.offline {
            return;
        }
        // The value and the sentence count from the alert's start, which only the lifecycle knows: see
        // `describe`.
        let for_ = rules.agent_offline.for_;
        found.push(Finding {
            alertname: AlertName::AgentOffline,
            start: now,
            value: ("offline".to_string(), Some(Duration::ZERO)),
            threshold: (human(for_), Some(for_)),
            summary: "offline".to_string(),
        });
    }
}

/// Brings an `AgentOffline` alert's value up to `now`: the platform says only "offline", so how long comes from
/// the alert's own start. Does nothing to other rules.
pub fn describe(alert: &mut Alert, now: Timestamp) {
    if alert.alertname != AlertName::AgentOffline {
        return;
    }
    let d = elapsed(now, alert.active_at);
    alert.value = format!("offline for {}", human(d));
    alert.value_seconds = Some(d.as_secs());
    alert.summary = format!("offline for {}", words(d));
}
