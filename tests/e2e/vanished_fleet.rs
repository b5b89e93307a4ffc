//! A fleet that vanishes because the upstream's records became unreadable is a failed poll, not an empty fleet: the
//! real exporter keeps the last good snapshot, reports `source_up 0` with its own error reason and resolves nothing,
//! while a genuine empty list still empties the fleet and resolves the alerts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::exposition::sample;
use crate::support::fake_upstream::{FakeUpstream, Reply};
use crate::support::http::get_ok;
use crate::support::http_sink::HttpSink;
use crate::support::process::TestExporter;
use crate::support::wait::wait_until;

const AGENTS: usize = 30;

/// What the fake upstream answers: the good fleet, the same fleet in a schema nobody reads, or nothing.
const GOOD: u8 = 0;
const ALL_INVALID: u8 = 1;
const EMPTY: u8 = 2;

fn page(mode: u8) -> Reply {
    let records: Vec<Value> = (0..AGENTS)
        .map(|i| match mode {
            // Silent since 2025: every agent is AgentHeartbeatStale.
            GOOD => json!({
                "_id": format!("a{i:02}"),
                "name": format!("edge-{i:02}"),
                "offline": false,
                "lastHeartbeatAt": "2025-03-27T14:59:30Z",
                "createdAt": "2024-06-01T08:00:00.000Z",
            }),
            // A schema change: the id moved into a nested object.
            _ => json!({"agent": {"meta": {"identifier": format!("a{i:02}")}, "tags": [[[]]]}}),
        })
        .collect();
    match mode {
        EMPTY => Reply::json(json!([])),
        _ => Reply::json(Value::Array(records)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_only_invalid_records_fails_the_poll_keeps_the_fleet_and_resolves_nothing() {
    let mode = Arc::new(AtomicU8::new(GOOD));
    let m = mode.clone();
    let upstream = FakeUpstream::route(move |_| page(m.load(Ordering::SeqCst))).await;
    let sink = HttpSink::start(0, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("token"), "t0k3n\n").unwrap();
    let config = format!(
        "listen_address: 127.0.0.1:0\n\
         sources:\n\
         \x20 - name: prod\n\
         \x20   provider: celigo\n\
         \x20   base_url: {base}\n\
         \x20   token_file: token\n\
         \x20   poll_interval: 1s\n\
         \x20   max_attempts: 1\n\
         alerting:\n\
         \x20 state_file: {state}\n\
         \x20 evaluation_interval: 200ms\n\
         \x20 group_wait: 1s\n\
         \x20 group_interval: 1s\n\
         \x20 repeat_interval: 1h\n\
         \x20 rules:\n\
         \x20   agent_offline: {{ enabled: false }}\n\
         \x20   token_rotation: {{ enabled: false }}\n\
         \x20   source_down: {{ for: 1h }}\n\
         \x20 receivers:\n\
         \x20   - name: hook\n\
         \x20     webhook: {{ url: \"{hook}\" }}\n\
         \x20 default_receivers: [hook]\n",
        base = upstream.base.as_str().trim_end_matches('/'),
        state = p.join("state.json").display(),
        hook = sink.url("/hook"),
    );
    std::fs::write(p.join("config.yaml"), config).unwrap();
    let exp = TestExporter::start(&p.join("config.yaml"), p.join("exporter.log"));
    let seen = || format!("{}\n{}", sink.summary(), exp.log_tail());
    let statuses = || -> Vec<String> {
        sink.requests()
            .iter()
            .map(|r| r.json["status"].as_str().unwrap_or_default().to_string())
            .collect()
    };

    wait_until(
        "the webhook to hear of 30 stale agents",
        async || {
            sink.requests()
                .iter()
                .any(|r| {
                    r.json["alerts"]
                        .as_array()
                        .is_some_and(|a| a.len() == AGENTS)
                })
                .then_some(())
        },
        seen,
    )
    .await;

    mode.store(ALL_INVALID, Ordering::SeqCst);
    let up = "onprem_agent_source_up{account=\"prod\",provider=\"celigo\"}";
    let reason = "onprem_agent_source_errors_total{account=\"prod\",provider=\"celigo\",reason=\"invalid_records\"}";
    let agents = "onprem_agent_source_agents{account=\"prod\",provider=\"celigo\"}";
    let metrics = wait_until(
        "source_up 0 with reason invalid_records",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            (sample(&text, up) == Some(0.0) && sample(&text, reason).is_some_and(|n| n >= 1.0))
                .then_some(text)
        },
        seen,
    )
    .await;
    assert_eq!(
        sample(&metrics, agents),
        Some(AGENTS as f64),
        "the last good snapshot stays:\n{metrics}"
    );
    // Several evaluations and group intervals pass over the failed polls: nothing may be sent resolved.
    exp.quiet_period(Duration::from_secs(3), seen).await;
    assert_eq!(statuses(), ["firing"], "{}", seen());
    let text = get_ok(&exp.url("/metrics")).await;
    assert_eq!(sample(&text, up), Some(0.0), "{text}");
    assert!(
        exp.logs()
            .contains("none of the 30 agent records was usable"),
        "{}",
        exp.log_tail()
    );

    // A genuine empty list empties the fleet: the alerts resolve.
    mode.store(EMPTY, Ordering::SeqCst);
    wait_until(
        "the resolved notice after a genuine empty list",
        async || (statuses().last().map(String::as_str) == Some("resolved")).then_some(()),
        seen,
    )
    .await;
    // A scrape within a second of the previous one may be served that render (renders are shared for 1 s), so
    // wait for one made after the empty poll.
    wait_until(
        "source_up 1 and no agents after the empty list",
        async || {
            let text = get_ok(&exp.url("/metrics")).await;
            (sample(&text, up) == Some(1.0) && sample(&text, agents) == Some(0.0)).then_some(())
        },
        seen,
    )
    .await;
}
