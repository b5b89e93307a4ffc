//! The HTTP server: `/metrics`, `/healthz`, `/readyz`, `/api/v1/agents`, the status page at `/` and a 404 page.
//!
//! Handlers only read the registry's current snapshots; none of them touches the network, so a scrape answers
//! even while every upstream is down or slow.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use serde::Serialize;

use crate::domain::{Agent, Health, TokenDateSource, age_seconds};
use crate::metrics::{Exposition, Format, SharedRenders};
use crate::status::{Registry, SourceError, SourceStatus};

/// Something that adds its data to the status page: the rule engine its alerts and the outbox's health, the web
/// layer whether the write API is open, sharding the shard. Plain values only; [`crate::page`] renders them.
pub trait LandingSection: Send + Sync {
    /// Fills this part's fields of `page` as of `now`.
    fn contribute(&self, now: Timestamp, page: &mut crate::page::PageData);
}

/// The status page says which shard it is (nothing when not sharded).
impl LandingSection for crate::domain::Shard {
    fn contribute(&self, _now: Timestamp, page: &mut crate::page::PageData) {
        if self.total > 1 {
            page.shard = Some(format!(
                "{} of {} (index {}): this replica watches only the sources whose name hashes here",
                self.index + 1,
                self.total,
                self
            ));
        }
    }
}

/// Something that can make the exporter not ready (the alerting half while notifications cannot be queued).
pub trait ReadinessCheck: Send + Sync {
    /// Sentences saying what cannot be done now; empty when all is well.
    fn problems(&self) -> Vec<String>;
}

/// What the handlers share, behind one `Arc` once [`router`] has it.
pub struct AppState {
    /// The live source statuses.
    pub registry: Arc<Registry>,
    /// The metrics registry `/metrics` encodes: the fleet's families, and whatever [`crate::app::attach`] adds.
    pub metrics: Exposition,
    /// The renders concurrent scrapes share (see [`SharedRenders`]).
    pub renders: SharedRenders,
    /// The `/api/v1/agents` answers concurrent readers share, the same way.
    pub agents: SharedRenders,
    /// The parts that add their data to the status page.
    pub sections: Vec<Arc<dyn LandingSection>>,
    /// Whether the silence API takes writes (`--web.enable-admin-api`), for the API and the landing page.
    pub writes_open: bool,
    /// Further conditions of `/readyz`.
    pub checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl AppState {
    /// State with the registry and the metrics it alone yields (the fleet's families and the build info).
    pub fn new(registry: Arc<Registry>) -> AppState {
        let renders = SharedRenders::default();
        let mut metrics = Exposition::new(registry.clone());
        metrics.register_collector(Box::new(renders.collector()));
        AppState {
            metrics,
            renders,
            agents: SharedRenders::default(),
            registry,
            sections: Vec::new(),
            writes_open: false,
            checks: Vec::new(),
        }
    }
}

/// The router with every built-in route; `extra` routes (the alerting API) are merged in.
pub fn router(state: AppState, extra: Option<Router>) -> Router {
    let app = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/agents", get(agents))
        .with_state(Arc::new(state));
    match extra {
        Some(r) => app.merge(r),
        None => app,
    }
    .fallback(not_found)
}

/// Every path no route serves: a 404 with a page that says so and links to the ones that exist, or under `/api/`
/// (where clients expect JSON) a JSON body `{"error": "..."}` in the form the API's other errors take.
async fn not_found(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        let error = format!(
            "no API endpoint at {path}; the API serves /api/v1/agents, and with alerting /api/v1/alerts and /api/v1/silences"
        );
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": error })),
        )
            .into_response();
    }
    (StatusCode::NOT_FOUND, Html(crate::page::not_found(path))).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    let exposition = state.clone();
    let rendered = state
        .renders
        .get(format, gzip, move || {
            if gzip {
                // Stream straight into the compressor: only the compressed exposition is ever held whole. Level 1:
                // the exposition is highly repetitive, so it already shrinks about sixfold at a fraction of the
                // default level's cost.
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                exposition.metrics.render_to(&mut enc, format)?;
                enc.finish()
            } else {
                Ok(exposition.metrics.render(format).into_bytes())
            }
        })
        .await;
    match rendered {
        Ok(body) => {
            let mut resp = (StatusCode::OK, body).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            if gzip {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            h.insert(
                header::VARY,
                HeaderValue::from_static("Accept, Accept-Encoding"),
            );
            resp
        }
        Err(message) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{message}\n")).into_response(),
    }
}

/// Returns true if and only if an `Accept-Encoding` value allows gzip (`gzip`, `gzip;q=0.5`, not `gzip;q=0`).
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|part| {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or("").trim();
        let q_zero = it.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                == Some(0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
    })
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 once every source has finished its first poll and no [`ReadinessCheck`] has a problem; else 503 with one
/// line per reason.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut problems: Vec<String> = state.checks.iter().flat_map(|c| c.problems()).collect();
    if !state.registry.all_ready() {
        let pending: Vec<String> = state
            .registry
            .snapshot()
            .iter()
            .filter(|s| !s.ready())
            .map(|s| s.name.clone())
            .collect();
        problems.push(format!(
            "waiting for the first poll of {}",
            pending.join(", ")
        ));
    }
    if problems.is_empty() {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let body: String = problems
        .iter()
        .map(|p| format!("not ready: {p}\n"))
        .collect();
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}

async fn landing(State(state): State<Arc<AppState>>) -> Html<String> {
    let now = Timestamp::now();
    let mut data = crate::page::PageData::new(state.registry.snapshot());
    for section in &state.sections {
        section.contribute(now, &mut data);
    }
    Html(crate::page::render(&data, now))
}

/// `/api/v1/agents` document. It borrows the snapshot and serializes each agent as it is written, so that building
/// an answer holds the snapshot and the output, not a copy of every agent as well.
#[derive(Serialize)]
pub struct AgentsDocument<'a> {
    pub generated_at: Timestamp,
    pub sources: Vec<SourceView<'a>>,
}

/// The agents of one source, written one [`AgentView`] at a time.
pub struct AgentsOf<'a> {
    agents: &'a [Agent],
    now: Timestamp,
}

impl Serialize for AgentsOf<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.agents.iter().map(|a| AgentView::new(a, self.now)))
    }
}

/// One source in `/api/v1/agents`.
#[derive(Serialize)]
pub struct SourceView<'a> {
    pub account: String,
    pub provider: String,
    pub up: bool,
    pub ready: bool,
    /// True when the agents below come from an earlier poll because the latest one failed.
    pub stale: bool,
    pub polls: u64,
    pub last_attempt: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    pub last_poll_duration_seconds: Option<f64>,
    pub snapshot_taken_at: Option<Timestamp>,
    pub last_error: Option<SourceError>,
    pub agents: AgentsOf<'a>,
}

/// One agent in `/api/v1/agents`, with ages computed at request time.
#[derive(Serialize)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub version: Option<String>,
    pub offline: bool,
    pub last_heartbeat: Option<Timestamp>,
    pub heartbeat_age_seconds: Option<f64>,
    pub token_last_rotated: Option<Timestamp>,
    pub token_date_source: Option<TokenDateSource>,
    pub token_age_seconds: Option<f64>,
    pub created_at: Option<Timestamp>,
    pub info: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

impl AgentView {
    fn new(a: &Agent, now: Timestamp) -> AgentView {
        AgentView {
            id: a.id.clone(),
            name: a.name.clone(),
            version: a.version.clone(),
            offline: a.offline,
            last_heartbeat: a.last_heartbeat,
            heartbeat_age_seconds: a.last_heartbeat.map(|t| age_seconds(now, t)),
            token_last_rotated: a.token_rotated,
            token_date_source: a.token_rotated.map(|_| a.token_rotated_source),
            token_age_seconds: a.token_rotated.map(|t| age_seconds(now, t)),
            created_at: a.created_at,
            info: a
                .info
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
                .collect(),
            health: a.health.as_deref().cloned(),
        }
    }
}

/// Builds the `/api/v1/agents` document from the statuses at `now`.
pub fn agents_document(sources: &[Arc<SourceStatus>], now: Timestamp) -> AgentsDocument<'_> {
    AgentsDocument {
        generated_at: now,
        sources: sources
            .iter()
            .map(|s| SourceView {
                account: s.name.clone(),
                provider: s.provider.to_string(),
                up: s.up,
                ready: s.ready(),
                stale: !s.up && s.agents.is_some(),
                polls: s.polls,
                last_attempt: s.last_attempt,
                last_success: s.last_success,
                last_poll_duration_seconds: s.last_duration.map(|d| d.as_secs_f64()),
                snapshot_taken_at: s.agents.as_ref().map(|a| a.polled_at),
                last_error: s.last_error.clone(),
                agents: AgentsOf {
                    agents: s.agents.as_ref().map_or(&[][..], |list| &list.agents[..]),
                    now,
                },
            })
            .collect(),
    }
}

/// `/api/v1/agents`, shared as `/metrics` is: readers that arrive while an answer is being built, or within
/// [`crate::metrics::shared::REUSE_WINDOW`] of its start, get the same bytes, so a crowd of readers costs one answer
/// (33 MB at 100k agents, about 3 MB gzipped) instead of one each. Gzipped when the client accepts it.
async fn agents(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    let registry = state.registry.clone();
    // The shared slots are keyed by exposition format; this cache of JSON answers uses the text ones only.
    let rendered = state
        .agents
        .get(Format::Text, gzip, move || {
            let snapshot = registry.snapshot();
            let doc = agents_document(&snapshot, Timestamp::now());
            if gzip {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                serde_json::to_writer(&mut enc, &doc)?;
                enc.finish()
            } else {
                Ok(serde_json::to_vec(&doc)?)
            }
        })
        .await;
    match rendered {
        Ok(body) => {
            let mut resp = (StatusCode::OK, body).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if gzip {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            resp
        }
        Err(message) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{message}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn accepts_gzip_reads_codings_and_quality_values() {
        let cases = [
            ("gzip", true),
            ("identity", false),
            ("deflate, gzip;q=0.5", true),
            ("gzip;q=0", false),
            ("*", true),
            ("GZIP", true),
        ];
        for (value, want) in cases {
            assert_eq!(accepts_gzip(value), want, "Accept-Encoding: {value}");
        }
    }
}
