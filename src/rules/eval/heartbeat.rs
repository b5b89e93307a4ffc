//! `AgentHeartbeatStale`: the heartbeat is older than `heartbeat_after`, or an agent created longer ago than that
//! never sent one.

use jiff::Timestamp;

use super::{Finding, Rule, elapsed, plus};
use crate::config::alerting::{RuleSettings, Rules};
use crate::domain::{Agent, AlertName};
use crate::humanize::duration as human;

/// See the module documentation.
pub struct HeartbeatStale;

impl Rule for HeartbeatStale {
    fn settings<'r>(&self, rules: &'r Rules) -> &'r RuleSettings {
        &rules.heartbeat_stale
    }

    fn agent(&self, rules: &Rules, agent: &Agent, now: Timestamp, found: &mut Vec<Finding>) {
        let after = rules.heartbeat_after;
        let threshold = (human(after), Some(after));
        match (agent.last_heartbeat, agent.created_at) {
            (Some(hb), _) if elapsed(now, hb) > after => {
                let age = elapsed(now, hb);
                found.push(Finding {
                    alertname: AlertName::AgentHeartbeatStale,
                    start: plus(hb, after),
                    value: (format!("last heartbeat {} ago", human(age)), Some(age)),
                    threshold,
                    summary: format!("last heartbeat {} ago; limit {}", human(age), human(after)),
                });
            }
            (None, Some(created)) if elapsed(now, created) > after => {
                let age = elapsed(now, created);
                found.push(Finding {
                    alertname: AlertName::AgentHeartbeatStale,
                    start: plus(created, after),
                    value: (format!("never (created {} ago)", human(age)), Some(age)),
                    threshold,
                    summary: format!(
                        "no heartbeat since it was created {} ago; limit {}",
                        human(age),
                        human(after)
                    ),
                });
            }
            // No heartbeat and no creation date: nothing to measure from, so no verdict.
            _ => {}
        }
    }
}
