//! The email channel: renders notifications and reports into multipart messages and hands them to an SMTP server
//! (TLS modes `none`, `starttls`, `tls`, with AUTH) or, for the demo, to `.eml` files in a directory.
//!
//! SMTP is spoken step by step over one connection per message (DNS, connect, TLS, greeting, STARTTLS, AUTH,
//! MAIL FROM, RCPT TO, DATA) so that every failure names the step and the host. The same code serves delivery and
//! the `test-email` diagnostic. One connection per message rather than a pool: alerts are rare, and a pooled
//! connection would outlive an SMTP restart and fail the first message after it.
//!
//! Everything that came from upstream (agent names, ids, versions) is untrusted: it is HTML-escaped in the HTML part,
//! shown with control characters escaped in the text part, and never put in a header. The subject is built from the
//! alert name and the account only, and CR, LF and other control characters are removed from it anyway.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::config::{EmailConfig, SmtpConfig, TlsMode};
use super::{AlertLine, Notification, NotificationStatus};

/// The `channel` label of this channel's metrics.
pub const CHANNEL: &str = "email";

/// A message rendered ahead of time, as the compliance report is: the outbox stores it as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedEmail {
    /// The subject; control characters are removed again when the message is built.
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
    /// Plain addresses; empty means the channel's default recipients.
    pub to: Vec<String>,
    /// Optional attachments (the report's CSV).
    #[serde(default)]
    pub attachments: Vec<EmailAttachment>,
}

/// One attachment of a [`RenderedEmail`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailAttachment {
    /// The file name the recipient sees.
    pub filename: String,
    /// A MIME type such as `text/csv; charset=utf-8`.
    pub content_type: String,
    /// The content, UTF-8 text.
    pub content: String,
}

/// A message that cannot be built. Retrying does not help, so the outbox drops it.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A recipient is not an email address.
    #[error("recipient {0:?} is not an email address")]
    Recipient(String),
    /// Neither the message nor the channel names a recipient.
    #[error("the message has no recipient and the channel has no default recipients")]
    NoRecipient,
    /// An attachment's content type does not parse.
    #[error("attachment {filename:?} has an invalid content type {content_type:?}")]
    ContentType {
        filename: String,
        content_type: String,
    },
    /// lettre refused to build the message.
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
}

/// A failed SMTP exchange. `Display` names the step (`dns`, `connect`, `tls`, `greeting`, `starttls`, `auth`,
/// `sender`, `recipient`, `data`) and the server, so `test-email` and the logs say exactly what went wrong.
/// The password is never part of it.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The host name did not resolve.
    #[error("dns: cannot resolve SMTP host {host}: {source}")]
    Dns {
        host: String,
        #[source]
        source: io::Error,
    },
    /// No TCP connection could be opened (refused, unreachable, timed out).
    #[error("connect: cannot connect to SMTP server {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The TLS handshake failed: implicit TLS (`tls`) or after `STARTTLS`. Often an untrusted certificate or a
    /// port that does not speak TLS.
    #[error("tls: TLS handshake with SMTP server {host}:{port} failed: {source}")]
    Tls {
        host: String,
        port: u16,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The server refused the session or answered the greeting or EHLO with an error.
    #[error("greeting: SMTP server {host}:{port} refused the session: {source}")]
    Greeting {
        host: String,
        port: u16,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// `tls: starttls` is configured but the server does not offer STARTTLS; we never fall back to plain text.
    #[error(
        "starttls: SMTP server {host}:{port} does not offer STARTTLS, which tls: starttls requires"
    )]
    StarttlsUnsupported { host: String, port: u16 },
    /// The server rejected the login, or offers no AUTH mechanism we speak (PLAIN, LOGIN).
    #[error("auth: SMTP server {host}:{port} rejected the login of user {username:?}: {source}")]
    Auth {
        host: String,
        port: u16,
        username: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// `MAIL FROM` was rejected.
    #[error("sender: SMTP server {host}:{port} rejected sender {from}: {source}")]
    Sender {
        host: String,
        port: u16,
        from: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// `RCPT TO` was rejected for one recipient.
    #[error("recipient: SMTP server {host}:{port} rejected recipient {recipient}: {source}")]
    Recipient {
        host: String,
        port: u16,
        recipient: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// `DATA` or the message content was rejected, or the connection broke while sending it.
    #[error("data: SMTP server {host}:{port} did not accept the message: {source}")]
    Data {
        host: String,
        port: u16,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The server stopped answering during `step` for longer than the configured timeout.
    #[error("{step}: SMTP server {host}:{port} did not answer within {}s", after.as_secs_f64())]
    Timeout {
        step: &'static str,
        host: String,
        port: u16,
        after: Duration,
    },
    /// The TLS parameters could not be built (an unusable extra CA certificate).
    #[error("tls: cannot set up TLS for {host}: {source}")]
    TlsSetup {
        host: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// `test-email` fails with exactly the step that failed; see [`SmtpError`]. A bad `--to` is a
/// [`TestEmailError::Render`].
#[derive(Debug, thiserror::Error)]
pub enum TestEmailError {
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    #[error("cannot build the test message: {0}")]
    Render(#[from] RenderError),
}

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    #[error("cannot write message to {dir}: {source}")]
    File {
        dir: PathBuf,
        #[source]
        source: lettre::transport::file::Error,
    },
    #[error(transparent)]
    Render(#[from] RenderError),
}

impl DeliveryError {
    /// Returns true if and only if retrying cannot succeed: the message itself is malformed. SMTP errors, even
    /// permanent 5xx replies, are retried, because an AUTH or relay misconfiguration also answers 5xx and must not
    /// throw alerts away; the outbox's age limit bounds those retries instead.
    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Render(_))
    }
}

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

/// Sends a short test message through the configured server to `to` (default: the configured recipients) and
/// reports the first step that failed.
pub async fn test_email(cfg: &EmailConfig, to: Option<&str>) -> Result<(), TestEmailError> {
    let recipients = match to {
        Some(addr) => vec![parse_mailbox(addr)?],
        None => cfg.to.clone(),
    };
    let text = format!(
        "This is a test message from onprem-agent-exporter.\n\nIt went through {}:{} (tls: {}).\n",
        cfg.smtp.host, cfg.smtp.port, cfg.smtp.tls
    );
    let html = format!(
        "<p>{}</p>",
        crate::html::escape(&text).replace("\n\n", "</p><p>")
    );
    let mut b = Message::builder()
        .from(cfg.from.clone())
        .subject("[TEST] onprem-agent-exporter email")
        .date_now();
    for r in recipients {
        b = b.to(r);
    }
    let message = b
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(RenderError::from)?;
    send_smtp(&cfg.smtp, &message).await?;
    Ok(())
}

/// One SMTP exchange for `message`, step by step; see [`SmtpError`] for the steps.
pub async fn send_smtp(cfg: &SmtpConfig, message: &Message) -> Result<(), SmtpError> {
    let host = cfg.host.clone();
    let port = cfg.port;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|source| SmtpError::Dns {
            host: host.clone(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(SmtpError::Dns {
            host,
            source: io::Error::new(io::ErrorKind::NotFound, "no address"),
        });
    }
    let hello = ClientId::default();
    let wrapper = match cfg.tls {
        TlsMode::Tls => Some(tls_parameters(cfg)?),
        _ => None,
    };
    // lettre bounds the TCP connect by the timeout but not the TLS handshake or the greeting; allow both phases.
    let connect =
        AsyncSmtpConnection::connect_tokio1(&addrs[..], Some(cfg.timeout), &hello, wrapper, None);
    let mut conn = match tokio::time::timeout(cfg.timeout.saturating_mul(2), connect).await {
        Ok(Ok(c)) => c,
        Ok(Err(source)) => return Err(classify_connect_error(cfg, source)),
        Err(_) => {
            let step = if cfg.tls == TlsMode::Tls {
                "tls"
            } else {
                "greeting"
            };
            return Err(timed_out(cfg, step));
        }
    };
    let result = session(cfg, &mut conn, &hello, message).await;
    match &result {
        // The message is accepted at this point; a failed QUIT changes nothing.
        Ok(()) => {
            let _ = conn.quit().await;
        }
        // A failed STARTTLS upgrade leaves lettre without a stream; writing QUIT to it would be a bug, so the
        // connection is only dropped.
        // After a timeout the server may not read either; QUIT could hang.
        Err(SmtpError::Tls { .. } | SmtpError::Timeout { .. }) => drop(conn),
        Err(_) => conn.abort().await,
    }
    result
}

async fn session(
    cfg: &SmtpConfig,
    conn: &mut AsyncSmtpConnection,
    hello: &ClientId,
    message: &Message,
) -> Result<(), SmtpError> {
    let host = || cfg.host.clone();
    let port = cfg.port;
    if cfg.tls == TlsMode::Starttls {
        if !conn.can_starttls() {
            return Err(SmtpError::StarttlsUnsupported { host: host(), port });
        }
        let params = tls_parameters(cfg)?;
        within(cfg, "tls", conn.starttls(params, hello))
            .await?
            .map_err(|source| SmtpError::Tls {
                host: host(),
                port,
                source,
            })?;
    }
    if let Some(c) = &cfg.credentials {
        let creds = Credentials::new(c.username.clone(), c.password.expose_secret().to_owned());
        within(
            cfg,
            "auth",
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds),
        )
        .await?
        .map_err(|source| SmtpError::Auth {
            host: host(),
            port,
            username: c.username.clone(),
            source,
        })?;
    }
    let envelope = message.envelope();
    let body = message.formatted();
    let mut params = Vec::new();
    if !body.is_ascii() {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let from = envelope.from().cloned();
    within(cfg, "sender", conn.command(Mail::new(from.clone(), params)))
        .await?
        .map_err(|source| SmtpError::Sender {
            host: host(),
            port,
            from: from.map_or_else(|| "<>".to_string(), |a| a.to_string()),
            source,
        })?;
    for rcpt in envelope.to() {
        within(
            cfg,
            "recipient",
            conn.command(Rcpt::new(rcpt.clone(), vec![])),
        )
        .await?
        .map_err(|source| SmtpError::Recipient {
            host: host(),
            port,
            recipient: rcpt.to_string(),
            source,
        })?;
    }
    within(cfg, "data", conn.command(Data))
        .await?
        .map_err(|source| SmtpError::Data {
            host: host(),
            port,
            source,
        })?;
    within(cfg, "data", conn.message(&body))
        .await?
        .map_err(|source| SmtpError::Data {
            host: host(),
            port,
            source,
        })?;
    Ok(())
}

fn timed_out(cfg: &SmtpConfig, step: &'static str) -> SmtpError {
    SmtpError::Timeout {
        step,
        host: cfg.host.clone(),
        port: cfg.port,
        after: cfg.timeout,
    }
}

/// Runs one SMTP step under the configured timeout; the outer `Err` is the timeout, the inner result lettre's.
async fn within<T>(
    cfg: &SmtpConfig,
    step: &'static str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, SmtpError> {
    tokio::time::timeout(cfg.timeout, fut)
        .await
        .map_err(|_| timed_out(cfg, step))
}

fn tls_parameters(cfg: &SmtpConfig) -> Result<TlsParameters, SmtpError> {
    let setup = |source| SmtpError::TlsSetup {
        host: cfg.host.clone(),
        source,
    };
    let mut b = TlsParameters::builder(cfg.host.clone());
    for pem in &cfg.extra_roots_pem {
        b = b.add_root_certificate(Certificate::from_pem(pem).map_err(setup)?);
    }
    b.build_rustls().map_err(setup)
}

/// Sorts a failure of `connect_tokio1` into the step it belongs to. lettre reports TCP, TLS and greeting failures
/// all from that one call: a response error is the greeting or EHLO; an I/O error whose kind is about reaching the
/// host is the connect step; any other error with implicit TLS is the handshake.
fn classify_connect_error(cfg: &SmtpConfig, source: lettre::transport::smtp::Error) -> SmtpError {
    let host = cfg.host.clone();
    let port = cfg.port;
    if source.is_response() || source.is_permanent() || source.is_transient() {
        return SmtpError::Greeting { host, port, source };
    }
    let io_kind = std::error::Error::source(&source)
        .and_then(|e| e.downcast_ref::<io::Error>())
        .map(io::Error::kind);
    let reaching = matches!(
        io_kind,
        Some(
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::TimedOut
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::PermissionDenied
        )
    );
    if cfg.tls == TlsMode::Tls && !reaching && !source.is_timeout() {
        SmtpError::Tls { host, port, source }
    } else {
        SmtpError::Connect { host, port, source }
    }
}

fn parse_mailbox(s: &str) -> Result<Mailbox, RenderError> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|_| RenderError::Recipient(s.to_string()))
}

fn recipients(to: &[String], default_to: &[Mailbox]) -> Result<Vec<Mailbox>, RenderError> {
    let list: Vec<Mailbox> = if to.is_empty() {
        default_to.to_vec()
    } else {
        to.iter()
            .map(|s| parse_mailbox(s))
            .collect::<Result<_, _>>()?
    };
    if list.is_empty() {
        return Err(RenderError::NoRecipient);
    }
    Ok(list)
}

/// The subject of a notification: `[FIRING:3] AgentTokenRotationOverdue prod-us` or
/// `[RESOLVED] AgentTokenRotationOverdue prod-us`, with control characters removed.
pub fn subject(n: &Notification) -> String {
    let s = match n.status {
        NotificationStatus::Firing => {
            format!("[FIRING:{}] {} {}", n.firing.len(), n.alertname, n.account)
        }
        NotificationStatus::Resolved => format!("[RESOLVED] {} {}", n.alertname, n.account),
    };
    header_safe(&s)
}

/// Replaces every control character (CR, LF, TAB, ...) with a space and collapses runs of spaces, so that a value
/// can never start a new header line.
pub fn header_safe(s: &str) -> String {
    let replaced: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    replaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An untrusted value for HTML text: control characters shown as escapes (as in the text part), then HTML-escaped.
pub fn html_text(s: &str) -> String {
    crate::html::escape(&text_safe(s))
}

/// Shows control characters of an untrusted value as escapes (`\n`), so that a name cannot forge lines of the
/// text part.
pub fn text_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Returns `url` if and only if it is an absolute http or https URL, the only kind worth a link.
fn link_target(url: Option<&str>) -> Option<&str> {
    url.filter(|u| u.starts_with("http://") || u.starts_with("https://"))
}

fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// The text and HTML parts of a notification.
pub fn render_notification(n: &Notification) -> (String, String) {
    let what = match n.status {
        NotificationStatus::Firing => format!(
            "{} alert{} firing",
            n.firing.len(),
            if n.firing.len() == 1 { "" } else { "s" }
        ),
        NotificationStatus::Resolved => "resolved".to_string(),
    };
    let intro = format!(
        "{} on account {} ({}), severity {}: {}.",
        n.alertname,
        n.account,
        n.provider,
        severity_str(n),
        what
    );

    let mut text = String::new();
    let _ = writeln!(text, "{}\n", text_safe(&intro));
    for (title, lines) in [("Firing", &n.firing), ("Resolved", &n.resolved)] {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(text, "{title}:");
        for l in lines.iter() {
            let _ = writeln!(text, "- {}", text_line(l));
        }
        text.push('\n');
    }
    if let Some(url) = link_target(n.external_url.as_deref()) {
        let _ = writeln!(text, "Exporter: {url}");
    }
    let _ = writeln!(text, "Group: {}", text_safe(&n.group_key));

    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body style=\"font-family: sans-serif\">\n");
    let _ = writeln!(html, "<p>{}</p>", crate::html::escape(&intro));
    for (title, lines) in [("Firing", &n.firing), ("Resolved", &n.resolved)] {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(html, "<h3>{title}</h3>");
        html.push_str(
            "<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\" style=\"border-collapse: collapse\">\n\
             <tr><th>Agent</th><th>ID</th><th>Value / threshold</th><th>Version</th><th>Since</th></tr>\n",
        );
        for l in lines.iter() {
            let since = match l.resolved_at {
                Some(r) => format!("{} (resolved {})", format_time(l.since), format_time(r)),
                None => format_time(l.since),
            };
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td></tr>",
                html_text(l.agent_name.as_deref().unwrap_or("(source)")),
                html_text(l.agent_id.as_deref().unwrap_or("")),
                html_text(&l.value),
                html_text(&l.threshold),
                html_text(l.version.as_deref().unwrap_or("")),
                crate::html::escape(&since),
            );
        }
        html.push_str("</table>\n");
    }
    if let Some(url) = link_target(n.external_url.as_deref()) {
        let u = crate::html::escape(url);
        let _ = writeln!(html, "<p><a href=\"{u}\">Open the exporter</a> ({u})</p>");
    }
    let _ = writeln!(
        html,
        "<p style=\"color: #666\">Group: {}</p>",
        crate::html::escape(&n.group_key)
    );
    html.push_str("</body></html>\n");
    (text, html)
}

fn severity_str(n: &Notification) -> &'static str {
    match n.severity {
        super::Severity::Info => "info",
        super::Severity::Warning => "warning",
        super::Severity::Critical => "critical",
    }
}

fn text_line(l: &AlertLine) -> String {
    let who = match (&l.agent_name, &l.agent_id) {
        (Some(name), Some(id)) => format!("{} ({})", text_safe(name), text_safe(id)),
        (Some(name), None) => text_safe(name),
        (None, Some(id)) => text_safe(id),
        (None, None) => "(source)".to_string(),
    };
    let mut s = format!(
        "{who}: {} (threshold {})",
        text_safe(&l.value),
        text_safe(&l.threshold)
    );
    if let Some(v) = &l.version {
        let _ = write!(s, ", version {}", text_safe(v));
    }
    let _ = write!(s, ", since {}", format_time(l.since));
    if let Some(r) = l.resolved_at {
        let _ = write!(s, ", resolved {}", format_time(r));
    }
    s
}

/// Builds the message for a notification: multipart text and HTML, addressed to `n.to` or else `default_to`.
pub fn build_notification(
    n: &Notification,
    from: &Mailbox,
    default_to: &[Mailbox],
) -> Result<Message, RenderError> {
    let (text, html) = render_notification(n);
    let mut b = Message::builder()
        .from(from.clone())
        .subject(subject(n))
        .date(n.created_at.into())
        .message_id(Some(message_id(&n.id, from)));
    for r in recipients(&n.to, default_to)? {
        b = b.to(r);
    }
    Ok(b.multipart(MultiPart::alternative_plain_html(text, html))?)
}

/// Builds the message for a pre-rendered email.
pub fn build_rendered(
    r: &RenderedEmail,
    from: &Mailbox,
    default_to: &[Mailbox],
) -> Result<Message, RenderError> {
    let mut b = Message::builder()
        .from(from.clone())
        .subject(header_safe(&r.subject))
        .date_now();
    for m in recipients(&r.to, default_to)? {
        b = b.to(m);
    }
    let body = MultiPart::alternative_plain_html(r.text.clone(), r.html.clone());
    if r.attachments.is_empty() {
        return Ok(b.multipart(body)?);
    }
    let mut mixed = MultiPart::mixed().multipart(body);
    for a in &r.attachments {
        let ct = ContentType::parse(&a.content_type).map_err(|_| RenderError::ContentType {
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
        })?;
        let part: SinglePart =
            Attachment::new(header_safe(&a.filename)).body(a.content.clone(), ct);
        mixed = mixed.singlepart(part);
    }
    Ok(b.multipart(mixed)?)
}

/// A `Message-ID` derived from the notification id, so that a message re-sent after a crash carries the same id
/// and mail clients can fold the duplicate.
fn message_id(id: &str, from: &Mailbox) -> String {
    let domain = from.email.domain();
    let safe: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    format!("<{safe}@{domain}>")
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::notify::Severity;

    fn notification(name: &str) -> Notification {
        Notification {
            id: "0001-abcd-1".into(),
            group_key: "AgentTokenRotationOverdue/prod-us".into(),
            status: NotificationStatus::Firing,
            alertname: "AgentTokenRotationOverdue".into(),
            severity: Severity::Critical,
            account: "prod-us".into(),
            provider: "celigo".into(),
            to: vec!["ops@example.com".into()],
            firing: vec![AlertLine {
                agent_id: Some("a1".into()),
                agent_name: Some(name.into()),
                version: Some("1.2.3".into()),
                value: "97 days".into(),
                threshold: "90 days".into(),
                since: Timestamp::from_second(1_700_000_000).unwrap(),
                resolved_at: None,
            }],
            resolved: vec![],
            created_at: Timestamp::from_second(1_700_000_100).unwrap(),
            external_url: Some("http://exporter.example.com:9877".into()),
        }
    }

    #[test]
    fn the_subject_counts_firing_alerts_and_names_rule_and_account() {
        let mut n = notification("x");
        assert_eq!(subject(&n), "[FIRING:1] AgentTokenRotationOverdue prod-us");
        n.status = NotificationStatus::Resolved;
        assert_eq!(subject(&n), "[RESOLVED] AgentTokenRotationOverdue prod-us");
        n.account = "evil\r\nBcc: victim@example.com".into();
        let s = subject(&n);
        assert!(
            !s.contains('\r') && !s.contains('\n'),
            "subject kept a line break: {s:?}"
        );
    }

    #[test]
    fn upstream_strings_are_escaped_in_html_and_control_characters_in_text() {
        let (text, html) = render_notification(&notification(
            "<script>alert(1)</script>\r\nBcc: x@y.z & \"q\"",
        ));
        assert!(!html.contains("<script>"), "raw markup in HTML:\n{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "HTML:\n{html}"
        );
        assert!(html.contains("&amp; &quot;q&quot;"), "HTML:\n{html}");
        assert!(
            html.contains("\\r\\nBcc: x@y.z"),
            "HTML did not show the line break escaped:\n{html}"
        );
        assert!(
            text.contains("\\r\\nBcc: x@y.z"),
            "text did not escape the line break:\n{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("Bcc:")),
            "a forged line in text:\n{text}"
        );
    }

    #[test]
    fn a_name_with_line_breaks_cannot_add_headers_to_the_built_message() {
        let from: Mailbox = "Alerts <alerts@example.com>".parse().unwrap();
        let mut n = notification("evil\r\nBcc: victim@example.com\r\n\r\nbody");
        n.account = "prod\r\nX-Injected: yes".into();
        let msg = build_notification(&n, &from, &[]).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        assert!(
            !head
                .lines()
                .any(|l| l.starts_with("Bcc:") || l.starts_with("X-Injected:")),
            "header injection:\n{head}"
        );
        assert_eq!(
            msg.envelope().to().len(),
            1,
            "envelope: {:?}",
            msg.envelope()
        );
    }

    #[test]
    fn a_bad_recipient_is_a_render_error_and_no_recipient_falls_back_to_the_default() {
        let from: Mailbox = "alerts@example.com".parse().unwrap();
        let mut n = notification("a");
        n.to = vec!["not an address".into()];
        assert!(matches!(
            build_notification(&n, &from, &[]),
            Err(RenderError::Recipient(_))
        ));
        n.to = vec![];
        assert!(matches!(
            build_notification(&n, &from, &[]),
            Err(RenderError::NoRecipient)
        ));
        let msg = build_notification(&n, &from, std::slice::from_ref(&from)).unwrap();
        assert_eq!(msg.envelope().to()[0].to_string(), "alerts@example.com");
    }
}
