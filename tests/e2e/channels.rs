//! The Slack, Teams, PagerDuty and webhook channels as a real process: the exporter binary (`run --config`) against
//! the in-process simulator, with local HTTP sinks standing in for the vendors' endpoints. The sinks check the
//! documented payloads field by field; the webhook sink is down for a while and the exporter is SIGKILLed in
//! between, and every notification still arrives exactly once; a receiver that answers 4xx is not retried; and no
//! webhook URL path, routing key or bearer token shows in the logs, the state, the outbox, /metrics or the page.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use onprem_agent_exporter::sim::SimOptions;
use serde_json::Value;

use crate::support::exposition::sample;
use crate::support::free_port;
use crate::support::http::get_ok;
use crate::support::http_sink::{HttpSink, Request};
use crate::support::process::{EXE, TestExporter};
use crate::support::simulator::{TestSim, spawn_sim};
use crate::support::wait::wait_until;

const API_TOKEN: &str = "channels-api-key-5be0c9d2a7f14e63";
const ACCOUNT: &str = "e2e";
/// The secrets: a Slack webhook path, a Teams workflow signature, a PagerDuty routing key and a bearer token.
const SLACK_PATH: &str = "/services/T0E2E/B0E2E/slackSecretPath4f1c";
const TEAMS_PATH: &str =
    "/workflows/e2e/triggers/manual/paths/invoke?api-version=2016-06-01&sig=teamsSig9d2e";
const ROUTING_KEY: &str = "pdRoutingKey0b7a3c9e11";
const BEARER: &str = "webhookBearer6c2f0a";
const SECRETS: [&str; 5] = [
    "slackSecretPath4f1c",
    "teamsSig9d2e",
    ROUTING_KEY,
    BEARER,
    API_TOKEN,
];
const QUEUE: &str = crate::support::process::QUEUE_LENGTH;

fn counter(channel: &str, outcome: &str) -> String {
    format!("onprem_agent_notifications_total{{channel=\"{channel}\",outcome=\"{outcome}\"}}")
}

/// One test's files: config, secrets, state file and outbox, and the logs of every process started.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// A config with one Celigo source polling `sim` every second, no email, and `alerting_extra` (receivers,
    /// routes, timings) added to the `alerting` section as is. Secret files: `slack-url`, `teams-url` (pointing at
    /// `sink`), `pd-key`, `bearer`.
    fn new(sim: &TestSim, sink_base: &str, alerting_extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("token"), format!("{API_TOKEN}\n")).unwrap();
        std::fs::write(p.join("slack-url"), format!("{sink_base}{SLACK_PATH}\n")).unwrap();
        std::fs::write(p.join("teams-url"), format!("{sink_base}{TEAMS_PATH}\n")).unwrap();
        std::fs::write(p.join("pd-key"), format!("{ROUTING_KEY}\n")).unwrap();
        std::fs::write(p.join("bearer"), format!("{BEARER}\n")).unwrap();
        let config = format!(
            "listen_address: 127.0.0.1:0\n\
             sources:\n\
             \x20 - name: {ACCOUNT}\n\
             \x20   provider: celigo\n\
             \x20   base_url: http://{sim}\n\
             \x20   token_file: token\n\
             \x20   poll_interval: 1s\n\
             \x20   request_timeout: 1s\n\
             \x20   max_attempts: 1\n\
             alerting:\n\
             \x20 state_file: {state}\n\
             \x20 external_url: http://exporter.example.com:9877\n\
             \x20 evaluation_interval: 200ms\n\
             \x20 retry_initial_backoff: 200ms\n\
             {alerting_extra}",
            sim = sim.addr,
            // The state file is not resolved against the config's folder, so it is given absolute.
            state = p.join("state.json").display(),
        );
        std::fs::write(p.join("config.yaml"), config).unwrap();
        Setup { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    fn start(&self, log_name: &str) -> TestExporter {
        TestExporter::start(
            &self.config(),
            self.dir.path().join(format!("{log_name}.log")),
        )
    }

    /// Every file the exporter wrote (logs, state, outbox), with its content.
    fn written_files(&self) -> Vec<(String, String)> {
        walk(self.dir.path())
            .into_iter()
            .filter(|f| {
                let name = f.file_name().unwrap().to_string_lossy();
                !matches!(
                    name.as_ref(),
                    "slack-url" | "teams-url" | "pd-key" | "bearer" | "token" | "config.yaml"
                )
            })
            .filter_map(|f| Some((f.display().to_string(), std::fs::read_to_string(&f).ok()?)))
            .collect()
    }
}

/// Every file under `dir`. A file or folder that vanishes while listed (a temp file renamed, a delivered message
/// removed) is skipped: its content is in the renamed file or was sent.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Fails if any secret appears in `text`, naming where.
fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(
            !text.contains(s),
            "{what} contains the secret {s:?}:\n{text}"
        );
    }
}

fn context(sink: &HttpSink, exp: &TestExporter) -> String {
    format!(
        "--- requests received ---\n{}\n--- exporter log (tail) ---\n{}",
        sink.summary(),
        exp.log_tail()
    )
}

fn str_map(v: &Value, what: &str) -> BTreeMap<String, String> {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"));
    obj.iter()
        .map(|(k, v)| {
            let s = v
                .as_str()
                .unwrap_or_else(|| panic!("{what}.{k} is not a string: {v}"));
            (k.clone(), s.to_string())
        })
        .collect()
}

/// What a webhook POST must say about its group: from an alert of the test's source, or from `test-notify`.
struct Expected {
    account: &'static str,
    provider: &'static str,
    external_url: &'static str,
}

const FROM_SOURCE: Expected = Expected {
    account: ACCOUNT,
    provider: "celigo",
    external_url: "http://exporter.example.com:9877",
};

/// Checks one webhook POST field by field against Alertmanager's webhook payload, version 4.
fn assert_alertmanager_v4(r: &Request, e: &Expected) {
    let b = &r.json;
    let raw = &r.raw;
    let keys: BTreeSet<&str> = b
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {raw}"))
        .keys()
        .map(String::as_str)
        .collect();
    let want: BTreeSet<&str> = [
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    ]
    .into();
    assert_eq!(keys, want, "top-level keys of {raw}");
    assert_eq!(b["version"], "4", "{raw}");
    assert_eq!(b["receiver"], "hook", "{raw}");
    assert_eq!(b["truncatedAlerts"], 0, "{raw}");
    assert_eq!(b["externalURL"], e.external_url, "{raw}");
    let status = b["status"].as_str().unwrap();
    assert!(status == "firing" || status == "resolved", "{raw}");
    let group = str_map(&b["groupLabels"], "groupLabels");
    assert_eq!(
        group.keys().collect::<Vec<_>>(),
        ["account", "alertname"],
        "{raw}"
    );
    assert_eq!(group["account"], e.account, "{raw}");
    let group_key = b["groupKey"].as_str().unwrap();
    assert_eq!(
        group_key,
        format!(
            "{{}}:{{account=\"{}\", alertname=\"{}\"}}",
            e.account, group["alertname"]
        ),
        "{raw}"
    );
    let common_labels = str_map(&b["commonLabels"], "commonLabels");
    let common_annotations = str_map(&b["commonAnnotations"], "commonAnnotations");
    let alerts = b["alerts"]
        .as_array()
        .unwrap_or_else(|| panic!("no alerts: {raw}"));
    assert!(!alerts.is_empty(), "{raw}");
    let mut fingerprints = BTreeSet::new();
    for a in alerts {
        let keys: BTreeSet<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = [
            "status",
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
            "fingerprint",
        ]
        .into();
        assert_eq!(keys, want, "alert keys in {raw}");
        let labels = str_map(&a["labels"], "labels");
        let annotations = str_map(&a["annotations"], "annotations");
        for k in ["alertname", "account", "provider", "severity"] {
            assert!(labels.contains_key(k), "label {k} missing in {a}");
        }
        assert_eq!(labels["alertname"], group["alertname"]);
        assert_eq!(labels["provider"], e.provider);
        for (k, v) in &common_labels {
            assert_eq!(labels.get(k), Some(v), "commonLabels {k} differs in {a}");
        }
        for (k, v) in &common_annotations {
            assert_eq!(
                annotations.get(k),
                Some(v),
                "commonAnnotations {k} differs in {a}"
            );
        }
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["description", "runbook", "summary"],
            "the catalog's annotations, as on the Alertmanager push: {a}"
        );
        assert!(
            annotations.values().all(|v| !v.contains(['\r', '\n'])),
            "line breaks are folded: {a}"
        );
        let alert_status = a["status"].as_str().unwrap();
        assert!(
            alert_status == "firing" || alert_status == "resolved",
            "{a}"
        );
        let starts: jiff::Timestamp = a["startsAt"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("startsAt: {e}: {a}"));
        let ends = a["endsAt"].as_str().unwrap();
        if alert_status == "firing" {
            assert_eq!(ends, "0001-01-01T00:00:00Z", "{a}");
        } else {
            let ends: jiff::Timestamp = ends.parse().unwrap();
            assert!(ends >= starts, "{a}");
        }
        // The deep link the Alertmanager push sends: the status page at the agent's (or the source's) row.
        let generator = match (e.external_url.is_empty(), labels.get("agent_id")) {
            (true, _) => String::new(),
            (false, Some(id)) => format!("{}/#agent-{}-{id}", e.external_url, e.account),
            (false, None) => format!("{}/#source-{}", e.external_url, e.account),
        };
        assert_eq!(a["generatorURL"], generator.as_str(), "{a}");
        let fp = a["fingerprint"].as_str().unwrap();
        assert!(
            fp.len() == 16 && fp.bytes().all(|c| c.is_ascii_hexdigit()),
            "{a}"
        );
        assert!(
            fingerprints.insert(fp.to_string()),
            "a fingerprint repeats in {raw}"
        );
    }
    // commonLabels are exactly what every alert shares.
    let shared: BTreeMap<String, String> = {
        let first = str_map(&alerts[0]["labels"], "labels");
        first
            .into_iter()
            .filter(|(k, v)| alerts.iter().all(|a| a["labels"][k].as_str() == Some(v)))
            .collect()
    };
    assert_eq!(common_labels, shared, "{raw}");
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(
        r.headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {BEARER}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_posts_arrive_exactly_once_in_alertmanager_format_across_an_outage_and_a_sigkill() {
    let started = Instant::now();
    let port = free_port();
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    // The default fleet always has overdue and due tokens and stale heartbeats. A group interval of an hour makes
    // every group notify exactly once during the test, so each expected POST is one notification id.
    let setup = Setup::new(
        &sim,
        &format!("http://127.0.0.1:{port}"),
        &format!(
            "  group_wait: 1s\n  group_interval: 1h\n  repeat_interval: 1h\n\
             \x20 receivers:\n\
             \x20   - name: hook\n\
             \x20     webhook: {{ url: \"http://127.0.0.1:{port}/alerts\", bearer_token_file: bearer }}\n\
             \x20 default_receivers: [hook]\n"
        ),
    );
    let exp = setup.start("first");
    let failed = counter("webhook", "failed");
    let queued = wait_until(
        "queued webhook messages and failed attempts while the sink is down",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            let q = sample(&text, QUEUE)?;
            (q > 0.0 && sample(&text, &failed)? >= q).then_some(q)
        },
        || exp.log_tail(),
    )
    .await;
    let first_ids = exp.notification_ids();
    assert_eq!(first_ids.len() as f64, queued, "{}", exp.log_tail());
    let pending_files = walk(&setup.dir.path().join("state.json.outbox/pending"));
    assert_eq!(pending_files.len(), first_ids.len(), "{pending_files:?}");
    assert!(
        pending_files
            .iter()
            .all(|f| f.to_string_lossy().ends_with(".hook.json")),
        "{pending_files:?}"
    );
    for f in &pending_files {
        assert_no_secret(
            "a pending outbox file",
            &std::fs::read_to_string(f).unwrap_or_default(),
        );
    }
    exp.sigkill();

    // The restarted process finds the messages in its outbox, keeps failing while the sink is down, and must not
    // produce the notifications again (its state file says they were handed over).
    let exp = setup.start("second");
    wait_until(
        "failed attempts of the restarted process",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            (sample(&text, &failed)? >= 1.0 && sample(&text, QUEUE)? >= queued).then_some(())
        },
        || exp.log_tail(),
    )
    .await;

    let sink = HttpSink::start(port, 200).await;
    wait_until(
        "the queue to drain into the sink",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            (sample(&text, QUEUE) == Some(0.0)).then_some(())
        },
        || context(&sink, &exp),
    )
    .await;
    exp.quiet_period(Duration::from_secs(1), || context(&sink, &exp))
        .await;

    let ids: BTreeSet<String> = first_ids
        .iter()
        .chain(exp.notification_ids().iter())
        .cloned()
        .collect();
    let posts = sink.requests();
    assert_eq!(
        posts.len(),
        ids.len(),
        "one POST per notification ({ids:?}):\n{}",
        context(&sink, &exp)
    );
    // Every POST carries its notification id, the idempotency key of an at-least-once delivery.
    let posted_ids: BTreeSet<String> = posts
        .iter()
        .map(|r| {
            r.headers
                .get("x-notification-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("no X-Notification-Id on {}", r.raw))
                .to_string()
        })
        .collect();
    assert_eq!(posted_ids, ids, "{}", context(&sink, &exp));
    let mut groups = BTreeMap::new();
    for r in &posts {
        assert_eq!(r.path, "/alerts");
        assert_alertmanager_v4(r, &FROM_SOURCE);
        *groups
            .entry(r.json["groupKey"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(
        groups.values().all(|n| *n == 1),
        "a group was posted twice: {groups:?}"
    );
    let text = get_ok(&exp.url("/metrics")).await;
    // The first process delivered nothing (the sink was down for all its life), so the second sent every POST.
    assert_eq!(
        sample(&text, &counter("webhook", "sent")),
        Some(posts.len() as f64)
    );
    assert_eq!(sample(&text, &counter("email", "sent")), Some(0.0));
    assert_no_secret("/metrics", &text);
    assert_no_secret("the landing page", &get_ok(&exp.url("/")).await);
    for (what, content) in setup.written_files() {
        assert_no_secret(&what, &content);
    }
    eprintln!(
        "{} webhook POSTs, each once, after {:?}",
        posts.len(),
        started.elapsed()
    );
}

/// Only SourceDown is on, so every message is about the outage, and each channel gets one trigger and one resolve.
const SOURCE_DOWN_ONLY: &str = "  group_wait: 1s\n  group_interval: 2s\n  rules:\n\
     \x20   heartbeat_stale: { enabled: false }\n\
     \x20   agent_offline: { enabled: false }\n\
     \x20   token_rotation: { enabled: false }\n\
     \x20   source_down: { for: 1s }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_teams_and_pagerduty_get_their_documented_payloads_and_one_incident_per_group() {
    let sink = HttpSink::start(0, 200).await;
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let setup = Setup::new(
        &sim,
        &sink.url(""),
        &format!(
            "{SOURCE_DOWN_ONLY}\
             \x20 receivers:\n\
             \x20   - {{ name: ops-chat, slack: {{ webhook_url_file: slack-url }} }}\n\
             \x20   - {{ name: ops-teams, msteams: {{ webhook_url_file: teams-url }} }}\n\
             \x20   - {{ name: pager, pagerduty: {{ routing_key_file: pd-key, url: \"{}\" }} }}\n\
             \x20 default_receivers: [ops-chat]\n\
             \x20 routes:\n\
             \x20   - {{ severity: critical, receivers: [pager, ops-chat, ops-teams] }}\n",
            sink.url("/v2/enqueue")
        ),
    );
    let exp = setup.start("exporter");
    sim.sim.control().set_status_override(Some(500));
    wait_until(
        "a trigger on each of the three channels",
        async || (sink.requests().len() >= 3).then_some(()),
        || context(&sink, &exp),
    )
    .await;
    sim.sim.control().set_status_override(None);
    wait_until(
        "a resolve on each of the three channels",
        async || (sink.requests().len() >= 6).then_some(()),
        || context(&sink, &exp),
    )
    .await;
    exp.quiet_period(Duration::from_secs(2), || context(&sink, &exp))
        .await;

    let slack = sink.requests_to("/services/");
    let teams = sink.requests_to("/workflows/");
    let pd = sink.requests_to("/v2/enqueue");
    assert_eq!(
        (slack.len(), teams.len(), pd.len()),
        (2, 2, 2),
        "{}",
        context(&sink, &exp)
    );

    // Slack: `text` and `blocks`, at the secret webhook path.
    for (r, prefix) in slack
        .iter()
        .zip(["[FIRING:1] SourceDown", "[RESOLVED] SourceDown"])
    {
        assert_eq!(r.path, SLACK_PATH);
        let text = r.json["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text: {}", r.raw));
        assert!(text.starts_with(prefix), "{}", r.raw);
        let blocks = r.json["blocks"]
            .as_array()
            .unwrap_or_else(|| panic!("no blocks: {}", r.raw));
        assert_eq!(blocks[0]["type"], "header", "{}", r.raw);
        assert!(blocks.iter().all(|b| b["type"].is_string()), "{}", r.raw);
        assert!(r.raw.contains(ACCOUNT), "{}", r.raw);
    }
    // Teams: a message with one Adaptive Card.
    for r in &teams {
        assert_eq!(r.path, TEAMS_PATH);
        assert_eq!(r.json["type"], "message", "{}", r.raw);
        let a = &r.json["attachments"][0];
        assert_eq!(
            a["contentType"], "application/vnd.microsoft.card.adaptive",
            "{}",
            r.raw
        );
        assert_eq!(a["content"]["type"], "AdaptiveCard", "{}", r.raw);
        assert!(
            a["content"]["body"]
                .as_array()
                .is_some_and(|b| !b.is_empty()),
            "{}",
            r.raw
        );
    }
    // PagerDuty Events API v2: trigger, then resolve, with one dedup_key.
    let actions: Vec<&str> = pd
        .iter()
        .map(|r| r.json["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "resolve"]);
    assert_eq!(pd[0].json["dedup_key"], pd[1].json["dedup_key"]);
    for r in &pd {
        assert_eq!(r.json["routing_key"], ROUTING_KEY, "{}", r.raw);
        let dedup = r.json["dedup_key"].as_str().unwrap();
        assert!(!dedup.is_empty() && dedup.len() <= 255, "{}", r.raw);
        let p = &r.json["payload"];
        let summary = p["summary"].as_str().unwrap();
        assert!(
            !summary.is_empty() && summary.chars().count() <= 1024,
            "{}",
            r.raw
        );
        assert!(summary.contains("SourceDown"), "{}", r.raw);
        assert_eq!(p["severity"], "critical", "{}", r.raw);
        assert!(
            ["critical", "error", "warning", "info"].contains(&p["severity"].as_str().unwrap())
        );
        assert!(
            p["source"].as_str().is_some_and(|s| s.contains(ACCOUNT)),
            "{}",
            r.raw
        );
    }
    let text = get_ok(&exp.url("/metrics")).await;
    for ch in ["slack", "msteams", "pagerduty"] {
        assert_eq!(
            sample(&text, &counter(ch, "sent")),
            Some(2.0),
            "{ch}:\n{text}"
        );
        assert_eq!(sample(&text, &counter(ch, "rejected")), Some(0.0), "{ch}");
    }
    assert_no_secret("/metrics", &text);
    assert_no_secret("the landing page", &get_ok(&exp.url("/")).await);
    for (what, content) in setup.written_files() {
        assert_no_secret(&what, &content);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_404_is_rejected_once_not_retried_and_shown_on_the_page() {
    let sink = HttpSink::start(0, 404).await;
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let setup = Setup::new(
        &sim,
        &sink.url(""),
        &format!(
            "{SOURCE_DOWN_ONLY}\
             \x20 receivers:\n\
             \x20   - {{ name: ops-chat, slack: {{ webhook_url_file: slack-url }} }}\n\
             \x20 default_receivers: [ops-chat]\n"
        ),
    );
    let exp = setup.start("exporter");
    sim.sim.control().set_status_override(Some(500));
    let rejected = counter("slack", "rejected");
    wait_until(
        "the rejection of the trigger",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            (sample(&text, &rejected)? >= 1.0).then_some(())
        },
        || context(&sink, &exp),
    )
    .await;
    // Retries would follow 200ms, 400ms, 800ms… after the first attempt; none may come.
    exp.quiet_period(Duration::from_secs(2), || context(&sink, &exp))
        .await;
    let text = get_ok(&exp.url("/metrics")).await;
    assert_eq!(sink.requests().len(), 1, "{}", context(&sink, &exp));
    assert_eq!(sample(&text, &rejected), Some(1.0));
    assert_eq!(sample(&text, &counter("slack", "failed")), Some(0.0));
    let page = get_ok(&exp.url("/")).await;
    assert!(
        page.contains("ops-chat") && page.contains("404"),
        "the page does not show the rejection:\n{page}"
    );
    assert_no_secret("the landing page", &page);
    assert_no_secret("/metrics", &text);
    for (what, content) in setup.written_files() {
        assert_no_secret(&what, &content);
    }
}

/// Runs `test-notify --config CONFIG --receiver NAME`; returns whether it succeeded and its stdout and stderr.
fn test_notify(config: &Path, receiver: &str) -> (bool, String) {
    let out = Command::new(EXE)
        .args(["test-notify", "--config"])
        .arg(config)
        .args(["--receiver", receiver])
        .output()
        .expect("run test-notify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_notify_sends_through_each_channel_and_names_the_failed_step() {
    let sink = HttpSink::start(0, 202).await;
    let closed = free_port();
    let sim = spawn_sim(API_TOKEN, SimOptions::default()).await;
    let setup = Setup::new(
        &sim,
        &sink.url(""),
        &format!(
            "\x20 receivers:\n\
             \x20   - {{ name: ops-chat, slack: {{ webhook_url_file: slack-url }} }}\n\
             \x20   - {{ name: pager, pagerduty: {{ routing_key_file: pd-key, url: \"{}\" }} }}\n\
             \x20   - {{ name: hook, webhook: {{ url: \"{}\", bearer_token_file: bearer }} }}\n\
             \x20   - {{ name: gone, webhook: {{ url: \"http://127.0.0.1:{closed}/x\" }} }}\n\
             \x20 default_receivers: [ops-chat]\n",
            sink.url("/v2/enqueue"),
            sink.url("/hook")
        ),
    );
    let mut outputs = Vec::new();
    let (ok, out) = test_notify(&setup.config(), "pager");
    assert!(ok, "{out}");
    outputs.push(out);
    let actions: Vec<String> = sink
        .requests_to("/v2/enqueue")
        .iter()
        .map(|r| {
            r.json["event_action"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(actions, ["trigger", "resolve"], "{}", sink.summary());
    let (ok, out) = test_notify(&setup.config(), "hook");
    assert!(ok, "{out}");
    outputs.push(out);
    let test_notice = Expected {
        account: "test",
        provider: "onprem-agent-exporter",
        external_url: "",
    };
    assert_alertmanager_v4(&sink.requests_to("/hook")[0], &test_notice);
    let (ok, out) = test_notify(&setup.config(), "gone");
    assert!(!ok && out.contains("step connect"), "{out}");
    outputs.push(out);
    sink.set_status(403);
    let (ok, out) = test_notify(&setup.config(), "ops-chat");
    assert!(
        !ok && out.contains("step response") && out.contains("403"),
        "{out}"
    );
    outputs.push(out);
    let (ok, out) = test_notify(&setup.config(), "nobody");
    assert!(!ok && out.contains("ops-chat, pager, hook, gone"), "{out}");
    outputs.push(out);
    for o in &outputs {
        assert_no_secret("test-notify output", o);
    }
}
