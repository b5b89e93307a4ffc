//! What the alerting half hands to delivery: one [`Notification`] per alert group, its [`AlertLine`]s, the named
//! receivers routing chose, and the [`NotificationSink`] that stores notifications for delivery.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::agent::Provider;
use crate::domain::alert::{AlertName, Severity};

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
    /// firing, the `startsAt` of every path.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique id; the outbox uses it to deliver each notification exactly once.
    pub id: String,
    /// The group this belongs to, `"<alertname>/<account>"`.
    pub group_key: String,
    /// Firing or resolved.
    pub status: NotificationStatus,
    /// The rule (the `alertname` label).
    pub alertname: AlertName,
    /// The rule's severity for this source.
    pub severity: Severity,
    /// The source name (`account` label).
    pub account: String,
    /// The source's provider; `None` only for the test notice, which comes from no source.
    pub provider: Option<Provider>,
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
    /// For `SourceDown`: what failed. `None` for every other rule and for resolved notices. Boxed to keep the
    /// notification small for every other rule.
    /// Alerts of the group that still fire but were never told to these recipients, because a silence or an
    /// inhibition hides them: a `Resolved` notice says "N still muted" rather than listing them.
    #[serde(default)]
    pub still_muted: usize,
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

impl Notification {
    /// The `provider` label: the source's provider, or `onprem-agent-exporter` for the test notice.
    pub fn provider_label(&self) -> &'static str {
        self.provider
            .map_or("onprem-agent-exporter", Provider::as_str)
    }
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

/// The error a [`NotificationSink`] reports; boxed so that the rule engine needs no notifier types.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where the rule engine hands its notifications over.
///
/// Implemented by [`crate::notify::outbox::Outbox`]. The rule engine calls it from `spawn_blocking`, so blocking file I/O is fine.
pub trait NotificationSink: Send + Sync + 'static {
    /// Stores every notification durably (written and fsync'd) before returning `Ok`. Idempotent per
    /// [`Notification::id`]: an id already pending or already delivered is ignored, so the engine may hand the same
    /// notification over again after a crash. On `Err` nothing may be assumed stored; the engine retries later with
    /// the same ids.
    fn enqueue(&self, notifications: &[Notification]) -> Result<(), SinkError>;
}
