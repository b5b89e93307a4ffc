//! Shared, provider-neutral HTTP mechanics for the upstream clients: the client itself, the auth header, retries with
//! `Retry-After` and backoff, the body cap, upstream error messages, `Link` pagination and pagination-loop detection.
//!
//! Provider files (`celigo.rs`, `planasonix.rs`, `calyptia.rs`) only build URLs and decode JSON; everything that must
//! behave the same for every vendor lives here, so that a fix to, say, `Retry-After` handling fixes every source.
//!
//! Secrets: the token lives in a [`SecretString`] and in a header value marked sensitive, so neither `Debug` nor
//! reqwest's own logging prints it. Error messages name the URL (without userinfo or fragment) and the status, and
//! carry only the `message`/`code` fields parsed from an error body, never the raw body; any occurrence of the token
//! in those fields is redacted as well.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::backoff::Backoff;
use crate::config::sources::SourceConfig;
use crate::sources::{PollStats, UpstreamError};

/// The `User-Agent` sent on every request, so that upstream operators can tell our traffic apart.
pub const USER_AGENT: &str = concat!("onprem-agent-exporter/", env!("CARGO_PKG_VERSION"));

/// The default first backoff delay after a 5xx, timeout or connection error; it doubles on each further attempt.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(250);

/// The longest single backoff delay, so that a large `max_attempts` cannot stall one poll for minutes.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How much of an error body is read to find its message, bytes. Error bodies are small JSON documents; reading more
/// would only spend memory on something we never show.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// The longest upstream error message we repeat, in characters.
const MESSAGE_LIMIT: usize = 200;

/// How a request proves who it is.
pub enum Auth {
    /// `Authorization: Bearer <token>` (Celigo, Planasonix, and Calyptia as an alternative).
    Bearer(SecretString),
    /// `<name>: <token>`, for example `X-Project-Token` (Calyptia).
    Header(HeaderName, SecretString),
    /// `<name>: <prefix><token>`: a generic source's `auth` (`Authorization: Bearer ` by default, `Token `, or no
    /// prefix at all). The prefix is configuration, not a secret.
    Prefixed(HeaderName, String, SecretString),
}

impl Auth {
    fn token(&self) -> &SecretString {
        match self {
            Auth::Bearer(token) | Auth::Header(_, token) | Auth::Prefixed(_, _, token) => token,
        }
    }

    /// The header to send, marked sensitive; `None` when the token holds bytes that cannot go in a header (a stray
    /// newline in a token file, for example).
    fn header(&self) -> Option<(HeaderName, HeaderValue)> {
        let (name, value) = match self {
            Auth::Bearer(token) => (
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).ok()?,
            ),
            Auth::Header(name, token) => (
                name.clone(),
                HeaderValue::from_str(token.expose_secret()).ok()?,
            ),
            Auth::Prefixed(name, prefix, token) => (
                name.clone(),
                HeaderValue::from_str(&format!("{prefix}{}", token.expose_secret())).ok()?,
            ),
        };
        let mut value = value;
        value.set_sensitive(true);
        Some((name, value))
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer([redacted])"),
            Auth::Header(name, _) => write!(f, "Header({name}, [redacted])"),
            Auth::Prefixed(name, prefix, _) => write!(f, "Header({name}, {prefix:?}[redacted])"),
        }
    }
}

/// When and how often a request is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included; 0 is treated as 1.
    pub max_attempts: u32,
    /// The longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
    /// The first backoff delay; attempt `n` waits `base * 2^(n-1)` (capped at `backoff_max`) plus up to half as much
    /// again as jitter. Also the upper bound of the jitter added to `Retry-After`. Tests set it to a millisecond.
    pub backoff_base: Duration,
    /// The longest backoff delay before jitter.
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// The policy a source's configuration asks for, with the default backoff.
    pub fn from_config(config: &SourceConfig) -> RetryPolicy {
        RetryPolicy {
            max_attempts: config.max_attempts,
            max_retry_after: config.max_retry_after,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }

    /// The exponential backoff before attempt `attempt + 1` ([`crate::backoff`]'s policy), jitter included.
    fn backoff(&self, attempt: u32) -> Duration {
        let delay = Backoff {
            first: self.backoff_base,
            max: self.backoff_max,
        }
        .after(attempt);
        // Up to half as much again, so that exporters retrying the same account spread out.
        delay + jitter(delay / 2)
    }

    /// The wait after a 429: `Retry-After` capped at `max_retry_after` plus jitter, so that several exporters behind
    /// one account do not all come back in the same instant; without a usable header, the exponential backoff.
    fn after_rate_limit(&self, retry_after: Option<Duration>, attempt: u32) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_retry_after) + jitter(self.backoff_base),
            None => self.backoff(attempt),
        }
    }
}

/// A uniformly random duration in `[0, max)`; zero when `max` is zero.
fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(rand::rng().random_range(0..nanos))
}

/// Parses a `Retry-After` value: either delay-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`),
/// which is turned into a delay from `now`. A date in the past means "now" (zero). Returns `None` when the value is
/// neither, in which case the caller falls back to its own backoff.
///
/// Assumed: Celigo sends delay-seconds (its docs show `Retry-After: <seconds>`); the date form is accepted because
/// RFC 9110 allows it and proxies in front of the API may use it. Only the IMF-fixdate form is parsed, not the
/// obsolete RFC 850 and asctime forms.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // A value too large for u64 is still "a very long time"; the cap applies later.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER.parse_timestamp(value).ok()?;
    let ahead = now.duration_until(at);
    Some(Duration::try_from(ahead).unwrap_or(Duration::ZERO))
}

/// Returns the target of the first `rel="next"` link among every `Link` header of a response, resolved against
/// `base` (the URL the response came from), or `None` when there is no next page.
///
/// One header may hold several links and one link several relations (`rel="next last"`); the relation match is
/// case-insensitive (RFC 8288 §2.1.1). A `Link` header that cannot be parsed is an error rather than "no next page":
/// silently stopping there would return part of the fleet as if it were all of it.
pub fn next_link(headers: &HeaderMap, base: &Url) -> Result<Option<Url>, LinkError> {
    for value in headers.get_all(header::LINK) {
        let text = value
            .to_str()
            .map_err(|_| LinkError("a Link header is not visible ASCII".to_string()))?;
        if text.trim().is_empty() {
            continue;
        }
        let links = http_link::parse_link_header(text, base)
            .map_err(|e| LinkError(format!("cannot parse a Link header: {e}")))?;
        if let Some(link) = links.into_iter().find(|link| link.rel == "next") {
            return Ok(Some(link.target));
        }
    }
    Ok(None)
}

/// A `Link` header that could not be parsed. Becomes an [`UpstreamError::Decode`] naming the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LinkError(String);

impl LinkError {
    /// The error as a `decode` failure of the page at `url`.
    pub fn at(self, url: &Url) -> UpstreamError {
        UpstreamError::Decode {
            url: display_url(url),
            message: self.0,
        }
    }
}

/// The query keys that tell one page of a list from another; [`display_url`] keeps these and drops the rest.
const PAGE_KEYS: [&str; 6] = ["skip", "offset", "page", "cursor", "after", "before"];

/// The URL as it may appear in a message or log: without userinfo, fragment, or the query, except the keys that tell
/// pages apart (`skip=100`, `cursor=…`). The rest of the query is the field projection and page size we chose
/// ourselves (`include=name%2Cversion%2C…`): long, percent-encoded and no help to whoever reads the error.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both only fail for URLs that cannot have userinfo, which then have none to strip.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    let paging: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| PAGE_KEYS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    shown.set_query(None);
    if !paging.is_empty() {
        shown.query_pairs_mut().extend_pairs(paging);
    }
    shown.to_string()
}

/// Keeps one poll's pagination honest: refuses a page URL seen before in the same poll (`pagination_loop`), more
/// pages than the cap (`page_limit`), and a page on another origin than the first one, so that a `next` link can never
/// send the token to a host the operator did not configure.
#[derive(Debug)]
pub struct Pager {
    /// Scheme, host and port of the first page.
    origin: url::Origin,
    /// Every page URL fetched so far in this poll, fragment removed.
    seen: HashSet<String>,
    /// The most pages one poll may fetch.
    max_pages: u32,
}

impl Pager {
    /// A pager for a poll whose first page is `first`, allowed at most `max_pages` pages.
    pub fn new(first: &Url, max_pages: u32) -> Pager {
        Pager {
            origin: first.origin(),
            seen: HashSet::new(),
            max_pages,
        }
    }

    /// Records that `url` is about to be fetched. Fails if and only if it was fetched before in this poll, if the cap is
    /// already reached, or if it lies on another origin than the first page.
    pub fn visit(&mut self, url: &Url) -> Result<(), UpstreamError> {
        if url.origin() != self.origin {
            return Err(UpstreamError::Decode {
                url: display_url(url),
                message: "the next link points to another host; not sending the token there"
                    .to_string(),
            });
        }
        let mut key = url.clone();
        key.set_fragment(None);
        let key = key.to_string();
        if self.seen.contains(&key) {
            return Err(UpstreamError::PaginationLoop {
                url: display_url(url),
            });
        }
        if self.seen.len() >= self.max_pages as usize {
            return Err(UpstreamError::PageLimit {
                cap: self.max_pages,
            });
        }
        self.seen.insert(key);
        Ok(())
    }

    /// Pages visited so far.
    pub fn pages(&self) -> u32 {
        self.seen.len() as u32
    }
}

/// A successful (2xx) response with its body read in full.
pub struct Fetched {
    /// The status; callers distinguish 200 from 204.
    pub status: StatusCode,
    /// The final URL after any same-origin redirect; the base for relative `Link` targets.
    pub url: Url,
    /// The response headers (`Link`, rate-limit hints).
    pub headers: HeaderMap,
    /// The body, at most `max_body_bytes` long. Not `Debug`: it may hold secrets the upstream should not have sent.
    pub body: Vec<u8>,
}

/// An HTTP client for one upstream account: one connection pool, one auth header, one retry policy, one body cap.
pub struct HttpClient {
    client: reqwest::Client,
    /// Kept to redact the token from upstream error messages, should an upstream ever echo it.
    auth: Auth,
    /// The auth header, built once; `None` when the token cannot be sent in a header, which every request then
    /// reports as `unauthorized` without touching the network.
    auth_header: Option<(HeaderName, HeaderValue)>,
    retry: RetryPolicy,
    max_body_bytes: u64,
    /// The latest instant a `Retry-After` asked us to wait for, kept across polls so that the poller can skip polls
    /// until then: within a poll a long `Retry-After` is cut to `max_retry_after`, and without this the next poll
    /// would ask again at once. A `std` mutex: held only to read or replace one value, never across an `.await`.
    not_before: std::sync::Mutex<Option<Timestamp>>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("auth", &self.auth)
            .field("retry", &self.retry)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// How one attempt failed.
enum Failure {
    /// Trying again cannot help (401, 404, a body over the cap).
    Final(UpstreamError),
    /// Worth another attempt, if any are left.
    Retry(Retryable),
}

/// Why one attempt failed in a way worth retrying.
enum Retryable {
    RateLimited { retry_after: Option<Duration> },
    Server { status: u16 },
    Timeout,
    Connect { message: String },
}

impl HttpClient {
    /// Builds the client: timeout `request_timeout` for the whole exchange (connect, headers and body), our
    /// `User-Agent`, redirects followed only within the same origin (so a custom auth header such as
    /// `X-Project-Token`, which reqwest does not strip on cross-host redirects, never leaves the configured host), and
    /// the system proxy settings. Gzip is not enabled, so bodies arrive and are capped as sent.
    pub fn new(config: &SourceConfig, auth: Auth) -> Result<HttpClient, reqwest::Error> {
        let redirect = reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if same_origin && attempt.previous().len() <= 10 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .redirect(redirect)
            .build()?;
        let auth_header = auth.header();
        Ok(HttpClient {
            client,
            auth,
            auth_header,
            retry: RetryPolicy::from_config(config),
            max_body_bytes: config.max_body_bytes,
            not_before: std::sync::Mutex::new(None),
        })
    }

    /// Replaces the first backoff delay of the retry policy; tests set it to a millisecond so that retries cost
    /// nothing.
    pub fn set_backoff_base(&mut self, base: Duration) {
        self.retry.backoff_base = base;
    }

    /// The instant before which the upstream asked not to be called again (the latest `Retry-After` seen, as an
    /// instant), or `None` if none was sent. Stays set after it passes; callers compare with the clock.
    pub fn not_before(&self) -> Option<Timestamp> {
        *self.not_before.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a `Retry-After` of `wait` received at `now`, keeping the later of it and the one already known.
    fn wait_at_least(&self, now: Timestamp, wait: Duration) {
        let Ok(until) = now.checked_add(wait) else {
            return;
        };
        let mut held = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none_or(|t| t < until) {
            *held = Some(until);
        }
    }

    /// The retry policy in force.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// `GET url` with the auth header, retried on 429, 5xx, timeouts and connection errors, and with the body read up
    /// to the cap. Every attempt counts in `stats.requests`, every body byte read in `stats.bytes`.
    ///
    /// Returns the response for any 2xx status. Otherwise:
    /// - 401 and 403 fail at once with [`UpstreamError::Unauthorized`]: retrying a bad key only burns rate limit;
    /// - 429 waits for `Retry-After` (capped, plus jitter) and fails with [`UpstreamError::RateLimited`] when the
    ///   attempts run out;
    /// - 5xx, timeouts and connection errors back off exponentially and fail with [`UpstreamError::Server`],
    ///   [`UpstreamError::Timeout`] or [`UpstreamError::Connect`] as the last attempt did;
    /// - a body over the cap fails at once with [`UpstreamError::BodyTooLarge`];
    /// - any other status (other 4xx, a 3xx that was not followed) fails at once with [`UpstreamError::Status`].
    pub async fn get(&self, url: &Url, stats: &mut PollStats) -> Result<Fetched, UpstreamError> {
        let shown = display_url(url);
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.attempt(url, &shown, stats).await {
                Ok(fetched) => return Ok(fetched),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Retry(failure)) => failure,
            };
            if attempt >= max_attempts {
                return Err(match failure {
                    Retryable::RateLimited { .. } => UpstreamError::RateLimited {
                        url: shown,
                        attempts: attempt,
                    },
                    Retryable::Server { status } => UpstreamError::Server {
                        url: shown,
                        status,
                        attempts: attempt,
                    },
                    Retryable::Timeout => UpstreamError::Timeout {
                        url: shown,
                        attempts: attempt,
                    },
                    Retryable::Connect { message } => UpstreamError::Connect {
                        url: shown,
                        attempts: attempt,
                        message: self.redact(&message),
                    },
                });
            }
            let (delay, why) = match &failure {
                Retryable::RateLimited { retry_after } => {
                    (self.retry.after_rate_limit(*retry_after, attempt), "429")
                }
                Retryable::Server { .. } => (self.retry.backoff(attempt), "5xx"),
                Retryable::Timeout => (self.retry.backoff(attempt), "timeout"),
                Retryable::Connect { .. } => (self.retry.backoff(attempt), "connect"),
            };
            tracing::debug!(
                url = %shown,
                attempt,
                why,
                delay_ms = delay.as_millis() as u64,
                "retrying upstream request"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One page of a paginated list: `pager` checks the URL first (loop, cap, origin), then the page is fetched as by
    /// [`HttpClient::get`] and counted in `stats.pages`. `None` for a 204: every provider reads it as "no (more)
    /// agents" (each says why where it calls this).
    pub async fn page(
        &self,
        pager: &mut Pager,
        url: &Url,
        stats: &mut PollStats,
    ) -> Result<Option<Fetched>, UpstreamError> {
        pager.visit(url)?;
        let page = self.get(url, stats).await?;
        stats.pages += 1;
        Ok((page.status != StatusCode::NO_CONTENT).then_some(page))
    }

    /// One request: the response for a 2xx, or whether and why to try again.
    async fn attempt(
        &self,
        url: &Url,
        shown: &str,
        stats: &mut PollStats,
    ) -> Result<Fetched, Failure> {
        let Some((name, value)) = &self.auth_header else {
            return Err(Failure::Final(UpstreamError::Unauthorized {
                url: shown.to_string(),
                status: 0,
                message:
                    "the configured token holds characters that cannot be sent in an HTTP header"
                        .to_string(),
            }));
        };
        stats.requests += 1;
        let response = self
            .client
            .get(url.clone())
            .header(name, value.clone())
            .send()
            .await
            .map_err(|e| Failure::Retry(classify(e)))?;
        let status = response.status();
        if status.is_success() {
            let final_url = response.url().clone();
            let headers = response.headers().clone();
            return match read_body(response, self.max_body_bytes, stats).await {
                Ok(body) => Ok(Fetched {
                    status,
                    url: final_url,
                    headers,
                    body,
                }),
                Err(BodyError::TooLarge) => Err(Failure::Final(UpstreamError::BodyTooLarge {
                    url: shown.to_string(),
                    limit: self.max_body_bytes,
                })),
                Err(BodyError::Transport(e)) => Err(Failure::Retry(classify(e))),
            };
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, Timestamp::now()));
            if let Some(wait) = retry_after {
                self.wait_at_least(Timestamp::now(), wait);
            }
            return Err(Failure::Retry(Retryable::RateLimited { retry_after }));
        }
        if status.is_server_error() {
            return Err(Failure::Retry(Retryable::Server {
                status: status.as_u16(),
            }));
        }
        // An error body that cannot be read, or is over the small error cap, just has no message.
        let body = read_body(response, ERROR_BODY_LIMIT.min(self.max_body_bytes), stats)
            .await
            .unwrap_or_default();
        let message = self.redact(&error_message(&body));
        let (url, status) = (shown.to_string(), status.as_u16());
        Err(Failure::Final(if status == 401 || status == 403 {
            UpstreamError::Unauthorized {
                url,
                status,
                message,
            }
        } else {
            UpstreamError::Status {
                url,
                status,
                message,
            }
        }))
    }

    /// Replaces every occurrence of the token in an upstream-provided message.
    fn redact(&self, message: &str) -> String {
        let token = self.auth.token().expose_secret();
        if token.is_empty() {
            message.to_string()
        } else {
            message.replace(token, "[redacted]")
        }
    }
}

/// Sorts a transport error into timeout or connection failure. Everything that is not a timeout (refused, reset,
/// TLS, a connection closed mid-body) counts as `connect`: the set of reasons is closed and these all mean "the
/// exchange broke below HTTP". The message is reqwest's cause chain without the URL, which we name ourselves.
fn classify(e: reqwest::Error) -> Retryable {
    if e.is_timeout() {
        return Retryable::Timeout;
    }
    let message = crate::telemetry::error_chain(&e.without_url());
    Retryable::Connect { message }
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads the whole body, failing as soon as it is known to exceed `limit` bytes: up front from `Content-Length`, or
/// while streaming when the length is not announced (chunked encoding).
async fn read_body(
    mut response: reqwest::Response,
    limit: u64,
    stats: &mut PollStats,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge);
    }
    let capacity = response.content_length().unwrap_or(0).min(limit);
    let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        stats.bytes += chunk.len() as u64;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The human-readable part of an error body, in the shapes our upstreams use:
/// - `{"errors":[{"code","message"}, ...]}` (Celigo; `code` is a string or an integer) → `code: message; ...`;
/// - `{"error","detail"?}` (Calyptia) → `error: detail`;
/// - `{"message"}` (Celigo's 401 middleware, Planasonix) → `message`.
///
/// Anything else gives `no error message in the response`: the raw body is never repeated, because it could hold
/// anything. The result is cut to 200 characters and control characters become spaces, so one line of log stays one
/// line.
pub fn error_message(body: &[u8]) -> String {
    const NONE: &str = "no error message in the response";
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return NONE.to_string();
    };
    let text = |v: Option<&serde_json::Value>| -> Option<String> {
        match v? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let mut message = None;
    if let Some(errors) = value.get("errors").and_then(|e| e.as_array()) {
        let parts: Vec<String> = errors
            .iter()
            .filter_map(|e| match (text(e.get("code")), text(e.get("message"))) {
                (Some(code), Some(msg)) => Some(format!("{code}: {msg}")),
                (Some(one), None) | (None, Some(one)) => Some(one),
                (None, None) => None,
            })
            .collect();
        if !parts.is_empty() {
            message = Some(parts.join("; "));
        }
    }
    if message.is_none() {
        message = match (text(value.get("error")), text(value.get("detail"))) {
            (Some(error), Some(detail)) => Some(format!("{error}: {detail}")),
            (Some(error), None) => Some(error),
            _ => None,
        };
    }
    if message.is_none() {
        message = text(value.get("message"));
    }
    match message {
        Some(m) => clean(&m),
        None => NONE.to_string(),
    }
}

/// Cuts to [`MESSAGE_LIMIT`] characters (adding `…`) and replaces control characters with spaces.
fn clean(message: &str) -> String {
    let mut out: String = message
        .chars()
        .take(MESSAGE_LIMIT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if message.chars().nth(MESSAGE_LIMIT).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://api.example.test/v1/agents?include=name").unwrap()
    }

    fn links(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::LINK, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn next_link_resolves_a_relative_target_against_the_request_url() {
        let next = next_link(
            &links(&[r#"</v1/agents?skip=100&limit=100>; rel="next""#]),
            &base(),
        )
        .unwrap();
        assert_eq!(
            next.as_ref().map(Url::as_str),
            Some("https://api.example.test/v1/agents?skip=100&limit=100")
        );
    }

    #[test]
    fn next_link_picks_next_among_several_rels_in_one_header() {
        let header = r#"</v1/agents?skip=0>; rel="first", </v1/agents?skip=200>; rel="next", </v1/agents?skip=900>; rel="last""#;
        let next = next_link(&links(&[header]), &base()).unwrap();
        assert_eq!(
            next.as_ref().map(Url::as_str),
            Some("https://api.example.test/v1/agents?skip=200")
        );
    }

    #[test]
    fn next_link_finds_next_in_a_second_link_header() {
        let next = next_link(
            &links(&[
                r#"</v1/agents?skip=0>; rel="prev""#,
                r#"<https://api.example.test/v1/agents?skip=2>; rel="next""#,
            ]),
            &base(),
        )
        .unwrap();
        assert_eq!(
            next.as_ref().map(Url::as_str),
            Some("https://api.example.test/v1/agents?skip=2")
        );
    }

    #[test]
    fn next_link_matches_one_of_several_relations_of_one_link_case_insensitively() {
        let next = next_link(
            &links(&[r#"</v1/agents?skip=2>; rel="last NEXT""#]),
            &base(),
        )
        .unwrap();
        assert_eq!(
            next.as_ref().map(Url::as_str),
            Some("https://api.example.test/v1/agents?skip=2")
        );
    }

    #[test]
    fn next_link_is_none_without_a_next_relation_or_without_a_link_header() {
        assert_eq!(
            next_link(&links(&[r#"</v1/agents?skip=0>; rel="prev""#]), &base()),
            Ok(None)
        );
        assert_eq!(next_link(&HeaderMap::new(), &base()), Ok(None));
        assert_eq!(next_link(&links(&[""]), &base()), Ok(None));
    }

    #[test]
    fn next_link_rejects_a_malformed_header_instead_of_ending_the_listing() {
        let result = next_link(&links(&["/v1/agents?skip=2; rel=next"]), &base());
        assert!(result.is_err(), "saw {result:?}");
    }

    #[test]
    fn retry_after_accepts_delay_seconds_and_http_dates() {
        let now: Timestamp = "2015-10-21T07:27:00Z".parse().unwrap();
        let table: &[(&str, Option<Duration>)] = &[
            ("1", Some(Duration::from_secs(1))),
            (" 120 ", Some(Duration::from_secs(120))),
            ("0", Some(Duration::ZERO)),
            (
                "Wed, 21 Oct 2015 07:28:00 GMT",
                Some(Duration::from_secs(60)),
            ),
            ("Wed, 21 Oct 2015 07:26:00 GMT", Some(Duration::ZERO)),
            (
                "99999999999999999999999",
                Some(Duration::from_secs(u64::MAX)),
            ),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, want) in table {
            assert_eq!(
                parse_retry_after(value, now),
                *want,
                "Retry-After: {value:?}"
            );
        }
    }

    #[test]
    fn rate_limit_wait_is_capped_and_jittered_within_the_backoff_base() {
        let policy = RetryPolicy {
            max_attempts: 5,
            max_retry_after: Duration::from_secs(60),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
        };
        for _ in 0..100 {
            let wait = policy.after_rate_limit(Some(Duration::from_secs(3600)), 1);
            assert!(
                wait >= Duration::from_secs(60) && wait < Duration::from_millis(60_250),
                "waited {wait:?}"
            );
            let wait = policy.after_rate_limit(Some(Duration::from_secs(1)), 1);
            assert!(
                wait >= Duration::from_secs(1) && wait < Duration::from_millis(1250),
                "waited {wait:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_per_attempt_and_stops_at_the_maximum() {
        let policy = RetryPolicy {
            max_attempts: 30,
            max_retry_after: Duration::from_secs(60),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
        };
        for (attempt, floor) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (25, 1000),
        ] {
            let wait = policy.backoff(attempt);
            let floor = Duration::from_millis(floor);
            assert!(
                wait >= floor && wait < floor + floor / 2 + Duration::from_nanos(1),
                "attempt {attempt}: {wait:?}"
            );
        }
    }

    #[test]
    fn error_message_reads_every_known_envelope_and_never_the_raw_body() {
        let table: &[(&str, &str)] = &[
            (
                r#"{"message":"Bearer Authentication Failed"}"#,
                "Bearer Authentication Failed",
            ),
            (
                r#"{"errors":[{"code":"rate_limited","message":"Too many requests"}]}"#,
                "rate_limited: Too many requests",
            ),
            (
                r#"{"errors":[{"code":500,"message":"boom"},{"code":"x"}]}"#,
                "500: boom; x",
            ),
            (
                r#"{"error":"forbidden","detail":"wrong project"}"#,
                "forbidden: wrong project",
            ),
            (r#"{"error":"forbidden"}"#, "forbidden"),
            (r#"{"message":"line one\nline two"}"#, "line one line two"),
            (
                r#"{"secret":"hunter2"}"#,
                "no error message in the response",
            ),
            (
                "<html>secret hunter2</html>",
                "no error message in the response",
            ),
            ("", "no error message in the response"),
        ];
        for (body, want) in table {
            assert_eq!(error_message(body.as_bytes()), *want, "body {body:?}");
        }
        let long = format!(r#"{{"message":"{}"}}"#, "é".repeat(500));
        let got = error_message(long.as_bytes());
        assert_eq!(got.chars().count(), MESSAGE_LIMIT + 1, "saw {got:?}");
    }

    #[test]
    fn display_url_drops_userinfo_fragment_and_projection_but_keeps_the_page() {
        let url = Url::parse(
            "https://user:pass@api.example.test/v1/agents?include=name%2Cversion&limit=100&skip=5#frag",
        )
        .unwrap();
        assert_eq!(
            display_url(&url),
            "https://api.example.test/v1/agents?skip=5"
        );
        let url = Url::parse("https://api.example.test/v1/agents?include=name%2Cversion").unwrap();
        assert_eq!(display_url(&url), "https://api.example.test/v1/agents");
    }

    #[test]
    fn pager_rejects_a_repeated_page_the_page_cap_and_another_origin() {
        let first = base();
        let mut pager = Pager::new(&first, 2);
        pager.visit(&first).unwrap();
        let repeat = pager.visit(&first).unwrap_err();
        assert_eq!(
            repeat.reason(),
            crate::sources::ErrorReason::PaginationLoop,
            "saw {repeat}"
        );
        pager
            .visit(&Url::parse("https://api.example.test/v1/agents?skip=1").unwrap())
            .unwrap();
        let capped = pager
            .visit(&Url::parse("https://api.example.test/v1/agents?skip=2").unwrap())
            .unwrap_err();
        assert_eq!(
            capped.reason(),
            crate::sources::ErrorReason::PageLimit,
            "saw {capped}"
        );
        let mut pager = Pager::new(&first, 10);
        let elsewhere = pager
            .visit(&Url::parse("https://evil.example/v1/agents").unwrap())
            .unwrap_err();
        assert_eq!(
            elsewhere.reason(),
            crate::sources::ErrorReason::Decode,
            "saw {elsewhere}"
        );
    }

    #[test]
    fn auth_header_is_sensitive_and_debug_hides_the_token() {
        let auth = Auth::Bearer(SecretString::from("s3cr3t"));
        let (name, value) = auth.header().unwrap();
        assert_eq!(name, header::AUTHORIZATION);
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().unwrap(), "Bearer s3cr3t");
        assert!(!format!("{auth:?} {value:?}").contains("s3cr3t"));
        let custom = Auth::Header(
            HeaderName::from_static("x-project-token"),
            SecretString::from("s3cr3t"),
        );
        assert!(!format!("{custom:?}").contains("s3cr3t"));
        assert!(
            Auth::Bearer(SecretString::from("bad\ntoken"))
                .header()
                .is_none()
        );
    }
}
