//! The built-in alerting rules and their Alertmanager-like lifecycle: evaluate the snapshot, decide who is told what
//! and when, remember it across restarts.
//!
//! ```text
//! Registry::snapshot() ──▶ Engine::evaluate(sources, now) ──▶ Vec<Notification> ──▶ NotificationSink (outbox)
//!                                 │   ▲                                                     │
//!                                 ▼   │                                                     ▼
//!                          State (alerts, notification log, silences) ──▶ state_file   (after the sink said ok)
//! ```
//!
//! - [`crate::config::alerting`] (not here): the `alerting:` section, raw serde types and their validated forms.
//! - [`matcher`]: label matchers shared by rule scopes, mute windows, routes and silences.
//! - [`engine`]: the pure evaluation. It reads the snapshot, its [`state::State`] and `now`, and returns
//!   notifications; it does no I/O and never reads the clock, so tests drive it with any `now`. The engine's shared
//!   handle and its lock live there too.
//! - [`silences`]: validating, adding and deleting silences; [`views`]: the alerts as people see them.
//! - [`state`]: what must survive a restart, and its atomic JSON file; [`health`]: whether that file can be
//!   written lately, for the metrics, `/readyz` and the silence API.
//! - [`api`]: `/api/v1/alerts` and `/api/v1/silences`, plus the accessors for metrics and the landing page.
//! - [`runner`]: the loop that evaluates every few seconds, hands notifications to the sink, then saves the state.
//!
//! Exactly-once hand-over: the runner enqueues notifications durably first and writes the state second. A crash in
//! between makes the engine produce the same notifications, with the same ids, after the restart, and the outbox
//! drops the ids it already holds.

pub mod api;
pub mod engine;
pub mod health;
pub mod matcher;
pub mod runner;
pub mod silences;
pub mod state;
pub mod views;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::notify::{NotificationSink, SinkError};

/// The built-in rules. The names are a contract: they appear in emails, in `alertname` labels, in routes and in
/// silences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertName {
    /// Heartbeat age above `after`, or no heartbeat ever from an agent created longer ago than `after`.
    AgentHeartbeatStale,
    /// The platform says the agent is offline.
    AgentOffline,
    /// Token age above `max_age - warn_before` (warning).
    AgentTokenRotationDue,
    /// Token age above `max_age` (critical).
    AgentTokenRotationOverdue,
    /// The source's polls have been failing; the exporter is blind to that account.
    SourceDown,
    /// The agent runs a version below `min_version`.
    AgentVersionOutdated,
}

impl AlertName {
    /// Every rule, in the order they are evaluated and listed.
    pub const ALL: [AlertName; 6] = [
        AlertName::AgentHeartbeatStale,
        AlertName::AgentOffline,
        AlertName::AgentTokenRotationDue,
        AlertName::AgentTokenRotationOverdue,
        AlertName::SourceDown,
        AlertName::AgentVersionOutdated,
    ];

    /// The `alertname` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertName::AgentHeartbeatStale => "AgentHeartbeatStale",
            AlertName::AgentOffline => "AgentOffline",
            AlertName::AgentTokenRotationDue => "AgentTokenRotationDue",
            AlertName::AgentTokenRotationOverdue => "AgentTokenRotationOverdue",
            AlertName::SourceDown => "SourceDown",
            AlertName::AgentVersionOutdated => "AgentVersionOutdated",
        }
    }

    /// The rule with this `alertname`, if there is one.
    pub fn parse(s: &str) -> Option<AlertName> {
        AlertName::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Returns true if and only if the alert is about one agent (as opposed to the whole source).
    pub fn is_agent_level(self) -> bool {
        self != AlertName::SourceDown
    }
}

impl fmt::Display for AlertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
