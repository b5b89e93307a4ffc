//! The provider-neutral view of an on-premise agent, as every source produces it and every consumer reads it.
//!
//! Sources translate their vendor's JSON into [`Agent`]; the metrics renderer, the HTTP API and the rule engine read
//! only these types. Nothing here holds a secret: the vendor's agent tokens are dropped while parsing and never reach
//! this module.

use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The upstream platform a source talks to. It becomes the `provider` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Celigo integrator.io on-premise agents (`GET /v1/agents`).
    Celigo,
    /// Planasonix pipeline agents (`GET /api/agents`).
    Planasonix,
    /// Calyptia Cloud (Fluent Bit / Fluentd) agents (`GET /v1/projects/{id}/agents`).
    Calyptia,
    /// Any other platform's agent list, described in the config (`provider: generic`); the label is the source's
    /// `provider_label` (`generic` by default).
    Generic(Label),
}

impl Provider {
    /// The label value, as it appears in metrics and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Celigo => "celigo",
            Provider::Planasonix => "planasonix",
            Provider::Calyptia => "calyptia",
            Provider::Generic(label) => label.as_str(),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Provider {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Read back from the label text, as [`Serialize`] writes it (the state file keeps each alert's provider): the
/// built-in names map to their variants, any other text is a generic source's `provider_label`.
impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(match text.as_ref() {
            "celigo" => Provider::Celigo,
            "planasonix" => Provider::Planasonix,
            "calyptia" => Provider::Calyptia,
            other => Provider::Generic(Label::new(other)),
        })
    }
}

/// A label name or value chosen in the config (a generic source's `provider_label` and the names of its extra
/// labels), as a `&'static str` so that [`Provider`] stays `Copy` and [`Agent::info`] keeps static keys like the
/// built-in providers' labels.
///
/// The text is interned: each distinct string is stored once for the life of the process, however often a config is
/// loaded, so what is kept is bounded by the distinct strings configs ever held (a few dozen short names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(&'static str);

impl Label {
    /// The interned copy of `text`.
    pub fn new(text: &str) -> Label {
        use std::collections::HashSet;
        use std::sync::{Mutex, OnceLock};
        static INTERNED: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
        let mut set = INTERNED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(known) = set.get(text) {
            return Label(known);
        }
        let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
        set.insert(leaked);
        Label(leaked)
    }

    /// The text.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// Where an agent's token-rotation instant came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenDateSource {
    /// The platform's own rotation timestamp (Celigo `__accessTokenLastModifiedAt`).
    Rotation,
    /// The agent's creation time, used when the platform never recorded a rotation: a token that was never
    /// rotated is as old as the agent.
    Created,
}

/// Resource and workload figures an agent reports about its host (Planasonix `/api/agents/{id}/health`).
///
/// Every field is optional because vendors send partial documents; a missing field means no series.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Health {
    /// CPU use, 0.0 to 1.0.
    pub cpu_ratio: Option<f64>,
    /// Memory use, 0.0 to 1.0.
    pub memory_ratio: Option<f64>,
    /// Free disk space, bytes.
    pub disk_free_bytes: Option<f64>,
    /// Jobs running now.
    pub active_jobs: Option<f64>,
    /// Jobs waiting to run.
    pub queue_depth: Option<f64>,
    /// The agent's last reported error, while it has one.
    pub last_error: Option<String>,
}

/// One on-premise agent as of the poll that produced it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    /// The vendor's stable identifier (`agent_id` label).
    pub id: String,
    /// The human-readable name (`agent_name` label). Untrusted: may hold quotes, newlines or HTML.
    pub name: String,
    /// The agent software version, when the platform knows it.
    pub version: Option<String>,
    /// The platform's own verdict that the agent is offline.
    pub offline: bool,
    /// The last heartbeat the platform received; `None` when the agent never sent one.
    pub last_heartbeat: Option<Timestamp>,
    /// When the agent's access token was last rotated; `None` when the provider exposes no such date.
    pub token_rotated: Option<Timestamp>,
    /// Where [`Agent::token_rotated`] came from; meaningful only when it is `Some`.
    pub token_rotated_source: TokenDateSource,
    /// When the agent was registered, if known.
    pub created_at: Option<Timestamp>,
    /// Extra provider-specific labels for the `_info` metric (for example `status`, `platform`, `os`), in a fixed
    /// order per provider. Keys are valid Prometheus label names.
    pub info: Vec<(&'static str, String)>,
    /// Host health, for providers that report it. Boxed: most agents have none, and every byte of `Agent` is paid
    /// 100,000 times over in a large fleet.
    pub health: Option<Box<Health>>,
}

impl Agent {
    /// Returns an agent with the given id and name and every optional field empty.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Agent {
        Agent {
            id: id.into(),
            name: name.into(),
            version: None,
            offline: false,
            last_heartbeat: None,
            token_rotated: None,
            token_rotated_source: TokenDateSource::Rotation,
            created_at: None,
            info: Vec::new(),
            health: None,
        }
    }
}

/// An immutable list of agents from one successful poll of one source.
///
/// It is shared behind an `Arc` so that a scrape, the API and the rule engine can all hold it while the poller
/// builds the next one.
#[derive(Debug, Clone, Serialize)]
pub struct AgentList {
    /// When the poll that produced this list finished.
    pub polled_at: Timestamp,
    /// The agents, in the order the upstream listed them.
    pub agents: Vec<Agent>,
}

/// Shared handle to an [`AgentList`].
pub type SharedAgents = Arc<AgentList>;

/// Seconds from `then` to `now`, as a float; negative when `then` lies in the future (clock skew upstream).
pub fn age_seconds(now: Timestamp, then: Timestamp) -> f64 {
    let d = now.duration_since(then);
    d.as_secs_f64()
}

/// Seconds since the Unix epoch, with sub-second precision.
pub fn unix_seconds(t: Timestamp) -> f64 {
    t.as_nanosecond() as f64 / 1e9
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

#[cfg(test)]
mod tests {
    use super::*;

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
