//! `alerting.receivers`: named destinations besides email, one channel each (Slack, Microsoft Teams, PagerDuty, a
//! webhook), and the check that alerts have somewhere to go at all.
//!
//! Webhook URLs, routing keys and bearer tokens are secrets: they are read from files named in the config (one value,
//! a trailing newline trimmed), kept as `SecretString`, and no error ever quotes them.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

use crate::config::parse::{ConfigError, Located, resolve_path};
use crate::domain::{Channel, ReceiverRef};

/// Where PagerDuty Events API v2 events go unless `pagerduty.url` says otherwise (an EU account uses
/// `https://events.eu.pagerduty.com/v2/enqueue`).
pub const PAGERDUTY_DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The most receivers a config may name; far more than any team needs, and a bound on the outbox's fan-out (one
/// message per receiver per notification).
pub const MAX_RECEIVERS: usize = 32;

/// `alerting.receivers[]` as written: a name and exactly one channel block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    /// Routes and logs name the receiver by it: 1 to 64 of `[A-Za-z0-9_-]`.
    pub name: Spanned<String>,
    /// A Slack incoming webhook.
    #[serde(default)]
    pub slack: Option<Spanned<RawWebhookUrlFile>>,
    /// A Microsoft Teams Workflows webhook.
    #[serde(default)]
    pub msteams: Option<Spanned<RawWebhookUrlFile>>,
    /// A PagerDuty service's Events API v2 integration.
    #[serde(default)]
    pub pagerduty: Option<Spanned<RawPagerduty>>,
    /// Any endpoint that reads Alertmanager's webhook payload.
    #[serde(default)]
    pub webhook: Option<Spanned<RawWebhook>>,
}

/// `slack:` and `msteams:`: the webhook URL, which is the credential, from a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhookUrlFile {
    pub webhook_url_file: Spanned<PathBuf>,
}

/// `pagerduty:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPagerduty {
    /// The integration key, from a file.
    pub routing_key_file: Spanned<PathBuf>,
    /// The events endpoint; default [`PAGERDUTY_DEFAULT_URL`].
    #[serde(default)]
    pub url: Option<Spanned<String>>,
}

/// `webhook:`: exactly one of `url` and `url_file`, and an optional bearer token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// For a URL that carries a token of its own.
    #[serde(default)]
    pub url_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub bearer_token_file: Option<Spanned<PathBuf>>,
}

/// A validated receiver.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Its name, unique in the file.
    pub name: String,
    /// Where and how it sends.
    pub kind: ReceiverKind,
}

/// A validated receiver's channel and secrets. `Debug` shows no secret (`SecretString` redacts itself).
#[derive(Debug, Clone)]
pub enum ReceiverKind {
    Slack {
        webhook_url: SecretString,
    },
    Msteams {
        webhook_url: SecretString,
    },
    Pagerduty {
        routing_key: SecretString,
        url: String,
    },
    Webhook {
        url: SecretString,
        bearer_token: Option<SecretString>,
    },
}

impl ReceiverConfig {
    /// The receiver as notifications name it.
    pub fn reference(&self) -> ReceiverRef {
        ReceiverRef {
            name: self.name.clone(),
            channel: match self.kind {
                ReceiverKind::Slack { .. } => Channel::Slack,
                ReceiverKind::Msteams { .. } => Channel::Msteams,
                ReceiverKind::Pagerduty { .. } => Channel::Pagerduty,
                ReceiverKind::Webhook { .. } => Channel::Webhook,
            },
        }
    }
}

/// Returns true if and only if `name` is 1 to 64 of `[A-Za-z0-9_-]`: safe in an outbox file name and a log line.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads a one-line secret from `path` (relative to the config file), naming the key but never the content.
fn read_secret(
    v: &Located<'_>,
    path: &Spanned<PathBuf>,
    key: &str,
) -> Result<SecretString, ConfigError> {
    let line = path.referenced.line();
    let text = std::fs::read_to_string(resolve_path(v.file, &path.value)).map_err(|e| {
        v.at(
            line,
            key,
            format!("cannot read {}: {e}", path.value.display()),
        )
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(v.at(line, key, format!("{} is empty", path.value.display())));
    }
    if value.lines().count() > 1 {
        return Err(v.at(
            line,
            key,
            format!(
                "{} holds more than one line; it must hold only the value",
                path.value.display()
            ),
        ));
    }
    Ok(SecretString::from(value.to_string()))
}

/// Reads a secret URL from a file and checks it, never quoting it.
fn read_secret_url(
    v: &Located<'_>,
    path: &Spanned<PathBuf>,
    key: &str,
) -> Result<SecretString, ConfigError> {
    let url = read_secret(v, path, key)?;
    check_url(v, url.expose_secret(), path.referenced.line(), key, false)?;
    Ok(url)
}

/// Checks that `url` is an absolute http(s) URL. `shown` is false for secret URLs, whose errors then name the key
/// and file but not the value.
fn check_url(
    v: &Located<'_>,
    url: &str,
    line: u64,
    key: &str,
    shown: bool,
) -> Result<(), ConfigError> {
    let what = if shown {
        format!("{url:?}")
    } else {
        "the URL in the file".to_string()
    };
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(v.at(line, key, format!("{what} is not an http or https URL"))),
        // The parser's message describes the problem without quoting the input.
        Err(e) => Err(v.at(line, key, format!("{what} is not a valid URL: {e}"))),
    }
}

/// Validates `alerting.receivers` (at key path `key`): unique valid names, exactly one channel each, secrets read.
pub fn validate_receivers(
    file: &Path,
    key: &str,
    raw: &[Spanned<RawReceiver>],
) -> Result<Vec<ReceiverConfig>, ConfigError> {
    let v = Located { file };
    if raw.len() > MAX_RECEIVERS {
        let line = raw[MAX_RECEIVERS].referenced.line();
        return Err(v.at(
            line,
            key,
            format!("at most {MAX_RECEIVERS} receivers may be configured"),
        ));
    }
    let mut out: Vec<ReceiverConfig> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let k = format!("{key}[{i}]");
        let r_line = r.referenced.line();
        let r = &r.value;
        let name = r.name.value.trim().to_string();
        if !valid_name(&name) {
            return Err(v.at(
                r.name.referenced.line(),
                format!("{k}.name"),
                format!(
                    "bad receiver name {:?}: use 1 to 64 letters, digits, '-' or '_'",
                    r.name.value
                ),
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(v.at(
                r.name.referenced.line(),
                format!("{k}.name"),
                format!("receiver {name:?} is defined twice; names must be unique"),
            ));
        }
        let exactly_one = || {
            v.at(
                r_line,
                &k,
                format!(
                    "receiver {name:?} must have exactly one of slack, msteams, pagerduty, webhook"
                ),
            )
        };
        let kind = match (&r.slack, &r.msteams, &r.pagerduty, &r.webhook) {
            (Some(s), None, None, None) => {
                let kk = format!("{k}.slack.webhook_url_file");
                let url = read_secret_url(&v, &s.value.webhook_url_file, &kk)?;
                ReceiverKind::Slack { webhook_url: url }
            }
            (None, Some(s), None, None) => {
                let kk = format!("{k}.msteams.webhook_url_file");
                let url = read_secret_url(&v, &s.value.webhook_url_file, &kk)?;
                ReceiverKind::Msteams { webhook_url: url }
            }
            (None, None, Some(p), None) => {
                let routing_key = read_secret(
                    &v,
                    &p.value.routing_key_file,
                    &format!("{k}.pagerduty.routing_key_file"),
                )?;
                let url = match &p.value.url {
                    None => PAGERDUTY_DEFAULT_URL.to_string(),
                    Some(u) => {
                        let url = u.value.trim().to_string();
                        check_url(
                            &v,
                            &url,
                            u.referenced.line(),
                            &format!("{k}.pagerduty.url"),
                            true,
                        )?;
                        url
                    }
                };
                ReceiverKind::Pagerduty { routing_key, url }
            }
            (None, None, None, Some(w)) => {
                let w_line = w.referenced.line();
                let w = &w.value;
                let url = match (&w.url, &w.url_file) {
                    (Some(u), None) => {
                        let url = u.value.trim().to_string();
                        check_url(
                            &v,
                            &url,
                            u.referenced.line(),
                            &format!("{k}.webhook.url"),
                            true,
                        )?;
                        SecretString::from(url)
                    }
                    (None, Some(f)) => read_secret_url(&v, f, &format!("{k}.webhook.url_file"))?,
                    _ => {
                        return Err(v.at(
                            w_line,
                            format!("{k}.webhook"),
                            "set exactly one of url and url_file",
                        ));
                    }
                };
                let bearer_token = match &w.bearer_token_file {
                    None => None,
                    Some(f) => Some(read_secret(
                        &v,
                        f,
                        &format!("{k}.webhook.bearer_token_file"),
                    )?),
                };
                ReceiverKind::Webhook { url, bearer_token }
            }
            _ => return Err(exactly_one()),
        };
        out.push(ReceiverConfig { name, kind });
    }
    Ok(out)
}

/// Looks up receiver names (a route's `receivers`, `default_receivers`) among `known`, naming the key and the known
/// names when one is missing.
pub fn resolve_names(
    file: &Path,
    key: &str,
    names: &[Spanned<String>],
    known: &[ReceiverConfig],
) -> Result<Vec<ReceiverRef>, ConfigError> {
    let v = Located { file };
    let mut out: Vec<ReceiverRef> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let name = n.value.trim();
        let Some(r) = known.iter().find(|r| r.name == name) else {
            let list: Vec<&str> = known.iter().map(|r| r.name.as_str()).collect();
            return Err(v.at(
                n.referenced.line(),
                format!("{key}[{i}]"),
                format!(
                    "unknown receiver {name:?}; alerting.receivers defines: {}",
                    if list.is_empty() {
                        "none".to_string()
                    } else {
                        list.join(", ")
                    }
                ),
            ));
        };
        if !out.iter().any(|o| o.name == r.name) {
            out.push(r.reference());
        }
    }
    Ok(out)
}

/// What [`check_destinations`] looks at: the destinations the `alerting` section configures.
#[derive(Debug, Clone, Copy)]
pub struct Destinations {
    /// `alerting.email` is set.
    pub email: bool,
    /// `alerting.alertmanagers` has an entry.
    pub alertmanagers: bool,
    /// How many `alerting.receivers` there are.
    pub receivers: usize,
    /// How many `alerting.default_receivers` there are.
    pub default_receivers: usize,
}

/// Checks that a notification no route matches has somewhere to go when receivers are the only channel that sends
/// notifications: to `default_receivers`. (With `email`, it goes to `email.to`; with Alertmanagers, the alert itself
/// reaches them. That at least one channel exists is [`crate::config::alerting::require_a_channel`]'s check.)
/// `line` is where the `alerting` section's `state_file` is.
pub fn check_destinations(
    file: &Path,
    key: &str,
    line: u64,
    d: Destinations,
) -> Result<(), ConfigError> {
    if d.receivers > 0 && !d.email && !d.alertmanagers && d.default_receivers == 0 {
        return Err(Located { file }.at(
            line,
            format!("{key}.default_receivers"),
            "without alerting.email, alerts that no route matches need default_receivers (for example \
             default_receivers: [ops-chat])",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::alerting::{AlertingConfig, RawAlerting};
    use crate::config::parse::ConfigError;
    use crate::domain::AlertName;
    use crate::domain::Channel;
    use crate::domain::Severity;

    /// Parses `section` as the `alerting` section of `dir/config.yaml`, so that relative secret files resolve in
    /// `dir`.
    fn load(dir: &std::path::Path, section: &str) -> Result<AlertingConfig, ConfigError> {
        let raw: RawAlerting =
            serde_saphyr::from_str(section).unwrap_or_else(|e| panic!("YAML:\n{section}\n{e}"));
        raw.validate(&dir.join("config.yaml"), "alerting")
    }

    const SECRET_URL: &str = "https://hooks.slack.com/services/T0/B0/s3cr3tPATH";

    fn secrets() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("slack"), format!("{SECRET_URL}\n")).unwrap();
        std::fs::write(dir.path().join("pd"), "R0UTINGKEY\n").unwrap();
        std::fs::write(dir.path().join("bad-url"), "not a url s3cr3tPATH\n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        dir
    }

    #[test]
    fn receivers_routes_and_default_receivers_validate_without_email() {
        let dir = secrets();
        let cfg = load(
            dir.path(),
            "state_file: s.json\n\
             receivers:\n\
             \x20 - { name: ops-chat, slack: { webhook_url_file: slack } }\n\
             \x20 - { name: pager, pagerduty: { routing_key_file: pd } }\n\
             \x20 - { name: hook, webhook: { url: \"http://127.0.0.1:9/alerts\" } }\n\
             default_receivers: [ops-chat]\n\
             routes:\n\
             \x20 - { severity: critical, receivers: [pager, ops-chat] }\n",
        )
        .unwrap();
        assert!(cfg.email.is_none());
        assert_eq!(cfg.receivers.len(), 3);
        let names = |rs: Vec<crate::domain::ReceiverRef>| -> Vec<(String, Channel)> {
            rs.into_iter().map(|r| (r.name, r.channel)).collect()
        };
        assert_eq!(
            names(
                cfg.engine
                    .receivers(AlertName::AgentOffline, Severity::Critical, "prod")
            ),
            [
                ("pager".to_string(), Channel::Pagerduty),
                ("ops-chat".to_string(), Channel::Slack)
            ]
        );
        assert_eq!(
            names(
                cfg.engine
                    .receivers(AlertName::AgentOffline, Severity::Warning, "prod")
            ),
            [("ops-chat".to_string(), Channel::Slack)]
        );
        assert!(
            cfg.engine
                .recipients(AlertName::AgentOffline, Severity::Critical, "prod")
                .is_empty()
        );
        assert!(!format!("{cfg:?}").contains("s3cr3t") && !format!("{cfg:?}").contains("R0UTING"));
    }

    /// Each invalid section and the exact error it must produce; none may quote a secret.
    #[test]
    fn invalid_receivers_name_the_line_and_the_key_but_never_the_secret() {
        let dir = secrets();
        let d = dir.path().display().to_string();
        let cases: &[(&str, String)] = &[
            (
                "state_file: s.json\n",
                format!(
                    "{d}/config.yaml:1: alerting: no notification channel: set at least one of email, alertmanagers, receivers"
                ),
            ),
            (
                "state_file: s.json\nreceivers:\n  - { name: a, slack: { webhook_url_file: slack } }\n",
                format!(
                    "{d}/config.yaml:1: alerting.default_receivers: without alerting.email, alerts that no route matches need default_receivers (for example default_receivers: [ops-chat])"
                ),
            ),
            (
                "state_file: s.json\nreceivers:\n  - { name: \"a b\", slack: { webhook_url_file: slack } }\n",
                format!(
                    "{d}/config.yaml:3: alerting.receivers[0].name: bad receiver name \"a b\": use 1 to 64 letters, digits, '-' or '_'"
                ),
            ),
            (
                "state_file: s.json\nreceivers:\n  - name: a\n    slack: { webhook_url_file: slack }\n    pagerduty: { routing_key_file: pd }\n",
                format!(
                    "{d}/config.yaml:3: alerting.receivers[0]: receiver \"a\" must have exactly one of slack, msteams, pagerduty, webhook"
                ),
            ),
            (
                "state_file: s.json\nreceivers:\n  - { name: a, slack: { webhook_url_file: slack } }\n  - { name: a, slack: { webhook_url_file: slack } }\n",
                format!(
                    "{d}/config.yaml:4: alerting.receivers[1].name: receiver \"a\" is defined twice; names must be unique"
                ),
            ),
            (
                "state_file: s.json\nreceivers:\n  - { name: a, msteams: { webhook_url_file: bad-url } }\n",
                format!(
                    "{d}/config.yaml:3: alerting.receivers[0].msteams.webhook_url_file: the URL in the file is not a valid URL: relative URL without a base"
                ),
            ),
            (
                "state_file: s.json\nreceivers:\n  - { name: a, pagerduty: { routing_key_file: empty } }\n",
                format!(
                    "{d}/config.yaml:3: alerting.receivers[0].pagerduty.routing_key_file: empty is empty"
                ),
            ),
            (
                "state_file: s.json\nreceivers:\n  - { name: a, webhook: { bearer_token_file: pd } }\n",
                format!(
                    "{d}/config.yaml:3: alerting.receivers[0].webhook: set exactly one of url and url_file"
                ),
            ),
            (
                "state_file: s.json\nreceivers:\n  - { name: a, slack: { webhook_url_file: slack } }\ndefault_receivers: [b]\n",
                format!(
                    "{d}/config.yaml:4: alerting.default_receivers[0]: unknown receiver \"b\"; alerting.receivers defines: a"
                ),
            ),
            (
                "state_file: s.json\nreceivers:\n  - { name: a, slack: { webhook_url_file: slack } }\ndefault_receivers: [a]\nroutes:\n  - { severity: critical, to: [ops@example.com] }\n",
                format!(
                    "{d}/config.yaml:6: alerting.routes[0].to: addresses need alerting.email to send through; add it or use receivers"
                ),
            ),
        ];
        for (section, want) in cases {
            let err = load(dir.path(), section).unwrap_err().to_string();
            assert_eq!(&err, want, "for:\n{section}");
            assert!(!err.contains("s3cr3t") && !err.contains("R0UTING"), "{err}");
        }
    }
}
