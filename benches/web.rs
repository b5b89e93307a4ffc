//! Web-surface figures for `make bench`: the exporter's peak RSS while many clients read `/api/v1/agents` at once
//! (32 readers at 20k agents, goal ≤ 256 MiB; 64 readers at 100k agents, goal ≤ 200 MiB above one answer), and the
//! p99 latency of valid scrapes while 64 connections from another address flood basic auth with wrong passwords.
//!
//! Figures, not tests: nothing fails on a slow number. The peak is `VmHWM` after resetting it (`clear_refs`) once
//! the first poll is done, so it measures the readers, not the poll. The whole run is bounded
//! (`BENCH_TIMEOUT_SECS`, default 900). Every child process is killed on exit; everything listens on loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "support/process.rs"]
mod process;

use process::{kill_all_children, met, proc_status_kib, spawn};

use anyhow::{Context as _, bail};

const EXE: &str = env!("CARGO_BIN_EXE_onprem-agent-exporter");
const TOKEN: &str = "bench-api-token-web-5a7d";
const USER: &str = "prometheus";
const PASSWORD: &str = "bench password";

fn main() {
    process::main_bounded(900, run());
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// An exporter polling a simulator of `agents` agents, with `web_yaml` as its web config if given.
struct Running {
    pid: u32,
    base: String,
    _dir: tempfile::TempDir,
}

async fn start(agents: usize, web_yaml: Option<&str>) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir()?;
    let sim = process::start_simulator(agents, TOKEN).await?;
    std::fs::write(dir.path().join("token"), TOKEN)?;
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen_address: 127.0.0.1:0\nsources:\n  - name: bench\n    provider: celigo\n    \
             base_url: http://{sim}\n    token_file: token\n    poll_interval: 600s\n    request_timeout: 30s\n    \
             page_size: 1000\n    max_pages: 1000\n    max_body_bytes: 268435456\n"
        ),
    )?;
    let mut args = vec![
        "--log-format".to_string(),
        "json".into(),
        "--log-level".into(),
        "info".into(),
        "run".into(),
        "--config".into(),
        config.display().to_string(),
    ];
    if let Some(yaml) = web_yaml {
        let web = dir.path().join("web.yml");
        std::fs::write(&web, yaml)?;
        args.push("--web.config.file".into());
        args.push(web.display().to_string());
    }
    let log = dir.path().join("exporter.log");
    let (pid, _) = spawn(
        Command::new(EXE)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?),
    )?;
    let addr: SocketAddr = process::listening_addr(&log).await?;
    let started = Instant::now();
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    // Ready means every agent is in the snapshot (`/readyz` also turns ready after a failed first poll).
    loop {
        let doc: Option<serde_json::Value> = match client
            .get(format!("{base}/api/v1/agents"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json().await.ok(),
            _ => None,
        };
        let source = doc.as_ref().map(|d| d["sources"][0].clone());
        let seen = source
            .as_ref()
            .and_then(|s| s["agents"].as_array().map(Vec::len))
            .unwrap_or(0);
        if seen >= agents {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!(
                "the exporter did not hold {agents} agents within 300 s (it holds {seen}); last error: {}",
                source.map_or("none".to_string(), |s| s["last_error"].to_string())
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(Running {
        pid,
        base,
        _dir: dir,
    })
}

/// `readers` clients each read `/api/v1/agents` `rounds` times, all at once; prints the peak RSS.
async fn agents_readers(agents: usize, readers: usize, goal: &str) -> anyhow::Result<()> {
    let exp = start(agents, None).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(readers)
        .build()?;
    let url = format!("{}/api/v1/agents", exp.base);
    let one = client.get(&url).send().await?.bytes().await?.len() as u64;
    // Let the answer kept for reuse go, then reset the high-water mark so the peak is the readers'.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = proc_status_kib(exp.pid, "VmRSS")?;
    std::fs::write(format!("/proc/{}/clear_refs", exp.pid), "5")
        .context("reset VmHWM through clear_refs")?;
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..readers)
        .map(|_| {
            let (client, url, errors) = (client.clone(), url.clone(), errors.clone());
            tokio::spawn(async move {
                for _ in 0..3 {
                    let ok = match client.get(&url).send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let took = started.elapsed();
    let peak = proc_status_kib(exp.pid, "VmHWM")?;
    let answer_mib = one as f64 / 1024.0 / 1024.0;
    println!(
        "  {agents:>6} agents, {readers:>2} readers × 3: one answer {answer_mib:.1} MiB, RSS before {:.0} MiB, peak \
         {:.0} MiB ({:.0} MiB above one answer), {} errors, {took:.1?}",
        mib(before),
        mib(peak),
        mib(peak) - answer_mib,
        errors.load(Ordering::Relaxed)
    );
    let ok = match goal {
        "256" => mib(peak) <= 256.0,
        _ => mib(peak) - answer_mib <= 200.0,
    };
    println!(
        "         goal: {} ({})",
        if goal == "256" {
            "peak ≤ 256 MiB"
        } else {
            "peak ≤ 200 MiB above one answer"
        },
        met(ok)
    );
    Ok(())
}

/// Valid scrapes from 127.0.0.1 every 100 ms for `secs` while 64 connections from 127.0.0.2 send wrong passwords.
async fn flood(secs: u64) -> anyhow::Result<()> {
    let hash = bcrypt::hash(PASSWORD, 10)?;
    let exp = start(100, Some(&format!("basic_auth_users:\n  {USER}: {hash}\n"))).await?;
    let url = format!("{}/metrics", exp.base);
    let end = Instant::now() + Duration::from_secs(secs);
    let counts = Arc::new([
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ]);
    let attackers: Vec<_> = (0..64)
        .map(|_| {
            let (url, counts) = (url.clone(), counts.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("a client");
                while Instant::now() < end {
                    let i = match client
                        .get(&url)
                        .basic_auth(USER, Some("wrong"))
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 401 => 0,
                        Ok(r) if r.status() == 429 => 1,
                        _ => 2,
                    };
                    counts[i].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut latencies = Vec::new();
    let mut failures = 0;
    while Instant::now() < end {
        let t = Instant::now();
        match client
            .get(&url)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(_) => latencies.push(t.elapsed().as_secs_f64()),
                Err(_) => failures += 1,
            },
            _ => failures += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for a in attackers {
        let _ = a.await;
    }
    latencies.sort_by(f64::total_cmp);
    let p = |q: f64| {
        latencies
            .get(((latencies.len().saturating_sub(1)) as f64 * q).round() as usize)
            .map_or(f64::NAN, |s| s * 1000.0)
    };
    println!(
        "  wrong-password flood, 64 connections from 127.0.0.2 for {secs} s: {} valid scrapes, p50 {:.0} ms, p99 \
         {:.0} ms, {failures} failed; flood answers 401 × {}, 429 × {}, other × {}",
        latencies.len(),
        p(0.5),
        p(0.99),
        counts[0].load(Ordering::Relaxed),
        counts[1].load(Ordering::Relaxed),
        counts[2].load(Ordering::Relaxed)
    );
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    println!("web bench: shared /api/v1/agents answers and basic auth under a flood");
    agents_readers(20_000, 32, "256").await?;
    kill_all_children();
    agents_readers(100_000, 64, "200").await?;
    kill_all_children();
    flood(20).await?;
    Ok(())
}
