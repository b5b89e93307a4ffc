//! The `alerting.email` section: the SMTP server, how to secure and authenticate the session, and the default
//! recipients.
//!
//! Raw serde types reject unknown keys and keep the line of every value that validation may reject; `validate` turns
//! them into types that cannot be wrong (parsed mailboxes, a duration, the SMTP password already read). Every error
//! is a [`ConfigError::Invalid`] naming the file, the line, the key path (`alerting.email.smtp.port`) and the bad
//! value; the password is never shown.

use std::fmt;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use secrecy::SecretString;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::parse::{ConfigError, Located, resolve_path};
use crate::config::secret_file::{self, SecretFileError, read_secret_file};

/// The SMTP timeout when `alerting.email.smtp.timeout` is not set: long enough for a slow relay, short enough
/// that one stuck connection does not hold the outbox for minutes.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text, no TLS at all. Only for a relay on the same host or a test server.
    None,
    /// Plain connect, then `STARTTLS`; the upgrade is required, never optional (default port 587).
    Starttls,
    /// Implicit TLS from the first byte, "SMTPS" (default port 465).
    Tls,
}

impl TlsMode {
    /// The port used when the config names none.
    pub fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        }
    }

    /// The spelling used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Starttls => "starttls",
            TlsMode::Tls => "tls",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `alerting.email` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    /// How to reach the SMTP server.
    pub smtp: Spanned<RawSmtp>,
    /// The `From:` mailbox, `"Agent alerts <alerts@example.com>"` or a bare address.
    pub from: Spanned<String>,
    /// Default recipients; routes may choose others.
    pub to: Spanned<Vec<Spanned<String>>>,
}

/// `alerting.email.smtp` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    /// Host name or IP address of the SMTP server; also the name its certificate must carry.
    pub host: Spanned<String>,
    /// TCP port; defaults by `tls`: 25, 587 or 465.
    #[serde(default)]
    pub port: Option<Spanned<u32>>,
    /// `none`, `starttls` (default) or `tls`.
    #[serde(default)]
    pub tls: Option<TlsMode>,
    /// The AUTH user; when set, exactly one of `password_file` and `password_env` must be set too.
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    /// A file holding the password; one trailing newline is ignored.
    #[serde(default)]
    pub password_file: Option<Spanned<PathBuf>>,
    /// The name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<Spanned<String>>,
    /// Limit for each SMTP command, connect included (a duration, default 30s).
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    /// A PEM file of extra CA certificates to trust, for a relay with a private CA. The system roots stay trusted.
    #[serde(default)]
    pub ca_file: Option<Spanned<PathBuf>>,
    /// Allows AUTH with `tls: none` to a host other than loopback, which sends the password in the clear (AUTH PLAIN
    /// and LOGIN only base64-encode it). Off by default; for a relay on a trusted segment that cannot do TLS.
    #[serde(default)]
    pub allow_insecure_auth: Option<bool>,
}

/// The validated `alerting.email`.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The SMTP server and how to talk to it.
    pub smtp: SmtpConfig,
    /// The `From:` mailbox of every message.
    pub from: Mailbox,
    /// Default recipients, never empty.
    pub to: Vec<Mailbox>,
}

impl EmailConfig {
    /// The default recipients as plain addresses (`ops@example.com`), the form [`crate::domain::Notification::to`] carries.
    pub fn recipients(&self) -> Vec<String> {
        self.to.iter().map(|m| m.email.to_string()).collect()
    }
}

/// The validated `alerting.email.smtp`.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// `None` means no AUTH.
    pub credentials: Option<SmtpCredentials>,
    /// Limit for each SMTP command, connect included.
    pub timeout: Duration,
    /// Extra CA certificates (PEM, as read from `ca_file`), each trusted next to the system roots.
    pub extra_roots_pem: Vec<Vec<u8>>,
}

/// An SMTP user and its password. `Debug` never shows the password ([`SecretString`] redacts it).
#[derive(Debug, Clone)]
pub struct SmtpCredentials {
    pub username: String,
    pub password: SecretString,
}

impl RawEmail {
    /// Validates the section found at `key` (normally `alerting.email`) of `file`, and reads the SMTP password from
    /// its file or environment variable now, so that a missing secret fails at start-up and not at the first alert.
    pub fn validate(self, file: &Path, key: &str) -> Result<EmailConfig, ConfigError> {
        let v = Located { file };
        let smtp_line = self.smtp.referenced.line();
        let raw = self.smtp.value;
        let k = format!("{key}.smtp");

        let host = raw.host.value.trim().to_string();
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(v.at(
                raw.host.referenced.line(),
                format!("{k}.host"),
                format!("{:?} is not a host name", raw.host.value),
            ));
        }
        let tls = raw.tls.unwrap_or(TlsMode::Starttls);
        let port = match raw.port {
            None => tls.default_port(),
            Some(p) => match u16::try_from(p.value) {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(v.at(
                        p.referenced.line(),
                        format!("{k}.port"),
                        format!("{} is not a TCP port (1 to 65535)", p.value),
                    ));
                }
            },
        };
        let timeout =
            v.opt_duration(&raw.timeout, &format!("{k}.timeout"), DEFAULT_SMTP_TIMEOUT)?;
        if timeout.is_zero() {
            let line = raw
                .timeout
                .as_ref()
                .map_or(smtp_line, |t| t.referenced.line());
            return Err(v.at(line, format!("{k}.timeout"), "must be longer than zero"));
        }

        let credentials = match (raw.username, raw.password_file, raw.password_env) {
            (None, None, None) => None,
            (None, Some(p), _) => {
                return Err(v.at(
                    p.referenced.line(),
                    format!("{k}.password_file"),
                    "a password needs a username; set username or remove password_file",
                ));
            }
            (None, None, Some(p)) => {
                return Err(v.at(
                    p.referenced.line(),
                    format!("{k}.password_env"),
                    "a password needs a username; set username or remove password_env",
                ));
            }
            (Some(u), None, None) => {
                return Err(v.at(
                    u.referenced.line(),
                    format!("{k}.username"),
                    "needs a password: set exactly one of password_file and password_env",
                ));
            }
            (Some(_), Some(f), Some(_)) => {
                return Err(v.at(
                    f.referenced.line(),
                    format!("{k}.password_file"),
                    "password_file and password_env are both set; set exactly one",
                ));
            }
            (Some(u), Some(f), None) => {
                let path = resolve_path(file, &f.value);
                let written = f.value.to_string_lossy();
                let key = format!("{k}.password_file");
                let fail = |e: &SecretFileError| {
                    v.at(
                        f.referenced.line(),
                        key.clone(),
                        secret_file::describe("password_file", &written, &path, e),
                    )
                };
                let read = read_secret_file(&path).map_err(|e| fail(&e))?;
                secret_file::warn_if_readable_by_others(&key, &path, &read);
                let password = strip_one_newline(read.text);
                if password.is_empty() {
                    return Err(fail(&SecretFileError::Empty));
                }
                Some(SmtpCredentials {
                    username: u.value,
                    password: SecretString::from(password),
                })
            }
            (Some(u), None, Some(e)) => {
                let password = std::env::var(&e.value).map_err(|err| {
                    let message = if secret_file::shows_as_variable_name(&e.value) {
                        format!("environment variable {:?}: {err}", e.value)
                    } else {
                        "the environment variable named in password_env is not set (the value is not a \
                         conventional variable name and may be the password itself, so it is not repeated here)"
                            .to_string()
                    };
                    v.at(e.referenced.line(), format!("{k}.password_env"), message)
                })?;
                if password.is_empty() {
                    return Err(v.at(
                        e.referenced.line(),
                        format!("{k}.password_env"),
                        format!("environment variable {:?} is empty", e.value),
                    ));
                }
                Some(SmtpCredentials {
                    username: u.value,
                    password: SecretString::from(password),
                })
            }
        };

        if credentials.is_some()
            && tls == TlsMode::None
            && !is_loopback_host(&host)
            && raw.allow_insecure_auth != Some(true)
        {
            return Err(v.at(
                smtp_line,
                format!("{k}.tls"),
                format!(
                    "tls: none with a username would send the SMTP password in the clear to {host}; use tls: \
                     starttls or tls, or set allow_insecure_auth: true if the network between is trusted"
                ),
            ));
        }

        let mut extra_roots_pem = Vec::new();
        if let Some(ca) = raw.ca_file {
            let pem = std::fs::read(resolve_path(file, &ca.value)).map_err(|e| {
                v.at(
                    ca.referenced.line(),
                    format!("{k}.ca_file"),
                    format!("cannot read {}: {e}", ca.value.display()),
                )
            })?;
            if let Err(e) = lettre::transport::smtp::client::Certificate::from_pem(&pem) {
                return Err(v.at(
                    ca.referenced.line(),
                    format!("{k}.ca_file"),
                    format!("{} is not a PEM certificate: {e}", ca.value.display()),
                ));
            }
            extra_roots_pem.push(pem);
        }

        let from = v.mailbox(&self.from, &format!("{key}.from"))?;
        let to = v.mailboxes(&self.to, &format!("{key}.to"))?;
        Ok(EmailConfig {
            smtp: SmtpConfig {
                host,
                port,
                tls,
                credentials,
                timeout,
                extra_roots_pem,
            },
            from,
            to,
        })
    }
}

/// Returns true if and only if `host` names this machine: `localhost` (or a name under `.localhost`), an address in
/// 127.0.0.0/8 or `::1` (with or without brackets).
fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if h == "localhost" || h.ends_with(".localhost") {
        return true;
    }
    h.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Drops one trailing `\n` or `\r\n`: editors add one, and no real password ends in a newline.
fn strip_one_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use secrecy::ExposeSecret;

    use super::*;

    fn email(yaml: &str) -> Result<EmailConfig, ConfigError> {
        let raw: RawEmail = serde_saphyr::from_str(yaml).expect("the test YAML parses");
        raw.validate(Path::new("test.yaml"), "alerting.email")
    }

    fn password_file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    #[test]
    fn the_contract_example_validates_and_reads_the_password_without_its_newline() {
        let pw = password_file("s3cret\n");
        let yaml = format!(
            "smtp: {{ host: smtp.example.com, port: 587, tls: starttls, username: alerts, password_file: {} }}\n\
             from: \"Agent alerts <alerts@example.com>\"\nto: [\"ops@example.com\"]\n",
            pw.path().display()
        );
        let cfg = email(&yaml).unwrap_or_else(|e| panic!("expected a valid config, got: {e}"));
        assert_eq!(cfg.smtp.host, "smtp.example.com");
        assert_eq!(cfg.smtp.port, 587);
        assert_eq!(cfg.smtp.tls, TlsMode::Starttls);
        let creds = cfg.smtp.credentials.as_ref().expect("credentials");
        assert_eq!(creds.username, "alerts");
        assert_eq!(creds.password.expose_secret(), "s3cret");
        assert_eq!(cfg.from.name.as_deref(), Some("Agent alerts"));
        assert_eq!(cfg.recipients(), vec!["ops@example.com".to_string()]);
        assert!(
            !format!("{cfg:?}").contains("s3cret"),
            "Debug shows the password: {cfg:?}"
        );
    }

    #[test]
    fn the_port_defaults_by_tls_mode() {
        for (mode, port) in [("none", 25), ("starttls", 587), ("tls", 465)] {
            let cfg = email(&format!(
                "smtp: {{ host: h, tls: {mode} }}\nfrom: a@b.c\nto: [d@e.f]\n"
            ))
            .unwrap();
            assert_eq!(cfg.smtp.port, port, "tls: {mode}");
        }
    }

    /// Each invalid input and the key path and message fragment its error must carry.
    #[test]
    fn invalid_email_sections_name_the_line_the_key_and_the_value() {
        let cases: &[(&str, u64, &str, &str)] = &[
            (
                "smtp: { host: h, port: 70000 }\nfrom: a@b.c\nto: [d@e.f]\n",
                1,
                "alerting.email.smtp.port",
                "70000",
            ),
            (
                "smtp: { host: h }\nfrom: not-an-address\nto: [d@e.f]\n",
                2,
                "alerting.email.from",
                "not-an-address",
            ),
            (
                "smtp: { host: h }\nfrom: a@b.c\nto: []\n",
                3,
                "alerting.email.to",
                "at least one",
            ),
            (
                "smtp: { host: h }\nfrom: a@b.c\nto:\n  - d@e.f\n  - bad\n",
                5,
                "alerting.email.to[1]",
                "\"bad\"",
            ),
            (
                "smtp: { host: h, timeout: soon }\nfrom: a@b.c\nto: [d@e.f]\n",
                1,
                "alerting.email.smtp.timeout",
                "soon",
            ),
            (
                "smtp: { host: h, username: u }\nfrom: a@b.c\nto: [d@e.f]\n",
                1,
                "alerting.email.smtp.username",
                "exactly one",
            ),
            (
                "smtp: { host: h, password_env: X }\nfrom: a@b.c\nto: [d@e.f]\n",
                1,
                "alerting.email.smtp.password_env",
                "needs a username",
            ),
            (
                "smtp:\n  host: h\n  username: u\n  password_file: /nonexistent/smtp-password\nfrom: a@b.c\nto: [d@e.f]\n",
                4,
                "alerting.email.smtp.password_file",
                "/nonexistent/smtp-password",
            ),
            (
                "smtp: { host: h, username: u, password_env: ONPREM_TEST_SURELY_UNSET_VAR }\nfrom: a@b.c\nto: [d@e.f]\n",
                1,
                "alerting.email.smtp.password_env",
                "ONPREM_TEST_SURELY_UNSET_VAR",
            ),
            (
                "smtp: { host: \"a b\" }\nfrom: a@b.c\nto: [d@e.f]\n",
                1,
                "alerting.email.smtp.host",
                "a b",
            ),
        ];
        for (yaml, line, key, fragment) in cases {
            match email(yaml) {
                Err(ConfigError::Invalid {
                    line: l,
                    key: k,
                    message,
                    ..
                }) => {
                    assert_eq!(
                        (l, k.as_str()),
                        (*line, *key),
                        "for YAML:\n{yaml}\nmessage: {message}"
                    );
                    assert!(
                        message.contains(fragment),
                        "message {message:?} lacks {fragment:?} for:\n{yaml}"
                    );
                }
                other => panic!("expected Invalid at {key}, got {other:?} for:\n{yaml}"),
            }
        }
    }

    #[test]
    fn unknown_keys_and_tls_modes_are_rejected_by_the_parser() {
        for yaml in [
            "smtp: { host: h, tls: ssl }\nfrom: a@b.c\nto: [d@e.f]\n",
            "smtp: { host: h, password: x }\nfrom: a@b.c\nto: [d@e.f]\n",
            "smtp: { host: h }\nfrom: a@b.c\nto: [d@e.f]\ncc: [x@y.z]\n",
        ] {
            let parsed: Result<RawEmail, _> = serde_saphyr::from_str(yaml);
            assert!(parsed.is_err(), "accepted:\n{yaml}");
        }
    }
}
