//! The subcommands, one file each, and what several of them share: the flags of the web server, the parsers of
//! bounded durations, the summary of failed sources and the shutdown signal.

pub mod check_config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod healthcheck;
pub mod once;
pub mod report;
pub mod run;
#[cfg(feature = "sim")]
pub mod simulate;
pub mod test_email;
pub mod test_notify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use onprem_agent_exporter::config::{Config, placeholders};
use onprem_agent_exporter::domain::shard::Shard;
use onprem_agent_exporter::metrics::Format;
use onprem_agent_exporter::report::ReportFormat;
use onprem_agent_exporter::telemetry;
use onprem_agent_exporter::web::listener::Limits;
use onprem_agent_exporter::web::{Web, WebConfig};
use onprem_agent_exporter::{app, metrics};
use tokio_util::sync::CancellationToken;

/// How `run` exposes its HTTP server.
#[derive(Debug, clap::Args)]
pub struct WebArgs {
    /// A web config file in the format Prometheus, Alertmanager and node_exporter read: TLS
    /// (tls_server_config), basic auth (basic_auth_users, bcrypt hashes) and response headers
    /// (http_server_config.headers). Without it the server speaks plain HTTP with no credentials. Certificate
    /// files are re-read when they change; the web config itself is read at start.
    #[arg(
        long = "web.config.file",
        env = "ONPREM_AGENT_EXPORTER_WEB_CONFIG",
        value_name = "FILE"
    )]
    web_config_file: Option<PathBuf>,
    /// The most HTTP connections open at once; more wait in the kernel's backlog. Keep it below the open-file
    /// limit (the systemd unit sets LimitNOFILE=8192).
    #[arg(long = "web.max-connections", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// How long a client may take to send a request's headers (and the TLS handshake); idle keep-alive
    /// connections are closed after it too. At least 100ms.
    #[arg(long = "web.header-timeout", default_value = "10s", value_parser = parse_header_timeout)]
    header_timeout: std::time::Duration,
    /// The most connections open at once from one client address; further ones are closed at once, so that one
    /// address cannot fill --web.max-connections and lock others out. Keep it below --web.max-connections.
    #[arg(long = "web.max-connections-per-address", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections_per_address: u32,
    /// The highest bcrypt cost accepted in basic_auth_users. Each step doubles the time of a first login (cost 16
    /// takes seconds of CPU); a hash above it is refused at start with the user named.
    #[arg(long = "web.bcrypt-max-cost", default_value_t = onprem_agent_exporter::web::config::DEFAULT_MAX_BCRYPT_COST, value_parser = clap::value_parser!(u32).range(4..=31))]
    bcrypt_max_cost: u32,
    /// Allow POST and DELETE on /api/v1/silences, which mute and unmute alerts. Without it they answer 403. Set
    /// basic_auth_users in --web.config.file too, or anyone who reaches the port can silence every alert.
    #[arg(long = "web.enable-admin-api")]
    enable_admin_api: bool,
}

impl WebArgs {
    /// Loads the web config (if any) and builds the TLS state, naming the file in every error.
    pub fn load(&self) -> anyhow::Result<Web> {
        let config = match &self.web_config_file {
            Some(path) => WebConfig::load_with(path, self.bcrypt_max_cost)?,
            None => WebConfig::default(),
        };
        Ok(Web::new(config, self.limits())?.with_admin_api(self.enable_admin_api))
    }

    fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections as usize,
            max_connections_per_address: self.max_connections_per_address as usize,
            header_read_timeout: self.header_timeout,
            ..Limits::default()
        }
    }
}

pub fn parse_header_timeout(s: &str) -> Result<std::time::Duration, String> {
    parse_bounded(s, "100ms", "1h")
}

/// A duration flag between `min` and `max`, so that no value on the command line can make a timer panic (a zero
/// period) or overflow an `Instant` (an absurd one). Flags take durations the way the config file does
/// ([`config::parse::duration`](onprem_agent_exporter::config::parse::duration): `ms`, `s`, `m`, `h`, `d`, `w`), with the same
/// messages; the message of a value out of bounds names both bounds.
pub fn parse_bounded(s: &str, min: &str, max: &str) -> Result<std::time::Duration, String> {
    let bound = |b: &str| {
        onprem_agent_exporter::config::parse::duration(b).expect("the bounds are valid durations")
    };
    let d = onprem_agent_exporter::config::parse::duration(s)
        .map_err(|e| format!("{e}; expected a duration from {min} to {max}"))?;
    if d < bound(min) || d > bound(max) {
        return Err(format!("must be from {min} to {max}"));
    }
    Ok(d)
}

pub fn parse_healthcheck_timeout(s: &str) -> Result<std::time::Duration, String> {
    parse_bounded(s, "100ms", "10m")
}

/// One line naming the sources whose poll failed (each failure's cause is in its own log line above), then `tail`.
pub fn failed_sources<E>(failures: &[(String, E)], tail: &str) -> String {
    let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
    format!(
        "{} of the sources failed ({}){tail}; see the warnings above for why",
        names.len(),
        names.join(", ")
    )
}

/// A token cancelled on SIGINT or SIGTERM: every long-running task watches it.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received; shutting down"),
            _ = term => tracing::info!("SIGTERM received; shutting down"),
        }
        cancel.cancel();
    });
    token
}
