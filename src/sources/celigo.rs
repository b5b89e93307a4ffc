//! The Celigo integrator.io source: lists on-premise agents with `GET /v1/agents`, following `Link: rel="next"`
//! pages, and turns each record into an [`Agent`].
//!
//! The request asks for a projection (`include=`) of only the fields we use, so a conforming server never sends the
//! agents' `accessToken`. Whether `/v1/agents` honours projection is unconfirmed, so parsing does not rely on it: each
//! record is read field by field into `RawAgent`, and every other field, `accessToken` included, is skipped by the
//! parser without being stored.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use url::Url;

use crate::config::SourceConfig;
use crate::model::{Agent, Provider, TokenDateSource};
use crate::sources::http::{Auth, HttpClient, Pager, display_url, next_link};
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
    async fn poll_all(&self) -> Result<PollOutcome, UpstreamError> {
        let mut stats = PollStats::default();
        let mut pager = Pager::new(&self.first_page, self.max_pages);
        let mut agents = Vec::new();
        let mut next = Some(self.first_page.clone());
        while let Some(url) = next.take() {
            pager.visit(&url)?;
            let page = self.http.get(&url, &mut stats).await?;
            stats.pages += 1;
            // Assumed: a 204 on a later page also means "nothing more", like the documented 204 for an empty account.
            if page.status == StatusCode::NO_CONTENT {
                break;
            }
            let records: Vec<Record> =
                serde_json::from_slice(&page.body).map_err(|e| UpstreamError::Decode {
                    url: display_url(&page.url),
                    message: describe(&e),
                })?;
            agents.reserve(records.len());
            for (index, record) in records.into_iter().enumerate() {
                match record.0.and_then(RawAgent::into_agent) {
                    Some(agent) => agents.push(agent),
                    None => {
                        stats.invalid_records += 1;
                        tracing::debug!(
                            account = %self.name,
                            page = %display_url(&page.url),
                            index,
                            "skipping an agent record that is not an object with a string _id"
                        );
                    }
                }
            }
            next = next_link(&page.headers, &page.url).map_err(|e| e.at(&page.url))?;
        }
        Ok(PollOutcome { agents, stats })
    }
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

/// A decode error in words that never quote the body: serde_json's own messages can repeat a value from it.
fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "malformed JSON",
        Category::Eof => "truncated or empty JSON",
        Category::Data => "expected a JSON array of agent records",
        Category::Io => "cannot read the body",
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

/// One element of the page array: `Some` for an object, `None` for anything else (a string, a number, `null`, an
/// array), which the caller skips and counts. Decoding an element never fails on its type, so one bad record cannot
/// throw away its page; only malformed JSON fails the page.
struct Record(Option<RawAgent>);

/// The fields of an agent record we read; everything else is skipped unread. Not `Debug`, and holds no secret: the
/// record's `accessToken` never reaches it.
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

impl RawAgent {
    /// The agent, or `None` when the record has no string `_id` (or an empty one).
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

/// Parses an RFC 3339 timestamp, with or without fractional seconds. A value that does not parse drops only this
/// field; the rest of the record stays.
fn timestamp(id: &str, field: &'static str, value: Option<String>) -> Option<Timestamp> {
    let value = value?;
    match value.parse() {
        Ok(t) => Some(t),
        Err(_) => {
            let shown: String = value.chars().take(64).collect();
            tracing::debug!(agent_id = %id, field, value = ?shown, "ignoring a timestamp that does not parse");
            None
        }
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Record, D::Error> {
        deserializer.deserialize_any(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an agent record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut raw = RawAgent::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Id => raw.id = map.next_value::<Scalar>()?.string(),
                Key::Name => raw.name = map.next_value::<Scalar>()?.string(),
                Key::Version => raw.version = map.next_value::<Scalar>()?.string(),
                Key::Offline => raw.offline = map.next_value::<Scalar>()?.bool(),
                Key::LastHeartbeatAt => {
                    raw.last_heartbeat_at = map.next_value::<Scalar>()?.string()
                }
                Key::TokenModifiedAt => {
                    raw.token_modified_at = map.next_value::<Scalar>()?.string()
                }
                Key::CreatedAt => raw.created_at = map.next_value::<Scalar>()?.string(),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Record(Some(raw)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Record(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Record, E> {
        Ok(Record(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Record, E> {
        Ok(Record(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Record, E> {
        Ok(Record(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Record, E> {
        Ok(Record(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Record, E> {
        Ok(Record(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Record, E> {
        Ok(Record(None))
    }
}

/// The keys of an agent record we read. Matching on borrowed `&str` keeps unknown keys from being allocated.
enum Key {
    Id,
    Name,
    Version,
    Offline,
    LastHeartbeatAt,
    TokenModifiedAt,
    CreatedAt,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "_id" => Key::Id,
                    "name" => Key::Name,
                    "version" => Key::Version,
                    "offline" => Key::Offline,
                    "lastHeartbeatAt" => Key::LastHeartbeatAt,
                    "__accessTokenLastModifiedAt" => Key::TokenModifiedAt,
                    "createdAt" => Key::CreatedAt,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// The value of a field we read, whatever its JSON type, so that a wrongly typed field (`"offline": "yes"`,
/// `"_id": 42`) drops only that field instead of failing the page. Objects and arrays are skipped unread.
enum Scalar {
    Str(String),
    Bool(bool),
    Other,
}

impl Scalar {
    fn string(self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }

    fn bool(self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(b),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<Option<Agent>>, serde_json::Error> {
        let records: Vec<Record> = serde_json::from_str(json)?;
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
            let e = serde_json::from_str::<Vec<Record>>(body)
                .err()
                .expect("must fail");
            let message = describe(&e);
            assert!(
                !message.contains("hunter2"),
                "body {body:?} gave {message:?}"
            );
        }
    }
}
