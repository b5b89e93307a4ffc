//! The generic source against the three vendor simulators: mapped as CONFIGURATION.md maps them, each gives the same
//! agent series through `provider: generic` as through its built-in provider, apart from the `provider` label.
//!
//! Both sources of a comparison sit in one config and one `once` run, so their series are rendered at the same
//! instant and the ages agree to the nanosecond. Their `account` labels differ (names are unique), and so do their
//! `provider` labels; the comparison drops those two labels and nothing else, values included.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use onprem_agent_exporter::sim::{Provider, SimOptions};

use crate::support::process::{EXE, TestExporter};
use crate::support::simulator::{TestSim, spawn_sim};

const KEY: &str = "generic-parity-key-5b6c7d";

/// The generic mapping of Celigo's `GET /v1/agents`, as CONFIGURATION.md gives it.
const CELIGO: &str = "      path: /v1/agents
      provider_label: celigo-generic
      fields:
        id: _id
        name: name
        heartbeat: lastHeartbeatAt
        offline: offline
        version: version
        token_rotated_at: __accessTokenLastModifiedAt
        created_at: createdAt
";

/// The generic mapping of Planasonix's `GET /api/agents`, six to a page (the built-in source is given the same size).
const PLANASONIX: &str = "      path: /api/agents
      query: { limit: 6 }
      pagination: { type: cursor, param: cursor, next: meta.page.cursor }
      items: data
      provider_label: planasonix-generic
      offline_after: 5m
      fields:
        id: id
        name: label
        heartbeat: last_seen_at
        offline: { field: status, values: [pending, revoked] }
        version: version
        labels: { status: status, platform: platform }
";

/// The generic mapping of Calyptia's `GET /v1/projects/{projectID}/agents`; `{path}` is the simulator's list path.
const CALYPTIA: &str = "      path: {path}
      auth: { header: X-Project-Token, prefix: \"\" }
      provider_label: calyptia-generic
      fields:
        id: id
        name: name
        heartbeat: lastMetricsAddedAt
        offline: { field: status, values: [unhealthy] }
        version: version
        labels: { type: type, edition: edition, os: os, arch: arch }
";

/// The creation-date family, which the Planasonix and Calyptia mappings do not map.
const CREATED: &str = "onprem_agent_created_timestamp_seconds";

/// Serves a `provider` simulator of 25 agents, seven to a page when the client names no size.
async fn spawn(provider: Provider) -> TestSim {
    spawn_sim(
        KEY,
        SimOptions {
            provider,
            agents: 25,
            page_size: 7,
            ..SimOptions::default()
        },
    )
    .await
}

/// Writes a config with the built-in source `builtin` and the generic source `mapped`, both on `sim`.
fn write_config(dir: &Path, sim: &TestSim, builtin: &str, mapping: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("token"), format!("{}\n", sim.sim.api_token())).unwrap();
    let base = sim.url("");
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "sources:\n  - name: builtin\n    provider: {builtin}\n    base_url: {base}\n    token_file: token\n\
             \x20 - name: mapped\n    provider: generic\n    base_url: {base}\n    token_file: token\n    generic:\n{mapping}"
        ),
    )
    .unwrap();
    path
}

/// The agent series (those with an `agent_id` label) of `account` in an exposition, with the `account` and
/// `provider` labels (the first two of every agent series) removed.
fn agent_series(exposition: &str, account: &str) -> BTreeSet<String> {
    let prefix = format!("{{account=\"{account}\",provider=\"");
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (name, rest) = line.split_once('{')?;
            let rest = rest.strip_prefix(&prefix[1..])?;
            let (_, labels) = rest.split_once("\",")?;
            labels
                .starts_with("agent_id=")
                .then(|| format!("{name}{{{labels}"))
        })
        .collect()
}

/// Runs `once` on the config and compares the two sources' agent series, leaving out the families named in
/// `unmapped` on both sides. A heartbeat can land between the two
/// sources' requests (the simulator's agents beat every 30 s, on their own phases), so a difference is looked at
/// again, up to three runs; a mapping that is wrong differs every time.
fn assert_same_agent_series(config: &Path, unmapped: &[&str]) {
    let mapped_only = |series: BTreeSet<String>| -> BTreeSet<String> {
        series
            .into_iter()
            .filter(|s| {
                !unmapped
                    .iter()
                    .any(|family| s.starts_with(&format!("{family}{{")))
            })
            .collect()
    };
    let mut last = String::new();
    for _ in 0..3 {
        let out = Command::new(EXE)
            .args(["once", "--format", "text", "--config"])
            .arg(config)
            .output()
            .expect("run once");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "once failed: {stderr}\nstdout:\n{stdout}"
        );
        let builtin = mapped_only(agent_series(&stdout, "builtin"));
        let mapped = mapped_only(agent_series(&stdout, "mapped"));
        assert!(
            builtin.len() >= 25 * 3,
            "too few agent series from the built-in source:\n{stdout}"
        );
        if builtin == mapped {
            return;
        }
        let only_builtin: Vec<_> = builtin.difference(&mapped).collect();
        let only_mapped: Vec<_> = mapped.difference(&builtin).collect();
        last = format!(
            "only from the built-in source:\n{}\nonly from the generic source:\n{}",
            only_builtin
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            only_mapped
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    panic!("the generic source's agent series differ in three runs:\n{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn celigo_through_a_generic_source_gives_the_built_in_agent_series() {
    let sim = spawn(Provider::Celigo).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim, "celigo", CELIGO);
    assert_same_agent_series(&config, &[]);
    // Four pages of seven, through Link headers, for each source.
    assert!(sim.sim.stats().pages >= 8, "pages: {:?}", sim.sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planasonix_through_a_generic_source_gives_the_built_in_agent_series() {
    let sim = spawn(Provider::Planasonix).await;
    let dir = tempfile::tempdir().unwrap();
    let mapping = PLANASONIX;
    let config = write_config(dir.path(), &sim, "planasonix\n    page_size: 6", mapping);
    // The mapping leaves `created_at` out on purpose (CONFIGURATION.md says why: mapped, it would become the token's
    // date), so the built-in source's creation dates have no counterpart.
    assert_same_agent_series(&config, &[CREATED]);
    assert!(sim.sim.stats().pages >= 10, "pages: {:?}", sim.sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calyptia_through_a_generic_source_gives_the_built_in_agent_series() {
    let sim = spawn(Provider::Calyptia).await;
    let dir = tempfile::tempdir().unwrap();
    let mapping = CALYPTIA.replace("{path}", &sim.sim.list_path());
    let config = write_config(dir.path(), &sim, "calyptia", &mapping);
    // As for Planasonix: no `created_at` in the mapping, so no creation dates to compare.
    assert_same_agent_series(&config, &[CREATED]);
    assert!(sim.sim.stats().pages >= 8, "pages: {:?}", sim.sim.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_path_no_record_has_fails_the_poll_in_once_the_log_and_the_status_page() {
    let sim = spawn(Provider::Celigo).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{KEY}\n")).unwrap();
    let base = sim.url("");
    let source = |name: &str| {
        format!(
            "  - name: {name}\n    provider: celigo\n    base_url: {base}\n    token_file: token\n"
        )
    };
    let wrong = CELIGO.replace("heartbeat: lastHeartbeatAt", "heartbeat: lastHeartbeat");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen_address: 127.0.0.1:0\nsources:\n{}{}  - name: mapped\n    provider: generic\n    \
             base_url: {base}\n    token_file: token\n    poll_interval: 1h\n    generic:\n{wrong}",
            source("first"),
            source("second")
        ),
    )
    .unwrap();
    let reason = "sources[2].generic.fields.heartbeat: no record has \"lastHeartbeat\"";

    let out = Command::new(EXE)
        .args(["once", "--format", "text", "--config"])
        .arg(&config)
        .output()
        .expect("run once");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains(reason), "stderr: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("onprem_agent_source_up{account=\"mapped\",provider=\"celigo-generic\"} 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "onprem_agent_source_errors_total{account=\"mapped\",provider=\"celigo-generic\",reason=\"decode\"} 1"
        ),
        "{stdout}"
    );

    let exp = TestExporter::start(&config, dir.path().join("exporter.log"));
    exp.wait_ready().await;
    let page = exp.url("/");
    let shown = crate::support::wait::wait_until(
        "the status page to show the failed poll's reason",
        async || {
            let (_, body) = crate::support::http::get(&page).await;
            body.contains(&maud::html! { (reason) }.into_string())
                .then_some(body)
        },
        || exp.log_tail(),
    )
    .await;
    assert!(shown.contains("mapped"), "{shown}");
    // The log is JSON lines, so its quotes are escaped.
    let logged = serde_json::to_string(reason).unwrap();
    assert!(
        exp.logs().contains(logged.trim_matches('"')),
        "{}",
        exp.log_tail()
    );
}
