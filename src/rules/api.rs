//! The rule engine's HTTP face: `GET /api/v1/alerts`, `GET` and `POST /api/v1/silences`,
//! `DELETE /api/v1/silences/{id}`, and the alerts data of the status page.
//!
//! Handlers lock the engine only to copy or change a little data; the lock is a `std::sync::Mutex` and is never
//! held across an `.await`.

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use jiff::Timestamp;
use serde::Serialize;

use crate::rules::engine::{Engine, SharedEngine, lock};
use crate::rules::silences::NewSilence;
use crate::rules::state::Silence;

/// The routes above, ready to be merged into the exporter's router.
pub fn router(engine: SharedEngine) -> Router {
    Router::new()
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/silences", get(list_silences).post(create_silence))
        .route("/api/v1/silences/{id}", delete(delete_silence))
        .with_state(engine)
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

async fn list_alerts(State(engine): State<SharedEngine>) -> Response {
    let alerts = lock(&engine).alerts(Timestamp::now());
    Json(serde_json::json!({ "alerts": alerts })).into_response()
}

async fn list_silences(State(engine): State<SharedEngine>) -> Response {
    let now = Timestamp::now();
    let silences: Vec<SilenceView> = lock(&engine)
        .silences()
        .iter()
        .map(|s| view(s, now))
        .collect();
    Json(serde_json::json!({ "silences": silences })).into_response()
}

async fn create_silence(
    State(engine): State<SharedEngine>,
    body: Result<Json<NewSilence>, JsonRejection>,
) -> Response {
    let Json(new) = match body {
        Ok(b) => b,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let now = Timestamp::now();
    let result = lock(&engine).add_silence(new, now);
    match result {
        Ok(silence) => {
            tracing::info!(id = %silence.id, ends_at = %silence.ends_at, "silence created");
            (StatusCode::CREATED, Json(view(&silence, now))).into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

async fn delete_silence(State(engine): State<SharedEngine>, Path(id): Path<String>) -> Response {
    if lock(&engine).delete_silence(&id) {
        tracing::info!(%id, "silence deleted");
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no silence with id {id:?}"))
    }
}

/// The status page's alerts data: every alert not yet resolved and the number of active silences. The page groups,
/// orders and escapes them ([`crate::page`]).
pub fn alerts_panel(engine: &Engine, now: Timestamp) -> crate::page::AlertsPanel {
    crate::page::AlertsPanel {
        alerts: engine
            .alerts(now)
            .into_iter()
            .filter(|a| a.state != "resolved")
            .collect(),
        active_silences: engine
            .silences()
            .iter()
            .filter(|s| s.is_active(now))
            .count(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::config::alerting::EngineConfig;
    use crate::model::{Agent, AgentList, Provider};
    use crate::rules::state::State as RuleState;
    use crate::status::SourceStatus;

    /// An engine with one firing `AgentHeartbeatStale` for an agent whose name carries HTML and quotes.
    fn engine_with_an_alert() -> SharedEngine {
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
        let mut engine = Engine::new(
            EngineConfig::new("unused.json", vec![]),
            RuleState::new(now),
        );
        engine.evaluate(&[Arc::new(s)], now);
        Arc::new(Mutex::new(engine))
    }

    /// Serves `router(engine)` on 127.0.0.1 port 0 and returns its base URL.
    async fn serve(engine: SharedEngine) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(engine)).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn get_alerts_lists_each_alert_with_its_labels_and_state() {
        let base = serve(engine_with_an_alert()).await;
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
        let engine = engine_with_an_alert();
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
        assert!(lock(&engine).take_dirty(), "a new silence must be saved");

        let url = format!("{base}/api/v1/silences/{id}");
        assert_eq!(client.delete(&url).send().await.unwrap().status(), 204);
        let again = client.delete(&url).send().await.unwrap();
        assert_eq!(again.status(), 404);
        let body: serde_json::Value = again.json().await.unwrap();
        assert_eq!(body["error"], format!("no silence with id {id:?}"));
    }

    #[tokio::test]
    async fn a_bad_silence_is_refused_with_a_reason() {
        let base = serve(engine_with_an_alert()).await;
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

    #[test]
    fn the_status_page_panel_holds_the_firing_alert_and_the_page_escapes_it() {
        let engine = engine_with_an_alert();
        let now = Timestamp::now();
        let panel = alerts_panel(&lock(&engine), now);
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
            html.contains("data-alertname=\"AgentHeartbeatStale\""),
            "saw {html}"
        );
    }
}
