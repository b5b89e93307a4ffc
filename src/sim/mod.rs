//! A faithful stand-in for the upstream agent APIs, used by `simulate`, `demo`, the tests and the bench.
//!
//! - [`fleet`] is a deterministic, time-driven fleet of fake agents that knows no provider.
//! - [`celigo`] serves that fleet as integrator.io's `GET /v1/agents`.
//! - [`planasonix`] serves it as Planasonix's `GET /api/agents` and `GET /api/agents/{id}/health`.
//! - [`calyptia`] serves it as Calyptia Cloud's `GET /v1/projects/{projectID}/agents`.
//! - This module holds the options (including which provider to be), the runtime [`Control`] knobs, the request
//!   counters, the gate every API request passes (latency, forced status, auth, faults), and the router.
//!
//! The simulator has no background task: agent liveness is computed from the wall clock at request time, and the
//! fleet is generated once, so a request costs only the records on its page.
//!
//! # The control endpoint
//!
//! `GET /_sim/control` returns the current knobs and counters; `PUT /_sim/control` changes them. Both need the same
//! credentials as the API (for Calyptia, the project token in `X-Project-Token` or as a bearer); neither is part of
//! any vendor's API, and neither is subject to the forced status, the faults or the latency (so a forced 500 can
//! always be lifted). The body of a `PUT` is a JSON object whose keys are all optional; an absent key leaves its knob
//! alone:
//!
//! | key | value | effect |
//! |---|---|---|
//! | `status` | HTTP status or `null` | answer every API request with this status (`null` lifts it) |
//! | `agents` | count | show the first N agents (0 gives Celigo's 204, or an empty list), generating more if needed |
//! | `latency_ms` | milliseconds | delay every API response |
//! | `rate_limit_every` | N or `null` | every Nth authenticated request gets 429 |
//! | `retry_after_secs` | seconds | the `Retry-After` of those 429s |
//! | `fail_every` | N or `null` | every Nth authenticated request gets 500 |
//!
//! ```text
//! curl -X PUT -H 'Authorization: Bearer sim-api-token' -d '{"status":500}' http://127.0.0.1:18089/_sim/control
//! ```

pub mod calyptia;
pub mod celigo;
pub mod fleet;
pub mod planasonix;

use std::future::Future;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use jiff::Timestamp;
use serde::Deserialize;

use fleet::Fleet;

pub use crate::domain::Provider;

/// The API key a simulator accepts unless told otherwise.
pub const DEFAULT_TOKEN: &str = "sim-api-token";

/// The seed of the default fleet.
pub const DEFAULT_SEED: u64 = 20_251_122;

/// The most agents a simulator will hold; larger counts are clamped to it. A million full records are about 1 GB
/// on the wire and a few hundred MB in memory, which is already past any useful test.
pub const MAX_AGENTS: usize = 1_000_000;

/// How a simulator starts.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Which vendor's API to serve (default Celigo). A generic provider has no API of its own and is served Celigo's.
    pub provider: Provider,
    /// Agents in the fleet (default 25), at most [`MAX_AGENTS`].
    pub agents: usize,
    /// Records per page when the client sends no `limit` (default 100), clamped to 1..=[`celigo::MAX_LIMIT`].
    pub page_size: usize,
    /// The API key the simulator accepts as `Authorization: Bearer <token>`. For Calyptia it must be a project token
    /// (see [`calyptia::project_token`]); any other string is wrapped into one for [`calyptia::DEFAULT_PROJECT_ID`],
    /// and [`Simulator::api_token`] tells what is then accepted.
    pub token: String,
    /// Whether `include`/`exclude` are honoured (default true). Off, every record is a full one with its
    /// `accessToken`, which is what a client must survive if production ignores projection.
    pub honour_projection: bool,
    /// The fleet's seed: the same seed gives the same agents.
    pub seed: u64,
    /// Faults injected from the start.
    pub faults: Faults,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            provider: Provider::Celigo,
            agents: 25,
            page_size: 100,
            token: DEFAULT_TOKEN.to_owned(),
            honour_projection: true,
            seed: DEFAULT_SEED,
            faults: Faults::default(),
        }
    }
}

/// Injected misbehaviour. Counting starts at the first authenticated API request after the faults are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults {
    /// Every Nth authenticated request gets `429` with `Retry-After`. `None` or `Some(0)`: never.
    pub rate_limit_every: Option<u32>,
    /// The `Retry-After` of a 429, seconds (default 1).
    pub retry_after_secs: u64,
    /// Every Nth authenticated request gets `500`. `None` or `Some(0)`: never. A request due both a 429 and a 500
    /// gets the 429.
    pub fail_every: Option<u32>,
    /// A delay before every API response, so that clients' timeouts can be exercised.
    pub latency: Duration,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            rate_limit_every: None,
            retry_after_secs: 1,
            fail_every: None,
            latency: Duration::ZERO,
        }
    }
}

/// What a simulator has served since it started; the bench compares a poll's cost with these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// API requests received, whatever their outcome (control-endpoint requests excluded).
    pub requests: u64,
    /// Response body bytes sent by the API, before any transfer encoding.
    pub bytes: u64,
    /// Successful (200) list pages served.
    pub pages: u64,
}

/// A running simulator's shared state. Cloning is cheap: every clone shares the same fleet, knobs and counters.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Provider,
    /// The credential accepted; for Calyptia a project token.
    token: String,
    /// Calyptia only: the project the token grants, the `{projectID}` of the list path.
    project_id: String,
    page_size: usize,
    honour_projection: bool,
    control: Control,
    requests: AtomicU64,
    bytes: AtomicU64,
    pages: AtomicU64,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("provider", &self.inner.provider)
            .field("agents", &self.control().agent_count())
            .field("page_size", &self.inner.page_size)
            .field("honour_projection", &self.inner.honour_projection)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Generates the fleet (ages measured back from now) and returns a simulator ready to serve it.
    pub fn new(opts: SimOptions) -> Simulator {
        let agents = opts.agents.min(MAX_AGENTS);
        let fleet = Fleet::generate(agents, opts.seed, Timestamp::now());
        let (token, project_id) = match opts.provider {
            Provider::Calyptia => calyptia::accepted_token(&opts.token),
            _ => (opts.token, String::new()),
        };
        Simulator {
            inner: Arc::new(Inner {
                provider: opts.provider,
                token,
                project_id,
                page_size: opts.page_size.clamp(1, celigo::MAX_LIMIT),
                honour_projection: opts.honour_projection,
                control: Control {
                    fleet: ArcSwap::from_pointee(fleet),
                    grow: Mutex::new(()),
                    agents: AtomicUsize::new(agents),
                    status: AtomicU16::new(0),
                    faults: Mutex::new(opts.faults),
                    fault_clock: AtomicU64::new(0),
                },
                requests: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                pages: AtomicU64::new(0),
            }),
        }
    }

    /// The HTTP routes: the chosen provider's API and the control endpoint.
    pub fn router(&self) -> Router {
        let api = match self.inner.provider {
            Provider::Celigo | Provider::Generic(_) => celigo::routes(),
            Provider::Planasonix => planasonix::routes(),
            Provider::Calyptia => calyptia::routes(),
        };
        Router::new()
            .merge(api)
            .route("/_sim/control", get(get_control).put(put_control))
            .fallback(|State(sim): State<Simulator>| async move {
                sim.count_request();
                sim.not_found()
            })
            .with_state(self.clone())
    }

    /// The provider this simulator serves.
    pub fn provider(&self) -> Provider {
        self.inner.provider
    }

    /// The credential the API accepts: the configured token, or for Calyptia the project token built from it.
    pub fn api_token(&self) -> &str {
        &self.inner.token
    }

    /// The path of the agent list, for messages: `/v1/agents`, `/api/agents` or `/v1/projects/{id}/agents`.
    pub fn list_path(&self) -> String {
        match self.inner.provider {
            Provider::Celigo | Provider::Generic(_) => "/v1/agents".to_string(),
            Provider::Planasonix => "/api/agents".to_string(),
            Provider::Calyptia => format!("/v1/projects/{}/agents", self.inner.project_id),
        }
    }

    /// Serves on `listener` until `shutdown` completes, then lets open requests finish.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// The runtime knobs.
    pub fn control(&self) -> &Control {
        &self.inner.control
    }

    /// Requests and bytes served so far.
    pub fn stats(&self) -> SimStats {
        SimStats {
            requests: self.inner.requests.load(Ordering::Relaxed),
            bytes: self.inner.bytes.load(Ordering::Relaxed),
            pages: self.inner.pages.load(Ordering::Relaxed),
        }
    }

    /// Every fake per-agent secret the simulator has generated (hidden agents included), in the provider's own form
    /// (Celigo `accessToken`, Planasonix `enrollment_token`, Calyptia `token`), so that leak tests can search outputs
    /// for them.
    pub fn access_tokens(&self) -> Vec<String> {
        let secret: fn(&fleet::FleetAgent) -> String = match self.inner.provider {
            Provider::Celigo | Provider::Generic(_) => fleet::FleetAgent::access_token,
            Provider::Planasonix => planasonix::enrollment_token,
            Provider::Calyptia => calyptia::agent_token,
        };
        self.control().fleet().agents().iter().map(secret).collect()
    }

    /// Checks the request's credentials the way the provider's API does; returns the refusal, if any.
    fn authenticate(&self, headers: &HeaderMap) -> Option<Response> {
        match self.inner.provider {
            Provider::Celigo | Provider::Generic(_) => celigo::authenticate(self, headers),
            Provider::Planasonix => planasonix::authenticate(self, headers),
            Provider::Calyptia => calyptia::authenticate(self, headers),
        }
    }

    /// The response for a status forced by the control plane or a fault, in the provider's own error shape.
    fn forced_status(&self, status: u16, retry_after_secs: u64) -> Response {
        match self.inner.provider {
            Provider::Celigo | Provider::Generic(_) => {
                celigo::forced_status(self, status, retry_after_secs)
            }
            Provider::Planasonix => planasonix::forced_status(self, status, retry_after_secs),
            Provider::Calyptia => calyptia::forced_status(self, status, retry_after_secs),
        }
    }

    /// The 404 for an unknown path or agent, in the provider's own error shape.
    fn not_found(&self) -> Response {
        self.forced_status(404, 0)
    }

    fn count_request(&self) {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn count_page(&self) {
        self.inner.pages.fetch_add(1, Ordering::Relaxed);
    }

    /// Builds an API response and counts its body. A non-empty body is JSON.
    fn respond(&self, status: StatusCode, link: Option<HeaderValue>, body: Vec<u8>) -> Response {
        self.inner
            .bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let json = !body.is_empty();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        if json {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        if let Some(link) = link {
            response.headers_mut().insert(header::LINK, link);
        }
        response
    }
}

/// What every API request goes through before its handler; returns the refusal, if any, in the order a real
/// deployment applies it: latency, the forced status, authentication, then the injected faults (which count only
/// authenticated requests, so a test's "every Nth request" is not shifted by its own auth probes).
async fn gate(sim: &Simulator, headers: &HeaderMap) -> Option<Response> {
    sim.count_request();
    let control = sim.control();
    let faults = control.faults();
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if let Some(status) = control.status_override() {
        return Some(sim.forced_status(status, faults.retry_after_secs));
    }
    if let Some(refused) = sim.authenticate(headers) {
        return Some(refused);
    }
    let n = control.tick();
    if faults
        .rate_limit_every
        .is_some_and(|every| every > 0 && n % u64::from(every) == 0)
    {
        return Some(sim.forced_status(429, faults.retry_after_secs));
    }
    if faults
        .fail_every
        .is_some_and(|every| every > 0 && n % u64::from(every) == 0)
    {
        return Some(sim.forced_status(500, faults.retry_after_secs));
    }
    None
}

/// Compares without an early exit, so a timing probe learns nothing; the habit matters more than the simulator.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Runtime knobs, shared by every clone of a [`Simulator`]. Each setter takes effect from the next request.
pub struct Control {
    /// The generated agents. Swapped whole when [`Control::set_agent_count`] needs more, so a request in flight
    /// keeps the fleet it started with.
    fleet: ArcSwap<Fleet>,
    /// Serialises fleet growth, so two concurrent growths do not generate the same agents twice.
    grow: Mutex<()>,
    /// How many of the fleet's agents are visible; at most the fleet's length.
    agents: AtomicUsize,
    /// The forced status, 0 for none.
    status: AtomicU16,
    /// A `std` mutex: it is held only to copy or replace the value, never across an `.await`.
    faults: Mutex<Faults>,
    /// Authenticated API requests since the faults were last set; "every Nth" counts on it.
    fault_clock: AtomicU64,
}

impl Control {
    /// Makes every API request answer `status` (with the body integrator.io would send for it), or lifts that.
    pub fn set_status_override(&self, status: Option<u16>) {
        self.status.store(status.unwrap_or(0), Ordering::Relaxed);
    }

    /// The forced status, if any.
    pub fn status_override(&self) -> Option<u16> {
        Some(self.status.load(Ordering::Relaxed)).filter(|s| *s != 0)
    }

    /// Shows the first `count` agents (clamped to [`MAX_AGENTS`]); 0 makes the list answer 204. Growing past the
    /// generated fleet generates the missing agents now, on the caller's thread; shrinking only hides agents, so
    /// growing back brings the same ones.
    pub fn set_agent_count(&self, count: usize) {
        let count = count.min(MAX_AGENTS);
        if count > self.fleet.load().len() {
            let _growing = lock(&self.grow);
            let current = self.fleet.load_full();
            if count > current.len() {
                let mut grown = Fleet::clone(&current);
                grown.grow_to(count);
                self.fleet.store(Arc::new(grown));
            }
        }
        self.agents.store(count, Ordering::Relaxed);
    }

    /// How many agents the list shows.
    pub fn agent_count(&self) -> usize {
        self.agents.load(Ordering::Relaxed)
    }

    /// Replaces the faults and restarts their count.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
        self.fault_clock.store(0, Ordering::Relaxed);
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    /// Sets only the response delay, leaving the other faults and their count alone.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.faults).latency = latency;
    }

    /// The whole generated fleet, hidden agents included.
    pub fn fleet(&self) -> Arc<Fleet> {
        self.fleet.load_full()
    }

    /// Counts one authenticated request and returns its 1-based number.
    fn tick(&self) -> u64 {
        self.fault_clock.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Locks a mutex, recovering from poisoning: every value guarded here is valid whatever panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The body of `PUT /_sim/control`; see the module documentation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlRequest {
    #[serde(default, deserialize_with = "present")]
    status: Option<Option<u16>>,
    agents: Option<usize>,
    latency_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    rate_limit_every: Option<Option<u32>>,
    retry_after_secs: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    fail_every: Option<Option<u32>>,
}

/// Tells an explicit `null` (`Some(None)`: clear the knob) from an absent key (`None`: leave it).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

async fn get_control(State(sim): State<Simulator>, headers: HeaderMap) -> Response {
    if let Some(refused) = sim.authenticate(&headers) {
        return refused;
    }
    control_state(&sim)
}

async fn put_control(State(sim): State<Simulator>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = sim.authenticate(&headers) {
        return refused;
    }
    let request: ControlRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return control_error(&format!("invalid control request: {e}")),
    };
    if let Some(Some(status)) = request.status {
        if !(100..=599).contains(&status) {
            return control_error(&format!(
                "invalid control request: status {status} is not an HTTP status"
            ));
        }
    }
    let control = sim.control();
    if let Some(status) = request.status {
        control.set_status_override(status);
    }
    if let Some(agents) = request.agents {
        control.set_agent_count(agents);
    }
    if let Some(ms) = request.latency_ms {
        control.set_latency(Duration::from_millis(ms));
    }
    // Only a change to the periodic faults restarts their count; a latency change alone does not.
    let mut faults = control.faults();
    let before = faults.clone();
    if let Some(every) = request.rate_limit_every {
        faults.rate_limit_every = every;
    }
    if let Some(secs) = request.retry_after_secs {
        faults.retry_after_secs = secs;
    }
    if let Some(every) = request.fail_every {
        faults.fail_every = every;
    }
    if faults != before {
        control.set_faults(faults);
    }
    control_state(&sim)
}

/// The knobs and counters as JSON; the answer to both control requests.
fn control_state(sim: &Simulator) -> Response {
    let control = sim.control();
    let faults = control.faults();
    let stats = sim.stats();
    let body = serde_json::json!({
        "status": control.status_override(),
        "agents": control.agent_count(),
        "latency_ms": faults.latency.as_millis() as u64,
        "rate_limit_every": faults.rate_limit_every,
        "retry_after_secs": faults.retry_after_secs,
        "fail_every": faults.fail_every,
        "requests": stats.requests,
        "bytes": stats.bytes,
        "pages": stats.pages,
    });
    json_response(StatusCode::OK, body)
}

fn control_error(message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        serde_json::json!({ "message": message }),
    )
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
