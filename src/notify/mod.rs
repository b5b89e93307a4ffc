//! Notification delivery, one file per channel. The rule engine hands over [`Notification`]s; this module renders
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

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Alert severity, as in Prometheus rules.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

/// Whether a notification announces a problem or its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// At least one alert the recipients were told about, or are told about now, is firing (listed, or muted since
    /// by a silence or an inhibition).
    #[default]
    Firing,
    /// Every alert the recipients were told about has resolved. Alerts of the group they were never told about may
    /// still fire, muted: [`Notification::still_muted`] counts them.
    Resolved,
}

/// One affected agent (or the source itself) in a notification.
///
/// Fields added after the first release carry `#[serde(default)]`, so notifications already in an outbox still
/// load; `Default` lets code that builds lines name only the fields it knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertLine {
    /// The agent's id; `None` for source-level alerts such as `SourceDown`.
    pub agent_id: Option<String>,
    /// The agent's name as the upstream sent it: untrusted, must be escaped when rendered.
    pub agent_name: Option<String>,
    /// The agent's version, when known.
    pub version: Option<String>,
    /// The observed value in human units (`3h 12m`, `97 days`).
    pub value: String,
    /// The threshold it crossed, in human units.
    pub threshold: String,
    /// When its condition began (for a token, the day it became due); [`AlertLine::fired_at`] is when it started
    /// firing.
    pub since: Timestamp,
    /// When it resolved, for resolved lines.
    pub resolved_at: Option<Timestamp>,
    /// The observed value in seconds (an age, or how long a condition has held), for scripts and channel payloads
    /// that compare; `None` for `AgentVersionOutdated`, whose value is a version.
    #[serde(default)]
    pub value_seconds: Option<u64>,
    /// The threshold in seconds; `None` for `AgentVersionOutdated`.
    #[serde(default)]
    pub threshold_seconds: Option<u64>,
    /// One plain sentence for people, e.g. `offline for 12 min`, `token 97 days old; policy 90 days`. Empty only
    /// in notifications stored by an older version; renderers then fall back to `value` and `threshold`.
    #[serde(default)]
    pub summary: String,
    /// For a line in [`Notification::muted`]: what mutes it, e.g. `inhibited by AgentOffline` or
    /// `silenced by 18f0c2a-3 (planned maintenance)`. `None` elsewhere.
    #[serde(default)]
    pub muted_by: Option<String>,
    /// A link to this agent on the exporter's page, when `alerting.external_url` is set; `None` for the source.
    #[serde(default)]
    pub link: Option<String>,
    /// When the alert started firing (the `startsAt` of every path, as Prometheus sets it); `since` is when its
    /// condition began. `None` in notifications stored by an older version, which then use `since`.
    #[serde(default)]
    pub fired_at: Option<Timestamp>,
    /// True for a firing alert that joined a group its recipients were already told about: listed first and
    /// marked new, so that line 29 of `[FIRING:27]` is not where the news hides.
    #[serde(default)]
    pub new: bool,
}

/// What a `SourceDown` notification tells about the failing source, taken from the snapshot when the notification
/// was made. Nothing here is a secret: the message was redacted by the source client, the URL has no query string
/// and no userinfo.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceProblem {
    /// The error reason, as in `onprem_agent_source_errors_total{reason}` (`unauthorized`, `connect`, ...).
    pub reason: String,
    /// The last error message, redacted.
    pub message: String,
    /// The URL that failed, without query string; `None` when the error names none (the page limit).
    pub url: Option<String>,
    /// When the current run of failed polls began.
    pub failing_since: Option<Timestamp>,
    /// When the last poll succeeded, if one ever did.
    pub last_success: Option<Timestamp>,
    /// The number of agents in the last good snapshot, which the exporter keeps serving; `None` when no poll ever
    /// succeeded.
    pub agents_in_last_snapshot: Option<usize>,
}

/// One message for one alert group (rule × account), as Alertmanager groups by `alertname` and `account`.
///
/// As with [`AlertLine`], later fields carry `#[serde(default)]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique id; the outbox uses it to store each notification once, and every channel sends it as the idempotency
    /// key of an at-least-once delivery (`Message-ID`, `X-Notification-Id`).
    pub id: String,
    /// The group this belongs to, `"<alertname>/<account>"`.
    pub group_key: String,
    pub status: NotificationStatus,
    pub alertname: String,
    pub severity: Severity,
    /// The source name (`account` label).
    pub account: String,
    pub provider: String,
    /// Recipients chosen by routing.
    pub to: Vec<String>,
    /// The named receivers (`alerting.receivers`) chosen by routing; empty in states written before receivers
    /// existed. A notification that names receivers is emailed only when `to` is not empty.
    #[serde(default)]
    pub receivers: Vec<ReceiverRef>,
    /// Alerts firing now.
    pub firing: Vec<AlertLine>,
    /// Alerts that resolved since the previous notification of this group.
    pub resolved: Vec<AlertLine>,
    /// Alerts still firing but muted now (silenced, or inhibited by another alert), each with
    /// [`AlertLine::muted_by`]. They are neither firing in this message nor resolved: a muted alert is reported
    /// resolved only once it really resolves.
    #[serde(default)]
    pub muted: Vec<AlertLine>,
    /// Alerts of the group that still fire but were never told to these recipients, because a silence or an
    /// inhibition hides them: a `Resolved` notice says "N still muted" rather than listing them.
    #[serde(default)]
    pub still_muted: usize,
    /// For `SourceDown`: what failed. `None` for every other rule and for resolved notices. Boxed to keep the
    /// notification small for every other rule.
    #[serde(default)]
    pub source_problem: Option<Box<SourceProblem>>,
    /// When the engine produced this notification.
    pub created_at: Timestamp,
    /// The exporter's external URL, for links in the message.
    pub external_url: Option<String>,
}

/// A delivery channel: the `channel` label of `onprem_agent_notifications_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// SMTP, `alerting.email`.
    Email,
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams Workflows webhook, sent an Adaptive Card.
    Msteams,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Any HTTP endpoint that reads Alertmanager's webhook payload.
    Webhook,
}

impl Channel {
    /// Every channel, in the order the metrics list them.
    pub const ALL: [Channel; 5] = [
        Channel::Email,
        Channel::Slack,
        Channel::Msteams,
        Channel::Pagerduty,
        Channel::Webhook,
    ];

    /// The label value and config key: `email`, `slack`, `msteams`, `pagerduty`, `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Slack => "slack",
            Channel::Msteams => "msteams",
            Channel::Pagerduty => "pagerduty",
            Channel::Webhook => "webhook",
        }
    }
}

/// A named receiver as routing names it: what the outbox stores with each message, so that a message waiting across
/// a restart still knows its channel (for the metrics) without holding any of the receiver's secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverRef {
    /// `alerting.receivers[].name`: 1 to 64 of `[A-Za-z0-9_-]`, so it is safe in a file name.
    pub name: String,
    /// Its channel.
    pub channel: Channel,
}

impl AlertLine {
    /// The line as one sentence for chat and paging channels: `name (id): summary` (or `value; threshold …` when
    /// there is no summary). Control characters
    /// in the untrusted name become spaces; each channel still escapes for its own markup.
    pub fn one_line(&self) -> String {
        let who = match (&self.agent_name, &self.agent_id) {
            (Some(name), Some(id)) if name != id => format!("{name} ({id})"),
            (Some(name), _) => name.clone(),
            (None, Some(id)) => id.clone(),
            (None, None) => "the source".to_string(),
        };
        // The plain sentence when the engine wrote one; notifications stored by older versions have none.
        let text = if self.summary.is_empty() {
            format!("{who}: {}; threshold {}", self.value, self.threshold)
        } else {
            format!("{who}: {}", self.summary)
        };
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }
}

impl Notification {
    /// The annotations (`summary`, `description`, `runbook`) of one of its alerts, from [`crate::catalog`]: the same
    /// on the Alertmanager push, the webhook, chat, PagerDuty and email, each line folded to one.
    pub fn annotations(&self, l: &AlertLine) -> std::collections::BTreeMap<&'static str, String> {
        crate::catalog::annotations(&self.subject_of(l))
    }

    /// One alert as the catalog describes it.
    pub fn subject_of<'a>(&'a self, l: &'a AlertLine) -> crate::catalog::Subject<'a> {
        crate::catalog::Subject {
            alertname: &self.alertname,
            account: &self.account,
            provider: &self.provider,
            agent_id: l.agent_id.as_deref(),
            agent_name: l.agent_name.as_deref(),
            detail: if l.summary.is_empty() {
                &l.value
            } else {
                &l.summary
            },
        }
    }

    /// The line for chat and paging channels: the `summary` annotation, preceded by `NEW: ` when the alert joined
    /// a group its recipients were already told about.
    pub fn line_text(&self, l: &AlertLine) -> String {
        let summary = self.annotations(l).remove("summary").unwrap_or_default();
        if l.new {
            format!("NEW: {summary}")
        } else {
            summary
        }
    }

    /// The deep link of one of its alerts, the `generatorURL` of the webhook and of the Alertmanager push: the
    /// status page at the agent's row (`#agent-<account>-<id>`) or the source's (`#source-<account>`). Empty without
    /// an http(s) `alerting.external_url`.
    pub fn generator_url(&self, l: &AlertLine) -> String {
        let Some(base) = self
            .external_url
            .as_deref()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        else {
            return String::new();
        };
        let link = match &l.agent_id {
            Some(id) => crate::rules::engine::agent_link(base, &self.account, id),
            None => crate::rules::engine::source_link(base, &self.account),
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

/// The error a [`NotificationSink`] reports; boxed so that the rule engine needs no notifier types.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where the rule engine hands its notifications over.
///
/// Implemented by [`outbox::Outbox`]. The rule engine calls it from `spawn_blocking`, so blocking file I/O is fine.
pub trait NotificationSink: Send + Sync + 'static {
    /// Stores every notification durably (written and fsync'd) before returning `Ok`. Idempotent per
    /// [`Notification::id`]: an id already pending or already delivered is ignored, so the engine may hand the same
    /// notification over again after a crash. On `Err` nothing may be assumed stored; the engine retries later with
    /// the same ids.
    fn enqueue(&self, notifications: &[Notification]) -> Result<(), SinkError>;
}

/// A firing `AgentOffline` notification for account `prod` with one agent named `agent_name`, for the channels' unit
/// tests.
#[cfg(test)]
pub(crate) fn test_notification(agent_name: &str) -> Notification {
    let since: Timestamp = "2025-03-01T10:00:00Z".parse().unwrap();
    Notification {
        id: "1a-00000000deadbeef-1".into(),
        group_key: "AgentOffline/prod".into(),
        status: NotificationStatus::Firing,
        alertname: "AgentOffline".into(),
        severity: Severity::Critical,
        account: "prod".into(),
        provider: "celigo".into(),
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
