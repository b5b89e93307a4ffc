//! `onprem-agent-exporter demo`.

use std::net::SocketAddr;

use super::*;

// The variant's doc comment in `main.rs` is the subcommand's help; this struct holds only its flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the exporter listens; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9877")]
    pub listen: SocketAddr,
    /// Agents in each simulated fleet, 1 to 100000.
    #[arg(long, default_value_t = 25, value_parser = parse_agents)]
    pub agents: usize,
    /// Time between polls of the simulator; from 1s to 1d.
    #[arg(long, default_value = "10s", value_parser = parse_poll_interval)]
    pub poll_interval: std::time::Duration,
    /// Folder the demo's alert emails are written to, one .eml file each.
    #[arg(long, default_value = "demo-outbox")]
    pub outbox: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        listen,
        agents,
        poll_interval,
        outbox,
    } = args;
    let opts = onprem_agent_exporter::demo::DemoOptions {
        listen,
        agents,
        poll_interval,
        outbox,
    };
    onprem_agent_exporter::demo::run(opts, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub fn parse_poll_interval(s: &str) -> Result<std::time::Duration, String> {
    parse_bounded(s, "1s", "1d")
}

/// `demo --agents`: at least one agent, at most 100,000 per fleet (three fleets live in one process).
pub fn parse_agents(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 100000".to_string()),
    }
}
