//! Read-only views of the engine for people: every alert with its silences and inhibition, as
//! `GET /api/v1/alerts` and the landing page show it.

use jiff::Timestamp;
use serde::Serialize;

use crate::domain::AlertName;
use std::collections::BTreeMap;

use crate::domain::{Alert, AlertKey, Provider, Severity, Silence};
use crate::rules::dispatch::inhibit::Inhibitors;
use crate::rules::dispatch::mute::silenced_by;
use crate::rules::engine::Engine;

/// One alert as the API and the landing page show it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    /// The rule.
    pub alertname: AlertName,
    /// The rule's severity for this source.
    pub severity: Severity,
    /// `pending`, `firing` or `resolved` (resolved, awaiting its notice).
    pub state: &'static str,
    /// The source name.
    pub account: String,
    /// The provider label.
    pub provider: Provider,
    /// `None` for source-level alerts.
    pub agent_id: Option<String>,
    /// As the upstream sent it: escape before rendering.
    pub agent_name: Option<String>,
    /// The agent's version.
    pub version: Option<String>,
    /// The observed value in human units.
    pub value: String,
    /// The threshold in human units.
    pub threshold: String,
    /// The observed value in seconds, beside the text for scripts that compare; `null` for
    /// `AgentVersionOutdated`, whose value is a version.
    pub value_seconds: Option<u64>,
    /// The threshold in seconds; `null` for `AgentVersionOutdated`.
    pub threshold_seconds: Option<u64>,
    /// One plain sentence (`offline for 12 min`, `token 97 days old; policy 90 days`).
    pub summary: String,
    /// When the condition began.
    pub active_at: Timestamp,
    /// When the alert fired.
    pub fired_at: Option<Timestamp>,
    /// When it resolved.
    pub resolved_at: Option<Timestamp>,
    /// Ids of the active silences that match.
    pub silenced_by: Vec<String>,
    /// Whether another alert hides this one (a firing `SourceDown` or `AgentTokenRotationOverdue`, a pending or
    /// firing `AgentOffline`).
    pub inhibited: bool,
}

impl Engine {
    /// Every alert, most severe first: [`views`] of the engine's own alerts and silences.
    pub fn alerts(&self, now: Timestamp) -> Vec<AlertView> {
        views(&self.state().alerts, &self.silences(), now)
    }
}

/// Every alert of `alerts`, most severe first, muted by `silences` as of `now`, for `GET /api/v1/alerts` and the
/// landing page.
pub fn views(
    alerts: &BTreeMap<AlertKey, Alert>,
    silences: &[Silence],
    now: Timestamp,
) -> Vec<AlertView> {
    let inhibitors = Inhibitors::from(alerts);
    let mut views: Vec<AlertView> = alerts
        .iter()
        .map(|(k, a)| AlertView {
            alertname: a.alertname,
            severity: a.severity,
            state: a.state.as_str(),
            account: a.account.clone(),
            provider: a.provider,
            agent_id: a.agent_id.clone(),
            agent_name: a.agent_name.clone(),
            version: a.version.clone(),
            value: a.value.clone(),
            threshold: a.threshold.clone(),
            value_seconds: a.value_seconds,
            threshold_seconds: a.threshold_seconds,
            summary: a.summary.clone(),
            active_at: a.active_at,
            fired_at: a.fired_at,
            resolved_at: a.resolved_at,
            silenced_by: silenced_by(silences, a, now)
                .map(|s| s.id.clone())
                .collect(),
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
