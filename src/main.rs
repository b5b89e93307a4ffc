//! The `onprem-agent-exporter` command: parses the command line and calls into the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use onprem_agent_exporter::config::{Config, placeholders};
use onprem_agent_exporter::metrics::Format;
use onprem_agent_exporter::report::ReportFormat;
use onprem_agent_exporter::shard::Shard;
use onprem_agent_exporter::telemetry::{self, LogFormat};
use onprem_agent_exporter::web::listener::Limits;
use onprem_agent_exporter::web::{Web, WebConfig};
use onprem_agent_exporter::{app, metrics};
use tokio::sync::watch;

/// Prometheus exporter and alerting sidecar for the on-premise agents of data-integration platforms
/// (Celigo integrator.io, Planasonix, Calyptia).
///
/// It polls each configured account's agent list, keeps the latest snapshot in memory and serves per-agent
/// gauges (heartbeat age, offline state, version, token age) on /metrics.
///
/// Start with `demo` to see it work against the built-in simulator, then write a config (see
/// examples/config.yaml), check it with `check-config` and run it with `run`.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    long_about,
    propagate_version = true,
    after_long_help = "Examples:\n  \
        onprem-agent-exporter demo                                    # see it work, no account needed\n  \
        onprem-agent-exporter check-config /etc/onprem-agent-exporter/config.yaml\n  \
        onprem-agent-exporter run --config /etc/onprem-agent-exporter/config.yaml\n  \
        onprem-agent-exporter once --config config.yaml --format text  # one poll, exposition on stdout\n  \
        onprem-agent-exporter test-email --config config.yaml --to me@example.com\n  \
        onprem-agent-exporter test-notify --config config.yaml --receiver ops-chat\n  \
        onprem-agent-exporter report --config config.yaml --format csv > tokens.csv\n\n\
        API tokens and SMTP passwords are read from files or environment variables named in the config, \
        never from the command line. Documentation: README.md and CONFIGURATION.md."
)]
struct Cli {
    /// Log level: error, warn, info, debug or trace. Overrides RUST_LOG.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the exporter: poll every source and serve /metrics until SIGTERM or SIGINT.
    Run {
        /// The YAML config file.
        #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        web: WebArgs,
        /// Poll, serve and alert on only the sources whose name hashes to INDEX modulo TOTAL (FNV-1a 64 of the
        /// name; see CONFIGURATION.md), so TOTAL replicas split the accounts. A StatefulSet passes its ordinal.
        #[arg(long, env = onprem_agent_exporter::shard::SHARD_ENV, value_name = "INDEX/TOTAL")]
        shard: Option<Shard>,
    },
    /// Validate a config file (syntax, keys, values, token files) and exit: 0 if valid, 1 with the error if not.
    CheckConfig {
        /// The YAML config file (or give it with --config, as the other subcommands take it).
        #[arg(
            value_name = "FILE",
            required_unless_present = "config",
            conflicts_with = "config"
        )]
        file: Option<PathBuf>,
        /// The YAML config file, as `run --config` takes it.
        #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Also validate this web config file (TLS, basic auth, headers), as `run` would load it.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
        /// The highest bcrypt cost accepted in the web config's basic_auth_users, as `run` takes it.
        #[arg(long = "web.bcrypt-max-cost", default_value_t = onprem_agent_exporter::web::config::DEFAULT_MAX_BCRYPT_COST, value_parser = clap::value_parser!(u32).range(4..=31))]
        bcrypt_max_cost: u32,
        /// List the sources this shard (INDEX/TOTAL) owns.
        #[arg(long, env = onprem_agent_exporter::shard::SHARD_ENV, value_name = "INDEX/TOTAL")]
        shard: Option<Shard>,
    },
    /// Poll every source once, print the exposition to stdout, and exit non-zero if any source failed.
    Once {
        /// The YAML config file.
        #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
        config: PathBuf,
        /// Exposition format.
        #[arg(long, value_enum, default_value_t = OnceFormat::Openmetrics)]
        format: OnceFormat,
    },
    /// Start Celigo, Planasonix and Calyptia simulators and the exporter together, with no config and no account,
    /// and print the URLs to open.
    Demo {
        /// Where the exporter listens; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:9877")]
        listen: SocketAddr,
        /// Agents in each simulated fleet, 1 to 100000.
        #[arg(long, default_value_t = 25, value_parser = parse_agents)]
        agents: usize,
        /// Time between polls of the simulator; from 1s to 1d.
        #[arg(long, default_value = "10s", value_parser = parse_poll_interval)]
        poll_interval: std::time::Duration,
        /// Folder the demo's alert emails are written to, one .eml file each.
        #[arg(long, default_value = "demo-outbox")]
        outbox: PathBuf,
    },
    /// Serve a vendor's agents API from a simulated fleet, for trying configs and proxies: integrator.io
    /// (`GET /v1/agents`), Planasonix (`GET /api/agents` and `/api/agents/{id}/health`) or Calyptia Cloud
    /// (`GET /v1/projects/{id}/agents`).
    ///
    /// The API key it accepts is read from ONPREM_AGENT_SIM_TOKEN (default `sim-api-token`). For Calyptia a key that
    /// is not already a project token is wrapped into one, which is printed so a config can use it. On start it
    /// prints a `sources:` entry ready to paste into a config.
    ///
    /// Faults at run time: `GET /_sim/control` shows the knobs and counters, `PUT /_sim/control` changes them, with
    /// the API's credentials and a JSON body whose keys are all optional: `status` (answer every API request with
    /// this HTTP status; `null` lifts it), `agents` (show the first N), `latency_ms`, `rate_limit_every` (N or
    /// `null`: every Nth request gets 429), `retry_after_secs` (of those 429s), `fail_every` (N or `null`: every
    /// Nth request gets 500). For example:
    ///
    ///   curl -X PUT -H 'Authorization: Bearer sim-api-token' -d '{"status":500}' http://127.0.0.1:18089/_sim/control
    Simulate {
        /// Which vendor's API to serve.
        #[arg(long, value_enum, default_value_t = ProviderArg::Celigo)]
        provider: ProviderArg,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:18089")]
        listen: SocketAddr,
        /// Agents in the fleet, 0 to 100000 (0 serves an empty list).
        #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(0..=100_000))]
        agents: u32,
        /// Records per page when the client sends no `limit`, 1 to 10000.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        page_size: u32,
        /// Ignore `include`/`exclude` and send full records, with their fake `accessToken`s.
        #[arg(long)]
        no_projection: bool,
        /// The fleet's seed; the same seed gives the same agents.
        #[arg(long, default_value_t = onprem_agent_exporter::sim::DEFAULT_SEED)]
        seed: u64,
        /// Answer every Nth request with 429 and a Retry-After (N at least 1).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        rate_limit_every: Option<u32>,
        /// Answer every Nth request with 500 (N at least 1).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        fail_every: Option<u32>,
        /// Delay every response by this long; at most 10m.
        #[arg(long, default_value = "0s", value_parser = parse_latency)]
        latency: std::time::Duration,
    },
    /// Send a test email through `alerting.email` and report exactly which step failed (dns, connect, tls,
    /// greeting, starttls, auth, sender, recipient, data).
    TestEmail {
        /// The YAML config file.
        #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
        config: PathBuf,
        /// Send to this address instead of `alerting.email.to`.
        #[arg(long, value_name = "ADDR")]
        to: Option<String>,
    },
    /// Send a test notice to one of `alerting.receivers` (Slack, Teams, PagerDuty, webhook) and report which step
    /// failed (connect, request, response). PagerDuty gets a trigger and then a resolve, so no incident stays open.
    TestNotify {
        /// The YAML config file.
        #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
        config: PathBuf,
        /// The receiver's name, as in `alerting.receivers[].name`.
        #[arg(long, value_name = "NAME")]
        receiver: String,
    },
    /// Poll every source once and print the token-age compliance report; `--send` mails it now.
    ///
    /// Thresholds come from `reports.token_compliance` (default: overdue after 90 days, due 14 days before).
    Report {
        /// The YAML config file.
        #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Also mail the report now, to `reports.token_compliance.to` (or `alerting.email.to`).
        #[arg(long)]
        send: bool,
    },
    /// Exit 0 if the exporter at URL answers its health check, 1 otherwise (for container HEALTHCHECKs).
    Healthcheck {
        /// The health endpoint to ask: a URL, or HOST:PORT for http://HOST:PORT/healthz. With TLS on, use an
        /// https:// URL and --ca-file (or --insecure-skip-verify for a check over loopback).
        #[arg(
            long,
            env = "ONPREM_AGENT_EXPORTER_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:9877/healthz"
        )]
        url: String,
        /// Verify the exporter's certificate against this PEM CA bundle (instead of the system's roots).
        #[arg(
            long,
            env = "ONPREM_AGENT_EXPORTER_HEALTHCHECK_CA_FILE",
            value_name = "FILE"
        )]
        ca_file: Option<PathBuf>,
        /// Accept any certificate. Meant only for a container checking itself over loopback, where there is
        /// nobody in between to impersonate it; /healthz carries no data and needs no credentials.
        #[arg(long, env = "ONPREM_AGENT_EXPORTER_HEALTHCHECK_INSECURE_SKIP_VERIFY")]
        insecure_skip_verify: bool,
        /// Give up after this long; from 100ms to 10m.
        #[arg(long, default_value = "5s", value_parser = parse_healthcheck_timeout)]
        timeout: std::time::Duration,
    },
}

/// How `run` exposes its HTTP server.
#[derive(Debug, clap::Args)]
struct WebArgs {
    /// A web config file in the format Prometheus, Alertmanager and node_exporter read: TLS
    /// (tls_server_config), basic auth (basic_auth_users, bcrypt hashes) and response headers
    /// (http_server_config.headers). Without it the server speaks plain HTTP with no credentials. Certificate
    /// files are re-read when they change; the web config itself is read at start.
    #[arg(
        long = "web.config.file",
        env = "ONPREM_AGENT_EXPORTER_WEB_CONFIG",
        value_name = "FILE"
    )]
    web_config_file: Option<PathBuf>,
    /// The most HTTP connections open at once; more wait in the kernel's backlog. Keep it below the open-file
    /// limit (the systemd unit sets LimitNOFILE=8192).
    #[arg(long = "web.max-connections", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// How long a client may take to send a request's headers (and the TLS handshake); idle keep-alive
    /// connections are closed after it too. At least 100ms.
    #[arg(long = "web.header-timeout", default_value = "10s", value_parser = parse_header_timeout)]
    header_timeout: std::time::Duration,
    /// The most connections open at once from one client address; further ones are closed at once, so that one
    /// address cannot fill --web.max-connections and lock others out. Keep it below --web.max-connections.
    #[arg(long = "web.max-connections-per-address", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections_per_address: u32,
    /// The highest bcrypt cost accepted in basic_auth_users. Each step doubles the time of a first login (cost 16
    /// takes seconds of CPU); a hash above it is refused at start with the user named.
    #[arg(long = "web.bcrypt-max-cost", default_value_t = onprem_agent_exporter::web::config::DEFAULT_MAX_BCRYPT_COST, value_parser = clap::value_parser!(u32).range(4..=31))]
    bcrypt_max_cost: u32,
    /// Allow POST and DELETE on /api/v1/silences, which mute and unmute alerts. Without it they answer 403. Set
    /// basic_auth_users in --web.config.file too, or anyone who reaches the port can silence every alert.
    #[arg(long = "web.enable-admin-api")]
    enable_admin_api: bool,
}

impl WebArgs {
    /// Loads the web config (if any) and builds the TLS state, naming the file in every error.
    fn load(&self) -> anyhow::Result<Web> {
        let config = match &self.web_config_file {
            Some(path) => WebConfig::load_with(path, self.bcrypt_max_cost)?,
            None => WebConfig::default(),
        };
        Ok(Web::new(config, self.limits())?.with_admin_api(self.enable_admin_api))
    }

    fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections as usize,
            max_connections_per_address: self.max_connections_per_address as usize,
            header_read_timeout: self.header_timeout,
            ..Limits::default()
        }
    }
}

fn parse_header_timeout(s: &str) -> Result<std::time::Duration, String> {
    parse_bounded(s, "100ms", "1h")
}

/// A duration flag between `min` and `max` (both humantime strings), so that no value on the command line can make
/// a timer panic (a zero period) or overflow an `Instant` (an absurd one). The message names both bounds.
fn parse_bounded(s: &str, min: &str, max: &str) -> Result<std::time::Duration, String> {
    let bound = |b: &str| humantime::parse_duration(b).expect("the bounds are valid durations");
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}; expected a duration from {min} to {max}, e.g. 10s or 2m"))?;
    if d < bound(min) || d > bound(max) {
        return Err(format!("must be from {min} to {max}"));
    }
    Ok(d)
}

fn parse_poll_interval(s: &str) -> Result<std::time::Duration, String> {
    parse_bounded(s, "1s", "1d")
}

fn parse_latency(s: &str) -> Result<std::time::Duration, String> {
    parse_bounded(s, "0s", "10m")
}

fn parse_healthcheck_timeout(s: &str) -> Result<std::time::Duration, String> {
    parse_bounded(s, "100ms", "10m")
}

/// `demo --agents`: at least one agent, at most 100,000 per fleet (three fleets live in one process).
fn parse_agents(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 100000".to_string()),
    }
}

/// A provider on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProviderArg {
    Celigo,
    Planasonix,
    Calyptia,
}

impl From<ProviderArg> for onprem_agent_exporter::model::Provider {
    fn from(p: ProviderArg) -> Self {
        use onprem_agent_exporter::model::Provider;
        match p {
            ProviderArg::Celigo => Provider::Celigo,
            ProviderArg::Planasonix => Provider::Planasonix,
            ProviderArg::Calyptia => Provider::Calyptia,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OnceFormat {
    /// OpenMetrics 1.0, as Prometheus scrapes it.
    Openmetrics,
    /// The classic Prometheus text format (what `promtool check metrics` reads).
    Text,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = telemetry::init(cli.log_level.as_deref(), cli.log_format) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            report_fatal(&e, cli.log_format);
            ExitCode::FAILURE
        }
    }
}

/// Says a fatal error once: its cause chain without repeats and, for the common ones, what to do. As one JSON
/// object with `--log-format json` (so the stream stays parseable), else as one `error: …` line.
fn report_fatal(e: &anyhow::Error, format: LogFormat) {
    let chain = telemetry::error_chain(e.as_ref());
    let hint = telemetry::hint(e.as_ref());
    match format {
        LogFormat::Json => match hint {
            Some(hint) => tracing::error!(error = %chain, hint, "exiting"),
            None => tracing::error!(error = %chain, "exiting"),
        },
        LogFormat::Text => match hint {
            Some(hint) => eprintln!("error: {chain} (hint: {hint})"),
            None => eprintln!("error: {chain}"),
        },
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config, web, shard } => {
            let mut config = Config::load(&config)?;
            config.shard = shard.unwrap_or_default();
            let web = web.load()?;
            let listener = app::bind(config.listen_address).await?;
            tracing::info!(
                config = %config.path.display(),
                sources = app::owned_sources(&config).len(),
                shard = %config.shard,
                "starting"
            );
            app::run(&config, &web, listener, shutdown_signal()).await?;
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig {
            file,
            config,
            web_config_file,
            bcrypt_max_cost,
            shard,
        } => {
            let file = file.or(config).expect("clap requires FILE or --config");
            let mut config = Config::load(&file)?;
            // A placeholder from the examples is valid but not ready for production: a warning on stderr naming
            // the file and key (never the value), and the exit code stays 0.
            let warn = |path: &std::path::Path, found: Vec<placeholders::Placeholder>| {
                for p in found {
                    tracing::warn!(file = %path.display(), "{p}");
                }
            };
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            warn(&file, placeholders::in_config(&config, &text));
            if let Some(web) = &web_config_file {
                let web_config = WebConfig::load_with(web, bcrypt_max_cost)?;
                warn(web, placeholders::in_web_users(&web_config.users.0));
                Web::new(web_config, Limits::default())?;
                println!("{}: OK", web.display());
            }
            // Building the sources catches what only a client can check (a Calyptia token without a project id),
            // so that check-config fails exactly where run would.
            app::Exporter::new(&config.sources)?;
            println!(
                "{}: OK ({} source{}, listening on {})",
                file.display(),
                config.sources.len(),
                if config.sources.len() == 1 { "" } else { "s" },
                config.listen_address
            );
            if let Some(shard) = shard {
                config.shard = shard;
                let owned = app::owned_sources(&config);
                println!(
                    "shard {shard} owns {} of {} sources:",
                    owned.len(),
                    config.sources.len()
                );
                for s in owned {
                    println!("  {}", s.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Once { config, format } => {
            let config = Config::load(&config)?;
            let exporter = app::Exporter::new(&config.sources)?;
            let failures = exporter.poll_all_once().await;
            let format = match format {
                OnceFormat::Openmetrics => Format::OpenMetrics,
                OnceFormat::Text => Format::Text,
            };
            let text = metrics::Exposition::new(exporter.registry.clone()).render(format);
            print!("{text}");
            // The poller already logged each failure with its cause chain; one summary line, not a second copy.
            if !failures.is_empty() {
                eprintln!("{}", failed_sources(&failures, ""));
            }
            Ok(if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Demo {
            listen,
            agents,
            poll_interval,
            outbox,
        } => {
            let opts = onprem_agent_exporter::demo::DemoOptions {
                listen,
                agents,
                poll_interval,
                outbox,
            };
            onprem_agent_exporter::demo::run(opts, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            provider,
            listen,
            agents,
            page_size,
            no_projection,
            seed,
            rate_limit_every,
            fail_every,
            latency,
        } => {
            use onprem_agent_exporter::sim::{DEFAULT_TOKEN, Faults, SimOptions, Simulator};
            let token = std::env::var("ONPREM_AGENT_SIM_TOKEN")
                .unwrap_or_else(|_| DEFAULT_TOKEN.to_string());
            let (agents, page_size) = (agents as usize, page_size as usize);
            let sim = Simulator::new(SimOptions {
                provider: provider.into(),
                agents,
                page_size,
                token: token.clone(),
                honour_projection: !no_projection,
                seed,
                faults: Faults {
                    rate_limit_every,
                    fail_every,
                    latency,
                    ..Faults::default()
                },
            });
            let listener = app::bind(listen).await?;
            let addr = listener.local_addr()?;
            println!(
                "simulator: http://{addr}{} ({agents} {} agents)",
                sim.list_path(),
                sim.provider()
            );
            if sim.provider() == onprem_agent_exporter::model::Provider::Calyptia
                && sim.api_token() != token
            {
                // A fake credential for a local simulator; printed because the operator cannot derive it by hand.
                println!("project token: {}", sim.api_token());
            }
            // A fake credential of a local simulator, so the snippet may carry the variable's value in a comment.
            print!(
                "config snippet (token in a file: echo {} > sim-token):\n\
                 sources:\n  - name: sim-{}\n    provider: {}\n    base_url: http://{addr}\n    \
                 token_file: sim-token\n",
                sim.api_token(),
                sim.provider(),
                sim.provider()
            );
            let mut stop = shutdown_signal();
            sim.serve(listener, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::TestEmail { config, to } => {
            let config = Config::load(&config)?;
            let Some(email) = config.alerting.as_ref().and_then(|a| a.email.as_ref()) else {
                anyhow::bail!(
                    "{}: there is no alerting.email section to test",
                    config.path.display()
                );
            };
            match onprem_agent_exporter::notify::email::test_email(email, to.as_deref()).await {
                Ok(()) => {
                    println!("test email accepted by {}", email.smtp.host);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("test email failed: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::TestNotify { config, receiver } => {
            let config = Config::load(&config)?;
            let receivers = config
                .alerting
                .as_ref()
                .map(|a| a.receivers.as_slice())
                .unwrap_or_default();
            match onprem_agent_exporter::notify::dispatch::test_notify(receivers, &receiver).await {
                Ok(()) => {
                    println!("test notice accepted by receiver {receiver}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!(
                        "test notice failed: {}",
                        onprem_agent_exporter::telemetry::error_chain(&e)
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Report {
            config,
            format,
            send,
        } => {
            use onprem_agent_exporter::report;
            let config = Config::load(&config)?;
            let exporter = app::Exporter::new(&config.sources)?;
            let failures = exporter.poll_all_once().await;
            if !failures.is_empty() {
                eprintln!(
                    "{}",
                    failed_sources(&failures, "; the report lists none of their agents")
                );
            }
            let r = report::build(
                &exporter.registry.snapshot(),
                config.reports.policy(),
                jiff::Timestamp::now(),
            );
            print!("{}", report::render(format, &r));
            if send {
                let Some(email) = config.alerting.as_ref().and_then(|a| a.email.as_ref()) else {
                    anyhow::bail!(
                        "{}: --send needs an alerting.email section",
                        config.path.display()
                    );
                };
                let to = match &config.reports.token_compliance {
                    Some(tc) => tc.to.clone(),
                    None => email.to.clone(),
                };
                report::send_now(&r, &to, email)
                    .await
                    .context("cannot send the report")?;
                eprintln!(
                    "report sent to {}",
                    to.iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Healthcheck {
            url,
            timeout,
            ca_file,
            insecure_skip_verify,
        } => {
            let url = if url.contains("://") {
                url
            } else {
                format!("http://{url}/healthz")
            };
            let mut client = reqwest::Client::builder().timeout(timeout);
            if let Some(ca) = &ca_file {
                let pem = std::fs::read(ca)
                    .with_context(|| format!("cannot read the CA file {}", ca.display()))?;
                let cert = reqwest::Certificate::from_pem(&pem)
                    .with_context(|| format!("{}: not a PEM certificate", ca.display()))?;
                client = client.tls_certs_only([cert]);
            }
            if insecure_skip_verify {
                client = client.tls_danger_accept_invalid_certs(true);
            }
            let client = client.build().context("cannot build the HTTP client")?;
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => {
                    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                        println!("ok");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Ok(r) => {
                    eprintln!("unhealthy: {url} answered {}", r.status());
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => {
                    // reqwest's own message is "error sending request"; the cause says why (refused, TLS, …).
                    eprintln!("unhealthy: {url}: {}", telemetry::error_chain(&e));
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// One line naming the sources whose poll failed (each failure's cause is in its own log line above), then `tail`.
fn failed_sources<E>(failures: &[(String, E)], tail: &str) -> String {
    let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
    format!(
        "{} of the sources failed ({}){tail}; see the warnings above for why",
        names.len(),
        names.join(", ")
    )
}

/// A receiver that turns true on SIGINT or SIGTERM.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received; shutting down"),
            _ = term => tracing::info!("SIGTERM received; shutting down"),
        }
        let _ = tx.send(true);
    });
    rx
}
