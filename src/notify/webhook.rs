//! The webhook channel: one POST per notification whose body is exactly Alertmanager's webhook payload, version 4,
//! so that every tool that reads Alertmanager webhooks (and there are many) reads ours:
//!
//! ```text
//! {"version": "4", "groupKey": …, "truncatedAlerts": 0, "status": "firing"|"resolved", "receiver": <name>,
//!  "groupLabels": {"account", "alertname"}, "commonLabels": {…}, "commonAnnotations": {…}, "externalURL": …,
//!  "alerts": [{"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}]}
//! ```
//!
//! An alert's labels are `alertname`, `account`, `provider`, `severity` and, for agent alerts, `agent_id` and
//! `agent_name`: the labels of the exporter's metrics and of the Prometheus rules in `alerts/`. Its annotations are
//! the catalog's `summary`, `description` and `runbook` ([`crate::domain::catalog`]), as on the Alertmanager push. Its
//! `startsAt` is when it started firing and its `generatorURL` the same deep link the push sends. A firing alert's
//! `endsAt` is Go's zero time, as Alertmanager sends for an alert with no known end.
//!
//! Delivery is at least once: a crash between the POST and the outbox's record of it sends the notification again
//! after a restart, with the same [`http::ID_HEADER`] so the receiver can drop the copy.

use crate::notify::Told as _;
use std::collections::BTreeMap;

use secrecy::SecretString;
use serde_json::{Value, json};

use super::http::{self, HttpError};
use super::{AlertLine, Notification, NotificationStatus};

/// The most alerts in one body; the rest are counted in `truncatedAlerts`, as Alertmanager's `max_alerts` does. A
/// fleet-wide outage of 10,000 agents would otherwise make a multi-megabyte POST.
pub const MAX_ALERTS: usize = 1000;

/// How Go's zero `time.Time` is written in JSON: Alertmanager's `endsAt` of an alert with no end yet.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// An HTTP endpoint that reads Alertmanager's webhook payload.
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    /// The receiver's name, sent as `receiver`.
    name: String,
    /// The URL; treated as a secret, since such URLs often carry a token.
    url: SecretString,
    /// Sent as `Authorization: Bearer …` when set.
    bearer_token: Option<SecretString>,
    client: reqwest::Client,
}

impl WebhookChannel {
    /// A channel named `name` posting to `url` through `client`.
    pub fn new(
        name: &str,
        url: SecretString,
        bearer_token: Option<SecretString>,
        client: reqwest::Client,
    ) -> WebhookChannel {
        WebhookChannel {
            name: name.to_string(),
            url,
            bearer_token,
            client,
        }
    }

    /// Posts one notification.
    pub async fn send(&self, n: &Notification) -> Result<(), HttpError> {
        let secrets: Vec<&SecretString> = self.bearer_token.iter().collect();
        http::post_json(
            &self.client,
            &self.url,
            self.bearer_token.as_ref(),
            &message(n, &self.name),
            &n.id,
            &secrets,
        )
        .await
    }
}

/// The labels of one alert of `n`.
fn labels(n: &Notification, l: &AlertLine) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("alertname".into(), n.alertname.to_string());
    m.insert("account".into(), n.account.clone());
    m.insert("provider".into(), n.provider_label().to_string());
    m.insert(
        "severity".into(),
        super::pagerduty::severity(n.severity).into(),
    );
    if let Some(id) = &l.agent_id {
        m.insert("agent_id".into(), id.clone());
    }
    if let Some(name) = &l.agent_name {
        m.insert("agent_name".into(), name.clone());
    }
    m
}

/// The annotations of one alert of `n`, from the catalog, as the Alertmanager push and the shipped rules carry them.
fn annotations(n: &Notification, l: &AlertLine) -> BTreeMap<String, String> {
    n.annotations(l)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The label set's fingerprint as Alertmanager prints it: 64-bit FNV-1a over the label names in order, each name and
/// value followed by the byte 255, in 16 hex digits (`model.LabelSet.Fingerprint` of prometheus/common).
/// Hand-written because it is ten lines and must match that one function bit for bit, which no crate promises.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[255]);
        add(value.as_bytes());
        add(&[255]);
    }
    format!("{h:016x}")
}

/// The labels (or annotations) every map in `maps` has with the same value.
fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

/// The body for `n`, sent by the receiver named `receiver`.
pub fn message(n: &Notification, receiver: &str) -> Value {
    let all: Vec<(&AlertLine, bool)> = n
        .firing
        .iter()
        .map(|l| (l, true))
        .chain(n.resolved.iter().map(|l| (l, false)))
        .collect();
    let truncated = all.len().saturating_sub(MAX_ALERTS);
    let mut label_sets = Vec::new();
    let mut annotation_sets = Vec::new();
    let mut alerts = Vec::new();
    for (l, firing) in all.into_iter().take(MAX_ALERTS) {
        let labels = labels(n, l);
        let annotations = annotations(n, l);
        let ends_at = match (firing, l.resolved_at) {
            (false, Some(t)) => t.to_string(),
            (false, None) => n.created_at.to_string(),
            (true, _) => GO_ZERO_TIME.to_string(),
        };
        alerts.push(json!({
            "status": if firing { "firing" } else { "resolved" },
            "labels": labels,
            "annotations": annotations,
            "startsAt": l.fired_at.unwrap_or(l.since).to_string(),
            "endsAt": ends_at,
            "generatorURL": n.generator_url(l),
            "fingerprint": fingerprint(&labels),
        }));
        label_sets.push(labels);
        annotation_sets.push(annotations);
    }
    let mut group_labels = BTreeMap::new();
    group_labels.insert("account".to_string(), n.account.clone());
    group_labels.insert("alertname".to_string(), n.alertname.to_string());
    // Alertmanager's group key: the route's matchers (none here), then the group labels as a label set.
    let group_key = format!(
        "{{}}:{{{}}}",
        group_labels
            .iter()
            .map(|(k, v)| format!("{k}={}", Value::String(v.clone())))
            .collect::<Vec<_>>()
            .join(", ")
    );
    json!({
        "receiver": receiver,
        // As Alertmanager's: firing if and only if an alert of the body fires. A group whose only firing alerts
        // the receiver was told about are muted now lists none of them, so its body is resolved alerts only.
        "status": if n.status == NotificationStatus::Firing && !n.firing.is_empty() {
            "firing"
        } else {
            "resolved"
        },
        "alerts": alerts,
        "groupLabels": group_labels,
        "commonLabels": common(label_sets.iter()),
        "commonAnnotations": common(annotation_sets.iter()),
        "externalURL": n.external_url.clone().unwrap_or_default(),
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_notification;

    #[test]
    fn the_fingerprint_matches_prometheus_common() {
        // The cases of prometheus/common's model/signature_test.go (TestMetricToFingerprint and the triple label
        // set of its benchmarks).
        assert_eq!(
            fingerprint(&BTreeMap::new()),
            format!("{:016x}", 14695981039346656037u64)
        );
        let ls: BTreeMap<String, String> =
            [("name", "garland, briggs"), ("fear", "love is not enough")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(fingerprint(&ls), format!("{:016x}", 5799056148416392346u64));
        let triple: BTreeMap<String, String> = ["first", "second", "third"]
            .into_iter()
            .map(|n| (format!("{n}-label"), format!("{n}-label-value")))
            .collect();
        assert_eq!(
            fingerprint(&triple),
            format!("{:016x}", 13843036195897128121u64)
        );
    }

    #[test]
    fn the_body_has_every_field_of_alertmanagers_version_4_payload() {
        let mut n = test_notification("agent one");
        let mut gone = n.firing[0].clone();
        gone.agent_id = Some("a2".into());
        gone.agent_name = Some("agent two".into());
        gone.resolved_at = Some("2025-03-01T10:11:00Z".parse().unwrap());
        n.resolved = vec![gone];
        let m = message(&n, "hook");
        assert_eq!(m["version"], "4");
        assert_eq!(m["receiver"], "hook");
        assert_eq!(m["status"], "firing");
        assert_eq!(m["truncatedAlerts"], 0);
        assert_eq!(
            m["groupKey"],
            "{}:{account=\"prod\", alertname=\"AgentOffline\"}"
        );
        assert_eq!(
            m["groupLabels"],
            json!({"account": "prod", "alertname": "AgentOffline"})
        );
        assert_eq!(m["externalURL"], "https://exporter.example.com");
        assert_eq!(m["commonLabels"]["severity"], "critical");
        assert!(m["commonLabels"].get("agent_id").is_none());
        let a = &m["alerts"][0];
        assert_eq!(a["status"], "firing");
        assert_eq!(a["labels"]["agent_name"], "agent one");
        assert_eq!(a["startsAt"], "2025-03-01T10:00:00Z");
        assert_eq!(a["endsAt"], GO_ZERO_TIME);
        // The same deep link the Alertmanager push sends.
        assert_eq!(
            a["generatorURL"],
            "https://exporter.example.com/#agent-prod-a1"
        );
        let keys: Vec<&String> = a["annotations"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["description", "runbook", "summary"]);
        assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
        let r = &m["alerts"][1];
        assert_eq!(r["status"], "resolved");
        assert_eq!(r["endsAt"], "2025-03-01T10:11:00Z");
        assert_ne!(a["fingerprint"], r["fingerprint"]);
    }

    #[test]
    fn the_status_is_firing_only_when_an_alert_of_the_body_fires() {
        let mut n = test_notification("agent one");
        assert_eq!(message(&n, "hook")["status"], "firing");
        // The told alert is muted now and another resolved: nothing in the body fires.
        n.muted = std::mem::take(&mut n.firing);
        n.resolved = n.muted.clone();
        n.resolved[0].agent_id = Some("a2".into());
        let m = message(&n, "hook");
        assert_eq!(m["status"], "resolved", "{m:#}");
        assert_eq!(m["alerts"][0]["status"], "resolved", "{m:#}");
    }

    #[test]
    fn more_than_max_alerts_are_counted_as_truncated() {
        let mut n = test_notification("x");
        let line = n.firing[0].clone();
        n.firing = (0..MAX_ALERTS + 5)
            .map(|i| AlertLine {
                agent_id: Some(format!("a{i}")),
                ..line.clone()
            })
            .collect();
        let m = message(&n, "hook");
        assert_eq!(m["alerts"].as_array().unwrap().len(), MAX_ALERTS);
        assert_eq!(m["truncatedAlerts"], 5);
    }
}
