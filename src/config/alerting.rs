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
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;
use url::Url;

use crate::config::alertmanagers::{self, AlertmanagerConfig, RawAlertmanager};
use crate::config::email::{EmailConfig, RawEmail};
use crate::config::parse::{ConfigError, Located as Invalid};
use crate::config::receivers::{
    Destinations, RawReceiver, ReceiverConfig, check_destinations, resolve_names,
    validate_receivers,
};
use crate::config::silences::{RawSilenceLimits, SilenceLimits};
use crate::humanize::limit as human;
use crate::notify::{ReceiverRef, Severity};
use crate::rules::AlertName;
use crate::rules::matcher::{LabelName, Matcher, RawMatcher};

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

/// The `alerting:` section as written. Durations are humantime strings (`30s`, `5m`, `4h`, `90d`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerting {
    /// Where alert states, the notification log and silences are kept across restarts.
    pub state_file: Spanned<PathBuf>,
    /// The exporter's address as recipients reach it, for links in emails.
    #[serde(default)]
    pub external_url: Option<Spanned<String>>,
    /// How long a new group waits for more alerts before its first email (default 30s).
    #[serde(default)]
    pub group_wait: Option<Spanned<String>>,
    /// How long a group waits before an email about changes (default 5m).
    #[serde(default)]
    pub group_interval: Option<Spanned<String>>,
    /// How long before an unchanged, still-firing group is emailed again (default 4h).
    #[serde(default)]
    pub repeat_interval: Option<Spanned<String>>,
    /// Whether to email when a group's alerts resolve (default true).
    #[serde(default)]
    pub send_resolved: Option<bool>,
    /// How often the rule engine evaluates the snapshots (default 5s, at least 100ms).
    #[serde(default)]
    pub evaluation_interval: Option<Spanned<String>>,
    /// The wait after the first failed delivery of a notification or report, doubled per failure up to ten minutes
    /// (default 5s, at least 100ms).
    #[serde(default)]
    pub retry_initial_backoff: Option<Spanned<String>>,
    /// The built-in rules' settings.
    #[serde(default)]
    pub rules: RawRules,
    /// Per-source changes to `rules`.
    #[serde(default)]
    pub overrides: Vec<Spanned<RawOverride>>,
    /// Recurring times when notifications are held back.
    #[serde(default)]
    pub mute_windows: Vec<Spanned<RawMuteWindow>>,
    /// Recipients by alert name or severity; the first matching route wins, `email.to` otherwise.
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    /// Caps on silences made through the API; see [`crate::config::silences`].
    #[serde(default)]
    pub silences: RawSilenceLimits,
    /// SMTP and default recipients; owned by the notifier. Optional: see [`require_a_channel`].
    #[serde(default)]
    pub email: Option<RawEmail>,
    /// Alertmanagers every firing alert is pushed to; see [`crate::config::alertmanagers`].
    #[serde(default)]
    pub alertmanagers: Vec<Spanned<RawAlertmanager>>,
    /// How often an unchanged firing (or recently resolved) alert is pushed to the Alertmanagers again (default 1m).
    #[serde(default)]
    pub resend_delay: Option<Spanned<String>>,
    /// Named Slack, Teams, PagerDuty and webhook destinations, validated by [`crate::config::receivers`].
    #[serde(default)]
    pub receivers: Vec<Spanned<RawReceiver>>,
    /// The receivers of notifications no route matches, besides `email.to`.
    #[serde(default)]
    pub default_receivers: Vec<Spanned<String>>,
}

/// `alerting.rules`: one optional block per built-in rule; a missing block means the defaults.
///
/// Every block has the same shape, [`RawRule`]; its marker type says which keys that rule accepts, so a key that
/// means nothing for a rule (`max_age` under `heartbeat_stale`) is rejected while parsing, naming its line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    /// `AgentHeartbeatStale`: defaults `after: 10m, for: 0s, severity: critical`.
    #[serde(default)]
    pub heartbeat_stale: Option<RawRule<HeartbeatStale>>,
    /// `AgentOffline`: defaults `for: 5m, severity: critical`.
    #[serde(default)]
    pub agent_offline: Option<RawRule<AgentOffline>>,
    /// `AgentTokenRotationDue` (warning) and `AgentTokenRotationOverdue` (critical): defaults `max_age: 90d,
    /// warn_before: 14d`. The severities are fixed: due is a warning, overdue is critical.
    #[serde(default)]
    pub token_rotation: Option<RawRule<TokenRotation>>,
    /// `SourceDown`: defaults `for: 10m, severity: critical`. No matchers: it is about the source, not an agent.
    #[serde(default)]
    pub source_down: Option<RawRule<SourceDown>>,
    /// `AgentVersionOutdated`: off unless `min_version` is set; default `severity: warning`.
    #[serde(default)]
    pub agent_version_outdated: Option<RawRule<VersionOutdated>>,
}

/// The keys one block of `alerting.rules` accepts.
pub trait RuleKeys {
    /// Every key the block accepts, in the order an "unknown field" error lists them.
    const KEYS: &'static [&'static str];
}

/// Marks a [`RawRule`] as `rules.heartbeat_stale`.
#[derive(Debug)]
pub struct HeartbeatStale;
/// Marks a [`RawRule`] as `rules.agent_offline`.
#[derive(Debug)]
pub struct AgentOffline;
/// Marks a [`RawRule`] as `rules.token_rotation`.
#[derive(Debug)]
pub struct TokenRotation;
/// Marks a [`RawRule`] as `rules.source_down`.
#[derive(Debug)]
pub struct SourceDown;
/// Marks a [`RawRule`] as `rules.agent_version_outdated`.
#[derive(Debug)]
pub struct VersionOutdated;

impl RuleKeys for HeartbeatStale {
    const KEYS: &'static [&'static str] = &[
        "enabled",
        "after",
        "for",
        "keep_firing_for",
        "severity",
        "matchers",
    ];
}
impl RuleKeys for AgentOffline {
    const KEYS: &'static [&'static str] =
        &["enabled", "for", "keep_firing_for", "severity", "matchers"];
}
impl RuleKeys for TokenRotation {
    const KEYS: &'static [&'static str] = &[
        "enabled",
        "max_age",
        "warn_before",
        "keep_firing_for",
        "matchers",
    ];
}
impl RuleKeys for SourceDown {
    const KEYS: &'static [&'static str] = &["enabled", "for", "keep_firing_for", "severity"];
}
impl RuleKeys for VersionOutdated {
    const KEYS: &'static [&'static str] = &[
        "enabled",
        "min_version",
        "for",
        "keep_firing_for",
        "severity",
        "matchers",
    ];
}

/// One block of `alerting.rules` (or of an override's `rules`) as written: every rule's keys, each optional. The
/// block accepts only `K::KEYS`; the other fields stay `None` because the parser rejects their keys.
#[derive(Debug)]
pub struct RawRule<K> {
    /// `false` turns the rule off (for one source, in an override); its alerts then resolve.
    pub enabled: Option<bool>,
    /// How long the condition must hold before the alert fires (`for` in the file). Not for `token_rotation`.
    pub for_: Option<Spanned<String>>,
    /// How long a firing alert stays firing after its condition cleared, so a flapping agent sends one email.
    pub keep_firing_for: Option<Spanned<String>>,
    /// `info`, `warning` or `critical`; routes may choose recipients by it. Not for `token_rotation`, whose
    /// severities are fixed.
    pub severity: Option<Severity>,
    /// Only agents matching all of these (on `agent_id`, `agent_name`) are checked; replaces, not extends, the
    /// list it overrides. Not for `source_down`, which is about the source, not an agent.
    pub matchers: Option<Vec<Spanned<RawMatcher>>>,
    /// `heartbeat_stale` only: heartbeat age above which the agent is stale; also how long after creation a
    /// never-seen agent is.
    pub after: Option<Spanned<String>>,
    /// `token_rotation` only: token age at which rotation is overdue.
    pub max_age: Option<Spanned<String>>,
    /// `token_rotation` only: how long before `max_age` rotation becomes due.
    pub warn_before: Option<Spanned<String>>,
    /// `agent_version_outdated` only: the lowest acceptable version; lenient semantic versioning (`1.4`, `v2`).
    pub min_version: Option<Spanned<String>>,
    /// Which rule the block belongs to.
    kind: PhantomData<K>,
}

impl<K> Default for RawRule<K> {
    fn default() -> RawRule<K> {
        RawRule {
            enabled: None,
            for_: None,
            keep_firing_for: None,
            severity: None,
            matchers: None,
            after: None,
            max_age: None,
            warn_before: None,
            min_version: None,
            kind: PhantomData,
        }
    }
}

/// Hand-written because serde's `deny_unknown_fields` is per struct, and one derived struct per rule repeated the
/// shared keys five times. Like the derived code, it checks each key against `K::KEYS` while reading the key, so
/// an unknown key fails with the same message, at the key's line, with the key in the error's path.
impl<'de, K: RuleKeys> Deserialize<'de> for RawRule<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawRule<K>, D::Error> {
        deserializer.deserialize_struct("RawRule", K::KEYS, RuleVisitor(PhantomData))
    }
}

/// Reads the map of one rule block.
struct RuleVisitor<K>(PhantomData<K>);

impl<'de, K: RuleKeys> Visitor<'de> for RuleVisitor<K> {
    type Value = RawRule<K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a rule block with keys among {}", K::KEYS.join(", "))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRule<K>, A::Error> {
        let mut rule = RawRule::default();
        let mut seen: Vec<&'static str> = Vec::new();
        while let Some(key) = map.next_key_seed(RuleKey::<K>(PhantomData))? {
            if seen.contains(&key) {
                return Err(de::Error::duplicate_field(key));
            }
            seen.push(key);
            match key {
                "enabled" => rule.enabled = Some(map.next_value()?),
                "for" => rule.for_ = Some(map.next_value()?),
                "keep_firing_for" => rule.keep_firing_for = Some(map.next_value()?),
                "severity" => rule.severity = Some(map.next_value()?),
                "matchers" => rule.matchers = Some(map.next_value()?),
                "after" => rule.after = Some(map.next_value()?),
                "max_age" => rule.max_age = Some(map.next_value()?),
                "warn_before" => rule.warn_before = Some(map.next_value()?),
                "min_version" => rule.min_version = Some(map.next_value()?),
                other => return Err(de::Error::unknown_field(other, K::KEYS)),
            }
        }
        Ok(rule)
    }
}

/// Reads one key of a rule block, accepting only `K::KEYS`.
struct RuleKey<K>(PhantomData<K>);

impl<'de, K: RuleKeys> DeserializeSeed<'de> for RuleKey<K> {
    type Value = &'static str;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<&'static str, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<K: RuleKeys> Visitor<'_> for RuleKey<K> {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rule key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<&'static str, E> {
        K::KEYS
            .iter()
            .copied()
            .find(|k| *k == key)
            .ok_or_else(|| E::unknown_field(key, K::KEYS))
    }
}

/// `alerting.overrides[]`: rule fields that differ for one source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverride {
    /// The source name, as in `sources[].name`.
    pub source: Spanned<String>,
    /// Only the fields given here change; the rest come from `alerting.rules`.
    #[serde(default)]
    pub rules: RawRules,
}

/// `alerting.mute_windows[]`: a recurring time when notifications wait.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMuteWindow {
    /// A name for logs and the API.
    pub name: Spanned<String>,
    /// An IANA time zone (`Europe/Berlin`); default `UTC`.
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
    /// Days (`monday`, `mon`) or inclusive ranges (`monday:friday`); empty means every day.
    #[serde(default)]
    pub weekdays: Vec<Spanned<String>>,
    /// Times of day; empty means the whole day.
    #[serde(default)]
    pub times: Vec<Spanned<RawTimeRange>>,
    /// Which groups are muted, by `alertname`, `account` or `severity`; empty means all.
    #[serde(default)]
    pub matchers: Vec<Spanned<RawMatcher>>,
}

/// `start` and `end` as `HH:MM`; `end` may be `24:00`, and an `end` at or before `start` wraps past midnight.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeRange {
    /// First minute inside the range.
    pub start: String,
    /// First minute after the range.
    pub end: String,
}

/// `alerting.routes[]`: every criterion given must match.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// One of the built-in rule names (`SourceDown`).
    #[serde(default)]
    pub alertname: Option<Spanned<String>>,
    /// `info`, `warning` or `critical`.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// A source name.
    #[serde(default)]
    pub account: Option<String>,
    /// The recipients instead of `email.to`; a route names at least one recipient or receiver.
    #[serde(default)]
    pub to: Vec<Spanned<String>>,
    /// Names from `alerting.receivers`, instead of `default_receivers`.
    #[serde(default)]
    pub receivers: Vec<Spanned<String>>,
}

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
            heartbeat_after: Duration::from_secs(10 * 60),
            agent_offline: settings(5 * 60, Severity::Critical),
            token_rotation: settings(0, Severity::Warning),
            token_max_age: Duration::from_secs(90 * 86_400),
            token_warn_before: Duration::from_secs(14 * 86_400),
            source_down: settings(10 * 60, Severity::Critical),
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

impl MuteWindow {
    /// Returns true if and only if `now` falls inside the window, in the window's time zone.
    pub fn contains(&self, now: Timestamp) -> bool {
        let zoned = now.to_zoned(self.time_zone.clone());
        let day = zoned.weekday().to_monday_zero_offset() as u8;
        let yesterday = (day + 6) % 7;
        let on = |d: u8| self.weekdays & (1 << d) != 0;
        if self.times.is_empty() {
            return on(day);
        }
        let minute = zoned.hour() as u16 * 60 + zoned.minute() as u16;
        self.times.iter().any(|&(start, end)| {
            if start < end {
                on(day) && minute >= start && minute < end
            } else {
                (on(day) && minute >= start) || (on(yesterday) && minute < end)
            }
        })
    }
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

impl Route {
    /// Returns true if and only if every criterion the route sets matches.
    pub fn matches(&self, alertname: AlertName, severity: Severity, account: &str) -> bool {
        self.alertname.is_none_or(|a| a == alertname)
            && self.severity.is_none_or(|s| s == severity)
            && self.account.as_deref().is_none_or(|a| a == account)
    }
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

    /// The recipients for a notification: the first matching route's, else `email.to`.
    pub fn recipients(
        &self,
        alertname: AlertName,
        severity: Severity,
        account: &str,
    ) -> Vec<String> {
        self.routes
            .iter()
            .find(|r| r.matches(alertname, severity, account))
            .map(|r| r.to.clone())
            .unwrap_or_else(|| self.default_to.clone())
    }

    /// The named receivers for a notification: the first matching route's, else `default_receivers`.
    pub fn receivers(
        &self,
        alertname: AlertName,
        severity: Severity,
        account: &str,
    ) -> Vec<ReceiverRef> {
        self.routes
            .iter()
            .find(|r| r.matches(alertname, severity, account))
            .map(|r| r.receivers.clone())
            .unwrap_or_else(|| self.default_receivers.clone())
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

impl Invalid<'_> {
    /// Compiles matchers whose names are in `allowed`.
    fn matchers(
        &self,
        raw: &[Spanned<RawMatcher>],
        key: &str,
        allowed: &[LabelName],
    ) -> Result<Vec<Matcher>, ConfigError> {
        raw.iter()
            .enumerate()
            .map(|(i, m)| {
                let key = format!("{key}[{i}]");
                let line = m.referenced.line();
                if !allowed.contains(&m.value.name) {
                    let names: Vec<&str> = allowed.iter().map(|n| n.as_str()).collect();
                    return Err(self.at(
                        line,
                        format!("{key}.name"),
                        format!(
                            "{} cannot be matched here; use one of: {}",
                            m.value.name,
                            names.join(", ")
                        ),
                    ));
                }
                Matcher::new(m.value.clone()).map_err(|e| self.at(line, format!("{key}.value"), e))
            })
            .collect()
    }
}

/// The names a rule's matchers may test: rules look at agents; per-source differences go in `overrides`.
const AGENT_LABELS: [LabelName; 2] = [LabelName::AgentId, LabelName::AgentName];
/// The names a mute window may test: muting applies to whole groups.
const GROUP_LABELS: [LabelName; 3] = [
    LabelName::Alertname,
    LabelName::Account,
    LabelName::Severity,
];

impl RawAlerting {
    /// Validates the section. `key` is its path in the file (`alerting`), for messages.
    pub fn validate(self, file: &Path, key: &str) -> Result<AlertingConfig, ConfigError> {
        let v = Invalid { file };
        if self.state_file.value.as_os_str().is_empty() {
            return Err(v.at(
                self.state_file.referenced.line(),
                format!("{key}.state_file"),
                "must not be empty",
            ));
        }
        let external_url = match &self.external_url {
            None => None,
            Some(raw) => {
                let k = format!("{key}.external_url");
                let url = Url::parse(raw.value.trim()).map_err(|e| {
                    v.at(
                        raw.referenced.line(),
                        &k,
                        format!("bad URL {:?}: {e}", raw.value),
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(v.at(
                        raw.referenced.line(),
                        &k,
                        format!("bad URL {:?}: the scheme must be http or https", raw.value),
                    ));
                }
                Some(url.as_str().trim_end_matches('/').to_string())
            }
        };
        let defaults = EngineConfig::new(PathBuf::new(), Vec::new());
        let group_wait = v.opt_duration(
            &self.group_wait,
            &format!("{key}.group_wait"),
            defaults.group_wait,
        )?;
        let group_interval = v.opt_duration(
            &self.group_interval,
            &format!("{key}.group_interval"),
            defaults.group_interval,
        )?;
        let repeat_interval = v.opt_duration(
            &self.repeat_interval,
            &format!("{key}.repeat_interval"),
            defaults.repeat_interval,
        )?;
        if group_interval.is_zero() {
            let line = self
                .group_interval
                .as_ref()
                .map_or(0, |s| s.referenced.line());
            return Err(v.at(
                line,
                format!("{key}.group_interval"),
                "must be longer than 0s",
            ));
        }
        if repeat_interval < group_interval {
            let line = self
                .repeat_interval
                .as_ref()
                .or(self.group_interval.as_ref())
                .map_or(0, |s| s.referenced.line());
            return Err(v.at(
                line,
                format!("{key}.repeat_interval"),
                format!(
                    "repeat_interval ({}) is shorter than group_interval ({}); a group is only looked at every \
                     group_interval",
                    human(repeat_interval),
                    human(group_interval)
                ),
            ));
        }

        let evaluation_interval = v.opt_duration_at_least(
            &self.evaluation_interval,
            &format!("{key}.evaluation_interval"),
            defaults.evaluation_interval,
            MIN_LOOP_INTERVAL,
        )?;
        let retry_initial_backoff = v.opt_duration_at_least(
            &self.retry_initial_backoff,
            &format!("{key}.retry_initial_backoff"),
            DEFAULT_RETRY_INITIAL_BACKOFF,
            MIN_LOOP_INTERVAL,
        )?;

        let rules = validate_rules(&v, &self.rules, &Rules::default(), &format!("{key}.rules"))?;
        let mut overrides = BTreeMap::new();
        let mut override_lines = BTreeMap::new();
        for (i, o) in self.overrides.iter().enumerate() {
            let k = format!("{key}.overrides[{i}]");
            let source = o.value.source.value.trim().to_string();
            let line = o.value.source.referenced.line();
            if source.is_empty() {
                return Err(v.at(line, format!("{k}.source"), "must not be empty"));
            }
            if override_lines.contains_key(&source) {
                return Err(v.at(
                    line,
                    format!("{k}.source"),
                    format!("source {source:?} already has an override; merge the two"),
                ));
            }
            let merged = validate_rules(&v, &o.value.rules, &rules, &format!("{k}.rules"))?;
            overrides.insert(source.clone(), merged);
            override_lines.insert(source, line);
        }

        let mut mute_windows = Vec::new();
        for (i, w) in self.mute_windows.iter().enumerate() {
            mute_windows.push(validate_mute_window(
                &v,
                &w.value,
                &format!("{key}.mute_windows[{i}]"),
            )?);
        }

        let receivers = validate_receivers(file, &format!("{key}.receivers"), &self.receivers)?;
        let default_receivers = resolve_names(
            file,
            &format!("{key}.default_receivers"),
            &self.default_receivers,
            &receivers,
        )?;
        require_a_channel(
            &v,
            self.state_file.referenced.line(),
            key,
            &[
                ("email", self.email.is_some()),
                ("alertmanagers", !self.alertmanagers.is_empty()),
                ("receivers", !receivers.is_empty()),
            ],
        )?;
        check_destinations(
            file,
            key,
            self.state_file.referenced.line(),
            Destinations {
                email: self.email.is_some(),
                alertmanagers: !self.alertmanagers.is_empty(),
                receivers: receivers.len(),
                default_receivers: default_receivers.len(),
            },
        )?;

        let mut routes = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let k = format!("{key}.routes[{i}]");
            let alertname = match &r.value.alertname {
                None => None,
                Some(a) => Some(AlertName::parse(a.value.trim()).ok_or_else(|| {
                    let names: Vec<&str> = AlertName::ALL.iter().map(|n| n.as_str()).collect();
                    v.at(
                        a.referenced.line(),
                        format!("{k}.alertname"),
                        format!(
                            "unknown alert {:?}; the rules are: {}",
                            a.value,
                            names.join(", ")
                        ),
                    )
                })?),
            };
            if r.value.to.is_empty() && r.value.receivers.is_empty() {
                return Err(v.at(
                    r.referenced.line(),
                    format!("{k}.to"),
                    "must list at least one recipient (to) or receiver (receivers)",
                ));
            }
            if !r.value.to.is_empty() && self.email.is_none() {
                return Err(v.at(
                    r.value.to[0].referenced.line(),
                    format!("{k}.to"),
                    "addresses need alerting.email to send through; add it or use receivers",
                ));
            }
            let route_receivers = resolve_names(
                file,
                &format!("{k}.receivers"),
                &r.value.receivers,
                &receivers,
            )?;
            let mut to = Vec::new();
            for (j, addr) in r.value.to.iter().enumerate() {
                check_address(&addr.value)
                    .map_err(|m| v.at(addr.referenced.line(), format!("{k}.to[{j}]"), m))?;
                to.push(addr.value.trim().to_string());
            }
            routes.push(Route {
                alertname,
                severity: r.value.severity,
                account: r.value.account.clone(),
                to,
                receivers: route_receivers,
            });
        }

        let resend_delay = v.opt_duration_at_least(
            &self.resend_delay,
            &format!("{key}.resend_delay"),
            DEFAULT_RESEND_DELAY,
            MIN_LOOP_INTERVAL,
        )?;
        let alertmanagers =
            alertmanagers::validate(file, &format!("{key}.alertmanagers"), self.alertmanagers)?;
        let email = match self.email {
            Some(e) => Some(e.validate(file, &format!("{key}.email"))?),
            None => None,
        };
        let default_to = email
            .as_ref()
            .map(EmailConfig::recipients)
            .unwrap_or_default();
        Ok(AlertingConfig {
            engine: EngineConfig {
                // Relative to the config file's folder, as every other path in it.
                state_file: crate::config::parse::resolve_path(file, &self.state_file.value),
                external_url,
                group_wait,
                group_interval,
                repeat_interval,
                send_resolved: self.send_resolved.unwrap_or(true),
                evaluation_interval,
                rules,
                overrides,
                override_lines,
                mute_windows,
                routes,
                default_to,
                silences: self.silences.validate(&v, &format!("{key}.silences"))?,
                default_receivers,
            },
            email,
            receivers,
            alertmanagers,
            resend_delay,
            retry_initial_backoff,
        })
    }
}

/// Fails unless at least one notification channel is configured: an alerting section that tells nobody is a
/// mistake. `channels` lists each channel key of the section with whether it is set; a new channel adds one entry.
/// `line` is where the error points (the section's first key).
pub fn require_a_channel(
    v: &Invalid<'_>,
    line: u64,
    key: &str,
    channels: &[(&str, bool)],
) -> Result<(), ConfigError> {
    if channels.iter().any(|(_, set)| *set) {
        return Ok(());
    }
    let names: Vec<&str> = channels.iter().map(|(n, _)| *n).collect();
    Err(v.at(
        line,
        key,
        format!(
            "no notification channel: set at least one of {}",
            names.join(", ")
        ),
    ))
}

/// Validates `raw` on top of `base`: fields `raw` leaves out keep `base`'s value.
fn validate_rules(
    v: &Invalid<'_>,
    raw: &RawRules,
    base: &Rules,
    key: &str,
) -> Result<Rules, ConfigError> {
    let mut rules = base.clone();
    if let Some(r) = &raw.heartbeat_stale {
        let k = format!("{key}.heartbeat_stale");
        apply_shared(v, r, &mut rules.heartbeat_stale, &k)?;
        rules.heartbeat_after =
            v.opt_duration(&r.after, &format!("{k}.after"), rules.heartbeat_after)?;
        if rules.heartbeat_after.is_zero() {
            let line = r.after.as_ref().map_or(0, |a| a.referenced.line());
            return Err(v.at(line, format!("{k}.after"), "must be longer than 0s"));
        }
    }
    if let Some(r) = &raw.agent_offline {
        apply_shared(
            v,
            r,
            &mut rules.agent_offline,
            &format!("{key}.agent_offline"),
        )?;
    }
    if let Some(r) = &raw.token_rotation {
        let k = format!("{key}.token_rotation");
        apply_shared(v, r, &mut rules.token_rotation, &k)?;
        rules.token_max_age =
            v.opt_duration(&r.max_age, &format!("{k}.max_age"), rules.token_max_age)?;
        rules.token_warn_before = v.opt_duration(
            &r.warn_before,
            &format!("{k}.warn_before"),
            rules.token_warn_before,
        )?;
        if rules.token_max_age.is_zero() {
            let line = r.max_age.as_ref().map_or(0, |a| a.referenced.line());
            return Err(v.at(line, format!("{k}.max_age"), "must be longer than 0s"));
        }
        if rules.token_warn_before >= rules.token_max_age {
            let line = r
                .warn_before
                .as_ref()
                .or(r.max_age.as_ref())
                .map_or(0, |a| a.referenced.line());
            return Err(v.at(
                line,
                format!("{k}.warn_before"),
                format!(
                    "warn_before ({}) must be shorter than max_age ({})",
                    human(rules.token_warn_before),
                    human(rules.token_max_age)
                ),
            ));
        }
    }
    if let Some(r) = &raw.source_down {
        apply_shared(v, r, &mut rules.source_down, &format!("{key}.source_down"))?;
    }
    if let Some(r) = &raw.agent_version_outdated {
        let k = format!("{key}.agent_version_outdated");
        if let Some(min) = &r.min_version {
            let parsed = parse_version(&min.value).ok_or_else(|| {
                v.at(
                    min.referenced.line(),
                    format!("{k}.min_version"),
                    format!(
                        "bad version {:?}; write a semantic version such as 1.4.0",
                        min.value
                    ),
                )
            })?;
            rules.min_version = Some(parsed);
        }
        apply_shared(v, r, &mut rules.version_outdated, &k)?;
        // Without a version to compare against, the rule has nothing to check.
        rules.version_outdated.enabled = rules.min_version.is_some() && r.enabled.unwrap_or(true);
    }
    Ok(rules)
}

/// Applies the keys every rule shares (`enabled`, `for`, `keep_firing_for`, `severity`, `matchers`) to `s`, the
/// block at key path `key`. Keys the rule does not accept are `None`, since the parser rejected them, and change
/// nothing.
fn apply_shared<K>(
    v: &Invalid<'_>,
    r: &RawRule<K>,
    s: &mut RuleSettings,
    key: &str,
) -> Result<(), ConfigError> {
    s.enabled = r.enabled.unwrap_or(s.enabled);
    s.for_ = v.opt_duration(&r.for_, &format!("{key}.for"), s.for_)?;
    s.keep_firing_for = v.opt_duration(
        &r.keep_firing_for,
        &format!("{key}.keep_firing_for"),
        s.keep_firing_for,
    )?;
    s.severity = r.severity.unwrap_or(s.severity);
    if let Some(m) = &r.matchers {
        s.matchers = v.matchers(m, &format!("{key}.matchers"), &AGENT_LABELS)?;
    }
    Ok(())
}

fn validate_mute_window(
    v: &Invalid<'_>,
    raw: &RawMuteWindow,
    key: &str,
) -> Result<MuteWindow, ConfigError> {
    let name = raw.name.value.trim().to_string();
    if name.is_empty() {
        return Err(v.at(
            raw.name.referenced.line(),
            format!("{key}.name"),
            "must not be empty",
        ));
    }
    let time_zone = match &raw.time_zone {
        None => TimeZone::UTC,
        Some(tz) => TimeZone::get(tz.value.trim()).map_err(|_| {
            v.at(
                tz.referenced.line(),
                format!("{key}.time_zone"),
                format!(
                    "unknown time zone {:?}; use an IANA name such as Europe/Berlin",
                    tz.value
                ),
            )
        })?,
    };
    let mut weekdays = 0u8;
    for (i, d) in raw.weekdays.iter().enumerate() {
        let bad = || {
            v.at(
                d.referenced.line(),
                format!("{key}.weekdays[{i}]"),
                format!(
                    "bad weekday {:?}; write monday, mon, or a range such as monday:friday",
                    d.value
                ),
            )
        };
        let text = d.value.trim().to_ascii_lowercase();
        let (from, to) = match text.split_once(':') {
            Some((a, b)) => (weekday(a).ok_or_else(bad)?, weekday(b).ok_or_else(bad)?),
            None => {
                let w = weekday(&text).ok_or_else(bad)?;
                (w, w)
            }
        };
        let mut day = from;
        loop {
            weekdays |= 1 << day;
            if day == to {
                break;
            }
            day = (day + 1) % 7;
        }
    }
    if raw.weekdays.is_empty() {
        weekdays = 0x7f;
    }
    let mut times = Vec::new();
    for (i, t) in raw.times.iter().enumerate() {
        let k = format!("{key}.times[{i}]");
        let line = t.referenced.line();
        let start = clock(&t.value.start, false).ok_or_else(|| {
            v.at(
                line,
                format!("{k}.start"),
                format!("bad time {:?}; write HH:MM", t.value.start),
            )
        })?;
        let end = clock(&t.value.end, true).ok_or_else(|| {
            v.at(
                line,
                format!("{k}.end"),
                format!("bad time {:?}; write HH:MM, up to 24:00", t.value.end),
            )
        })?;
        if start == end {
            return Err(v.at(
                line,
                &k,
                format!(
                    "start and end are both {}; the range would be empty",
                    t.value.start
                ),
            ));
        }
        times.push((start, end));
    }
    let matchers = v.matchers(&raw.matchers, &format!("{key}.matchers"), &GROUP_LABELS)?;
    Ok(MuteWindow {
        name,
        time_zone,
        weekdays,
        times,
        matchers,
    })
}

/// Monday = 0.
fn weekday(s: &str) -> Option<u8> {
    const NAMES: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let s = s.trim();
    NAMES
        .iter()
        .position(|n| *n == s || (s.len() == 3 && n.starts_with(s)))
        .map(|p| p as u8)
}

/// `HH:MM` as minutes after midnight; `24:00` only when `end`.
fn clock(s: &str, end: bool) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    match (h, m) {
        (24, 0) if end => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// Parses a version leniently: a leading `v` and missing minor or patch numbers are accepted (`v2`, `1.4`), as
/// agents report them that way. Returns `None` for anything else that is not semantic versioning.
pub fn parse_version(s: &str) -> Option<semver::Version> {
    let s = s.trim().trim_start_matches(['v', 'V']);
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    let (core, rest) = match s.find(['-', '+']) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let parts = core.split('.').count();
    let padded = match parts {
        1 => format!("{core}.0.0{rest}"),
        2 => format!("{core}.0{rest}"),
        _ => return None,
    };
    semver::Version::parse(&padded).ok()
}

/// A light check of a recipient: the notifier parses addresses fully; this catches typos at load time.
fn check_address(s: &str) -> Result<(), String> {
    let t = s.trim();
    let ok = match t.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !t
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || matches!(c, ',' | '<' | '>'))
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not an email address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAIL: &str = "state_file: /tmp/state.json\nemail:\n  smtp: { host: smtp.example.com, tls: none }\n  \
                        from: \"Agent alerts <alerts@example.com>\"\n  to: [\"ops@example.com\"]\n";

    /// Parses and validates `head` followed by the required keys, so line numbers in `head` start at 1.
    fn load(head: &str) -> Result<AlertingConfig, ConfigError> {
        let yaml = format!("{head}{TAIL}");
        let raw: RawAlerting =
            serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("YAML:\n{yaml}\n{e}"));
        raw.validate(Path::new("config.yaml"), "alerting")
    }

    #[test]
    fn the_contract_example_validates_with_its_values() {
        let cfg = load(
            "external_url: http://exporter.example.com:9877/\ngroup_wait: 30s\ngroup_interval: 5m\n\
             repeat_interval: 4h\nsend_resolved: true\nrules:\n  \
             heartbeat_stale: { after: 10m, for: 0s, severity: critical }\n  \
             agent_offline:   { for: 5m, severity: critical }\n  \
             token_rotation:  { max_age: 90d, warn_before: 14d }\n  \
             source_down:     { for: 10m, severity: critical }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = &cfg.engine;
        assert_eq!(e.state_file, PathBuf::from("/tmp/state.json"));
        assert_eq!(
            e.external_url.as_deref(),
            Some("http://exporter.example.com:9877")
        );
        assert_eq!(
            (
                e.group_wait,
                e.group_interval,
                e.repeat_interval,
                e.send_resolved
            ),
            (
                Duration::from_secs(30),
                Duration::from_secs(300),
                Duration::from_secs(4 * 3600),
                true
            )
        );
        assert_eq!(
            e.rules,
            Rules::default(),
            "the example spells out the defaults"
        );
        assert_eq!(e.default_to, vec!["ops@example.com".to_string()]);
        assert!(!e.rules.version_outdated.enabled);
    }

    #[test]
    fn every_optional_key_is_understood() {
        let cfg = load(
            "rules:\n  heartbeat_stale:\n    keep_firing_for: 2m\n    matchers:\n      \
             - { name: agent_name, value: \"lab-.*\", is_regex: true, is_equal: false }\n  \
             agent_version_outdated: { min_version: \"1.4\", severity: info }\n\
             overrides:\n  - source: lab\n    rules:\n      heartbeat_stale: { after: 2h }\n      \
             agent_offline: { enabled: false }\n\
             mute_windows:\n  - name: weekend\n    time_zone: Europe/Berlin\n    weekdays: [\"saturday:sunday\", mon]\n    \
             times: [{ start: \"22:00\", end: \"06:00\" }]\n    matchers: [{ name: severity, value: warning }]\n\
             routes:\n  - { alertname: SourceDown, to: [oncall@example.com] }\n  \
             - { severity: warning, account: prod, to: [security@example.com, sec2@example.com] }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = &cfg.engine;
        assert_eq!(
            e.rules.heartbeat_stale.keep_firing_for,
            Duration::from_secs(120)
        );
        assert_eq!(e.rules.heartbeat_stale.matchers.len(), 1);
        assert_eq!(e.rules.min_version, Some(semver::Version::new(1, 4, 0)));
        assert!(e.rules.version_outdated.enabled);
        let lab = e.rules_for("lab");
        assert_eq!(lab.heartbeat_after, Duration::from_secs(7200));
        assert!(!lab.agent_offline.enabled);
        // Everything an override leaves out comes from `rules`, including what `rules` changed.
        assert_eq!(
            lab.heartbeat_stale.keep_firing_for,
            Duration::from_secs(120)
        );
        assert_eq!(lab.min_version, e.rules.min_version);
        assert_eq!(e.rules_for("prod"), &e.rules);
        let w = &e.mute_windows[0];
        assert_eq!(
            (w.weekdays, w.times.clone()),
            (0b110_0001, vec![(22 * 60, 6 * 60)])
        );
        assert_eq!(e.routes.len(), 2);
        assert_eq!(
            e.routes[1].to,
            vec!["security@example.com", "sec2@example.com"]
        );
        assert!(
            cfg.check_sources(Path::new("config.yaml"), "alerting", ["prod", "lab"])
                .is_ok()
        );
        let err = cfg
            .check_sources(Path::new("config.yaml"), "alerting", ["prod"])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "config.yaml:8: alerting.overrides: source \"lab\" is not configured (known sources: prod)"
        );
    }

    /// Each invalid section and the exact error it must produce.
    #[test]
    fn invalid_sections_name_the_line_the_key_and_the_value() {
        let cases: &[(&str, &str)] = &[
            (
                "group_wait: soon\n",
                "config.yaml:1: alerting.group_wait: invalid duration \"soon\": write a whole number and a unit (ms, s, m, h, d or \
                 w), or several, e.g. 30s, 5m, 1h30m or 90d",
            ),
            (
                "group_interval: 10m\nrepeat_interval: 5m\n",
                "config.yaml:2: alerting.repeat_interval: repeat_interval (5m) is shorter than group_interval \
                 (10m); a group is only looked at every group_interval",
            ),
            (
                "evaluation_interval: 50ms\n",
                "config.yaml:1: alerting.evaluation_interval: \"50ms\" is too short: must be at least 100ms",
            ),
            (
                "retry_initial_backoff: 0s\n",
                "config.yaml:1: alerting.retry_initial_backoff: \"0s\" is too short: must be at least 100ms",
            ),
            (
                "evaluation_interval: often\n",
                "config.yaml:1: alerting.evaluation_interval: invalid duration \"often\": write a whole number and a unit (ms, s, m, h, d or \
                 w), or several, e.g. 30s, 5m, 1h30m or 90d",
            ),
            (
                "group_interval: 0s\n",
                "config.yaml:1: alerting.group_interval: must be longer than 0s",
            ),
            (
                "external_url: ftp://x\n",
                "config.yaml:1: alerting.external_url: bad URL \"ftp://x\": the scheme must be http or https",
            ),
            (
                "external_url: not a url\n",
                "config.yaml:1: alerting.external_url: bad URL \"not a url\": relative URL without a base",
            ),
            (
                "rules:\n  heartbeat_stale: { after: 0s }\n",
                "config.yaml:2: alerting.rules.heartbeat_stale.after: must be longer than 0s",
            ),
            (
                "rules:\n  agent_offline:\n    for: 5 minutes please\n",
                "config.yaml:3: alerting.rules.agent_offline.for: invalid duration \"5 minutes please\": write a whole number and a unit (ms, s, m, h, d or \
                 w), or several, e.g. 30s, 5m, 1h30m or 90d",
            ),
            (
                "rules:\n  token_rotation:\n    max_age: 30d\n    warn_before: 30d\n",
                "config.yaml:4: alerting.rules.token_rotation.warn_before: warn_before (30d) must be shorter \
                 than max_age (30d)",
            ),
            (
                "rules:\n  agent_version_outdated: { min_version: latest }\n",
                "config.yaml:2: alerting.rules.agent_version_outdated.min_version: bad version \"latest\"; write a \
                 semantic version such as 1.4.0",
            ),
            (
                "rules:\n  heartbeat_stale:\n    matchers:\n      - { name: agent_name, value: \"(\", is_regex: true }\n",
                "config.yaml:4: alerting.rules.heartbeat_stale.matchers[0].value: bad regex \"(\": unclosed group",
            ),
            (
                "rules:\n  agent_offline:\n    matchers:\n      - { name: account, value: prod }\n",
                "config.yaml:4: alerting.rules.agent_offline.matchers[0].name: account cannot be matched here; use \
                 one of: agent_id, agent_name",
            ),
            (
                "overrides:\n  - source: prod\n  - source: prod\n",
                "config.yaml:3: alerting.overrides[1].source: source \"prod\" already has an override; merge the two",
            ),
            (
                "overrides:\n  - source: prod\n    rules:\n      token_rotation: { warn_before: 100d }\n",
                "config.yaml:4: alerting.overrides[0].rules.token_rotation.warn_before: warn_before (100d) must \
                 be shorter than max_age (90d)",
            ),
            (
                "mute_windows:\n  - name: x\n    time_zone: Mars/Olympus\n",
                "config.yaml:3: alerting.mute_windows[0].time_zone: unknown time zone \"Mars/Olympus\"; use an IANA \
                 name such as Europe/Berlin",
            ),
            (
                "mute_windows:\n  - name: x\n    weekdays: [funday]\n",
                "config.yaml:3: alerting.mute_windows[0].weekdays[0]: bad weekday \"funday\"; write monday, mon, or \
                 a range such as monday:friday",
            ),
            (
                "mute_windows:\n  - name: x\n    times:\n      - { start: \"25:00\", end: \"06:00\" }\n",
                "config.yaml:4: alerting.mute_windows[0].times[0].start: bad time \"25:00\"; write HH:MM",
            ),
            (
                "mute_windows:\n  - name: x\n    times:\n      - { start: \"06:00\", end: \"06:00\" }\n",
                "config.yaml:4: alerting.mute_windows[0].times[0]: start and end are both 06:00; the range would \
                 be empty",
            ),
            (
                "mute_windows:\n  - name: x\n    matchers: [{ name: agent_id, value: a }]\n",
                "config.yaml:3: alerting.mute_windows[0].matchers[0].name: agent_id cannot be matched here; use \
                 one of: alertname, account, severity",
            ),
            (
                "routes:\n  - { alertname: AgentDown, to: [a@example.com] }\n",
                "config.yaml:2: alerting.routes[0].alertname: unknown alert \"AgentDown\"; the rules are: \
                 AgentHeartbeatStale, AgentOffline, AgentTokenRotationDue, AgentTokenRotationOverdue, SourceDown, \
                 AgentVersionOutdated",
            ),
            (
                "routes:\n  - { severity: warning, to: [] }\n",
                "config.yaml:2: alerting.routes[0].to: must list at least one recipient (to) or receiver (receivers)",
            ),
            (
                "routes:\n  - severity: warning\n    to:\n      - ops at example.com\n",
                "config.yaml:4: alerting.routes[0].to[0]: \"ops at example.com\" is not an email address",
            ),
        ];
        for (head, want) in cases {
            match load(head) {
                Ok(_) => panic!("accepted:\n{head}"),
                Err(e) => assert_eq!(e.to_string(), *want, "for:\n{head}"),
            }
        }
    }

    #[test]
    fn email_is_optional_when_alertmanagers_are_listed_but_one_channel_is_required() {
        let parse = |yaml: &str| {
            let raw: RawAlerting = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
            raw.validate(Path::new("config.yaml"), "alerting")
        };
        let cfg = parse(
            "state_file: /tmp/s.json\nresend_delay: 2s\nalertmanagers:\n  - url: http://am:9093\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.email.is_none());
        assert_eq!(cfg.alertmanagers.len(), 1);
        assert_eq!(cfg.resend_delay, Duration::from_secs(2));
        assert!(cfg.engine.default_to.is_empty());
        let err = parse("state_file: /tmp/s.json\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "config.yaml:1: alerting: no notification channel: set at least one of email, alertmanagers, receivers"
        );
        assert_eq!(load("").unwrap().resend_delay, DEFAULT_RESEND_DELAY);
    }

    #[test]
    fn unknown_keys_are_rejected_by_the_parser() {
        for head in [
            "group_waits: 30s\n",
            "rules:\n  heartbeat_stale: { max_age: 10d }\n",
            "rules:\n  source_down: { matchers: [] }\n",
            "rules:\n  agent_gone: {}\n",
            "overrides:\n  - { source: prod, after: 1h }\n",
            "rules:\n  agent_offline: { severity: page }\n",
        ] {
            let yaml = format!("{head}{TAIL}");
            let parsed: Result<RawAlerting, _> = serde_saphyr::from_str(&yaml);
            assert!(parsed.is_err(), "accepted:\n{yaml}");
        }
    }

    #[test]
    fn the_loop_intervals_default_to_five_seconds_and_may_be_shortened_to_100ms() {
        let defaults = load("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                defaults.engine.evaluation_interval,
                defaults.retry_initial_backoff
            ),
            (Duration::from_secs(5), Duration::from_secs(5))
        );
        let fast = load("evaluation_interval: 200ms\nretry_initial_backoff: 100ms\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (fast.engine.evaluation_interval, fast.retry_initial_backoff),
            (Duration::from_millis(200), Duration::from_millis(100))
        );
    }

    /// Every rule block, a key it does not accept, and the exact error: the key's line and path, and the keys
    /// that block does accept.
    #[test]
    fn a_key_a_rule_does_not_accept_is_rejected_at_its_line_listing_the_keys_it_does() {
        let cases: &[(&str, &str)] = &[
            (
                "rules:\n  heartbeat_stale:\n    after: 5m\n    max_age: 10d\n",
                "config.yaml:4: rules.heartbeat_stale.max_age: unknown field `max_age`, expected one of enabled, \
                 after, for, keep_firing_for, severity, matchers",
            ),
            (
                "rules:\n  agent_offline: { after: 5m }\n",
                "config.yaml:2: rules.agent_offline.after: unknown field `after`, expected one of enabled, for, \
                 keep_firing_for, severity, matchers",
            ),
            (
                "rules:\n  token_rotation:\n    severity: info\n",
                "config.yaml:3: rules.token_rotation.severity: unknown field `severity`, expected one of enabled, \
                 max_age, warn_before, keep_firing_for, matchers",
            ),
            (
                "rules:\n  source_down:\n    for: 1m\n    matchers: []\n",
                "config.yaml:4: rules.source_down.matchers: unknown field `matchers`, expected one of enabled, for, \
                 keep_firing_for, severity",
            ),
            (
                "overrides:\n  - source: lab\n    rules:\n      agent_version_outdated:\n        warn_before: 1d\n",
                "config.yaml:5: overrides[0].rules.agent_version_outdated.warn_before: unknown field `warn_before`, \
                 expected one of enabled, min_version, for, keep_firing_for, severity, matchers",
            ),
            (
                "rules:\n  agent_offline:\n    severity: page\n",
                "config.yaml:3: rules.agent_offline.severity: unknown variant `page`, expected one of info, \
                 warning, critical",
            ),
        ];
        for (head, want) in cases {
            let yaml = format!("{head}{TAIL}");
            match crate::config::parse::parse_yaml::<RawAlerting>(&yaml, Path::new("config.yaml")) {
                Ok(_) => panic!("accepted:\n{yaml}"),
                Err(e) => assert_eq!(e.to_string(), *want, "for:\n{yaml}"),
            }
        }
    }

    #[test]
    fn versions_are_read_leniently() {
        let cases = [
            ("1.4.0", Some("1.4.0")),
            ("v2", Some("2.0.0")),
            ("1.4", Some("1.4.0")),
            ("1.4-beta.1", Some("1.4.0-beta.1")),
            ("1.2.3.4", None),
            ("latest", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_version(text).map(|v| v.to_string()).as_deref(),
                want,
                "for {text:?}"
            );
        }
    }
}
