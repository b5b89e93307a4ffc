//! One alert, told the same way on every path: a real Prometheus evaluating the shipped rules and the built-in
//! engine pushing to a real Alertmanager (with no inhibit rules) watch the same simulated fleet, with every `for` set
//! equal, and must agree on which alerts fire, with which severity and annotation keys; the push's `generatorURL`
//! must open the status page.

use std::collections::BTreeSet;
use std::path::Path;

use onprem_agent_exporter::sim::SimOptions;
use serde_json::Value;

use crate::support::alertmanager::{Alertmanager, Sink, start_cluster, webhook_config};
use crate::support::free_port;
use crate::support::http::get;
use crate::support::process::TestExporter;
use crate::support::prometheus::{Prometheus, start_prometheus};
use crate::support::simulator::spawn_sim;
use crate::support::wait::wait_until;

const API_TOKEN: &str = "one-alert-api-key-0b9d7e4c21f3a856";
const ACCOUNT: &str = "prod";

/// `(alertname, account, agent_id, severity, annotation keys)` of one firing, unmuted alert.
type Key = (String, String, String, String, Vec<String>);

fn key(labels: &Value, annotations: &Value) -> Key {
    let label = |k: &str| labels[k].as_str().unwrap_or_default().to_string();
    let mut keys: Vec<String> = annotations
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    (
        label("alertname"),
        label("account"),
        label("agent_id"),
        label("severity"),
        keys,
    )
}

/// The shipped rules with every `for: 5m` and `for: 10m` set to `2s`, as the engine is configured below.
fn rules_with_short_for(dir: &Path) -> std::path::PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/onprem-agents.rules.yml");
    let text = std::fs::read_to_string(&shipped).unwrap();
    let short = text
        .replace("for: 5m", "for: 2s")
        .replace("for: 10m", "for: 2s");
    assert_ne!(short, text, "the rules have a `for` to shorten");
    let path = dir.join("onprem-agents.rules.yml");
    std::fs::write(&path, short).unwrap();
    path
}

async fn prometheus_firing(prom: &Prometheus) -> BTreeSet<Key> {
    let body = prom.get("/api/v1/alerts", &[]).await;
    body["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing" && a["labels"]["alertname"] != "ExporterAbsent")
        .map(|a| key(&a["labels"], &a["annotations"]))
        .collect()
}

async fn alertmanager_active(am: &Alertmanager) -> BTreeSet<Key> {
    am.alerts()
        .await
        .iter()
        .filter(|a| a["status"]["state"] == "active")
        .map(|a| key(&a["labels"], &a["annotations"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_with_the_shipped_rules_and_the_engine_fire_the_same_alerts_on_the_same_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let sim = spawn_sim(
        API_TOKEN,
        SimOptions {
            agents: 30,
            ..SimOptions::default()
        },
    )
    .await;
    let sink = Sink::start().await;
    // No inhibit rules: Due ending where Overdue begins must hold on its own.
    let ams = start_cluster(p, &webhook_config(&sink), 1).await;
    let am = &ams[0];
    let port = free_port();
    std::fs::write(p.join("token"), format!("{API_TOKEN}\n")).unwrap();
    let config = format!(
        "listen_address: 127.0.0.1:{port}\n\
         sources:\n\
         \x20 - {{ name: {ACCOUNT}, provider: celigo, base_url: \"http://{sim}\", token_file: \"{token}\", \
         poll_interval: 1s, request_timeout: 1s, max_attempts: 1 }}\n\
         alerting:\n\
         \x20 state_file: \"{state}\"\n\
         \x20 external_url: http://127.0.0.1:{port}\n\
         \x20 evaluation_interval: 200ms\n\
         \x20 resend_delay: 1s\n\
         \x20 alertmanagers:\n\
         \x20   - {{ url: \"{am}\", timeout: 2s }}\n\
         \x20 rules:\n\
         \x20   agent_offline: {{ for: 2s }}\n\
         \x20   source_down: {{ for: 2s }}\n",
        sim = sim.addr,
        token = p.join("token").display(),
        state = p.join("state.json").display(),
        am = am.url,
    );
    std::fs::write(p.join("config.yaml"), config).unwrap();
    let exp = TestExporter::start(&p.join("config.yaml"), p.join("exporter.log"));
    exp.wait_ready().await;
    let metrics = url::Url::parse(&exp.url("/metrics")).unwrap();
    let prom = start_prometheus(&metrics, "onprem-agent-exporter", &rules_with_short_for(p));

    let last = std::sync::Mutex::new((BTreeSet::new(), BTreeSet::new()));
    let seen = || {
        let (a, b) = &*last.lock().unwrap();
        format!(
            "both: {:?}\nonly from the rules: {:?}\nonly from the engine: {:?}\n{}\n{}",
            a.intersection(b).collect::<Vec<&Key>>(),
            a.difference(b).collect::<Vec<&Key>>(),
            b.difference(a).collect::<Vec<&Key>>(),
            exp.log_tail(),
            prom.process.log_tail()
        )
    };
    let (from_rules, from_engine) = wait_until(
        "Prometheus and the engine's Alertmanager to agree on the firing alerts",
        async || {
            let a = prometheus_firing(&prom).await;
            let b = alertmanager_active(am).await;
            *last.lock().unwrap() = (a.clone(), b.clone());
            let names: BTreeSet<&str> = a.iter().map(|k| k.0.as_str()).collect();
            // The simulator's online agents always beat, so AgentHeartbeatStale is compared on its own fleet in
            // `true_notices`.
            let complete = [
                "AgentOffline",
                "AgentTokenRotationDue",
                "AgentTokenRotationOverdue",
            ]
            .iter()
            .all(|n| names.contains(n));
            (complete && a == b).then_some((a, b))
        },
        seen,
    )
    .await;
    assert_eq!(from_rules, from_engine);
    // One alert per token, with no inhibit rule anywhere.
    let due: BTreeSet<&str> = from_engine
        .iter()
        .filter(|k| k.0 == "AgentTokenRotationDue")
        .map(|k| k.2.as_str())
        .collect();
    let overdue: BTreeSet<&str> = from_engine
        .iter()
        .filter(|k| k.0 == "AgentTokenRotationOverdue")
        .map(|k| k.2.as_str())
        .collect();
    assert!(
        due.is_disjoint(&overdue),
        "Due and Overdue at once: {:?}",
        due.intersection(&overdue).collect::<Vec<_>>()
    );
    for k in &from_engine {
        assert_eq!(k.4, ["description", "runbook", "summary"], "{k:?}");
    }

    // The push's generatorURL is a deep link that opens the status page, at the agent's row.
    let pushed = am.alerts().await;
    let stale = pushed
        .iter()
        .find(|a| a["labels"]["alertname"] == "AgentTokenRotationOverdue")
        .unwrap_or_else(|| panic!("no overdue alert in {pushed:#?}"));
    let link = stale["generatorURL"].as_str().unwrap();
    let agent_id = stale["labels"]["agent_id"].as_str().unwrap();
    assert_eq!(
        link,
        format!("http://127.0.0.1:{port}/#agent-{ACCOUNT}-{agent_id}")
    );
    let (status, page) = get(link).await;
    assert_eq!(status, 200, "{link}");
    assert!(
        page.contains(&format!("id=\"agent-{ACCOUNT}-{agent_id}\"")),
        "the page has no row for the link's fragment {link}"
    );
    drop(sink);
}
