//! The Calyptia Cloud agents API (`GET /v1/projects/{projectID}/agents`, `GET /v1/agents/{agentID}`), rendered from
//! the fleet as Fluent Bit and Fluentd agents.
//!
//! It follows `calyptia-cloud-agents-api.txt` and `NOTES.md`:
//!
//! - **Auth:** the project token in `X-Project-Token`, or as `Authorization: Bearer`. The token is a real project
//!   token in shape (`base64url({"ProjectID":...})` + `.` + signature), so a client can read the project id from it.
//!   A missing or wrong token is 401, a list of another project 403, both `{"error","detail"}`.
//! - **Pagination:** `last` is the page size (default [`super::SimOptions::page_size`], at most [`MAX_LAST`]);
//!   `before` is an opaque cursor. The list is a bare array, and a `Link: <...?before=...>; rel="next"` header with a
//!   relative URL announces the next page; the last page has none. `name` filters by exact name; the other documented
//!   filters are accepted and ignored.
//! - **Records** carry every documented field, including each agent's own fake `token`.
//! - **Status:** `unhealthy` while the fleet says the agent is offline; `lastMetricsAddedAt` follows its heartbeats
//!   and is `null` for an agent that never connected.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::Simulator;
use super::fleet::{FleetAgent, Liveness, Os, timestamp_ms};
use crate::sources::calyptia::{PROJECT_TOKEN_HEADER, project_id_from_token};

/// The largest page a client may ask for with `last`.
pub const MAX_LAST: usize = 1000;

/// The project a simulator serves when its configured token is not a project token.
pub const DEFAULT_PROJECT_ID: &str = "3f6b2c1e-9a4d-4c2b-8e7f-5d1a0b9c8e21";

/// The routes of this provider, to be merged into the simulator's router.
pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/v1/projects/{project}/agents", get(list_agents))
        .route("/v1/agents/{id}", get(get_agent))
}

/// A project token for `project_id`: `base64url({"ProjectID":...})`, a `.`, and `base64url(signature)`, without
/// padding, as Calyptia Cloud issues them.
pub fn project_token(project_id: &str, signature: &str) -> String {
    let claims = json!({ "ProjectID": project_id }).to_string();
    format!(
        "{}.{}",
        base64url(claims.as_bytes()),
        base64url(signature.as_bytes())
    )
}

/// The token the simulator accepts and the project it grants: `token` itself if it is a project token, otherwise a
/// project token for [`DEFAULT_PROJECT_ID`] signed with `token`.
pub(super) fn accepted_token(token: &str) -> (String, String) {
    match project_id_from_token(token) {
        Ok(project) => (token.to_string(), project),
        Err(_) => (
            project_token(DEFAULT_PROJECT_ID, token),
            DEFAULT_PROJECT_ID.to_string(),
        ),
    }
}

/// The agent's own fake token: `cal_agent_` and 32 hex digits.
pub fn agent_token(agent: &FleetAgent) -> String {
    format!("cal_agent_{}", agent.secret_hex())
}

/// The agent's id as a UUID: the 12 bytes of the fleet id followed by `ca1f0001`.
pub fn agent_id(agent: &FleetAgent) -> String {
    let hex = format!("{}ca1f0001", agent.id_hex());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

async fn list_agents(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(project): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refused) = super::gate(&sim, &headers).await {
        return refused;
    }
    if project != sim.inner.project_id {
        return error(
            &sim,
            StatusCode::FORBIDDEN,
            "forbidden",
            Some("the project token does not grant access to this project"),
        );
    }
    let query = match ListQuery::parse(query.as_deref().unwrap_or("")) {
        Ok(query) => query,
        Err(message) => return error(&sim, StatusCode::BAD_REQUEST, &message, None),
    };
    let fleet = sim.control().fleet();
    let total = sim.control().agent_count().min(fleet.len());
    let last = query.last.unwrap_or(sim.inner.page_size).clamp(1, MAX_LAST);
    let chosen: Vec<&FleetAgent> = fleet.agents()[..total]
        .iter()
        .filter(|a| query.name.as_deref().is_none_or(|n| &*a.name == n))
        .collect();
    let start = query.offset.min(chosen.len());
    let end = start.saturating_add(last).min(chosen.len());
    let now_ms = Timestamp::now().as_millisecond();
    let body: Vec<Value> = chosen[start..end]
        .iter()
        .map(|a| record(a, a.liveness(now_ms)))
        .collect();
    let link = (end < chosen.len()).then(|| {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        next.append_pair("last", &last.to_string());
        next.append_pair("before", &cursor_for(end));
        if let Some(name) = &query.name {
            next.append_pair("name", name);
        }
        format!(
            "</v1/projects/{}/agents?{}>; rel=\"next\"",
            sim.inner.project_id,
            next.finish()
        )
    });
    sim.count_page();
    sim.respond(
        StatusCode::OK,
        link.and_then(|l| HeaderValue::from_str(&l).ok()),
        Value::Array(body).to_string().into_bytes(),
    )
}

async fn get_agent(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = super::gate(&sim, &headers).await {
        return refused;
    }
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    let fleet = sim.control().fleet();
    let total = sim.control().agent_count();
    let found = hex
        .get(..24)
        .and_then(|h| fleet.find(h))
        .filter(|a| a.index < total && agent_id(a) == id);
    match found {
        Some(agent) => {
            let live = agent.liveness(Timestamp::now().as_millisecond());
            sim.respond(
                StatusCode::OK,
                None,
                record(agent, live).to_string().into_bytes(),
            )
        }
        None => sim.not_found(),
    }
}

fn time(ms: i64) -> String {
    timestamp_ms(ms).to_string()
}

/// One agent record with every documented field, the agent's own fake `token` included.
fn record(agent: &FleetAgent, live: Liveness) -> Value {
    let (kind, os) = match agent.os {
        Os::Linux => ("fluentbit", "linux"),
        Os::Windows => ("fluentd", "windows"),
    };
    let version = agent.version.map(|v| match v {
        "5.5.0" => "v2.2.2",
        "5.4.2" => "v2.1.10",
        "5.4.1" => "v1.9.10",
        _ => "v1.8.6",
    });
    let first_metrics = live
        .last_heartbeat_ms
        .map(|_| time(agent.created_ms + 60_000));
    json!({
        "id": agent_id(agent),
        "fleetID": null,
        "token": agent_token(agent),
        "name": &*agent.name,
        "machineID": format!("{:016x}", agent.key),
        "type": kind,
        "version": version.unwrap_or("v1.8.6"),
        "edition": if agent.update_enabled { "community" } else { "enterprise" },
        "status": if live.offline { "unhealthy" } else { "healthy" },
        "os": os,
        "arch": if agent.key % 4 == 0 { "arm64" } else { "x86_64" },
        "flags": [],
        "tags": [format!("host:{}", agent.hostname())],
        "rawConfig": "[INPUT]\n    Name cpu\n[OUTPUT]\n    Name stdout\n    Match *\n",
        "metadata": null,
        "firstMetricsAddedAt": first_metrics,
        "lastMetricsAddedAt": live.last_heartbeat_ms.map(time),
        "metricsCount": if live.last_heartbeat_ms.is_some() { agent.key % 100_000 } else { 0 },
        "createdAt": time(agent.created_ms),
        "updatedAt": time(agent.modified_ms),
        "environmentName": "default",
    })
}

/// The opaque `before` cursor of the page that starts at `offset`.
fn cursor_for(offset: usize) -> String {
    base64url(format!("offset:{offset}").as_bytes())
}

/// Checks `X-Project-Token: <token>` or `Authorization: Bearer <token>`. Returns the 401 if and only if neither
/// carries the accepted token.
pub(super) fn authenticate(sim: &Simulator, headers: &HeaderMap) -> Option<Response> {
    let presented = headers
        .get(PROJECT_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    match presented {
        None => Some(error(
            sim,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            Some("missing project token"),
        )),
        Some(t) if super::constant_time_eq(t.as_bytes(), sim.inner.token.as_bytes()) => None,
        Some(_) => Some(error(
            sim,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            Some("invalid project token"),
        )),
    }
}

/// The response for a forced status: 429 with `Retry-After`, 204 empty, anything else `{"error": <reason>}`.
pub(super) fn forced_status(sim: &Simulator, status: u16, retry_after_secs: u64) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    match status.as_u16() {
        204 => sim.respond(status, None, Vec::new()),
        429 => {
            let mut response = error(sim, status, &reason, Some("slow down"));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        _ => error(sim, status, &reason, None),
    }
}

/// A response with Calyptia's `{"error", "detail"?}` envelope.
fn error(sim: &Simulator, status: StatusCode, message: &str, detail: Option<&str>) -> Response {
    let body = match detail {
        Some(detail) => json!({ "error": message, "detail": detail }),
        None => json!({ "error": message }),
    };
    sim.respond(status, None, body.to_string().into_bytes())
}

/// Unpadded base64url.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut acc = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            acc |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(acc >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// The parts of a list request's query string the simulator acts on.
#[derive(Debug, Default, PartialEq)]
struct ListQuery {
    last: Option<usize>,
    /// Where the page starts, from `before`.
    offset: usize,
    name: Option<String>,
}

impl ListQuery {
    /// Parses a raw query string. The error is the 400 message.
    fn parse(raw: &str) -> Result<ListQuery, String> {
        let mut query = ListQuery::default();
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            match &*key {
                "last" => {
                    query.last = Some(
                        value
                            .parse()
                            .map_err(|_| format!("invalid last: {value:?}"))?,
                    )
                }
                "before" => {
                    query.offset = crate::sources::calyptia::base64_decode(&value)
                        .and_then(|b| String::from_utf8(b).ok())
                        .and_then(|s| s.strip_prefix("offset:")?.parse().ok())
                        .ok_or_else(|| "invalid before cursor".to_string())?
                }
                "name" => query.name = Some(value.into_owned()),
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
    fn project_tokens_carry_their_project_id_and_other_tokens_are_wrapped() {
        let token = project_token("p-42", "sig");
        assert_eq!(project_id_from_token(&token).as_deref(), Ok("p-42"));
        assert_eq!(accepted_token(&token), (token.clone(), "p-42".to_string()));
        let (wrapped, project) = accepted_token("plain-secret");
        assert_eq!(project, DEFAULT_PROJECT_ID);
        assert_eq!(
            project_id_from_token(&wrapped).as_deref(),
            Ok(DEFAULT_PROJECT_ID)
        );
    }

    #[test]
    fn base64url_round_trips_through_the_client_decoder() {
        for input in ["", "a", "ab", "abc", "abcd", "{\"ProjectID\":\"x\"}"] {
            let encoded = base64url(input.as_bytes());
            assert!(!encoded.contains('='), "{encoded}");
            let decoded = crate::sources::calyptia::base64_decode(&encoded).unwrap();
            assert_eq!(decoded, input.as_bytes(), "{encoded}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let q = ListQuery::parse(&format!("last=3&before={}", cursor_for(9))).unwrap();
        assert_eq!((q.last, q.offset), (Some(3), 9));
        assert!(ListQuery::parse("before=zzz").is_err());
    }
}
