//! The `onprem-agent-exporter` command: parses the command line and hands the subcommand to its file in `cli/`,
//! which calls into the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use onprem_agent_exporter::telemetry::{self, LogFormat};

mod cli;

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
    Run(cli::run::Args),
    /// Validate a config file (syntax, keys, values, token files) and exit: 0 if valid, 1 with the error if not.
    CheckConfig(cli::check_config::Args),
    /// Poll every source once, print the exposition to stdout, and exit non-zero if any source failed.
    Once(cli::once::Args),
    /// Start Celigo, Planasonix and Calyptia simulators and the exporter together, with no config and no account,
    /// and print the URLs to open.
    #[cfg(feature = "sim")]
    Demo(cli::demo::Args),
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
    #[cfg(feature = "sim")]
    Simulate(cli::simulate::Args),
    /// Send a test email through `alerting.email` and report exactly which step failed (dns, connect, tls,
    /// greeting, starttls, auth, sender, recipient, data).
    TestEmail(cli::test_email::Args),
    /// Send a test notice to one of `alerting.receivers` (Slack, Teams, PagerDuty, webhook) and report which step
    /// failed (connect, request, response). PagerDuty gets a trigger and then a resolve, so no incident stays open.
    TestNotify(cli::test_notify::Args),
    /// Poll every source once and print the token-age compliance report; `--send` mails it now.
    ///
    /// Thresholds come from `reports.token_compliance` (default: overdue after 90 days, due 14 days before).
    Report(cli::report::Args),
    /// Exit 0 if the exporter at URL answers its health check, 1 otherwise (for container HEALTHCHECKs).
    Healthcheck(cli::healthcheck::Args),
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

/// Runs the subcommand; each lives in a file of its own under `cli/`.
async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => cli::run::run(args).await,
        Command::CheckConfig(args) => cli::check_config::run(args).await,
        Command::Once(args) => cli::once::run(args).await,
        #[cfg(feature = "sim")]
        Command::Demo(args) => cli::demo::run(args).await,
        #[cfg(feature = "sim")]
        Command::Simulate(args) => cli::simulate::run(args).await,
        Command::TestEmail(args) => cli::test_email::run(args).await,
        Command::TestNotify(args) => cli::test_notify::run(args).await,
        Command::Report(args) => cli::report::run(args).await,
        Command::Healthcheck(args) => cli::healthcheck::run(args).await,
    }
}
