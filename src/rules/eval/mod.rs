//! The evaluation stage: each rule looks at the sources' snapshot at `now` and says which alert conditions hold and
//! since when ([`observe`]); the [`lifecycle`] then moves alerts between pending, firing and resolved.
//!
//! One file per rule, each behind [`Rule`]: [`heartbeat`], [`offline`], [`token`], [`source_down`], [`version`].
//! A new rule is one file here, one entry in [`RULES`], its [`AlertName`] and its config section.
//!
//! A source whose last poll failed, or that has not been polled yet, is *held*: its stale data starts nothing and
//! resolves nothing (only `SourceDown` speaks for it).

pub mod heartbeat;
pub mod lifecycle;
pub mod offline;
pub mod source_down;
pub mod token;
pub mod version;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::config::alerting::{EngineConfig, RuleSettings, Rules};
use crate::domain::matcher::{LabelName, all_match};
use crate::domain::{Agent, AlertKey, AlertName, Provider};
use crate::status::SourceStatus;

/// What a rule found for one alert in one evaluation: its condition holds, since `start`.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The alert the condition raises.
    pub alertname: AlertName,
    /// When the condition started to hold, from the data when the data says; else `now`.
    pub start: Timestamp,
    /// The observed value in human units, and in seconds when it is a duration.
    pub value: (String, Option<Duration>),
    /// The threshold in human units, and in seconds when it is a duration.
    pub threshold: (String, Option<Duration>),
    /// One plain sentence for people.
    pub summary: String,
}

/// One built-in rule. A rule is pure: it reads the settings, one agent (or one source) and `now`, and pushes what
/// it finds; the lifecycle decides what becomes of it.
pub trait Rule: Send + Sync {
    /// The settings block that enables and scopes the rule.
    fn settings<'r>(&self, rules: &'r Rules) -> &'r RuleSettings;

    /// Looks at one agent of a source that is up; called only when the rule is enabled and its matchers match the
    /// agent. Source-level rules leave it as is.
    fn agent(&self, _rules: &Rules, _agent: &Agent, _now: Timestamp, _found: &mut Vec<Finding>) {}

    /// Looks at one source that has been polled at least once; called only when the rule is enabled. Agent-level
    /// rules leave it as is.
    fn source(
        &self,
        _rules: &Rules,
        _source: &SourceStatus,
        _now: Timestamp,
        _found: &mut Vec<Finding>,
    ) {
    }
}

/// Every rule, in the order they are evaluated.
pub const RULES: [&dyn Rule; 5] = [
    &heartbeat::HeartbeatStale,
    &offline::Offline,
    &token::TokenRotation,
    &source_down::SourceDown,
    &version::VersionOutdated,
];

/// What a rule saw for one alert in one evaluation, with the agent's details the alert carries.
#[derive(Debug, Clone)]
pub struct Observation {
    /// When the condition started to hold.
    pub start: Timestamp,
    /// The provider label.
    pub provider: Provider,
    /// `None` for source-level alerts.
    pub agent_name: Option<String>,
    /// The agent's reported version.
    pub version: Option<String>,
    /// The observed value in human units.
    pub value: String,
    /// The threshold in human units.
    pub threshold: String,
    /// The value in seconds, when it is a duration.
    pub value_seconds: Option<u64>,
    /// The threshold in seconds, when it is a duration.
    pub threshold_seconds: Option<u64>,
    /// One plain sentence for people.
    pub summary: String,
}

/// What every rule sees now, by alert key, and which `(account, agent level?)` pairs are held.
pub type Observed = (BTreeMap<AlertKey, Observation>, BTreeSet<(String, bool)>);

/// Runs every enabled rule over `sources` at `now`.
pub fn observe(config: &EngineConfig, sources: &[Arc<SourceStatus>], now: Timestamp) -> Observed {
    let mut seen = BTreeMap::new();
    let mut held = BTreeSet::new();
    let mut found = Vec::new();
    for s in sources {
        let rules = config.rules_for(&s.name);
        if s.polls == 0 {
            held.insert((s.name.clone(), false));
        } else {
            for rule in RULES {
                if rule.settings(rules).enabled {
                    rule.source(rules, s, now, &mut found);
                }
            }
            for f in found.drain(..) {
                seen.insert(
                    key(f.alertname, &s.name, ""),
                    observation(f, s.provider, None),
                );
            }
        }
        match (&s.agents, s.up) {
            (Some(list), true) => {
                for agent in &list.agents {
                    let label = |n: LabelName| match n {
                        LabelName::AgentId => agent.id.clone(),
                        LabelName::AgentName => agent.name.clone(),
                        _ => String::new(),
                    };
                    for rule in RULES {
                        let settings = rule.settings(rules);
                        if settings.enabled && all_match(&settings.matchers, &label) {
                            rule.agent(rules, agent, now, &mut found);
                        }
                    }
                    for f in found.drain(..) {
                        seen.insert(
                            key(f.alertname, &s.name, &agent.id),
                            observation(f, s.provider, Some(agent)),
                        );
                    }
                }
            }
            _ => {
                held.insert((s.name.clone(), true));
            }
        }
    }
    (seen, held)
}

fn key(alertname: AlertName, account: &str, agent_id: &str) -> AlertKey {
    AlertKey {
        alertname,
        account: account.to_string(),
        agent_id: agent_id.to_string(),
    }
}

fn observation(f: Finding, provider: Provider, agent: Option<&Agent>) -> Observation {
    Observation {
        start: f.start,
        provider,
        agent_name: agent.map(|a| a.name.clone()),
        version: agent.and_then(|a| a.version.clone()),
        value: f.value.0,
        threshold: f.threshold.0,
        value_seconds: f.value.1.map(|d| d.as_secs()),
        threshold_seconds: f.threshold.1.map(|d| d.as_secs()),
        summary: f.summary,
    }
}

/// `t + d`, saturating at the end of time.
pub fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// `now - then`, or zero when `then` lies in the future (clock skew upstream).
pub fn elapsed(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(then)).unwrap_or(Duration::ZERO)
}
