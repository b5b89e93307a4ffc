//! The Planasonix and Calyptia simulators over real sockets: auth, pagination, the embedded secrets, the health
//! endpoint, faults, and a round trip through the real sources.

use std::time::Duration;

use onprem_agent_exporter::config::sources::SourceConfig;
use onprem_agent_exporter::sim::calyptia::DEFAULT_PROJECT_ID;
use onprem_agent_exporter::sim::{Faults, Provider, SimOptions};
use onprem_agent_exporter::sources::build;
use onprem_agent_exporter::sources::calyptia::project_id_from_token;
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use crate::support::simulator::{TestSim, spawn_sim};

const KEY: &str = "sim-test-key-3d4e5f";

/// Serves a `provider` simulator of `agents` agents, `page_size` to a page, that accepts [`KEY`].
async fn spawn(provider: Provider, agents: usize, page_size: usize) -> TestSim {
    spawn_sim(
        KEY,
        SimOptions {
            provider,
            agents,
            page_size,
            ..SimOptions::default()
        },
    )
    .await
}

/// Sends `GET url` with the given headers; returns status, headers and the body as JSON (`Null` when empty).
async fn call(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {}", String::from_utf8_lossy(&body)))
    };
    (status, headers, json)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn planasonix_pages_follow_the_cursor_until_null_and_carry_enrollment_tokens() {
    let sim = spawn(Provider::Planasonix, 7, 3).await;
    let auth = bearer(KEY);
    let mut url = sim.url("/api/agents");
    let mut seen = Vec::new();
    loop {
        let (status, headers, body) = call(&url, &[("authorization", &auth)]).await;
        assert_eq!(status, 200, "{body}");
        assert!(headers.contains_key("x-ratelimit-limit"), "{headers:?}");
        assert_eq!(body["meta"]["page"]["limit"], 3, "{body}");
        for agent in body["data"].as_array().unwrap() {
            assert!(agent["id"].as_str().unwrap().starts_with("agt_"), "{agent}");
            assert!(
                agent["enrollment_token"]
                    .as_str()
                    .unwrap()
                    .starts_with("plnx_enroll_"),
                "{agent}"
            );
            seen.push(agent["id"].as_str().unwrap().to_string());
        }
        match body["meta"]["page"]["cursor"].as_str() {
            Some(cursor) => url = sim.url(&format!("/api/agents?cursor={cursor}")),
            None => {
                assert!(body["meta"]["page"]["cursor"].is_null(), "{body}");
                break;
            }
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(sim.sim.access_tokens().len(), 7);
    assert!(sim.sim.access_tokens()[0].starts_with("plnx_enroll_"));

    let (status, _, body) = call(
        &sim.url("/api/agents?status=revoked"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "revoked"),
        "{body}"
    );
    let (status, _, body) = call(
        &sim.url("/api/agents?cursor=forged"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn planasonix_refuses_a_missing_or_wrong_key_with_a_message() {
    let sim = spawn(Provider::Planasonix, 3, 10).await;
    for headers in [vec![], vec![("authorization", "Bearer wrong")]] {
        let (status, _, body) = call(&sim.url("/api/agents"), &headers).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["message"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn planasonix_reports_health_for_a_listed_agent_and_404_for_an_unknown_one() {
    let sim = spawn(Provider::Planasonix, 5, 10).await;
    let auth = bearer(KEY);
    let (_, _, list) = call(&sim.url("/api/agents"), &[("authorization", &auth)]).await;
    let active = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["status"] == "active")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, body) = call(
        &sim.url(&format!("/api/agents/{active}/health")),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let health = &body["data"];
    assert_eq!(health["agent_id"], active.as_str());
    let cpu = health["cpu_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{health}");
    for key in [
        "memory_percent",
        "disk_free_gb",
        "active_jobs",
        "queue_depth",
        "heartbeat_at",
    ] {
        assert!(!health[key].is_null(), "{key} missing: {health}");
    }
    let (status, _, body) = call(
        &sim.url("/api/agents/agt_000000000000000000000000/health"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn planasonix_faults_give_429_with_retry_after_and_a_forced_500() {
    let sim = spawn(Provider::Planasonix, 3, 10).await;
    let auth = bearer(KEY);
    sim.sim.control().set_faults(Faults {
        rate_limit_every: Some(1),
        retry_after_secs: 7,
        ..Faults::default()
    });
    let (status, headers, body) = call(&sim.url("/api/agents"), &[("authorization", &auth)]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    sim.sim.control().set_faults(Faults::default());
    sim.sim.control().set_status_override(Some(500));
    let (status, _, body) = call(&sim.url("/api/agents"), &[("authorization", &auth)]).await;
    assert_eq!(status, 500, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

#[tokio::test]
async fn calyptia_accepts_its_project_token_in_either_header_and_pages_with_before_links() {
    let sim = spawn(Provider::Calyptia, 7, 3).await;
    let token = sim.sim.api_token().to_string();
    assert_eq!(
        project_id_from_token(&token).as_deref(),
        Ok(DEFAULT_PROJECT_ID)
    );
    let path = sim.sim.list_path();
    assert_eq!(path, format!("/v1/projects/{DEFAULT_PROJECT_ID}/agents"));

    let auth = bearer(&token);
    let (status, _, body) = call(&sim.url(&path), &[("authorization", &auth)]).await;
    assert_eq!(status, 200, "bearer refused: {body}");

    let mut url = sim.url(&path);
    let mut seen = 0;
    loop {
        let (status, headers, body) = call(&url, &[("x-project-token", &token)]).await;
        assert_eq!(status, 200, "{body}");
        for agent in body.as_array().unwrap() {
            assert!(
                agent["token"].as_str().unwrap().starts_with("cal_agent_"),
                "{agent}"
            );
            assert!(["healthy", "unhealthy"].contains(&agent["status"].as_str().unwrap()));
            seen += 1;
        }
        let Some(link) = headers.get("link") else {
            break;
        };
        let link = link.to_str().unwrap();
        assert!(
            link.ends_with("rel=\"next\"") && link.contains("before="),
            "{link}"
        );
        let target = &link[1..link.find('>').unwrap()];
        assert!(target.starts_with('/'), "the link is not relative: {link}");
        url = sim.url(target);
    }
    assert_eq!(seen, 7);
}

#[tokio::test]
async fn calyptia_refuses_a_missing_or_wrong_token_and_another_project() {
    let sim = spawn(Provider::Calyptia, 3, 10).await;
    let path = sim.sim.list_path();
    for headers in [vec![], vec![("x-project-token", "wrong")]] {
        let (status, _, body) = call(&sim.url(&path), &headers).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "unauthorized", "{body}");
        assert!(body["detail"].is_string(), "{body}");
    }
    let token = sim.sim.api_token().to_string();
    let (status, _, body) = call(
        &sim.url("/v1/projects/someone-else/agents"),
        &[("x-project-token", &token)],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    sim.sim.control().set_status_override(Some(503));
    let (status, _, body) = call(&sim.url(&path), &[("x-project-token", &token)]).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn the_real_sources_read_their_simulators_through_faults() {
    for provider in [Provider::Planasonix, Provider::Calyptia] {
        let sim = spawn(provider, 9, 2).await;
        sim.sim.control().set_faults(Faults {
            fail_every: Some(3),
            ..Faults::default()
        });
        let mut config = SourceConfig::new(
            "round-trip",
            provider,
            Url::parse(&format!("http://{}", sim.addr)).unwrap(),
            SecretString::from(sim.sim.api_token().to_string()),
        );
        config.health = provider == Provider::Planasonix;
        config.max_attempts = 5;
        config.page_size = Some(2);
        config.request_timeout = Duration::from_secs(5);
        let source = build(&config).expect("the source builds");
        let outcome = source
            .poll()
            .await
            .unwrap_or_else(|e| panic!("{provider}: {e}"));
        assert_eq!(outcome.agents.len(), 9, "{provider}: {outcome:#?}");
        assert_eq!(outcome.stats.pages, 5, "{provider}: {:?}", outcome.stats);
        assert_eq!(
            outcome.stats.health_failures, 0,
            "{provider}: {:?}",
            outcome.stats
        );
        let shown = format!("{outcome:?}");
        for secret in sim.sim.access_tokens() {
            assert!(!shown.contains(&secret), "{provider}: a secret leaked");
        }
        if provider == Provider::Planasonix {
            assert!(outcome.agents.iter().any(|a| a.health.is_some()));
        }
    }
}
