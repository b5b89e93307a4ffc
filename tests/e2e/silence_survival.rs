//! Silences outlive a corrupt alert state file: a silence made through the API is still listed after the state file
//! was damaged and the exporter restarted and rebuilt its state.

use std::ffi::OsStr;

use onprem_agent_exporter::sim::SimOptions;
use serde_json::Value;

use crate::support::http::get_ok;
use crate::support::process::TestExporter;
use crate::support::simulator::spawn_sim;

const API_TOKEN: &str = "silence-survival-key-2e7a9c41d0";

async fn silence_ids(exp: &TestExporter) -> Vec<String> {
    let body: Value = serde_json::from_str(&get_ok(&exp.url("/api/v1/silences")).await).unwrap();
    body["silences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_is_still_listed_after_the_state_file_was_corrupted_and_the_exporter_restarted() {
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("token"), API_TOKEN).unwrap();
    let state = p.join("state.json");
    let config = format!(
        "listen_address: 127.0.0.1:0\n\
         sources:\n\
         \x20 - {{ name: prod, provider: celigo, base_url: \"http://{sim}\", token_file: token, poll_interval: 1s }}\n\
         alerting:\n\
         \x20 state_file: {state}\n\
         \x20 evaluation_interval: 200ms\n\
         \x20 email:\n\
         \x20   smtp: {{ host: 127.0.0.1, port: 9, tls: none }}\n\
         \x20   from: alerts@example.com\n\
         \x20   to: [ops@example.com]\n",
        sim = sim.addr,
        state = state.display(),
    );
    std::fs::write(p.join("config.yaml"), config).unwrap();
    let admin = [OsStr::new("--web.enable-admin-api")];
    let exp = TestExporter::start_with(&p.join("config.yaml"), p.join("first.log"), &admin);
    let response = reqwest::Client::new()
        .post(exp.url("/api/v1/silences"))
        .json(&serde_json::json!({
            "matchers": [{ "name": "account", "value": "prod" }],
            "duration": "2h",
            "created_by": "ops",
            "comment": "host move"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201, "{}", exp.log_tail());
    let made = silence_ids(&exp).await;
    assert_eq!(made.len(), 1, "{made:?}");
    drop(exp);

    std::fs::write(&state, b"{\"version\": 1, \"alerts\": tru").unwrap();
    let exp = TestExporter::start_with(&p.join("config.yaml"), p.join("second.log"), &admin);
    assert!(
        exp.logs().contains("alert state file is unreadable") || {
            exp.wait_ready().await;
            exp.logs().contains("alert state file is unreadable")
        },
        "the state file was not found corrupt: {}",
        exp.log_tail()
    );
    assert_eq!(silence_ids(&exp).await, made, "{}", exp.log_tail());
}
