//! The parsing primitives every config section shares: the error type, [`Located`] (errors and value kinds for one
//! file), path resolution, and the YAML entry point that turns serde errors into errors naming the key path.
//!
//! A leaf module: the sections (`sources`, `alerting`, `email`, `reports`) and the root loader all build on it, and
//! it imports none of them.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use lettre::message::Mailbox;
use regex::Regex;
use serde_saphyr::Spanned;

use crate::config::yaml_tree::{self, Node};
use crate::humanize;

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

    /// Parses a duration such as `30s`, `5m`, `1h30m` or `90d` (see [`duration`]). Zero is accepted; callers that
    /// need more say so.
    pub fn duration(&self, raw: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
        duration(&raw.value).map_err(|e| self.at(raw.referenced.line(), key, e))
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
                    humanize::limit(min)
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

/// The units a config duration takes, and how a duration is written: one or more of a whole number and a unit, as
/// `90d`, `1h30m` or `1h 30m`.
const DURATION_UNITS: &str = "ms, s, m, h, d or w";

/// Parses a config duration: whole numbers with the units `ms`, `s`, `m`, `h`, `d` (24 h) and `w` (7 d), one or
/// several (`1h30m`). Months and years are refused, since they have no fixed length (`3 months` would silently be
/// some number of days), and so are spelled-out units (`5 minutes`), so every config writes durations one way; the
/// error says what to write instead.
///
/// The grammar is checked here and the value computed by humantime, which alone would accept all of the above.
pub fn duration(text: &str) -> Result<Duration, String> {
    static GRAMMAR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[0-9]+(ms|s|m|h|d|w)(\s*[0-9]+(ms|s|m|h|d|w))*$").unwrap());
    static CALENDAR: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)[0-9]\s*(M|mo|mon|mons|months?|y|yr|yrs|years?)\b").unwrap()
    });
    static SPELLED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^([0-9]+)\s*(msecs?|millis|milliseconds?|secs?|seconds?|mins?|minutes?|hrs?|hours?|days?|weeks?)$")
            .unwrap()
    });
    let text = text.trim();
    if GRAMMAR.is_match(text) {
        return humantime::parse_duration(text)
            .map_err(|e| format!("invalid duration {text:?}: {e}"));
    }
    if CALENDAR.is_match(text) && !text.contains("ms") {
        return Err(format!(
            "invalid duration {text:?}: months and years have no fixed length; write days or weeks, e.g. 90d or 13w"
        ));
    }
    if let Some(c) = SPELLED.captures(text) {
        let unit = match c[2].trim_end_matches('s') {
            "msec" | "milli" | "millisecond" => "ms",
            "sec" | "second" => "s",
            "min" | "minute" => "m",
            "hr" | "hour" => "h",
            "day" => "d",
            _ => "w",
        };
        return Err(format!("invalid duration {text:?}: write {}{unit}", &c[1]));
    }
    Err(format!(
        "invalid duration {text:?}: write a whole number and a unit ({DURATION_UNITS}), or several, e.g. 30s, 5m, \
         1h30m or 90d"
    ))
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
        let e = e.without_snippet();
        let mut line = e.location().map(|l| l.line()).unwrap_or(0);
        let plain = e.to_string();
        // The plain message ends in " at line N, column M"; the line is reported separately.
        let mut message = match plain.rfind(" at line ") {
            Some(i) => plain[..i].to_string(),
            None => plain.clone(),
        };
        let tree = Node::read(text);
        let at = |p: &str| tree.as_ref().and_then(|t| yaml_tree::find(t, p));
        if message.contains("found a tab") || message.contains("tabs") {
            // The scanner notices a tab where the enclosing block's scalar ends, often the line before.
            if let Some(n) = first_tab_indent(text) {
                line = n;
                message =
                    "a tab in the indentation: indent with spaces (YAML does not allow tabs there)".to_string();
            }
        } else if matches!(e, serde_saphyr::Error::SerdeMissingField { .. }) {
            // serde notices a missing key at the end of its block; the key belongs at the block's own line.
            if let Some((l, _)) = at(&path) {
                line = l;
            }
        } else if message.contains("sequence") {
            if let Some((l, Node::Scalar(value))) = at(&path) {
                let key = path.rsplit('.').next().unwrap_or(&path);
                line = l;
                message = if lists_mappings(&path) {
                    format!(
                        "expected a list, found the single value {value:?}; write each entry as a \"- \" item \
                         under {key}: (see CONFIGURATION.md)"
                    )
                } else {
                    format!(
                        "expected a list, found the single value {value:?}; write {key}: [{}]",
                        serde_json::Value::String(value.clone())
                    )
                };
            }
        }
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

/// Returns true if and only if the list at key `path` holds mappings (`sources`, `mute_windows`, …) rather than
/// strings (`to`, `weekdays`, a route's `receivers`), so that a scalar written there cannot simply be bracketed.
fn lists_mappings(path: &str) -> bool {
    static INDEX: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[[0-9]+\]").unwrap());
    let path = INDEX.replace_all(path, "");
    matches!(
        path.as_ref(),
        "sources"
            | "alerting.overrides"
            | "alerting.mute_windows"
            | "alerting.routes"
            | "alerting.alertmanagers"
            | "alerting.receivers"
    ) || path.ends_with(".matchers")
        || path.ends_with(".times")
}

/// The 1-based number of the first line whose indentation holds a tab, if one does.
fn first_tab_indent(text: &str) -> Option<u64> {
    text.lines()
        .position(|l| {
            l.chars()
                .take_while(|c| c.is_whitespace() || *c == '-')
                .any(|c| c == '\t')
        })
        .map(|i| i as u64 + 1)
}
