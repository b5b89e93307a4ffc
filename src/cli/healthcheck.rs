//! `onprem-agent-exporter healthcheck`.

use super::*;

// The variant's doc comment in `main.rs` is the subcommand's help; this struct holds only its flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The health endpoint to ask: a URL, or HOST:PORT for http://HOST:PORT/healthz. With TLS on, use an
    /// https:// URL and --ca-file (or --insecure-skip-verify for a check over loopback).
    #[arg(
        long,
        env = "ONPREM_AGENT_EXPORTER_HEALTHCHECK_URL",
        default_value = "http://127.0.0.1:9877/healthz"
    )]
    pub url: String,
    /// Verify the exporter's certificate against this PEM CA bundle (instead of the system's roots).
    #[arg(
        long,
        env = "ONPREM_AGENT_EXPORTER_HEALTHCHECK_CA_FILE",
        value_name = "FILE"
    )]
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Meant only for a container checking itself over loopback, where there is
    /// nobody in between to impersonate it; /healthz carries no data and needs no credentials.
    #[arg(long, env = "ONPREM_AGENT_EXPORTER_HEALTHCHECK_INSECURE_SKIP_VERIFY")]
    pub insecure_skip_verify: bool,
    /// Give up after this long; from 100ms to 10m.
    #[arg(long, default_value = "5s", value_parser = parse_healthcheck_timeout)]
    pub timeout: std::time::Duration,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        url,
        timeout,
        ca_file,
        insecure_skip_verify,
    } = args;
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
