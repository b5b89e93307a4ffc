//! `AgentTokenRotationDue` (a warning `warn_before` ahead of `max_age`) and `AgentTokenRotationOverdue` (past
//! `max_age`): the age of the agent's access token against the rotation policy.

use jiff::Timestamp;

use super::{Finding, Rule, elapsed, plus};
use crate::config::alerting::{RuleSettings, Rules};
use crate::domain::{Agent, AlertName};
use crate::humanize::duration as human;

/// See the module documentation.
pub struct TokenRotation;

impl Rule for TokenRotation {
    fn settings<'r>(&self, rules: &'r Rules) -> &'r RuleSettings {
        &rules.token_rotation
    }

    fn agent(&self, rules: &Rules, agent: &Agent, now: Timestamp, found: &mut Vec<Finding>) {
        // A provider without token dates never triggers the token rules.
        let Some(rotated) = agent.token_rotated else {
            return;
        };
        let age = elapsed(now, rotated);
        let max = rules.token_max_age;
        let due_at = max.saturating_sub(rules.token_warn_before);
        if age > max {
            found.push(Finding {
                alertname: AlertName::AgentTokenRotationOverdue,
                start: plus(rotated, max),
                value: (human(age), Some(age)),
                threshold: (human(max), Some(max)),
                summary: format!("token {} old; policy {}", human(age), human(max)),
            });
        }
        // Due ends where Overdue begins, as in the shipped rules: an Alertmanager without inhibit rules still sees
        // one alert per token.
        if age > due_at && age <= max {
            let left = max.saturating_sub(age);
            let summary = if left.is_zero() {
                format!("token {} old; policy {}", human(age), human(max))
            } else {
                format!(
                    "token {} old; policy {}, due in {}",
                    human(age),
                    human(max),
                    human(left)
                )
            };
            found.push(Finding {
                alertname: AlertName::AgentTokenRotationDue,
                start: plus(rotated, due_at),
                value: (human(age), Some(age)),
                threshold: (human(due_at), Some(due_at)),
                summary,
            });
        }
    }
}
