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
pub mod dispatch;
pub mod engine;
pub mod eval;
pub mod health;
pub mod runner;
pub mod silences;
pub mod state;
pub mod views;

pub use crate::domain::AlertName;
pub use crate::domain::notification::{NotificationSink, SinkError};
