//! The parsing primitives every config section shares: the error type, [`Located`] (errors and value kinds for one
//! file), path resolution, and the YAML entry point that turns serde errors into errors naming the key path.
//!
//! A leaf module: the sections (`sources`, `alerting`, `email`, `reports`) and the root loader all build on it, and
//! it imports none of them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use serde_saphyr::Spanned;

/// A configuration that failed to load. `Display` names the file, line and key path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file itself could not be read.
    #[error("{file}: cannot read config file: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key, or a value of the wrong type.
    #[error("{file}:{line}: {key}: {message}")]
    Syntax {
        file: PathBuf,
        line: u64,
        key: String,
        message: String,
    },
    /// The YAML parsed but a value is not acceptable.
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        file: PathBuf,
        line: u64,
        key: String,
        message: String,
    },
}

/// Resolves a path written in the config file `file`: relative paths are taken relative to the config file's
/// folder, so a config and its secrets can move together; absolute paths are returned as they are.
pub fn resolve_path(file: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// Builds [`ConfigError::Invalid`] values for one config file and parses the value kinds every section shares, so
/// that each section's validation reports errors (and durations) the same way.
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    /// The config file the errors are about.
    pub file: &'a Path,
}

impl Located<'_> {
    /// An error at `line` of the file, about the value at key path `key`.
    pub fn at(&self, line: u64, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            line,
            key: key.into(),
            message: message.into(),
        }
    }

    /// Parses a duration such as `30s`, `5m`, `1h30m` or `90d`. Zero is accepted; callers that need more say so.
    pub fn duration(&self, raw: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
        humantime::parse_duration(raw.value.trim()).map_err(|e| {
            self.at(
                raw.referenced.line(),
                key,
                format!(
                    "invalid duration {:?}: {e} (write for example 30s, 5m, 4h or 90d)",
                    raw.value
                ),
            )
        })
    }

    /// [`Located::duration`] of an optional value, `default` when it is absent.
    pub fn opt_duration(
        &self,
        raw: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match raw {
            Some(r) => self.duration(r, key),
            None => Ok(default),
        }
    }

    /// Resolves a path written in this file (see [`resolve_path`]).
    pub fn resolve(&self, path: &str) -> PathBuf {
        resolve_path(self.file, Path::new(path))
    }

    /// A source timing: a duration that must be greater than zero.
    pub fn positive_duration(
        &self,
        value: &Option<Spanned<String>>,
        key: String,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = self.opt_duration(value, &key, default)?;
        match value {
            Some(v) if d.is_zero() => {
                Err(self.at(v.referenced.line(), key, "must be greater than zero"))
            }
            _ => Ok(d),
        }
    }

    /// [`Located::opt_duration`] for a duration that must be at least `min`, because a shorter one would make the
    /// process spin (an evaluation or retry loop); the message names the bound.
    pub fn opt_duration_at_least(
        &self,
        raw: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
        min: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = self.opt_duration(raw, key, default)?;
        match raw {
            Some(r) if d < min => Err(self.at(
                r.referenced.line(),
                key,
                format!(
                    "{:?} is too short: must be at least {}",
                    r.value,
                    humantime::format_duration(min)
                ),
            )),
            _ => Ok(d),
        }
    }

    /// A non-empty list of email addresses (`"Name <a@b.c>"` or bare), each error naming its index.
    pub fn mailboxes(
        &self,
        raw: &Spanned<Vec<Spanned<String>>>,
        key: &str,
    ) -> Result<Vec<Mailbox>, ConfigError> {
        if raw.value.is_empty() {
            return Err(self.at(
                raw.referenced.line(),
                key,
                "must list at least one recipient",
            ));
        }
        raw.value
            .iter()
            .enumerate()
            .map(|(i, a)| self.mailbox(a, &format!("{key}[{i}]")))
            .collect()
    }

    /// One email address, `"Agent alerts <alerts@example.com>"` or bare.
    pub fn mailbox(&self, raw: &Spanned<String>, key: &str) -> Result<Mailbox, ConfigError> {
        raw.value.trim().parse::<Mailbox>().map_err(|e| {
            self.at(
                raw.referenced.line(),
                key,
                format!("{:?} is not an email address ({e})", raw.value),
            )
        })
    }
}

/// Deserializes `text`, turning serde errors into [`ConfigError::Syntax`] with the key path that failed.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
) -> Result<T, ConfigError> {
    let mut path = String::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            // `Spanned` wraps each value in a `value` field; that is our plumbing, not a key the user wrote.
            path = e
                .path()
                .to_string()
                .split('.')
                .filter(|seg| *seg != "value")
                .collect::<Vec<_>>()
                .join(".");
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(0);
        let plain = e.without_snippet().to_string();
        // The plain message ends in " at line N, column M"; the line is reported separately.
        let message = match plain.rfind(" at line ") {
            Some(i) => plain[..i].to_string(),
            None => plain,
        };
        ConfigError::Syntax {
            file: file.to_path_buf(),
            line,
            key: if path.is_empty() || path == "." {
                "(top level)".to_string()
            } else {
                path
            },
            message,
        }
    })
}
