//! Notification delivery, one file per channel. The dispatch stage hands over [`Notification`]s; this module renders
//! and delivers them, and owns the durable outbox that makes delivery survive SMTP outages and restarts.
//!
//! - [`email`]: SMTP (or `.eml` files for the demo).
//! - [`slack`], [`msteams`], [`pagerduty`], [`webhook`]: the receivers of `alerting.receivers`, each one JSON POST
//!   built from a [`Notification`]; [`http`] holds what the four share (the client, status codes, redaction).
//! - [`dispatch`]: picks the channel for each message the outbox hands it; [`outbox`] stores one message per
//!   notification and destination and retries each on its own.

pub mod alertmanager;
pub mod dispatch;
pub mod email;
pub mod http;
pub mod msteams;
pub mod outbox;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

pub use crate::domain::alert::Severity;
pub use crate::domain::notification::{
    AlertLine, Channel, Notification, NotificationSink, NotificationStatus, ReceiverRef, SinkError,
    SourceProblem,
};

/// What every channel says of one alert of a notification, from [`crate::domain::catalog`]: the same annotations,
/// line and deep link on the Alertmanager push, the webhook, chat, PagerDuty and email. A trait here rather than
/// methods on [`Notification`] because the domain types import nothing, and the links are dispatch's.
pub trait Told {
    /// The annotations (`summary`, `description`, `runbook`) of one of its alerts, each folded to one line.
    fn annotations(&self, l: &AlertLine) -> std::collections::BTreeMap<&'static str, String>;
    /// One alert as the catalog describes it.
    fn subject_of<'a>(&'a self, l: &'a AlertLine) -> crate::domain::catalog::Subject<'a>;
    /// The line for chat and paging channels: the `summary` annotation, preceded by `NEW: ` when the alert joined
    /// a group its recipients were already told about.
    fn line_text(&self, l: &AlertLine) -> String;
    /// The deep link of one of its alerts, the `generatorURL` of the webhook and of the Alertmanager push: the
    /// status page at the agent's row (`#agent-<account>-<id>`) or the source's (`#source-<account>`). Empty
    /// without an http(s) `alerting.external_url`.
    fn generator_url(&self, l: &AlertLine) -> String;
}

impl Told for Notification {
    fn annotations(&self, l: &AlertLine) -> std::collections::BTreeMap<&'static str, String> {
        crate::domain::catalog::annotations(&self.subject_of(l))
    }

    fn subject_of<'a>(&'a self, l: &'a AlertLine) -> crate::domain::catalog::Subject<'a> {
        crate::domain::catalog::Subject {
            alertname: self.alertname.as_str(),
            account: &self.account,
            provider: self.provider_label(),
            agent_id: l.agent_id.as_deref(),
            agent_name: l.agent_name.as_deref(),
            detail: if l.summary.is_empty() {
                &l.value
            } else {
                &l.summary
            },
        }
    }

    fn line_text(&self, l: &AlertLine) -> String {
        let summary = self.annotations(l).remove("summary").unwrap_or_default();
        if l.new {
            format!("NEW: {summary}")
        } else {
            summary
        }
    }

    fn generator_url(&self, l: &AlertLine) -> String {
        let Some(base) = self
            .external_url
            .as_deref()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        else {
            return String::new();
        };
        let link = match &l.agent_id {
            Some(id) => crate::rules::dispatch::lines::agent_link(base, &self.account, id),
            None => crate::rules::dispatch::lines::source_link(base, &self.account),
        };
        link.unwrap_or_else(|| base.to_string())
    }
}

/// Why one delivery attempt failed, for any channel.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The SMTP session failed.
    #[error(transparent)]
    Smtp(#[from] email::SmtpError),
    /// The demo's `.eml` file could not be written.
    #[error("cannot write message to {dir}: {source}")]
    File {
        dir: std::path::PathBuf,
        #[source]
        source: lettre::transport::file::Error,
    },
    /// The email could not be built.
    #[error(transparent)]
    Render(#[from] email::RenderError),
    /// A Slack, Teams, PagerDuty or webhook POST failed or was refused.
    #[error("receiver {receiver}: {source}")]
    Http {
        receiver: String,
        #[source]
        source: http::HttpError,
    },
    /// The message names a receiver the config no longer has (it was removed or renamed across a restart).
    #[error("receiver {0:?} is not configured; its queued notification cannot be delivered")]
    UnknownReceiver(String),
    /// The message is an email but `alerting.email` is not configured (any more).
    #[error("alerting.email is not configured; the queued email cannot be delivered")]
    NoEmail,
}

impl DeliveryError {
    /// Returns true if and only if retrying cannot succeed: the message itself is malformed, its destination is
    /// gone from the config, or an HTTP receiver refused it for good (see [`DeliveryError::rejected_status`]). SMTP
    /// errors, even permanent 5xx replies, are retried, because an AUTH or relay misconfiguration also answers 5xx
    /// and must not throw alerts away; the outbox's age limit bounds those retries instead.
    pub fn is_permanent(&self) -> bool {
        match self {
            DeliveryError::Render(_)
            | DeliveryError::UnknownReceiver(_)
            | DeliveryError::NoEmail => true,
            DeliveryError::Http { source, .. } => source.is_rejection(),
            DeliveryError::Smtp(_) | DeliveryError::File { .. } => false,
        }
    }

    /// The HTTP status when a receiver refused the message for good (a 3xx or 4xx other than 408 and 429): counted
    /// as `outcome="rejected"` and shown on the landing page, not retried.
    pub fn rejected_status(&self) -> Option<u16> {
        match self {
            DeliveryError::Http { source, .. } if source.is_rejection() => source.status(),
            _ => None,
        }
    }
}

/// Why a notification could not be stored or delivered. Each variant names the thing that failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The outbox directory or one of its files could not be written or read.
    #[error("outbox {path}: {source}")]
    Outbox {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A notification could not be serialized (never expected; names the notification).
    #[error("cannot serialize notification {id}: {source}")]
    Encode {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    /// A notification id that is not safe as a file name (only `[0-9A-Za-z._-]`, at most 200 bytes).
    #[error("notification id {0:?} is not a safe file name")]
    BadId(String),
}

/// A firing `AgentOffline` notification for account `prod` with one agent named `agent_name`, for the channels' unit
/// tests.
#[cfg(test)]
pub(crate) fn test_notification(agent_name: &str) -> Notification {
    use jiff::Timestamp;
    let since: Timestamp = "2025-03-01T10:00:00Z".parse().unwrap();
    Notification {
        id: "1a-00000000deadbeef-1".into(),
        group_key: "AgentOffline/prod".into(),
        status: NotificationStatus::Firing,
        alertname: crate::domain::AlertName::AgentOffline,
        severity: Severity::Critical,
        account: "prod".into(),
        provider: Some(crate::domain::Provider::Celigo),
        to: vec![],
        receivers: vec![],
        firing: vec![AlertLine {
            agent_id: Some("a1".into()),
            agent_name: Some(agent_name.into()),
            version: Some("1.2.3".into()),
            value: "offline for 12 min".into(),
            threshold: "offline for 5 min".into(),
            since,
            resolved_at: None,
            value_seconds: Some(720),
            threshold_seconds: Some(300),
            summary: String::new(),
            muted_by: None,
            link: None,
            fired_at: Some(since),
            new: false,
        }],
        resolved: vec![],
        muted: vec![],
        still_muted: 0,
        source_problem: None,
        created_at: "2025-03-01T10:12:00Z".parse().unwrap(),
        external_url: Some("https://exporter.example.com".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_lines_are_the_summary_annotation_with_new_alerts_marked() {
        let mut n = test_notification("edge\none");
        n.firing[0].summary = "reported offline for 12m; last heartbeat 3d ago".into();
        let plain = n.line_text(&n.firing[0]);
        assert_eq!(plain, n.annotations(&n.firing[0])["summary"]);
        assert_eq!(
            plain,
            "Agent edge one (a1, account prod): reported offline for 12m; last heartbeat 3d ago"
        );
        n.firing[0].new = true;
        assert_eq!(n.line_text(&n.firing[0]), format!("NEW: {plain}"));
        assert_eq!(
            n.generator_url(&n.firing[0]),
            "https://exporter.example.com/#agent-prod-a1"
        );
    }
}
