//! The `alerting:` section as written: serde types that reject unknown keys. [`super::validate`] turns them into
//! the validated types of [`super`].

use std::marker::PhantomData;
use std::path::PathBuf;

use serde::Deserialize;
use serde::Deserializer;
use serde_saphyr::Spanned;

use crate::config::alertmanagers::RawAlertmanager;
use crate::config::email::RawEmail;
use crate::config::receivers::RawReceiver;
use crate::config::silences::RawSilenceLimits;
use crate::domain::Severity;
use crate::domain::matcher::RawMatcher;

/// The `alerting:` section as written. Durations are written as [`crate::config::parse::duration`] reads them (`30s`,
/// `5m`, `4h`, `90d`).
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
    /// SMTP and default recipients; owned by the notifier. Optional: see [`super::require_a_channel`].
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

/// One block of `alerting.rules` (or of an override's `rules`) as written: every rule's keys, each optional. The
/// block accepts only the keys of its rule (see `rule_block!`); the other fields stay `None`.
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

/// Declares the plain serde struct of one rule block, with exactly the keys that rule accepts (in the order an
/// "unknown field" error lists them), and reads a [`RawRule`] through it: serde's `deny_unknown_fields` then rejects
/// any other key at its line, with the key in the error's path.
macro_rules! rule_block {
    ($marker:ident, $raw:ident { $($(#[$attr:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $raw {
            $($(#[$attr])* $field: Option<$ty>,)*
        }

        impl<'de> Deserialize<'de> for RawRule<$marker> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = $raw::deserialize(deserializer)?;
                Ok(RawRule {
                    $($field: raw.$field,)*
                    ..RawRule::default()
                })
            }
        }
    };
}

rule_block!(HeartbeatStale, RawHeartbeatStale {
    enabled: bool,
    after: Spanned<String>,
    #[serde(rename = "for")]
    for_: Spanned<String>,
    keep_firing_for: Spanned<String>,
    severity: Severity,
    matchers: Vec<Spanned<RawMatcher>>,
});

rule_block!(AgentOffline, RawAgentOffline {
    enabled: bool,
    #[serde(rename = "for")]
    for_: Spanned<String>,
    keep_firing_for: Spanned<String>,
    severity: Severity,
    matchers: Vec<Spanned<RawMatcher>>,
});

rule_block!(TokenRotation, RawTokenRotation {
    enabled: bool,
    max_age: Spanned<String>,
    warn_before: Spanned<String>,
    keep_firing_for: Spanned<String>,
    matchers: Vec<Spanned<RawMatcher>>,
});

rule_block!(SourceDown, RawSourceDown {
    enabled: bool,
    #[serde(rename = "for")]
    for_: Spanned<String>,
    keep_firing_for: Spanned<String>,
    severity: Severity,
});

rule_block!(VersionOutdated, RawVersionOutdated {
    enabled: bool,
    min_version: Spanned<String>,
    #[serde(rename = "for")]
    for_: Spanned<String>,
    keep_firing_for: Spanned<String>,
    severity: Severity,
    matchers: Vec<Spanned<RawMatcher>>,
});

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
