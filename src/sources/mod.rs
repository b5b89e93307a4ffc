//! Upstream clients, one file per provider behind the [`Source`] trait.
//!
//! A source performs one complete poll of its account and returns either every agent or an [`UpstreamError`]; it
//! never returns a partial list. Shared HTTP mechanics (auth header, retries, `Retry-After`, body cap, pagination
//! loop detection) live in [`http`] and lenient record decoding (through serde_json) in [`record`], so each provider
//! file only knows its own URLs and JSON. [`generic`] reads any vendor's list the way its configuration describes.

pub mod calyptia;
pub mod celigo;
pub mod generic;
pub mod http;
pub mod planasonix;
pub mod record;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use url::Url;

use crate::config::sources::SourceConfig;
use crate::domain::{Agent, Provider};
use crate::sources::http::{Auth, HttpClient, Pager, display_url, next_link};

/// Why a poll failed, or why a record was skipped. Each becomes a `reason` label value of
/// `onprem_agent_source_errors_total`, so the set is closed and the strings are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorReason {
    /// 401 or 403: the API key is missing, wrong or revoked.
    Unauthorized,
    /// 429 on every attempt, even after honouring `Retry-After`.
    RateLimited,
    /// 5xx on every attempt.
    Http5xx,
    /// Any other unexpected status (400, 404, ...).
    Http4xx,
    /// The request or the body read timed out.
    Timeout,
    /// The connection could not be made (DNS, refused, TLS).
    Connect,
    /// The body was not the JSON we expect.
    Decode,
    /// A page URL came back a second time.
    PaginationLoop,
    /// More pages than the configured cap.
    PageLimit,
    /// A response body was larger than the configured cap.
    BodyTooLarge,
    /// One record lacked its id or was otherwise unusable; the record was skipped, the poll went on.
    InvalidRecord,
    /// A per-agent health call failed; the agent was kept without health figures.
    Health,
    /// The whole poll failed: the upstream sent agent records and not one of them was usable (a schema change,
    /// nested junk). The last good snapshot stays.
    InvalidRecords,
}

impl ErrorReason {
    /// Every reason, in label order. Used to pre-declare counters so that `rate()` sees a zero before the first error.
    pub const ALL: [ErrorReason; 13] = [
        ErrorReason::Unauthorized,
        ErrorReason::RateLimited,
        ErrorReason::Http5xx,
        ErrorReason::Http4xx,
        ErrorReason::Timeout,
        ErrorReason::Connect,
        ErrorReason::Decode,
        ErrorReason::PaginationLoop,
        ErrorReason::PageLimit,
        ErrorReason::BodyTooLarge,
        ErrorReason::InvalidRecord,
        ErrorReason::Health,
        ErrorReason::InvalidRecords,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Unauthorized => "unauthorized",
            ErrorReason::RateLimited => "rate_limited",
            ErrorReason::Http5xx => "http_5xx",
            ErrorReason::Http4xx => "http_4xx",
            ErrorReason::Timeout => "timeout",
            ErrorReason::Connect => "connect",
            ErrorReason::Decode => "decode",
            ErrorReason::PaginationLoop => "pagination_loop",
            ErrorReason::PageLimit => "page_limit",
            ErrorReason::BodyTooLarge => "body_too_large",
            ErrorReason::InvalidRecord => "invalid_record",
            ErrorReason::Health => "health",
            ErrorReason::InvalidRecords => "invalid_records",
        }
    }
}

impl serde::Serialize for ErrorReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed poll. Messages name the URL path and status but never a credential or a response body that could
/// carry one: upstream error text is reduced to the `message`/`code` fields we parse.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// 401/403 from the auth middleware.
    #[error("{url}: unauthorized ({status}): {message}")]
    Unauthorized {
        url: String,
        status: u16,
        message: String,
    },
    /// 429 on every attempt.
    #[error("{url}: rate limited after {attempts} attempts")]
    RateLimited { url: String, attempts: u32 },
    /// 5xx on every attempt.
    #[error("{url}: server error {status} after {attempts} attempts")]
    Server {
        url: String,
        status: u16,
        attempts: u32,
    },
    /// Any other unexpected status.
    #[error("{url}: unexpected status {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    /// A timeout on every attempt.
    #[error("{url}: timed out after {attempts} attempts")]
    Timeout { url: String, attempts: u32 },
    /// A connection failure on every attempt.
    #[error("{url}: cannot connect after {attempts} attempts: {message}")]
    Connect {
        url: String,
        attempts: u32,
        message: String,
    },
    /// A body that is not the JSON we expect.
    #[error("{url}: cannot decode response: {message}")]
    Decode { url: String, message: String },
    /// A `next` link pointing at a page already fetched in this poll.
    #[error("{url}: pagination loop: this page was already fetched in this poll")]
    PaginationLoop { url: String },
    /// More pages than allowed.
    #[error("more than {cap} pages; raise max_pages if the fleet is really this large")]
    PageLimit { cap: u32 },
    /// A body over the cap.
    #[error("{url}: response body exceeds {limit} bytes")]
    BodyTooLarge { url: String, limit: u64 },
    /// A generic source's required field (or its heartbeat) that no record of a page carries: the path in the config
    /// matches nothing the upstream sends. `key` is the config key (`sources[2].generic.fields.heartbeat`), `path`
    /// the dotted path written there. Counted as `decode`.
    #[error("{url}: {key}: no record has {path:?}")]
    MissingField {
        url: String,
        key: String,
        path: String,
    },
    /// The upstream answered with agent records and none was usable: a vanished fleet, not an empty one.
    #[error(
        "none of the {invalid} agent records was usable (no id, or not decodable); keeping the last good snapshot"
    )]
    InvalidRecords { invalid: u64 },
}

impl UpstreamError {
    /// The URL the error names (as [`http::display_url`] shows it), or `None` for the page limit, which names none.
    pub fn url(&self) -> Option<&str> {
        match self {
            UpstreamError::Unauthorized { url, .. }
            | UpstreamError::RateLimited { url, .. }
            | UpstreamError::Server { url, .. }
            | UpstreamError::Status { url, .. }
            | UpstreamError::Timeout { url, .. }
            | UpstreamError::Connect { url, .. }
            | UpstreamError::Decode { url, .. }
            | UpstreamError::PaginationLoop { url }
            | UpstreamError::BodyTooLarge { url, .. }
            | UpstreamError::MissingField { url, .. } => Some(url),
            UpstreamError::PageLimit { .. } | UpstreamError::InvalidRecords { .. } => None,
        }
    }

    /// The metric reason this error counts under.
    pub fn reason(&self) -> ErrorReason {
        match self {
            UpstreamError::Unauthorized { .. } => ErrorReason::Unauthorized,
            UpstreamError::RateLimited { .. } => ErrorReason::RateLimited,
            UpstreamError::Server { .. } => ErrorReason::Http5xx,
            UpstreamError::Status { .. } => ErrorReason::Http4xx,
            UpstreamError::Timeout { .. } => ErrorReason::Timeout,
            UpstreamError::Connect { .. } => ErrorReason::Connect,
            UpstreamError::Decode { .. } | UpstreamError::MissingField { .. } => {
                ErrorReason::Decode
            }
            UpstreamError::PaginationLoop { .. } => ErrorReason::PaginationLoop,
            UpstreamError::PageLimit { .. } => ErrorReason::PageLimit,
            UpstreamError::BodyTooLarge { .. } => ErrorReason::BodyTooLarge,
            UpstreamError::InvalidRecords { .. } => ErrorReason::InvalidRecords,
        }
    }
}

/// What a successful poll returns besides the agents: figures for logs, the bench and the error counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollStats {
    /// HTTP requests made, retries included.
    pub requests: u64,
    /// Response body bytes read.
    pub bytes: u64,
    /// Pages of the agent list fetched.
    pub pages: u64,
    /// Records skipped as unusable (counted under `invalid_record`).
    pub invalid_records: u64,
    /// Per-agent health calls that failed (counted under `health`).
    pub health_failures: u64,
}

/// A successful poll: the complete agent list and its statistics.
#[derive(Debug, Clone, Default)]
pub struct PollOutcome {
    pub agents: Vec<Agent>,
    pub stats: PollStats,
}

/// Fails a poll that returned agent records of which not one was usable: the fleet did not vanish, the data did.
/// Every source passes here (the poller calls it), whatever its provider.
///
/// "Many agents" is one record: a page that holds records but no readable one is never a genuine empty fleet,
/// whether the last good snapshot had 1 agent, 30 or none yet. A genuine empty list (`204`, `[]`, zero records)
/// still empties the fleet, however large it was: that is what the platform says.
pub fn check_not_vanished(outcome: &PollOutcome) -> Result<(), UpstreamError> {
    if outcome.agents.is_empty() && outcome.stats.invalid_records > 0 {
        return Err(UpstreamError::InvalidRecords {
            invalid: outcome.stats.invalid_records,
        });
    }
    Ok(())
}

/// Keeps the first agent of each id and drops the rest, returning how many were dropped (counted under
/// `invalid_record`). An upstream that lists one id twice would otherwise give identical series in `/metrics`, which
/// Prometheus collapses, while `onprem_agent_source_agents` counted both. The order of the kept agents is unchanged.
pub fn drop_duplicate_ids(agents: &mut Vec<Agent>) -> u64 {
    let mut seen = std::collections::HashSet::with_capacity(agents.len());
    let duplicate: Vec<bool> = agents.iter().map(|a| !seen.insert(a.id.as_str())).collect();
    drop(seen);
    let dropped = duplicate.iter().filter(|d| **d).count();
    if dropped > 0 {
        let mut flags = duplicate.into_iter();
        agents.retain(|_| !flags.next().unwrap_or(false));
    }
    dropped as u64
}

/// A boxed, sendable future, so that [`Source`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One upstream account of one provider.
pub trait Source: Send + Sync {
    /// The configured source name; the `account` label.
    fn name(&self) -> &str;
    /// The provider; the `provider` label.
    fn provider(&self) -> Provider;
    /// Fetches every agent of the account. Either the whole list or an error: never a partial list.
    fn poll(&self) -> BoxFuture<'_, Result<PollOutcome, UpstreamError>>;
    /// The instant before which the upstream asked (by `Retry-After`) not to be polled again; see
    /// [`HttpClient::not_before`]. The poller skips polls until then.
    fn not_before(&self) -> Option<jiff::Timestamp> {
        None
    }
}

/// A source that could not be constructed from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be built (TLS initialisation).
    #[error("source {name}: cannot build the HTTP client: {source}")]
    Client {
        name: String,
        #[source]
        source: reqwest::Error,
    },
    /// A generic source whose configuration cannot be used (only a configuration not made by validation).
    #[error("source {name}: {source}")]
    Generic {
        name: String,
        #[source]
        source: generic::GenericBuildError,
    },
    /// A Calyptia source without `project_id` whose token carries no project id. The message describes the token's
    /// shape and never repeats it.
    #[error("source {name}: {source}")]
    ProjectId {
        name: String,
        #[source]
        source: calyptia::ProjectIdError,
    },
}

/// Builds the client for one configured source.
pub fn build(config: &SourceConfig) -> Result<Arc<dyn Source>, BuildError> {
    let name = config.name.clone();
    let client = |source| BuildError::Client {
        name: name.clone(),
        source,
    };
    match config.provider {
        Provider::Celigo => celigo::CeligoSource::new(config.clone())
            .map(|s| Arc::new(s) as Arc<dyn Source>)
            .map_err(client),
        Provider::Planasonix => planasonix::PlanasonixSource::new(config.clone())
            .map(|s| Arc::new(s) as Arc<dyn Source>)
            .map_err(client),
        Provider::Calyptia => match calyptia::CalyptiaSource::new(config.clone()) {
            Ok(s) => Ok(Arc::new(s) as Arc<dyn Source>),
            Err(calyptia::CalyptiaBuildError::Client(source)) => Err(client(source)),
            Err(calyptia::CalyptiaBuildError::ProjectId(source)) => {
                Err(BuildError::ProjectId { name, source })
            }
        },
        Provider::Generic(_) => match generic::GenericSource::new(config.clone()) {
            Ok(s) => Ok(Arc::new(s) as Arc<dyn Source>),
            Err(generic::GenericBuildError::Client(source)) => Err(client(source)),
            Err(source) => Err(BuildError::Generic { name, source }),
        },
    }
}

/// What every source holds whatever its provider: its name, the first page of its agent list, the page cap, and the
/// HTTP client that carries the auth header, the retry policy with its backoff and the body cap.
pub struct Account {
    /// The configured source name; the `account` label.
    pub(crate) name: String,
    /// The first page of the agent list, built once from the configuration.
    pub(crate) first_page: Url,
    /// The most pages one poll may fetch (`max_pages`).
    pub(crate) max_pages: u32,
    /// Shared, so that Planasonix's health calls, which run on tasks of their own, can hold it too.
    pub(crate) http: Arc<HttpClient>,
    /// How many agents the last successful poll returned: the next poll reserves room for about as many up front,
    /// instead of growing (and copying) its list page by page.
    last_count: AtomicUsize,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("first_page", &display_url(&self.first_page))
            .field("max_pages", &self.max_pages)
            .field("http", &self.http)
            .finish()
    }
}

impl Account {
    /// The account a source's configuration describes, whose list starts at `first_page`. Fails only if the HTTP
    /// client cannot be built (the TLS backend failed to initialise).
    pub(crate) fn new(
        config: &SourceConfig,
        auth: Auth,
        first_page: Url,
    ) -> Result<Account, reqwest::Error> {
        Ok(Account {
            name: config.name.clone(),
            first_page,
            max_pages: config.max_pages,
            http: Arc::new(HttpClient::new(config, auth)?),
            last_count: AtomicUsize::new(0),
        })
    }

    /// Replaces the first backoff delay of the retry policy (250 ms by default). Tests set it to a millisecond so that
    /// retries cost nothing. Only before the first poll: once a poll has shared the client, this does nothing.
    pub(crate) fn set_backoff_base(&mut self, base: Duration) {
        if let Some(http) = Arc::get_mut(&mut self.http) {
            http.set_backoff_base(base);
        }
    }

    /// A pager for one poll: no page twice, at most `max_pages`, never another origin than the first page's.
    pub(crate) fn pager(&self) -> Pager {
        Pager::new(&self.first_page, self.max_pages)
    }

    /// One complete poll of a list that is a JSON array of agent records per page, paginated by `Link: rel="next"`
    /// (Celigo and Calyptia): every page, or the first error. `decode` appends a page's agents to a list and returns
    /// how many records it skipped (see [`record::read_agents`]).
    ///
    /// Decoding a page costs more CPU than receiving it, so each page is decoded on tokio's blocking pool while the
    /// request for the next one is out (BENCHMARKS.md has the figures of decoding in line). One page is decoded at a time, so at most two bodies are held. A page that fails
    /// to decode fails the poll even if fetching the next one failed too, because it came first.
    pub(crate) async fn list_linked_pages(
        &self,
        decode: impl Fn(&[u8], &Url, &mut Vec<Agent>) -> Result<u64, UpstreamError>
        + Send
        + Sync
        + 'static,
    ) -> Result<PollOutcome, UpstreamError> {
        let decode = Arc::new(decode);
        let mut stats = PollStats::default();
        let mut pager = self.pager();
        let expected = self.last_count.load(Ordering::Relaxed);
        let mut agents = Vec::with_capacity(expected + expected / 16);
        // Assumed: a 204 means "no (more) agents": Celigo documents it for an empty account, and a 204 on a later
        // page, or from Calyptia (which answers an empty project with `[]`), is read the same way.
        let mut next = self
            .http
            .page(&mut pager, &self.first_page, &mut stats)
            .await?;
        while let Some(page) = next.take() {
            let following = next_link(&page.headers, &page.url).map_err(|e| e.at(&page.url));
            let fetch = async {
                match &following {
                    Ok(Some(url)) => self.http.page(&mut pager, url, &mut stats).await,
                    _ => Ok(None),
                }
            };
            let decode = decode.clone();
            // The list itself moves into the task and back (a pointer, not the agents), so each page is appended
            // in place instead of being decoded into a list of its own and copied over.
            let decoding = tokio::task::spawn_blocking(move || {
                let skipped = decode(&page.body, &page.url, &mut agents);
                (agents, skipped)
            });
            let (fetched, decoded) = tokio::join!(fetch, decoding);
            let (list, skipped) = decoded.map_err(|_| UpstreamError::Decode {
                url: "an agent page".to_string(),
                message: "the decoding task stopped before it finished".to_string(),
            })?;
            agents = list;
            stats.invalid_records += skipped?;
            following?;
            next = fetched?;
        }
        self.last_count.store(agents.len(), Ordering::Relaxed);
        Ok(PollOutcome { agents, stats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_poll_with_records_and_none_usable_is_a_vanished_fleet() {
        // (valid agents, invalid records, fails)
        let cases = [
            (0, 0, false),
            (0, 1, true),
            (0, 30, true),
            (1, 29, false),
            (30, 0, false),
        ];
        for (valid, invalid, fails) in cases {
            let outcome = PollOutcome {
                agents: (0..valid)
                    .map(|i| Agent::new(format!("a{i}"), "n"))
                    .collect(),
                stats: PollStats {
                    invalid_records: invalid,
                    ..PollStats::default()
                },
            };
            let got = check_not_vanished(&outcome);
            assert_eq!(
                got.is_err(),
                fails,
                "{valid} valid, {invalid} invalid: {got:?}"
            );
            if let Err(e) = got {
                assert_eq!(e.reason(), ErrorReason::InvalidRecords);
                assert_eq!(e.reason().as_str(), "invalid_records");
            }
        }
    }

    #[test]
    fn duplicate_ids_keep_the_first_agent_and_count_the_rest() {
        let mut agents: Vec<Agent> = ["a", "b", "a", "c", "b", "a"]
            .iter()
            .enumerate()
            .map(|(i, id)| Agent::new(id.to_string(), format!("n{i}")))
            .collect();
        assert_eq!(drop_duplicate_ids(&mut agents), 3);
        let kept: Vec<(&str, &str)> = agents
            .iter()
            .map(|a| (a.id.as_str(), a.name.as_str()))
            .collect();
        assert_eq!(kept, [("a", "n0"), ("b", "n1"), ("c", "n3")]);
        assert_eq!(drop_duplicate_ids(&mut agents), 0);
    }
}
