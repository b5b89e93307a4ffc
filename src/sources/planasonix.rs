//! The Planasonix source: lists pipeline agents with `GET /api/agents`, following the `meta.page.cursor` of each
//! page, and, with `health: true`, asks `GET /api/agents/{id}/health` about each agent at a bounded concurrency.
//!
//! Records are read field by field (see [`super::record`]); serde_json skips every other field as `IgnoredAny` without
//! storing it, so an `enrollment_token` or any other token an endpoint sends never reaches an [`Agent`].
//!
//! Planasonix exposes no token-rotation date, so these agents have no token series and the token rules stay silent
//! for them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use url::Url;

use crate::config::sources::SourceConfig;
use crate::domain::{Agent, Health, Provider};
use crate::sources::http::{Auth, display_url};
use crate::sources::record::{
    Document, Fields, Record, Scalar, describe, keep_or_skip, object_members, read_agents,
    timestamp,
};
use crate::sources::{Account, BoxFuture, PollOutcome, PollStats, Source, UpstreamError};

/// How long after its last heartbeat an `active` agent still counts as online.
///
/// Assumed: Planasonix publishes no offline threshold. `/api/agents/connected` lists agents seen in "typically the last
/// 2 minutes"; five minutes leaves room for a poll interval on top of that, and is the threshold Calyptia's own CLI
/// uses, so both new providers mean the same thing by `onprem_agent_offline`.
pub const OFFLINE_AFTER: Duration = Duration::from_secs(5 * 60);

/// The page size asked for when `page_size` is not configured. The documented example shows 50; 100 halves the
/// requests for a large fleet and is still a small page.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Bytes in one of the health document's `disk_free_gb`. Assumed: decimal gigabytes, as the name says "gb", not "gib".
const BYTES_PER_GB: f64 = 1e9;

/// One Planasonix workspace.
#[derive(Debug)]
pub struct PlanasonixSource {
    /// Name, first page (`{base_url}/api/agents?limit=N`; later pages add `cursor=`), page cap and HTTP client.
    account: Account,
    /// `{base_url}`, the root the agent and health paths are appended to.
    base: Url,
    /// Health polling, when configured.
    health: Option<HealthPolling>,
}

/// How the per-agent health calls of one poll are bounded.
#[derive(Debug, Clone, Copy)]
struct HealthPolling {
    /// Calls in flight at once (`health_concurrency`).
    concurrency: usize,
    /// The time all health calls of one poll may take together. Half the poll interval by default, so that a slow
    /// health endpoint can never make polls overlap; calls still waiting or running when it runs out are abandoned
    /// and counted as health failures, and those agents are exported without health figures.
    budget: Duration,
}

impl PlanasonixSource {
    /// Builds the source from its validated configuration. Fails only if the HTTP client cannot be built.
    ///
    /// A `base_url` with a path keeps it: the list lives at `{base_url}/api/agents`.
    pub fn new(config: SourceConfig) -> Result<PlanasonixSource, reqwest::Error> {
        let mut base = config.base_url.clone();
        base.set_fragment(None);
        base.set_query(None);
        let first = first_page(&base, config.page_size.unwrap_or(DEFAULT_PAGE_SIZE));
        let auth = Auth::Bearer(config.token.clone());
        Ok(PlanasonixSource {
            account: Account::new(&config, auth, first)?,
            base,
            health: config.health.then_some(HealthPolling {
                concurrency: config.health_concurrency.max(1),
                budget: config.poll_interval / 2,
            }),
        })
    }

    /// Replaces the first backoff delay of the retry policy (250 ms by default). Tests set it to a millisecond.
    pub fn with_backoff_base(mut self, base: Duration) -> PlanasonixSource {
        self.account.set_backoff_base(base);
        self
    }

    /// Replaces the time budget of one poll's health calls (half the poll interval by default).
    pub fn with_health_budget(mut self, budget: Duration) -> PlanasonixSource {
        if let Some(health) = &mut self.health {
            health.budget = budget;
        }
        self
    }

    /// One complete poll: every page, then (if configured) the health of every agent, or the first list error.
    async fn poll_all(&self) -> Result<PollOutcome, UpstreamError> {
        let mut stats = PollStats::default();
        let mut pager = self.account.pager();
        let mut listed: Vec<Listed> = Vec::new();
        let mut next = Some(self.account.first_page.clone());
        while let Some(url) = next.take() {
            // Assumed: a 204 means "no agents", as it does for Celigo, though Planasonix documents 200 with `data: []`.
            let Some(page) = self.account.http.page(&mut pager, &url, &mut stats).await? else {
                break;
            };
            let cursor = read_page(
                &page.body,
                &page.url,
                &self.account.name,
                &mut listed,
                &mut stats,
            )?;
            next = cursor.map(|cursor| with_cursor(&self.account.first_page, &cursor));
        }
        if let Some(health) = self.health {
            self.poll_health(health, &mut listed, &mut stats).await;
        }
        let now = Timestamp::now();
        let agents = listed
            .into_iter()
            .map(|mut l| {
                l.agent.offline = is_offline(l.active, l.agent.last_heartbeat, now);
                l.agent
            })
            .collect();
        Ok(PollOutcome { agents, stats })
    }

    /// Asks for the health of every agent that is not revoked, `concurrency` calls at a time, within the budget.
    /// A failed call leaves its agent without figures and counts in `stats.health_failures`; it never fails the poll.
    ///
    /// Revoked agents are skipped: their credentials are void and they run no work, so there is no health to report.
    async fn poll_health(
        &self,
        health: HealthPolling,
        listed: &mut [Listed],
        stats: &mut PollStats,
    ) {
        let deadline = tokio::time::Instant::now() + health.budget;
        let permits = Arc::new(Semaphore::new(health.concurrency));
        let mut calls = JoinSet::new();
        for (index, l) in listed.iter().enumerate().filter(|(_, l)| !l.revoked) {
            let url = health_url(&self.base, &l.agent.id);
            let (http, permits) = (self.account.http.clone(), permits.clone());
            calls.spawn(async move {
                let mut stats = PollStats::default();
                let result = tokio::time::timeout_at(deadline, async {
                    let _permit = permits
                        .acquire_owned()
                        .await
                        .map_err(|_| "the health call limiter closed".to_string())?;
                    let fetched = http
                        .get(&url, &mut stats)
                        .await
                        .map_err(|e| e.to_string())?;
                    serde_json::from_slice::<Document<HealthFields>>(&fetched.body)
                        .map(|doc| doc.0)
                        .map_err(|e| {
                            format!(
                                "{}: cannot decode the health document: {}",
                                display_url(&fetched.url),
                                describe(&e, "a JSON object")
                            )
                        })
                })
                .await
                .unwrap_or_else(|_| Err("the per-poll health budget ran out".to_string()));
                (index, result, stats)
            });
        }
        while let Some(joined) = calls.join_next().await {
            let (index, result, call_stats) = match joined {
                Ok(done) => done,
                Err(e) => {
                    stats.health_failures += 1;
                    tracing::debug!(account = %self.account.name, error = %e, "a health call task failed");
                    continue;
                }
            };
            stats.requests += call_stats.requests;
            stats.bytes += call_stats.bytes;
            let l = &mut listed[index];
            match result {
                Ok(fields) => fields.apply(&mut l.agent),
                Err(message) => {
                    stats.health_failures += 1;
                    tracing::debug!(
                        account = %self.account.name,
                        agent_id = %l.agent.id,
                        error = %message,
                        "health call failed; exporting the agent without health figures"
                    );
                }
            }
        }
    }
}

impl Source for PlanasonixSource {
    fn name(&self) -> &str {
        &self.account.name
    }

    fn provider(&self) -> Provider {
        Provider::Planasonix
    }

    fn poll(&self) -> BoxFuture<'_, Result<PollOutcome, UpstreamError>> {
        Box::pin(self.poll_all())
    }

    fn not_before(&self) -> Option<jiff::Timestamp> {
        self.account.http.not_before()
    }
}

/// Returns true if and only if the agent must count as offline at `now`: unless its status is `active` **and** its
/// last heartbeat is at most [`OFFLINE_AFTER`] old, it is offline. So a revoked or pending agent is offline, and so is
/// an active agent that never sent a heartbeat. A heartbeat in the future (clock skew) counts as recent.
pub fn is_offline(active: bool, last_heartbeat: Option<Timestamp>, now: Timestamp) -> bool {
    let recent = last_heartbeat.is_some_and(|t| {
        let age = now.duration_since(t);
        age.as_secs_f64() <= OFFLINE_AFTER.as_secs_f64()
    });
    !(active && recent)
}

/// `{base}/api/agents?limit=N`.
fn first_page(base: &Url, limit: u32) -> Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().extend(["api", "agents"]);
    }
    url.query_pairs_mut()
        .append_pair("limit", &limit.to_string());
    url
}

/// The first page's URL with `cursor=` added: the same filters and limit, the next position.
fn with_cursor(first: &Url, cursor: &str) -> Url {
    let mut url = first.clone();
    url.query_pairs_mut().append_pair("cursor", cursor);
    url
}

/// `{base}/api/agents/{id}/health`. The id comes from the upstream, so it is pushed as one percent-encoded path
/// segment: an id such as `../x` cannot change the path.
fn health_url(base: &Url, id: &str) -> Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(["api", "agents"])
            .push(id)
            .push("health");
    }
    url
}

/// One agent from the list, with what the offline rule and the health calls need besides the [`Agent`] itself.
struct Listed {
    agent: Agent,
    /// `status` is `active`.
    active: bool,
    /// `status` is `revoked`: no health call.
    revoked: bool,
}

/// The fields of an agent record we read. Holds no secret: `enrollment_token` is not among the keys.
#[derive(Default)]
struct AgentFields {
    id: Option<String>,
    label: Option<String>,
    platform: Option<String>,
    version: Option<String>,
    status: Option<String>,
    last_seen_at: Option<String>,
    created_at: Option<String>,
}

impl Fields<'_> for AgentFields {
    const KEYS: &'static [&'static str] = &[
        "id",
        "label",
        "platform",
        "version",
        "status",
        "last_seen_at",
        "created_at",
    ];

    fn set(&mut self, index: usize, value: Scalar<'_>) {
        let value = value.string();
        match index {
            0 => self.id = value,
            1 => self.label = value,
            2 => self.platform = value,
            3 => self.version = value,
            4 => self.status = value,
            5 => self.last_seen_at = value,
            _ => self.created_at = value,
        }
    }
}

impl AgentFields {
    /// The agent, or `None` when the record has no non-empty string `id`.
    ///
    /// `status` and `platform` go on the info metric, in that order; an absent one is an empty label (which
    /// Prometheus treats as no label). Assumed: `status` is compared case-insensitively.
    fn into_listed(self) -> Option<Listed> {
        let id = self.id?;
        let mut agent = Agent::new(id, self.label.unwrap_or_default());
        agent.version = self.version;
        agent.last_heartbeat = timestamp(&agent.id, "last_seen_at", self.last_seen_at.as_deref());
        agent.created_at = timestamp(&agent.id, "created_at", self.created_at.as_deref());
        let status = self.status.unwrap_or_default();
        let active = status.eq_ignore_ascii_case("active");
        let revoked = status.eq_ignore_ascii_case("revoked");
        agent.info = vec![
            ("status", status),
            ("platform", self.platform.unwrap_or_default()),
        ];
        Some(Listed {
            agent,
            active,
            revoked,
        })
    }
}

/// The fields of a health document we read.
///
/// Assumed: `cpu_percent` and `memory_percent` hold 0–100, as their names say and the documented example (34.2,
/// 61.0) shows, so 0.5 means half a percent, not half. Should a version send `cpu_ratio` or `memory_ratio` instead,
/// those are read as 0–1. Either is clamped into 0–1 (a multi-core reading over 100 % counts as full) and a negative
/// value is dropped. `disk_free_gb` is decimal gigabytes; a `disk_free_bytes` field, if sent, wins. `last_error` is
/// read when it is a non-empty string; `null`, an empty string or another type means "no error".
#[derive(Default)]
struct HealthFields {
    heartbeat_at: Option<String>,
    cpu_percent: Option<f64>,
    memory_percent: Option<f64>,
    cpu_ratio: Option<f64>,
    memory_ratio: Option<f64>,
    disk_free_gb: Option<f64>,
    disk_free_bytes: Option<f64>,
    active_jobs: Option<f64>,
    queue_depth: Option<f64>,
    last_error: Option<String>,
}

impl Fields<'_> for HealthFields {
    const KEYS: &'static [&'static str] = &[
        "heartbeat_at",
        "cpu_percent",
        "memory_percent",
        "cpu_ratio",
        "memory_ratio",
        "disk_free_gb",
        "disk_free_bytes",
        "active_jobs",
        "queue_depth",
        "last_error",
    ];

    fn set(&mut self, index: usize, value: Scalar<'_>) {
        match index {
            0 => self.heartbeat_at = value.string(),
            1 => self.cpu_percent = value.number(),
            2 => self.memory_percent = value.number(),
            3 => self.cpu_ratio = value.number(),
            4 => self.memory_ratio = value.number(),
            5 => self.disk_free_gb = value.number(),
            6 => self.disk_free_bytes = value.number(),
            7 => self.active_jobs = value.number(),
            8 => self.queue_depth = value.number(),
            _ => self.last_error = value.string(),
        }
    }
}

impl HealthFields {
    /// Attaches the figures to `agent`. A `heartbeat_at` later than the list's `last_seen_at` replaces it: both are
    /// heartbeats the platform received, and the health call happened after the list was read.
    fn apply(self, agent: &mut Agent) {
        if let Some(beat) = timestamp(&agent.id, "heartbeat_at", self.heartbeat_at.as_deref()) {
            if agent.last_heartbeat.is_none_or(|listed| beat > listed) {
                agent.last_heartbeat = Some(beat);
            }
        }
        let ratio = |ratio: Option<f64>, percent: Option<f64>| {
            ratio
                .or(percent.map(|p| p / 100.0))
                .filter(|r| *r >= 0.0)
                .map(|r| r.min(1.0))
        };
        let count = |v: Option<f64>| v.filter(|v| *v >= 0.0);
        agent.health = Some(Box::new(Health {
            cpu_ratio: ratio(self.cpu_ratio, self.cpu_percent),
            memory_ratio: ratio(self.memory_ratio, self.memory_percent),
            disk_free_bytes: count(
                self.disk_free_bytes
                    .or(self.disk_free_gb.map(|gb| gb * BYTES_PER_GB)),
            ),
            active_jobs: count(self.active_jobs),
            queue_depth: count(self.queue_depth),
            last_error: self.last_error,
        }));
    }
}

/// Reads one list page onto `listed` and returns the next cursor. One bad record costs only itself, as in
/// [`read_agents`]: when the page does not decode in one pass (a byte that is not UTF-8, a value serde_json refuses),
/// its envelope is taken apart with [`object_members`] and its `data` read record by record, the bad ones skipped and
/// counted in `stats.invalid_records`. Only a body that is neither an array nor an object with a `data` array fails
/// the page, with the one-pass error (which never quotes the body).
fn read_page(
    body: &[u8],
    url: &Url,
    account: &str,
    listed: &mut Vec<Listed>,
    stats: &mut PollStats,
) -> Result<Option<String>, UpstreamError> {
    let error = match serde_json::from_slice::<Page>(body) {
        Ok(parsed) => {
            listed.reserve(parsed.records.len());
            for (index, record) in parsed.records.into_iter().enumerate() {
                let agent = record.0.and_then(AgentFields::into_listed);
                keep_or_skip(
                    agent,
                    listed,
                    &mut stats.invalid_records,
                    account,
                    url,
                    index,
                );
            }
            return Ok(parsed.cursor);
        }
        Err(e) => e,
    };
    let failed = || UpstreamError::Decode {
        url: display_url(url),
        message: describe(
            &error,
            "a JSON array of agents or an object with a data array",
        ),
    };
    let (data, meta) = if body.trim_ascii_start().starts_with(b"[") {
        (body, None)
    } else {
        let members = object_members(body).ok_or_else(failed)?;
        let find = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        (find("data").ok_or_else(failed)?, find("meta"))
    };
    let cursor = match meta {
        Some(meta) => serde_json::from_slice::<Meta<'_>>(meta)
            .map_err(|_| failed())?
            .page
            .and_then(|p| p.cursor)
            .and_then(cursor_text),
        None => None,
    };
    let skipped =
        read_agents(data, url, account, AgentFields::into_listed, listed).map_err(|_| failed())?;
    stats.invalid_records += skipped;
    Ok(cursor)
}

/// The text of a cursor: a non-empty string, or a whole number as its decimal text; anything else ends the list.
fn cursor_text(c: Scalar<'_>) -> Option<String> {
    match c {
        Scalar::Str(s) if !s.is_empty() => Some(s.into_owned()),
        Scalar::Num(n) if n.fract() == 0.0 => Some(format!("{n:.0}")),
        _ => None,
    }
}

/// One list page: the records and the next cursor.
///
/// Accepts the documented envelope `{"data":[...],"meta":{"page":{"limit":N,"cursor":C}}}` and, because some
/// Planasonix endpoints answer with one (unconfirmed for this one), a bare array, which has no cursor and so is the
/// only page. Assumed: the cursor is the *next* page's cursor, and `null`, an absent one or an empty string means
/// this is the last page; a numeric cursor is used as its decimal text.
struct Page {
    records: Vec<Record<AgentFields>>,
    cursor: Option<String>,
}

impl<'de> Deserialize<'de> for Page {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Page, D::Error> {
        deserializer.deserialize_any(PageVisitor)
    }
}

struct PageVisitor;

impl<'de> Visitor<'de> for PageVisitor {
    type Value = Page;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of agents or an object with a data array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Page, A::Error> {
        let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(record) = seq.next_element()? {
            records.push(record);
        }
        Ok(Page {
            records,
            cursor: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page, A::Error> {
        let mut records = None;
        let mut cursor = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "data" => records = Some(map.next_value::<Vec<Record<AgentFields>>>()?),
                "meta" => cursor = map.next_value::<Meta<'de>>()?.page.and_then(|p| p.cursor),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let records = records.ok_or_else(|| de::Error::missing_field("data"))?;
        let cursor = cursor.and_then(cursor_text);
        Ok(Page { records, cursor })
    }
}

/// `meta` of a list page; every other key is ignored.
#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(default, borrow)]
    page: Option<PageMeta<'a>>,
}

/// `meta.page`.
#[derive(Deserialize)]
struct PageMeta<'a> {
    #[serde(default, borrow)]
    cursor: Option<Scalar<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn an_agent_is_online_if_and_only_if_it_is_active_and_seen_within_five_minutes() {
        let now = ts("2025-03-27T15:00:00Z");
        let table = [
            (true, Some("2025-03-27T14:59:30Z"), false),
            (true, Some("2025-03-27T14:55:00Z"), false),
            (true, Some("2025-03-27T14:54:59Z"), true),
            (true, Some("2025-03-27T15:01:00Z"), false),
            (true, None, true),
            (false, Some("2025-03-27T14:59:30Z"), true),
            (false, None, true),
        ];
        for (active, seen, offline) in table {
            assert_eq!(
                is_offline(active, seen.map(ts), now),
                offline,
                "active={active} seen={seen:?}"
            );
        }
    }

    #[test]
    fn pages_accept_the_envelope_and_a_bare_array_and_read_the_cursor() {
        let page: Page = serde_json::from_str(
            r#"{"data":[{"id":"a","enrollment_token":"plnx_enroll_x"},"junk"],"meta":{"page":{"limit":2,"cursor":"c2"}},"links":{}}"#,
        )
        .unwrap();
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.cursor.as_deref(), Some("c2"));
        for last in [
            r#"{"data":[],"meta":{"page":{"limit":2,"cursor":null}}}"#,
            r#"{"data":[],"meta":{"page":{"cursor":""}}}"#,
            r#"{"data":[]}"#,
            r#"[]"#,
        ] {
            let page: Page = serde_json::from_str(last).unwrap();
            assert_eq!(page.cursor, None, "{last}");
        }
        let numeric: Page =
            serde_json::from_str(r#"{"data":[],"meta":{"page":{"cursor":42}}}"#).unwrap();
        assert_eq!(numeric.cursor.as_deref(), Some("42"));
        assert!(serde_json::from_str::<Page>(r#"{"meta":{}}"#).is_err());
        assert!(serde_json::from_str::<Page>(r#"{"data":{"id":"a"}}"#).is_err());
    }

    #[test]
    fn health_percentages_become_ratios_and_gigabytes_become_bytes() {
        let doc: Document<HealthFields> = serde_json::from_str(
            r#"{"data":{"agent_id":"a","status":"healthy","heartbeat_at":"2025-03-27T14:59:30Z","cpu_percent":34.2,
                "memory_percent":"61","disk_free_gb":412.5,"active_jobs":2,"queue_depth":0,"last_error":null}}"#,
        )
        .unwrap();
        let mut agent = Agent::new("a", "A");
        doc.0.apply(&mut agent);
        let health = agent.health.clone().unwrap();
        assert!(
            (health.cpu_ratio.unwrap() - 0.342).abs() < 1e-9,
            "{health:?}"
        );
        assert!(
            (health.memory_ratio.unwrap() - 0.61).abs() < 1e-9,
            "{health:?}"
        );
        assert_eq!(health.disk_free_bytes, Some(412.5e9));
        assert_eq!(
            (health.active_jobs, health.queue_depth),
            (Some(2.0), Some(0.0))
        );
        assert_eq!(health.last_error, None);
        assert_eq!(agent.last_heartbeat, Some(ts("2025-03-27T14:59:30Z")));

        let bare: Document<HealthFields> = serde_json::from_str(
            r#"{"cpu_ratio":0.5,"cpu_percent":99,"memory_percent":250,"queue_depth":-1,"last_error":"disk full"}"#,
        )
        .unwrap();
        let mut agent = Agent::new("b", "B");
        bare.0.apply(&mut agent);
        let health = agent.health.unwrap();
        assert_eq!(
            (health.cpu_ratio, health.memory_ratio, health.queue_depth),
            (Some(0.5), Some(1.0), None)
        );
        assert_eq!(health.last_error.as_deref(), Some("disk full"));
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_the_agent_id() {
        let base = Url::parse("https://proxy.example/planasonix/").unwrap();
        let first = first_page(&base, 50);
        assert_eq!(
            first.as_str(),
            "https://proxy.example/planasonix/api/agents?limit=50"
        );
        assert_eq!(
            with_cursor(&first, "a b").as_str(),
            "https://proxy.example/planasonix/api/agents?limit=50&cursor=a+b"
        );
        assert_eq!(
            health_url(&base, "../x").as_str(),
            "https://proxy.example/planasonix/api/agents/..%2Fx/health"
        );
    }

    #[test]
    fn one_bad_record_in_an_envelope_costs_only_itself_and_the_cursor_is_kept() {
        let url = Url::parse("http://planasonix.invalid/v2/agents").unwrap();
        let bodies: [&[u8]; 3] = [
            b"{\"data\":[{\"id\":\"a1\",\"label\":\"caf\xe9\"},{\"id\":\"a2\"},{\"id\":\"a3\",\"label\":1e999}],\
              \"meta\":{\"page\":{\"cursor\":\"c2\"}}}",
            b"{\"meta\":{\"page\":{\"cursor\":7}},\"data\":[{\"id\":\"a2\"},{\"id\":\"b\xff\"}]}",
            b"[{\"id\":\"a2\",\"label\":\"\xc3\"}, {\"id\":\"a2\"}]",
        ];
        // The next cursor, and how many records were skipped: a1 and a3, b, the first a2.
        let expected = [(Some("c2"), 2), (Some("7"), 1), (None, 1)];
        for (body, (want, skipped)) in bodies.iter().zip(expected) {
            let mut listed = Vec::new();
            let mut stats = PollStats::default();
            let cursor = read_page(body, &url, "acct", &mut listed, &mut stats)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
            assert_eq!(cursor.as_deref(), want);
            let ids: Vec<&str> = listed.iter().map(|l| l.agent.id.as_str()).collect();
            assert_eq!(ids, ["a2"], "{}", String::from_utf8_lossy(body));
            assert_eq!(
                stats.invalid_records,
                skipped,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for broken in [
            &b"{\"data\":[{\"id\":\"a1\"}"[..],
            b"{\"meta\":{}}",
            b"\"x\"",
        ] {
            let err = read_page(
                broken,
                &url,
                "acct",
                &mut Vec::new(),
                &mut PollStats::default(),
            )
            .expect_err("a broken page fails");
            assert!(matches!(err, UpstreamError::Decode { .. }), "{err}");
        }
    }
}
