//! The integrator.io on-premise agents API (`GET /v1/agents`, `GET /v1/agents/{_id}`), rendered from the fleet.
//!
//! It follows the seed contract (`celigo-agents-openapi.json`) and `NOTES.md` where they are exact, and picks the
//! strictest plausible reading where they are not, so that a client that works here works upstream:
//!
//! - **Auth** comes from middleware: a missing `Authorization` header gives 401 `{"message":"Unauthorized"}`, a
//!   wrong one 401 `{"message":"Bearer Authentication Failed"}`. Neither uses the `errors` envelope.
//! - **Pagination** is `skip`/`limit` (default [`super::SimOptions::page_size`], at most [`MAX_LIMIT`]). The `Link`
//!   header carries *relative* URLs that keep the client's other query parameters, and always lists `rel="first"`
//!   before `rel="next"`, plus `prev` and `last` where they apply, so a client must pick the rel it wants. The last
//!   page has no `next`.
//! - **Empty** pages, including a `skip` past the end, are `204 No Content` with no body.
//! - **Projection:** `include=a,b` returns `_id`, `name` and the listed fields the record has; `exclude=a,b` strips
//!   fields from the full record (`_id` and `name` are protected). Both at once, or a character outside
//!   `[A-Za-z0-9._,]`, is 400 `invalid_query_params`. Dotted sub-field paths are accepted but, as no client of ours
//!   uses them, they match nothing. With `honour_projection` off both are still validated but then ignored, and
//!   full records, secrets included, come back: integrator.io does not promise projection on this endpoint.
//! - **Full records** carry every field of the Response schema, including a fake `accessToken`.
//! - Projection is ignored on the single-record endpoint, as the contract says.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use jiff::Timestamp;

use super::Simulator;
use super::fleet::{FleetAgent, HEX, Liveness, Os};

/// The largest page a client may ask for with `limit`; larger values are clamped to it.
pub const MAX_LIMIT: usize = 1000;

/// The 400 message integrator.io sends when a request has both `include` and `exclude`.
pub const BOTH_PROJECTIONS_MESSAGE: &str =
    "Please provide either include or exclude param in the request query and not both.";

/// The routes of this provider, to be merged into the simulator's router.
pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/v1/agents", get(list_agents))
        .route("/v1/agents/{id}", get(get_agent))
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
        Err(message) => {
            return error(
                &sim,
                StatusCode::BAD_REQUEST,
                "invalid_query_params",
                &message,
            );
        }
    };
    let fleet = sim.control().fleet();
    let total = sim.control().agent_count().min(fleet.len());
    let limit = query
        .limit
        .unwrap_or(sim.inner.page_size)
        .clamp(1, MAX_LIMIT);
    let skip = query.skip.unwrap_or(0);
    if skip >= total {
        return sim.respond(StatusCode::NO_CONTENT, None, Vec::new());
    }
    let end = skip.saturating_add(limit).min(total);
    let fields = if sim.inner.honour_projection {
        query.fields
    } else {
        Fields::ALL
    };

    let now_ms = Timestamp::now().as_millisecond();
    let per_record = if fields.has(Fields::ACCESS_TOKEN) {
        1_100
    } else {
        240
    };
    let mut body = Vec::with_capacity((end - skip) * per_record + 2);
    body.push(b'[');
    for (i, agent) in fleet.agents()[skip..end].iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        write_agent(&mut body, agent, agent.liveness(now_ms), fields);
    }
    body.push(b']');

    let link = link_header(skip, limit, total, &query.rest);
    sim.count_page();
    sim.respond(StatusCode::OK, HeaderValue::from_str(&link).ok(), body)
}

async fn get_agent(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = super::gate(&sim, &headers).await {
        return refused;
    }
    let fleet = sim.control().fleet();
    let total = sim.control().agent_count();
    match fleet.find(&id).filter(|a| a.index < total) {
        Some(agent) => {
            let mut body = Vec::with_capacity(1_100);
            write_agent(
                &mut body,
                agent,
                agent.liveness(Timestamp::now().as_millisecond()),
                Fields::ALL,
            );
            sim.respond(StatusCode::OK, None, body)
        }
        None => sim.not_found(),
    }
}

/// Checks `Authorization: Bearer <token>`. Returns the middleware's bare 401 if and only if it is missing or wrong.
pub(super) fn authenticate(sim: &Simulator, headers: &HeaderMap) -> Option<Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Some(unauthorized(sim, "Unauthorized"));
    };
    let presented = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer "));
    if presented
        .is_some_and(|token| super::constant_time_eq(token.as_bytes(), sim.inner.token.as_bytes()))
    {
        None
    } else {
        Some(unauthorized(sim, "Bearer Authentication Failed"))
    }
}

fn unauthorized(sim: &Simulator, message: &str) -> Response {
    let body = serde_json::json!({ "message": message });
    sim.respond(
        StatusCode::UNAUTHORIZED,
        None,
        body.to_string().into_bytes(),
    )
}

fn rate_limited(sim: &Simulator, retry_after_secs: u64) -> Response {
    let message = format!("Too many requests. Please retry after {retry_after_secs} seconds.");
    let mut response = error(sim, StatusCode::TOO_MANY_REQUESTS, "rate_limited", &message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// The response for a status forced by the control plane or a fault, with the body integrator.io would send.
///
/// 401 gets the bare middleware body, 404 `Object not found.`, 429 a `Retry-After`, 204 nothing, 5xx an envelope whose `code` is the status
/// as an integer (the contract allows it), anything else an envelope with the reason phrase as a string code.
pub(super) fn forced_status(sim: &Simulator, status: u16, retry_after_secs: u64) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    match status.as_u16() {
        401 => unauthorized(sim, "Bearer Authentication Failed"),
        404 => error(sim, status, "not_found", "Object not found."),
        429 => rate_limited(sim, retry_after_secs),
        204 => sim.respond(status, None, Vec::new()),
        500..=599 => {
            let body =
                serde_json::json!({ "errors": [{ "code": status.as_u16(), "message": reason }] });
            sim.respond(status, None, body.to_string().into_bytes())
        }
        _ => {
            let code = reason.to_ascii_lowercase().replace(' ', "_");
            error(sim, status, &code, reason)
        }
    }
}

/// A response with the standard `{"errors":[{"code","message"}]}` envelope.
fn error(sim: &Simulator, status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] });
    sim.respond(status, None, body.to_string().into_bytes())
}

/// The parts of a list request's query string the simulator acts on.
#[derive(Debug, PartialEq)]
struct ListQuery {
    skip: Option<usize>,
    limit: Option<usize>,
    /// The fields each record shows, after `include`/`exclude`.
    fields: Fields,
    /// Every other `key=value` pair, still percent-encoded as the client sent it, for the `Link` URLs.
    rest: Vec<String>,
}

impl ListQuery {
    /// Parses a raw query string. The error is the 400 message.
    fn parse(raw: &str) -> Result<ListQuery, String> {
        let mut query = ListQuery {
            skip: None,
            limit: None,
            fields: Fields::ALL,
            rest: Vec::new(),
        };
        let (mut include, mut exclude) = (String::new(), String::new());
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let Some((key, value)) = url::form_urlencoded::parse(pair.as_bytes()).next() else {
                continue;
            };
            let number = |name: &str| {
                value.parse::<usize>().map_err(|_| {
                    format!("The {name} query param must be a non-negative integer, not {value:?}.")
                })
            };
            match &*key {
                "skip" => query.skip = Some(number("skip")?),
                "limit" => query.limit = Some(number("limit")?),
                other => {
                    match other {
                        "include" => include = value.into_owned(),
                        "exclude" => exclude = value.into_owned(),
                        _ => {}
                    }
                    query.rest.push(pair.to_owned());
                }
            }
        }
        if !include.is_empty() && !exclude.is_empty() {
            return Err(BOTH_PROJECTIONS_MESSAGE.to_owned());
        }
        for (name, value) in [("include", &include), ("exclude", &exclude)] {
            if !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ','))
            {
                return Err(format!(
                    "The {name} query param may hold only letters, digits, dots, underscores and commas: {value:?}."
                ));
            }
        }
        if !include.is_empty() {
            query.fields = Fields::IDENTITY.with(Fields::named(&include));
        } else if !exclude.is_empty() {
            query.fields = Fields::ALL
                .without(Fields::named(&exclude))
                .with(Fields::IDENTITY);
        }
        Ok(query)
    }
}

/// A set of record fields, one bit per entry of [`Fields::NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields(u32);

impl Fields {
    /// Every field of the Response schema, in the order records carry them.
    const NAMES: [&'static str; 24] = [
        "_id",
        "name",
        "description",
        "version",
        "accessToken",
        "accessToken_hash",
        "_agentExtensionId",
        "port",
        "lastHeartbeatAt",
        "__accessTokenLastModifiedAt",
        "offline",
        "__tunnelInactive",
        "__inactivateLogging",
        "__inactivate",
        "clientDetails",
        "isAgentUpdateEnabled",
        "requestUpdateCheck",
        "updateEnabled",
        "downgradeToVersion",
        "_integrationId",
        "_connectorId",
        "createdAt",
        "lastModified",
        "deletedAt",
    ];
    const ALL: Fields = Fields((1 << Self::NAMES.len()) - 1);
    const ID: u32 = 0;
    const NAME: u32 = 1;
    const DESCRIPTION: u32 = 2;
    const VERSION: u32 = 3;
    const ACCESS_TOKEN: u32 = 4;
    const ACCESS_TOKEN_HASH: u32 = 5;
    const EXTENSION_ID: u32 = 6;
    const PORT: u32 = 7;
    const LAST_HEARTBEAT_AT: u32 = 8;
    const TOKEN_MODIFIED_AT: u32 = 9;
    const OFFLINE: u32 = 10;
    const TUNNEL_INACTIVE: u32 = 11;
    const INACTIVATE_LOGGING: u32 = 12;
    const INACTIVATE: u32 = 13;
    const CLIENT_DETAILS: u32 = 14;
    const IS_AGENT_UPDATE_ENABLED: u32 = 15;
    const REQUEST_UPDATE_CHECK: u32 = 16;
    const UPDATE_ENABLED: u32 = 17;
    const DOWNGRADE_TO_VERSION: u32 = 18;
    const INTEGRATION_ID: u32 = 19;
    const CONNECTOR_ID: u32 = 20;
    const CREATED_AT: u32 = 21;
    const LAST_MODIFIED: u32 = 22;
    const DELETED_AT: u32 = 23;
    /// The fields projection always keeps.
    const IDENTITY: Fields = Fields(1 << Self::ID | 1 << Self::NAME);

    /// The fields named in a comma-separated list; unknown names match nothing.
    fn named(list: &str) -> Fields {
        Fields(
            list.split(',')
                .filter_map(|name| Self::NAMES.iter().position(|n| *n == name))
                .fold(0, |bits, i| bits | 1 << i),
        )
    }

    fn has(self, field: u32) -> bool {
        self.0 & (1 << field) != 0
    }

    fn with(self, other: Fields) -> Fields {
        Fields(self.0 | other.0)
    }

    fn without(self, other: Fields) -> Fields {
        Fields(self.0 & !other.0)
    }
}

/// Writes one agent record as JSON, showing only `fields` and, of those, only the ones this agent has.
fn write_agent(out: &mut Vec<u8>, agent: &FleetAgent, live: Liveness, fields: Fields) {
    let mut obj = Object::new(out);
    let name = |f: u32| Fields::NAMES[f as usize];
    let show = |f: u32| fields.has(f);
    if show(Fields::ID) {
        obj.hex(name(Fields::ID), &agent.id);
    }
    if show(Fields::NAME) {
        obj.str(name(Fields::NAME), &agent.name);
    }
    if let (true, Some(description)) = (show(Fields::DESCRIPTION), agent.description) {
        obj.str(name(Fields::DESCRIPTION), description);
    }
    if let (true, Some(version)) = (show(Fields::VERSION), agent.version) {
        obj.str(name(Fields::VERSION), version);
    }
    if show(Fields::ACCESS_TOKEN) {
        obj.str(name(Fields::ACCESS_TOKEN), &agent.access_token());
    }
    if show(Fields::ACCESS_TOKEN_HASH) {
        obj.hex(name(Fields::ACCESS_TOKEN_HASH), &agent.access_token_hash());
    }
    if show(Fields::EXTENSION_ID) {
        obj.hex(name(Fields::EXTENSION_ID), &agent.extension_id());
    }
    if show(Fields::PORT) {
        obj.str(name(Fields::PORT), &agent.port.to_string());
    }
    if let (true, Some(ms)) = (show(Fields::LAST_HEARTBEAT_AT), live.last_heartbeat_ms) {
        obj.timestamp(name(Fields::LAST_HEARTBEAT_AT), ms, agent.millis);
    }
    if let (true, Some(ms)) = (show(Fields::TOKEN_MODIFIED_AT), agent.token_rotated_ms) {
        obj.timestamp(name(Fields::TOKEN_MODIFIED_AT), ms, agent.millis);
    }
    if show(Fields::OFFLINE) {
        obj.bool(name(Fields::OFFLINE), live.offline);
    }
    if show(Fields::TUNNEL_INACTIVE) {
        obj.bool(name(Fields::TUNNEL_INACTIVE), live.offline);
    }
    if show(Fields::INACTIVATE_LOGGING) {
        obj.bool(name(Fields::INACTIVATE_LOGGING), false);
    }
    if show(Fields::INACTIVATE) {
        obj.bool(name(Fields::INACTIVATE), false);
    }
    if let (true, Some(version)) = (show(Fields::CLIENT_DETAILS), agent.version) {
        obj.key(name(Fields::CLIENT_DETAILS));
        write_client_details(obj.out, agent, version);
    }
    if show(Fields::IS_AGENT_UPDATE_ENABLED) {
        obj.bool(name(Fields::IS_AGENT_UPDATE_ENABLED), true);
    }
    if show(Fields::REQUEST_UPDATE_CHECK) {
        obj.bool(name(Fields::REQUEST_UPDATE_CHECK), false);
    }
    if show(Fields::UPDATE_ENABLED) {
        obj.bool(name(Fields::UPDATE_ENABLED), agent.update_enabled);
    }
    if let (true, Some(version)) = (show(Fields::DOWNGRADE_TO_VERSION), agent.downgrade_to) {
        obj.str(name(Fields::DOWNGRADE_TO_VERSION), version);
    }
    if let Some((integration, connector)) = agent.integration_ids() {
        if show(Fields::INTEGRATION_ID) {
            obj.hex(name(Fields::INTEGRATION_ID), &integration);
        }
        if show(Fields::CONNECTOR_ID) {
            obj.hex(name(Fields::CONNECTOR_ID), &connector);
        }
    }
    if show(Fields::CREATED_AT) {
        obj.timestamp(name(Fields::CREATED_AT), agent.created_ms, agent.millis);
    }
    if show(Fields::LAST_MODIFIED) {
        obj.timestamp(name(Fields::LAST_MODIFIED), agent.modified_ms, agent.millis);
    }
    if show(Fields::DELETED_AT) {
        obj.raw(name(Fields::DELETED_AT), b"null");
    }
    obj.end();
}

/// The host details an agent reports. The contract only says "object"; these keys are our invention.
fn write_client_details(out: &mut Vec<u8>, agent: &FleetAgent, version: &str) {
    let mut obj = Object::new(out);
    obj.str("hostname", &agent.hostname());
    let (platform, release) = match agent.os {
        Os::Linux => ("linux", "5.15.0-122-generic"),
        Os::Windows => ("win32", "10.0.20348"),
    };
    obj.str("platform", platform);
    obj.str("osRelease", release);
    obj.str("arch", "x64");
    let [a, b, c, d] = agent.ip();
    obj.str("ipAddress", &format!("{a}.{b}.{c}.{d}"));
    obj.str("agentVersion", version);
    obj.end();
}

/// A JSON object being written straight into a byte buffer: no intermediate values, which keeps a 1,000-record
/// page at about a millisecond.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>) -> Object<'a> {
        out.push(b'{');
        Object { out, first: true }
    }

    /// Writes `"key":`, preceded by a comma unless it is the first. Keys are our own constants: no escaping.
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        write_json_string(self.out, value);
    }

    fn hex(&mut self, key: &str, bytes: &[u8]) {
        self.key(key);
        self.out.push(b'"');
        for b in bytes {
            self.out.push(HEX[(b >> 4) as usize]);
            self.out.push(HEX[(b & 0xf) as usize]);
        }
        self.out.push(b'"');
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.raw(key, if value { b"true" } else { b"false" });
    }

    fn raw(&mut self, key: &str, json: &[u8]) {
        self.key(key);
        self.out.extend_from_slice(json);
    }

    fn timestamp(&mut self, key: &str, unix_ms: i64, millis: bool) {
        self.key(key);
        self.out.push(b'"');
        write_timestamp(self.out, unix_ms, millis);
        self.out.push(b'"');
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// Writes `s` as a JSON string literal: quotes, backslashes and control characters escaped, everything else
/// (non-ASCII included) as UTF-8.
fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Writes Unix milliseconds as ISO 8601 UTC: `2025-03-27T14:59:30Z`, or `2025-01-22T20:59:27.690Z` with `millis`.
///
/// Hand-rolled (days-to-civil after Howard Hinnant) because it runs several times per record and allocates
/// nothing; the tests check it against jiff.
fn write_timestamp(out: &mut Vec<u8>, unix_ms: i64, millis: bool) {
    let secs = unix_ms.div_euclid(1_000);
    let ms = unix_ms.rem_euclid(1_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let digits = |out: &mut Vec<u8>, value: i64, width: u32| {
        for i in (0..width).rev() {
            out.push(b'0' + (value / 10i64.pow(i) % 10) as u8);
        }
    };
    digits(out, year, 4);
    out.push(b'-');
    digits(out, month, 2);
    out.push(b'-');
    digits(out, day, 2);
    out.push(b'T');
    digits(out, sod / 3_600, 2);
    out.push(b':');
    digits(out, sod / 60 % 60, 2);
    out.push(b':');
    digits(out, sod % 60, 2);
    if millis {
        out.push(b'.');
        digits(out, ms, 3);
    }
    out.push(b'Z');
}

/// The `Link` header of a page: `first`, then `prev` (unless on the first page), `next` (unless on the last) and
/// `last`. URLs are relative and repeat the client's other query parameters verbatim.
fn link_header(skip: usize, limit: usize, total: usize, rest: &[String]) -> String {
    let url = |skip: usize| {
        let mut url = format!("/v1/agents?skip={skip}&limit={limit}");
        for pair in rest {
            url.push('&');
            url.push_str(pair);
        }
        url
    };
    let mut links = vec![format!("<{}>; rel=\"first\"", url(0))];
    if skip > 0 {
        links.push(format!(
            "<{}>; rel=\"prev\"",
            url(skip.saturating_sub(limit))
        ));
    }
    if skip + limit < total {
        links.push(format!("<{}>; rel=\"next\"", url(skip + limit)));
    }
    links.push(format!(
        "<{}>; rel=\"last\"",
        url((total.saturating_sub(1) / limit) * limit)
    ));
    links.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_jiff_with_and_without_milliseconds() {
        for ms in [
            0,
            1_737_579_567_690,
            1_743_087_570_000,
            951_782_400_999,
            4_102_444_799_123,
            -86_400_001,
        ] {
            let t = Timestamp::from_millisecond(ms).unwrap();
            for millis in [false, true] {
                let mut out = Vec::new();
                write_timestamp(&mut out, ms, millis);
                let format = if millis {
                    "%Y-%m-%dT%H:%M:%S%.3fZ"
                } else {
                    "%Y-%m-%dT%H:%M:%SZ"
                };
                let expected = t.strftime(format).to_string();
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    expected,
                    "{ms} ms, millis={millis}"
                );
            }
        }
    }

    #[test]
    fn json_strings_round_trip_through_serde_json() {
        for s in [
            "db-gw \"east\"",
            "C:\\agents\\win01",
            "line1\nline2",
            "Zürich-東京",
            "\u{1}\u{1f}\t\r",
            "<b>&</b>",
        ] {
            let mut out = Vec::new();
            write_json_string(&mut out, s);
            let back: String =
                serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{s:?} gave {out:?}: {e}"));
            assert_eq!(back, s);
        }
    }

    #[test]
    fn include_keeps_identity_and_listed_fields_and_exclude_cannot_strip_identity() {
        let q = ListQuery::parse("include=lastHeartbeatAt,offline,nosuch&skip=5").unwrap();
        assert_eq!(q.skip, Some(5));
        assert_eq!(
            q.fields,
            Fields::IDENTITY.with(Fields::named("lastHeartbeatAt,offline"))
        );
        assert_eq!(
            q.rest,
            vec!["include=lastHeartbeatAt,offline,nosuch".to_owned()]
        );
        let q = ListQuery::parse("exclude=_id,name,accessToken").unwrap();
        assert!(
            q.fields.has(Fields::ID)
                && q.fields.has(Fields::NAME)
                && !q.fields.has(Fields::ACCESS_TOKEN)
        );
    }

    #[test]
    fn bad_queries_are_refused_with_a_message() {
        let cases = [
            ("include=a&exclude=b", BOTH_PROJECTIONS_MESSAGE),
            ("include=a%20b", "may hold only"),
            ("exclude=a;b", "may hold only"),
            ("limit=ten", "non-negative integer"),
            ("skip=-1", "non-negative integer"),
        ];
        for (raw, expected) in cases {
            match ListQuery::parse(raw) {
                Err(message) => assert!(message.contains(expected), "{raw}: {message}"),
                Ok(q) => panic!("{raw} was accepted: {q:?}"),
            }
        }
        assert!(
            ListQuery::parse("include=&exclude=b").is_ok(),
            "an empty include is ignored"
        );
    }

    #[test]
    fn link_header_lists_next_only_when_more_pages_remain() {
        let rest = vec!["include=offline".to_owned()];
        assert_eq!(
            link_header(0, 2, 5, &rest),
            "</v1/agents?skip=0&limit=2&include=offline>; rel=\"first\", \
             </v1/agents?skip=2&limit=2&include=offline>; rel=\"next\", \
             </v1/agents?skip=4&limit=2&include=offline>; rel=\"last\""
        );
        let last = link_header(4, 2, 5, &[]);
        assert!(
            !last.contains("next") && last.contains("rel=\"prev\""),
            "{last}"
        );
    }
}
