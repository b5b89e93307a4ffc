//! The generic source: any vendor's agent list, described in the config's `generic` block (see
//! [`crate::config::generic`]), read with the same HTTP mechanics as the built-in providers ([`super::http`]: the auth
//! header, retries, `Retry-After`, timeouts, the body and page caps, same-origin redirects and `next` links).
//!
//! Only the mapped fields of a record are read. The page is walked once by serde_json along the configured dotted
//! paths (a trie of them, [`Plan`]): a key on no path is skipped as [`IgnoredAny`], checked as JSON but never copied,
//! so a record's secrets, and anything else it carries, never reach memory or a log. Recursion follows only the
//! configured paths (at most [`MAX_PATH_SEGMENTS`] deep); everything else, however deeply nested, is skipped without
//! recursing, as in the built-in sources. Strings are cut as theirs are ([`MAX_STRING_BYTES`]), label values shorter
//! still ([`MAX_LABEL_VALUE_BYTES`]). A page that does not decode in one pass (a byte that is not UTF-8, a value
//! serde_json refuses) is taken apart and read record by record, so one bad record costs only itself.
//!
//! Timestamps (`heartbeat`, `token_rotated_at`, `created_at`) are RFC 3339 text, or a number (or a string of digits)
//! of seconds since the Unix epoch, or of milliseconds when its magnitude is at least [`MILLISECONDS_FROM`] (1e11:
//! as seconds that is the year 5138, as milliseconds March 1973, so no real instant is ambiguous). A value that is
//! neither drops only that field, and is never echoed.
//!
//! [`MAX_PATH_SEGMENTS`]: crate::config::generic::MAX_PATH_SEGMENTS
//! [`IgnoredAny`]: serde::de::IgnoredAny
//! [`MAX_STRING_BYTES`]: crate::sources::record::MAX_STRING_BYTES

mod page;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::HeaderName;
use url::Url;

use crate::config::generic::{GenericConfig, Pagination};
use crate::config::sources::SourceConfig;
use crate::domain::{Agent, Provider};
use crate::sources::http::{Auth, display_url, next_link};
use crate::sources::{Account, BoxFuture, PollOutcome, PollStats, Source, UpstreamError};

pub use page::{MAX_LABEL_VALUE_BYTES, MILLISECONDS_FROM, PageRead, Plan, read_page, timestamp};

/// One generic source.
#[derive(Debug)]
pub struct GenericSource {
    /// Name, first page (`{base_url}{path}?{query}`), page cap and HTTP client.
    account: Account,
    /// The `provider` label.
    provider: Provider,
    /// The validated `generic` block.
    config: Arc<GenericConfig>,
    /// The field paths as a trie, built once.
    plan: Arc<Plan>,
}

impl GenericSource {
    /// Builds the source from its validated configuration. Fails if the HTTP client cannot be built, or for a
    /// configuration that did not come through validation (no `generic` block, an invalid header name).
    pub fn new(config: SourceConfig) -> Result<GenericSource, GenericBuildError> {
        let generic = config.generic.clone().ok_or(GenericBuildError::NoBlock)?;
        let header = HeaderName::from_bytes(generic.auth_header.as_bytes())
            .map_err(|_| GenericBuildError::Header)?;
        let auth = Auth::Prefixed(header, generic.auth_prefix.clone(), config.token.clone());
        let first = first_page(&config.base_url, &generic);
        Ok(GenericSource {
            account: Account::new(&config, auth, first)?,
            provider: Provider::Generic(generic.provider_label),
            plan: Arc::new(Plan::new(&generic)),
            config: generic,
        })
    }

    /// Replaces the first backoff delay of the retry policy (250 ms by default). Tests set it to a millisecond.
    pub fn with_backoff_base(mut self, base: Duration) -> GenericSource {
        self.account.set_backoff_base(base);
        self
    }

    /// One complete poll: every page, or the first error.
    async fn poll_all(&self) -> Result<PollOutcome, UpstreamError> {
        let mut stats = PollStats::default();
        let mut pager = self.account.pager();
        let mut agents: Vec<Agent> = Vec::new();
        let mut next = Some(self.account.first_page.clone());
        while let Some(url) = next.take() {
            // Assumed: a 204 means "no (more) agents", as for the built-in providers.
            let Some(page) = self.account.http.page(&mut pager, &url, &mut stats).await? else {
                break;
            };
            let link = match self.config.pagination {
                Pagination::Link => {
                    next_link(&page.headers, &page.url).map_err(|e| e.at(&page.url))?
                }
                _ => None,
            };
            let (plan, config, account) = (
                self.plan.clone(),
                self.config.clone(),
                self.account.name.clone(),
            );
            // Decoded on the blocking pool, as the built-in sources do; the list moves in and back.
            let decoding = tokio::task::spawn_blocking(move || {
                let result =
                    read_page(&page.body, &page.url, &account, &plan, &config, &mut agents);
                (agents, result)
            });
            let (list, result) = decoding.await.map_err(|_| UpstreamError::Decode {
                url: display_url(&url),
                message: "the decoding task stopped before it finished".to_string(),
            })?;
            agents = list;
            let read = result?;
            stats.invalid_records += read.skipped;
            next = match &self.config.pagination {
                Pagination::Link => link,
                Pagination::Cursor { param, .. } => read
                    .cursor
                    .map(|cursor| with_param(&self.account.first_page, param, &cursor)),
                Pagination::None => None,
            };
        }
        if let Some(after) = self.config.offline_after {
            let now = Timestamp::now();
            for agent in &mut agents {
                let recent = agent
                    .last_heartbeat
                    .is_some_and(|t| now.duration_since(t).as_secs_f64() <= after.as_secs_f64());
                agent.offline = agent.offline || !recent;
            }
        }
        Ok(PollOutcome { agents, stats })
    }
}

impl Source for GenericSource {
    fn name(&self) -> &str {
        &self.account.name
    }

    fn provider(&self) -> Provider {
        self.provider
    }

    fn poll(&self) -> BoxFuture<'_, Result<PollOutcome, UpstreamError>> {
        Box::pin(self.poll_all())
    }

    fn not_before(&self) -> Option<jiff::Timestamp> {
        self.account.http.not_before()
    }
}

/// Why a generic source could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GenericBuildError {
    /// The configuration has no `generic` block (validation makes this impossible for a loaded config).
    #[error("provider generic needs a generic block")]
    NoBlock,
    /// The auth header name is not valid (validation makes this impossible for a loaded config).
    #[error("generic.auth.header is not an HTTP header name")]
    Header,
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] reqwest::Error),
}

/// `{base_url}{path}`, keeping the base's own path (a proxy prefix) and query, then the configured query parameters.
fn first_page(base: &Url, config: &GenericConfig) -> Url {
    let mut url = base.clone();
    url.set_fragment(None);
    if !config.path.is_empty() {
        let joined = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            config.path.trim_start_matches('/')
        );
        url.set_path(&joined);
    }
    if !config.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&config.query);
    }
    url
}

/// `first` with `param=value`, any earlier value of `param` removed: the same filters, the next position.
fn with_param(first: &Url, param: &str, value: &str) -> Url {
    let mut url = first.clone();
    let kept: Vec<(String, String)> = first
        .query_pairs()
        .filter(|(k, _)| k != param)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    url.query_pairs_mut()
        .extend_pairs(kept)
        .append_pair(param, value);
    url
}

#[cfg(test)]
mod tests;
