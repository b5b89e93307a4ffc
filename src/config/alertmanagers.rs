//! `alerting.alertmanagers[]`: the Alertmanagers every firing alert is pushed to, as Prometheus pushes to them.
//!
//! List every Alertmanager of a cluster, never a load balancer in front of them: the cluster deduplicates what
//! every member received, and a load balancer would hide a dead member. Secrets (the basic-auth password, the bearer
//! token) are read from files at load time, relative to the config file, and are never logged or shown.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

use crate::config::parse::{ConfigError, Located, resolve_path};
use crate::config::secret_file::{self, SecretFileError, read_secret_file};

/// The per-request limit when an Alertmanager's `timeout` is not set, as Prometheus's `alertmanagers[].timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most Alertmanagers one exporter pushes to: each gets a queue of its own, and a cluster larger than this is
/// not a cluster anyone runs.
pub const MAX_ALERTMANAGERS: usize = 16;

/// One entry of `alerting.alertmanagers` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanager {
    /// The Alertmanager's base URL (`http://alertmanager-0:9093`); `/api/v2/alerts` is appended.
    pub url: Spanned<String>,
    /// HTTP basic auth; the password comes from a file.
    #[serde(default)]
    pub basic_auth: Option<Spanned<RawBasicAuth>>,
    /// A file holding a bearer token, sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub bearer_token_file: Option<Spanned<PathBuf>>,
    /// A PEM file of CA certificates to trust next to the system roots, for an Alertmanager with a private CA.
    #[serde(default)]
    pub ca_file: Option<Spanned<PathBuf>>,
    /// The limit for one `POST` (default 10s).
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
}

/// `basic_auth` of an Alertmanager.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    /// The user name; not secret.
    pub username: String,
    /// A file holding the password; one trailing newline is ignored.
    pub password_file: Spanned<PathBuf>,
}

/// How to authenticate to an Alertmanager. `Debug` never shows a secret ([`SecretString`] redacts it).
#[derive(Debug, Clone)]
pub enum AlertmanagerAuth {
    /// No `Authorization` header.
    None,
    /// HTTP basic auth.
    Basic {
        username: String,
        password: SecretString,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(SecretString),
}

/// One validated Alertmanager.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// The base URL, without a trailing slash; safe to log (credentials in it are rejected).
    pub url: Url,
    /// The credentials.
    pub auth: AlertmanagerAuth,
    /// Extra CA certificates (PEM, as read from `ca_file`).
    pub ca_pem: Option<Vec<u8>>,
    /// The limit for one `POST`.
    pub timeout: Duration,
}

impl AlertmanagerConfig {
    /// An Alertmanager at `url` with no credentials and the default timeout, for tests and the demo.
    pub fn new(url: Url) -> AlertmanagerConfig {
        AlertmanagerConfig {
            url,
            auth: AlertmanagerAuth::None,
            ca_pem: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Reads a secret file through [`secret_file::read_secret_file`] (regular file, size cap, never quoting the
/// content): one trailing newline ignored, empty rejected. `name` is the key's last part (`bearer_token_file`).
fn read_secret(
    v: &Located<'_>,
    raw: &Spanned<PathBuf>,
    key: String,
    name: &str,
) -> Result<SecretString, ConfigError> {
    let path = resolve_path(v.file, &raw.value);
    let written = raw.value.to_string_lossy();
    let fail = |e: &SecretFileError| {
        v.at(
            raw.referenced.line(),
            &key,
            secret_file::describe(name, &written, &path, e),
        )
    };
    let read = read_secret_file(&path).map_err(|e| fail(&e))?;
    secret_file::warn_if_readable_by_others(&key, &path, &read);
    let text = read.text.strip_suffix('\n').unwrap_or(&read.text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(fail(&SecretFileError::Empty));
    }
    Ok(SecretString::from(text.to_string()))
}

/// Validates `alerting.alertmanagers`. `key` is its path (`alerting.alertmanagers`).
pub fn validate(
    file: &Path,
    key: &str,
    raw: Vec<Spanned<RawAlertmanager>>,
) -> Result<Vec<AlertmanagerConfig>, ConfigError> {
    let v = Located { file };
    if raw.len() > MAX_ALERTMANAGERS {
        return Err(v.at(
            raw[MAX_ALERTMANAGERS].referenced.line(),
            key,
            format!(
                "{} Alertmanagers listed; at most {MAX_ALERTMANAGERS} are supported",
                raw.len()
            ),
        ));
    }
    let mut out: Vec<AlertmanagerConfig> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.into_iter().enumerate() {
        let k = format!("{key}[{i}]");
        let am = entry.value;
        let line = am.url.referenced.line();
        let url = Url::parse(am.url.value.trim()).map_err(|e| {
            v.at(
                line,
                format!("{k}.url"),
                format!("bad URL {:?}: {e}", am.url.value),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(v.at(
                line,
                format!("{k}.url"),
                format!(
                    "bad URL {:?}: expected http:// or https:// and a host",
                    am.url.value
                ),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(v.at(
                line,
                format!("{k}.url"),
                "credentials in the URL would be logged; use basic_auth with a password_file",
            ));
        }
        if out.iter().any(|o| o.url == url) {
            return Err(v.at(line, format!("{k}.url"), format!("{url} is listed twice")));
        }
        let auth = match (am.basic_auth, am.bearer_token_file) {
            (Some(b), Some(_)) => {
                return Err(v.at(
                    b.referenced.line(),
                    &k,
                    "basic_auth and bearer_token_file are both set; set at most one",
                ));
            }
            (Some(b), None) => AlertmanagerAuth::Basic {
                password: read_secret(
                    &v,
                    &b.value.password_file,
                    format!("{k}.basic_auth.password_file"),
                    "password_file",
                )?,
                username: b.value.username,
            },
            (None, Some(f)) => AlertmanagerAuth::Bearer(read_secret(
                &v,
                &f,
                format!("{k}.bearer_token_file"),
                "bearer_token_file",
            )?),
            (None, None) => AlertmanagerAuth::None,
        };
        let ca_pem = match am.ca_file {
            None => None,
            Some(ca) => {
                let pem = std::fs::read(resolve_path(file, &ca.value)).map_err(|e| {
                    v.at(
                        ca.referenced.line(),
                        format!("{k}.ca_file"),
                        format!("cannot read {}: {e}", ca.value.display()),
                    )
                })?;
                if let Err(e) = reqwest::Certificate::from_pem_bundle(&pem) {
                    return Err(v.at(
                        ca.referenced.line(),
                        format!("{k}.ca_file"),
                        format!(
                            "{} is not a PEM certificate bundle: {e}",
                            ca.value.display()
                        ),
                    ));
                }
                Some(pem)
            }
        };
        let timeout = v.positive_duration(&am.timeout, format!("{k}.timeout"), DEFAULT_TIMEOUT)?;
        out.push(AlertmanagerConfig {
            url,
            auth,
            ca_pem,
            timeout,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn load(yaml: &str, dir: &Path) -> Result<Vec<AlertmanagerConfig>, ConfigError> {
        let raw: Vec<Spanned<RawAlertmanager>> =
            serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        validate(&dir.join("config.yaml"), "alerting.alertmanagers", raw)
    }

    #[test]
    fn secrets_are_read_from_files_next_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("am-pass"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("am-token"), "tok\n").unwrap();
        let ams = load(
            "- url: http://am-0:9093/\n  basic_auth: { username: exporter, password_file: am-pass }\n  timeout: 3s\n\
             - url: https://am-1:9093\n  bearer_token_file: am-token\n",
            dir.path(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ams.len(), 2);
        assert_eq!(ams[0].timeout, Duration::from_secs(3));
        assert_eq!(ams[1].timeout, DEFAULT_TIMEOUT);
        match &ams[0].auth {
            AlertmanagerAuth::Basic { username, password } => {
                assert_eq!(
                    (username.as_str(), password.expose_secret()),
                    ("exporter", "s3cret")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&ams[1].auth, AlertmanagerAuth::Bearer(t) if t.expose_secret() == "tok"));
        assert!(
            !format!("{ams:?}").contains("s3cret"),
            "Debug must redact the password"
        );
    }

    #[test]
    fn invalid_entries_name_the_line_the_key_and_the_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let cases: &[(&str, &str)] = &[
            (
                "- url: ftp://am:21\n",
                "alerting.alertmanagers[0].url: bad URL \"ftp://am:21\": expected http:// or https:// and a host",
            ),
            (
                "- url: http://u:p@am:9093\n",
                "alerting.alertmanagers[0].url: credentials in the URL would be logged; use basic_auth with a password_file",
            ),
            (
                "- url: http://am:9093\n- url: http://am:9093/\n",
                "config.yaml:2: alerting.alertmanagers[1].url: http://am:9093/ is listed twice",
            ),
            (
                "- url: http://am:9093\n  bearer_token_file: empty\n",
                "alerting.alertmanagers[0].bearer_token_file: the file named in bearer_token_file (",
            ),
            (
                "- url: http://am:9093\n  bearer_token_file: missing\n",
                "missing) was not found",
            ),
            (
                "- url: http://am:9093\n  timeout: 0s\n",
                "alerting.alertmanagers[0].timeout: must be greater than zero",
            ),
        ];
        for (yaml, want) in cases {
            let err = load(yaml, dir.path()).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "for\n{yaml}\nwant {want:?}\ngot  {err:?}"
            );
        }
        let raw: Result<Vec<Spanned<RawAlertmanager>>, _> =
            serde_saphyr::from_str("- url: http://am\n  proxy: x\n");
        assert!(
            raw.unwrap_err()
                .to_string()
                .contains("unknown field `proxy`")
        );
    }
}
