//! onprem-agent-exporter: a Prometheus exporter and alerting sidecar for the on-premise agents of data-integration
//! platforms (Celigo integrator.io, Planasonix and Calyptia Cloud).
//!
//! Data flows one way:
//!
//! ```text
//! config ──▶ sources (one upstream client per account) ──▶ poller ──▶ status (an immutable snapshot per source)
//!                                                                        │
//!                                   /metrics, /api/v1/agents, / ◀────────┤
//!                                                                        ▼
//!            rules::eval (one file per rule, lifecycle) ──▶ rules::dispatch (inhibit, mute, silences, group,
//!                      │                                     notification log, route) ──▶ notify (outbox, email,
//!                      ▼                                                                   Slack, Teams, PagerDuty,
//!     published alerts ──▶ /api/v1/alerts, the status page, the Alertmanager feed          webhook)
//! ```
//!
//! - [`domain`] holds the types every layer shares, at the bottom: agents and providers, alert names, severities,
//!   alerts and their keys and states, label matchers, silences, notifications and receivers, and the shard. It
//!   imports nothing else of the crate, and [`config`] imports only it (and its own parsing primitives).
//! - [`config`] parses and validates the YAML file; every error names the file, the line and the key path.
//! - [`sources`] holds one upstream client per provider behind the [`sources::Source`] trait; [`sources::http`]
//!   has the shared mechanics (auth, retries, `Retry-After`, body cap, pagination).
//! - [`domain::catalog`] is the one definition of every alert (name, severity, labels, thresholds, annotations)
//!   that the engine, every channel and the shipped Prometheus rules tell the same way.
//! - [`poller`] runs one poll loop per source and publishes into [`status`], which keeps an immutable snapshot per
//!   source (the last good agent list survives failed polls).
//! - [`metrics`] holds the `prometheus-client` registry whose collectors read the snapshots at scrape time, and the
//!   renders concurrent scrapes share; [`server`] serves it with the JSON API and the status page, which [`page`]
//!   renders (what is wrong and where, worst first).
//! - [`rules`] is the pure rule engine in two stages, as Alertmanager's packages: [`rules::eval`] (each rule looks
//!   at the snapshot, then the lifecycle) and [`rules::dispatch`] (inhibition, mute windows and silences, grouping
//!   and the notification log, routing). Silences live in a store of their own ([`rules::silences`]); after each
//!   evaluation the engine publishes its alerts, which the API ([`rules::api`]), the status page and the
//!   Alertmanager feed read without waiting. [`notify`] delivers notifications through a durable outbox, one file
//!   per channel (email, Slack, Teams, PagerDuty, webhook), and pushes firing alerts to Alertmanagers
//!   ([`notify::alertmanager`]); [`report`] builds the token-age compliance report; [`alerting`] wires these into
//!   a running process.
//! - [`app`] assembles a running exporter from a config (a replica owns the sources of its
//!   [`domain::shard::Shard`]); [`demo`] does the same around the three simulators.
//! - [`state_lock`] keeps a second process off a state file (`<state_file>.lock`, through `fs4`); [`backoff`] is the
//!   one retry policy (from `backon`) of the sources and the outbox. Long-running tasks stop on one
//!   `tokio_util` `CancellationToken`.
//! - [`sim`] (with the default feature `sim`; `--no-default-features` leaves it, `demo` and `simulate` out of the
//!   build) is a faithful stand-in for the upstream APIs (Celigo, Planasonix, Calyptia), used by `demo`, the tests
//!   and the bench.
//! - [`telemetry`] sets up logging and writes an error's cause chain; [`untrusted`] shows control characters of
//!   upstream strings in plain text (the page, the emails and the report's HTML are written with `maud`, which
//!   escapes every interpolated string); [`humanize`] writes durations for people and for config messages; [`atomic_file`] replaces a file so
//!   a crash leaves the old or the new content (the state file, the silences file and the outbox).

pub mod alerting;
pub mod app;
pub mod atomic_file;
pub mod backoff;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod domain;
pub mod humanize;
pub mod metrics;
pub mod notify;
pub mod page;
pub mod poller;
pub mod report;
pub mod rules;
pub mod server;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sources;
pub mod state_lock;
pub mod status;
pub mod telemetry;
pub mod untrusted;
pub mod web;
