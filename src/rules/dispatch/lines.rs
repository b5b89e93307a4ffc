//! What a notification says about each alert: its line, the links to the exporter's page, and what a `SourceDown`
//! notice tells about the failing source.

use crate::domain::{Alert, AlertLine, SourceProblem};
use crate::status::SourceStatus;

/// The notification line for an alert. `since` is when the condition began (for a token, the day it became
/// due), which reads better than when this process first saw it.
pub fn line(a: &Alert, external_url: Option<&str>) -> AlertLine {
    AlertLine {
        agent_id: a.agent_id.clone(),
        agent_name: a.agent_name.clone(),
        version: a.version.clone(),
        value: a.value.clone(),
        threshold: a.threshold.clone(),
        since: a.active_at,
        resolved_at: a.resolved_at,
        value_seconds: a.value_seconds,
        threshold_seconds: a.threshold_seconds,
        summary: a.summary.clone(),
        muted_by: None,
        fired_at: a.fired_at,
        new: false,
        link: a
            .agent_id
            .as_deref()
            .and_then(|id| agent_link(external_url?, &a.account, id)),
    }
}

/// The link to an agent on the exporter's page: `<external_url>#agent-<account>-<agent id>`, the fragment
/// percent-encoded by `url`. `None` when the URL does not parse (config validation makes that unexpected).
pub fn agent_link(external_url: &str, account: &str, agent_id: &str) -> Option<String> {
    let mut url = url::Url::parse(external_url).ok()?;
    url.set_fragment(Some(&format!("agent-{account}-{agent_id}")));
    Some(url.to_string())
}

/// The link to a source on the exporter's page: `<external_url>#source-<account>`, encoded as [`agent_link`].
pub fn source_link(external_url: &str, account: &str) -> Option<String> {
    let mut url = url::Url::parse(external_url).ok()?;
    url.set_fragment(Some(&format!("source-{account}")));
    Some(url.to_string())
}

/// What a `SourceDown` notice says about `s`, or `None` while `s` is up (a notice made in the evaluation that saw
/// it recover).
pub fn source_problem(s: &SourceStatus) -> Option<SourceProblem> {
    if s.up {
        return None;
    }
    let error = s.last_error.as_ref();
    Some(SourceProblem {
        reason: error.map_or("unknown", |e| e.reason.as_str()).to_string(),
        message: error.map(|e| e.message.clone()).unwrap_or_default(),
        url: error.and_then(|e| e.url.clone()),
        failing_since: s.failing_since,
        last_success: s.last_success,
        agents_in_last_snapshot: s.agents.as_ref().map(|l| l.agents.len()),
    })
}
