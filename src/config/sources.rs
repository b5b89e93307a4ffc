//! The `sources` section: one upstream account per entry (provider, API root, token, timings and limits), validated
//! into [`SourceConfig`] with its token already read from a file or the environment.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

use crate::config::generic::{self, GenericConfig, RawGeneric};
use crate::config::parse::{ConfigError, Located};
use crate::config::secret_file::{self, SecretFileError, read_secret_file};
use crate::domain::Provider;

/// The longest a request may take when `request_timeout` is not written, unless `poll_interval` is shorter (then the
/// interval): a poll must be able to finish before the next one starts.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The shortest `poll_interval` accepted.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The longest `poll_interval` accepted.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(86_400);

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
    /// Generic only: where the agent list is and how to read it. Shared, because a source config is cloned.
    pub generic: Option<Arc<GenericConfig>>,
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
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_pages: 1000,
            max_body_bytes: 32 * 1024 * 1024,
            page_size: None,
            max_attempts: 5,
            max_retry_after: Duration::from_secs(60),
            health: false,
            health_concurrency: 4,
            project_id: None,
            generic: None,
        }
    }
}

/// The `region` key of a Celigo source.
const REGIONS: &[(&str, &str)] = &[
    ("us", "https://api.integrator.io"),
    ("eu", "https://api.eu.integrator.io"),
];

/// The vendor's API root for providers that have a single region; `None` for a generic source, whose `base_url`
/// must be written.
fn default_base_url(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Celigo => Some(REGIONS[0].1),
        Provider::Planasonix => Some("https://api.planasonix.com"),
        Provider::Calyptia => Some("https://cloud-api.calyptia.com"),
        Provider::Generic(_) => None,
    }
}

/// One `sources[]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    name: Spanned<String>,
    provider: Spanned<String>,
    region: Option<Spanned<String>>,
    base_url: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
    /// Read only to refuse it with a sentence of its own: an inline token would sit in the config file, in backups
    /// and in diffs. Its value is skipped unread.
    token: Option<Spanned<serde::de::IgnoredAny>>,
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
    generic: Option<Spanned<RawGeneric>>,
}

impl RawSource {
    /// The line of the entry's `name`, where messages about the entry as a whole point.
    pub fn line(&self) -> u64 {
        self.name.referenced.line()
    }
}

/// Validates the `sources[]` entry at key path `key` (`sources[0]`) and reads its token from its file or from the
/// environment through `env`: the keys every provider shares here, then the provider's own keys in one function per
/// provider, then the timings and limits.
pub fn validate_source(
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
        // The label is replaced by the block's `provider_label` below.
        "generic" => Provider::Generic(crate::domain::Label::new("generic")),
        other => {
            return Err(ctx.at(
                raw.provider.referenced.line(),
                format!("{key}.provider"),
                format!(
                    "unknown provider {other:?}; expected one of celigo, planasonix, calyptia, generic"
                ),
            ));
        }
    };
    let kind = raw.provider.value.trim();
    let only = |present: Option<u64>, field: &str, owner: &str| match present {
        Some(l) if kind != owner => Err(ctx.at(
            l,
            format!("{key}.{field}"),
            format!("{field} applies only to provider {owner}, not {kind}"),
        )),
        _ => Ok(()),
    };
    only(
        raw.region.as_ref().map(|r| r.referenced.line()),
        "region",
        "celigo",
    )?;
    only(
        raw.health.and_then(|h| h.then_some(line)),
        "health",
        "planasonix",
    )?;
    only(
        raw.project_id.as_ref().map(|p| p.referenced.line()),
        "project_id",
        "calyptia",
    )?;
    only(
        raw.generic.as_ref().map(|g| g.referenced.line()),
        "generic",
        "generic",
    )?;
    let base_url = base_url(ctx, key, raw, provider)?;
    let token = read_token(ctx, key, raw, env)?;
    if base_url.scheme() == "http" && !is_loopback(&base_url) {
        tracing::warn!(
            source = %name,
            key = %format!("{key}.base_url"),
            "base_url uses http:// to a host other than loopback: the API token will cross the network in the clear"
        );
    }
    let mut cfg = SourceConfig::new(&name, provider, base_url, token);
    // The keys of one provider only; the others were refused above.
    match provider {
        Provider::Celigo => {}
        Provider::Planasonix => cfg.health = raw.health.unwrap_or(false),
        Provider::Calyptia => {
            cfg.project_id = raw.project_id.as_ref().map(|p| p.value.trim().to_string());
        }
        Provider::Generic(_) => generic_settings(ctx, key, raw, &mut cfg)?,
    }
    timings_and_limits(ctx, key, raw, &mut cfg)?;
    Ok(cfg)
}

/// The API root: `base_url` when written, else the vendor's (Celigo's by `region`). A generic source has no default.
fn base_url(
    ctx: &Located<'_>,
    key: &str,
    raw: &RawSource,
    provider: Provider,
) -> Result<Url, ConfigError> {
    let line = raw.name.referenced.line();
    let mut base = default_base_url(provider).map(str::to_string);
    if let Some(region) = &raw.region {
        match REGIONS.iter().find(|(r, _)| *r == region.value.trim()) {
            Some((_, url)) => base = Some(url.to_string()),
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
        base = Some(url.value.trim().to_string());
    }
    let Some(base) = base else {
        return Err(ctx.at(
            line,
            format!("{key}.base_url"),
            format!("provider {provider} has no default API root; set base_url"),
        ));
    };
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
    Ok(base_url)
}

/// The API token, from `token_file` or the variable `token_env` names; never from the config file itself.
fn read_token(
    ctx: &Located<'_>,
    key: &str,
    raw: &RawSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretString, ConfigError> {
    let line = raw.name.referenced.line();
    if let Some(inline) = &raw.token {
        return Err(ctx.at(
            inline.referenced.line(),
            format!("{key}.token"),
            "an API token does not belong in the config file; put it in a file and name the file in token_file, \
             or in an environment variable and name the variable in token_env",
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
            let written = f.value.trim();
            let path = ctx.resolve(written);
            let fail =
                |message: String| ctx.at(f.referenced.line(), format!("{key}.token_file"), message);
            let read = read_secret_file(&path)
                .map_err(|e| fail(secret_file::describe("token_file", written, &path, &e)))?;
            secret_file::warn_if_readable_by_others(&format!("{key}.token_file"), &path, &read);
            let t = read.text.trim();
            if t.is_empty() {
                return Err(fail(secret_file::describe(
                    "token_file",
                    written,
                    &path,
                    &SecretFileError::Empty,
                )));
            }
            t.to_string()
        }
        (None, Some(v)) => {
            let name = v.value.trim();
            match env(name) {
                Some(t) if !t.trim().is_empty() => t.trim().to_string(),
                _ => {
                    let message = if secret_file::shows_as_variable_name(name) {
                        format!("environment variable {name:?} is not set or empty")
                    } else if secret_file::looks_like_token(name) {
                        "the environment variable named in token_env is not set or empty (the value itself looks \
                         like a token: token_env takes the name of a variable holding it; the value is not repeated \
                         here)"
                            .to_string()
                    } else {
                        "token_env is not an environment variable name (letters, digits and _; the value is not \
                         repeated here)"
                            .to_string()
                    };
                    return Err(ctx.at(v.referenced.line(), format!("{key}.token_env"), message));
                }
            }
        }
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
    Ok(SecretString::from(token))
}

/// A generic source's own block, which it cannot do without; `page_size` is refused because a generic list has no
/// known size parameter.
fn generic_settings(
    ctx: &Located<'_>,
    key: &str,
    raw: &RawSource,
    cfg: &mut SourceConfig,
) -> Result<(), ConfigError> {
    let Some(block) = &raw.generic else {
        return Err(ctx.at(
            raw.name.referenced.line(),
            format!("{key}.generic"),
            "provider generic needs a generic block describing the agent list (path, fields.id, fields.name, ...)",
        ));
    };
    if let Some(p) = &raw.page_size {
        return Err(ctx.at(
            p.referenced.line(),
            format!("{key}.page_size"),
            "a generic source has no known page-size parameter; ask for one in generic.query (e.g. limit: 100)",
        ));
    }
    let generic = generic::validate(ctx, &format!("{key}.generic"), block)?;
    cfg.provider = Provider::Generic(generic.provider_label);
    cfg.generic = Some(Arc::new(generic));
    Ok(())
}

/// The timings and limits every provider shares: `poll_interval`, `request_timeout`, `max_retry_after`, `max_pages`,
/// `max_attempts`, `page_size`, `health_concurrency` and `max_body_bytes`.
fn timings_and_limits(
    ctx: &Located<'_>,
    key: &str,
    raw: &RawSource,
    cfg: &mut SourceConfig,
) -> Result<(), ConfigError> {
    let line = raw.name.referenced.line();
    // At least a second: a shorter interval would hammer the vendor's API (and zero would spin). At most a day:
    // an agent list older than that is no longer monitoring, and an absurd value would overflow the timer.
    cfg.poll_interval = ctx.opt_duration_at_least(
        &raw.poll_interval,
        &format!("{key}.poll_interval"),
        cfg.poll_interval,
        MIN_POLL_INTERVAL,
    )?;
    if let Some(v) = &raw.poll_interval
        && cfg.poll_interval > MAX_POLL_INTERVAL
    {
        return Err(ctx.at(
            v.referenced.line(),
            format!("{key}.poll_interval"),
            format!(
                "{:?} is too long: must be at most {}",
                v.value,
                crate::humanize::limit(MAX_POLL_INTERVAL)
            ),
        ));
    }
    // The default follows the interval, so `poll_interval: 5s` alone is a valid config.
    cfg.request_timeout = ctx.positive_duration(
        &raw.request_timeout,
        format!("{key}.request_timeout"),
        DEFAULT_REQUEST_TIMEOUT.min(cfg.poll_interval),
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
    if cfg.request_timeout > cfg.poll_interval {
        // Only a written request_timeout can get here (the default never exceeds the interval).
        let l = raw
            .request_timeout
            .as_ref()
            .map_or(line, |v| v.referenced.line());
        return Err(ctx.at(
            l,
            format!("{key}.request_timeout"),
            format!(
                "request_timeout ({}) is longer than poll_interval ({}); a poll could never finish in time",
                crate::humanize::limit(cfg.request_timeout),
                crate::humanize::limit(cfg.poll_interval)
            ),
        ));
    }
    Ok(())
}

/// Returns true if and only if `url`'s host is this machine: `localhost` (or a name under `.localhost`), an address
/// in 127.0.0.0/8, or `::1`. Only there may a credential travel without TLS.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
