//! The types every layer shares, at the bottom of the crate: agents and providers, alert names, severities, alerts
//! and their keys and states, label matchers, silences, notifications and the receivers they go to, and the shard a
//! replica owns.
//!
//! This module imports nothing else of the crate, so that [`crate::config`], the sources, evaluation, dispatch and
//! delivery can all speak of the same alert without importing one another.
//!
//! - [`catalog`]: the one definition of every alert (name, severity, labels, thresholds, annotations).
//! - [`agent`]: the provider-neutral agent record every source produces.
//! - [`alert`]: [`AlertName`], [`Severity`], [`Alert`], [`AlertKey`], [`AlertState`].
//! - [`matcher`]: label matchers with Alertmanager's semantics.
//! - [`silence`]: one silence.
//! - [`notification`]: [`Notification`], [`AlertLine`], [`ReceiverRef`], [`Channel`] and the [`NotificationSink`]
//!   dispatch hands them to.
//! - [`shard`]: which sources one replica of several owns.

pub mod agent;
pub mod alert;
pub mod catalog;
pub mod matcher;
pub mod notification;
pub mod shard;
pub mod silence;

pub use agent::{
    Agent, AgentList, Health, Label, Provider, SharedAgents, TokenDateSource, age_seconds,
    parse_version, unix_seconds,
};
pub use alert::{Alert, AlertKey, AlertName, AlertState, Severity, group_key};
pub use matcher::{LabelName, Matcher, RawMatcher, all_match};
pub use notification::{
    AlertLine, Channel, Notification, NotificationSink, NotificationStatus, ReceiverRef, SinkError,
    SourceProblem,
};
pub use shard::Shard;
pub use silence::Silence;
