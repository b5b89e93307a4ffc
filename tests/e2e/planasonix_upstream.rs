//! How the Planasonix source behaves against scripted upstreams on real sockets: cursor pagination, the bare-array
//! form, every error status, retries, malformed bodies, the offline rule, health polling at bounded concurrency, the
//! last good snapshot, and the enrollment tokens that must never come back.

use crate::support::fake_upstream as fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake::{FakeUpstream, Reply};
use jiff::{Timestamp, ToSpan};
use onprem_agent_exporter::config::sources::SourceConfig;
use onprem_agent_exporter::domain::{Agent, Provider};
use onprem_agent_exporter::sources::planasonix::PlanasonixSource;
use onprem_agent_exporter::sources::{ErrorReason, PollOutcome, Source, UpstreamError};
use onprem_agent_exporter::status::Registry;
use secrecy::SecretString;
use serde_json::json;
use url::Url;

/// The API key the tests configure. Distinctive, so that a leak is easy to spot.
const TOKEN: &str = "plnx-api-key-4b8e2d7a91";

/// The enrollment token every full record carries.
const ENROLLMENT: &str = "plnx_enroll_01jq8leakcanary_only_shown_once";

fn config(base: &Url) -> SourceConfig {
    let mut config = SourceConfig::new(
        "etl",
        Provider::Planasonix,
        base.clone(),
        SecretString::from(TOKEN),
    );
    config.request_timeout = Duration::from_secs(5);
    config.max_attempts = 3;
    config
}

fn health_config(base: &Url, concurrency: usize) -> SourceConfig {
    let mut config = config(base);
    config.health = true;
    config.health_concurrency = concurrency;
    config
}

fn source(config: SourceConfig) -> PlanasonixSource {
    PlanasonixSource::new(config)
        .expect("the client builds")
        .with_backoff_base(Duration::from_millis(1))
}

async fn poll_ok(config: SourceConfig, upstream: &FakeUpstream) -> PollOutcome {
    match source(config).poll().await {
        Ok(outcome) => outcome,
        Err(e) => panic!(
            "expected a successful poll, got {e} ({:?}); requests: {:#?}",
            e.reason(),
            upstream.seen()
        ),
    }
}

async fn poll_err(config: SourceConfig) -> UpstreamError {
    match source(config).poll().await {
        Ok(outcome) => panic!("expected a failed poll, got {outcome:#?}"),
        Err(e) => e,
    }
}

fn recently() -> String {
    (Timestamp::now() - 30.seconds()).to_string()
}

/// A full agent record, seen 30 s ago, with its enrollment token.
fn agent(id: &str) -> serde_json::Value {
    json!({
        "id": id,
        "label": format!("agent {id}"),
        "platform": "linux",
        "version": "2.14.3",
        "status": "active",
        "last_seen_at": recently(),
        "created_at": "2025-02-10T11:20:00Z",
        "enrollment_token": ENROLLMENT,
        "token_expires_at": "2025-03-27T20:00:00Z",
    })
}

fn page(agents: Vec<serde_json::Value>, cursor: Option<&str>) -> Reply {
    Reply::json(json!({ "data": agents, "meta": { "page": { "limit": 2, "cursor": cursor } } }))
}

fn ids(outcome: &PollOutcome) -> Vec<&str> {
    outcome.agents.iter().map(|a| a.id.as_str()).collect()
}

fn by_id<'a>(outcome: &'a PollOutcome, id: &str) -> &'a Agent {
    outcome
        .agents
        .iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("no agent {id} in {outcome:#?}"))
}

fn info<'a>(agent: &'a Agent, key: &str) -> &'a str {
    agent
        .info
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("", |(_, v)| v.as_str())
}

#[tokio::test]
async fn the_cursor_is_followed_with_the_limit_until_it_is_null() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            page(vec![agent("a1"), agent("a2")], Some("c2")),
            page(vec![agent("a3")], None),
        ]
    })
    .await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert_eq!(ids(&outcome), ["a1", "a2", "a3"]);
    assert_eq!(
        upstream.targets(),
        ["/api/agents?limit=100", "/api/agents?limit=100&cursor=c2"]
    );
    assert!(
        upstream
            .seen()
            .iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))),
        "{:#?}",
        upstream.seen()
    );
    assert_eq!(outcome.stats.pages, 2, "{:?}", outcome.stats);
}

#[tokio::test]
async fn a_configured_page_size_is_sent_as_limit() {
    let upstream = FakeUpstream::start(|_| vec![page(vec![], None)]).await;
    let mut config = config(&upstream.base);
    config.page_size = Some(7);
    poll_ok(config, &upstream).await;
    assert_eq!(upstream.targets(), ["/api/agents?limit=7"]);
}

#[tokio::test]
async fn a_bare_array_is_accepted_as_the_only_page() {
    let upstream =
        FakeUpstream::start(|_| vec![Reply::json(json!([agent("a1"), agent("a2")]))]).await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert_eq!(ids(&outcome), ["a1", "a2"]);
    assert_eq!(upstream.targets().len(), 1);
}

#[tokio::test]
async fn a_cursor_that_comes_back_fails_with_pagination_loop() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            page(vec![agent("a1")], Some("c2")),
            page(vec![agent("a2")], Some("c3")),
            page(vec![agent("a3")], Some("c2")),
        ]
    })
    .await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::PaginationLoop, "{e}");
    assert_eq!(upstream.targets().len(), 3, "{:?}", upstream.targets());
}

#[tokio::test]
async fn more_pages_than_the_cap_fails_with_page_limit() {
    let upstream = FakeUpstream::route(|target| {
        let n: u32 = target
            .rsplit_once("cursor=")
            .and_then(|(_, c)| c.parse().ok())
            .unwrap_or(0);
        page(vec![agent(&format!("a{n}"))], Some(&(n + 1).to_string()))
    })
    .await;
    let mut config = config(&upstream.base);
    config.max_pages = 3;
    let e = poll_err(config).await;
    assert_eq!(e.reason(), ErrorReason::PageLimit, "{e}");
}

#[tokio::test]
async fn an_empty_list_and_no_content_are_successful_polls_with_zero_agents() {
    for reply in [
        page(vec![], None),
        Reply::status(204),
        Reply::json(json!([])),
    ] {
        let upstream = FakeUpstream::start(|_| vec![reply]).await;
        let outcome = poll_ok(config(&upstream.base), &upstream).await;
        assert!(outcome.agents.is_empty(), "{outcome:#?}");
    }
}

#[tokio::test]
async fn a_401_or_403_is_unauthorized_with_its_message_and_is_not_retried() {
    for status in [401, 403] {
        let upstream =
            FakeUpstream::start(|_| vec![Reply::raw(status, r#"{"message":"Invalid API key"}"#)])
                .await;
        let e = poll_err(config(&upstream.base)).await;
        assert_eq!(e.reason(), ErrorReason::Unauthorized, "{e}");
        assert!(e.to_string().contains("Invalid API key"), "{e}");
        assert_eq!(upstream.targets().len(), 1);
    }
}

#[tokio::test]
async fn a_429_waits_for_retry_after_and_then_succeeds() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::raw(429, r#"{"message":"Rate limit exceeded"}"#)
                .header("retry-after", "1")
                .header("x-ratelimit-remaining", "0"),
            page(vec![agent("a1")], None),
        ]
    })
    .await;
    let started = Instant::now();
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(ids(&outcome), ["a1"]);
    assert_eq!(outcome.stats.requests, 2);
}

#[tokio::test]
async fn a_429_on_every_attempt_fails_with_rate_limited() {
    let upstream =
        FakeUpstream::start(|_| vec![Reply::status(429).header("retry-after", "0")]).await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::RateLimited, "{e}");
    assert_eq!(upstream.targets().len(), 3);
}

#[tokio::test]
async fn a_500_then_a_page_succeeds_and_a_500_on_every_attempt_fails_with_http_5xx() {
    let upstream =
        FakeUpstream::start(|_| vec![Reply::status(500), page(vec![agent("a1")], None)]).await;
    assert_eq!(
        ids(&poll_ok(config(&upstream.base), &upstream).await),
        ["a1"]
    );

    let upstream = FakeUpstream::start(|_| vec![Reply::status(503)]).await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Http5xx, "{e}");
}

#[tokio::test]
async fn malformed_json_and_an_envelope_without_data_fail_with_decode() {
    for body in [
        r#"{"data":[{"id":"a1""#,
        r#"{"meta":{"page":{"cursor":null}}}"#,
        r#"{"data":{"id":"a1"}}"#,
        r#""plnx_enroll_secret""#,
    ] {
        let upstream = FakeUpstream::start(|_| vec![Reply::raw(200, body)]).await;
        let e = poll_err(config(&upstream.base)).await;
        assert_eq!(e.reason(), ErrorReason::Decode, "{body}: {e}");
        assert!(!e.to_string().contains("plnx_enroll"), "{e}");
    }
}

#[tokio::test]
async fn a_failure_on_a_later_page_fails_the_whole_poll() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            page(vec![agent("a1")], Some("c2")),
            Reply::raw(404, r#"{"message":"cursor expired"}"#),
        ]
    })
    .await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Http4xx, "{e}");
    assert!(e.to_string().contains("cursor expired"), "{e}");
}

#[tokio::test]
async fn bad_records_are_skipped_and_counted_and_a_bad_field_drops_only_itself() {
    let mut odd = agent("a2");
    odd["last_seen_at"] = json!("yesterday");
    odd["version"] = json!(2.14);
    let upstream = FakeUpstream::start(move |_| {
        vec![page(
            vec![
                agent("a1"),
                json!({"label": "no id"}),
                json!({"id": 42}),
                json!("junk"),
                odd,
            ],
            None,
        )]
    })
    .await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert_eq!(ids(&outcome), ["a1", "a2"]);
    assert_eq!(outcome.stats.invalid_records, 3, "{:?}", outcome.stats);
    let a2 = by_id(&outcome, "a2");
    assert_eq!((a2.last_heartbeat, a2.version.as_deref()), (None, None));
    assert_eq!(a2.name, "agent a2");
    assert!(a2.offline, "an active agent without a heartbeat is offline");
}

#[tokio::test]
async fn only_an_active_agent_seen_within_five_minutes_is_online_and_status_and_platform_are_labels()
 {
    let mut stale = agent("stale");
    stale["last_seen_at"] = json!((Timestamp::now() - 6.minutes()).to_string());
    let mut revoked = agent("revoked");
    revoked["status"] = json!("revoked");
    let mut pending = agent("pending");
    pending["status"] = json!("pending");
    pending["last_seen_at"] = json!(null);
    pending["platform"] = json!("windows");
    let upstream =
        FakeUpstream::start(move |_| vec![page(vec![agent("ok"), stale, revoked, pending], None)])
            .await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    let offline: Vec<(&str, bool)> = outcome
        .agents
        .iter()
        .map(|a| (a.id.as_str(), a.offline))
        .collect();
    assert_eq!(
        offline,
        [
            ("ok", false),
            ("stale", true),
            ("revoked", true),
            ("pending", true)
        ]
    );
    let pending = by_id(&outcome, "pending");
    assert_eq!(
        (info(pending, "status"), info(pending, "platform")),
        ("pending", "windows")
    );
    assert!(outcome.agents.iter().all(|a| a.token_rotated.is_none()));
    assert!(outcome.agents.iter().all(|a| a.health.is_none()));
}

#[tokio::test]
async fn the_enrollment_token_and_the_api_key_never_appear_in_the_outcome_or_an_error() {
    let upstream = FakeUpstream::start(|_| vec![page(vec![agent("a1")], None)]).await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    let shown = format!(
        "{outcome:?} {}",
        serde_json::to_string(&outcome.agents).unwrap()
    );
    assert!(
        !shown.contains(ENROLLMENT) && !shown.contains("enrollment"),
        "{shown}"
    );
    assert!(!shown.contains(TOKEN), "{shown}");
    let source = source(config(&upstream.base));
    assert!(!format!("{source:?}").contains(TOKEN));

    let upstream = FakeUpstream::start(|_| {
        vec![Reply::raw(
            401,
            format!(r#"{{"message":"key {TOKEN} revoked, enrollment {ENROLLMENT}"}}"#),
        )]
    })
    .await;
    let e = poll_err(config(&upstream.base)).await;
    assert!(!e.to_string().contains(TOKEN), "{e}");
}

#[tokio::test]
async fn a_failed_poll_keeps_the_last_good_snapshot() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            page(vec![agent("a1"), agent("a2")], None),
            Reply::status(500),
        ]
    })
    .await;
    let mut config = config(&upstream.base);
    config.max_attempts = 1;
    let source = source(config);
    let registry = Registry::new([("etl", Provider::Planasonix)]);
    assert!(onprem_agent_exporter::poller::poll_once(&source, &registry, 0).await);
    assert!(!onprem_agent_exporter::poller::poll_once(&source, &registry, 0).await);
    let status = registry.get(0);
    assert!(!status.up, "{status:?}");
    assert_eq!(
        status.agents.as_ref().map(|a| a.agents.len()),
        Some(2),
        "{status:?}"
    );
    assert_eq!(status.error_count(ErrorReason::Http5xx), 1);
}

/// A fake Planasonix with `n` active agents whose health calls take `delay`; the health of `failing` answers 500.
async fn fleet_with_health(
    n: usize,
    delay: Duration,
    failing: Option<&'static str>,
) -> FakeUpstream {
    FakeUpstream::route(move |target| {
        if target.starts_with("/api/agents?") {
            let mut agents: Vec<serde_json::Value> =
                (0..n).map(|i| agent(&format!("agt_{i}"))).collect();
            agents.push(json!({"id": "agt_revoked", "label": "gone", "status": "revoked"}));
            return page(agents, None);
        }
        let id = target
            .strip_prefix("/api/agents/")
            .and_then(|rest| rest.strip_suffix("/health"))
            .unwrap_or_default()
            .to_string();
        if Some(id.as_str()) == failing {
            return Reply::raw(500, r#"{"message":"health store unavailable"}"#);
        }
        Reply::json(json!({"data": {
            "agent_id": id, "status": "healthy", "heartbeat_at": recently(),
            "cpu_percent": 34.2, "memory_percent": 61.0, "disk_free_gb": 412.5,
            "active_jobs": 2, "queue_depth": 0,
            "last_error": if id == "agt_1" { json!("job 7 failed") } else { json!(null) },
            "enrollment_token": ENROLLMENT,
        }}))
        .delay(delay)
    })
    .await
}

#[tokio::test]
async fn health_calls_stay_within_the_concurrency_limit_and_one_failure_does_not_fail_the_poll() {
    let upstream = fleet_with_health(12, Duration::from_millis(150), Some("agt_5")).await;
    let outcome = poll_ok(health_config(&upstream.base, 3), &upstream).await;
    assert!(
        upstream.max_in_flight() <= 3,
        "{} health calls ran at once with a limit of 3",
        upstream.max_in_flight()
    );
    assert!(
        upstream.max_in_flight() >= 2,
        "health calls did not run concurrently: at most {} at once",
        upstream.max_in_flight()
    );
    assert_eq!(outcome.agents.len(), 13);
    assert_eq!(outcome.stats.health_failures, 1, "{:?}", outcome.stats);
    assert!(by_id(&outcome, "agt_5").health.is_none());
    let health = by_id(&outcome, "agt_1")
        .health
        .clone()
        .expect("agt_1 has health");
    assert!(
        (health.cpu_ratio.unwrap() - 0.342).abs() < 1e-9,
        "{health:?}"
    );
    assert!(
        (health.memory_ratio.unwrap() - 0.61).abs() < 1e-9,
        "{health:?}"
    );
    assert_eq!(health.disk_free_bytes, Some(412.5e9));
    assert_eq!(health.active_jobs, Some(2.0));
    assert_eq!(health.queue_depth, Some(0.0));
    assert_eq!(health.last_error.as_deref(), Some("job 7 failed"));
    assert_eq!(
        by_id(&outcome, "agt_2").health.as_ref().unwrap().last_error,
        None
    );
    // The revoked agent is listed but never asked about its health.
    assert!(by_id(&outcome, "agt_revoked").health.is_none());
    assert!(
        !upstream.targets().iter().any(|t| t.contains("agt_revoked")),
        "{:?}",
        upstream.targets()
    );
    // 1 list + 11 good health calls + 3 attempts at the failing one.
    assert_eq!(outcome.stats.requests, 15, "{:?}", outcome.stats);
    assert!(!format!("{outcome:?}").contains(ENROLLMENT));
}

#[tokio::test]
async fn health_calls_past_the_budget_are_abandoned_and_counted_without_failing_the_poll() {
    let upstream = fleet_with_health(4, Duration::from_secs(3), None).await;
    let source =
        source(health_config(&upstream.base, 2)).with_health_budget(Duration::from_millis(300));
    let started = Instant::now();
    let outcome = source
        .poll()
        .await
        .expect("the poll succeeds without health");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the budget was not enforced: {:?}",
        started.elapsed()
    );
    assert_eq!(outcome.agents.len(), 5);
    assert_eq!(outcome.stats.health_failures, 4, "{:?}", outcome.stats);
    assert!(outcome.agents.iter().all(|a| a.health.is_none()));
}

#[tokio::test]
async fn health_failures_are_counted_under_the_health_reason() {
    let upstream = fleet_with_health(3, Duration::ZERO, Some("agt_0")).await;
    let source = Arc::new(source(health_config(&upstream.base, 2)));
    let registry = Registry::new([("etl", Provider::Planasonix)]);
    assert!(onprem_agent_exporter::poller::poll_once(source.as_ref(), &registry, 0).await);
    let status = registry.get(0);
    assert!(status.up);
    assert_eq!(status.error_count(ErrorReason::Health), 1, "{status:?}");
}

#[tokio::test]
async fn a_non_utf8_record_and_an_invalid_value_are_skipped_as_invalid_record_and_the_page_and_cursor_kept()
 {
    // Page one as raw bytes, so it can carry what serde_json refuses in one pass: a label with a byte that is not
    // UTF-8 (0xE9, Latin-1 "é") and a label that is a number too large for a float, between two good records.
    let good = |id: &str| agent(id).to_string();
    let first = format!(
        "{{\"data\":[{},{{\"id\":\"latin1\",\"label\":\"caf\u{0}\"}},{},{{\"id\":\"huge\",\"label\":1e999}}],\
         \"meta\":{{\"page\":{{\"limit\":4,\"cursor\":\"c2\"}}}}}}",
        good("a1"),
        good("a2"),
    )
    .into_bytes();
    let first: Vec<u8> = first
        .into_iter()
        .map(|b| if b == 0 { 0xE9 } else { b })
        .collect();
    assert!(
        std::str::from_utf8(&first).is_err(),
        "the page must not be UTF-8"
    );
    let upstream = FakeUpstream::start(move |_| {
        vec![
            Reply::raw(200, first).header("content-type", "application/json"),
            page(vec![agent("a3")], None),
        ]
    })
    .await;
    let mut config = config(&upstream.base);
    config.max_attempts = 1;
    let source = source(config);
    let registry = Registry::new([("etl", Provider::Planasonix)]);
    assert!(
        onprem_agent_exporter::poller::poll_once(&source, &registry, 0).await,
        "requests: {:#?}",
        upstream.seen()
    );
    assert_eq!(
        upstream.targets(),
        ["/api/agents?limit=100", "/api/agents?limit=100&cursor=c2"],
        "the cursor of the page with bad records is followed"
    );
    let status = registry.get(0);
    assert!(status.up, "{status:?}");
    let mut listed: Vec<&str> = status
        .agents
        .as_ref()
        .expect("a snapshot")
        .agents
        .iter()
        .map(|a| a.id.as_str())
        .collect();
    listed.sort();
    assert_eq!(listed, ["a1", "a2", "a3"], "{status:?}");
    assert_eq!(
        status.error_count(ErrorReason::InvalidRecord),
        2,
        "{status:?}"
    );
}
