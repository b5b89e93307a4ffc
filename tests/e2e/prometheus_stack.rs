//! Proves the dashboard, the alerting rules and the container files against a real Prometheus scraping a real
//! exporter, rather than by reading them.
//!
//! The exporter runs as `onprem-agent-exporter demo` (its built-in simulators: Celigo, Planasonix and Calyptia
//! fleets of 25 agents each) and Debian's `prometheus`
//! scrapes it every 2 s with `alerts/*.rules.yml` loaded. Every dashboard query and every rule expression then goes
//! to Prometheus's HTTP API, filled in the way Grafana and the rule manager fill them in. `promtool` checks and
//! unit-tests the rules, and `amtool` checks the example Alertmanager configuration.
//!
//! Prometheus, promtool and amtool are required (`apt-get install prometheus prometheus-alertmanager`). When one is
//! missing these tests fail and say so: a skipped proof proves nothing.
//!
//! Tests that need the stack share one exporter and one Prometheus while they run at the same time; the last one
//! to finish stops both (see [`stack`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use onprem_agent_exporter::domain::catalog;

use crate::support::fake_upstream::{FakeUpstream, Reply, ago};
use crate::support::free_port;
use crate::support::hostile_fleet;
use crate::support::process::TestExporter;
use crate::support::prometheus::{
    Prometheus, Running, require_program, sample_value, start_prometheus,
};
use crate::support::wait::wait_until;

/// How long the stack may take to come up: the exporter's first poll, Prometheus's start, and two scrapes.
const STARTUP_LIMIT: Duration = Duration::from_secs(60);
/// How long an alert whose condition already holds may take to fire (no `for:` on the token rules, 2 s evaluations).
const FIRING_LIMIT: Duration = Duration::from_secs(60);
/// How long one `healthcheck` run may take before the test calls it hung.
const HEALTHCHECK_LIMIT: Duration = Duration::from_secs(20);
/// The scrape job name in the Prometheus configuration the tests write.
const JOB: &str = "onprem-agent-exporter";
/// Every alert the rules file must define, with the severity it must carry: the catalog's alerts that the rules
/// file carries, then `ExporterAbsent`, which only Prometheus can tell.
fn alerts() -> Vec<(&'static str, &'static str)> {
    catalog::ALERTS
        .iter()
        .filter(|d| d.in_shipped_rules)
        .map(|d| (d.name, d.severity))
        .chain([("ExporterAbsent", "critical")])
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Dashboard queries, rules and alerts, against the running stack.
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let stack = stack().await;
    let dashboard = dashboard();
    let values = variable_values(&dashboard);
    let queries = panel_queries(&dashboard);
    assert!(
        queries.len() >= 20,
        "expected the dashboard to hold at least 20 queries, found {}",
        queries.len()
    );

    let mut failures = Vec::new();
    for query in &queries {
        let expr = interpolate(&query.expr, &values);
        match stack.prometheus.query(&expr).await {
            Ok(result) if !result.is_empty() => {}
            Ok(_) => failures.push(format!("{query}: empty result for\n{expr}")),
            Err(error) => failures.push(format!("{query}: {error} for\n{expr}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} dashboard queries failed:\n\n{}\n\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n\n"),
        stack.diagnostics().await
    );
}

#[tokio::test]
async fn every_dashboard_variable_lists_values_and_its_all_option_keeps_every_agent() {
    let stack = stack().await;
    let dashboard = dashboard();
    let values = variable_values(&dashboard);
    let agents = stack
        .prometheus
        .query("onprem_agent_info")
        .await
        .expect("onprem_agent_info is queryable");
    assert!(
        !agents.is_empty(),
        "the demo exporter reported no agents\n{}",
        stack.diagnostics().await
    );

    for variable in variables(&dashboard)
        .iter()
        .filter(|v| v["type"] == "query")
    {
        let name = variable["name"].as_str().unwrap_or_default();
        let query = interpolate(&variable_query(variable), &values);
        let options = stack.prometheus.variable_options(&query).await;
        let options = apply_variable_regex(variable, &options);
        assert!(
            !options.is_empty(),
            "variable `{name}` ({query}) offers no option\n{}",
            stack.diagnostics().await
        );

        // The agent variable's value is the id and its text the name, however hostile the name is.
        if name == "agent" {
            let expected: BTreeSet<(String, String)> = agents
                .iter()
                .map(|sample| (label(sample, "agent_id"), label(sample, "agent_name")))
                .collect();
            let offered: BTreeSet<(String, String)> = options.iter().cloned().collect();
            assert_eq!(
                offered, expected,
                "the `agent` variable must offer every agent as (id, name)"
            );
        }
    }

    // "All" must select every agent, including names with quotes, newlines or HTML.
    let selected = interpolate(
        r#"count(onprem_agent_info{account=~"$account", provider=~"$provider", agent_id=~"$agent"})"#,
        &values,
    );
    let selected = stack.prometheus.scalar(&selected).await;
    assert_eq!(
        selected,
        agents.len() as f64,
        "with every variable on All, the dashboard must see every agent"
    );
}

#[tokio::test]
async fn every_alert_rule_is_evaluated_without_error_by_a_real_prometheus() {
    let stack = stack().await;
    let rules = rules();

    for rule in &rules {
        if let Err(error) = stack.prometheus.query(&rule.expr).await {
            panic!(
                "rule {} does not evaluate: {error}\n{}\n\n{}",
                rule.alert,
                rule.expr,
                stack.diagnostics().await
            );
        }
    }
    let absent = rules
        .iter()
        .find(|r| r.alert == "ExporterAbsent")
        .expect("ExporterAbsent is defined");
    let result = stack
        .prometheus
        .query(&absent.expr)
        .await
        .unwrap_or_default();
    assert!(
        result.is_empty(),
        "ExporterAbsent's expression must be empty while the exporter is scraped: {result:?}"
    );

    // The rule manager itself must have evaluated each rule at least once, without error.
    let deadline = Instant::now() + STARTUP_LIMIT;
    loop {
        let groups = stack.prometheus.get("/api/v1/rules", &[]).await;
        let loaded: Vec<&Value> = groups["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().into_iter().flatten())
            .collect();
        let names: BTreeSet<&str> = loaded
            .iter()
            .filter_map(|rule| rule["name"].as_str())
            .collect();
        let expected: BTreeSet<&str> = alerts().iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names, expected,
            "Prometheus loaded other rules than expected:\n{groups:#}"
        );

        let unhealthy: Vec<&&Value> = loaded
            .iter()
            .filter(|rule| rule["health"] != "ok")
            .collect();
        if unhealthy.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            panic!("rules not evaluated cleanly within {STARTUP_LIMIT:?}:\n{unhealthy:#?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The "Heartbeat stale" stat counts exactly the agents `AgentHeartbeatStale` fires for, on a fleet with each case
/// the rule tells apart: the demo fleet has no online agent that never sent a heartbeat, so this one is scripted.
#[tokio::test]
async fn the_heartbeat_stale_stat_counts_the_agents_agent_heartbeat_stale_fires_for() {
    let agent = |id: &str, offline: bool, heartbeat: Option<String>, created: String| {
        let mut a = serde_json::json!({ "_id": id, "name": format!("etl-{id}"), "offline": offline, "createdAt": created });
        if let Some(h) = heartbeat {
            a["lastHeartbeatAt"] = h.into();
        }
        a
    };
    // Counted: `stale` (an old heartbeat) and `never` (no heartbeat, created two days ago). Not counted: `fresh`,
    // `young` (no heartbeat yet, created a minute ago) and `gone` (offline, so AgentOffline's).
    let fleet = serde_json::json!([
        agent("fresh", false, Some(ago(10)), ago(86_400)),
        agent("stale", false, Some(ago(3_600)), ago(86_400)),
        agent("never", false, None, ago(2 * 86_400)),
        agent("young", false, None, ago(60)),
        agent("gone", true, None, ago(2 * 86_400)),
    ]);
    let upstream = FakeUpstream::route(move |_| Reply::json(fleet.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("token"), "t0k3n\n").unwrap();
    std::fs::write(
        p.join("config.yaml"),
        format!(
            "listen_address: 127.0.0.1:0\nsources:\n  - {{ name: etl-prod, provider: celigo, base_url: \"{base}\", \
             token_file: token, poll_interval: 1s, max_attempts: 1 }}\n",
            base = upstream.base.as_str().trim_end_matches('/'),
        ),
    )
    .unwrap();
    let exporter = TestExporter::start(&p.join("config.yaml"), p.join("exporter.log"));
    exporter.wait_ready().await;
    let metrics = Url::parse(&exporter.url("/metrics")).unwrap();
    let prometheus = start_prometheus(&metrics, JOB, &repo().join("alerts").join("*.rules.yml"));

    let dashboard = dashboard();
    let stat = panel_queries(&dashboard)
        .into_iter()
        .find(|q| q.panel == "Heartbeat stale")
        .expect("the dashboard has a \"Heartbeat stale\" stat");
    let stat = interpolate(&stat.expr, &variable_values(&dashboard));
    let rule = rules()
        .into_iter()
        .find(|r| r.alert == "AgentHeartbeatStale")
        .expect("alerts/ has AgentHeartbeatStale");
    let rule = rule.expr.trim();
    // One query, so that both sides are evaluated at the same instant, once Prometheus has the whole fleet.
    let both = format!(
        r#"(label_replace({stat}, "side", "stat", "", "") or label_replace(count({rule}) or vector(0), "side", "rule", "", "")) and on () (count(onprem_agent_info) == 5)"#
    );
    let samples = wait_until(
        "Prometheus to have scraped the five agents",
        async || match prometheus.query(&both).await {
            Ok(samples) if samples.len() == 2 => Some(samples),
            _ => None,
        },
        || prometheus.process.log_tail(),
    )
    .await;
    let side = |name: &str| {
        samples
            .iter()
            .find(|s| s["metric"]["side"] == name)
            .and_then(sample_value)
            .unwrap_or_else(|| panic!("no {name} side in {samples:?}"))
    };
    assert_eq!(
        side("rule"),
        2.0,
        "the rule fires for `stale` and `never`: {samples:?}"
    );
    assert_eq!(
        side("stat"),
        side("rule"),
        "the stat and the rule disagree:\n{stat}\n\n{rule}"
    );
}

#[tokio::test]
async fn an_overdue_token_in_the_demo_fleet_fires_an_alert_in_a_real_prometheus() {
    let stack = stack().await;
    let deadline = Instant::now() + FIRING_LIMIT;
    let alerts = loop {
        let alerts = stack.prometheus.get("/api/v1/alerts", &[]).await["data"]["alerts"].clone();
        let alerts = alerts.as_array().cloned().unwrap_or_default();
        let overdue_firing = alerts.iter().any(|a| {
            a["labels"]["alertname"] == "AgentTokenRotationOverdue" && a["state"] == "firing"
        });
        if overdue_firing {
            break alerts;
        }
        if Instant::now() > deadline {
            panic!(
                "no AgentTokenRotationOverdue alert fired within {FIRING_LIMIT:?}; alerts were:\n{alerts:#?}\n\n{}",
                stack.diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    for alert in &alerts {
        for annotation in ["summary", "description", "runbook"] {
            let text = alert["annotations"][annotation]
                .as_str()
                .unwrap_or_default();
            assert!(
                !text.trim().is_empty()
                    && !text.contains("error expanding")
                    && !text.contains("<no value>"),
                "annotation `{annotation}` did not render:\n{alert:#}"
            );
        }
        let severity = alert["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["warning", "critical"].contains(&severity),
            "alert without a known severity:\n{alert:#}"
        );
    }

    // Due and Overdue are exclusive for any one agent.
    let agents_with = |name: &str| -> BTreeSet<(String, String, String)> {
        alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .map(|a| {
                (
                    label(a, "account"),
                    label(a, "provider"),
                    label(a, "agent_id"),
                )
            })
            .collect()
    };
    let both: Vec<_> = agents_with("AgentTokenRotationDue")
        .intersection(&agents_with("AgentTokenRotationOverdue"))
        .cloned()
        .collect();
    assert!(
        both.is_empty(),
        "agents with both AgentTokenRotationDue and AgentTokenRotationOverdue: {both:?}"
    );
}

/// The providers the demo runs, and whether each exposes token dates.
const DEMO_PROVIDERS: [(&str, bool); 3] =
    [("celigo", true), ("planasonix", false), ("calyptia", false)];

#[tokio::test]
async fn the_dashboard_and_rules_work_unchanged_for_every_provider_of_the_mixed_demo() {
    let stack = stack().await;
    let dashboard = dashboard();
    let queries = panel_queries(&dashboard);
    let mut failures = Vec::new();
    for (provider, has_tokens) in DEMO_PROVIDERS {
        // The dashboard as a user sees it with only this provider selected.
        let values: Vec<(String, String)> = variable_values(&dashboard)
            .into_iter()
            .map(|(name, value)| {
                if name == "provider" {
                    (name, provider.to_owned())
                } else {
                    (name, value)
                }
            })
            .collect();
        let agents = stack
            .prometheus
            .scalar(&format!(
                r#"count(onprem_agent_info{{provider="{provider}"}})"#
            ))
            .await;
        if agents != 25.0 {
            failures.push(format!("{provider}: {agents} agents instead of 25"));
        }
        for query in &queries {
            let expr = interpolate(&query.expr, &values);
            // Token panels may legitimately be empty (or show only their `or vector(0)`) for providers that expose
            // no token date; every other panel must show data for every provider.
            let tokens_only = query.expr.contains("token") && !has_tokens;
            match stack.prometheus.query(&expr).await {
                Err(error) => failures.push(format!("{provider}: {query}: {error} for\n{expr}")),
                Ok(result) if result.is_empty() && !tokens_only => {
                    failures.push(format!("{provider}: {query}: empty result for\n{expr}"))
                }
                Ok(result) if tokens_only => {
                    if let Some(series) = result.iter().find(|s| label(s, "provider") == provider) {
                        failures.push(format!(
                            "{provider}: {query}: a token series for a provider without token dates: {series}"
                        ));
                    }
                }
                Ok(_) => {}
            }
        }
    }
    // The rules: offline agents of every provider are caught, and the token rules stay silent for the providers
    // that expose no token date.
    for rule in rules() {
        let result = stack.prometheus.query(&rule.expr).await.unwrap_or_default();
        let providers: BTreeSet<String> = result.iter().map(|s| label(s, "provider")).collect();
        if rule.alert == "AgentOffline" && providers.len() != DEMO_PROVIDERS.len() {
            failures.push(format!(
                "AgentOffline's expression found offline agents of {providers:?} only"
            ));
        }
        if rule.alert.starts_with("AgentToken") {
            for (provider, has_tokens) in DEMO_PROVIDERS {
                if !has_tokens && providers.contains(provider) {
                    failures.push(format!("{} matched {provider} agents", rule.alert));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the mixed demo broke the dashboard or the rules:\n\n{}\n\n{}",
        failures.join("\n\n"),
        stack.diagnostics().await
    );
}

#[tokio::test]
async fn a_real_prometheus_stores_hostile_names_versions_and_labels_of_every_provider_intact() {
    // The exposition of the hostile fleet, served by the exporter's own router on a port of its choosing.
    let state = onprem_agent_exporter::server::AppState::new(hostile_fleet::registry());
    let app = onprem_agent_exporter::server::router(state, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let metrics_url = Url::parse(&format!(
        "http://{}/metrics",
        listener.local_addr().unwrap()
    ))
    .expect("a valid URL");
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let web = onprem_agent_exporter::web::Web::plain();
    let server = tokio::spawn(async move { web.serve(listener, app, stopped).await });
    let rules = repo().join("alerts").join("*.rules.yml");
    let prometheus = start_prometheus(&metrics_url, JOB, &rules);

    let expected = hostile_fleet::expected_agents();
    let deadline = Instant::now() + STARTUP_LIMIT;
    let got = loop {
        let series = prometheus
            .query("onprem_agent_info")
            .await
            .unwrap_or_default();
        if series.len() >= expected.len() || Instant::now() > deadline {
            break series;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let got: BTreeSet<(String, String, String, String)> = got
        .iter()
        .map(|s| {
            (
                label(s, "account"),
                label(s, "provider"),
                label(s, "agent_name"),
                label(s, "version"),
            )
        })
        .collect();
    let scrape_error = prometheus
        .get("/api/v1/targets", &[])
        .await
        .pointer("/data/activeTargets/0/lastError")
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        got == expected,
        "Prometheus stored {} of {} agents (last scrape error: {scrape_error}); missing: {:?}\n{}",
        got.len(),
        expected.len(),
        expected.difference(&got).map(|a| &a.2).collect::<Vec<_>>(),
        prometheus.process.log_tail()
    );
    let errors = prometheus
        .query(r#"onprem_agent_last_error_info{provider="planasonix"}"#)
        .await
        .unwrap_or_default();
    assert!(
        !errors.is_empty() && errors.iter().all(|s| label(s, "error").len() > 10_000),
        "the very long last errors did not reach Prometheus whole: {errors:?}"
    );
    stop.cancel();
    let _ = server.await;
}

// ---------------------------------------------------------------------------------------------------------------
// promtool and amtool.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn promtool_accepts_the_rules_files() {
    let files = files_in(&repo().join("alerts"), ".rules.yml");
    assert!(!files.is_empty(), "no alerts/*.rules.yml");
    let output = run(Command::new(require_program("promtool"))
        .arg("check")
        .arg("rules")
        .args(&files));
    assert_success("promtool check rules", &output);
}

#[test]
fn every_promtool_rule_unit_test_passes() {
    let files = files_in(&repo().join("alerts/tests"), ".yml");
    assert!(!files.is_empty(), "no alerts/tests/*.yml");
    let output = run(Command::new(require_program("promtool"))
        .arg("test")
        .arg("rules")
        .args(&files));
    assert_success("promtool test rules", &output);
}

#[test]
fn every_rule_has_unit_tests_where_it_fires_and_where_it_stays_quiet() {
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for file in files_in(&repo().join("alerts/tests"), ".yml") {
        let tests = yaml(&file);
        for case in tests["tests"].as_array().into_iter().flatten() {
            for check in case["alert_rule_test"].as_array().into_iter().flatten() {
                let name = check["alertname"].as_str().unwrap_or_default().to_owned();
                let expects_alerts = check["exp_alerts"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty());
                if expects_alerts {
                    fires.insert(name);
                } else {
                    quiet.insert(name);
                }
            }
        }
    }
    for (alert, _) in alerts() {
        assert!(
            fires.contains(alert),
            "no promtool test shows {alert} firing; tested firing: {fires:?}"
        );
        assert!(
            quiet.contains(alert),
            "no promtool test shows {alert} staying quiet; tested quiet: {quiet:?}"
        );
    }
}

#[test]
fn every_rule_has_a_severity_a_summary_a_description_and_a_runbook_hint() {
    let rules = rules();
    let names: Vec<&str> = rules.iter().map(|r| r.alert.as_str()).collect();
    let expected: Vec<&str> = alerts().iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names, expected,
        "the rules file must define exactly these alerts, in this order"
    );

    for (rule, (_, severity)) in rules.iter().zip(alerts()) {
        assert_eq!(
            rule.raw["labels"]["severity"], severity,
            "severity of {}:\n{:#}",
            rule.alert, rule.raw
        );
        for annotation in ["summary", "description", "runbook"] {
            let text = rule.raw["annotations"][annotation]
                .as_str()
                .unwrap_or_default();
            assert!(
                !text.trim().is_empty(),
                "{} has no `{annotation}` annotation:\n{:#}",
                rule.alert,
                rule.raw
            );
        }
        if rule.alert.starts_with("Agent") {
            let text = rule.raw["annotations"].to_string();
            assert!(
                text.contains("$labels.agent_name"),
                "{} does not name the agent:\n{text}",
                rule.alert
            );
            assert!(
                text.contains("humanizeDuration"),
                "{} gives no human duration:\n{text}",
                rule.alert
            );
        }
    }
}

/// Collapses every run of whitespace to one space, as YAML's folded scalars do.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_shipped_rules_say_what_the_catalog_and_the_engine_say() {
    let rules = rules();
    let engine = onprem_agent_exporter::config::alerting::EngineConfig::new("state.json", vec![]);
    let secs = |d: Duration| d.as_secs();
    for d in catalog::ALERTS.iter() {
        // The engine's default severity is the catalog's.
        let name = onprem_agent_exporter::rules::AlertName::parse(d.name).expect("a built-in rule");
        let severity = serde_json::to_value(engine.rules.severity(name)).unwrap();
        assert_eq!(severity, d.severity, "engine severity of {}", d.name);
        if !d.in_shipped_rules {
            assert!(
                rules.iter().all(|r| r.alert != d.name),
                "{} is shipped",
                d.name
            );
            continue;
        }
        let rule = rules
            .iter()
            .find(|r| r.alert == d.name)
            .unwrap_or_else(|| panic!("{} is not in the rules file", d.name));
        assert_eq!(rule.raw["labels"]["severity"], d.severity, "{}", d.name);
        let keys: Vec<&String> = rule.raw["annotations"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        let mut want = catalog::ANNOTATIONS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "annotation keys of {}", d.name);
        assert_eq!(
            squash(
                rule.raw["annotations"]["runbook"]
                    .as_str()
                    .unwrap_or_default()
            ),
            squash(d.runbook),
            "runbook of {}",
            d.name
        );
    }
    // The thresholds: the engine's defaults are the catalog's, and the rules' expressions and `for` say the same.
    assert_eq!(engine.rules.heartbeat_after, catalog::HEARTBEAT_AFTER);
    assert_eq!(engine.rules.agent_offline.for_, catalog::OFFLINE_FOR);
    assert_eq!(engine.rules.token_max_age, catalog::TOKEN_MAX_AGE);
    assert_eq!(engine.rules.token_warn_before, catalog::TOKEN_WARN_BEFORE);
    assert_eq!(engine.rules.source_down.for_, catalog::SOURCE_DOWN_FOR);
    let day = 86_400;
    let rule = |name: &str| rules.iter().find(|r| r.alert == name).unwrap();
    let for_of = |name: &str| rule(name).raw["for"].as_str().unwrap_or("0s").to_string();
    let minutes = |d: Duration| format!("{}m", secs(d) / 60);
    let due_from = (secs(catalog::TOKEN_MAX_AGE) - secs(catalog::TOKEN_WARN_BEFORE)) / day;
    let max_days = secs(catalog::TOKEN_MAX_AGE) / day;
    let cases = [
        (
            "AgentHeartbeatStale",
            format!("> {}", secs(catalog::HEARTBEAT_AFTER)),
        ),
        ("AgentTokenRotationDue", format!("> {due_from} * 86400")),
        // Due ends where Overdue begins, in the rules as in the engine.
        ("AgentTokenRotationDue", format!("<= {max_days} * 86400")),
        ("AgentTokenRotationOverdue", format!("> {max_days} * 86400")),
    ];
    for (name, needle) in cases {
        assert!(
            rule(name).expr.contains(&needle),
            "{name}'s expr lacks `{needle}`:\n{}",
            rule(name).expr
        );
    }
    assert_eq!(for_of("AgentOffline"), minutes(catalog::OFFLINE_FOR));
    assert_eq!(for_of("SourceDown"), minutes(catalog::SOURCE_DOWN_FOR));
    assert_eq!(
        for_of("AgentHeartbeatStale"),
        "0s",
        "the engine's default `for: 0s`"
    );
}

#[test]
fn heartbeat_and_token_rules_use_timestamps_not_age_gauges() {
    for rule in rules()
        .iter()
        .filter(|r| r.alert.contains("Heartbeat") || r.alert.contains("Token"))
    {
        assert!(
            rule.expr.contains("time()"),
            "{} must compare a timestamp with time():\n{}",
            rule.alert,
            rule.expr
        );
        assert!(
            !rule.expr.contains("_age_seconds"),
            "{} must not use an age gauge:\n{}",
            rule.alert,
            rule.expr
        );
    }
}

#[test]
fn the_example_prometheus_and_alertmanager_configurations_are_valid() {
    let examples = repo().join("examples");
    let output = run(Command::new(require_program("promtool"))
        .args(["check", "config"])
        .arg(examples.join("prometheus.yml")));
    assert_success("promtool check config examples/prometheus.yml", &output);
    let output = run(Command::new(require_program("amtool"))
        .arg("check-config")
        .arg(examples.join("alertmanager.yml")));
    assert_success("amtool check-config examples/alertmanager.yml", &output);
}

#[test]
fn every_file_the_compose_stack_mounts_exists() {
    let examples = repo().join("examples");
    let compose = yaml(&examples.join("docker-compose.yml"));
    let services = compose["services"]
        .as_object()
        .expect("docker-compose.yml has services");
    for service in [
        "exporter",
        "prometheus",
        "alertmanager",
        "grafana",
        "mailpit",
    ] {
        assert!(
            services.contains_key(service),
            "docker-compose.yml has no `{service}` service"
        );
    }
    assert_eq!(
        compose["services"]["exporter"]["command"],
        serde_json::json!(["demo", "--listen", "0.0.0.0:9877", "--agents", "25"]),
        "the exporter must run in demo mode, reachable from the other containers"
    );
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let host = volume
                .as_str()
                .unwrap_or_default()
                .split(':')
                .next()
                .unwrap_or_default();
            if host.starts_with('.') {
                let path = examples.join(host);
                assert!(
                    path.exists(),
                    "service `{name}` mounts {host}, which does not exist ({})",
                    path.display()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Dashboard structure.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn the_dashboard_panels_have_unique_ids_and_never_overlap() {
    let dashboard = dashboard();
    let panels = all_panels(&dashboard);
    let mut ids = BTreeMap::new();
    for panel in &panels {
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel without a numeric id:\n{panel:#}"));
        if let Some(other) = ids.insert(id, title(panel)) {
            panic!("panels {other:?} and {:?} share id {id}", title(panel));
        }
    }

    let boxes: Vec<(String, [u64; 4])> = panels.iter().map(|p| (title(p), grid_pos(p))).collect();
    for (title, [x, _, w, _]) in &boxes {
        assert!(
            x + w <= 24,
            "panel {title:?} is wider than the 24-column grid (x {x}, w {w})"
        );
    }
    for (i, (a, ga)) in boxes.iter().enumerate() {
        for (b, gb) in &boxes[i + 1..] {
            let overlap = ga[0] < gb[0] + gb[2]
                && gb[0] < ga[0] + ga[2]
                && ga[1] < gb[1] + gb[3]
                && gb[1] < ga[1] + ga[3];
            assert!(
                !overlap,
                "panels {a:?} {ga:?} and {b:?} {gb:?} overlap (x, y, w, h)"
            );
        }
    }
}

#[test]
fn every_dashboard_panel_has_a_query_and_uses_the_datasource_variable() {
    let dashboard = dashboard();
    for panel in all_panels(&dashboard)
        .into_iter()
        .filter(|p| p["type"] != "row")
    {
        assert_eq!(
            panel["datasource"]["uid"],
            "${datasource}",
            "panel {:?} datasource",
            title(panel)
        );
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        assert!(!targets.is_empty(), "panel {:?} has no query", title(panel));
        for target in &targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(
                !expr.trim().is_empty(),
                "panel {:?} has a target without expr:\n{target:#}",
                title(panel)
            );
            assert_eq!(
                target["datasource"]["uid"],
                "${datasource}",
                "panel {:?} target datasource",
                title(panel)
            );
        }
    }
}

#[test]
fn the_dashboard_hard_codes_no_datasource_uid() {
    let dashboard = dashboard();
    let mut found = Vec::new();
    find_hard_coded_datasources(&dashboard, "$", &mut found);
    assert!(
        found.is_empty(),
        "hard-coded data sources:\n{}",
        found.join("\n")
    );

    let datasource = variables(&dashboard)
        .into_iter()
        .find(|v| v["name"] == "datasource");
    let datasource = datasource.expect("the dashboard has a `datasource` variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let current = &datasource["current"];
    assert!(
        current.is_null() || current.as_object().is_some_and(|c| c.is_empty()),
        "the datasource variable must not remember a data source of the machine it was exported from: {current}"
    );
}

#[test]
fn the_account_provider_and_agent_variables_are_multi_select_with_all() {
    let dashboard = dashboard();
    let variables = variables(&dashboard);
    for name in ["account", "provider", "agent"] {
        let variable = variables.iter().find(|v| v["name"] == name);
        let variable = variable.unwrap_or_else(|| panic!("the dashboard has no `{name}` variable"));
        assert_eq!(variable["multi"], true, "`{name}` must be multi-select");
        assert_eq!(variable["includeAll"], true, "`{name}` must offer All");
        assert_eq!(
            variable["datasource"]["uid"], "${datasource}",
            "`{name}` must query the datasource variable"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Container.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn the_dockerfile_builds_with_the_command_ci_runs() {
    let instructions = dockerfile();
    let builds: Vec<&String> = instructions
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, args)| args)
        .filter(|args| args.contains("cargo build"))
        .collect();
    assert_eq!(
        builds.len(),
        1,
        "expected exactly one `cargo build` in the Dockerfile, found {builds:?}"
    );
    let commands: Vec<&str> = builds[0].split("&&").map(str::trim).collect();
    assert!(
        commands.contains(&"cargo build --release --locked"),
        "the Dockerfile must build with exactly `cargo build --release --locked`, as CI does; it runs {:?}",
        builds[0]
    );
}

#[test]
fn the_runtime_image_is_pinned_non_root_and_checks_its_own_health() {
    let instructions = dockerfile();
    let images: Vec<&String> = instructions
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, args)| args)
        .collect();
    assert!(
        images.len() >= 2,
        "the Dockerfile must be multi-stage: {images:?}"
    );
    for image in &images {
        let reference = image.split_whitespace().next().unwrap_or_default();
        let tag = reference
            .rsplit_once(':')
            .map(|(_, tag)| tag)
            .unwrap_or_default();
        assert!(
            !tag.is_empty() && tag != "latest",
            "base image {reference:?} must be pinned to a tag"
        );
    }
    let runtime: Vec<&(String, String)> = {
        let last_from = instructions
            .iter()
            .rposition(|(op, _)| op == "FROM")
            .unwrap_or_default();
        instructions[last_from..].iter().collect()
    };
    let value_of = |op: &str| -> Vec<String> {
        runtime
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, args)| args.clone())
            .collect()
    };

    let user = value_of("USER").pop().unwrap_or_default();
    assert!(
        !user.is_empty() && !user.starts_with("root") && !user.starts_with("0"),
        "runtime user {user:?}"
    );
    assert_eq!(value_of("EXPOSE"), ["9877"]);
    assert_eq!(value_of("VOLUME"), ["/var/lib/onprem-agent-exporter"]);
    assert!(
        value_of("ENV")
            .iter()
            .any(|e| e == "ONPREM_AGENT_EXPORTER_CONFIG=/etc/onprem-agent-exporter/config.yaml"),
        "the runtime image must point ONPREM_AGENT_EXPORTER_CONFIG at /etc/onprem-agent-exporter/config.yaml"
    );
    let healthcheck = value_of("HEALTHCHECK").pop().unwrap_or_default();
    assert!(
        healthcheck.contains(r#"CMD ["/usr/local/bin/onprem-agent-exporter", "healthcheck"]"#),
        "the health check must use the binary's own `healthcheck` subcommand: {healthcheck:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The `healthcheck` subcommand.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn healthcheck_exits_zero_when_the_exporter_answers() {
    let exporter = start_demo_exporter();
    let url = exporter.url("/healthz");
    let output = healthcheck(&url);
    assert!(
        output.status.success(),
        "healthcheck --url {url} failed against a live exporter: {}\n{}",
        describe(&output),
        exporter.process.log_tail()
    );
}

#[test]
fn healthcheck_exits_non_zero_when_nothing_listens() {
    let url = format!("http://127.0.0.1:{}/healthz", free_port());
    let output = healthcheck(&url);
    assert!(
        !output.status.success(),
        "healthcheck --url {url} succeeded with nothing listening: {}",
        describe(&output)
    );
}

#[test]
fn healthcheck_exits_non_zero_when_the_exporter_answers_an_error() {
    let exporter = start_demo_exporter();
    let url = exporter.url("/no-such-page");
    let output = healthcheck(&url);
    assert!(
        !output.status.success(),
        "healthcheck --url {url} succeeded on a 404: {}",
        describe(&output)
    );
}

/// Runs `onprem-agent-exporter healthcheck --url URL`, failing the test if it hangs.
fn healthcheck(url: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_onprem-agent-exporter"))
        .args(["healthcheck", "--url", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the exporter binary starts");
    let deadline = Instant::now() + HEALTHCHECK_LIMIT;
    while child
        .try_wait()
        .expect("healthcheck can be waited on")
        .is_none()
    {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("healthcheck --url {url} was still running after {HEALTHCHECK_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
        .wait_with_output()
        .expect("healthcheck output is readable")
}

// ---------------------------------------------------------------------------------------------------------------
// The stack: a demo exporter and a Prometheus that scrapes it.
// ---------------------------------------------------------------------------------------------------------------

/// A running exporter and the Prometheus scraping it, both stopped when the last test holding them drops them.
struct Stack {
    exporter: Exporter,
    prometheus: Prometheus,
}

impl Stack {
    /// Everything useful when an assertion fails: the scrape target's state and both processes' logs.
    async fn diagnostics(&self) -> String {
        let targets = self.prometheus.get("/api/v1/targets", &[]).await;
        format!(
            "--- Prometheus targets ---\n{targets:#}\n--- exporter stdout ---\n{}\n--- exporter log ---\n{}\n\
             --- Prometheus log ---\n{}",
            self.exporter
                .stdout
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default(),
            self.exporter.process.log_tail(),
            self.prometheus.process.log_tail()
        )
    }
}

/// The stack shared by the tests running now. A `Weak` so that the stack stops (its processes are killed on drop)
/// as soon as no test holds it: a `static` is never dropped, so it must not own the processes. A tokio mutex because
/// it is held while the stack starts, which awaits.
static STACK: tokio::sync::Mutex<Weak<Stack>> = tokio::sync::Mutex::const_new(Weak::new());

/// Returns the running stack, starting one (and waiting until Prometheus has scraped it twice) if none is running.
async fn stack() -> Arc<Stack> {
    let mut shared = STACK.lock().await;
    if let Some(stack) = shared.upgrade() {
        return stack;
    }
    let exporter = start_demo_exporter();
    let rules = repo().join("alerts").join("*.rules.yml");
    let prometheus = start_prometheus(&exporter.metrics_url, JOB, &rules);
    let stack = Arc::new(Stack {
        exporter,
        prometheus,
    });
    wait_until_scraped_twice(&stack).await;
    *shared = Arc::downgrade(&stack);
    stack
}

async fn wait_until_scraped_twice(stack: &Stack) {
    let deadline = Instant::now() + STARTUP_LIMIT;
    let successful_scrapes = format!(r#"sum_over_time(up{{job="{JOB}"}}[5m])"#);
    loop {
        let result = stack
            .prometheus
            .query(&successful_scrapes)
            .await
            .unwrap_or_default();
        if result
            .first()
            .and_then(sample_value)
            .is_some_and(|scrapes| scrapes >= 2.0)
        {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "Prometheus did not scrape the exporter twice within {STARTUP_LIMIT:?}\n{}",
                stack.diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `onprem-agent-exporter demo` on a port of its choosing.
struct Exporter {
    process: Running,
    /// The metrics URL the demo printed, for example `http://127.0.0.1:40123/metrics`.
    metrics_url: Url,
    /// Everything the demo has printed on stdout, kept for failure messages.
    stdout: Arc<Mutex<String>>,
    /// Holds the log and anything the demo writes in its working directory.
    _dir: tempfile::TempDir,
}

impl Exporter {
    /// A URL on the exporter's listener, for example `/healthz`.
    fn url(&self, path: &str) -> String {
        self.metrics_url
            .join(path)
            .expect("a path joins onto the metrics URL")
            .to_string()
    }
}

/// Starts the demo with 25 agents and waits until it prints the `metrics:` line with its URL.
fn start_demo_exporter() -> Exporter {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = dir.path().join("exporter.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_onprem-agent-exporter"))
        .args(["demo", "--listen", "127.0.0.1:0", "--agents", "25"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&log).expect("the exporter log can be created"))
        .spawn()
        .expect("the exporter binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let process = Running {
        name: "exporter",
        child,
        log,
    };

    // A thread keeps draining stdout so the demo never blocks on a full pipe, and reports the first URL.
    let printed = Arc::new(Mutex::new(String::new()));
    let (found, url) = mpsc::channel();
    let sink = Arc::clone(&printed);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = metrics_url_in(&line) {
                let _ = found.send(url);
            }
            if let Ok(mut printed) = sink.lock() {
                printed.push_str(&line);
                printed.push('\n');
            }
        }
    });
    let metrics_url = url.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
        panic!(
            "the demo printed no `metrics:` line with a URL within 30 s\n--- stdout ---\n{}\n--- log ---\n{}",
            printed.lock().map(|s| s.clone()).unwrap_or_default(),
            process.log_tail()
        )
    });
    Exporter {
        process,
        metrics_url,
        stdout: printed,
        _dir: dir,
    }
}

/// The URL after `metrics:` on a line such as `  metrics:  http://127.0.0.1:40123/metrics`, if there is one.
fn metrics_url_in(line: &str) -> Option<Url> {
    let (_, rest) = line.split_once("metrics:")?;
    let word = rest.split_whitespace().next()?;
    Url::parse(word)
        .ok()
        .filter(|url| url.scheme().starts_with("http"))
}

impl Prometheus {
    /// The options Grafana lists for a Prometheus query variable, before its `regex` is applied. Only the forms the
    /// dashboard uses are supported: `label_values(SELECTOR, LABEL)` and `query_result(EXPR)`.
    async fn variable_options(&self, query: &str) -> Vec<String> {
        if let Some(args) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
        {
            let (selector, label) = args
                .rsplit_once(',')
                .expect("label_values(SELECTOR, LABEL)");
            let body = self
                .get(
                    &format!("/api/v1/label/{}/values", label.trim()),
                    &[("match[]", selector.trim())],
                )
                .await;
            assert_eq!(body["status"], "success", "{query}: {body}");
            return body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
        }
        if let Some(expr) = query
            .strip_prefix("query_result(")
            .and_then(|q| q.strip_suffix(')'))
        {
            let samples = self
                .query(expr)
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"));
            return samples.iter().map(grafana_query_result_text).collect();
        }
        panic!("the test does not know how Grafana runs the variable query {query:?}");
    }
}

/// How Grafana's Prometheus data source turns one `query_result()` sample into an option's text:
/// `name{label="value",...} value timestamp_ms`, with the label values unescaped.
fn grafana_query_result_text(sample: &Value) -> String {
    let metric = sample["metric"].as_object().cloned().unwrap_or_default();
    let name = metric
        .get("__name__")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let labels: Vec<String> = metric
        .iter()
        .filter(|(key, _)| *key != "__name__")
        .map(|(key, value)| format!("{key}=\"{}\"", value.as_str().unwrap_or_default()))
        .collect();
    let time = sample["value"][0].as_f64().unwrap_or_default() * 1000.0;
    format!(
        "{name}{{{}}} {} {time}",
        labels.join(","),
        sample["value"][1].as_str().unwrap_or_default()
    )
}

/// Applies a variable's `regex` the way Grafana does, returning (value, text) pairs. Without named groups, the
/// first group (or the whole option) is both.
fn apply_variable_regex(variable: &Value, options: &[String]) -> Vec<(String, String)> {
    let pattern = variable["regex"].as_str().unwrap_or_default();
    if pattern.is_empty() {
        return options.iter().map(|o| (o.clone(), o.clone())).collect();
    }
    let body = pattern
        .strip_prefix('/')
        .and_then(|p| p.rsplit_once('/'))
        .map(|(body, _flags)| body)
        .unwrap_or(pattern);
    let regex = regex::Regex::new(body)
        .unwrap_or_else(|e| panic!("variable regex {pattern:?} does not compile: {e}"));
    options
        .iter()
        .filter_map(|option| {
            let captures = regex.captures(option)?;
            let group = |name: &str| captures.name(name).map(|m| m.as_str().to_owned());
            let first = captures
                .get(1)
                .or_else(|| captures.get(0))
                .map(|m| m.as_str().to_owned())?;
            let value = group("value")
                .or_else(|| group("text"))
                .unwrap_or_else(|| first.clone());
            let text = group("text").unwrap_or_else(|| value.clone());
            Some((value, text))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Reading the repository's files.
// ---------------------------------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboard() -> Value {
    let path = repo().join("dashboards/onprem-agents.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// One alerting rule from `alerts/*.rules.yml`.
struct Rule {
    alert: String,
    expr: String,
    raw: Value,
}

fn rules() -> Vec<Rule> {
    let mut rules = Vec::new();
    for file in files_in(&repo().join("alerts"), ".rules.yml") {
        for group in yaml(&file)["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                rules.push(Rule {
                    alert: rule["alert"].as_str().unwrap_or_default().to_owned(),
                    expr: rule["expr"].as_str().unwrap_or_default().to_owned(),
                    raw: rule.clone(),
                });
            }
        }
    }
    rules
}

/// The files in `dir` whose names end with `suffix`, sorted.
fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// The Dockerfile as (INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let path = repo().join("Dockerfile");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head.trim_end());
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let full = std::mem::take(&mut current);
        if let Some((op, args)) = full.trim().split_once(char::is_whitespace) {
            instructions.push((
                op.to_uppercase(),
                args.split_whitespace().collect::<Vec<_>>().join(" "),
            ));
        }
    }
    instructions
}

/// Every panel, including those inside collapsed rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut panels = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    panels
}

fn variables(dashboard: &Value) -> Vec<&Value> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect()
}

/// A variable's query, whether stored as a string or, as Grafana 10 also does, as `{"query": ...}`.
fn variable_query(variable: &Value) -> String {
    variable["query"]
        .as_str()
        .or_else(|| variable["query"]["query"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// One panel query, named for failure messages.
struct PanelQuery {
    panel: String,
    ref_id: String,
    expr: String,
}

impl std::fmt::Display for PanelQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panel {:?}, query {}", self.panel, self.ref_id)
    }
}

fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    all_panels(dashboard)
        .into_iter()
        .flat_map(|panel| {
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |target| PanelQuery {
                    panel: title(panel),
                    ref_id: target["refId"].as_str().unwrap_or("?").to_owned(),
                    expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                })
        })
        .collect()
}

/// What each variable stands for in a query when every variable is on All, as Grafana substitutes it: the
/// variable's `allValue`, plus the built-in interval and range variables at the values a 6-hour dashboard with a
/// 2-second scrape interval would get.
fn variable_values(dashboard: &Value) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = [
        ("__rate_interval", "1m"),
        ("__interval_ms", "2000"),
        ("__interval", "2s"),
        ("__range_ms", "21600000"),
        ("__range_s", "21600"),
        ("__range", "6h"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    for variable in variables(dashboard)
        .into_iter()
        .filter(|v| v["type"] == "query")
    {
        let name = variable["name"].as_str().unwrap_or_default().to_owned();
        let all = variable["allValue"].as_str().unwrap_or_default().to_owned();
        assert!(
            !all.is_empty(),
            "variable `{name}` has no allValue, so All would expand to a list of values"
        );
        values.push((name, all));
    }
    values.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    values
}

/// Fills in `$name`, `${name}` and `[[name]]`, longest names first so that `$__range` leaves `$__range_s` alone.
fn interpolate(expr: &str, values: &[(String, String)]) -> String {
    let mut out = expr.to_owned();
    for (name, value) in values {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("[[{name}]]"), value);
        out = out.replace(&format!("${name}"), value);
    }
    let leftover = regex::Regex::new(r"\$\{?[A-Za-z_]").expect("a valid regex");
    assert!(
        !leftover.is_match(&out),
        "unknown variable left in {out:?} (from {expr:?})"
    );
    out
}

/// Collects every data source reference that is not the `${datasource}` variable (Grafana's own `-- Grafana --` or
/// `-- Mixed --` pseudo-sources would also be caught, and are not used).
fn find_hard_coded_datasources(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if key == "datasource" {
                    let uid = match child {
                        Value::Object(ds) => ds.get("uid").cloned().unwrap_or(Value::Null),
                        other => other.clone(),
                    };
                    if uid != "${datasource}" {
                        found.push(format!("{child_path} = {child}"));
                    }
                } else {
                    find_hard_coded_datasources(child, &child_path, found);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_hard_coded_datasources(item, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

fn title(panel: &Value) -> String {
    panel["title"].as_str().unwrap_or("(untitled)").to_owned()
}

/// A panel's `[x, y, w, h]`.
fn grid_pos(panel: &Value) -> [u64; 4] {
    let pos = &panel["gridPos"];
    ["x", "y", "w", "h"].map(|k| {
        pos[k]
            .as_u64()
            .unwrap_or_else(|| panic!("panel {:?} gridPos.{k}", title(panel)))
    })
}

fn label(sample: &Value, name: &str) -> String {
    let labels = if sample["metric"].is_object() {
        &sample["metric"]
    } else {
        &sample["labels"]
    };
    labels[name].as_str().unwrap_or_default().to_owned()
}

// ---------------------------------------------------------------------------------------------------------------
// Processes.
// ---------------------------------------------------------------------------------------------------------------

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        describe(output)
    );
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
