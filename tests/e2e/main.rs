//! The integration tests, linked as one binary: one module per area, and [`support`] holding the helpers they share
//! (the exporter as a child process, simulators, SMTP, the fake upstream, Prometheus and the OpenMetrics parser).
//!
//! One binary links the crate once instead of once per file, and lets `cargo test` run every area's tests side by
//! side.

mod alerting_process;
mod alertmanager;
mod calyptia_upstream;
mod celigo_upstream;
mod channels;
mod cli;
mod config_files;
mod dashboard_lint;
mod delivery;
mod durability;
mod email;
mod exporter;
mod generic_simulators;
mod generic_upstream;
mod kubernetes;
mod mixed_fleet;
mod one_alert;
mod page;
mod planasonix_upstream;
mod prometheus_stack;
mod provider_simulators;
mod silence_survival;
mod silences;
mod simulator;
mod state_trouble;
mod support;
mod true_notices;
mod vanished_fleet;
mod web;
mod web_hold;
mod web_toolkit;
