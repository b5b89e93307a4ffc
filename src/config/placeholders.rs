//! Finds the placeholder values shipped in `examples/config.yaml`, `examples/secrets/` and
//! `examples/web-config.yml` left in a config, so that `check-config` can warn before the exporter polls with a
//! token that cannot work, mails an `example.com` address or guards its pages with a password everybody knows.
//!
//! A placeholder is still a valid value (the config loads), so these are warnings, not errors. They name the key
//! and never the value: a token that merely looks like a placeholder might be a real secret.

use std::collections::BTreeMap;
use std::path::Path;

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::Config;

/// What the shipped secret files (`examples/secrets/*`) hold: every one ends with this marker.
const SECRET_MARKER: &str = "replace-me";

/// The password whose bcrypt hash `examples/web-config.yml` ships ("change-me"); a hash of it is a placeholder
/// whatever its salt or cost, so it is found by verifying against it rather than by comparing the hash text.
const WEB_PLACEHOLDER_PASSWORD: &str = "change-me";

/// One key that still holds a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// The key path as written in the file (`sources[0].token_file`, `alerting.email.smtp.host`).
    pub key: String,
    /// What is wrong, in words that repeat no secret.
    pub what: &'static str,
}

impl std::fmt::Display for Placeholder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.what)
    }
}

/// Only the keys needed to say where a source's token came from; everything else is ignored (the file has
/// already been validated by [`Config::parse`]).
#[derive(Deserialize)]
struct Shape {
    #[serde(default)]
    sources: Vec<SourceShape>,
}

#[derive(Deserialize)]
struct SourceShape {
    token_env: Option<serde::de::IgnoredAny>,
}

/// Returns true if and only if `host` is a domain reserved for documentation (RFC 2606 and RFC 6761): `example.com`,
/// `example.net`, `example.org`, the `.example` top-level domain, or a name under one of them. Case is ignored.
pub fn is_example_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    ["example.com", "example.net", "example.org", "example"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// Returns true if and only if the address's domain (after the last `@`) is a documentation domain.
fn is_example_address(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(_, domain)| is_example_host(domain.trim_end_matches('>')))
}

/// Returns true if and only if `secret` is one of the shipped placeholder secrets (they all end in `replace-me`).
fn is_placeholder_secret(secret: &str) -> bool {
    secret.trim().to_ascii_lowercase().ends_with(SECRET_MARKER)
}

/// Every key of a loaded config that holds a shipped placeholder, in file order. `text` is the file's text, read
/// only to tell `token_file` from `token_env` in the key path; if it does not parse, `token_file` is assumed.
pub fn in_config(config: &Config, text: &str) -> Vec<Placeholder> {
    let shape: Option<Shape> = super::parse::parse_yaml(text, Path::new("")).ok();
    let mut found = Vec::new();
    for (i, source) in config.sources.iter().enumerate() {
        if is_placeholder_secret(source.token.expose_secret()) {
            let from_env = shape
                .as_ref()
                .and_then(|s| s.sources.get(i))
                .is_some_and(|s| s.token_env.is_some());
            found.push(Placeholder {
                key: format!(
                    "sources[{i}].{}",
                    if from_env { "token_env" } else { "token_file" }
                ),
                what: "holds the examples' placeholder API token; put the account's real token there",
            });
        }
    }
    let Some(alerting) = &config.alerting else {
        return found;
    };
    if alerting
        .engine
        .external_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| u.host_str().is_some_and(is_example_host))
    {
        found.push(Placeholder {
            key: "alerting.external_url".into(),
            what: "holds a documentation domain (example.com), so the links in notifications lead nowhere",
        });
    }
    for (i, route) in alerting.engine.routes.iter().enumerate() {
        if route.to.iter().any(|a| is_example_address(a)) {
            found.push(Placeholder {
                key: format!("alerting.routes[{i}].to"),
                what: "holds the examples' placeholder address at a documentation domain (example.com), which nobody reads",
            });
        }
    }
    if let Some(email) = &alerting.email {
        if is_example_host(&email.smtp.host) {
            found.push(Placeholder {
                key: "alerting.email.smtp.host".into(),
                what: "holds the examples' placeholder SMTP server (a documentation domain)",
            });
        }
        if email
            .smtp
            .credentials
            .as_ref()
            .is_some_and(|c| is_placeholder_secret(c.password.expose_secret()))
        {
            found.push(Placeholder {
                key: "alerting.email.smtp.password_file".into(),
                what: "holds the examples' placeholder SMTP password",
            });
        }
        if is_example_host(email.from.email.domain()) {
            found.push(Placeholder {
                key: "alerting.email.from".into(),
                what: "holds the examples' placeholder address at a documentation domain (example.com)",
            });
        }
        if email.to.iter().any(|m| is_example_host(m.email.domain())) {
            found.push(Placeholder {
                key: "alerting.email.to".into(),
                what: "holds the examples' placeholder address at a documentation domain (example.com), which nobody reads",
            });
        }
    }
    if let Some(tc) = &config.reports.token_compliance
        && tc.to.iter().any(|m| is_example_host(m.email.domain()))
    {
        found.push(Placeholder {
            key: "reports.token_compliance.to".into(),
            what: "holds the examples' placeholder address at a documentation domain (example.com), which nobody reads",
        });
    }
    found
}

/// Every `basic_auth_users` entry (name → bcrypt hash) whose hash is of the examples' placeholder password. Each
/// check costs one bcrypt verification (tens of milliseconds at cost 10), which is fine for `check-config`.
pub fn in_web_users(users: &BTreeMap<String, String>) -> Vec<Placeholder> {
    users
        .iter()
        .filter(|(_, hash)| bcrypt::verify(WEB_PLACEHOLDER_PASSWORD, hash).unwrap_or(false))
        .map(|(name, _)| Placeholder {
            key: format!("basic_auth_users.{name}"),
            what: "holds the hash of the examples' placeholder password; hash a password of your own",
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_domains_and_only_they_are_example_hosts() {
        for (host, expected) in [
            ("example.com", true),
            ("smtp.example.com", true),
            ("SMTP.Example.ORG.", true),
            ("hooks.example.net", true),
            ("mail.corp.example", true),
            ("notexample.com", false),
            ("example.com.evil.io", false),
            ("smtp.office365.com", false),
            ("127.0.0.1", false),
        ] {
            assert_eq!(is_example_host(host), expected, "{host}");
        }
    }

    #[test]
    fn the_shipped_secrets_are_placeholders_and_real_looking_ones_are_not() {
        for (secret, expected) in [
            ("example-token-replace-me", true),
            ("example-smtp-password-replace-me\n", true),
            ("3f9a1c0e5b7d4e2f8a6c", false),
            ("replace-me-later-but-not-a-suffix", false),
        ] {
            assert_eq!(is_placeholder_secret(secret), expected, "{secret}");
        }
    }

    #[test]
    fn the_shipped_web_hash_is_a_placeholder_and_another_is_not() {
        let shipped = "$2b$10$k3f6tUd8HHodxAagwz65zuWlASVWaQU8eFCS8vst2PK9oMKzFbG1u";
        let other = bcrypt::hash("a-real-password", 4).unwrap();
        let users = BTreeMap::from([
            ("prometheus".to_string(), shipped.to_string()),
            ("grafana".to_string(), other),
        ]);
        let found = in_web_users(&users);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "basic_auth_users.prometheus");
        assert!(!found[0].to_string().contains(shipped));
    }
}
