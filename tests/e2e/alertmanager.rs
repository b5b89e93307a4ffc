//! The Alertmanager channel, HA pairs and sharding against the real tools: a two-node Alertmanager 0.25 cluster
//! (gossip over loopback) whose webhook posts to a sink the test runs, exporter replicas as real processes on one
//! simulator, and a real Prometheus scraping three shards.
//!
//! Timers are short (`evaluation_interval: 200ms`, `resend_delay: 1s`, Alertmanager `group_wait`/`group_interval`
//! 1s, `--cluster.peer-timeout=3s`) so each test runs in seconds; every wait is on an observable event and says
//! what it saw when it runs out.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use onprem_agent_exporter::sim::SimOptions;
use serde_json::Value;

use crate::support::alertmanager::{
    Alertmanager, PEER_TIMEOUT, Sink, start_cluster, webhook_config,
};
use crate::support::process::TestExporter;
use crate::support::prometheus::start_prometheus_with;
use crate::support::simulator::{TestSim, spawn_sim};
use crate::support::wait::wait_until;

const API_TOKEN: &str = "alertmanager-api-key-5c8e1f0a93d2b746";
const ACCOUNT: &str = "ha";
const RESEND_DELAY: Duration = Duration::from_secs(1);

/// Writes `config-<name>.yaml` in `dir`: one Celigo source per name in `accounts` on `sim`, and (with `ams`) an
/// alerting section pushing to those Alertmanagers with `rules` as given.
fn write_config(
    dir: &Path,
    name: &str,
    sim: &TestSim,
    accounts: &[&str],
    ams: &[&Alertmanager],
    rules: &str,
) -> PathBuf {
    let sources: Vec<(&str, &TestSim)> = accounts.iter().map(|a| (*a, sim)).collect();
    write_config_on(dir, name, &sources, ams, rules)
}

/// [`write_config`] with each account on a simulator of its own choosing, so that one can fail alone.
fn write_config_on(
    dir: &Path,
    name: &str,
    sources: &[(&str, &TestSim)],
    ams: &[&Alertmanager],
    rules: &str,
) -> PathBuf {
    std::fs::write(dir.join("token"), format!("{API_TOKEN}\n")).unwrap();
    let mut yaml = String::from("listen_address: 127.0.0.1:0\nsources:\n");
    for (a, sim) in sources {
        yaml.push_str(&format!(
            "  - {{ name: {a}, provider: celigo, base_url: \"http://{}\", token_file: \"{}\", poll_interval: 1s, \
             request_timeout: 1s, max_attempts: 1 }}\n",
            sim.addr,
            dir.join("token").display()
        ));
    }
    if !ams.is_empty() {
        yaml.push_str(&format!(
            "alerting:\n  state_file: \"{}\"\n  external_url: http://exporter.example.com:9877\n  \
             evaluation_interval: 200ms\n  resend_delay: 1s\n  alertmanagers:\n",
            dir.join(format!("state-{name}.json")).display()
        ));
        for am in ams {
            yaml.push_str(&format!("    - {{ url: \"{}\", timeout: 2s }}\n", am.url));
        }
        yaml.push_str(rules);
    }
    let path = dir.join(format!("config-{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Only SourceDown, firing one second after polls start failing.
const SOURCE_DOWN_ONLY: &str = "  rules:\n    heartbeat_stale: { enabled: false }\n    agent_offline: { enabled: false }\n    \
                                token_rotation: { enabled: false }\n    source_down: { for: 1s }\n";

fn context(sink: &Sink, ams: &[&Alertmanager], exporters: &[&TestExporter]) -> String {
    let mut s = format!("notifications: {:#?}\n", sink.summary());
    for am in ams {
        s.push_str(&am.process.log_tail());
        s.push('\n');
    }
    for e in exporters {
        s.push_str(&e.log_tail());
        s.push('\n');
    }
    s
}

fn count(sink: &Sink, status: &str, alertname: &str, account: &str) -> usize {
    sink.summary()
        .iter()
        .filter(|(s, a, acc)| s == status && a == alertname && acc == account)
        .count()
}

/// Waits until `am` holds an active alert named `alertname` for `account`, and returns it.
async fn active_alert(
    am: &Alertmanager,
    alertname: &str,
    account: &str,
    seen: impl Fn() -> String,
) -> Value {
    wait_until(
        &format!("{alertname} for {account} to be active in {}", am.url),
        async || {
            am.alerts().await.into_iter().find(|a| {
                a["labels"]["alertname"] == alertname
                    && a["labels"]["account"] == account
                    && a["status"]["state"] != "unprocessed"
            })
        },
        seen,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_and_two_clustered_alertmanagers_notify_once_per_group_through_failures() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let cluster = start_cluster(dir.path(), &webhook_config(&sink), 2).await;
    let ams: Vec<&Alertmanager> = cluster.iter().collect();
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let a = TestExporter::start(
        &write_config(dir.path(), "a", &sim, &[ACCOUNT], &ams, SOURCE_DOWN_ONLY),
        dir.path().join("a.log"),
    );
    let b = TestExporter::start(
        &write_config(dir.path(), "b", &sim, &[ACCOUNT], &ams, SOURCE_DOWN_ONLY),
        dir.path().join("b.log"),
    );

    sim.sim.control().set_status_override(Some(500));
    wait_until(
        "one FIRING SourceDown notification",
        async || (count(&sink, "firing", "SourceDown", ACCOUNT) >= 1).then_some(()),
        || context(&sink, &ams, &[&a, &b]),
    )
    .await;

    // Both Alertmanagers hold the alert, with identity labels only and an absolute link to the source.
    for am in &cluster {
        let alert = active_alert(am, "SourceDown", ACCOUNT, || {
            context(&sink, &ams, &[&a, &b])
        })
        .await;
        let mut keys: Vec<&str> = alert["labels"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            ["account", "alertname", "provider", "severity"],
            "{alert:#}"
        );
        assert_eq!(alert["labels"]["provider"], "celigo");
        assert_eq!(alert["labels"]["severity"], "critical");
        assert_eq!(
            alert["generatorURL"], "http://exporter.example.com:9877/#source-ha",
            "{alert:#}"
        );
        assert!(
            alert["annotations"]["description"]
                .as_str()
                .unwrap()
                .contains("account ha cannot be polled"),
            "{alert:#}"
        );
        assert!(
            alert["annotations"]["runbook"]
                .as_str()
                .is_some_and(|r| r.contains("onprem_agent_source_errors_total")),
            "{alert:#}"
        );
    }

    // Kill one replica: the other keeps the alert alive past 4 × resend_delay (when it would otherwise expire).
    drop(a);
    let killed = Instant::now();
    wait_until(
        "4 × resend_delay to pass with SourceDown still active",
        async || {
            for am in &cluster {
                let alerts = am.alerts().await;
                let active = alerts.iter().any(|x| {
                    x["labels"]["alertname"] == "SourceDown" && x["status"]["state"] == "active"
                });
                assert!(
                    active,
                    "SourceDown expired after the kill, {:?} in:\n{alerts:#?}",
                    killed.elapsed()
                );
            }
            (killed.elapsed() > 4 * RESEND_DELAY + Duration::from_secs(2)).then_some(())
        },
        || context(&sink, &ams, &[&b]),
    )
    .await;

    // Kill one Alertmanager, then resolve: the survivor sends the resolved notice, once.
    let mut cluster = cluster;
    let survivor = cluster.remove(1);
    drop(cluster);
    sim.sim.control().set_status_override(None);
    wait_until(
        "one RESOLVED SourceDown notification",
        async || (count(&sink, "resolved", "SourceDown", ACCOUNT) >= 1).then_some(()),
        || context(&sink, &[&survivor], &[&b]),
    )
    .await;
    quiet_period().await;
    assert_eq!(
        (
            count(&sink, "firing", "SourceDown", ACCOUNT),
            count(&sink, "resolved", "SourceDown", ACCOUNT)
        ),
        (1, 1),
        "{}",
        context(&sink, &[&survivor], &[&b])
    );
    let metrics = crate::support::http::get_ok(&b.url("/metrics")).await;
    let sent = crate::support::exposition::sample(
        &metrics,
        &format!(
            "onprem_agent_alertmanager_alerts_sent_total{{alertmanager=\"{}\"}}",
            survivor.url
        ),
    );
    assert!(sent.is_some_and(|n| n >= 2.0), "sent {sent:?}:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_alertmanager_config_mutes_agent_alerts_while_source_down_fires() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alertmanager.yml"),
    )
    .unwrap();
    let cluster = start_cluster(dir.path(), &example, 1).await;
    let ams: Vec<&Alertmanager> = cluster.iter().collect();
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let rules = "  rules:\n    heartbeat_stale: { enabled: false }\n    agent_offline: { for: 0s }\n    \
                 token_rotation: { enabled: false }\n    source_down: { for: 1s }\n";
    let exp = TestExporter::start(
        &write_config(dir.path(), "x", &sim, &[ACCOUNT], &ams, rules),
        dir.path().join("x.log"),
    );
    let sink = Sink::default();
    let offline = active_alert(&cluster[0], "AgentOffline", ACCOUNT, || {
        context(&sink, &ams, &[&exp])
    })
    .await;
    assert_eq!(offline["status"]["state"], "active", "{offline:#}");

    sim.sim.control().set_status_override(Some(500));
    wait_until(
        "every AgentOffline alert to be inhibited by SourceDown",
        async || {
            let alerts = cluster[0].alerts().await;
            let down = alerts.iter().any(|a| {
                a["labels"]["alertname"] == "SourceDown" && a["status"]["state"] == "active"
            });
            let agents: Vec<&Value> = alerts
                .iter()
                .filter(|a| a["labels"]["alertname"] == "AgentOffline")
                .collect();
            (down
                && !agents.is_empty()
                && agents.iter().all(|a| {
                    a["status"]["state"] == "suppressed"
                        && !a["status"]["inhibitedBy"].as_array().unwrap().is_empty()
                }))
            .then_some(())
        },
        || context(&sink, &ams, &[&exp]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_see_each_account_exactly_once_and_add_up_to_an_unsharded_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let names: Vec<String> = (0..9).map(|i| format!("account-{i}")).collect();
    let accounts: Vec<&str> = names.iter().map(String::as_str).collect();
    let config = write_config(dir.path(), "all", &sim, &accounts, &[], "");
    let shards: Vec<TestExporter> = (0..3)
        .map(|i| {
            let shard = format!("{i}/3");
            TestExporter::start_with(
                &config,
                dir.path().join(format!("shard-{i}.log")),
                &["--shard".as_ref(), shard.as_ref()],
            )
        })
        .collect();
    let full = TestExporter::start(&config, dir.path().join("full.log"));
    for e in shards.iter().chain([&full]) {
        e.wait_ready().await;
    }
    let targets = |es: &[&TestExporter]| {
        es.iter()
            .map(|e| format!("\"{}\"", e.addr))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let prom = start_prometheus_with(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: shards\n    static_configs:\n      - targets: [{}]\n  \
         - job_name: full\n    static_configs:\n      - targets: [{}]\n",
        targets(&shards.iter().collect::<Vec<_>>()),
        targets(&[&full])
    ));
    let seen = || prom.process.log_tail();
    wait_until(
        "Prometheus to scrape every shard and the unsharded exporter",
        async || {
            let up = prom.query("sum(up)").await.ok()?;
            (up.first()
                .and_then(crate::support::prometheus::sample_value)
                == Some(4.0))
            .then_some(())
        },
        seen,
    )
    .await;

    let per_account = prom
        .query("count by (account) (onprem_agent_source_up{job=\"shards\"})")
        .await
        .unwrap();
    assert_eq!(per_account.len(), 9, "{per_account:#?}");
    for s in &per_account {
        assert_eq!(
            crate::support::prometheus::sample_value(s),
            Some(1.0),
            "{s:#}"
        );
    }
    let shard_info = prom
        .query("onprem_agent_exporter_shard_info{job=\"shards\"}")
        .await
        .unwrap();
    assert_eq!(shard_info.len(), 3, "{shard_info:#?}");
    for expr in [
        "sum(onprem_agent_source_agents{JOB})",
        "count(onprem_agent_info{JOB})",
        "sum(onprem_agent_offline{JOB})",
    ] {
        // The shards and the unsharded exporter poll at their own moments, and the simulated agents go offline and
        // back: wait until one pair of answers agrees rather than trust a single instant.
        let whole = wait_until(
            &format!("the shards' {expr} to equal the unsharded exporter's"),
            async || {
                let sharded = prom.scalar(&expr.replace("JOB", "job=\"shards\"")).await;
                let whole = prom.scalar(&expr.replace("JOB", "job=\"full\"")).await;
                (sharded == whole).then_some(whole)
            },
            seen,
        )
        .await;
        assert!(whole > 0.0, "{expr} is {whole}");
    }
    // Each shard owns what check-config lists for it.
    let out = std::process::Command::new(crate::support::process::EXE)
        .args(["check-config", "--shard", "1/3"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("shard 1/3 owns 3 of 9 sources:\n  account-1\n  account-6\n  account-8\n"),
        "{text}"
    );
}

/// Waits a little longer than a duplicate would take to arrive: `group_interval` (1 s) plus the peer timeout of the
/// second cluster member, with a margin.
async fn quiet_period() {
    let start = Instant::now();
    wait_until(
        "a quiet period for any duplicate notification to arrive",
        async || (start.elapsed() > PEER_TIMEOUT + Duration::from_secs(2)).then_some(()),
        String::new,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_group_is_notified_once_with_two_firing_and_a_new_one_after_an_alertmanager_dies() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let cluster = start_cluster(dir.path(), &webhook_config(&sink), 2).await;
    let ams: Vec<&Alertmanager> = cluster.iter().collect();
    // Two accounts on one simulator fail together; the third, on a simulator of its own, fails later and alone.
    let (first, second, later) = ("ha-first", "ha-second", "ha-later");
    let together = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let alone = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let sources = [(first, &together), (second, &together), (later, &alone)];
    let a = TestExporter::start(
        &write_config_on(dir.path(), "a", &sources, &ams, SOURCE_DOWN_ONLY),
        dir.path().join("a.log"),
    );
    let b = TestExporter::start(
        &write_config_on(dir.path(), "b", &sources, &ams, SOURCE_DOWN_ONLY),
        dir.path().join("b.log"),
    );

    together.sim.control().set_status_override(Some(500));
    wait_until(
        "a FIRING SourceDown notification for each of two accounts",
        async || {
            (count(&sink, "firing", "SourceDown", first) >= 1
                && count(&sink, "firing", "SourceDown", second) >= 1)
                .then_some(())
        },
        || context(&sink, &ams, &[&a, &b]),
    )
    .await;
    quiet_period().await;
    assert_eq!(
        (
            count(&sink, "firing", "SourceDown", first),
            count(&sink, "firing", "SourceDown", second)
        ),
        (1, 1),
        "two replicas × two Alertmanagers, still one notification per group:\n{}",
        context(&sink, &ams, &[&a, &b])
    );
    assert_eq!(
        count(&sink, "firing", "SourceDown", later),
        0,
        "{}",
        context(&sink, &ams, &[&a, &b])
    );

    // Kill the first Alertmanager (the one that sends first), then break the third account through the
    // simulator's control endpoint, as an operator would.
    let mut cluster = cluster;
    let survivor = cluster.remove(1);
    drop(cluster);
    let response = reqwest::Client::new()
        .put(alone.url("/_sim/control"))
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"status":500}"#)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    wait_until(
        "a FIRING SourceDown notification for the account broken after the kill",
        async || (count(&sink, "firing", "SourceDown", later) >= 1).then_some(()),
        || context(&sink, &[&survivor], &[&a, &b]),
    )
    .await;
    quiet_period().await;
    assert_eq!(
        (
            count(&sink, "firing", "SourceDown", first),
            count(&sink, "firing", "SourceDown", second),
            count(&sink, "firing", "SourceDown", later),
        ),
        (1, 1, 1),
        "{}",
        context(&sink, &[&survivor], &[&a, &b])
    );
}
