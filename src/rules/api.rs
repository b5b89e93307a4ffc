//! The rule engine's HTTP face: `GET /api/v1/alerts`, `GET` and `POST /api/v1/silences`,
//! `DELETE /api/v1/silences/{id}`.
//!
//! Nothing here takes the engine's lock: reads load the alerts the engine published after its last evaluation
//! ([`Published`]) and the silence store's published list; writes go to the silence store, on a blocking thread
//! (they write its file), under the store's own lock.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use jiff::Timestamp;
use serde::Serialize;

use crate::domain::Silence;
use crate::rules::engine::{Published, SharedEngine, lock};
use crate::rules::silences::{NewSilence, Refusal, SilenceStore};
use crate::rules::views::views;

/// The sentence a `POST` or `DELETE` on the silences gets when writes are closed.
pub const WRITES_CLOSED: &str = "silences are read-only on this exporter: start it with --web.enable-admin-api to \
                                 create or delete them (and protect it with basic_auth_users in --web.config.file)";

/// What the handlers share.
#[derive(Clone)]
struct Api {
    /// The alerts as of the engine's last evaluation.
    alerts: Published,
    /// The silences, which the handlers list and change.
    silences: Arc<SilenceStore>,
    /// Whether `POST` and `DELETE` are allowed (`--web.enable-admin-api`).
    writes_open: bool,
}

/// The routes above, ready to be merged into the exporter's router. Unless `writes_open`, `POST` and `DELETE` answer
/// `403 Forbidden` with [`WRITES_CLOSED`]. Locks the engine once, here, to take the handles the handlers read.
pub fn router(engine: SharedEngine, writes_open: bool) -> Router {
    let (alerts, silences) = {
        let e = lock(&engine);
        (e.published(), Arc::clone(e.silence_store()))
    };
    Router::new()
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/silences", get(list_silences).post(create_silence))
        .route("/api/v1/silences/{id}", delete(delete_silence))
        .with_state(Api {
            alerts,
            silences,
            writes_open,
        })
}

/// A silence as the API shows it: the stored fields plus its status now.
#[derive(Debug, Serialize)]
pub struct SilenceView {
    #[serde(flatten)]
    pub silence: Silence,
    /// `pending`, `active` or `expired`.
    pub status: &'static str,
}

fn view(s: &Silence, now: Timestamp) -> SilenceView {
    SilenceView {
        silence: s.clone(),
        status: s.status(now),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn list_alerts(State(api): State<Api>) -> Response {
    let snapshot = api.alerts.load_full();
    let alerts = views(&snapshot.alerts, &api.silences.snapshot(), Timestamp::now());
    Json(serde_json::json!({ "alerts": alerts })).into_response()
}

async fn list_silences(State(api): State<Api>) -> Response {
    let now = Timestamp::now();
    let silences: Vec<SilenceView> = api
        .silences
        .snapshot()
        .iter()
        .map(|s| view(s, now))
        .collect();
    Json(serde_json::json!({ "silences": silences })).into_response()
}

/// Runs a silence store write on a blocking thread (it writes the file) and turns a refusal into its answer.
async fn write<T: Send + 'static>(
    store: &Arc<SilenceStore>,
    change: impl FnOnce(&SilenceStore) -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Response> {
    let store = Arc::clone(store);
    let outcome = tokio::task::spawn_blocking(move || change(&store))
        .await
        .unwrap_or_else(|e| Err(Refusal::Unsaved(format!("the writer panicked: {e}"))));
    outcome.map_err(|refusal| match refusal {
        Refusal::Invalid(message) => error(StatusCode::BAD_REQUEST, message),
        Refusal::TooMany(message) => error(StatusCode::TOO_MANY_REQUESTS, message),
        Refusal::Unsaved(cause) => {
            tracing::error!(error = %cause, "a silence change could not be saved; it was not made");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the change was not made because the silences cannot be saved: {cause}"),
            )
        }
    })
}

async fn create_silence(
    State(api): State<Api>,
    body: Result<Json<NewSilence>, JsonRejection>,
) -> Response {
    if !api.writes_open {
        return error(StatusCode::FORBIDDEN, WRITES_CLOSED);
    }
    let Json(new) = match body {
        Ok(b) => b,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let now = Timestamp::now();
    let silence = match write(&api.silences, move |store| store.add(new, now)).await {
        Ok(silence) => silence,
        Err(response) => return response,
    };
    tracing::info!(id = %silence.id, ends_at = %silence.ends_at, "silence created");
    (StatusCode::CREATED, Json(view(&silence, now))).into_response()
}

async fn delete_silence(State(api): State<Api>, Path(id): Path<String>) -> Response {
    if !api.writes_open {
        return error(StatusCode::FORBIDDEN, WRITES_CLOSED);
    }
    let target = id.clone();
    match write(&api.silences, move |store| store.delete(&target)).await {
        Ok(Some(_)) => {
            tracing::info!(%id, "silence deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no silence with id {id:?}")),
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::config::alerting::EngineConfig;
    use crate::domain::{Agent, AgentList, Provider};
    use crate::rules::engine::Engine;
    use crate::rules::silences::path_beside;
    use crate::rules::state::State as RuleState;
    use crate::status::SourceStatus;

    /// An engine with one firing `AgentHeartbeatStale` for an agent whose name carries HTML and quotes, saving to
    /// `state_file`.
    fn engine_saving_to(state_file: &std::path::Path) -> SharedEngine {
        let now = Timestamp::now();
        let mut agent = Agent::new("a1", "<b>edge \"1\"</b> & co");
        agent.last_heartbeat = Some(now.checked_sub(Duration::from_secs(3600)).unwrap());
        let mut s = SourceStatus::new("prod", Provider::Celigo);
        s.agents = Some(Arc::new(AgentList {
            polled_at: now,
            agents: vec![agent],
        }));
        s.up = true;
        s.polls = 1;
        let config = EngineConfig::new(state_file, vec![]);
        let store = SilenceStore::open(path_beside(state_file), config.silences).unwrap();
        let mut engine = Engine::with_silences(config, RuleState::new(now), Arc::new(store));
        engine.evaluate(&[Arc::new(s)], now);
        Arc::new(Mutex::new(engine))
    }

    /// [`engine_saving_to`] a file in a directory that lives as long as the test.
    fn engine_with_an_alert() -> (tempfile::TempDir, SharedEngine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine_saving_to(&dir.path().join("state.json"));
        (dir, engine)
    }

    /// Serves `router(engine, writes_open)` on 127.0.0.1 port 0 and returns its base URL.
    async fn serve_with(engine: SharedEngine, writes_open: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router(engine, writes_open))
                .await
                .unwrap()
        });
        format!("http://{addr}")
    }

    /// Serves the routes with writes open on 127.0.0.1 port 0 and returns the base URL.
    async fn serve(engine: SharedEngine) -> String {
        serve_with(engine, true).await
    }

    #[tokio::test]
    async fn get_alerts_lists_each_alert_with_its_labels_and_state() {
        let (_dir, engine) = engine_with_an_alert();
        let base = serve(engine).await;
        let body: serde_json::Value = reqwest::get(format!("{base}/api/v1/alerts"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let alert = &body["alerts"][0];
        assert_eq!(alert["alertname"], "AgentHeartbeatStale", "saw {body}");
        assert_eq!(alert["severity"], "critical", "saw {body}");
        assert_eq!(alert["state"], "firing", "saw {body}");
        assert_eq!(alert["account"], "prod", "saw {body}");
        assert_eq!(alert["agent_id"], "a1", "saw {body}");
        assert_eq!(alert["value"], "last heartbeat 1h ago", "saw {body}");
        assert_eq!(alert["inhibited"], false, "saw {body}");
    }

    #[tokio::test]
    async fn silences_are_created_listed_and_deleted() {
        let (dir, engine) = engine_with_an_alert();
        let base = serve(Arc::clone(&engine)).await;
        let client = reqwest::Client::new();
        let created = client
            .post(format!("{base}/api/v1/silences"))
            .json(&serde_json::json!({
                "matchers": [{"name": "agent_id", "value": "a1"}],
                "duration": "2h",
                "created_by": "ops",
                "comment": "disk swap"
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let created: serde_json::Value = created.json().await.unwrap();
        let id = created["id"].as_str().expect("an id").to_string();
        assert_eq!(created["status"], "active", "saw {created}");

        let listed: serde_json::Value = client
            .get(format!("{base}/api/v1/silences"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["silences"][0]["id"], id.as_str(), "saw {listed}");
        assert_eq!(
            listed["silences"][0]["matchers"][0]["value"], "a1",
            "saw {listed}"
        );
        let alerts: serde_json::Value = client
            .get(format!("{base}/api/v1/alerts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            alerts["alerts"][0]["silenced_by"][0],
            id.as_str(),
            "saw {alerts}"
        );
        let on_disk = SilenceStore::open(
            path_beside(&dir.path().join("state.json")),
            Default::default(),
        )
        .unwrap();
        assert_eq!(
            on_disk
                .snapshot()
                .iter()
                .map(|s| s.id.clone())
                .collect::<Vec<_>>(),
            vec![id.clone()],
            "the silence was not on disk when 201 came"
        );
        assert!(
            !dir.path().join("state.json").exists(),
            "a silence write rewrote the alert state"
        );

        let url = format!("{base}/api/v1/silences/{id}");
        assert_eq!(client.delete(&url).send().await.unwrap().status(), 204);
        let again = client.delete(&url).send().await.unwrap();
        assert_eq!(again.status(), 404);
        let body: serde_json::Value = again.json().await.unwrap();
        assert_eq!(body["error"], format!("no silence with id {id:?}"));
    }

    #[tokio::test]
    async fn a_bad_silence_is_refused_with_a_reason() {
        let (_dir, engine) = engine_with_an_alert();
        let base = serve(engine).await;
        let client = reqwest::Client::new();
        let cases = [
            (
                serde_json::json!({"matchers": [{"name": "agent_id", "value": "a1"}]}),
                "give ends_at or duration",
            ),
            (
                serde_json::json!({"matchers": [{"name": "agent_id", "value": "(", "is_regex": true}], "duration": "1h"}),
                "bad regex \"(\": unclosed group",
            ),
            (
                serde_json::json!({"matchers": [{"name": "colour", "value": "x"}], "duration": "1h"}),
                "unknown variant",
            ),
        ];
        for (request, want) in cases {
            let response = client
                .post(format!("{base}/api/v1/silences"))
                .json(&request)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "for {request}");
            let body: serde_json::Value = response.json().await.unwrap();
            let error = body["error"].as_str().unwrap_or_default();
            assert!(error.contains(want), "for {request}: saw {body}");
        }
    }

    #[tokio::test]
    async fn writes_are_refused_with_the_flag_named_unless_the_admin_api_is_enabled() {
        let (_dir, engine) = engine_with_an_alert();
        let base = serve_with(engine, false).await;
        let client = reqwest::Client::new();
        let post = client
            .post(format!("{base}/api/v1/silences"))
            .json(&serde_json::json!({"matchers": [{"name": "agent_id", "value": "a1"}], "duration": "1h"}))
            .send()
            .await
            .unwrap();
        let delete = client
            .delete(format!("{base}/api/v1/silences/some-id"))
            .send()
            .await
            .unwrap();
        for response in [post, delete] {
            assert_eq!(response.status(), 403);
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], WRITES_CLOSED, "saw {body}");
        }
        assert!(WRITES_CLOSED.contains("--web.enable-admin-api"));
        let get = client
            .get(format!("{base}/api/v1/silences"))
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 200, "reads stay open");
    }

    #[tokio::test]
    async fn a_silence_that_cannot_be_saved_is_answered_503_and_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine_saving_to(&dir.path().join("no-such-dir").join("state.json"));
        let base = serve(Arc::clone(&engine)).await;
        let response = reqwest::Client::new()
            .post(format!("{base}/api/v1/silences"))
            .json(&serde_json::json!({"matchers": [{"name": "agent_id", "value": "a1"}], "duration": "1h"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let body: serde_json::Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(
                "the change was not made because the silences cannot be saved: cannot write silences file"
            ),
            "saw {body}"
        );
        assert!(
            lock(&engine).silences().is_empty(),
            "an unsaved silence was kept"
        );
    }

    #[test]
    fn the_status_page_panel_holds_the_firing_alert_and_the_page_escapes_it() {
        let (_dir, engine) = engine_with_an_alert();
        let now = Timestamp::now();
        let (snapshot, silences) = {
            let e = lock(&engine);
            (e.published().load_full(), e.silences())
        };
        let panel = crate::alerting::alerts_panel(&snapshot, &silences, false, now);
        assert_eq!(panel.alerts.len(), 1, "saw {:?}", panel.alerts);
        let mut data = crate::page::PageData::new(Vec::new());
        data.alerts = Some(panel);
        let html = crate::page::render(&data, now);
        assert!(
            html.contains("&lt;b&gt;edge &quot;1&quot;&lt;/b&gt; &amp; co"),
            "saw {html}"
        );
        assert!(!html.contains("<b>"), "raw HTML from upstream in {html}");
        assert!(
            html.contains("read-only: start with --web.enable-admin-api"),
            "saw {html}"
        );
        assert!(
            html.contains("data-alertname=\"AgentHeartbeatStale\""),
            "saw {html}"
        );
    }
}
