//! The Planasonix pipeline-agents API (`GET /api/agents`, `GET /api/agents/{id}`, `GET /api/agents/{id}/health`),
//! rendered from the fleet.
//!
//! It follows `planasonix-pipeline-agents-api.md` and `NOTES.md`, and picks a strict reading where they are unsure:
//!
//! - **Auth:** `Authorization: Bearer <api_key>`; a missing or wrong key gives 401 `{"message": ...}`.
//! - **Pagination:** `limit` (default [`super::SimOptions::page_size`], at most [`MAX_LIMIT`]) and an opaque `cursor`.
//!   Every page is the `{data, meta:{page:{limit, cursor}}}` envelope, and `cursor` is the next page's cursor or
//!   `null` on the last page. A cursor the simulator did not issue is 400.
//! - **Filters:** `status` (exact) and `label` (substring) narrow the list before it is paged.
//! - **Records** carry a fake `enrollment_token` and `token_expires_at`: the vendor shows the token only at creation,
//!   but a list that repeats it is what a client must survive.
//! - **Status:** an agent that never connected is `pending` (or, for every other one of them, `revoked`); every other
//!   agent is `active`, and its `last_seen_at` follows the fleet's heartbeats, so a dead agent is active but stale.
//! - **Health** reports figures that drift every 15 s, a `last_error` for offline agents and for a few others, and
//!   nulls for an agent that never connected.
//! - **Rate limits:** a 429 carries `Retry-After` and the `X-RateLimit-*` headers, which successful list pages also
//!   carry (the vendor sends them "only sometimes").

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::Simulator;
use super::fleet::{Behaviour, FleetAgent, Liveness, Os, mix, timestamp_ms};

/// The largest page a client may ask for with `limit`; larger values are clamped to it.
pub const MAX_LIMIT: usize = 500;

/// The prefix of every agent id; the rest is the fleet id in hex.
const ID_PREFIX: &str = "agt_";

/// The requests per window the `X-RateLimit-Limit` header announces.
const RATE_LIMIT: u64 = 600;

/// The routes of this provider, to be merged into the simulator's router.
pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/api/agents", get(list_agents))
        .route("/api/agents/{id}", get(get_agent))
        .route("/api/agents/{id}/health", get(get_health))
}

/// The agent's fake enrollment token: `plnx_enroll_` and 32 hex digits.
pub fn enrollment_token(agent: &FleetAgent) -> String {
    format!("plnx_enroll_{}", agent.secret_hex())
}

/// The agent's id as the API shows it: `agt_` and the fleet id in hex.
pub fn agent_id(agent: &FleetAgent) -> String {
    format!("{ID_PREFIX}{}", agent.id_hex())
}

async fn list_agents(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = super::gate(&sim, &headers).await {
        return refused;
    }
    let query = match ListQuery::parse(query.as_deref().unwrap_or("")) {
        Ok(query) => query,
        Err(message) => return message_response(&sim, StatusCode::BAD_REQUEST, &message),
    };
    let fleet = sim.control().fleet();
    let total = sim.control().agent_count().min(fleet.len());
    let limit = query
        .limit
        .unwrap_or(sim.inner.page_size)
        .clamp(1, MAX_LIMIT);
    let now_ms = Timestamp::now().as_millisecond();
    let visible = &fleet.agents()[..total];
    let matches = |a: &&FleetAgent| {
        query.status.as_deref().is_none_or(|s| status(a) == s)
            && query.label.as_deref().is_none_or(|l| a.name.contains(l))
    };
    let filtered = query.status.is_some() || query.label.is_some();
    let chosen: Vec<&FleetAgent> = if filtered {
        visible.iter().filter(matches).collect()
    } else {
        visible.iter().collect()
    };
    let start = query.offset.min(chosen.len());
    let end = start.saturating_add(limit).min(chosen.len());
    let data: Vec<Value> = chosen[start..end]
        .iter()
        .map(|a| record(a, a.liveness(now_ms)))
        .collect();
    let cursor = (end < chosen.len()).then(|| cursor_for(end));
    let body = json!({ "data": data, "meta": { "page": { "limit": limit, "cursor": cursor } } });
    sim.count_page();
    let mut response = sim.respond(StatusCode::OK, None, body.to_string().into_bytes());
    rate_limit_headers(&mut response, sim.control().faults().retry_after_secs);
    response
}

async fn get_agent(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = super::gate(&sim, &headers).await {
        return refused;
    }
    match find(&sim, &id) {
        Some(agent) => {
            let live = agent.liveness(Timestamp::now().as_millisecond());
            let body = json!({ "data": record(&agent, live) });
            sim.respond(StatusCode::OK, None, body.to_string().into_bytes())
        }
        None => sim.not_found(),
    }
}

async fn get_health(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = super::gate(&sim, &headers).await {
        return refused;
    }
    match find(&sim, &id) {
        Some(agent) => {
            let body = json!({ "data": health(&agent, Timestamp::now().as_millisecond()) });
            sim.respond(StatusCode::OK, None, body.to_string().into_bytes())
        }
        None => sim.not_found(),
    }
}

/// The visible agent with API id `id`, if any.
fn find(sim: &Simulator, id: &str) -> Option<FleetAgent> {
    let hex = id.strip_prefix(ID_PREFIX)?;
    let fleet = sim.control().fleet();
    let total = sim.control().agent_count();
    fleet.find(hex).filter(|a| a.index < total).cloned()
}

/// The agent's `status`: `pending` or `revoked` for an agent that never connected (alternately), else `active`.
fn status(agent: &FleetAgent) -> &'static str {
    match agent.behaviour {
        Behaviour::NeverConnected if agent.index % 20 == 3 => "pending",
        Behaviour::NeverConnected => "revoked",
        _ => "active",
    }
}

/// The agent version in Planasonix's numbering.
fn version(agent: &FleetAgent) -> Option<&'static str> {
    agent.version.map(|v| match v {
        "5.5.0" => "2.14.3",
        "5.4.2" => "2.14.2",
        "5.4.1" => "2.13.0",
        _ => "2.12.5",
    })
}

fn time(ms: i64) -> String {
    timestamp_ms(ms).to_string()
}

/// One agent record, with every documented field and the fake enrollment token.
fn record(agent: &FleetAgent, live: Liveness) -> Value {
    let platform = match agent.os {
        Os::Linux => "linux",
        Os::Windows => "windows",
    };
    json!({
        "id": agent_id(agent),
        "label": &*agent.name,
        "platform": platform,
        "version": version(agent),
        "status": status(agent),
        "tags": [format!("host:{}", agent.hostname())],
        "capabilities": ["spark", "python_3_11"],
        "last_seen_at": live.last_heartbeat_ms.map(time),
        "created_at": time(agent.created_ms),
        "enrollment_token": enrollment_token(agent),
        "token_expires_at": time(agent.created_ms + 6 * 3_600_000),
        "metadata": { "hostname": agent.hostname() },
    })
}

/// The health document at `now_ms`. Figures change every 15 s and are the same for every request in that window.
fn health(agent: &FleetAgent, now_ms: i64) -> Value {
    let live = agent.liveness(now_ms);
    let id = agent_id(agent);
    if live.last_heartbeat_ms.is_none() {
        return json!({
            "agent_id": id, "status": "unknown", "heartbeat_at": null, "cpu_percent": null,
            "memory_percent": null, "disk_free_gb": null, "active_jobs": null, "queue_depth": null,
            "last_error": null,
        });
    }
    let roll = mix(agent.key ^ (now_ms / 15_000) as u64);
    let part = |shift: u32, modulo: u64| (roll >> shift) % modulo;
    let last_error = if live.offline {
        Some("lost connection to the control plane".to_string())
    } else if agent.index % 9 == 4 {
        Some(format!(
            "job {} failed: connection refused by the warehouse",
            4_000 + part(40, 1_000)
        ))
    } else {
        None
    };
    json!({
        "agent_id": id,
        "status": if live.offline { "unhealthy" } else { "healthy" },
        "heartbeat_at": live.last_heartbeat_ms.map(time),
        "cpu_percent": 5.0 + part(0, 800) as f64 / 10.0,
        "memory_percent": 20.0 + part(10, 700) as f64 / 10.0,
        "disk_free_gb": 10.0 + (agent.key % 9_000) as f64 / 10.0,
        "active_jobs": if live.offline { 0 } else { part(20, 5) },
        "queue_depth": part(30, 4) + if live.offline { 12 } else { 0 },
        "last_error": last_error,
    })
}

/// The opaque cursor of the page that starts at `offset`.
fn cursor_for(offset: usize) -> String {
    format!("cur_{offset:08x}")
}

/// Sets the `X-RateLimit-*` headers, and for a 429 `Retry-After`.
fn rate_limit_headers(response: &mut Response, reset_secs: u64) {
    let remaining = if response.status() == StatusCode::TOO_MANY_REQUESTS {
        0
    } else {
        RATE_LIMIT / 2
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(RATE_LIMIT));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset_secs));
}

/// Checks `Authorization: Bearer <api_key>`. Returns the 401 if and only if it is missing or wrong.
pub(super) fn authenticate(sim: &Simulator, headers: &HeaderMap) -> Option<Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Some(message_response(
            sim,
            StatusCode::UNAUTHORIZED,
            "Missing bearer token",
        ));
    };
    let presented = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|t| super::constant_time_eq(t.as_bytes(), sim.inner.token.as_bytes()))
    {
        None
    } else {
        Some(message_response(
            sim,
            StatusCode::UNAUTHORIZED,
            "Invalid API key",
        ))
    }
}

/// The response for a forced status: 429 with `Retry-After` and the rate-limit headers, 204 empty, anything else
/// `{"message": <reason phrase>}`.
pub(super) fn forced_status(sim: &Simulator, status: u16, retry_after_secs: u64) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status.as_u16() {
        204 => sim.respond(status, None, Vec::new()),
        429 => {
            let mut response = message_response(sim, status, "Rate limit exceeded");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            rate_limit_headers(&mut response, retry_after_secs);
            response
        }
        _ => message_response(sim, status, status.canonical_reason().unwrap_or("Error")),
    }
}

fn message_response(sim: &Simulator, status: StatusCode, message: &str) -> Response {
    let body = json!({ "message": message });
    sim.respond(status, None, body.to_string().into_bytes())
}

/// The parts of a list request's query string the simulator acts on.
#[derive(Debug, Default, PartialEq)]
struct ListQuery {
    limit: Option<usize>,
    /// Where the page starts, from `cursor`.
    offset: usize,
    status: Option<String>,
    label: Option<String>,
}

impl ListQuery {
    /// Parses a raw query string. The error is the 400 message.
    fn parse(raw: &str) -> Result<ListQuery, String> {
        let mut query = ListQuery::default();
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            match &*key {
                "limit" => {
                    query.limit =
                        Some(value.parse().map_err(|_| {
                            format!("limit must be a positive integer, not {value:?}")
                        })?)
                }
                "cursor" => {
                    query.offset = value
                        .strip_prefix("cur_")
                        .and_then(|hex| usize::from_str_radix(hex, 16).ok())
                        .ok_or_else(|| "invalid cursor".to_string())?
                }
                "status" => {
                    if !matches!(&*value, "active" | "revoked" | "pending") {
                        return Err(format!(
                            "status must be active, revoked or pending, not {value:?}"
                        ));
                    }
                    query.status = Some(value.into_owned());
                }
                "label" => query.label = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_cursors_are_refused() {
        let q =
            ListQuery::parse(&format!("limit=5&cursor={}&status=active", cursor_for(40))).unwrap();
        assert_eq!(
            (q.limit, q.offset, q.status.as_deref()),
            (Some(5), 40, Some("active"))
        );
        for bad in ["cursor=abc", "limit=x", "status=gone", "cursor=cur_zz"] {
            assert!(ListQuery::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
