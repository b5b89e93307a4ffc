//! Alerts: the built-in rules' names, severities, and one alert instance with its key and lifecycle state.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::agent::Provider;
use crate::domain::matcher::LabelName;

/// The built-in rules. The names are a contract: they appear in emails, in `alertname` labels, in routes and in
/// silences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertName {
    /// Heartbeat age above `after`, or no heartbeat ever from an agent created longer ago than `after`.
    AgentHeartbeatStale,
    /// The platform says the agent is offline.
    AgentOffline,
    /// Token age above `max_age - warn_before` (warning).
    AgentTokenRotationDue,
    /// Token age above `max_age` (critical).
    AgentTokenRotationOverdue,
    /// The source's polls have been failing; the exporter is blind to that account.
    SourceDown,
    /// The agent runs a version below `min_version`.
    AgentVersionOutdated,
    /// Not a rule: the `info` notice `test-notify` sends to one receiver. It is never evaluated, routed, silenced or
    /// stored, and is not in [`AlertName::ALL`]; [`AlertName::parse`] does not accept it, so config cannot name it.
    TestNotification,
}

impl AlertName {
    /// Every rule, in the order they are evaluated and listed.
    pub const ALL: [AlertName; 6] = [
        AlertName::AgentHeartbeatStale,
        AlertName::AgentOffline,
        AlertName::AgentTokenRotationDue,
        AlertName::AgentTokenRotationOverdue,
        AlertName::SourceDown,
        AlertName::AgentVersionOutdated,
    ];

    /// The `alertname` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertName::AgentHeartbeatStale => "AgentHeartbeatStale",
            AlertName::AgentOffline => "AgentOffline",
            AlertName::AgentTokenRotationDue => "AgentTokenRotationDue",
            AlertName::AgentTokenRotationOverdue => "AgentTokenRotationOverdue",
            AlertName::SourceDown => "SourceDown",
            AlertName::AgentVersionOutdated => "AgentVersionOutdated",
            AlertName::TestNotification => "TestNotification",
        }
    }

    /// The rule with this `alertname`, if there is one.
    pub fn parse(s: &str) -> Option<AlertName> {
        AlertName::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Returns true if and only if the alert is about one agent (as opposed to the whole source).
    pub fn is_agent_level(self) -> bool {
        self != AlertName::SourceDown
    }
}

impl fmt::Display for AlertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Alert severity, as in Prometheus rules.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For information; nobody needs to act.
    Info,
    /// Someone should look soon.
    #[default]
    Warning,
    /// Someone must act now.
    Critical,
}

impl Severity {
    /// The `severity` label value: `info`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one alert: the rule, the source and the agent (empty for source-level alerts).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    /// The rule; first, so that a group's alerts are adjacent in a map ordered by key.
    pub alertname: AlertName,
    /// The source name.
    pub account: String,
    /// The agent's id; empty for source-level alerts.
    pub agent_id: String,
}

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds but not yet for `for`.
    Pending,
    /// The condition has held for `for` (or stopped less than `keep_firing_for` ago).
    Firing,
    /// It fired, notified someone, and stopped; kept until the resolved notice has gone out.
    Resolved,
}

impl AlertState {
    /// The `state` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule that raised it.
    pub alertname: AlertName,
    /// The source name.
    pub account: String,
    /// The provider (`celigo`), for the notification.
    pub provider: Provider,
    /// `None` for source-level alerts.
    pub agent_id: Option<String>,
    /// As the upstream sent it; untrusted.
    pub agent_name: Option<String>,
    /// The agent's version at the last observation, for the email's table.
    pub version: Option<String>,
    /// The rule's severity for this source.
    pub severity: Severity,
    /// The observed value in human units, as of the last evaluation that saw the condition.
    pub value: String,
    /// The threshold in human units.
    pub threshold: String,
    /// The observed value in seconds; `None` when the value is not a duration (a version).
    #[serde(default)]
    pub value_seconds: Option<u64>,
    /// The threshold in seconds; `None` when it is not a duration.
    #[serde(default)]
    pub threshold_seconds: Option<u64>,
    /// One plain sentence for people (`offline for 12 min`, `token 97 days old; policy 90 days`).
    #[serde(default)]
    pub summary: String,
    /// Pending, firing, or resolved awaiting its notice.
    pub state: AlertState,
    /// When the condition started to hold: derived from the data where it can be (heartbeat + `after`, the first
    /// failed poll, token date + allowed age), else the first evaluation that saw it. `for` counts from here.
    pub active_at: Timestamp,
    /// When the alert went from pending to firing.
    pub fired_at: Option<Timestamp>,
    /// The first evaluation that saw the condition clear while the alert was firing; `keep_firing_for` counts from
    /// here, as in Prometheus. `None` while the condition holds.
    #[serde(default)]
    pub keep_firing_since: Option<Timestamp>,
    /// When it resolved.
    pub resolved_at: Option<Timestamp>,
}

impl Alert {
    /// The alert's identity.
    pub fn key(&self) -> AlertKey {
        AlertKey {
            alertname: self.alertname,
            account: self.account.clone(),
            agent_id: self.agent_id.clone().unwrap_or_default(),
        }
    }

    /// The alert's group key, `"<alertname>/<account>"`.
    pub fn group_key(&self) -> String {
        group_key(self.alertname, &self.account)
    }

    /// The value of a label, empty when the alert does not carry it (Alertmanager semantics).
    pub fn label(&self, name: LabelName) -> String {
        match name {
            LabelName::Alertname => self.alertname.as_str().to_string(),
            LabelName::Account => self.account.clone(),
            LabelName::AgentId => self.agent_id.clone().unwrap_or_default(),
            LabelName::AgentName => self.agent_name.clone().unwrap_or_default(),
            LabelName::Severity => self.severity.as_str().to_string(),
        }
    }
}

/// The group key of `(alertname, account)`.
pub fn group_key(alertname: AlertName, account: &str) -> String {
    format!("{alertname}/{account}")
}
