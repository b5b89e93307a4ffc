//! The Celigo integrator.io source: lists on-premise agents with `GET /v1/agents`, following `Link: rel="next"`
//! pages, and turns each record into an [`Agent`].
//!
//! The request asks for a projection (`include=`) of only the fields we use, so a conforming server never sends the
//! agents' `accessToken`. Whether `/v1/agents` honours projection is unconfirmed, so parsing does not rely on it: each
//! record is read field by field into `RawAgent` (see [`super::record`]), and every other field, `accessToken`
//! included, is skipped by the parser without being stored.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use url::Url;

use crate::config::SourceConfig;
use crate::model::{Agent, Provider, TokenDateSource};
use crate::sources::http::{Auth, HttpClient, Pager, display_url, next_link};
use crate::sources::record::{Fields, Record, Scalar, describe, timestamp};
use crate::sources::{BoxFuture, PollOutcome, PollStats, Source, UpstreamError};

/// The fields we ask the server to project. `_id` and `name` always come back; we list `name` anyway so the request
/// says what we read. Assumed: listing a field an agent does not carry is harmless (the reference says such fields are
/// "silently dropped").
const INCLUDE: &str = "name,version,offline,lastHeartbeatAt,__accessTokenLastModifiedAt,createdAt";

/// One integrator.io account.
pub struct CeligoSource {
    /// The `account` label.
    name: String,
    /// The first page: `{base_url}/v1/agents?include=...[&limit=...]`, built once.
    first_page: Url,
    /// The page cap for one poll.
    max_pages: u32,
    http: HttpClient,
}

impl fmt::Debug for CeligoSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CeligoSource")
            .field("name", &self.name)
            .field("first_page", &display_url(&self.first_page))
            .field("max_pages", &self.max_pages)
            .field("http", &self.http)
            .finish()
    }
}

impl CeligoSource {
    /// Builds the source from its validated configuration. Fails only if the HTTP client cannot be built (the TLS
    /// backend failed to initialise).
    ///
    /// A `base_url` with a path (a proxy mounting the API under `/celigo`, say) keeps it: the list lives at
    /// `{base_url}/v1/agents`.
    pub fn new(config: SourceConfig) -> Result<CeligoSource, reqwest::Error> {
        let http = HttpClient::new(&config, Auth::Bearer(config.token.clone()))?;
        Ok(CeligoSource {
            first_page: first_page(&config.base_url, config.page_size),
            name: config.name,
            max_pages: config.max_pages,
            http,
        })
    }

    /// Replaces the first backoff delay of the retry policy (250 ms by default). Tests set it to a millisecond so
    /// that retries cost nothing.
    pub fn with_backoff_base(mut self, base: Duration) -> CeligoSource {
        let mut retry = self.http.retry().clone();
        retry.backoff_base = base;
        self.http = self.http.with_retry(retry);
        self
    }

    /// One complete poll: every page, or the first error.
    ///
    /// Decoding a page costs more CPU than receiving it, so page n is decoded on a blocking thread while page n+1 is
    /// fetched. At most one decode is in flight, which keeps memory bounded and the agents in upstream order.
    async fn poll_all(&self) -> Result<PollOutcome, UpstreamError> {
        let mut stats = PollStats::default();
        let mut pager = Pager::new(&self.first_page, self.max_pages);
        let mut agents = Vec::new();
        let mut pending: Option<tokio::task::JoinHandle<Result<Decoded, UpstreamError>>> = None;
        let mut next = Some(self.first_page.clone());
        while let Some(url) = next.take() {
            let fetched = match pager.visit(&url) {
                Ok(()) => self.http.get(&url, &mut stats).await,
                Err(e) => Err(e),
            };
            // The previous page's decode finishes before anything else is reported, so a bad page is named as
            // such even when a later request also fails.
            if let Some(handle) = pending.take() {
                absorb(handle.await, &mut agents, &mut stats)?;
            }
            let page = fetched?;
            stats.pages += 1;
            // Assumed: a 204 on a later page also means "nothing more", like the documented 204 for an empty account.
            if page.status == StatusCode::NO_CONTENT {
                break;
            }
            let following = next_link(&page.headers, &page.url).map_err(|e| e.at(&page.url));
            let account = self.name.clone();
            let (body, page_url) = (page.body, page.url);
            pending = Some(tokio::task::spawn_blocking(move || {
                decode(&body, &page_url, &account)
            }));
            next = following?;
        }
        if let Some(handle) = pending.take() {
            absorb(handle.await, &mut agents, &mut stats)?;
        }
        Ok(PollOutcome { agents, stats })
    }
}

/// The agents of one page and how many of its records were skipped.
struct Decoded {
    agents: Vec<Agent>,
    invalid: u64,
}

/// Decodes one page of agent records. A record that is not an object with a string `_id` is skipped and counted;
/// a body that is not an array fails the page.
fn decode(body: &[u8], url: &Url, account: &str) -> Result<Decoded, UpstreamError> {
    let records: Vec<Record<RawAgent>> =
        serde_json::from_slice(body).map_err(|e| UpstreamError::Decode {
            url: display_url(url),
            message: describe(&e, AGENT_ARRAY),
        })?;
    let mut decoded = Decoded {
        agents: Vec::with_capacity(records.len()),
        invalid: 0,
    };
    for (index, record) in records.into_iter().enumerate() {
        match record.0.and_then(RawAgent::into_agent) {
            Some(agent) => decoded.agents.push(agent),
            None => {
                decoded.invalid += 1;
                tracing::debug!(
                    account,
                    page = %display_url(url),
                    index,
                    "skipping an agent record that is not an object with a string _id"
                );
            }
        }
    }
    Ok(decoded)
}

/// Appends a finished decode to the poll's results.
fn absorb(
    joined: Result<Result<Decoded, UpstreamError>, tokio::task::JoinError>,
    agents: &mut Vec<Agent>,
    stats: &mut PollStats,
) -> Result<(), UpstreamError> {
    let decoded = joined.map_err(|e| UpstreamError::Decode {
        url: "an agent page".to_string(),
        message: format!("the decoding task failed: {e}"),
    })??;
    stats.invalid_records += decoded.invalid;
    if agents.is_empty() {
        *agents = decoded.agents;
    } else {
        agents.extend(decoded.agents);
    }
    Ok(())
}

impl Source for CeligoSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn provider(&self) -> Provider {
        Provider::Celigo
    }

    fn poll(&self) -> BoxFuture<'_, Result<PollOutcome, UpstreamError>> {
        Box::pin(self.poll_all())
    }
}

/// `{base}/v1/agents?include=...`, plus `limit` only when a page size is configured: the documented default size is
/// inconsistent (100 or 1000), so without one we let the server choose and simply follow its links.
fn first_page(base: &Url, page_size: Option<u32>) -> Url {
    let mut url = base.clone();
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(["v1", "agents"]);
    }
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("include", INCLUDE);
        if let Some(size) = page_size {
            query.append_pair("limit", &size.to_string());
        }
    }
    url
}

/// What a page must be, for decode messages.
const AGENT_ARRAY: &str = "a JSON array of agent records";

/// The fields of an agent record we read; everything else is skipped unread. Not `Debug`, and holds no secret: the
/// record's `accessToken` never reaches it. A wrongly typed field (`"offline": "yes"`, `"_id": 42`) drops only itself.
#[derive(Default)]
struct RawAgent {
    id: Option<String>,
    name: Option<String>,
    version: Option<String>,
    offline: Option<bool>,
    last_heartbeat_at: Option<String>,
    token_modified_at: Option<String>,
    created_at: Option<String>,
}

impl Fields for RawAgent {
    const KEYS: &'static [&'static str] = &[
        "_id",
        "name",
        "version",
        "offline",
        "lastHeartbeatAt",
        "__accessTokenLastModifiedAt",
        "createdAt",
    ];

    fn set(&mut self, index: usize, value: Scalar) {
        match index {
            0 => self.id = value.string(),
            1 => self.name = value.string(),
            2 => self.version = value.string(),
            3 => self.offline = value.bool(),
            4 => self.last_heartbeat_at = value.string(),
            5 => self.token_modified_at = value.string(),
            _ => self.created_at = value.string(),
        }
    }
}

impl RawAgent {
    /// The agent, or `None` when the record has no non-empty string `_id`.
    fn into_agent(self) -> Option<Agent> {
        let id = self.id.filter(|id| !id.is_empty())?;
        // Assumed: `name` is always present (projection always returns it); a record without one gets an empty name
        // rather than being dropped, because the id alone identifies the agent.
        let mut agent = Agent::new(id, self.name.unwrap_or_default());
        agent.version = self.version;
        // Assumed: a missing `offline` means the platform does not consider the agent offline.
        agent.offline = self.offline.unwrap_or(false);
        agent.last_heartbeat = timestamp(&agent.id, "lastHeartbeatAt", self.last_heartbeat_at);
        agent.created_at = timestamp(&agent.id, "createdAt", self.created_at);
        match timestamp(
            &agent.id,
            "__accessTokenLastModifiedAt",
            self.token_modified_at,
        ) {
            Some(rotated) => {
                agent.token_rotated = Some(rotated);
                agent.token_rotated_source = TokenDateSource::Rotation;
            }
            // A token that was never rotated is as old as the agent.
            None => {
                agent.token_rotated = agent.created_at;
                agent.token_rotated_source = TokenDateSource::Created;
            }
        }
        Some(agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<Option<Agent>>, serde_json::Error> {
        let records: Vec<Record<RawAgent>> = serde_json::from_str(json)?;
        Ok(records
            .into_iter()
            .map(|r| r.0.and_then(RawAgent::into_agent))
            .collect())
    }

    #[test]
    fn first_page_keeps_a_base_path_and_adds_limit_only_when_configured() {
        let base = Url::parse("https://proxy.example/celigo/").unwrap();
        assert_eq!(
            first_page(&base, Some(500)).as_str(),
            "https://proxy.example/celigo/v1/agents?include=name%2Cversion%2Coffline%2ClastHeartbeatAt%2C__accessTokenLastModifiedAt%2CcreatedAt&limit=500"
        );
        let base = Url::parse("https://api.integrator.io").unwrap();
        let url = first_page(&base, None);
        assert_eq!(url.path(), "/v1/agents");
        assert!(!url.query().unwrap_or("").contains("limit"), "saw {url}");
    }

    #[test]
    fn wrongly_typed_fields_drop_only_themselves_and_odd_elements_are_skipped() {
        let agents = parse(
            r#"[{"_id":"a","name":"A","offline":"yes","version":7,"lastHeartbeatAt":{"x":[1,2]},"extra":[{"y":null}]},
                "str", 5, null, [1,[2]], {"_id":42,"name":"B"}, {"name":"C"}, {"_id":""}]"#,
        )
        .unwrap();
        assert_eq!(agents.len(), 8);
        let a = agents[0].as_ref().expect("the first record is valid");
        assert_eq!(
            (
                a.id.as_str(),
                a.name.as_str(),
                a.offline,
                &a.version,
                a.last_heartbeat
            ),
            ("a", "A", false, &None, None)
        );
        assert!(
            agents[1..].iter().all(Option::is_none),
            "saw {:?}",
            &agents[1..]
        );
    }

    #[test]
    fn malformed_json_and_a_non_array_fail_without_quoting_the_body() {
        for body in [r#"[{"_id":"a""#, r#"{"_id":"hunter2"}"#, r#""hunter2""#, ""] {
            let e = serde_json::from_str::<Vec<Record<RawAgent>>>(body)
                .err()
                .expect("must fail");
            let message = describe(&e, AGENT_ARRAY);
            assert!(
                !message.contains("hunter2"),
                "body {body:?} gave {message:?}"
            );
        }
    }
}
