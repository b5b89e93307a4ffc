//! One exporter process polling a Celigo, a Planasonix (with health) and a Calyptia simulator at once: a single
//! `/metrics` with the right `provider` and `account` labels, read by the reference OpenMetrics parser, and no secret
//! of any provider in `/metrics`, `/api/v1/agents`, the landing page or the logs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use onprem_agent_exporter::sim::{Provider, SimOptions, Simulator};
use serde_json::Value;

use crate::support::exposition::parse_with_reference_parser;
use crate::support::http::{get_ok, get_with};
use crate::support::process::TestExporter;
use crate::support::simulator::{TestSim, serve_sim};

/// Agents per simulated account.
const AGENTS: usize = 12;

async fn spawn_sim(provider: Provider, token: &str, seed: u64) -> TestSim {
    let sim = Simulator::new(SimOptions {
        provider,
        agents: AGENTS,
        page_size: 5,
        token: token.to_string(),
        // Full Celigo records, each with its accessToken, so the leak check means something for every provider.
        honour_projection: false,
        seed,
        ..SimOptions::default()
    });
    serve_sim(sim).await
}

/// Writes a config with one source per simulator (token files next to it) and starts `run`.
fn spawn_exporter(sims: &[(&str, &TestSim, &str)]) -> (TestExporter, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::from("listen_address: 127.0.0.1:0\nsources:\n");
    for (name, sim, extra) in sims {
        std::fs::write(
            dir.path().join(format!("{name}.token")),
            format!("{}\n", sim.sim.api_token()),
        )
        .unwrap();
        config.push_str(&format!(
            "  - name: {name}\n    provider: {}\n    base_url: http://{}\n    token_file: {name}.token\n    poll_interval: 2s\n    request_timeout: 1s\n{extra}",
            sim.sim.provider(),
            sim.addr
        ));
    }
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let exp = TestExporter::start(&path, dir.path().join("exporter.log"));
    (exp, dir)
}

/// Waits until every source is up and the Planasonix health figures are in.
async fn wait_for_every_source(exp: &TestExporter) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = get_ok(&exp.url("/metrics")).await;
        let ups: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("onprem_agent_source_up{"))
            .collect();
        if ups.len() == 3
            && ups.iter().all(|l| l.ends_with(" 1"))
            && text.contains("onprem_agent_cpu_ratio{")
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "not every source came up: {ups:?}; log:\n{}",
            exp.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `(account, provider)` → number of samples of `family` carrying them.
fn per_source(families: &Value, family: &str) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for sample in families[family]["samples"].as_array().into_iter().flatten() {
        let label = |name: &str| sample["labels"][name].as_str().unwrap_or("").to_string();
        *counts
            .entry((label("account"), label("provider")))
            .or_default() += 1;
    }
    counts
}

fn source(account: &str, provider: &str) -> (String, String) {
    (account.to_string(), provider.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_exporter_serves_a_mixed_fleet_with_the_right_labels_and_no_secret_of_any_provider() {
    let celigo = spawn_sim(Provider::Celigo, "mixed-celigo-key-1a2b3c4d", 1).await;
    let planasonix = spawn_sim(Provider::Planasonix, "mixed-plnx-key-5e6f7a8b", 2).await;
    let calyptia = spawn_sim(Provider::Calyptia, "mixed-calyptia-sig-9c0d1e2f", 3).await;
    let (exp, _dir) = spawn_exporter(&[
        ("us-prod", &celigo, ""),
        (
            "etl-prod",
            &planasonix,
            "    health: true\n    health_concurrency: 3\n",
        ),
        ("logging", &calyptia, ""),
    ]);
    wait_for_every_source(&exp).await;

    let (_, exposition) = get_with(
        &exp.url("/metrics"),
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .await;
    let families = parse_with_reference_parser(&exposition);

    let all_three: BTreeMap<(String, String), usize> = [
        (source("us-prod", "celigo"), AGENTS),
        (source("etl-prod", "planasonix"), AGENTS),
        (source("logging", "calyptia"), AGENTS),
    ]
    .into_iter()
    .collect();
    for family in ["onprem_agent", "onprem_agent_offline"] {
        assert_eq!(
            per_source(&families, family),
            all_three,
            "family {family}:\n{exposition}"
        );
    }
    let sources = per_source(&families, "onprem_agent_source_up");
    assert_eq!(
        sources.keys().cloned().collect::<BTreeSet<_>>(),
        all_three.keys().cloned().collect::<BTreeSet<_>>()
    );
    for s in families["onprem_agent_source_up"]["samples"]
        .as_array()
        .unwrap()
    {
        assert_eq!(s["value"], 1.0, "{s}");
    }

    // Token series exist only for Celigo; the other providers expose no token date.
    for family in [
        "onprem_agent_token_last_rotated_timestamp_seconds",
        "onprem_agent_token_age_seconds",
    ] {
        let providers: BTreeSet<String> = per_source(&families, family)
            .into_keys()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(
            providers,
            BTreeSet::from(["celigo".to_string()]),
            "family {family}"
        );
    }
    // Heartbeats come from every provider.
    let providers: BTreeSet<String> =
        per_source(&families, "onprem_agent_last_heartbeat_timestamp_seconds")
            .into_keys()
            .map(|(_, p)| p)
            .collect();
    assert_eq!(providers.len(), 3, "{providers:?}");
    // Health figures come only from the Planasonix source, and only for agents that report them.
    for family in [
        "onprem_agent_cpu_ratio",
        "onprem_agent_memory_ratio",
        "onprem_agent_disk_free_bytes",
        "onprem_agent_active_jobs",
        "onprem_agent_queue_depth",
    ] {
        let counts = per_source(&families, family);
        assert_eq!(
            counts.keys().cloned().collect::<Vec<_>>(),
            [source("etl-prod", "planasonix")],
            "family {family}"
        );
        assert!(counts[&source("etl-prod", "planasonix")] >= AGENTS / 2);
    }
    for s in families["onprem_agent_cpu_ratio"]["samples"]
        .as_array()
        .unwrap()
    {
        let v = s["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "cpu ratio out of range: {s}");
    }
    assert_eq!(families["onprem_agent_last_error"]["type"], "info");
    assert_eq!(families["onprem_agent_disk_free_bytes"]["unit"], "bytes");

    // Provider-specific info labels.
    let info = families["onprem_agent"]["samples"].as_array().unwrap();
    let label_names = |provider: &str| -> BTreeSet<String> {
        info.iter()
            .filter(|s| s["labels"]["provider"] == provider)
            .flat_map(|s| s["labels"].as_object().unwrap().keys().cloned())
            .collect()
    };
    let base = ["account", "provider", "agent_id", "agent_name", "version"];
    let with = |extra: &[&str]| -> BTreeSet<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    assert_eq!(label_names("celigo"), with(&[]));
    assert_eq!(label_names("planasonix"), with(&["status", "platform"]));
    assert_eq!(
        label_names("calyptia"),
        with(&["type", "edition", "os", "arch"])
    );
    let errors = per_source(&families, "onprem_agent_source_errors");
    assert_eq!(errors.len(), 3, "{errors:?}");

    // No secret of any provider anywhere.
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (what, sim) in [
        ("celigo", &celigo),
        ("planasonix", &planasonix),
        ("calyptia", &calyptia),
    ] {
        secrets.push((format!("{what} API token"), sim.sim.api_token().to_string()));
        let tokens = sim.sim.access_tokens();
        assert_eq!(tokens.len(), AGENTS);
        secrets.extend(
            tokens
                .into_iter()
                .map(|t| (format!("a {what} agent secret"), t)),
        );
    }
    // The simulators really did send their per-agent secrets, or the check below would prove nothing.
    let raw = reqwest::Client::new()
        .get(format!(
            "http://{}{}",
            calyptia.addr,
            calyptia.sim.list_path()
        ))
        .header("X-Project-Token", calyptia.sim.api_token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains("\"token\":\"cal_agent_"), "{raw}");
    let raw = reqwest::Client::new()
        .get(format!("http://{}/api/agents", planasonix.addr))
        .bearer_auth(planasonix.sim.api_token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains("plnx_enroll_"), "{raw}");

    tokio::time::sleep(Duration::from_millis(2500)).await; // another round of polls' worth of debug logs
    let outputs = [
        ("/metrics", get_ok(&exp.url("/metrics")).await),
        ("/api/v1/agents", get_ok(&exp.url("/api/v1/agents")).await),
        ("/", get_ok(&exp.url("/")).await),
        ("the exporter log", exp.logs()),
    ];
    for (what, text) in &outputs {
        assert!(!text.is_empty(), "{what} is empty");
        for (secret_name, secret) in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{secret_name} leaked into {what}"
            );
        }
        for field in ["enrollment_token", "accessToken\"", "\"token\""] {
            assert!(!text.contains(field), "a {field} field leaked into {what}");
        }
    }
    let api: Value = serde_json::from_str(&outputs[1].1).unwrap();
    let providers: Vec<&str> = api["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["provider"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(providers, ["celigo", "planasonix", "calyptia"], "{api}");
}
