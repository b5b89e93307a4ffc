//! How the Celigo source behaves against scripted upstreams on real sockets: pagination, projection that the server
//! may ignore, every error status, retries, timeouts, malformed bodies and the secrets that must never come back.

use crate::support::fake_upstream as fake;
use crate::support::free_port;

use std::time::{Duration, Instant};

use fake::{FakeUpstream, Reply};
use onprem_agent_exporter::config::sources::SourceConfig;
use onprem_agent_exporter::domain::{Agent, Provider, TokenDateSource};
use onprem_agent_exporter::sources::celigo::CeligoSource;
use onprem_agent_exporter::sources::{ErrorReason, PollOutcome, Source, UpstreamError};
use secrecy::SecretString;
use serde_json::json;
use url::Url;

/// The API token the tests configure. Distinctive, so that a leak is easy to spot.
const TOKEN: &str = "api-token-7f3c9a1e5b";

/// A source configuration for `base` with a short timeout and few attempts, so that failing cases end fast.
fn config(base: &Url) -> SourceConfig {
    let mut config = SourceConfig::new(
        "test",
        Provider::Celigo,
        base.clone(),
        SecretString::from(TOKEN),
    );
    config.request_timeout = Duration::from_secs(5);
    config.max_attempts = 3;
    config
}

fn source(config: SourceConfig) -> CeligoSource {
    CeligoSource::new(config)
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

/// A full agent record as the API returns it without projection.
fn agent(id: &str) -> serde_json::Value {
    json!({
        "_id": id,
        "name": format!("agent {id}"),
        "version": "3.4.1",
        "offline": false,
        "lastHeartbeatAt": "2025-03-27T14:59:30Z",
        "__accessTokenLastModifiedAt": "2025-01-22T20:59:27.690Z",
        "createdAt": "2024-06-01T08:00:00.000Z",
    })
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

fn ts(text: &str) -> jiff::Timestamp {
    text.parse().unwrap()
}

#[tokio::test]
async fn a_relative_next_link_is_followed() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::json(json!([agent("a1"), agent("a2")])).next("/v1/agents?skip=2&limit=2"),
            Reply::json(json!([agent("a3")])),
        ]
    })
    .await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert_eq!(
        ids(&outcome),
        ["a1", "a2", "a3"],
        "requests: {:?}",
        upstream.targets()
    );
    assert_eq!(upstream.targets()[1], "/v1/agents?skip=2&limit=2");
    assert_eq!(outcome.stats.pages, 2, "stats: {:?}", outcome.stats);
    assert_eq!(outcome.stats.requests, 2, "stats: {:?}", outcome.stats);
    assert!(outcome.stats.bytes > 0, "stats: {:?}", outcome.stats);
}

#[tokio::test]
async fn an_absolute_next_link_is_followed() {
    let upstream = FakeUpstream::start(|base| {
        vec![
            Reply::json(json!([agent("a1")])).next(base.join("v1/agents?skip=1").unwrap()),
            Reply::json(json!([agent("a2")])),
        ]
    })
    .await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert_eq!(
        ids(&outcome),
        ["a1", "a2"],
        "requests: {:?}",
        upstream.targets()
    );
    assert_eq!(upstream.targets()[1], "/v1/agents?skip=1");
}

#[tokio::test]
async fn next_is_picked_among_several_rels_in_one_link_header() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::json(json!([agent("a1")])).header(
                "link",
                r#"</v1/agents?skip=0>; rel="first", </v1/agents?skip=1>; rel="next", </v1/agents?skip=9>; rel="last""#,
            ),
            Reply::json(json!([agent("a2")])),
        ]
    })
    .await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert_eq!(
        ids(&outcome),
        ["a1", "a2"],
        "requests: {:?}",
        upstream.targets()
    );
    assert_eq!(upstream.targets()[1], "/v1/agents?skip=1");
}

#[tokio::test]
async fn next_is_found_in_a_second_link_header() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::json(json!([agent("a1")]))
                .header("link", r#"</v1/agents?skip=0>; rel="first""#)
                .header("link", r#"</v1/agents?skip=1>; rel="next""#),
            Reply::json(json!([agent("a2")])),
        ]
    })
    .await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert_eq!(
        ids(&outcome),
        ["a1", "a2"],
        "requests: {:?}",
        upstream.targets()
    );
}

#[tokio::test]
async fn a_next_link_to_a_page_already_fetched_fails_with_pagination_loop() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::json(json!([agent("a1")])).next("/v1/agents?skip=1"),
            Reply::json(json!([agent("a2")])).next("/v1/agents?skip=1"),
        ]
    })
    .await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::PaginationLoop, "saw {e}");
    assert!(e.to_string().contains("/v1/agents?skip=1"), "saw {e}");
    assert_eq!(
        upstream.targets().len(),
        2,
        "requests: {:?}",
        upstream.targets()
    );
}

#[tokio::test]
async fn more_pages_than_the_cap_fails_with_page_limit() {
    let upstream = FakeUpstream::start(|_| {
        (1..=5)
            .map(|n| {
                Reply::json(json!([agent(&format!("a{n}"))])).next(format!("/v1/agents?skip={n}"))
            })
            .collect()
    })
    .await;
    let mut config = config(&upstream.base);
    config.max_pages = 3;
    let e = poll_err(config).await;
    assert_eq!(e.reason(), ErrorReason::PageLimit, "saw {e}");
    assert_eq!(
        upstream.targets().len(),
        3,
        "requests: {:?}",
        upstream.targets()
    );
}

#[tokio::test]
async fn full_records_from_a_server_that_ignores_include_are_read_right_and_the_access_token_is_dropped()
 {
    let secret = "agent-access-token-d41d8cd98f";
    let mut full = agent("a1");
    full["accessToken"] = json!(secret);
    full["accessToken_hash"] = json!("hash-of-the-token");
    full["clientDetails"] = json!({"os": "linux", "nested": [{"token": secret}]});
    full["__tunnelInactive"] = json!(false);
    full["port"] = json!("8080");
    let upstream = FakeUpstream::start(|_| vec![Reply::json(json!([full]))]).await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;

    let target = &upstream.targets()[0];
    assert!(
        target.starts_with("/v1/agents?include=")
            && target.contains("lastHeartbeatAt")
            && !target.contains("limit="),
        "requested {target}"
    );
    let a1 = by_id(&outcome, "a1");
    assert_eq!(a1.name, "agent a1");
    assert_eq!(a1.version.as_deref(), Some("3.4.1"));
    assert!(!a1.offline);
    assert_eq!(a1.last_heartbeat, Some(ts("2025-03-27T14:59:30Z")));
    assert_eq!(a1.token_rotated, Some(ts("2025-01-22T20:59:27.690Z")));
    assert_eq!(a1.token_rotated_source, TokenDateSource::Rotation);
    assert_eq!(a1.created_at, Some(ts("2024-06-01T08:00:00Z")));
    let debug = format!("{outcome:?}");
    let serialized = serde_json::to_string(&outcome.agents).unwrap();
    assert!(
        !debug.contains(secret),
        "the access token leaked into Debug: {debug}"
    );
    assert!(
        !serialized.contains(secret),
        "the access token leaked into JSON: {serialized}"
    );
}

#[tokio::test]
async fn a_page_size_is_sent_as_limit_only_when_configured() {
    let upstream = FakeUpstream::start(|_| vec![Reply::status(204)]).await;
    let mut config = config(&upstream.base);
    config.page_size = Some(1000);
    poll_ok(config, &upstream).await;
    assert!(
        upstream.targets()[0].ends_with("&limit=1000"),
        "requests: {:?}",
        upstream.targets()
    );
}

#[tokio::test]
async fn no_content_is_a_successful_poll_with_zero_agents() {
    let upstream = FakeUpstream::start(|_| vec![Reply::status(204)]).await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert!(outcome.agents.is_empty(), "saw {outcome:#?}");
    assert_eq!(outcome.stats.pages, 1, "stats: {:?}", outcome.stats);
}

#[tokio::test]
async fn a_401_without_an_authorization_header_is_unauthorized_with_its_message() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::raw(401, r#"{"message":"Unauthorized"}"#),
            Reply::json(json!([])),
        ]
    })
    .await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Unauthorized, "saw {e}");
    assert!(e.to_string().ends_with(": Unauthorized"), "saw {e}");
    assert_eq!(
        upstream.targets().len(),
        1,
        "a 401 must not be retried; requests: {:?}",
        upstream.targets()
    );
}

#[tokio::test]
async fn a_401_for_a_bad_token_is_unauthorized_with_its_message() {
    let upstream = FakeUpstream::start(|_| {
        vec![Reply::raw(
            401,
            r#"{"message":"Bearer Authentication Failed"}"#,
        )]
    })
    .await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Unauthorized, "saw {e}");
    assert!(
        e.to_string()
            .contains("(401): Bearer Authentication Failed"),
        "saw {e}"
    );
}

#[tokio::test]
async fn a_403_is_unauthorized_and_not_retried() {
    let upstream = FakeUpstream::start(|_| {
        vec![Reply::raw(
            403,
            r#"{"errors":[{"code":"forbidden","message":"No access"}]}"#,
        )]
    })
    .await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Unauthorized, "saw {e}");
    assert!(
        e.to_string().contains("(403): forbidden: No access"),
        "saw {e}"
    );
    assert_eq!(
        upstream.targets().len(),
        1,
        "requests: {:?}",
        upstream.targets()
    );
}

#[tokio::test]
async fn another_4xx_is_http_4xx_with_the_envelope_message_and_not_the_raw_body() {
    let body = r#"{"errors":[{"code":"invalid_query_params","message":"Please provide either include or exclude"}],"debug":"internal-detail"}"#;
    let upstream = FakeUpstream::start(|_| vec![Reply::raw(400, body)]).await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Http4xx, "saw {e}");
    let shown = e.to_string();
    assert!(
        shown.contains("400: invalid_query_params: Please provide either include or exclude"),
        "saw {shown}"
    );
    assert!(!shown.contains("internal-detail"), "saw {shown}");
}

#[tokio::test]
async fn a_429_waits_for_retry_after_and_then_succeeds() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::raw(
                429,
                r#"{"errors":[{"code":"rate_limited","message":"slow down"}]}"#,
            )
            .header("retry-after", "1"),
            Reply::json(json!([agent("a1")])),
        ]
    })
    .await;
    let started = Instant::now();
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1),
        "retried after only {elapsed:?}"
    );
    assert_eq!(ids(&outcome), ["a1"]);
    assert_eq!(outcome.stats.requests, 2, "stats: {:?}", outcome.stats);
}

#[tokio::test]
async fn a_429_on_every_attempt_fails_with_rate_limited() {
    let upstream =
        FakeUpstream::start(|_| vec![Reply::status(429).header("retry-after", "0")]).await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::RateLimited, "saw {e}");
    assert_eq!(
        upstream.targets().len(),
        3,
        "requests: {:?}",
        upstream.targets()
    );
}

#[tokio::test]
async fn a_500_then_a_page_succeeds() {
    let upstream =
        FakeUpstream::start(|_| vec![Reply::status(500), Reply::json(json!([agent("a1")]))]).await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert_eq!(ids(&outcome), ["a1"]);
    assert_eq!(outcome.stats.requests, 2, "stats: {:?}", outcome.stats);
}

#[tokio::test]
async fn a_500_on_every_attempt_fails_with_http_5xx() {
    let upstream = FakeUpstream::start(|_| vec![Reply::raw(503, "<html>busy</html>")]).await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Http5xx, "saw {e}");
    assert!(e.to_string().contains("503 after 3 attempts"), "saw {e}");
    assert_eq!(
        upstream.targets().len(),
        3,
        "requests: {:?}",
        upstream.targets()
    );
}

#[tokio::test]
async fn a_server_slower_than_the_request_timeout_fails_with_timeout() {
    let upstream = FakeUpstream::start(|_| {
        vec![Reply::json(json!([agent("a1")])).delay(Duration::from_secs(5))]
    })
    .await;
    let mut config = config(&upstream.base);
    config.request_timeout = Duration::from_millis(200);
    config.max_attempts = 2;
    let started = Instant::now();
    let e = poll_err(config).await;
    assert_eq!(e.reason(), ErrorReason::Timeout, "saw {e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        upstream.targets().len(),
        2,
        "requests: {:?}",
        upstream.targets()
    );
}

#[tokio::test]
async fn a_refused_connection_fails_with_connect() {
    // A port nothing listens on.
    let base = Url::parse(&format!("http://127.0.0.1:{}/", free_port())).unwrap();
    let e = poll_err(config(&base)).await;
    assert_eq!(e.reason(), ErrorReason::Connect, "saw {e}");
    let shown = e.to_string();
    assert!(
        shown.contains("/v1/agents") && shown.contains("refused"),
        "saw {shown}"
    );
}

#[tokio::test]
async fn malformed_json_fails_with_decode() {
    let upstream = FakeUpstream::start(|_| vec![Reply::raw(200, r#"[{"_id":"a1","name":"#)]).await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Decode, "saw {e}");
}

#[tokio::test]
async fn an_object_instead_of_an_array_fails_with_decode() {
    let upstream =
        FakeUpstream::start(|_| vec![Reply::json(json!({"agents": [agent("a1")]}))]).await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Decode, "saw {e}");
}

#[tokio::test]
async fn a_failure_on_a_later_page_fails_the_whole_poll() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::json(json!([agent("a1")])).next("/v1/agents?skip=1"),
            Reply::raw(200, "not json"),
        ]
    })
    .await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Decode, "saw {e}");
    assert!(e.to_string().contains("skip=1"), "saw {e}");
}

#[tokio::test]
async fn a_record_without_an_id_is_skipped_and_counted_and_the_others_are_kept() {
    let mut no_id = agent("x");
    no_id.as_object_mut().unwrap().remove("_id");
    let upstream = FakeUpstream::start(|_| {
        vec![Reply::json(
            json!([agent("a1"), no_id, {"_id": 17, "name": "numeric id"}, "junk", agent("a2")]),
        )]
    })
    .await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert_eq!(ids(&outcome), ["a1", "a2"], "saw {outcome:#?}");
    assert_eq!(
        outcome.stats.invalid_records, 3,
        "stats: {:?}",
        outcome.stats
    );
}

#[tokio::test]
async fn a_bad_timestamp_drops_only_that_field() {
    let mut odd = agent("a1");
    odd["lastHeartbeatAt"] = json!("yesterday-ish");
    odd["createdAt"] = json!("2024-06-01T08:00:00Z");
    let upstream = FakeUpstream::start(|_| vec![Reply::json(json!([odd]))]).await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    let a1 = by_id(&outcome, "a1");
    assert_eq!(a1.last_heartbeat, None, "saw {a1:#?}");
    assert_eq!(
        a1.token_rotated,
        Some(ts("2025-01-22T20:59:27.690Z")),
        "saw {a1:#?}"
    );
    assert_eq!(
        a1.created_at,
        Some(ts("2024-06-01T08:00:00Z")),
        "saw {a1:#?}"
    );
    assert_eq!(
        (a1.name.as_str(), a1.version.as_deref()),
        ("agent a1", Some("3.4.1")),
        "saw {a1:#?}"
    );
    assert_eq!(
        outcome.stats.invalid_records, 0,
        "stats: {:?}",
        outcome.stats
    );
}

#[tokio::test]
async fn a_body_over_the_cap_fails_with_body_too_large() {
    let agents: Vec<_> = (0..100).map(|n| agent(&format!("a{n}"))).collect();
    let upstream = FakeUpstream::start(|_| vec![Reply::json(json!(agents))]).await;
    let mut config = config(&upstream.base);
    config.max_body_bytes = 1024;
    let e = poll_err(config).await;
    assert_eq!(e.reason(), ErrorReason::BodyTooLarge, "saw {e}");
    assert_eq!(
        upstream.targets().len(),
        1,
        "a body over the cap must not be retried: {:?}",
        upstream.targets()
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_cap_fails_with_body_too_large() {
    let chunk = format!("[{}]", vec![agent("a1").to_string(); 50].join(","));
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let base = fake::serve_raw(response.into_bytes()).await;
    let mut config = config(&base);
    config.max_body_bytes = 1024;
    let e = poll_err(config).await;
    assert_eq!(e.reason(), ErrorReason::BodyTooLarge, "saw {e}");
}

#[tokio::test]
async fn the_token_date_falls_back_to_created_at_when_never_rotated() {
    let mut never_rotated = agent("a1");
    never_rotated
        .as_object_mut()
        .unwrap()
        .remove("__accessTokenLastModifiedAt");
    never_rotated.as_object_mut().unwrap().remove("offline");
    let upstream = FakeUpstream::start(|_| vec![Reply::json(json!([never_rotated]))]).await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    let a1 = by_id(&outcome, "a1");
    assert_eq!(
        a1.token_rotated,
        Some(ts("2024-06-01T08:00:00Z")),
        "saw {a1:#?}"
    );
    assert_eq!(
        a1.token_rotated_source,
        TokenDateSource::Created,
        "saw {a1:#?}"
    );
    assert!(
        !a1.offline,
        "a missing offline flag must read as online: {a1:#?}"
    );
}

#[tokio::test]
async fn the_bearer_token_and_our_user_agent_are_sent_on_every_page() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::json(json!([agent("a1")])).next("/v1/agents?skip=1"),
            Reply::json(json!([agent("a2")])),
        ]
    })
    .await;
    poll_ok(config(&upstream.base), &upstream).await;
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "saw {seen:#?}");
    for request in &seen {
        assert_eq!(
            request.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "saw {request:#?}"
        );
        assert!(
            request
                .user_agent
                .as_deref()
                .is_some_and(|ua| ua.starts_with("onprem-agent-exporter/")),
            "saw {request:#?}"
        );
    }
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed_with_the_token() {
    let upstream = FakeUpstream::start(|_| {
        vec![Reply::json(json!([agent("a1")])).next("http://elsewhere.invalid/v1/agents?skip=1")]
    })
    .await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Decode, "saw {e}");
    assert_eq!(
        upstream.targets().len(),
        1,
        "requests: {:?}",
        upstream.targets()
    );
}

#[tokio::test]
async fn an_error_display_never_contains_the_token() {
    let echo = format!(r#"{{"message":"token {TOKEN} is revoked"}}"#);
    let echoing = FakeUpstream::start(|_| vec![Reply::raw(401, echo)]).await;
    let envelope = format!(r#"{{"errors":[{{"code":"bad","message":"Bearer {TOKEN}"}}]}}"#);
    let enveloped = FakeUpstream::start(|_| vec![Reply::raw(404, envelope)]).await;
    let failing = FakeUpstream::start(|_| vec![Reply::status(500)]).await;
    let mut errors = vec![
        poll_err(config(&echoing.base)).await,
        poll_err(config(&enveloped.base)).await,
        poll_err(config(&failing.base)).await,
    ];
    let mut with_userinfo = failing.base.clone();
    with_userinfo.set_username("user").unwrap();
    with_userinfo.set_password(Some(TOKEN)).unwrap();
    errors.push(poll_err(config(&with_userinfo)).await);
    for e in &errors {
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(TOKEN), "the token leaked: {shown}");
    }
    assert!(
        errors[0].to_string().contains("[redacted]"),
        "saw {}",
        errors[0]
    );
}
