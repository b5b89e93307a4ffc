//! Hands each message the outbox delivers to its channel: the email channel for emails, and the named receiver's
//! Slack, Teams, PagerDuty or webhook channel for the rest. Built once from the config; the receivers' secrets live
//! here and nowhere in the outbox.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use jiff::Timestamp;

use super::email::EmailChannel;
use super::http::{self, HttpError};
use super::outbox::{Deliver, Payload};
use super::pagerduty::PagerdutyChannel;
use super::webhook::WebhookChannel;
use super::{AlertLine, DeliveryError, Notification, NotificationStatus, Severity};
use crate::config::receivers::{ReceiverConfig, ReceiverKind};
use crate::domain::AlertName;
use secrecy::SecretString;
use serde_json::Value;

/// One named receiver's channel.
#[derive(Debug, Clone)]
enum Receiver {
    /// Slack or Teams: both post their own rendering of the notification to an incoming-webhook URL.
    Chat(IncomingWebhook),
    Pagerduty(PagerdutyChannel),
    Webhook(WebhookChannel),
}

/// A chat service's incoming webhook (Slack, a Teams workflow). The URL is the credential (Slack's path secret,
/// Teams's `sig=`), read from `webhook_url_file` and used only to send; `SecretString` keeps it out of `Debug`.
#[derive(Debug, Clone)]
struct IncomingWebhook {
    url: SecretString,
    client: reqwest::Client,
    /// The service's message for a notification: [`super::slack::message`] or [`super::msteams::message`].
    message: fn(&Notification) -> Value,
}

impl Receiver {
    async fn send(&self, n: &Notification) -> Result<(), HttpError> {
        match self {
            Receiver::Chat(w) => {
                http::post_json(&w.client, &w.url, None, &(w.message)(n), &n.id, &[]).await
            }
            Receiver::Pagerduty(c) => c.send(n).await,
            Receiver::Webhook(c) => c.send(n).await,
        }
    }
}

/// Every channel a config sets up.
#[derive(Debug, Clone)]
pub struct Channels {
    /// `None` when the config has no `alerting.email`; a queued email then cannot be delivered.
    email: Option<EmailChannel>,
    /// By receiver name.
    receivers: BTreeMap<String, Receiver>,
}

impl Channels {
    /// The channels of `email` (if any) and `receivers`, sharing one HTTP client.
    pub fn new(
        email: Option<EmailChannel>,
        receivers: &[ReceiverConfig],
    ) -> Result<Channels, HttpError> {
        let client = super::http::client()?;
        let receivers = receivers
            .iter()
            .map(|r| {
                let c = client.clone();
                let channel = match &r.kind {
                    ReceiverKind::Slack { webhook_url } => Receiver::Chat(IncomingWebhook {
                        url: webhook_url.clone(),
                        client: c,
                        message: super::slack::message,
                    }),
                    ReceiverKind::Msteams { webhook_url } => Receiver::Chat(IncomingWebhook {
                        url: webhook_url.clone(),
                        client: c,
                        message: super::msteams::message,
                    }),
                    ReceiverKind::Pagerduty { routing_key, url } => {
                        Receiver::Pagerduty(PagerdutyChannel::new(routing_key.clone(), url, c))
                    }
                    ReceiverKind::Webhook { url, bearer_token } => Receiver::Webhook(
                        WebhookChannel::new(&r.name, url.clone(), bearer_token.clone(), c),
                    ),
                };
                (r.name.clone(), channel)
            })
            .collect();
        Ok(Channels { email, receivers })
    }

    /// Sends `n` to the receiver named `name` now, without the outbox.
    pub async fn send_to(&self, name: &str, n: &Notification) -> Result<(), DeliveryError> {
        let receiver = self
            .receivers
            .get(name)
            .ok_or_else(|| DeliveryError::UnknownReceiver(name.to_string()))?;
        receiver
            .send(n)
            .await
            .map_err(|source| DeliveryError::Http {
                receiver: name.to_string(),
                source,
            })
    }
}

impl Deliver for Channels {
    fn deliver<'a>(
        &'a self,
        payload: &'a Payload,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async move {
            match payload {
                Payload::Alert(_) | Payload::Email(_) => match &self.email {
                    Some(email) => email.deliver(payload).await,
                    None => Err(DeliveryError::NoEmail),
                },
                Payload::Receiver {
                    receiver,
                    notification,
                } => self.send_to(&receiver.name, notification).await,
            }
        })
    }
}

/// Why `test-notify` failed, naming the step.
#[derive(Debug, thiserror::Error)]
pub enum TestNotifyError {
    /// No receiver of that name.
    #[error("receiver {name:?} is not in alerting.receivers (configured: {known})")]
    Unknown { name: String, known: String },
    /// The HTTP client could not be built.
    #[error("step client: {0}")]
    Client(#[source] HttpError),
    /// Sending failed at `step` (`connect`, `request`, `response`); `event` says which message (PagerDuty sends a
    /// trigger and then a resolve).
    #[error("step {step} ({event}): {source}")]
    Send {
        step: &'static str,
        event: &'static str,
        #[source]
        source: HttpError,
    },
}

/// The test notice: an `info` notification from a `TestNotification` alert, so that nobody mistakes it for a real
/// problem.
pub fn test_notification(receiver: &str, status: NotificationStatus) -> Notification {
    let now = Timestamp::now();
    let line = AlertLine {
        agent_id: None,
        agent_name: Some("test notice".to_string()),
        version: None,
        value: "sent by onprem-agent-exporter test-notify".to_string(),
        threshold: "none".to_string(),
        since: now,
        resolved_at: (status == NotificationStatus::Resolved).then_some(now),
        value_seconds: None,
        threshold_seconds: None,
        summary: "sent by onprem-agent-exporter test-notify".to_string(),
        muted_by: None,
        link: None,
        fired_at: Some(now),
        new: false,
    };
    let (firing, resolved) = match status {
        NotificationStatus::Firing => (vec![line], vec![]),
        NotificationStatus::Resolved => (vec![], vec![line]),
    };
    Notification {
        id: format!("test-{}", now.as_millisecond()),
        group_key: format!("TestNotification/{receiver}"),
        status,
        alertname: AlertName::TestNotification,
        severity: Severity::Info,
        account: "test".to_string(),
        provider: None,
        to: vec![],
        receivers: vec![],
        firing,
        resolved,
        muted: vec![],
        still_muted: 0,
        source_problem: None,
        created_at: now,
        external_url: None,
    }
}

/// Sends a test notice to the receiver `name` of `receivers`, now, and says which step failed. For PagerDuty it
/// sends a `trigger` and then a `resolve` with the same `dedup_key`, so that the test leaves no incident open.
pub async fn test_notify(receivers: &[ReceiverConfig], name: &str) -> Result<(), TestNotifyError> {
    let Some(r) = receivers.iter().find(|r| r.name == name) else {
        let known: Vec<&str> = receivers.iter().map(|r| r.name.as_str()).collect();
        return Err(TestNotifyError::Unknown {
            name: name.to_string(),
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        });
    };
    let channels = Channels::new(None, std::slice::from_ref(r)).map_err(TestNotifyError::Client)?;
    let receiver = &channels.receivers[name];
    let events = if matches!(r.kind, ReceiverKind::Pagerduty { .. }) {
        vec![
            ("trigger", NotificationStatus::Firing),
            ("resolve", NotificationStatus::Resolved),
        ]
    } else {
        vec![("notice", NotificationStatus::Firing)]
    };
    for (event, status) in events {
        receiver
            .send(&test_notification(name, status))
            .await
            .map_err(|source| TestNotifyError::Send {
                step: source.step(),
                event,
                source,
            })?;
    }
    Ok(())
}
