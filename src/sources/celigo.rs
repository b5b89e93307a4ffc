//! The Celigo integrator.io source: lists on-premise agents with `GET /v1/agents`, following `Link: rel="next"`
//! pages, and turns each record into an [`Agent`].
//!
//! The request asks for a projection (`include=`) of only the fields we use, so a conforming server never sends the
//! agents' `accessToken`. Whether `/v1/agents` honours projection is unconfirmed, so parsing does not rely on it: each
//! record is read field by field into `RawAgent` (see [`super::record`]), and every other field, `accessToken`
//! included, is skipped by serde_json as `IgnoredAny` without being stored.

use std::borrow::Cow;
use std::time::Duration;

use url::Url;

use crate::config::sources::SourceConfig;
use crate::domain::{Agent, Provider, TokenDateSource};
use crate::sources::http::Auth;
use crate::sources::record::{Fields, Scalar, read_agents, timestamp};
use crate::sources::{Account, BoxFuture, PollOutcome, Source, UpstreamError};

/// The fields we ask the server to project. `_id` and `name` always come back; we list `name` anyway so the request
/// says what we read. Assumed: listing a field an agent does not carry is harmless (the reference says such fields are
/// "silently dropped").
const INCLUDE: &str = "name,version,offline,lastHeartbeatAt,__accessTokenLastModifiedAt,createdAt";

/// One integrator.io account.
#[derive(Debug)]
pub struct CeligoSource {
    /// Name, first page (`{base_url}/v1/agents?include=...[&limit=...]`), page cap and HTTP client.
    account: Account,
}

impl CeligoSource {
    /// Builds the source from its validated configuration. Fails only if the HTTP client cannot be built (the TLS
    /// backend failed to initialise).
    ///
    /// A `base_url` with a path (a proxy mounting the API under `/celigo`, say) keeps it: the list lives at
    /// `{base_url}/v1/agents`.
    pub fn new(config: SourceConfig) -> Result<CeligoSource, reqwest::Error> {
        let first = first_page(&config.base_url, config.page_size);
        let auth = Auth::Bearer(config.token.clone());
        Ok(CeligoSource {
            account: Account::new(&config, auth, first)?,
        })
    }

    /// Decodes one page of the agent list (`body`, fetched from `url`) onto the end of `agents`, exactly as a poll
    /// does, and returns how many records were skipped; see [`read_agents`]. Public so that the bench can time the
    /// decode apart from the network.
    pub fn decode_page(
        &self,
        body: &[u8],
        url: &Url,
        agents: &mut Vec<Agent>,
    ) -> Result<u64, UpstreamError> {
        read_agents(body, url, &self.account.name, RawAgent::into_agent, agents)
    }

    /// Replaces the first backoff delay of the retry policy (250 ms by default). Tests set it to a millisecond so
    /// that retries cost nothing.
    pub fn with_backoff_base(mut self, base: Duration) -> CeligoSource {
        self.account.set_backoff_base(base);
        self
    }
}

impl Source for CeligoSource {
    fn name(&self) -> &str {
        &self.account.name
    }

    fn provider(&self) -> Provider {
        Provider::Celigo
    }

    fn poll(&self) -> BoxFuture<'_, Result<PollOutcome, UpstreamError>> {
        let name = self.account.name.clone();
        let decode = move |body: &[u8], url: &Url, agents: &mut Vec<Agent>| {
            read_agents(body, url, &name, RawAgent::into_agent, agents)
        };
        Box::pin(self.account.list_linked_pages(decode))
    }

    fn not_before(&self) -> Option<jiff::Timestamp> {
        self.account.http.not_before()
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
    use crate::sources::record::Record;

    fn parse(json: &str) -> Result<Vec<Option<Agent>>, serde_json::Error> {
        let records: Vec<Record<RawAgent<'_>>> = serde_json::from_str(json)?;
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
        let url = Url::parse("https://api.integrator.io/v1/agents").unwrap();
        for body in [r#"[{"_id":"a""#, r#"{"_id":"hunter2"}"#, r#""hunter2""#, ""] {
            let e = read_agents(
                body.as_bytes(),
                &url,
                "test",
                RawAgent::into_agent,
                &mut Vec::new(),
            )
            .expect_err(body);
            let message = e.to_string();
            assert!(
                !message.contains("hunter2"),
                "body {body:?} gave {message:?}"
            );
        }
    }
}
