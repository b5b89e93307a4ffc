//! Notification delivery, one file per channel. The rule engine hands over [`Notification`]s; this module renders
//! and delivers them, and owns the durable outbox that makes delivery survive SMTP outages and restarts.

pub mod alertmanager;
pub mod email;
pub mod outbox;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Alert severity, as in Prometheus rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Whether a notification announces a problem or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// At least one alert of the group is firing.
    Firing,
    /// Every alert of the group has resolved.
    Resolved,
}

/// One affected agent (or the source itself) in a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// When the alert started firing.
    pub since: Timestamp,
    /// When it resolved, for resolved lines.
    pub resolved_at: Option<Timestamp>,
}

/// One message for one alert group (rule × account), as Alertmanager groups by `alertname` and `account`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique id; the outbox uses it to deliver each notification exactly once.
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
    /// Alerts firing now.
    pub firing: Vec<AlertLine>,
    /// Alerts that resolved since the previous notification of this group.
    pub resolved: Vec<AlertLine>,
    /// When the engine produced this notification.
    pub created_at: Timestamp,
    /// The exporter's external URL, for links in the message.
    pub external_url: Option<String>,
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
