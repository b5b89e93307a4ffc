//! How the Calyptia source behaves against scripted upstreams on real sockets: the project id read from the token,
//! `Link` pagination with `before=` cursors, every error status in the `{"error","detail"}` envelope, retries,
//! malformed bodies, the last good snapshot, and the agent tokens that must never come back.

use crate::support::fake_upstream as fake;

use std::time::{Duration, Instant};

use fake::{FakeUpstream, Reply};
use onprem_agent_exporter::config::sources::SourceConfig;
use onprem_agent_exporter::domain::{Agent, Provider};
use onprem_agent_exporter::sim::calyptia::project_token;
use onprem_agent_exporter::sources::calyptia::CalyptiaSource;
use onprem_agent_exporter::sources::{BuildError, ErrorReason, PollOutcome, Source, UpstreamError};
use onprem_agent_exporter::status::Registry;
use secrecy::SecretString;
use serde_json::json;
use url::Url;

/// The project the test token grants.
const PROJECT: &str = "0b1e6d3a-5c4f-4e2d-9a8b-7c6d5e4f3a2b";

/// The agent token every full record carries.
const AGENT_TOKEN: &str = "cal-agent-token-leakcanary-9f8e7d";

fn token() -> String {
    project_token(PROJECT, "signature-5ee1c0de")
}

fn config(base: &Url) -> SourceConfig {
    let mut config = SourceConfig::new(
        "logging",
        Provider::Calyptia,
        base.clone(),
        SecretString::from(token()),
    );
    config.request_timeout = Duration::from_secs(5);
    config.max_attempts = 3;
    config
}

fn source(config: SourceConfig) -> CalyptiaSource {
    CalyptiaSource::new(config)
        .expect("the source builds")
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

fn list_path() -> String {
    format!("/v1/projects/{PROJECT}/agents")
}

/// A full agent record, with its own token.
fn agent(id: &str) -> serde_json::Value {
    json!({
        "id": id,
        "fleetID": null,
        "token": AGENT_TOKEN,
        "name": format!("fluent {id}"),
        "machineID": "m-1",
        "type": "fluentbit",
        "version": "v2.2.2",
        "edition": "community",
        "status": "healthy",
        "os": "linux",
        "arch": "x86_64",
        "flags": ["-v"],
        "tags": null,
        "rawConfig": "[INPUT]\n    Name cpu\n",
        "metadata": {"k": "v"},
        "firstMetricsAddedAt": "2025-01-22T20:59:27.690Z",
        "lastMetricsAddedAt": "2025-03-27T14:59:30Z",
        "metricsCount": 12,
        "createdAt": "2025-01-22T20:59:27.690Z",
        "updatedAt": "2025-01-22T20:59:27.690Z",
        "environmentName": "default",
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

#[tokio::test]
async fn the_project_id_comes_from_the_token_and_the_next_link_is_followed_with_the_project_token()
{
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::json(json!([agent("a1"), agent("a2")]))
                .next(format!("{}?before=Y3Vyc29yMg", list_path())),
            Reply::json(json!([agent("a3")])),
        ]
    })
    .await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert_eq!(ids(&outcome), ["a1", "a2", "a3"]);
    assert_eq!(
        upstream.targets(),
        [list_path(), format!("{}?before=Y3Vyc29yMg", list_path())]
    );
    for seen in upstream.seen() {
        assert_eq!(
            seen.project_token.as_deref(),
            Some(token().as_str()),
            "{seen:?}"
        );
        assert_eq!(seen.authorization, None, "{seen:?}");
    }
}

#[tokio::test]
async fn a_configured_project_id_and_page_size_win() {
    let upstream = FakeUpstream::start(|_| vec![Reply::json(json!([]))]).await;
    let mut config = config(&upstream.base);
    config.project_id = Some("other-project".into());
    config.page_size = Some(25);
    poll_ok(config, &upstream).await;
    assert_eq!(
        upstream.targets(),
        ["/v1/projects/other-project/agents?last=25"]
    );
}

#[test]
fn a_token_without_a_project_id_fails_at_construction_without_repeating_the_token() {
    let secret = "opaque-calyptia-secret-8c7b";
    let base = Url::parse("https://cloud-api.calyptia.com").unwrap();
    let config = SourceConfig::new(
        "logging",
        Provider::Calyptia,
        base,
        SecretString::from(secret),
    );
    let e = match onprem_agent_exporter::sources::build(&config) {
        Ok(_) => panic!("a token without a project id was accepted"),
        Err(e) => e,
    };
    assert!(matches!(e, BuildError::ProjectId { .. }), "{e:?}");
    let shown = format!(
        "{e} {e:?} {}",
        onprem_agent_exporter::telemetry::error_chain(&e)
    );
    assert!(!shown.contains(secret), "{shown}");
    assert!(
        shown.contains("logging") && shown.contains("project_id"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_before_cursor_that_comes_back_fails_with_pagination_loop() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::json(json!([agent("a1")])).next(format!("{}?before=b1", list_path())),
            Reply::json(json!([agent("a2")])).next(format!("{}?before=b1", list_path())),
        ]
    })
    .await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::PaginationLoop, "{e}");
}

#[tokio::test]
async fn more_pages_than_the_cap_fails_with_page_limit() {
    let upstream = FakeUpstream::route(|target| {
        let n: u32 = target
            .rsplit_once("before=")
            .and_then(|(_, c)| c.parse().ok())
            .unwrap_or(0);
        Reply::json(json!([agent(&format!("a{n}"))])).next(format!(
            "{}?before={}",
            list_path(),
            n + 1
        ))
    })
    .await;
    let mut config = config(&upstream.base);
    config.max_pages = 4;
    let e = poll_err(config).await;
    assert_eq!(e.reason(), ErrorReason::PageLimit, "{e}");
}

#[tokio::test]
async fn an_empty_project_is_a_successful_poll_with_zero_agents() {
    for reply in [Reply::json(json!([])), Reply::status(204)] {
        let upstream = FakeUpstream::start(|_| vec![reply]).await;
        let outcome = poll_ok(config(&upstream.base), &upstream).await;
        assert!(outcome.agents.is_empty(), "{outcome:#?}");
    }
}

#[tokio::test]
async fn a_401_or_403_is_unauthorized_with_the_error_and_detail() {
    for status in [401, 403] {
        let upstream = FakeUpstream::start(|_| {
            vec![Reply::raw(
                status,
                r#"{"error":"unauthorized","detail":"invalid project token"}"#,
            )]
        })
        .await;
        let e = poll_err(config(&upstream.base)).await;
        assert_eq!(e.reason(), ErrorReason::Unauthorized, "{e}");
        assert!(
            e.to_string()
                .contains("unauthorized: invalid project token"),
            "{e}"
        );
        assert_eq!(upstream.targets().len(), 1);
    }
}

#[tokio::test]
async fn another_4xx_is_http_4xx_with_the_envelope_message() {
    let upstream =
        FakeUpstream::start(|_| vec![Reply::raw(400, r#"{"error":"invalid before cursor"}"#)])
            .await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Http4xx, "{e}");
    assert!(e.to_string().contains("invalid before cursor"), "{e}");
}

#[tokio::test]
async fn a_429_waits_for_retry_after_and_then_succeeds() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::raw(429, r#"{"error":"too many requests"}"#).header("retry-after", "1"),
            Reply::json(json!([agent("a1")])),
        ]
    })
    .await;
    let started = Instant::now();
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ids(&outcome), ["a1"]);
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
        FakeUpstream::start(|_| vec![Reply::status(502), Reply::json(json!([agent("a1")]))]).await;
    assert_eq!(
        ids(&poll_ok(config(&upstream.base), &upstream).await),
        ["a1"]
    );

    let upstream =
        FakeUpstream::start(|_| vec![Reply::raw(500, r#"{"error":"internal server error"}"#)])
            .await;
    let e = poll_err(config(&upstream.base)).await;
    assert_eq!(e.reason(), ErrorReason::Http5xx, "{e}");
}

#[tokio::test]
async fn malformed_json_and_an_object_instead_of_an_array_fail_with_decode() {
    for body in [
        r#"[{"id":"a1""#,
        r#"{"id":"a1","token":"cal-agent-token-leakcanary-9f8e7d"}"#,
    ] {
        let upstream = FakeUpstream::start(|_| vec![Reply::raw(200, body)]).await;
        let e = poll_err(config(&upstream.base)).await;
        assert_eq!(e.reason(), ErrorReason::Decode, "{body}: {e}");
        assert!(!e.to_string().contains(AGENT_TOKEN), "{e}");
    }
}

#[tokio::test]
async fn bad_records_are_skipped_and_counted_and_fields_map_to_the_agent() {
    let mut sick = agent("sick");
    sick["status"] = json!("unhealthy");
    sick["lastMetricsAddedAt"] = json!(null);
    sick["type"] = json!("fluentd");
    let mut odd = agent("odd");
    odd["lastMetricsAddedAt"] = json!("not a time");
    odd["os"] = json!(7);
    let upstream = FakeUpstream::start(move |_| {
        vec![Reply::json(json!([
            agent("ok"),
            sick,
            odd,
            {"name": "no id"},
            null,
            [1, 2],
        ]))]
    })
    .await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    assert_eq!(ids(&outcome), ["ok", "sick", "odd"]);
    assert_eq!(outcome.stats.invalid_records, 3, "{:?}", outcome.stats);
    let ok = by_id(&outcome, "ok");
    assert!(!ok.offline);
    assert_eq!(ok.name, "fluent ok");
    assert_eq!(ok.version.as_deref(), Some("v2.2.2"));
    assert_eq!(
        ok.last_heartbeat,
        Some("2025-03-27T14:59:30Z".parse().unwrap())
    );
    assert_eq!(
        ok.info,
        vec![
            ("type", "fluentbit".to_string()),
            ("edition", "community".to_string()),
            ("os", "linux".to_string()),
            ("arch", "x86_64".to_string()),
        ]
    );
    let sick = by_id(&outcome, "sick");
    assert!(sick.offline && sick.last_heartbeat.is_none(), "{sick:?}");
    let odd = by_id(&outcome, "odd");
    assert!(odd.last_heartbeat.is_none() && !odd.offline, "{odd:?}");
    assert_eq!(odd.info[2], ("os", String::new()));
    assert!(
        outcome
            .agents
            .iter()
            .all(|a| a.token_rotated.is_none() && a.health.is_none())
    );
}

#[tokio::test]
async fn the_agent_tokens_and_the_project_token_never_appear_in_the_outcome_or_an_error() {
    let upstream = FakeUpstream::start(|_| vec![Reply::json(json!([agent("a1")]))]).await;
    let outcome = poll_ok(config(&upstream.base), &upstream).await;
    let shown = format!(
        "{outcome:?} {}",
        serde_json::to_string(&outcome.agents).unwrap()
    );
    assert!(!shown.contains(AGENT_TOKEN), "{shown}");
    assert!(!shown.contains(&token()), "{shown}");
    assert!(!format!("{:?}", source(config(&upstream.base))).contains(&token()));

    let echo = format!(
        r#"{{"error":"bad token {}","detail":"agent token {AGENT_TOKEN}"}}"#,
        token()
    );
    let upstream = FakeUpstream::start(move |_| vec![Reply::raw(401, echo)]).await;
    let e = poll_err(config(&upstream.base)).await;
    assert!(!e.to_string().contains(&token()), "{e}");
}

#[tokio::test]
async fn a_failed_poll_keeps_the_last_good_snapshot() {
    let upstream = FakeUpstream::start(|_| {
        vec![
            Reply::json(json!([agent("a1"), agent("a2"), agent("a3")])),
            Reply::raw(401, r#"{"error":"unauthorized"}"#),
        ]
    })
    .await;
    let source = source(config(&upstream.base));
    let registry = Registry::new([("logging", Provider::Calyptia)]);
    assert!(onprem_agent_exporter::poller::poll_once(&source, &registry, 0).await);
    assert!(!onprem_agent_exporter::poller::poll_once(&source, &registry, 0).await);
    let status = registry.get(0);
    assert!(!status.up, "{status:?}");
    assert_eq!(status.agents.as_ref().map(|a| a.agents.len()), Some(3));
    assert_eq!(status.error_count(ErrorReason::Unauthorized), 1);
}

#[test]
fn check_config_rejects_a_token_without_a_project_id_and_accepts_an_explicit_one() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "opaque-calyptia-secret-2f1e";
    std::fs::write(dir.path().join("token"), secret).unwrap();
    let check = |extra: &str| {
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            format!("sources:\n  - name: logging\n    provider: calyptia\n    token_file: token\n{extra}"),
        )
        .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_onprem-agent-exporter"))
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap()
    };
    let out = check("");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("source logging") && stderr.contains("project_id"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains(secret), "the token leaked: {stderr}");
    let out = check("    project_id: p-1\n");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
