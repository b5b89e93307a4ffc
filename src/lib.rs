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
//!                                                            rules (pure) ──▶ notify (email)
//! ```
//!
//! - [`config`] parses and validates the YAML file; every error names the file, the line and the key path.
//! - [`sources`] holds one upstream client per provider behind the [`sources::Source`] trait.
//! - [`model`] is the provider-neutral agent record every source produces.
//! - [`sim`] is a faithful stand-in for the upstream APIs, used by `demo`, the tests and the bench.

pub mod app;
pub mod config;
pub mod demo;
pub mod landing;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod poller;
pub mod server;
pub mod sim;
pub mod sources;
pub mod status;
pub mod telemetry;
