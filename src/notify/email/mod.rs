//! The email channel: renders notifications and reports into multipart messages ([`render`]) and hands them to an
//! SMTP server ([`smtp`]: TLS modes `none`, `starttls`, `tls`, with AUTH) or, for the demo, to `.eml` files in a
//! directory.

use std::io;
use std::path::{Path, PathBuf};

use lettre::message::Mailbox;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

pub use super::DeliveryError;
use super::Notification;
use crate::config::email::{EmailConfig, SmtpConfig};

pub mod render;
pub mod smtp;

pub use render::{
    EmailAttachment, RenderError, RenderedEmail, build_notification, build_rendered, header_safe,
    render_notification, subject,
};
pub use smtp::{SmtpError, TestEmailError, send_smtp, test_email};

/// The `channel` label of this channel's metrics.
pub const CHANNEL: &str = "email";

/// Where a channel's messages go.
#[derive(Debug, Clone)]
enum Transport {
    /// A real SMTP server.
    Smtp(SmtpConfig),
    /// `.eml` files in a directory, for the demo.
    File {
        dir: PathBuf,
        transport: AsyncFileTransport<Tokio1Executor>,
    },
}

/// The email channel: a sender, default recipients and a transport.
#[derive(Debug, Clone)]
pub struct EmailChannel {
    transport: Transport,
    /// The `From:` of every message.
    from: Mailbox,
    /// Recipients when a message names none.
    default_to: Vec<Mailbox>,
}

impl EmailChannel {
    /// A channel that sends through the configured SMTP server.
    pub fn smtp(cfg: &EmailConfig) -> EmailChannel {
        EmailChannel {
            transport: Transport::Smtp(cfg.smtp.clone()),
            from: cfg.from.clone(),
            default_to: cfg.to.clone(),
        }
    }

    /// A channel that writes each message as `<uuid>.eml` into `dir` (created if missing), for the demo.
    pub fn file(dir: &Path, from: Mailbox, default_to: Vec<Mailbox>) -> io::Result<EmailChannel> {
        std::fs::create_dir_all(dir)?;
        Ok(EmailChannel {
            transport: Transport::File {
                dir: dir.to_path_buf(),
                transport: AsyncFileTransport::new(dir),
            },
            from,
            default_to,
        })
    }

    /// Renders and sends one notification.
    pub async fn send_notification(&self, n: &Notification) -> Result<(), DeliveryError> {
        let message = build_notification(n, &self.from, &self.default_to)?;
        self.send(message).await
    }

    /// Sends one pre-rendered message.
    pub async fn send_rendered(&self, r: &RenderedEmail) -> Result<(), DeliveryError> {
        let message = build_rendered(r, &self.from, &self.default_to)?;
        self.send(message).await
    }

    async fn send(&self, message: Message) -> Result<(), DeliveryError> {
        match &self.transport {
            Transport::Smtp(cfg) => Ok(send_smtp(cfg, &message).await?),
            Transport::File { dir, transport } => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|source| DeliveryError::File {
                    dir: dir.clone(),
                    source,
                }),
        }
    }
}
