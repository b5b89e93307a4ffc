//! The YAML configuration: parsed into raw types that reject unknown keys, then validated into the types the rest of
//! the program uses (socket addresses, URLs, durations, loaded secrets).
//!
//! Every error names the file, the line and the key path (`sources[1].poll_interval`), and the bad value where
//! showing it is safe. Secrets are read from files or the environment at load time and never from the command line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

use crate::model::Provider;

/// The default `listen_address`: every interface, port 9877.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9877";

/// A configuration that failed to load. `Display` names the file, line and key path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file itself could not be read.
    #[error("{file}: cannot read config file: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key, or a value of the wrong type.
    #[error("{file}:{line}: {key}: {message}")]
    Syntax {
        file: PathBuf,
        line: u64,
        key: String,
        message: String,
    },
    /// The YAML parsed but a value is not acceptable.
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        file: PathBuf,
        line: u64,
        key: String,
        message: String,
    },
}

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
    pub alerting: Option<crate::rules::AlertingConfig>,
    /// Scheduled reports; they are mailed through `alerting.email`.
    pub reports: crate::notify::config::ReportsConfig,
}

/// One upstream account, validated.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name; the `account` label.
    pub name: String,
    /// Which API this is.
    pub provider: Provider,
    /// The API root, without a trailing path (`https://api.integrator.io`).
    pub base_url: Url,
    /// The API key. Never logged, never displayed (`SecretString` redacts `Debug`).
    pub token: SecretString,
    /// Time between the starts of two polls.
    pub poll_interval: Duration,
    /// Time limit for one HTTP request, body included.
    pub request_timeout: Duration,
    /// The most pages one poll may fetch before it fails with `page_limit`.
    pub max_pages: u32,
    /// The largest response body accepted, bytes; larger fails with `body_too_large`.
    pub max_body_bytes: u64,
    /// The page size asked for (`limit`), or `None` to let the server choose.
    pub page_size: Option<u32>,
    /// Attempts per request for 429, 5xx, timeouts and connection errors (1 means no retry).
    pub max_attempts: u32,
    /// The longest `Retry-After` honoured; a longer one is capped so one poll cannot stall for hours.
    pub max_retry_after: Duration,
    /// Planasonix only: also call `/api/agents/{id}/health` for each agent.
    pub health: bool,
    /// Planasonix only: how many health calls run at once.
    pub health_concurrency: usize,
    /// Calyptia only: the project id; read from the token when absent.
    pub project_id: Option<String>,
}

impl SourceConfig {
    /// A source with every tunable at its default, for tests and the demo.
    pub fn new(name: &str, provider: Provider, base_url: Url, token: SecretString) -> SourceConfig {
        SourceConfig {
            name: name.to_string(),
            provider,
            base_url,
            token,
            poll_interval: Duration::from_secs(60),
            request_timeout: Duration::from_secs(15),
            max_pages: 1000,
            max_body_bytes: 32 * 1024 * 1024,
            page_size: None,
            max_attempts: 5,
            max_retry_after: Duration::from_secs(60),
            health: false,
            health_concurrency: 4,
            project_id: None,
        }
    }
}

/// Resolves a path written in the config file `file`: relative paths are taken relative to the config file's
/// folder, so a config and its secrets can move together; absolute paths are returned as they are.
pub fn resolve_path(file: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// The `region` key of a Celigo source.
const REGIONS: &[(&str, &str)] = &[
    ("us", "https://api.integrator.io"),
    ("eu", "https://api.eu.integrator.io"),
];

/// The vendor's API root for providers that have a single region.
fn default_base_url(provider: Provider) -> &'static str {
    match provider {
        Provider::Celigo => REGIONS[0].1,
        Provider::Planasonix => "https://api.planasonix.com",
        Provider::Calyptia => "https://cloud-api.calyptia.com",
    }
}

/// The file as written. Values that need a line number in later validation are `Spanned`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen_address: Option<Spanned<String>>,
    #[serde(default)]
    sources: Vec<Spanned<RawSource>>,
    alerting: Option<Spanned<crate::rules::RawAlerting>>,
    #[serde(default)]
    reports: crate::notify::config::RawReports,
}

/// One `sources[]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Spanned<String>,
    provider: Spanned<String>,
    region: Option<Spanned<String>>,
    base_url: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
    poll_interval: Option<Spanned<String>>,
    request_timeout: Option<Spanned<String>>,
    max_pages: Option<Spanned<u32>>,
    max_body_bytes: Option<Spanned<u64>>,
    page_size: Option<Spanned<u32>>,
    max_attempts: Option<Spanned<u32>>,
    max_retry_after: Option<Spanned<String>>,
    health: Option<bool>,
    health_concurrency: Option<Spanned<usize>>,
    project_id: Option<Spanned<String>>,
}

/// Builds [`ConfigError::Invalid`] values for one config file and parses the value kinds every section shares, so
/// that each section's validation reports errors (and durations) the same way.
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    /// The config file the errors are about.
    pub file: &'a Path,
}

impl Located<'_> {
    /// An error at `line` of the file, about the value at key path `key`.
    pub fn at(&self, line: u64, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            line,
            key: key.into(),
            message: message.into(),
        }
    }

    /// Parses a duration such as `30s`, `5m`, `1h30m` or `90d`. Zero is accepted; callers that need more say so.
    pub fn duration(&self, raw: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
        humantime::parse_duration(raw.value.trim()).map_err(|e| {
            self.at(
                raw.referenced.line(),
                key,
                format!(
                    "invalid duration {:?}: {e} (write for example 30s, 5m, 4h or 90d)",
                    raw.value
                ),
            )
        })
    }

    /// [`Located::duration`] of an optional value, `default` when it is absent.
    pub fn opt_duration(
        &self,
        raw: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match raw {
            Some(r) => self.duration(r, key),
            None => Ok(default),
        }
    }

    /// Resolves a path written in this file (see [`resolve_path`]).
    fn resolve(&self, path: &str) -> PathBuf {
        resolve_path(self.file, Path::new(path))
    }

    /// A source timing: a duration that must be greater than zero.
    fn positive_duration(
        &self,
        value: &Option<Spanned<String>>,
        key: String,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = self.opt_duration(value, &key, default)?;
        match value {
            Some(v) if d.is_zero() => {
                Err(self.at(v.referenced.line(), key, "must be greater than zero"))
            }
            _ => Ok(d),
        }
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`, loading every source's token.
    ///
    /// Tokens come from `token_file` (trailing newline trimmed) or the environment variable named by `token_env`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
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
            Some(v) => v.value.trim().parse::<SocketAddr>().map_err(|_| {
                ctx.at(
                    v.referenced.line(),
                    "listen_address",
                    format!("invalid listen address {:?}: expected HOST:PORT with an IP, e.g. 0.0.0.0:9877", v.value),
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
            let line = entry.value.name.referenced.line();
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
        if let (Some(line), None) = (report_line, alerting_line) {
            return Err(ctx.at(
                line,
                "reports.token_compliance",
                "a scheduled report is mailed through alerting.email, but there is no alerting section",
            ));
        }
        Ok(Config {
            path: file.to_path_buf(),
            listen_address,
            sources,
            alerting,
            reports,
        })
    }
}

/// Deserializes `text`, turning serde errors into [`ConfigError::Syntax`] with the key path that failed.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
) -> Result<T, ConfigError> {
    let mut path = String::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            // `Spanned` wraps each value in a `value` field; that is our plumbing, not a key the user wrote.
            path = e
                .path()
                .to_string()
                .split('.')
                .filter(|seg| *seg != "value")
                .collect::<Vec<_>>()
                .join(".");
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(0);
        let plain = e.without_snippet().to_string();
        // The plain message ends in " at line N, column M"; the line is reported separately.
        let message = match plain.rfind(" at line ") {
            Some(i) => plain[..i].to_string(),
            None => plain,
        };
        ConfigError::Syntax {
            file: file.to_path_buf(),
            line,
            key: if path.is_empty() || path == "." {
                "(top level)".to_string()
            } else {
                path
            },
            message,
        }
    })
}

fn validate_source(
    ctx: &Located<'_>,
    key: &str,
    raw: &RawSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SourceConfig, ConfigError> {
    let line = raw.name.referenced.line();
    let name = raw.name.value.trim().to_string();
    if name.is_empty() {
        return Err(ctx.at(line, format!("{key}.name"), "must not be empty"));
    }
    let provider = match raw.provider.value.trim() {
        "celigo" => Provider::Celigo,
        "planasonix" => Provider::Planasonix,
        "calyptia" => Provider::Calyptia,
        other => {
            return Err(ctx.at(
                raw.provider.referenced.line(),
                format!("{key}.provider"),
                format!("unknown provider {other:?}; expected one of celigo, planasonix, calyptia"),
            ));
        }
    };
    let mut base = default_base_url(provider).to_string();
    if let Some(region) = &raw.region {
        if provider != Provider::Celigo {
            return Err(ctx.at(
                region.referenced.line(),
                format!("{key}.region"),
                format!("region applies only to provider celigo, not {provider}"),
            ));
        }
        match REGIONS.iter().find(|(r, _)| *r == region.value.trim()) {
            Some((_, url)) => base = url.to_string(),
            None => {
                return Err(ctx.at(
                    region.referenced.line(),
                    format!("{key}.region"),
                    format!("unknown region {:?}; expected us or eu", region.value),
                ));
            }
        }
    }
    if let Some(url) = &raw.base_url {
        base = url.value.trim().to_string();
    }
    let url_line = raw.base_url.as_ref().map_or(line, |u| u.referenced.line());
    let base_url = Url::parse(&base).map_err(|e| {
        ctx.at(
            url_line,
            format!("{key}.base_url"),
            format!("invalid URL {base:?}: {e}"),
        )
    })?;
    if !matches!(base_url.scheme(), "http" | "https") || base_url.host().is_none() {
        return Err(ctx.at(
            url_line,
            format!("{key}.base_url"),
            format!("invalid URL {base:?}: expected an http:// or https:// URL with a host"),
        ));
    }
    if !base_url.username().is_empty() || base_url.password().is_some() {
        return Err(ctx.at(
            url_line,
            format!("{key}.base_url"),
            "credentials do not belong in the URL; use token_file or token_env",
        ));
    }
    let token = match (&raw.token_file, &raw.token_env) {
        (Some(_), Some(env_key)) => {
            return Err(ctx.at(
                env_key.referenced.line(),
                format!("{key}.token_env"),
                "token_file and token_env are both set; set exactly one",
            ));
        }
        (None, None) => {
            return Err(ctx.at(
                line,
                key.to_string(),
                "no API token: set token_file (a path) or token_env (a variable name)",
            ));
        }
        (Some(f), None) => {
            let path = ctx.resolve(f.value.trim());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ctx.at(
                    f.referenced.line(),
                    format!("{key}.token_file"),
                    format!("cannot read token file {:?}: {e}", f.value),
                )
            })?;
            let t = text.trim();
            if t.is_empty() {
                return Err(ctx.at(
                    f.referenced.line(),
                    format!("{key}.token_file"),
                    format!("token file {:?} is empty", f.value),
                ));
            }
            t.to_string()
        }
        (None, Some(v)) => match env(v.value.trim()) {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                return Err(ctx.at(
                    v.referenced.line(),
                    format!("{key}.token_env"),
                    format!("environment variable {:?} is not set or empty", v.value),
                ));
            }
        },
    };
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        // Such a token cannot be sent in an HTTP header; say so now rather than failing every poll.
        let (l, k) = match (&raw.token_file, &raw.token_env) {
            (Some(f), _) => (f.referenced.line(), "token_file"),
            (_, Some(e)) => (e.referenced.line(), "token_env"),
            _ => (line, "token_file"),
        };
        return Err(ctx.at(
            l,
            format!("{key}.{k}"),
            "the token contains spaces or control characters",
        ));
    }
    let mut cfg = SourceConfig::new(&name, provider, base_url, SecretString::from(token));
    cfg.poll_interval = ctx.positive_duration(
        &raw.poll_interval,
        format!("{key}.poll_interval"),
        cfg.poll_interval,
    )?;
    cfg.request_timeout = ctx.positive_duration(
        &raw.request_timeout,
        format!("{key}.request_timeout"),
        cfg.request_timeout,
    )?;
    cfg.max_retry_after = ctx.positive_duration(
        &raw.max_retry_after,
        format!("{key}.max_retry_after"),
        cfg.max_retry_after,
    )?;
    let positive =
        |v: &Option<Spanned<u32>>, field: &str, default: u32| -> Result<u32, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) if s.value == 0 => Err(ctx.at(
                    s.referenced.line(),
                    format!("{key}.{field}"),
                    "must be at least 1",
                )),
                Some(s) => Ok(s.value),
            }
        };
    cfg.max_pages = positive(&raw.max_pages, "max_pages", cfg.max_pages)?;
    cfg.max_attempts = positive(&raw.max_attempts, "max_attempts", cfg.max_attempts)?;
    if let Some(p) = &raw.page_size {
        cfg.page_size = Some(positive(&Some(p.clone()), "page_size", 0)?);
    }
    if let Some(b) = &raw.max_body_bytes {
        if b.value < 1024 {
            return Err(ctx.at(
                b.referenced.line(),
                format!("{key}.max_body_bytes"),
                "must be at least 1024",
            ));
        }
        cfg.max_body_bytes = b.value;
    }
    if let Some(h) = raw.health {
        if provider != Provider::Planasonix && h {
            return Err(ctx.at(
                line,
                format!("{key}.health"),
                format!("health polling exists only for provider planasonix, not {provider}"),
            ));
        }
        cfg.health = h;
    }
    if let Some(c) = &raw.health_concurrency {
        if c.value == 0 || c.value > 64 {
            return Err(ctx.at(
                c.referenced.line(),
                format!("{key}.health_concurrency"),
                "must be between 1 and 64",
            ));
        }
        cfg.health_concurrency = c.value;
    }
    if let Some(p) = &raw.project_id {
        if provider != Provider::Calyptia {
            return Err(ctx.at(
                p.referenced.line(),
                format!("{key}.project_id"),
                format!("project_id applies only to provider calyptia, not {provider}"),
            ));
        }
        cfg.project_id = Some(p.value.trim().to_string());
    }
    if cfg.request_timeout > cfg.poll_interval {
        let l = raw
            .request_timeout
            .as_ref()
            .map_or(line, |v| v.referenced.line());
        return Err(ctx.at(
            l,
            format!("{key}.request_timeout"),
            format!(
                "request_timeout ({}) is longer than poll_interval ({}); a poll could never finish in time",
                humantime::format_duration(cfg.request_timeout),
                humantime::format_duration(cfg.poll_interval)
            ),
        ));
    }
    Ok(cfg)
}
