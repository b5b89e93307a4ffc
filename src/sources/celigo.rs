//! The Celigo integrator.io source: lists on-premise agents with `GET /v1/agents`, following `Link: rel="next"`
//! pages, and turns each record into an [`Agent`].
//!
//! The request asks for a projection (`include=`) of only the fields we use, so a conforming server never sends the
//! agents' `accessToken`. Whether `/v1/agents` honours projection is unconfirmed, so parsing does not rely on it: each
//! record is read field by field into `RawAgent` (see [`super::record`]), and every other field, `accessToken`
//! included, is skipped by the parser without being stored.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use url::Url;

use crate::config::sources::SourceConfig;
use crate::model::{Agent, Provider, TokenDateSource};
use crate::sources::http::{Auth, HttpClient, Pager, display_url, next_link};
use crate::sources::list::read_agents;
use crate::sources::record::{Fields, Scalar, timestamp};
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
    /// How many agents the last successful poll returned: the next poll reserves room for about as many up front,
    /// instead of growing (and copying) its list page by page.
    last_count: AtomicUsize,
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
            last_count: AtomicUsize::new(0),
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
    /// Decoding a page costs more CPU than receiving it, so pages are decoded on a thread of their own while the
    /// following pages are fetched. The fetcher runs at most [`DECODE_QUEUE`] pages ahead of the decoder, which
    /// keeps memory bounded; the decoder appends each page's agents to one list, in upstream order.
    async fn poll_all(&self) -> Result<PollOutcome, UpstreamError> {
        let mut stats = PollStats::default();
        let mut pager = Pager::new(&self.first_page, self.max_pages);
        let expected = self.last_count.load(Ordering::Relaxed);
        let (pages, decoder) = spawn_decoder(self.name.clone(), expected + expected / 16)?;
        let mut next = Some(self.first_page.clone());
        let fetched = async {
            while let Some(url) = next.take() {
                // Assumed: a 204 on a later page also means "nothing more", like the documented 204 for an empty
                // account.
                let Some(page) = self.http.page(&mut pager, &url, &mut stats).await? else {
                    break;
                };
                let following = next_link(&page.headers, &page.url).map_err(|e| e.at(&page.url));
                if pages.send((page.body, page.url)).await.is_err() {
                    // The decoder stopped at a bad page; its error is the one to report.
                    break;
                }
                next = following?;
            }
            Ok(())
        }
        .await;
        drop(pages);
        // A page that failed to decode came before whatever the fetcher ran into, so its error wins.
        let (agents, invalid) = decoder.await.map_err(|_| UpstreamError::Decode {
            url: "an agent page".to_string(),
            message: "the decoding thread stopped before it finished".to_string(),
        })??;
        fetched?;
        stats.invalid_records += invalid;
        self.last_count.store(agents.len(), Ordering::Relaxed);
        Ok(PollOutcome { agents, stats })
    }
}

/// How many fetched pages may wait for the decoder. Two keep the decoder busy while the next request is in flight;
/// more would only hold bodies in memory.
const DECODE_QUEUE: usize = 2;

/// A fetched page on its way to the decoder: the body and the URL it came from.
type PageBody = (Vec<u8>, Url);

/// What the decoder hands back: every agent in upstream order and how many records were skipped, or the first page
/// that failed.
type DecoderResult = Result<(Vec<Agent>, u64), UpstreamError>;

/// Starts the decoder of one poll on a thread of its own, named `celigo-decode` so that it can be told apart in
/// `top -H`, which ends with the poll. It decodes the pages sent to it in
/// order until the sender is dropped, or stops at the first page that fails (dropping the receiver, so the fetcher
/// stops too). `capacity` is room reserved up front for the agents, so the list is not grown and copied page by page.
///
/// The thread runs at the process's own priority. Lowering it (nice +10, +19) was measured and made polls slower:
/// with the fetcher at most [`DECODE_QUEUE`] pages ahead, a decoder that yields its core stalls the fetcher too.
fn spawn_decoder(
    account: String,
    capacity: usize,
) -> Result<
    (
        tokio::sync::mpsc::Sender<PageBody>,
        tokio::sync::oneshot::Receiver<DecoderResult>,
    ),
    UpstreamError,
> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<PageBody>(DECODE_QUEUE);
    let (done, result) = tokio::sync::oneshot::channel();
    let decode_all = move || {
        let mut agents = Vec::with_capacity(capacity);
        let mut invalid = 0;
        while let Some((body, url)) = receiver.blocking_recv() {
            match read_agents(&body, &url, &account, RawAgent::into_agent, &mut agents) {
                Ok(skipped) => invalid += skipped,
                Err(e) => {
                    let _ = done.send(Err(e));
                    return;
                }
            }
        }
        let _ = done.send(Ok((agents, invalid)));
    };
    std::thread::Builder::new()
        .name("celigo-decode".to_string())
        .spawn(decode_all)
        .map_err(|e| UpstreamError::Decode {
            url: "an agent page".to_string(),
            message: format!("cannot start a decoding thread: {e}"),
        })?;
    Ok((sender, result))
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

/// The fields of an agent record we read; everything else is skipped unread. Not `Debug`, and holds no secret: the
/// record's `accessToken` never reaches it. A wrongly typed field (`"offline": "yes"`, `"_id": 42`) drops only itself.
/// Strings are borrowed from the page where they hold no escape, so the timestamps are parsed without being copied.
#[derive(Default)]
struct RawAgent<'de> {
    id: Option<Cow<'de, str>>,
    name: Option<Cow<'de, str>>,
    version: Option<Cow<'de, str>>,
    offline: Option<bool>,
    last_heartbeat_at: Option<Cow<'de, str>>,
    token_modified_at: Option<Cow<'de, str>>,
    created_at: Option<Cow<'de, str>>,
}

impl<'de> Fields<'de> for RawAgent<'de> {
    const KEYS: &'static [&'static str] = &[
        "_id",
        "name",
        "version",
        "offline",
        "lastHeartbeatAt",
        "__accessTokenLastModifiedAt",
        "createdAt",
    ];

    fn set(&mut self, index: usize, value: Scalar<'de>) {
        match index {
            0 => self.id = value.text(),
            1 => self.name = value.text(),
            2 => self.version = value.text(),
            3 => self.offline = value.bool(),
            4 => self.last_heartbeat_at = value.text(),
            5 => self.token_modified_at = value.text(),
            _ => self.created_at = value.text(),
        }
    }
}

impl RawAgent<'_> {
    /// The agent, or `None` when the record has no non-empty string `_id`.
    fn into_agent(self) -> Option<Agent> {
        let id = self.id?.into_owned();
        // Assumed: `name` is always present (projection always returns it); a record without one gets an empty name
        // rather than being dropped, because the id alone identifies the agent.
        let mut agent = Agent::new(id, self.name.map(Cow::into_owned).unwrap_or_default());
        agent.version = self.version.map(Cow::into_owned);
        // Assumed: a missing `offline` means the platform does not consider the agent offline.
        agent.offline = self.offline.unwrap_or(false);
        agent.last_heartbeat = timestamp(
            &agent.id,
            "lastHeartbeatAt",
            self.last_heartbeat_at.as_deref(),
        );
        agent.created_at = timestamp(&agent.id, "createdAt", self.created_at.as_deref());
        match timestamp(
            &agent.id,
            "__accessTokenLastModifiedAt",
            self.token_modified_at.as_deref(),
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
    use crate::sources::list::each_record;

    fn parse(json: &str) -> Result<Vec<Option<Agent>>, crate::sources::list::ListError> {
        let mut agents = Vec::new();
        each_record(json.as_bytes(), |r: Option<RawAgent<'_>>| {
            agents.push(r.and_then(RawAgent::into_agent))
        })?;
        Ok(agents)
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
            let e = each_record(body.as_bytes(), |_: Option<RawAgent<'_>>| {}).expect_err(body);
            let message = e.describe("a JSON array of agent records");
            assert!(
                !message.contains("hunter2"),
                "body {body:?} gave {message:?}"
            );
        }
    }
}
