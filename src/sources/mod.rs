//! Upstream clients, one file per provider behind the [`Source`] trait.
//!
//! A source performs one complete poll of its account and returns either every agent or an [`UpstreamError`]; it
//! never returns a partial list. Shared HTTP mechanics (auth header, retries, `Retry-After`, body cap, pagination
//! loop detection) live in [`http`], lenient record decoding in [`record`] and the fast reader of record lists in
//! [`list`], so each provider file only knows its own URLs and JSON.

pub mod calyptia;
pub mod celigo;
pub mod http;
pub mod list;
pub mod planasonix;
pub mod record;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::model::{Agent, Provider};

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
}

impl ErrorReason {
    /// Every reason, in label order. Used to pre-declare counters so that `rate()` sees a zero before the first error.
    pub const ALL: [ErrorReason; 12] = [
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
}

impl UpstreamError {
    /// The metric reason this error counts under.
    pub fn reason(&self) -> ErrorReason {
        match self {
            UpstreamError::Unauthorized { .. } => ErrorReason::Unauthorized,
            UpstreamError::RateLimited { .. } => ErrorReason::RateLimited,
            UpstreamError::Server { .. } => ErrorReason::Http5xx,
            UpstreamError::Status { .. } => ErrorReason::Http4xx,
            UpstreamError::Timeout { .. } => ErrorReason::Timeout,
            UpstreamError::Connect { .. } => ErrorReason::Connect,
            UpstreamError::Decode { .. } => ErrorReason::Decode,
            UpstreamError::PaginationLoop { .. } => ErrorReason::PaginationLoop,
            UpstreamError::PageLimit { .. } => ErrorReason::PageLimit,
            UpstreamError::BodyTooLarge { .. } => ErrorReason::BodyTooLarge,
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
pub fn build(
    config: &crate::config::sources::SourceConfig,
) -> Result<std::sync::Arc<dyn Source>, BuildError> {
    use std::sync::Arc;
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
    }
}
