//! The built-in alerting rules, in Alertmanager's stages: evaluate the snapshot, decide who is told what and when,
//! remember it across restarts.
//!
//! ```text
//! Registry::snapshot() ──▶ eval::observe ──▶ eval::lifecycle ──▶ dispatch (inhibit, mute, group, route)
//!                                                  │                      │            │
//!                                                  ▼                      ▼            ▼
//!                                  published alerts (readers)   SilenceStore   Vec<Notification> ──▶ sink (outbox)
//!                                                                                      │
//!                                          State (alerts, notification log) ──▶ state_file   (after the sink said ok)
//! ```
//!
//! - [`crate::config::alerting`] (not here): the `alerting:` section, raw serde types and their validated forms.
//! - [`eval`]: one file per rule behind [`eval::Rule`], and the lifecycle (pending, firing, `keep_firing_for`,
//!   resolved).
//! - [`dispatch`]: inhibition, mute windows and silences, grouping and the notification log (ids, sequences,
//!   undo), routing, and what a notification says about each alert.
//! - [`engine`]: runs the two stages; pure: it reads the snapshot, its [`state::State`], the silences and `now`,
//!   returns notifications and publishes its alerts for readers. It does no I/O and never reads the clock, so tests
//!   drive it with any `now`. The engine's shared handle and its lock live there too.
//! - [`silences`]: the silence store (own file, own lock, expiry); [`views`]: the alerts as people see them.
//! - [`state`]: what must survive a restart, and its atomic JSON file; [`health`]: whether that file can be
//!   written lately, for the metrics and `/readyz`.
//! - [`api`]: `/api/v1/alerts` and `/api/v1/silences`; it reads published copies only.
//! - [`runner`]: the loop that evaluates every few seconds, hands notifications to the sink, then saves the state,
//!   and forgets expired silences.
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
