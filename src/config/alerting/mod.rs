//! The `alerting:` section of the config file: raw serde types that reject unknown keys, and the validated types
//! the engine and its runner run on (durations, severities, compiled regexes, time zones, rules, mute windows,
//! routes).
//!
//! Every key has a default except `state_file` and a destination (`email`, or `receivers` with `default_receivers`),
//! so the smallest useful section is those two. Per-source
//! `overrides` change single fields of a rule for one source; anything they leave out comes from `rules`.
//! Validation errors are [`ConfigError::Invalid`] naming the file, the line and the key path
//! (`alerting.overrides[0].rules.token_rotation.warn_before`), and the bad value. The `email` subsection is
//! validated by [`crate::config::email`], `receivers` by [`crate::config::receivers`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;

use crate::config::alertmanagers::AlertmanagerConfig;
use crate::config::email::EmailConfig;
use crate::config::parse::ConfigError;
use crate::config::receivers::ReceiverConfig;
use crate::config::silences::SilenceLimits;
use crate::domain::matcher::Matcher;
use crate::domain::{AlertName, ReceiverRef, Severity, catalog};

mod raw;
mod validate;

pub use raw::*;
pub use validate::require_a_channel;

/// How often the rule engine evaluates when `alerting.evaluation_interval` is not set. Polls are a minute apart by
/// default, so five seconds keeps `for` durations accurate to a few seconds without measurable cost.
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(5);

/// The wait after a first failed delivery when `alerting.retry_initial_backoff` is not set: long enough for a
/// relay to come back from a blip, short enough that an alert is late by seconds, not minutes.
pub const DEFAULT_RETRY_INITIAL_BACKOFF: Duration = Duration::from_secs(5);

/// How often unchanged alerts are pushed to the Alertmanagers again when `alerting.resend_delay` is not set:
/// Prometheus's `--rules.alert.resend-delay` default.
pub const DEFAULT_RESEND_DELAY: Duration = Duration::from_secs(60);

/// The shortest `evaluation_interval` and `retry_initial_backoff` accepted: shorter would make the engine or the
/// outbox spin, and no alert needs more precision.
pub const MIN_LOOP_INTERVAL: Duration = Duration::from_millis(100);

/// The validated `alerting:` section: the engine's part and the notifier's part.
#[derive(Debug, Clone)]
pub struct AlertingConfig {
    /// Everything the rule engine and its runner need.
    pub engine: EngineConfig,
    /// SMTP settings and default recipients, for the notifier; `None` when alerts go only to Alertmanagers or
    /// receivers.
    pub email: Option<EmailConfig>,
    /// The Alertmanagers every firing alert is pushed to; may be empty when `email` is set.
    pub alertmanagers: Vec<AlertmanagerConfig>,
    /// See [`RawAlerting::resend_delay`].
    pub resend_delay: Duration,
    /// The named receivers, with their secrets.
    pub receivers: Vec<ReceiverConfig>,
    /// See [`RawAlerting::retry_initial_backoff`]; the outbox of alerts and reports starts its backoff here.
    pub retry_initial_backoff: Duration,
}

/// What the rule engine runs on. All fields are public so tests and the demo can build one from
/// [`EngineConfig::new`] and adjust it.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The state file path.
    pub state_file: PathBuf,
    /// Base URL for links in notifications, without a trailing slash.
    pub external_url: Option<String>,
    /// See [`RawAlerting::group_wait`].
    pub group_wait: Duration,
    /// See [`RawAlerting::group_interval`].
    pub group_interval: Duration,
    /// See [`RawAlerting::repeat_interval`].
    pub repeat_interval: Duration,
    /// See [`RawAlerting::send_resolved`].
    pub send_resolved: bool,
    /// See [`RawAlerting::evaluation_interval`]; the runner's tick.
    pub evaluation_interval: Duration,
    /// The rules for every source without an override.
    pub rules: Rules,
    /// Complete rule sets for sources with an override, by source name.
    pub overrides: BTreeMap<String, Rules>,
    /// Where each override's `source` key is, for [`AlertingConfig::check_sources`].
    pub override_lines: BTreeMap<String, u64>,
    /// Recurring mute windows.
    pub mute_windows: Vec<MuteWindow>,
    /// Routes, in file order.
    pub routes: Vec<Route>,
    /// Recipients when no route matches: `email.to`.
    pub default_to: Vec<String>,
    /// Caps on silences made through the API.
    pub silences: SilenceLimits,
    /// Receivers when no route matches: `default_receivers`.
    pub default_receivers: Vec<ReceiverRef>,
}

/// Settings every rule shares.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSettings {
    /// A disabled rule raises nothing and resolves what it had raised.
    pub enabled: bool,
    /// How long the condition must hold before the alert fires (Prometheus `for`).
    pub for_: Duration,
    /// How long a firing alert keeps firing after its condition cleared, to damp flapping.
    pub keep_firing_for: Duration,
    /// The alert's severity.
    pub severity: Severity,
    /// Only agents matching all of these (on `agent_id` and `agent_name`) are checked; empty means all.
    pub matchers: Vec<Matcher>,
}

/// What [`Rules::settings`] answers for [`AlertName::TestNotification`], which is no rule: disabled.
static NOT_A_RULE: RuleSettings = RuleSettings {
    enabled: false,
    for_: Duration::ZERO,
    keep_firing_for: Duration::ZERO,
    severity: Severity::Info,
    matchers: Vec::new(),
};

/// The complete rule set for one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// `AgentHeartbeatStale`.
    pub heartbeat_stale: RuleSettings,
    /// Heartbeat age above which an agent is stale.
    pub heartbeat_after: Duration,
    /// `AgentOffline`.
    pub agent_offline: RuleSettings,
    /// `AgentTokenRotationDue` / `Overdue`; `severity` is unused (due is a warning, overdue critical).
    pub token_rotation: RuleSettings,
    /// Token age at which rotation is overdue.
    pub token_max_age: Duration,
    /// How long before `token_max_age` rotation becomes due.
    pub token_warn_before: Duration,
    /// `SourceDown`; `for_` is how long polls must have been failing.
    pub source_down: RuleSettings,
    /// `AgentVersionOutdated`; enabled only with a `min_version`.
    pub version_outdated: RuleSettings,
    /// The lowest acceptable agent version.
    pub min_version: Option<semver::Version>,
}

impl Default for Rules {
    fn default() -> Rules {
        let settings = |for_: u64, severity| RuleSettings {
            enabled: true,
            for_: Duration::from_secs(for_),
            keep_firing_for: Duration::ZERO,
            severity,
            matchers: Vec::new(),
        };
        Rules {
            heartbeat_stale: settings(0, Severity::Critical),
            heartbeat_after: catalog::HEARTBEAT_AFTER,
            agent_offline: settings(catalog::OFFLINE_FOR.as_secs(), Severity::Critical),
            token_rotation: settings(0, Severity::Warning),
            token_max_age: catalog::TOKEN_MAX_AGE,
            token_warn_before: catalog::TOKEN_WARN_BEFORE,
            source_down: settings(catalog::SOURCE_DOWN_FOR.as_secs(), Severity::Critical),
            version_outdated: RuleSettings {
                enabled: false,
                ..settings(0, Severity::Warning)
            },
            min_version: None,
        }
    }
}

impl Rules {
    /// The settings that govern alerts named `name`.
    pub fn settings(&self, name: AlertName) -> &RuleSettings {
        match name {
            AlertName::AgentHeartbeatStale => &self.heartbeat_stale,
            AlertName::AgentOffline => &self.agent_offline,
            AlertName::AgentTokenRotationDue | AlertName::AgentTokenRotationOverdue => {
                &self.token_rotation
            }
            AlertName::SourceDown => &self.source_down,
            AlertName::AgentVersionOutdated => &self.version_outdated,
            AlertName::TestNotification => &NOT_A_RULE,
        }
    }

    /// The severity of alerts named `name` under these rules.
    pub fn severity(&self, name: AlertName) -> Severity {
        match name {
            AlertName::AgentTokenRotationDue => Severity::Warning,
            AlertName::AgentTokenRotationOverdue => Severity::Critical,
            other => self.settings(other).severity,
        }
    }
}

/// A validated mute window.
#[derive(Debug, Clone)]
pub struct MuteWindow {
    /// For logs and messages.
    pub name: String,
    /// The zone the weekdays and times are read in; daylight saving time is followed.
    pub time_zone: TimeZone,
    /// Bit `i` set means weekday `i` (Monday = 0) is included; all bits set when no weekdays were given.
    pub weekdays: u8,
    /// `(start, end)` in minutes after midnight, `end` in `1..=1440`; `end <= start` wraps past midnight, and the
    /// weekday then refers to the day the range starts. Empty means the whole day.
    pub times: Vec<(u16, u16)>,
    /// Which groups are muted; empty means all.
    pub matchers: Vec<Matcher>,
}

/// A validated route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Matches only this rule, when set.
    pub alertname: Option<AlertName>,
    /// Matches only this severity, when set.
    pub severity: Option<Severity>,
    /// Matches only this source, when set.
    pub account: Option<String>,
    /// Plain addresses; empty when the route names only receivers.
    pub to: Vec<String>,
    /// Named receivers; a route has addresses, receivers or both.
    pub receivers: Vec<ReceiverRef>,
}

impl EngineConfig {
    /// Every setting at its default, with the given state file and default recipients.
    pub fn new(state_file: impl Into<PathBuf>, default_to: Vec<String>) -> EngineConfig {
        EngineConfig {
            state_file: state_file.into(),
            external_url: None,
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(5 * 60),
            repeat_interval: Duration::from_secs(4 * 3600),
            send_resolved: true,
            evaluation_interval: DEFAULT_EVALUATION_INTERVAL,
            rules: Rules::default(),
            overrides: BTreeMap::new(),
            override_lines: BTreeMap::new(),
            mute_windows: Vec::new(),
            routes: Vec::new(),
            default_to,
            silences: SilenceLimits::default(),
            default_receivers: Vec::new(),
        }
    }

    /// Short timings for the `demo` command, so that alerts fire and resolve within about two minutes against the
    /// simulator's fleet (agents heartbeat every ~30 s): stale after 75 s, offline after 10 s, a source down after
    /// 30 s, groups wait 5 s and change every 20 s.
    pub fn demo(state_file: impl Into<PathBuf>, default_to: Vec<String>) -> EngineConfig {
        let mut c = EngineConfig::new(state_file, default_to);
        c.group_wait = Duration::from_secs(5);
        c.group_interval = Duration::from_secs(20);
        c.repeat_interval = Duration::from_secs(10 * 60);
        c.rules.heartbeat_after = Duration::from_secs(75);
        c.rules.agent_offline.for_ = Duration::from_secs(10);
        c.rules.source_down.for_ = Duration::from_secs(30);
        c
    }

    /// The rules that apply to `account`: its override when there is one.
    pub fn rules_for(&self, account: &str) -> &Rules {
        self.overrides.get(account).unwrap_or(&self.rules)
    }
}

impl AlertingConfig {
    /// Checks that every `overrides[].source` names a configured source. The top-level loader calls this once the
    /// sources are known.
    pub fn check_sources<'a>(
        &self,
        file: &Path,
        key: &str,
        sources: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ConfigError> {
        let known: Vec<&str> = sources.into_iter().collect();
        for (name, line) in &self.engine.override_lines {
            if !known.contains(&name.as_str()) {
                return Err(ConfigError::Invalid {
                    file: file.to_path_buf(),
                    line: *line,
                    key: format!("{key}.overrides"),
                    message: format!(
                        "source {name:?} is not configured (known sources: {})",
                        known.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
