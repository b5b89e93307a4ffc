//! The integrator.io simulator over real sockets: what a client of `/v1/agents` will see from it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use onprem_agent_exporter::sim::{DEFAULT_TOKEN, Faults, SimOptions, Simulator};
use serde_json::Value;

use crate::support::simulator::{TestSim, serve_sim};

/// A simulator serving on 127.0.0.1 and a client for it. Dropping it stops the server.
struct Running {
    base: String,
    sim: Simulator,
    client: reqwest::Client,
    _served: TestSim,
}

/// What one request returned, kept whole so that a failing assertion can print it.
#[derive(Debug)]
struct Reply {
    status: u16,
    link: Option<String>,
    retry_after: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    fn records(&self) -> Vec<Value> {
        match self.json() {
            Value::Array(records) => records,
            other => panic!("not an array: {other}"),
        }
    }

    /// The URL of the `Link` entry with `rel`, if any. URLs may hold commas, so entries are found by their `<>`.
    fn link(&self, rel: &str) -> Option<String> {
        let header = self.link.as_deref()?;
        let mut rest = header;
        while let Some(start) = rest.find('<') {
            let end = start + rest[start..].find('>')?;
            let url = &rest[start + 1..end];
            let params = rest[end + 1..].split('<').next().unwrap_or("");
            if params.contains(&format!("rel=\"{rel}\"")) {
                return Some(url.to_owned());
            }
            rest = &rest[end + 1..];
        }
        None
    }
}

async fn spawn_sim(opts: SimOptions) -> Running {
    let served = serve_sim(Simulator::new(opts)).await;
    Running {
        base: served.url(""),
        sim: served.sim.clone(),
        client: reqwest::Client::new(),
        _served: served,
    }
}

impl Running {
    async fn get_as(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        reply(request.send().await.expect("request")).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.get_as(path, Some(DEFAULT_TOKEN)).await
    }

    async fn put_control(&self, body: &str, token: Option<&str>) -> Reply {
        let mut request = self
            .client
            .put(format!("{}/_sim/control", self.base))
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        reply(request.send().await.expect("request")).await
    }

    /// Follows `next` links from `first` and returns every record and every page's reply.
    async fn walk(&self, first: &str) -> (Vec<Value>, Vec<Reply>) {
        let mut records = Vec::new();
        let mut pages = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(path) = next {
            assert!(pages.len() < 1_000, "runaway pagination at {path}");
            let page = self.get(&path).await;
            assert_eq!(page.status, 200, "page {path}: {page:?}");
            records.extend(page.records());
            next = page.link("next");
            pages.push(page);
        }
        (records, pages)
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("ASCII header").to_owned())
    };
    let (status, link, retry_after) = (
        response.status().as_u16(),
        header("link"),
        header("retry-after"),
    );
    let body = response.text().await.expect("body");
    Reply {
        status,
        link,
        retry_after,
        body,
    }
}

fn opts(agents: usize) -> SimOptions {
    SimOptions {
        agents,
        ..SimOptions::default()
    }
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            r["_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no _id: {r}"))
                .to_owned()
        })
        .collect()
}

fn age_days(record: &Value, field: &str) -> Option<f64> {
    let t: Timestamp = record.get(field)?.as_str()?.parse().ok()?;
    Some(Timestamp::now().duration_since(t).as_secs_f64() / 86_400.0)
}

#[tokio::test]
async fn a_request_without_authorization_gets_a_bare_unauthorized() {
    let app = spawn_sim(opts(3)).await;
    let reply = app.get_as("/v1/agents", None).await;
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(
        reply.json(),
        serde_json::json!({"message": "Unauthorized"}),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_wrong_token_gets_a_bare_bearer_authentication_failed() {
    let app = spawn_sim(opts(3)).await;
    for token in ["wrong", "", "sim-api-tokenX"] {
        let reply = app.get_as("/v1/agents", Some(token)).await;
        assert_eq!(reply.status, 401, "token {token:?}: {reply:?}");
        assert_eq!(
            reply.json(),
            serde_json::json!({"message": "Bearer Authentication Failed"}),
            "{reply:?}"
        );
    }
    let other_scheme = app
        .client
        .get(format!("{}/v1/agents", app.base))
        .header("authorization", format!("Token {DEFAULT_TOKEN}"))
        .send()
        .await
        .expect("request");
    let reply = reply(other_scheme).await;
    assert_eq!(
        reply.json(),
        serde_json::json!({"message": "Bearer Authentication Failed"}),
        "{reply:?}"
    );
}

#[tokio::test]
async fn pagination_walks_every_agent_through_relative_next_links_without_duplicates() {
    let app = spawn_sim(opts(250)).await;
    let (records, pages) = app.walk("/v1/agents?include=offline,lastHeartbeatAt").await;
    assert_eq!(pages.len(), 3, "pages: {pages:#?}");
    for page in &pages[..2] {
        let next = page.link("next").unwrap_or_default();
        assert!(
            next.starts_with("/v1/agents?"),
            "next is not relative: {page:?}"
        );
        assert!(
            next.contains("include=offline,lastHeartbeatAt"),
            "include lost: {page:?}"
        );
        assert!(
            page.link("first").is_some(),
            "no first rel beside next: {page:?}"
        );
    }
    assert_eq!(
        pages[2].link("next"),
        None,
        "the last page has a next: {:?}",
        pages[2]
    );
    let ids = ids(&records);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (250, 250), "ids: {ids:?}");
    let expected: Vec<String> = app
        .sim
        .control()
        .fleet()
        .agents()
        .iter()
        .map(|a| a.id_hex())
        .collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn a_client_limit_is_honoured_up_to_a_thousand() {
    let app = spawn_sim(opts(1_500)).await;
    let small = app.get("/v1/agents?limit=7&include=offline").await;
    assert_eq!(small.records().len(), 7, "{:?}", small.link);
    assert_eq!(
        small.link("next").as_deref(),
        Some("/v1/agents?skip=7&limit=7&include=offline")
    );
    let big = app.get("/v1/agents?limit=5000&include=offline").await;
    assert_eq!(big.records().len(), 1_000, "{:?}", big.link);
}

#[tokio::test]
async fn an_empty_fleet_answers_204_with_no_body() {
    let app = spawn_sim(opts(0)).await;
    let reply = app.get("/v1/agents").await;
    assert_eq!((reply.status, reply.body.as_str()), (204, ""), "{reply:?}");

    let app = spawn_sim(opts(5)).await;
    app.sim.control().set_agent_count(0);
    let reply = app.get("/v1/agents").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (204, ""),
        "after set_agent_count(0): {reply:?}"
    );
    app.sim.control().set_agent_count(8);
    let reply = app.get("/v1/agents").await;
    assert_eq!(
        reply.records().len(),
        8,
        "after set_agent_count(8): {reply:?}"
    );
}

#[tokio::test]
async fn include_projection_returns_only_identity_and_listed_fields_and_no_access_token() {
    let app = spawn_sim(opts(25)).await;
    let reply = app
        .get("/v1/agents?include=lastHeartbeatAt,offline,version,nosuchfield")
        .await;
    assert!(
        !reply.body.contains("simtok_"),
        "a token leaked through include: {}",
        reply.body
    );
    let allowed: HashSet<&str> = ["_id", "name", "lastHeartbeatAt", "offline", "version"].into();
    for record in reply.records() {
        let keys: Vec<&str> = record
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert!(
            keys.iter().all(|k| allowed.contains(k)),
            "unexpected field: {record}"
        );
        assert!(
            keys.contains(&"_id") && keys.contains(&"name") && keys.contains(&"offline"),
            "{record}"
        );
    }
}

#[tokio::test]
async fn exclude_strips_fields_from_full_records() {
    let app = spawn_sim(opts(10)).await;
    let reply = app
        .get("/v1/agents?exclude=accessToken,clientDetails,name")
        .await;
    assert!(!reply.body.contains("simtok_"), "{}", reply.body);
    for record in reply.records() {
        assert!(record.get("clientDetails").is_none(), "{record}");
        assert!(
            record.get("name").is_some() && record.get("accessToken_hash").is_some(),
            "{record}"
        );
    }
}

#[tokio::test]
async fn a_server_that_ignores_projection_returns_every_access_token() {
    let app = spawn_sim(SimOptions {
        honour_projection: false,
        ..opts(30)
    })
    .await;
    let (records, _) = app.walk("/v1/agents?include=offline&limit=10").await;
    let served: Vec<&str> = records
        .iter()
        .filter_map(|r| r["accessToken"].as_str())
        .collect();
    assert_eq!(served, app.sim.access_tokens(), "records: {records:#?}");
    assert!(
        served
            .iter()
            .all(|t| t.starts_with("simtok_") && t.len() == 39),
        "{served:?}"
    );
    for field in [
        "accessToken_hash",
        "clientDetails",
        "createdAt",
        "_agentExtensionId",
        "port",
        "offline",
    ] {
        assert!(
            records.iter().any(|r| r.get(field).is_some()),
            "no record has {field}"
        );
    }
}

#[tokio::test]
async fn include_and_exclude_together_are_refused_with_400() {
    let app = spawn_sim(opts(3)).await;
    let reply = app.get("/v1/agents?include=offline&exclude=name").await;
    assert_eq!(reply.status, 400, "{reply:?}");
    let expected = serde_json::json!({"errors": [{
        "code": "invalid_query_params",
        "message": "Please provide either include or exclude param in the request query and not both."
    }]});
    assert_eq!(reply.json(), expected);
    let reply = app.get("/v1/agents?include=off%20line").await;
    assert_eq!(reply.status, 400, "an invalid character: {reply:?}");
    assert_eq!(
        reply.json()["errors"][0]["code"],
        "invalid_query_params",
        "{reply:?}"
    );
}

#[tokio::test]
async fn every_nth_request_is_rate_limited_with_retry_after() {
    let app = spawn_sim(SimOptions {
        faults: Faults {
            rate_limit_every: Some(2),
            retry_after_secs: 7,
            ..Faults::default()
        },
        ..opts(3)
    })
    .await;
    let first = app.get("/v1/agents").await;
    let second = app.get("/v1/agents").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        (second.status, second.retry_after.as_deref()),
        (429, Some("7")),
        "{second:?}"
    );
    assert_eq!(
        second.json()["errors"][0]["code"],
        "rate_limited",
        "{second:?}"
    );
}

#[tokio::test]
async fn every_nth_request_fails_with_500_and_an_integer_code() {
    let app = spawn_sim(opts(3)).await;
    app.sim.control().set_faults(Faults {
        fail_every: Some(1),
        ..Faults::default()
    });
    let reply = app.get("/v1/agents").await;
    assert_eq!(reply.status, 500, "{reply:?}");
    assert_eq!(reply.json()["errors"][0]["code"], 500, "{reply:?}");
}

#[tokio::test]
async fn a_forced_status_answers_every_request_with_its_upstream_body() {
    let app = spawn_sim(opts(3)).await;
    let control = app.sim.control();
    control.set_status_override(Some(401));
    let reply = app.get("/v1/agents").await;
    assert_eq!(
        reply.json(),
        serde_json::json!({"message": "Bearer Authentication Failed"}),
        "{reply:?}"
    );
    control.set_status_override(Some(429));
    let reply = app.get("/v1/agents").await;
    assert_eq!(
        (reply.status, reply.retry_after.is_some()),
        (429, true),
        "{reply:?}"
    );
    control.set_status_override(Some(503));
    let reply = app.get("/v1/agents").await;
    assert_eq!(
        (reply.status, reply.json()["errors"][0]["code"].clone()),
        (503, 503.into()),
        "{reply:?}"
    );
    control.set_status_override(None);
    assert_eq!(app.get("/v1/agents").await.status, 200);
}

#[tokio::test]
async fn the_control_endpoint_needs_the_token_and_drives_the_simulator() {
    let app = spawn_sim(opts(5)).await;
    let refused = app.put_control(r#"{"status":500}"#, None).await;
    assert_eq!(refused.status, 401, "{refused:?}");

    let state = app
        .put_control(r#"{"status":500,"agents":12}"#, Some(DEFAULT_TOKEN))
        .await;
    assert_eq!(
        (
            state.json()["status"].clone(),
            state.json()["agents"].clone()
        ),
        (500.into(), 12.into()),
        "{state:?}"
    );
    assert_eq!(app.get("/v1/agents").await.status, 500);

    app.put_control(r#"{"status":null}"#, Some(DEFAULT_TOKEN))
        .await;
    let reply = app.get("/v1/agents").await;
    assert_eq!(reply.records().len(), 12, "{reply:?}");

    let bad = app
        .put_control(r#"{"statuz":500}"#, Some(DEFAULT_TOKEN))
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(
        bad.body.contains("statuz"),
        "the error does not name the key: {bad:?}"
    );
}

#[tokio::test]
async fn latency_delays_every_response() {
    let app = spawn_sim(opts(3)).await;
    app.sim.control().set_latency(Duration::from_millis(300));
    let started = Instant::now();
    let reply = app.get("/v1/agents").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_same_seed_serves_the_same_fleet() {
    let a = spawn_sim(opts(40)).await;
    let b = spawn_sim(opts(40)).await;
    let other = spawn_sim(SimOptions {
        seed: 99,
        ..opts(40)
    })
    .await;
    let fields = "/v1/agents?include=version,__accessTokenLastModifiedAt";
    let (ra, rb, ro) = (
        a.get(fields).await.records(),
        b.get(fields).await.records(),
        other.get(fields).await.records(),
    );
    assert_eq!(ids(&ra), ids(&rb));
    let names = |r: &[Value]| r.iter().map(|x| x["name"].clone()).collect::<Vec<_>>();
    assert_eq!(names(&ra), names(&rb));
    assert_eq!(a.sim.access_tokens(), b.sim.access_tokens());
    assert_ne!(ids(&ra), ids(&ro), "another seed gave the same ids");
}

#[tokio::test]
async fn the_fleet_has_offline_silent_and_old_token_agents_and_awkward_names() {
    let app = spawn_sim(SimOptions {
        honour_projection: false,
        ..opts(25)
    })
    .await;
    let records = app.get("/v1/agents").await.records();
    let count = |f: &dyn Fn(&Value) -> bool| records.iter().filter(|r| f(r)).count();
    let offline = count(&|r| r["offline"] == true);
    let silent = count(&|r| r.get("lastHeartbeatAt").is_none());
    let unrotated = count(&|r| r.get("__accessTokenLastModifiedAt").is_none());
    let token_days =
        |r: &Value| age_days(r, "__accessTokenLastModifiedAt").or_else(|| age_days(r, "createdAt"));
    let expired = count(&|r| token_days(r).is_some_and(|d| d > 90.0));
    let expiring = count(&|r| token_days(r).is_some_and(|d| (76.0..90.0).contains(&d)));
    let with_ms = count(&|r| r["createdAt"].as_str().is_some_and(|t| t.contains('.')));
    let seen = format!(
        "offline={offline} silent={silent} unrotated={unrotated} expired={expired} expiring={expiring} \
         with_ms={with_ms} of {}",
        records.len()
    );
    assert!(offline >= 2 && silent >= 1 && unrotated >= 1, "{seen}");
    assert!(expired >= 2 && expiring >= 1, "{seen}");
    assert!(
        with_ms >= 1 && with_ms < records.len(),
        "timestamps should mix both forms: {seen}"
    );
    let names: Vec<&str> = records.iter().filter_map(|r| r["name"].as_str()).collect();
    for name in [
        "db-gw \"east\"",
        "C:\\agents\\win01",
        "line1\nline2",
        "Zürich-東京",
        "<script>alert(1)</script>",
    ] {
        assert!(
            names.contains(&name),
            "no agent named {name:?} in {names:?}"
        );
    }
}

#[tokio::test]
async fn a_single_agent_is_served_whole_by_id_and_an_unknown_id_is_404() {
    let app = spawn_sim(opts(5)).await;
    let id = app.sim.control().fleet().agents()[3].id_hex();
    let reply = app.get(&format!("/v1/agents/{id}?include=offline")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["_id"], id.as_str(), "{reply:?}");
    assert!(
        reply.json()["accessToken"].is_string(),
        "GET by id ignores include: {reply:?}"
    );
    let missing = app.get("/v1/agents/0123456789abcdef01234567").await;
    assert_eq!(missing.status, 404, "{missing:?}");
}

#[tokio::test]
async fn stats_count_requests_pages_and_bytes() {
    let app = spawn_sim(opts(250)).await;
    let (_, pages) = app.walk("/v1/agents").await;
    app.get_as("/v1/agents", None).await;
    let bytes: usize =
        pages.iter().map(|p| p.body.len()).sum::<usize>() + r#"{"message":"Unauthorized"}"#.len();
    let stats = app.sim.stats();
    assert_eq!(
        (stats.requests, stats.pages, stats.bytes),
        (4, 3, bytes as u64),
        "{stats:?}"
    );
}
