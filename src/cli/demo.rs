//! `onprem-agent-exporter demo`.

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
