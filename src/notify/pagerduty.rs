//! The PagerDuty channel: Events API v2. A firing notification is a `trigger` event, a resolved one a `resolve`
//! event, both with the same `dedup_key` for the whole group, so that PagerDuty keeps one incident per group: a
//! retried or repeated trigger folds into the open incident instead of opening a second one, and the resolve closes
//! it.
//!
//! The routing key (an integration key of a PagerDuty service) is read from `routing_key_file` and sent only in the
//! body. PagerDuty answers 202 when it took the event, 400 for an invalid event or key (rejected, not retried), 429
//! when throttled and 5xx when troubled (both retried).

use crate::notify::Told as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{self, HttpError};
use super::{Notification, NotificationStatus, Severity};

/// Where Events API v2 events go unless `pagerduty.url` says otherwise; config holds it, as the default of a key.
pub use crate::config::receivers::PAGERDUTY_DEFAULT_URL as DEFAULT_URL;
/// The longest `payload.summary` PagerDuty accepts, in characters.
pub const SUMMARY_MAX_CHARS: usize = 1024;
/// The most agents listed in `custom_details`; events are capped at 512 KB.
pub const MAX_DETAILS: usize = 100;

/// A PagerDuty service's Events API v2 integration.
#[derive(Debug, Clone)]
pub struct PagerdutyChannel {
    /// The integration key: a secret.
    routing_key: SecretString,
    /// The events endpoint. Not a secret, but kept as one so that [`http::post_json`] takes one kind of URL.
    url: SecretString,
    client: reqwest::Client,
}

impl PagerdutyChannel {
    /// A channel sending to `url` with `routing_key` through `client`.
    pub fn new(routing_key: SecretString, url: &str, client: reqwest::Client) -> PagerdutyChannel {
        PagerdutyChannel {
            routing_key,
            url: SecretString::from(url.to_string()),
            client,
        }
    }

    /// Sends one notification as a `trigger` or `resolve` event.
    pub async fn send(&self, n: &Notification) -> Result<(), HttpError> {
        let body = event(n, self.routing_key.expose_secret());
        http::post_json(
            &self.client,
            &self.url,
            None,
            &body,
            &n.id,
            &[&self.routing_key],
        )
        .await
    }
}

/// PagerDuty's severity for ours: `critical`, `warning` or `info` (its fourth, `error`, is not used).
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// The group's `dedup_key`: the SHA-256 of the group key in hex, as Alertmanager derives its own, so that it is
/// stable across retries, repeats and restarts, and 64 characters whatever the account name (PagerDuty allows 255).
pub fn dedup_key(group_key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, group_key.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The event for `n`, with `routing_key`.
pub fn event(n: &Notification, routing_key: &str) -> Value {
    let action = match n.status {
        NotificationStatus::Firing => "trigger",
        NotificationStatus::Resolved => "resolve",
    };
    let mut summary = super::email::subject(n);
    if let Some(first) = n.firing.first().or(n.resolved.first()) {
        summary.push_str(": ");
        summary.push_str(&n.line_text(first));
        let others = (n.firing.len() + n.resolved.len()).saturating_sub(1);
        if others > 0 {
            summary.push_str(&format!(" and {others} more"));
        }
    }
    if summary.chars().count() > SUMMARY_MAX_CHARS {
        summary = summary
            .chars()
            .take(SUMMARY_MAX_CHARS - 1)
            .collect::<String>()
            + "…";
    }
    let lines = |ls: &[super::AlertLine]| -> Vec<String> {
        ls.iter()
            .take(MAX_DETAILS)
            .map(|l| n.line_text(l))
            .collect()
    };
    let mut details = json!({
        "firing": lines(&n.firing),
        "resolved": lines(&n.resolved),
        "firing_count": n.firing.len(),
        "resolved_count": n.resolved.len(),
        "account": n.account,
        "provider": n.provider_label(),
        "runbook": crate::domain::catalog::definition(n.alertname.as_str()).map(|d| d.runbook),
    });
    if n.firing.len() > MAX_DETAILS || n.resolved.len() > MAX_DETAILS {
        details["truncated"] = json!(format!(
            "only the first {MAX_DETAILS} agents of each list are shown"
        ));
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(&n.group_key),
        "client": "onprem-agent-exporter",
        "payload": {
            "summary": summary,
            "source": format!("{} account {}", n.provider_label(), n.account),
            "severity": severity(n.severity),
            "timestamp": n.created_at.to_string(),
            "component": n.provider_label(),
            "group": n.account,
            "class": n.alertname.as_str(),
            "custom_details": details,
        },
    });
    if let Some(url) = n
        .external_url
        .as_deref()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
    {
        event["client_url"] = json!(url);
        event["links"] = json!([{"href": url, "text": "onprem-agent-exporter"}]);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_notification;

    #[test]
    fn a_firing_group_triggers_and_a_resolved_one_resolves_with_the_same_dedup_key() {
        let mut n = test_notification("agent");
        let fire = event(&n, "KEY");
        assert_eq!(fire["event_action"], "trigger");
        assert_eq!(fire["routing_key"], "KEY");
        assert_eq!(fire["payload"]["severity"], "critical");
        assert_eq!(fire["payload"]["source"], "celigo account prod");
        n.status = NotificationStatus::Resolved;
        n.resolved = std::mem::take(&mut n.firing);
        n.id = "1a-00000000deadbeef-2".into();
        let resolve = event(&n, "KEY");
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(fire["dedup_key"], resolve["dedup_key"]);
        assert_eq!(fire["dedup_key"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn the_summary_never_exceeds_1024_characters() {
        let n = test_notification(&"é".repeat(5000));
        let e = event(&n, "KEY");
        let s = e["payload"]["summary"].as_str().unwrap();
        assert_eq!(s.chars().count(), SUMMARY_MAX_CHARS, "{s}");
    }
}
