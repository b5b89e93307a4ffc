//! `AgentOffline`: the platform says the agent is offline.

use std::time::Duration;

use jiff::Timestamp;

use super::{Finding, Rule, elapsed};
use crate::config::alerting::{RuleSettings, Rules};
use crate::domain::{Agent, Alert, AlertName};
use crate::humanize::duration as human;

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
        // The summary carries what the heartbeat says, which the inhibited AgentHeartbeatStale would have told:
        // an agent silent for three days is not "offline for 49 s" news.
        let for_ = rules.agent_offline.for_;
        let heartbeat = match agent.last_heartbeat {
            Some(hb) => format!("last heartbeat {} ago", human(elapsed(now, hb))),
            None => "never sent a heartbeat".to_string(),
        };
        found.push(Finding {
            alertname: AlertName::AgentOffline,
            start: now,
            value: ("offline".to_string(), Some(Duration::ZERO)),
            threshold: (human(for_), Some(for_)),
            summary: heartbeat,
        });
    }
}

/// Brings an `AgentOffline` alert's value up to `now`: the platform says only "offline", so how long comes from
/// the alert's own start. Its summary, just copied from the observation, holds the heartbeat's age and gets the
/// time offline in front. Does nothing to other rules.
pub fn describe(alert: &mut Alert, now: Timestamp) {
    if alert.alertname != AlertName::AgentOffline {
        return;
    }
    let d = elapsed(now, alert.active_at);
    alert.value = format!("offline for {}", human(d));
    alert.value_seconds = Some(d.as_secs());
    alert.summary = format!("reported offline for {}; {}", human(d), alert.summary);
}
