//! The one definition of every alert: its name, default severity, identity labels, threshold semantics and the
//! annotations (`summary`, `description`, `runbook`) every path renders from it: the built-in notifier's channels
//! (email, Slack, Teams, PagerDuty, webhook), the Alertmanager push, and the shipped Prometheus rules in
//! `alerts/onprem-agents.rules.yml`, which a test holds against this file.
//!
//! It imports nothing of the crate, like the rest of [`crate::domain`], so every layer can use it.

use std::collections::BTreeMap;
use std::time::Duration;

/// The labels that identify an agent alert, and nothing else: values and thresholds change every evaluation and go
/// into the annotations, or Alertmanager would see a new alert each time. A source alert has the first four.
pub const AGENT_LABELS: [&str; 6] = [
    "alertname",
    "severity",
    "account",
    "provider",
    "agent_id",
    "agent_name",
];

/// The labels that identify a source alert (`SourceDown`).
pub const SOURCE_LABELS: [&str; 4] = ["alertname", "severity", "account", "provider"];

/// The annotations every alert carries on every path.
pub const ANNOTATIONS: [&str; 3] = ["summary", "description", "runbook"];

/// Default heartbeat age above which `AgentHeartbeatStale` fires.
pub const HEARTBEAT_AFTER: Duration = Duration::from_secs(10 * 60);
/// Default `for` of `AgentOffline`: a restart or a short network blip does not page.
pub const OFFLINE_FOR: Duration = Duration::from_secs(5 * 60);
/// Default token rotation policy: `AgentTokenRotationOverdue` fires above this age.
pub const TOKEN_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);
/// Default notice before the policy: `AgentTokenRotationDue` fires above `max_age - warn_before` and stops where
/// Overdue begins, so a token is never Due and Overdue at once.
pub const TOKEN_WARN_BEFORE: Duration = Duration::from_secs(14 * 86_400);
/// Default `for` of `SourceDown`.
pub const SOURCE_DOWN_FOR: Duration = Duration::from_secs(10 * 60);

/// One alert as every path tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Definition {
    /// The `alertname` label.
    pub name: &'static str,
    /// The default `severity` label (`alerting.rules.*.severity` may change it in the built-in engine).
    pub severity: &'static str,
    /// True for agent alerts ([`AGENT_LABELS`]), false for source alerts ([`SOURCE_LABELS`]).
    pub agent_level: bool,
    /// When it fires, in words, with the default thresholds; the same condition as the shipped rule's `expr`.
    pub condition: &'static str,
    /// What it means, completing "The … agent X (id …, account …)" or "The … account X".
    pub meaning: &'static str,
    /// What to do, the `runbook` annotation, word for word the shipped rule's.
    pub runbook: &'static str,
    /// Whether `alerts/onprem-agents.rules.yml` carries it (`AgentVersionOutdated` needs a `min_version` the rules
    /// file cannot know).
    pub in_shipped_rules: bool,
}

/// Every alert of the built-in engine, in the order it evaluates them.
pub const ALERTS: [Definition; 6] = [
    Definition {
        name: "AgentHeartbeatStale",
        severity: "critical",
        agent_level: true,
        condition: "heartbeat age above 10m (agents that never sent one count from their creation) while the \
                    platform does not report the agent offline and its source is up",
        meaning: "has not sent a heartbeat within the limit, and the platform has not marked it offline yet",
        runbook: "On the agent's host, check that the agent service is running and can reach the platform (proxy, \
                  firewall, DNS, clock). Restart the service if it is hung. If the host is gone, disable or delete \
                  the agent in the platform so it stops counting.",
        in_shipped_rules: true,
    },
    Definition {
        name: "AgentOffline",
        severity: "critical",
        agent_level: true,
        condition: "the platform reports the agent offline, for 5m",
        meaning: "is reported offline by the platform; flows that run through this agent are failing",
        runbook: "On the agent's host, check the agent service and its log, then its outbound access to the \
                  platform. An agent that never sent a heartbeat was registered but never installed or started: \
                  finish the installation with its token, or delete it.",
        in_shipped_rules: true,
    },
    Definition {
        name: "AgentTokenRotationDue",
        severity: "warning",
        agent_level: true,
        condition: "token age above 76d (90d policy minus 14d notice) and at most 90d, where Overdue begins",
        meaning: "has an access token that must be rotated soon to stay within the rotation policy",
        runbook: "Regenerate the agent's token in the platform, put the new token in the agent's configuration on \
                  its host and restart the agent, then confirm it is online again. Schedule the change before the \
                  90 days are up.",
        in_shipped_rules: true,
    },
    Definition {
        name: "AgentTokenRotationOverdue",
        severity: "critical",
        agent_level: true,
        condition: "token age above 90d",
        meaning: "has an access token older than the rotation policy allows",
        runbook: "Rotate now: regenerate the agent's token in the platform, put the new token in the agent's \
                  configuration on its host and restart the agent, then confirm it is online again. If the agent \
                  is no longer used, delete it instead.",
        in_shipped_rules: true,
    },
    Definition {
        name: "SourceDown",
        severity: "critical",
        agent_level: false,
        condition: "every poll of the source failed, for 10m",
        meaning: "cannot be polled, so its agents' status is unknown and the last good poll is shown",
        runbook: "Look at onprem_agent_source_errors_total for this account to see why: unauthorized means the API \
                  token was revoked or is wrong (replace the token file); rate_limited means other clients share \
                  the quota (raise poll_interval); invalid_records means the platform answered with records none \
                  of which could be read; timeout, connect and http_5xx point at the network, a proxy or the \
                  platform's status page. The exporter log names each failure.",
        in_shipped_rules: true,
    },
    Definition {
        name: "AgentVersionOutdated",
        severity: "warning",
        agent_level: true,
        condition: "the agent's semantic version is below alerting.rules.agent_version_outdated.min_version",
        meaning: "runs a version older than the minimum this exporter is configured to accept",
        runbook: "Upgrade the agent on its host to the minimum version or later, following the platform's upgrade \
                  guide, then confirm it reports the new version.",
        in_shipped_rules: false,
    },
];

/// The definition of the alert named `name`, if there is one.
pub fn definition(name: &str) -> Option<&'static Definition> {
    ALERTS.iter().find(|d| d.name == name)
}

/// What one alert is about, as every path knows it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The `alertname` label.
    pub alertname: &'a str,
    /// The source name (`account` label).
    pub account: &'a str,
    /// The `provider` label.
    pub provider: &'a str,
    /// `None` for source alerts.
    pub agent_id: Option<&'a str>,
    /// The agent's name as the upstream sent it: untrusted, folded here, escaped by each channel.
    pub agent_name: Option<&'a str>,
    /// The engine's sentence for the current value and threshold, e.g. `last heartbeat 3h 12m ago; limit 10m`.
    pub detail: &'a str,
}

/// The annotations of an alert: `summary` (one line), `description` (what it means and the current value) and
/// `runbook` (what to do). Line breaks and other control characters in upstream strings are folded into single
/// spaces, as the shipped rules' `reReplaceAll` does. An alert name the catalog does not know still gets all three.
pub fn annotations(s: &Subject<'_>) -> BTreeMap<&'static str, String> {
    let def = definition(s.alertname);
    let who = match (s.agent_id, s.agent_name) {
        (Some(id), Some(name)) => format!("Agent {name} ({id}, account {})", s.account),
        (Some(id), None) => format!("Agent {id} (account {})", s.account),
        (None, _) => format!("Source {}", s.account),
    };
    let summary = format!("{who}: {}", s.detail);
    let description = match (s.agent_id, def) {
        (Some(id), Some(d)) => format!(
            "The {} agent {} (id {id}, account {}) {}. Now: {}.",
            s.provider,
            s.agent_name.unwrap_or(id),
            s.account,
            d.meaning,
            s.detail
        ),
        (None, Some(d)) => format!(
            "The {} account {} {}. Now: {}.",
            s.provider, s.account, d.meaning, s.detail
        ),
        (_, None) => format!("{} for {who}: {}.", s.alertname, s.detail),
    };
    BTreeMap::from([
        ("summary", fold(&summary)),
        ("description", fold(&description)),
        (
            "runbook",
            def.map(|d| d.runbook).unwrap_or_default().to_string(),
        ),
    ])
}

/// `s` with every control character (CR, LF, TAB, ...) turned into a space and runs of whitespace collapsed: one
/// line, whatever the upstream sent.
pub fn fold(s: &str) -> String {
    let replaced: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    replaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_has_the_three_annotations_on_one_line() {
        for d in ALERTS {
            let s = Subject {
                alertname: d.name,
                account: "prod",
                provider: "celigo",
                agent_id: d.agent_level.then_some("a1"),
                agent_name: d.agent_level.then_some("edge\r\nInjected: yes"),
                detail: "last heartbeat 3h ago;\nlimit 10m",
            };
            let a = annotations(&s);
            let mut want = ANNOTATIONS.to_vec();
            want.sort_unstable();
            assert_eq!(a.keys().copied().collect::<Vec<_>>(), want, "{}", d.name);
            for (k, v) in &a {
                assert!(
                    !v.is_empty() && !v.contains(['\r', '\n']),
                    "{} {k}: {v:?}",
                    d.name
                );
            }
            if d.agent_level {
                assert!(
                    a["summary"].contains("Agent edge Injected: yes (a1, account prod)"),
                    "{a:?}"
                );
            }
        }
    }

    #[test]
    fn names_are_unique_and_severities_are_known() {
        let names: std::collections::BTreeSet<_> = ALERTS.iter().map(|d| d.name).collect();
        assert_eq!(names.len(), ALERTS.len());
        for d in ALERTS {
            assert!(
                ["info", "warning", "critical"].contains(&d.severity),
                "{d:?}"
            );
        }
    }
}
