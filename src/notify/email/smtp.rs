//! The SMTP session: one connection per message, spoken step by step (DNS, connect, TLS, greeting, STARTTLS, AUTH,
//! MAIL FROM, RCPT TO, DATA) so that every failure names the step and the host. The same code serves delivery and
//! the `test-email` diagnostic.
//!
//! One connection per message rather than a pool: alerts are rare, and a pooled connection would outlive an SMTP
//! restart and fail the first message after it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use lettre::Message;
use lettre::message::MultiPart;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use secrecy::ExposeSecret;

use super::render::{RenderError, parse_mailbox};
use crate::config::email::{EmailConfig, SmtpConfig, SmtpCredentials, TlsMode};

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
        source: ServerReply,
    },
    /// The TLS handshake failed: implicit TLS (`tls`) or after `STARTTLS`. Often an untrusted certificate or a
    /// port that does not speak TLS.
    #[error("tls: TLS handshake with SMTP server {host}:{port} failed: {source}")]
    Tls {
        host: String,
        port: u16,
        #[source]
        source: ServerReply,
    },
    /// The server refused the session or answered the greeting or EHLO with an error.
    #[error("greeting: SMTP server {host}:{port} refused the session: {source}")]
    Greeting {
        host: String,
        port: u16,
        #[source]
        source: ServerReply,
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
        source: ServerReply,
    },
    /// `MAIL FROM` was rejected.
    #[error("sender: SMTP server {host}:{port} rejected sender {from}: {source}")]
    Sender {
        host: String,
        port: u16,
        from: String,
        #[source]
        source: ServerReply,
    },
    /// `RCPT TO` was rejected for one recipient.
    #[error("recipient: SMTP server {host}:{port} rejected recipient {recipient}: {source}")]
    Recipient {
        host: String,
        port: u16,
        recipient: String,
        #[source]
        source: ServerReply,
    },
    /// `DATA` or the message content was rejected, or the connection broke while sending it.
    #[error("data: SMTP server {host}:{port} did not accept the message: {source}")]
    Data {
        host: String,
        port: u16,
        #[source]
        source: ServerReply,
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
        source: ServerReply,
    },
}

/// What the server or the connection said about a failed step: lettre's error and its causes flattened into one
/// line (a cause already contained in the line before it is not repeated), with the SMTP password removed as
/// written and as AUTH PLAIN and LOGIN encode it (see [`redact`]). A server that quotes the credentials in a 535
/// reply thus cannot put them into `test-email`'s output, a log line or the outbox.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServerReply(String);

/// The [`ServerReply`] of a lettre error, for the server configured in `cfg`.
fn reply(cfg: &SmtpConfig, error: lettre::transport::smtp::Error) -> ServerReply {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(&error);
    while let Some(e) = current {
        // lettre calls any 5xx reply a "permanent error", yet the outbox retries it (an AUTH or relay mistake
        // answers 5xx too, and is fixed without losing the alert): say what the server replied instead.
        let text = e
            .to_string()
            .replacen("permanent error (", "server reply (", 1)
            .replacen("transient error (", "server reply (", 1);
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    ServerReply(redact(&parts.join(": "), cfg.credentials.as_ref()))
}

/// The marker that replaces a removed secret.
const REDACTED: &str = "[REDACTED]";

/// Removes the password of `credentials` from `text` in every form the SMTP client sends it: as written, base64 (AUTH
/// LOGIN's password line) and base64 of `\0user\0password` (AUTH PLAIN's initial response), each also without its
/// `=` padding. Longest forms first, so a shorter one never leaves part of a longer one behind.
pub fn redact(text: &str, credentials: Option<&SmtpCredentials>) -> String {
    use base64::Engine as _;
    let Some(c) = credentials else {
        return text.to_string();
    };
    let password = c.password.expose_secret();
    if password.is_empty() {
        return text.to_string();
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut forms = vec![password.to_string()];
    for raw in [
        password.to_string(),
        format!("\0{}\0{password}", c.username),
    ] {
        let encoded = b64.encode(raw);
        forms.push(encoded.trim_end_matches('=').to_string());
        forms.push(encoded);
    }
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let mut out = text.to_string();
    for form in forms {
        out = out.replace(&form, REDACTED);
    }
    out
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
    let html = maud::html! {
        @for paragraph in text.split("\n\n") {
            p { (paragraph) }
        }
    }
    .into_string();
    let mut b = Message::builder()
        .from(cfg.from.clone())
        .subject("[TEST] onprem-agent-exporter email")
        .date_now()
        .message_id(None);
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
            .map_err(|e| SmtpError::Tls {
                host: host(),
                port,
                source: reply(cfg, e),
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
        .map_err(|e| SmtpError::Auth {
            host: host(),
            port,
            username: c.username.clone(),
            source: reply(cfg, e),
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
        .map_err(|e| SmtpError::Sender {
            host: host(),
            port,
            from: from.map_or_else(|| "<>".to_string(), |a| a.to_string()),
            source: reply(cfg, e),
        })?;
    for rcpt in envelope.to() {
        within(
            cfg,
            "recipient",
            conn.command(Rcpt::new(rcpt.clone(), vec![])),
        )
        .await?
        .map_err(|e| SmtpError::Recipient {
            host: host(),
            port,
            recipient: rcpt.to_string(),
            source: reply(cfg, e),
        })?;
    }
    within(cfg, "data", conn.command(Data))
        .await?
        .map_err(|e| SmtpError::Data {
            host: host(),
            port,
            source: reply(cfg, e),
        })?;
    within(cfg, "data", conn.message(&body))
        .await?
        .map_err(|e| SmtpError::Data {
            host: host(),
            port,
            source: reply(cfg, e),
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
    let setup = |e| SmtpError::TlsSetup {
        host: cfg.host.clone(),
        source: reply(cfg, e),
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
        let source = reply(cfg, source);
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
    let tls = cfg.tls == TlsMode::Tls && !reaching && !source.is_timeout();
    let source = reply(cfg, source);
    if tls {
        SmtpError::Tls { host, port, source }
    } else {
        SmtpError::Connect { host, port, source }
    }
}
