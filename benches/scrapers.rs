//! Concurrent-scraper figures for `make bench`: one exporter process polling a 10k-agent simulator, scraped by 1
//! and then by 64 concurrent clients, without and with gzip (OpenMetrics, as Prometheus asks).
//!
//! For each encoding it reports errors, scrapes per second with 1 and with 64 scrapers and their ratio (target ≥ 4×,
//! because concurrent scrapes share one render), p50 and p99 latency with 64, the exporter's peak RSS (`VmHWM`,
//! target ≤ 128 MiB) and its RSS some seconds after the burst, and how many renders the exporter made
//! (`onprem_agent_exporter_renders_total`).
//!
//! Figures, not tests: nothing fails on a slow number. The whole run is bounded (`BENCH_TIMEOUT_SECS`, default 600);
//! `BENCH_SCRAPE_SECS` (default 30) is how long the 64 scrapers run, and the single scraper runs a third of that.
//! Every child process is killed on exit; everything listens on 127.0.0.1 only.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/process.rs"]
mod process;

use process::{env_secs, met, proc_status_kib, spawn};

use anyhow::{anyhow, bail};

const EXE: &str = env!("CARGO_BIN_EXE_onprem-agent-exporter");
const TOKEN: &str = "bench-api-token-scrapers-9c2e";
const AGENTS: usize = 10_000;
const SCRAPERS: usize = 64;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const TARGET_RATIO: f64 = 4.0;
const TARGET_RSS_MIB: f64 = 128.0;

fn main() {
    process::main_bounded(600, run());
}

async fn run() -> anyhow::Result<()> {
    let long = env_secs("BENCH_SCRAPE_SECS", 30);
    let short = long / 3;
    let dir = tempfile::tempdir()?;

    // The simulator, as its own process so its CPU and memory are not the exporter's.
    let sim = process::start_simulator(AGENTS, TOKEN).await?;

    std::fs::write(dir.path().join("token"), TOKEN)?;
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen_address: 127.0.0.1:0\nsources:\n  - name: bench\n    provider: celigo\n    \
             base_url: http://{sim}\n    token_file: token\n    poll_interval: 60s\n    request_timeout: 15s\n    \
             page_size: 1000\n    max_pages: 1000\n    max_body_bytes: 268435456\n"
        ),
    )?;
    let log = dir.path().join("exporter.log");
    let (pid, _) = spawn(
        Command::new(EXE)
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info",
                "run",
                // The 64 scrapers stand for 64 Prometheus servers, which would each come from an address of their
                // own; here they share 127.0.0.1, so the per-address cap (64 by default) is raised above them.
                "--web.max-connections-per-address=1024",
                "--config",
            ])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?),
    )?;
    let addr: SocketAddr = process::listening_addr(&log).await?;
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(SCRAPERS)
        .build()?;
    let base = format!("http://{addr}");
    loop {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the exporter was not ready within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle_rss = proc_status_kib(pid, "VmRSS")?;
    println!(
        "scrapers bench: {AGENTS} agents, {SCRAPERS} scrapers for {long:?} vs 1 for {short:?}; exporter idle RSS {}",
        mib(idle_rss)
    );
    println!(
        "{:<10} {:>7} {:>11} {:>12} {:>7} {:>9} {:>9} {:>10} {:>11} {:>8}",
        "encoding",
        "errors",
        "1 scr./s",
        "64 scr./s",
        "ratio",
        "p50",
        "p99",
        "peak RSS",
        "RSS after",
        "renders"
    );
    for gzip in [false, true] {
        let renders_before = renders(&client, &base, gzip).await?;
        let one = scrape_for(&client, &base, gzip, 1, short).await;
        let many = scrape_for(&client, &base, gzip, SCRAPERS, long).await;
        let peak = proc_status_kib(pid, "VmHWM")?;
        // Idle for a few seconds so that what the allocator gives back after the burst shows.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = proc_status_kib(pid, "VmRSS")?;
        let renders_after = renders(&client, &base, gzip).await?;
        let ratio = many.per_second() / one.per_second().max(f64::MIN_POSITIVE);
        println!(
            "{:<10} {:>7} {:>11.1} {:>12.1} {:>6.1}× {:>9} {:>9} {:>10} {:>11} {:>8}",
            if gzip { "gzip" } else { "identity" },
            one.errors + many.errors,
            one.per_second(),
            many.per_second(),
            ratio,
            ms(percentile(&many.latencies, 0.50)),
            ms(percentile(&many.latencies, 0.99)),
            mib(peak),
            mib(after),
            renders_after.saturating_sub(renders_before),
        );
        println!(
            "           target: 0 errors ({}), ratio ≥ {TARGET_RATIO}× ({}), peak RSS ≤ {TARGET_RSS_MIB} MiB ({})",
            met(one.errors + many.errors == 0),
            met(ratio >= TARGET_RATIO),
            met(peak as f64 / 1024.0 <= TARGET_RSS_MIB),
        );
        if let Some(e) = many.first_error.or(one.first_error) {
            println!("           first error: {e}");
        }
    }
    Ok(())
}

/// What a scraping run saw.
struct Run {
    elapsed: Duration,
    latencies: Vec<f64>,
    errors: usize,
    first_error: Option<String>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `n` scrapers for `duration`, each scraping `/metrics` (OpenMetrics, gzip if `gzip`) one request after the
/// other and reading the whole body.
async fn scrape_for(
    client: &reqwest::Client,
    base: &str,
    gzip: bool,
    n: usize,
    duration: Duration,
) -> Run {
    let start = Instant::now();
    let end = start + duration;
    let seen = Arc::new(Mutex::new(Run {
        elapsed: duration,
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
    }));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url, seen) = (client.clone(), format!("{base}/metrics"), seen.clone());
            tokio::spawn(async move {
                while Instant::now() < end {
                    let t = Instant::now();
                    let mut request = client
                        .get(&url)
                        .header("Accept", "application/openmetrics-text; version=1.0.0");
                    if gzip {
                        request = request.header("Accept-Encoding", "gzip");
                    }
                    let outcome = match request.send().await {
                        Ok(r) if r.status().is_success() => r
                            .bytes()
                            .await
                            .map_err(|e| format!("{:#}", anyhow!(e)))
                            .and_then(|b| {
                                if b.is_empty() {
                                    Err("an empty body".to_string())
                                } else {
                                    Ok(())
                                }
                            }),
                        Ok(r) => Err(format!("status {}", r.status())),
                        Err(e) => Err(format!("{:#}", anyhow!(e))),
                    };
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Ok(()) => seen.latencies.push(t.elapsed().as_secs_f64()),
                        Err(e) => {
                            seen.errors += 1;
                            seen.first_error.get_or_insert(e);
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();
    let mut run = std::mem::replace(
        &mut *seen.lock().unwrap_or_else(|p| p.into_inner()),
        Run {
            elapsed,
            latencies: Vec::new(),
            errors: 0,
            first_error: None,
        },
    );
    run.elapsed = elapsed;
    run
}

/// The exporter's render count for OpenMetrics with the given encoding, from a text scrape.
async fn renders(client: &reqwest::Client, base: &str, gzip: bool) -> anyhow::Result<u64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let series = format!(
        "onprem_agent_exporter_renders_total{{format=\"openmetrics\",encoding=\"{}\"}} ",
        if gzip { "gzip" } else { "identity" }
    );
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no {series:?} in the exposition"))
}

fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(seconds: f64) -> String {
    format!("{:.0} ms", seconds * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}
