//! Alerting figures for `make bench`: how long one evaluation of the rule engine takes at 10k and 100k agents, and
//! how fast `GET /api/v1/silences` answers while 100k agents are evaluated every second.
//!
//! Everything runs in this process: a status registry holding one source with N agents (a tenth of them silent for
//! an hour, one in fifty reported offline, every token 80 days old, so that most rules have work), the engine, its
//! loop at `evaluation_interval: 1s` with a sink that accepts every notification, and the API served on 127.0.0.1
//! port 0. The goal for the silences is p99 ≤ 100 ms on a 2-core machine; figures, not tests: nothing fails on a
//! slow number. `BENCH_SILENCE_SECS` (default 20) is how long the API is asked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use onprem_agent_exporter::config::alerting::EngineConfig;
use onprem_agent_exporter::domain::{
    Agent, AgentList, Notification, NotificationSink, Provider, SinkError,
};
use onprem_agent_exporter::rules::api;
use onprem_agent_exporter::rules::engine::{Engine, lock};
use onprem_agent_exporter::rules::health::StateHealth;
use onprem_agent_exporter::rules::runner;
use onprem_agent_exporter::rules::silences::{SilenceStore, path_beside};
use onprem_agent_exporter::rules::state::State;
use onprem_agent_exporter::status::{Registry, SourceStatus};

const TARGET_P99_MS: f64 = 100.0;

/// Accepts and drops every notification: delivery is not what is measured.
struct Accept;

impl NotificationSink for Accept {
    fn enqueue(&self, _: &[Notification]) -> Result<(), SinkError> {
        Ok(())
    }
}

/// A registry with one polled source of `agents` agents as of `now`.
fn fleet(agents: usize, now: Timestamp) -> Arc<Registry> {
    let ago = |secs: u64| now.checked_sub(Duration::from_secs(secs)).unwrap();
    let list = (0..agents)
        .map(|i| {
            let mut a = Agent::new(format!("agent-{i:06}"), format!("edge {i}"));
            a.created_at = Some(ago(400 * 86_400));
            a.last_heartbeat = Some(if i % 10 == 0 { ago(3600) } else { now });
            a.offline = i % 50 == 0;
            a.token_rotated = Some(ago(80 * 86_400));
            a.version = Some("1.5.0".to_string());
            a
        })
        .collect();
    let registry = Registry::new([("prod", Provider::Celigo)]);
    let mut s = SourceStatus::new("prod", Provider::Celigo);
    s.agents = Some(Arc::new(AgentList {
        polled_at: now,
        agents: list,
    }));
    s.up = true;
    s.polls = 1;
    registry.publish(0, s);
    Arc::new(registry)
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("alerting bench: one source, 1/10 agents stale, 1/50 offline, tokens 80 days old");
    println!();
    println!("| agents | first evaluation | evaluation p50 | evaluation p99 | alerts |");
    println!("|---:|---:|---:|---:|---:|");
    for agents in [10_000, 100_000] {
        evaluation(agents);
    }
    println!();
    runtime.block_on(silences_under_load(100_000))
}

/// Times 1 + 10 evaluations of `agents` agents, one simulated second apart.
fn evaluation(agents: usize) {
    let now = Timestamp::now();
    let registry = fleet(agents, now);
    let sources = registry.snapshot();
    let mut engine = Engine::new(
        EngineConfig::new("unused-state.json", vec![]),
        State::new(now),
    );
    let started = Instant::now();
    engine.evaluate(&sources, now);
    let first = started.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for i in 1..=10 {
        let at = now.checked_add(Duration::from_secs(i)).unwrap();
        let started = Instant::now();
        engine.evaluate(&sources, at);
        times.push(started.elapsed().as_secs_f64());
    }
    println!(
        "| {agents} | {} | {} | {} | {} |",
        ms(first),
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
        engine.state().alerts.len()
    );
}

/// Runs the engine's loop every second over `agents` agents and asks `GET /api/v1/silences` (ten silences held) one
/// request after another for `BENCH_SILENCE_SECS`.
async fn silences_under_load(agents: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state_file = dir.path().join("state.json");
    let mut config = EngineConfig::new(&state_file, vec![]);
    config.evaluation_interval = Duration::from_secs(1);
    let store = Arc::new(SilenceStore::open(
        path_beside(&state_file),
        config.silences,
    )?);
    for i in 0..10 {
        let new = serde_json::from_value(serde_json::json!({
            "matchers": [{"name": "agent_id", "value": format!("agent-{i:06}")}],
            "duration": "2h",
            "comment": "bench",
        }))?;
        store
            .add(new, Timestamp::now())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let engine = Arc::new(std::sync::Mutex::new(Engine::with_silences(
        config,
        State::new(Timestamp::now()),
        store,
    )));
    let registry = fleet(agents, Timestamp::now());
    let stop = tokio_util::sync::CancellationToken::new();
    let shutdown = stop.clone();
    let health = Arc::new(StateHealth::new(Timestamp::now()));
    let loop_task = tokio::spawn(runner::run(
        Arc::clone(&engine),
        Arc::clone(&registry),
        Arc::new(Accept),
        Duration::from_secs(1),
        health,
        shutdown,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/v1/silences", listener.local_addr()?);
    let router = api::router(Arc::clone(&engine), false);
    tokio::spawn(async move { axum::serve(listener, router).await });

    // Let the first evaluations (which create the alerts) pass, so the figures are for the steady state.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seconds: u64 = std::env::var("BENCH_SILENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let started = Instant::now();
        let body = client
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        times.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(body.len() > 100, "a short answer: {body:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alerts = lock(&engine).state().alerts.len();
    stop.cancel();
    loop_task.await?;
    let p99 = percentile(&times, 0.99);
    println!(
        "GET /api/v1/silences while {agents} agents ({alerts} alerts) are evaluated every second: {} requests, \
         p50 {}, p99 {} (goal p99 ≤ {TARGET_P99_MS} ms: {})",
        times.len(),
        ms(percentile(&times, 0.50)),
        ms(p99),
        if p99 * 1000.0 <= TARGET_P99_MS {
            "met"
        } else {
            "not met"
        }
    );
    Ok(())
}

/// Nearest-rank percentile of `xs` (`p` in 0..=1).
fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn ms(seconds: f64) -> String {
    format!("{:.1} ms", seconds * 1000.0)
}
