//! Scale figures for `make bench`: how the exporter copes with 1k, 10k and 100k agents at 1,000 per page.
//!
//! For each size it starts the simulator as its own process (`simulate`), so that neither its CPU nor its memory is
//! counted against the exporter, and measures:
//!
//! - **simulator alone**: a minimal client that fetches every page (same `include=` and `limit=` as the exporter,
//!   following `Link: rel="next"`, reading the bytes, parsing no JSON). This is the baseline: what serving the pages
//!   costs, with nothing of ours in the way.
//! - **full poll**: `CeligoSource::poll()` in this process, with its requests and bytes, and its ratio to the
//!   baseline. Baseline and poll runs alternate, and the medians are reported.
//! - **render**: `Exposition::render_to` (`prometheus-client`, streaming in chunks, as a gzip scrape does) on a
//!   registry holding the poll's outcome, 50 times in this process; then 50 real
//!   `/metrics` scrapes without and 50 with gzip against an exporter process (`run --config`).
//! - **exposition size**, raw and gzipped at the level the server uses.
//! - **peak RSS** of that exporter process (`VmHWM`), after its first poll and 100 scrapes, and again after its
//!   second poll, when the old snapshot and the new poll are alive together.
//!
//! These are figures, not tests: nothing here fails on a slow number. Targets are printed beside the figures and
//! marked met or not met. Everything is bounded in time, every child process is killed on exit (including on
//! Ctrl-C and on the overall deadline), and everything listens on 127.0.0.1 only.
//!
//! - **decode in process**: the pages of one baseline fetch decoded by `CeligoSource::decode_page` alone, no
//!   network, as CPU time per record (the cost the poll overlaps with its fetches).
//!
//! `BENCH_SIZES=1000,10000` limits the sizes; `BENCH_POLL_ONLY=1` measures the baseline, the poll and the decode
//! only (no render, no exporter process); `BENCH_TIMEOUT_SECS` (default 1800) bounds the whole run.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use jiff::Timestamp;
use onprem_agent_exporter::config::sources::SourceConfig;
use onprem_agent_exporter::domain::Provider;
use onprem_agent_exporter::metrics::{Exposition, Format};
use onprem_agent_exporter::sources::Source as _;
use onprem_agent_exporter::sources::celigo::CeligoSource;
use onprem_agent_exporter::sources::http::next_link;
use onprem_agent_exporter::status::{Registry, SourceStatus};
use reqwest::header;
use secrecy::SecretString;
use url::Url;

const EXE: &str = env!("CARGO_BIN_EXE_onprem-agent-exporter");

/// The API key the simulator process accepts and the clients send.
const TOKEN: &str = "bench-api-token-5d1e8f";

/// Agents per page, as the issue asks.
const PAGE_SIZE: u32 = 1000;

/// The projection the Celigo source sends (`INCLUDE` in `src/sources/celigo.rs`); the baseline must ask for the same
/// records or it would measure other bytes. The bench prints both byte counts so a drift shows.
const INCLUDE: &str = "name,version,offline,lastHeartbeatAt,__accessTokenLastModifiedAt,createdAt";

/// Renders and scrapes per measurement.
const RENDERS: usize = 50;

/// The exporter's poll interval for a fleet size: long enough that the 100 scrapes finish before the second poll
/// starts (the bench checks and says so if not), short enough that waiting for that second poll stays cheap.
fn exporter_poll_interval(agents: usize) -> Duration {
    if agents >= 50_000 {
        Duration::from_secs(90)
    } else {
        Duration::from_secs(20)
    }
}

/// The time limit of every single HTTP request the bench makes.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a child process may take to start listening (the simulator generates its fleet first).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The targets set for 100k agents on a 2-core machine. The render target follows the exposition's move to
/// `prometheus-client` (p99 ≤ 500 ms at 100k, ≤ 50 ms at 10k; it was 150 ms for the hand-written encoder).
const TARGET_RENDER_MS: f64 = 500.0;
const TARGET_RSS_MIB: f64 = 200.0;
/// A full poll over the simulator alone: under 2× since pages are read by serde_json (it was 1.5× before).
const TARGET_POLL_RATIO: f64 = 2.0;

/// The size the targets are stated for.
const TARGET_AGENTS: usize = 100_000;

fn main() {
    let deadline = std::env::var("BENCH_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        eprintln!(
            "bench: still running after {}; killing the child processes and giving up",
            humantime::format_duration(deadline)
        );
        kill_all_children();
        std::process::exit(2);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    runtime.spawn(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async move {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        eprintln!("bench: interrupted; killing the child processes");
        kill_all_children();
        std::process::exit(130);
    });
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("bench: error: {e:#}");
        kill_all_children();
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let sizes: Vec<usize> = match std::env::var("BENCH_SIZES") {
        Ok(s) => s
            .split(',')
            .map(|n| n.trim().parse())
            .collect::<Result<_, _>>()
            .context("BENCH_SIZES must be a comma-separated list of agent counts")?,
        Err(_) => vec![1_000, 10_000, 100_000],
    };
    let machine = Machine::read();
    machine.print();
    println!(
        "targets (at {} agents): render p99 <= {TARGET_RENDER_MS} ms; peak RSS <= {TARGET_RSS_MIB} MiB; \
         full poll <= {TARGET_POLL_RATIO}x the simulator alone",
        TARGET_AGENTS
    );
    println!(
        "timings are wall-clock unless marked CPU (on-CPU time from /proc schedstat, which other load on the machine \
         does not inflate); medians over the runs shown; percentiles are nearest-rank, so with {RENDERS} samples p99 \
         is the slowest one"
    );
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("build the bench HTTP client")?;
    let poll_only = std::env::var("BENCH_POLL_ONLY").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut all = Vec::new();
    for agents in sizes {
        println!();
        println!("== {agents} agents, {PAGE_SIZE} per page ==");
        let figures = measure(&client, agents, poll_only).await?;
        figures.print();
        all.push(figures);
    }
    println!();
    print_summary(&all);
    Ok(())
}

/// Everything measured for one fleet size.
struct Figures {
    agents: usize,
    /// Whether only the baseline, the poll and the decode were measured (`BENCH_POLL_ONLY`).
    poll_only: bool,
    /// Simulator-alone fetch times, seconds, one per run.
    baseline: Vec<f64>,
    /// Bytes and requests of one baseline fetch.
    baseline_bytes: u64,
    baseline_requests: u64,
    /// Full poll times, seconds, one per run.
    polls: Vec<f64>,
    /// Requests, bytes and pages of one poll, from `PollStats`.
    poll_requests: u64,
    poll_bytes: u64,
    poll_pages: u64,
    polled_agents: usize,
    /// On-CPU time to decode one record of the baseline's pages in process, seconds (median over the runs).
    decode_per_record: f64,
    /// In-process render times, seconds.
    renders: Vec<f64>,
    /// Exposition sizes, bytes.
    raw_bytes: usize,
    gzip_bytes: usize,
    /// Gzip time of one exposition in this process, seconds (median of a few).
    gzip_time: f64,
    /// HTTP scrape times, seconds.
    scrapes_plain: Vec<f64>,
    scrapes_gzip: Vec<f64>,
    /// Exporter CPU per scrape, seconds (mean over the scrapes).
    scrape_plain_cpu: f64,
    scrape_gzip_cpu: f64,
    /// Median CPU of the simulator process and of this process during one baseline fetch and one poll, seconds.
    sim_cpu_baseline: f64,
    sim_cpu_poll: f64,
    client_cpu_baseline: f64,
    client_cpu_poll: f64,
    /// On-CPU time and run-queue wait of each in-process render, seconds: the wall time minus contention.
    render_cpu: Vec<f64>,
    render_wait: Vec<f64>,
    /// Body sizes of the last HTTP scrapes, bytes.
    http_plain_bytes: usize,
    http_gzip_bytes: usize,
    /// Whether a poll finished while the scrapes ran (it would inflate them).
    scrapes_overlapped_poll: bool,
    /// Exporter `VmHWM` after the first poll and the scrapes, and after the second poll, KiB.
    hwm_after_scrapes_kib: u64,
    hwm_after_second_poll_kib: Option<u64>,
    /// Exporter `VmRSS` at the end, KiB.
    rss_end_kib: u64,
    /// Time from the exporter's start to `/readyz` answering 200, seconds.
    exporter_ready: f64,
}

async fn measure(
    client: &reqwest::Client,
    agents: usize,
    poll_only: bool,
) -> anyhow::Result<Figures> {
    let (sim, sim_addr) = start_simulator(agents).await?;
    let base = Url::parse(&format!("http://{sim_addr}/")).unwrap();

    // Baseline and poll alternate, after one warm-up of each, so that drift on the machine hits both alike.
    let runs = match agents {
        0..=10_000 => 9,
        _ => 5,
    };
    let source = celigo_source(&base)?;
    let first = baseline_url(&base);
    let mut pages = Vec::new();
    let (_, baseline_bytes, baseline_requests) =
        fetch_all_pages(client, &first, Some(&mut pages)).await?;
    let mut outcome = source.poll().await.context("warm-up poll")?;
    let mut baseline = Vec::new();
    let mut polls = Vec::new();
    let (mut sim_cpu_baseline, mut sim_cpu_poll) = (Vec::new(), Vec::new());
    let (mut client_cpu_baseline, mut client_cpu_poll) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (sim_before, client_before) = (Cpu::process(sim.pid()), Cpu::process_self());
        let (took, _, _) = fetch_all_pages(client, &first, None).await?;
        baseline.push(took);
        sim_cpu_baseline.push(Cpu::process(sim.pid()).since(sim_before));
        client_cpu_baseline.push(Cpu::process_self().since(client_before));
        drop(outcome);
        let (sim_before, client_before) = (Cpu::process(sim.pid()), Cpu::process_self());
        let started = Instant::now();
        outcome = source.poll().await.context("poll the simulator")?;
        polls.push(started.elapsed().as_secs_f64());
        sim_cpu_poll.push(Cpu::process(sim.pid()).since(sim_before));
        client_cpu_poll.push(Cpu::process_self().since(client_before));
    }
    let stats = outcome.stats.clone();
    let polled_agents = outcome.agents.len();
    if polled_agents != agents {
        bail!("the poll returned {polled_agents} agents, expected {agents}");
    }

    // The decode alone, on this thread, from the bodies of one baseline fetch.
    let mut decode_times = Vec::with_capacity(runs);
    let mut decoded = Vec::with_capacity(agents);
    for _ in 0..runs {
        decoded.clear();
        let before = Cpu::thread();
        for (url, body) in &pages {
            source
                .decode_page(body, url, &mut decoded)
                .context("decode a page in process")?;
        }
        decode_times.push(Cpu::thread().since(before).on_cpu / agents.max(1) as f64);
    }
    if decoded.len() != agents {
        bail!(
            "decoding in process gave {} agents, expected {agents}",
            decoded.len()
        );
    }
    drop((decoded, pages));

    if poll_only {
        return Ok(Figures {
            poll_only,
            baseline,
            polls,
            decode_per_record: median(&decode_times),
            sim_cpu_baseline: median_cpu(&sim_cpu_baseline),
            sim_cpu_poll: median_cpu(&sim_cpu_poll),
            client_cpu_baseline: median_cpu(&client_cpu_baseline),
            client_cpu_poll: median_cpu(&client_cpu_poll),
            ..Figures::empty(
                agents,
                &stats,
                polled_agents,
                baseline_bytes,
                baseline_requests,
            )
        });
    }

    // Render in process from a registry holding that outcome, as the server would.
    let registry = Registry::new([("bench", Provider::Celigo)]);
    let took = Duration::from_secs_f64(median(&polls));
    registry.publish(
        0,
        SourceStatus::new("bench", Provider::Celigo).succeeded(outcome, Timestamp::now(), took),
    );
    let exposition = Exposition::new(Arc::new(registry));
    let text = exposition.render(Format::OpenMetrics);
    let mut renders = Vec::with_capacity(RENDERS);
    let mut render_cpu = Vec::with_capacity(RENDERS);
    let mut render_wait = Vec::with_capacity(RENDERS);
    for _ in 0..RENDERS {
        let before = Cpu::thread();
        let started = Instant::now();
        // As a gzip scrape does: streamed in chunks, never held whole (here into a sink, so that compression,
        // measured below, is not counted twice).
        exposition.render_to(&mut std::io::sink(), Format::OpenMetrics)?;
        renders.push(started.elapsed().as_secs_f64());
        let used = Cpu::thread().since(before);
        render_cpu.push(used.on_cpu);
        render_wait.push(used.waiting);
    }
    let raw_bytes = text.len();
    let mut gzip_times = Vec::new();
    let mut gzip_bytes = 0;
    for _ in 0..5 {
        let started = Instant::now();
        gzip_bytes = gzip_fast(text.as_bytes())?.len();
        gzip_times.push(started.elapsed().as_secs_f64());
    }
    drop((text, exposition));

    // The exporter as a process of its own, for real scrapes and its memory.
    let exporter = start_exporter(sim_addr, exporter_poll_interval(agents)).await?;
    let scrape = exporter_scrapes(client, &exporter).await?;
    drop(exporter);
    drop(sim);

    Ok(Figures {
        agents,
        poll_only,
        baseline,
        decode_per_record: median(&decode_times),
        baseline_bytes,
        baseline_requests,
        polls,
        poll_requests: stats.requests,
        poll_bytes: stats.bytes,
        poll_pages: stats.pages,
        polled_agents,
        renders,
        raw_bytes,
        gzip_bytes,
        gzip_time: median(&gzip_times),
        scrapes_plain: scrape.plain,
        scrapes_gzip: scrape.gzip,
        scrape_plain_cpu: scrape.plain_cpu,
        scrape_gzip_cpu: scrape.gzip_cpu,
        sim_cpu_baseline: median_cpu(&sim_cpu_baseline),
        sim_cpu_poll: median_cpu(&sim_cpu_poll),
        client_cpu_baseline: median_cpu(&client_cpu_baseline),
        client_cpu_poll: median_cpu(&client_cpu_poll),
        render_cpu,
        render_wait,
        http_plain_bytes: scrape.plain_bytes,
        http_gzip_bytes: scrape.gzip_bytes,
        scrapes_overlapped_poll: scrape.overlapped,
        hwm_after_scrapes_kib: scrape.hwm_after_scrapes_kib,
        hwm_after_second_poll_kib: scrape.hwm_after_second_poll_kib,
        rss_end_kib: scrape.rss_end_kib,
        exporter_ready: scrape.ready,
    })
}

/// The Celigo source as a production config would build it, pointed at the simulator.
fn celigo_source(base: &Url) -> anyhow::Result<CeligoSource> {
    let mut config = SourceConfig::new(
        "bench",
        Provider::Celigo,
        base.clone(),
        SecretString::from(TOKEN.to_string()),
    );
    config.page_size = Some(PAGE_SIZE);
    config.max_pages = 10_000;
    config.max_body_bytes = 256 * 1024 * 1024;
    config.request_timeout = REQUEST_TIMEOUT;
    CeligoSource::new(config).context("build the Celigo source")
}

/// The first page exactly as the Celigo source asks for it.
fn baseline_url(base: &Url) -> Url {
    let mut url = base.join("v1/agents").unwrap();
    url.query_pairs_mut()
        .append_pair("include", INCLUDE)
        .append_pair("limit", &PAGE_SIZE.to_string());
    url
}

/// The minimal client: fetch every page, following `rel="next"`, reading the bytes and nothing more. Returns the
/// time taken, the body bytes and the requests made.
/// With `keep`, the pages' URLs and bodies are kept there too (for the in-process decode).
async fn fetch_all_pages(
    client: &reqwest::Client,
    first: &Url,
    mut keep: Option<&mut Vec<(Url, Vec<u8>)>>,
) -> anyhow::Result<(f64, u64, u64)> {
    let started = Instant::now();
    let mut next = Some(first.clone());
    let (mut bytes, mut requests) = (0u64, 0u64);
    while let Some(url) = next.take() {
        requests += 1;
        if requests > 10_000 {
            bail!("the simulator sent more than 10,000 pages");
        }
        let response = client
            .get(url.clone())
            .bearer_auth(TOKEN)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            break;
        }
        if !status.is_success() {
            bail!("GET {url}: status {status}");
        }
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("GET {url}"))?;
        bytes += body.len() as u64;
        next = next_link(&headers, &url).map_err(|e| anyhow!("GET {url}: {e}"))?;
        if let Some(keep) = keep.as_deref_mut() {
            keep.push((url, body.to_vec()));
        }
    }
    Ok((started.elapsed().as_secs_f64(), bytes, requests))
}

/// Gzips the way the server does (level 1).
fn gzip_fast(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(data)?;
    enc.finish()
}

/// What the exporter process did under scrapes.
struct ScrapeFigures {
    ready: f64,
    plain: Vec<f64>,
    gzip: Vec<f64>,
    /// Exporter CPU per scrape (all its threads), seconds.
    plain_cpu: f64,
    gzip_cpu: f64,
    plain_bytes: usize,
    gzip_bytes: usize,
    overlapped: bool,
    hwm_after_scrapes_kib: u64,
    hwm_after_second_poll_kib: Option<u64>,
    rss_end_kib: u64,
}

async fn exporter_scrapes(
    client: &reqwest::Client,
    exporter: &Exporter,
) -> anyhow::Result<ScrapeFigures> {
    let pid = exporter.child.pid();
    let metrics_url = format!("http://{}/metrics", exporter.addr);
    let openmetrics = "application/openmetrics-text; version=1.0.0";

    // Ready means the first poll has been published.
    let ready_deadline = Instant::now() + START_TIMEOUT;
    loop {
        let ok = client
            .get(format!("http://{}/readyz", exporter.addr))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        if Instant::now() > ready_deadline {
            bail!("the exporter did not become ready in time");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = exporter.started.elapsed().as_secs_f64();

    let scrape = |gzip: bool| {
        let request = client
            .get(&metrics_url)
            .header(header::ACCEPT, openmetrics)
            .header(
                header::ACCEPT_ENCODING,
                if gzip { "gzip" } else { "identity" },
            );
        async move {
            let started = Instant::now();
            let response = request.send().await.context("scrape /metrics")?;
            if !response.status().is_success() {
                bail!("/metrics answered {}", response.status());
            }
            let compressed = response.headers().get(header::CONTENT_ENCODING).is_some();
            if compressed != gzip {
                bail!("/metrics answered gzip={compressed}, asked gzip={gzip}");
            }
            let body = response.bytes().await.context("read /metrics")?;
            Ok::<_, anyhow::Error>((started.elapsed().as_secs_f64(), body))
        }
    };

    let (_, body) = scrape(false).await?;
    let first_success = last_success(&body);
    let (_, _) = scrape(true).await?;
    let mut plain = Vec::with_capacity(RENDERS);
    let mut plain_bytes = 0;
    let mut overlapped = false;
    let before = Cpu::process(pid);
    for _ in 0..RENDERS {
        let (took, body) = scrape(false).await?;
        plain.push(took);
        plain_bytes = body.len();
        overlapped |= last_success(&body) != first_success;
    }
    let plain_cpu = Cpu::process(pid).since(before).on_cpu / RENDERS as f64;
    let mut gzip = Vec::with_capacity(RENDERS);
    let mut gzip_bytes = 0;
    let before = Cpu::process(pid);
    for _ in 0..RENDERS {
        let (took, body) = scrape(true).await?;
        gzip.push(took);
        gzip_bytes = body.len();
    }
    let gzip_cpu = Cpu::process(pid).since(before).on_cpu / RENDERS as f64;
    let (_, body) = scrape(false).await?;
    overlapped |= last_success(&body) != first_success;
    let hwm_after_scrapes_kib = proc_status_kib(pid, "VmHWM")?;

    // The second poll: the old snapshot is still served while the new one is built, so this is the true peak.
    let second_deadline = exporter.started + Duration::from_secs_f64(ready) + 2 * exporter.interval;
    let mut second = None;
    let mut seen = last_success(&body);
    while Instant::now() < second_deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, body) = scrape(true).await?;
        let text = gunzip(&body)?;
        seen = last_success(&text);
        if seen != first_success {
            second = Some(proc_status_kib(pid, "VmHWM")?);
            break;
        }
    }
    if second.is_none() {
        eprintln!(
            "bench: the exporter's second poll did not finish in time (last success {seen:?})"
        );
    }
    Ok(ScrapeFigures {
        ready,
        plain,
        gzip,
        plain_cpu,
        gzip_cpu,
        plain_bytes,
        gzip_bytes,
        overlapped,
        hwm_after_scrapes_kib,
        hwm_after_second_poll_kib: second,
        rss_end_kib: proc_status_kib(pid, "VmRSS")?,
    })
}

/// The value of `onprem_agent_source_last_success_timestamp_seconds` in an exposition; it changes when a poll
/// finishes. The source families come after the agents, so the search starts from the end.
fn last_success(exposition: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(exposition).ok()?;
    let name = "\nonprem_agent_source_last_success_timestamp_seconds{";
    let at = text.rfind(name)?;
    let line = text[at + 1..].lines().next()?;
    line.rsplit(' ').next().map(str::to_string)
}

fn gunzip(data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(data), &mut out)
        .context("gunzip /metrics")?;
    Ok(out)
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`).
fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}

/// CPU time from `/proc/.../schedstat` (nanosecond resolution): time on a CPU and time runnable but waiting for one.
/// The waiting time is what other load on the machine costs us; the on-CPU time is what the work itself costs.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    on_cpu: f64,
    waiting: f64,
}

impl Cpu {
    /// The calling thread.
    fn thread() -> Cpu {
        Cpu::read(Path::new("/proc/thread-self/schedstat"))
    }

    /// Every thread of this process. On-CPU time comes from the process CPU clock, which also counts threads that
    /// have ended (the Celigo source decodes on a thread that lives only as long as one poll); the run-queue wait is
    /// summed over the threads alive now.
    fn process_self() -> Cpu {
        let clock = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        Cpu {
            on_cpu: clock.tv_sec as f64 + clock.tv_nsec as f64 / 1e9,
            ..Cpu::tasks(Path::new("/proc/self/task"))
        }
    }

    /// Every thread of process `pid`.
    fn process(pid: u32) -> Cpu {
        Cpu::tasks(&PathBuf::from(format!("/proc/{pid}/task")))
    }

    fn tasks(dir: &Path) -> Cpu {
        let mut total = Cpu::default();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let one = Cpu::read(&entry.path().join("schedstat"));
            total.on_cpu += one.on_cpu;
            total.waiting += one.waiting;
        }
        total
    }

    /// Zero when the file cannot be read (a thread that just ended, a kernel without schedstats).
    fn read(path: &Path) -> Cpu {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut fields = text
            .split_whitespace()
            .map(|f| f.parse::<f64>().unwrap_or(0.0) / 1e9);
        Cpu {
            on_cpu: fields.next().unwrap_or(0.0),
            waiting: fields.next().unwrap_or(0.0),
        }
    }

    /// The CPU used since `earlier`. Threads that ended in between are lost, so this can undercount a little.
    fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            on_cpu: (self.on_cpu - earlier.on_cpu).max(0.0),
            waiting: (self.waiting - earlier.waiting).max(0.0),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------------------------

/// Every child process still running, so that Ctrl-C and the overall deadline can kill them; a guard removes its
/// child when it is dropped.
static CHILDREN: Mutex<BTreeMap<u32, Arc<Mutex<Child>>>> = Mutex::new(BTreeMap::new());

fn kill_all_children() {
    let children = std::mem::take(&mut *CHILDREN.lock().unwrap_or_else(|p| p.into_inner()));
    for child in children.values() {
        let mut child = child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A child process, killed and reaped when dropped.
struct ChildGuard {
    child: Arc<Mutex<Child>>,
    pid: u32,
    what: &'static str,
}

impl ChildGuard {
    fn spawn(what: &'static str, command: &mut Command) -> anyhow::Result<ChildGuard> {
        let child = command
            .spawn()
            .with_context(|| format!("start the {what}"))?;
        let pid = child.id();
        let child = Arc::new(Mutex::new(child));
        CHILDREN
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, child.clone());
        Ok(ChildGuard { child, pid, what })
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    /// Fails if the process has exited, naming it and its status.
    fn check_alive(&self) -> anyhow::Result<()> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        match child.try_wait() {
            Ok(Some(status)) => bail!("the {} exited early: {status}", self.what),
            _ => Ok(()),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        CHILDREN
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.pid);
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Starts `simulate` on a free loopback port and returns it with its address, once it listens.
async fn start_simulator(agents: usize) -> anyhow::Result<(ChildGuard, SocketAddr)> {
    let guard = ChildGuard::spawn(
        "simulator",
        Command::new(EXE)
            .args(["--log-level", "warn", "simulate", "--listen", "127.0.0.1:0"])
            .args(["--agents", &agents.to_string()])
            .args(["--page-size", &PAGE_SIZE.to_string()])
            .env("ONPREM_AGENT_SIM_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let stdout = guard
        .child
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .stdout
        .take()
        .context("the simulator's stdout")?;
    // The first line names the address: `simulator: http://127.0.0.1:PORT/v1/agents (N agents)`.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = tokio::task::spawn_blocking(move || rx.recv_timeout(START_TIMEOUT))
        .await?
        .map_err(|_| anyhow!("the simulator did not print its address in time"))?;
    guard.check_alive()?;
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("cannot find the simulator's address in {line:?}"))?;
    Ok((guard, addr))
}

/// An exporter process with its config folder.
struct Exporter {
    child: ChildGuard,
    addr: SocketAddr,
    started: Instant,
    interval: Duration,
    _dir: TempDir,
}

/// Starts `run --config` against the simulator at `sim` and returns once it listens.
async fn start_exporter(sim: SocketAddr, interval: Duration) -> anyhow::Result<Exporter> {
    let dir = TempDir::new()?;
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n"))?;
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen_address: 127.0.0.1:0\n\
             sources:\n\
             \x20 - name: bench\n\
             \x20   provider: celigo\n\
             \x20   base_url: http://{sim}\n\
             \x20   token_file: token\n\
             \x20   poll_interval: {interval}\n\
             \x20   request_timeout: 15s\n\
             \x20   page_size: {PAGE_SIZE}\n\
             \x20   max_pages: 10000\n\
             \x20   max_body_bytes: 268435456\n",
            interval = humantime::format_duration(interval),
        ),
    )?;
    let log = dir.path().join("exporter.log");
    let started = Instant::now();
    let child = ChildGuard::spawn(
        "exporter",
        Command::new(EXE)
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info",
                "run",
                "--config",
            ])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?),
    )?;
    let deadline = started + START_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let addr = text.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "listening").then(|| v["addr"].as_str()?.parse().ok())?
        });
        if let Some(addr) = addr {
            return Ok(Exporter {
                child,
                addr,
                started,
                interval,
                _dir: dir,
            });
        }
        child
            .check_alive()
            .with_context(|| format!("exporter log:\n{text}"))?;
        if Instant::now() > deadline {
            bail!("the exporter did not start listening in time; log:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A temporary folder, removed when dropped.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        Ok(TempDir(
            tempfile::Builder::new()
                .prefix("onprem-agent-bench-")
                .tempdir()
                .context("create a temporary folder")?,
        ))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Figures and their printing
// ---------------------------------------------------------------------------------------------------------------

/// The machine the figures come from.
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory: String,
    kernel: String,
    rustc: String,
    exe: PathBuf,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
            .map_or("unknown".to_string(), |m| m.trim().to_string());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map_or("unknown".to_string(), |kib| {
                format!("{:.1} GiB", kib / 1024.0 / 1024.0)
            });
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or("unknown".to_string(), |k| k.trim().to_string());
        let rustc = Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map_or("unknown".to_string(), |v| v.trim().to_string());
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory,
            kernel,
            rustc,
            exe: PathBuf::from(EXE),
        }
    }

    fn print(&self) {
        println!(
            "machine: {} CPUs ({}), {} memory, Linux {}; {}",
            self.cpus, self.cpu_model, self.memory, self.kernel, self.rustc
        );
        println!("exporter and simulator binary: {}", self.exe.display());
    }
}

impl Figures {
    /// The figures of a poll-only run: everything but the baseline, the poll and the decode left empty.
    fn empty(
        agents: usize,
        stats: &onprem_agent_exporter::sources::PollStats,
        polled_agents: usize,
        baseline_bytes: u64,
        baseline_requests: u64,
    ) -> Figures {
        Figures {
            agents,
            poll_only: true,
            baseline: Vec::new(),
            baseline_bytes,
            baseline_requests,
            polls: Vec::new(),
            poll_requests: stats.requests,
            poll_bytes: stats.bytes,
            poll_pages: stats.pages,
            polled_agents,
            decode_per_record: f64::NAN,
            renders: Vec::new(),
            raw_bytes: 0,
            gzip_bytes: 0,
            gzip_time: f64::NAN,
            scrapes_plain: Vec::new(),
            scrapes_gzip: Vec::new(),
            scrape_plain_cpu: f64::NAN,
            scrape_gzip_cpu: f64::NAN,
            sim_cpu_baseline: f64::NAN,
            sim_cpu_poll: f64::NAN,
            client_cpu_baseline: f64::NAN,
            client_cpu_poll: f64::NAN,
            render_cpu: Vec::new(),
            render_wait: Vec::new(),
            http_plain_bytes: 0,
            http_gzip_bytes: 0,
            scrapes_overlapped_poll: false,
            hwm_after_scrapes_kib: 0,
            hwm_after_second_poll_kib: None,
            rss_end_kib: 0,
            exporter_ready: f64::NAN,
        }
    }

    fn ratio(&self) -> f64 {
        median(&self.polls) / median(&self.baseline)
    }

    fn peak_kib(&self) -> u64 {
        self.hwm_after_second_poll_kib
            .unwrap_or(self.hwm_after_scrapes_kib)
            .max(self.hwm_after_scrapes_kib)
    }

    fn judged(&self) -> bool {
        self.agents == TARGET_AGENTS
    }

    fn print(&self) {
        let judge = |met: bool| {
            if !self.judged() {
                String::new()
            } else if met {
                "  [target met]".to_string()
            } else {
                "  [target NOT met]".to_string()
            }
        };
        println!(
            "simulator alone   {} median of {} ({} to {}); {} requests, {}",
            ms(median(&self.baseline)),
            self.baseline.len(),
            ms(min(&self.baseline)),
            ms(max(&self.baseline)),
            self.baseline_requests,
            size(self.baseline_bytes as usize),
        );
        println!(
            "full poll         {} median of {} ({} to {}); {} requests, {} pages, {}, {} agents",
            ms(median(&self.polls)),
            self.polls.len(),
            ms(min(&self.polls)),
            ms(max(&self.polls)),
            self.poll_requests,
            self.poll_pages,
            size(self.poll_bytes as usize),
            self.polled_agents,
        );
        println!(
            "poll / baseline   {:.2}x (target <= {TARGET_POLL_RATIO}x){}",
            self.ratio(),
            judge(self.ratio() <= TARGET_POLL_RATIO)
        );
        println!(
            "CPU (medians)     simulator {} serving the baseline, {} serving the poll; client {} for the baseline, \
             {} for the poll",
            ms(self.sim_cpu_baseline),
            ms(self.sim_cpu_poll),
            ms(self.client_cpu_baseline),
            ms(self.client_cpu_poll),
        );
        println!(
            "decode in process {:.3} µs of CPU per record (median of the runs)",
            self.decode_per_record * 1e6
        );
        if self.poll_only {
            return;
        }
        println!(
            "render in process p50 {}, p99 {} over {} (target p99 <= {TARGET_RENDER_MS} ms){}",
            ms(percentile(&self.renders, 0.50)),
            ms(percentile(&self.renders, 0.99)),
            self.renders.len(),
            judge(percentile(&self.renders, 0.99) * 1000.0 <= TARGET_RENDER_MS)
        );
        println!(
            "  of which CPU    p50 {}, p99 {}; waiting for a CPU p50 {}, p99 {}",
            ms(percentile(&self.render_cpu, 0.50)),
            ms(percentile(&self.render_cpu, 0.99)),
            ms(percentile(&self.render_wait, 0.50)),
            ms(percentile(&self.render_wait, 0.99)),
        );
        println!(
            "HTTP scrape       plain p50 {}, p99 {}; gzip p50 {}, p99 {}; {} each; exporter CPU per scrape {} \
             plain, {} gzip{}",
            ms(percentile(&self.scrapes_plain, 0.50)),
            ms(percentile(&self.scrapes_plain, 0.99)),
            ms(percentile(&self.scrapes_gzip, 0.50)),
            ms(percentile(&self.scrapes_gzip, 0.99)),
            self.scrapes_plain.len(),
            ms(self.scrape_plain_cpu),
            ms(self.scrape_gzip_cpu),
            if self.scrapes_overlapped_poll {
                " (a poll finished during the scrapes)"
            } else {
                ""
            }
        );
        println!(
            "exposition        {} raw, {} gzipped (level 1, {} to compress; {} and {} over HTTP)",
            size(self.raw_bytes),
            size(self.gzip_bytes),
            ms(self.gzip_time),
            size(self.http_plain_bytes),
            size(self.http_gzip_bytes),
        );
        println!(
            "exporter RSS      peak {} (after the first poll and {} scrapes {}{}); {} at the end; ready after {} \
             (target peak <= {TARGET_RSS_MIB} MiB){}",
            mib(self.peak_kib()),
            2 * RENDERS + 3,
            mib(self.hwm_after_scrapes_kib),
            match self.hwm_after_second_poll_kib {
                Some(k) => format!(", after the second poll {}", mib(k)),
                None => ", second poll not seen".to_string(),
            },
            mib(self.rss_end_kib),
            secs(self.exporter_ready),
            judge(self.peak_kib() as f64 / 1024.0 <= TARGET_RSS_MIB)
        );
    }
}

/// The table for BENCHMARKS.md: one column per size, targets in the last column.
fn print_summary(all: &[Figures]) {
    println!("summary (Markdown):");
    println!();
    let mut header = "| |".to_string();
    let mut rule = "|---|".to_string();
    for f in all {
        header.push_str(&format!(" {} agents |", thousands(f.agents)));
        rule.push_str("---:|");
    }
    header.push_str(&format!(" target at {} |", thousands(TARGET_AGENTS)));
    rule.push_str("---|");
    println!("{header}");
    println!("{rule}");
    let judged = all.iter().find(|f| f.judged());
    let verdict = |ok: Option<bool>, target: &str| match ok {
        Some(true) => format!("{target}: **met**"),
        Some(false) => format!("{target}: **not met**"),
        None => target.to_string(),
    };
    type Cell = fn(&Figures) -> String;
    let rows: Vec<(&str, Cell, String)> = vec![
        (
            "simulator alone (median)",
            |f| ms(median(&f.baseline)),
            String::new(),
        ),
        (
            "full poll (median)",
            |f| ms(median(&f.polls)),
            String::new(),
        ),
        (
            "poll / simulator alone",
            |f| format!("{:.2}×", f.ratio()),
            verdict(
                judged.map(|f| f.ratio() <= TARGET_POLL_RATIO),
                &format!("≤ {TARGET_POLL_RATIO}×"),
            ),
        ),
        (
            "CPU: simulator serving the baseline / the poll",
            |f| format!("{} / {}", ms(f.sim_cpu_baseline), ms(f.sim_cpu_poll)),
            String::new(),
        ),
        (
            "CPU: client for the baseline / the poll",
            |f| format!("{} / {}", ms(f.client_cpu_baseline), ms(f.client_cpu_poll)),
            String::new(),
        ),
        (
            "requests / pages per poll",
            |f| format!("{} / {}", f.poll_requests, f.poll_pages),
            String::new(),
        ),
        (
            "bytes per poll",
            |f| size(f.poll_bytes as usize),
            String::new(),
        ),
        (
            "render p50 / p99 (in process)",
            |f| {
                format!(
                    "{} / {}",
                    ms(percentile(&f.renders, 0.5)),
                    ms(percentile(&f.renders, 0.99))
                )
            },
            verdict(
                judged.map(|f| percentile(&f.renders, 0.99) * 1000.0 <= TARGET_RENDER_MS),
                &format!("p99 ≤ {TARGET_RENDER_MS} ms"),
            ),
        ),
        (
            "render on-CPU p50 / p99",
            |f| {
                format!(
                    "{} / {}",
                    ms(percentile(&f.render_cpu, 0.5)),
                    ms(percentile(&f.render_cpu, 0.99))
                )
            },
            String::new(),
        ),
        (
            "HTTP scrape p50 / p99, plain",
            |f| {
                format!(
                    "{} / {}",
                    ms(percentile(&f.scrapes_plain, 0.5)),
                    ms(percentile(&f.scrapes_plain, 0.99))
                )
            },
            String::new(),
        ),
        (
            "HTTP scrape p50 / p99, gzip",
            |f| {
                format!(
                    "{} / {}",
                    ms(percentile(&f.scrapes_gzip, 0.5)),
                    ms(percentile(&f.scrapes_gzip, 0.99))
                )
            },
            String::new(),
        ),
        (
            "exporter CPU per scrape, plain / gzip",
            |f| format!("{} / {}", ms(f.scrape_plain_cpu), ms(f.scrape_gzip_cpu)),
            String::new(),
        ),
        ("exposition, raw", |f| size(f.raw_bytes), String::new()),
        (
            "exposition, gzip (level 1)",
            |f| size(f.gzip_bytes),
            String::new(),
        ),
        (
            "exporter peak RSS (VmHWM)",
            |f| mib(f.peak_kib()),
            verdict(
                judged.map(|f| f.peak_kib() as f64 / 1024.0 <= TARGET_RSS_MIB),
                &format!("≤ {TARGET_RSS_MIB} MiB"),
            ),
        ),
    ];
    // A poll-only run has the first rows and the decode, nothing after.
    let poll_rows = 7;
    let poll_only = all.iter().any(|f| f.poll_only);
    let decode_row: (&str, Cell, String) = (
        "decode in process, CPU per record",
        |f| format!("{:.3} µs", f.decode_per_record * 1e6),
        String::new(),
    );
    let mut rows = rows;
    rows.insert(poll_rows, decode_row);
    if poll_only {
        rows.truncate(poll_rows + 1);
    }
    for (name, cell, target) in rows {
        let mut line = format!("| {name} |");
        for f in all {
            line.push_str(&format!(" {} |", cell(f)));
        }
        line.push_str(&format!(" {target} |"));
        println!("{line}");
    }
}

/// The median on-CPU time of a set of CPU readings, seconds.
fn median_cpu(used: &[Cpu]) -> f64 {
    median(&used.iter().map(|c| c.on_cpu).collect::<Vec<_>>())
}

fn median(xs: &[f64]) -> f64 {
    percentile(xs, 0.5)
}

/// The nearest-rank percentile: the smallest sample with at least `p` of the samples at or below it.
fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn ms(seconds: f64) -> String {
    let ms = seconds * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn secs(seconds: f64) -> String {
    format!("{seconds:.2} s")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn size(bytes: usize) -> String {
    let b = bytes as f64;
    if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{:.2} MiB", b / 1024.0 / 1024.0)
    }
}

fn thousands(n: usize) -> String {
    if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
