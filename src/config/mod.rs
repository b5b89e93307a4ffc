//! The YAML configuration: parsed into raw types that reject unknown keys, then validated into the types the rest of
//! the program uses (socket addresses, URLs, durations, loaded secrets).
//!
//! Every error names the file, the line and the key path (`sources[1].poll_interval`), and the bad value where
//! showing it is safe. Secrets are read from files or the environment at load time and never from the command line.
//!
//! One file per YAML section, all built on the leaf [`parse`] (errors, [`Located`], paths, durations):
//!
//! - [`sources`]: `sources[]`, the upstream accounts.
//! - [`generic`]: `sources[].generic`, an agent list of any vendor described in the config.
//! - [`alerting`]: `alerting`, the rule engine's settings (rules, overrides, mute windows, routes, timings).
//! - [`alertmanagers`]: `alerting.alertmanagers`, the Alertmanagers alerts are pushed to.
//! - [`email`]: `alerting.email`, the SMTP server and default recipients.
//! - [`receivers`]: `alerting.receivers`, the Slack, Teams, PagerDuty and webhook destinations.
//! - [`silences`]: `alerting.silences`, the caps on silences made through the API.
//! - [`reports`]: `reports`, the scheduled token-age compliance report and its token policy.
//! - [`placeholders`]: the examples' placeholder values left in a config, for `check-config`'s warnings.
//! - [`secret_file`]: reading a credential file (`token_file`, `password_file`) safely, and wording its errors.
//!
//! This file holds the root ([`Config`]) and the checks that span sections. The sections never import it back.

pub mod alerting;
pub mod alertmanagers;
pub mod email;
pub mod generic;
pub mod parse;
pub mod placeholders;
pub mod receivers;
pub mod reports;
pub mod secret_file;
pub mod silences;
pub mod sources;
pub mod yaml_tree;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

pub use parse::{ConfigError, Located, resolve_path};

use alerting::{AlertingConfig, RawAlerting};
use parse::parse_yaml;
use reports::{RawReports, ReportsConfig};
use sources::{RawSource, SourceConfig, validate_source};

/// The default `listen_address`: every interface, port 9877.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9877";

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Where the config came from, for messages.
    pub path: PathBuf,
    /// Where the HTTP server listens.
    pub listen_address: SocketAddr,
    /// Every upstream account, in file order. Names are unique.
    pub sources: Vec<SourceConfig>,
    /// The rule engine and email settings; `None` runs a plain exporter with no alerting.
    pub alerting: Option<AlertingConfig>,
    /// Scheduled reports; they are mailed through `alerting.email`.
    pub reports: ReportsConfig,
    /// Which sources this replica owns; set from `--shard`, not from the file ([`crate::domain::Shard::ALL`] after
    /// loading).
    pub shard: crate::domain::Shard,
}

/// The file as written. Values that need a line number in later validation are `Spanned`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen_address: Option<Spanned<String>>,
    #[serde(default)]
    sources: Vec<Spanned<RawSource>>,
    alerting: Option<Spanned<RawAlerting>>,
    #[serde(default)]
    reports: RawReports,
}

impl Config {
    /// Reads, parses and validates the file at `path`, loading every source's token.
    ///
    /// Tokens come from `token_file` (trailing newline trimmed) or the environment variable named by `token_env`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            // The resolved path: "not found" for a relative path leaves the reader guessing from where.
            file: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            source,
        })?;
        Config::parse(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses and validates `text` as if read from `file`; `env` looks up environment variables (injectable so
    /// tests need not touch the process environment).
    pub fn parse(
        text: &str,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw = parse_yaml::<RawConfig>(text, file)?;
        let ctx = Located { file };
        let listen_address = match &raw.listen_address {
            None => DEFAULT_LISTEN.parse().expect("the default listen address is valid"),
            // `:9877`, the usual exporter spelling, means every interface.
            Some(v) => match v.value.trim() {
                port if port.starts_with(':') => format!("0.0.0.0{port}"),
                other => other.to_string(),
            }
            .parse::<SocketAddr>()
            .map_err(|_| {
                ctx.at(
                    v.referenced.line(),
                    "listen_address",
                    format!("invalid listen address {:?}: expected IP:PORT or :PORT, e.g. 0.0.0.0:9877 or :9877", v.value),
                )
            })?,
        };
        if raw.sources.is_empty() {
            return Err(ctx.at(1, "sources", "at least one source is required"));
        }
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut sources = Vec::with_capacity(raw.sources.len());
        for (i, entry) in raw.sources.iter().enumerate() {
            let key = format!("sources[{i}]");
            let src = validate_source(&ctx, &key, &entry.value, env)?;
            let line = entry.value.line();
            if let Some(first) = seen.insert(src.name.clone(), line) {
                return Err(ctx.at(
                    line,
                    format!("{key}.name"),
                    format!("duplicate source name {:?} (first used at line {first}); names must be unique", src.name),
                ));
            }
            sources.push(src);
        }
        let alerting_line = raw.alerting.as_ref().map(|a| a.referenced.line());
        let alerting = match raw.alerting {
            None => None,
            Some(a) => {
                let a = a.value.validate(file, "alerting")?;
                a.check_sources(file, "alerting", sources.iter().map(|s| s.name.as_str()))?;
                Some(a)
            }
        };
        let report_line = raw
            .reports
            .token_compliance
            .as_ref()
            .map(|t| t.referenced.line());
        let reports = raw.reports.validate(file, "reports")?;
        let has_email = alerting.as_ref().is_some_and(|a| a.email.is_some());
        if let (Some(line), Some(_), false) = (report_line, alerting_line, has_email) {
            return Err(ctx.at(
                line,
                "reports.token_compliance",
                "a scheduled report is mailed through alerting.email, but alerting has no email section",
            ));
        }
        if let (Some(line), None) = (report_line, alerting_line) {
            return Err(ctx.at(
                line,
                "reports.token_compliance",
                "a scheduled report is mailed through alerting.email, but there is no alerting section",
            ));
        }
        if let (Some(line), Some(a)) = (report_line, &alerting)
            && a.email.is_none()
        {
            return Err(ctx.at(
                line,
                "reports.token_compliance",
                "a scheduled report is mailed through alerting.email, but alerting has no email section",
            ));
        }
        Ok(Config {
            path: file.to_path_buf(),
            listen_address,
            sources,
            alerting,
            reports,
            shard: crate::domain::Shard::ALL,
        })
    }
}
