//! `onprem-agent-exporter simulate`.

use std::net::SocketAddr;

use super::*;

// The variant's doc comment in `main.rs` is the subcommand's help; this struct holds only its flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which vendor's API to serve.
    #[arg(long, value_enum, default_value_t = ProviderArg::Celigo)]
    pub provider: ProviderArg,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:18089")]
    pub listen: SocketAddr,
    /// Agents in the fleet, 0 to 100000 (0 serves an empty list).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub agents: u32,
    /// Records per page when the client sends no `limit`, 1 to 10000.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,
    /// Ignore `include`/`exclude` and send full records, with their fake `accessToken`s.
    #[arg(long)]
    pub no_projection: bool,
    /// The fleet's seed; the same seed gives the same agents.
    #[arg(long, default_value_t = onprem_agent_exporter::sim::DEFAULT_SEED)]
    pub seed: u64,
    /// Answer every Nth request with 429 and a Retry-After (N at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_every: Option<u32>,
    /// Answer every Nth request with 500 (N at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub fail_every: Option<u32>,
    /// Delay every response by this long; at most 10m.
    #[arg(long, default_value = "0s", value_parser = parse_latency)]
    pub latency: std::time::Duration,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        provider,
        listen,
        agents,
        page_size,
        no_projection,
        seed,
        rate_limit_every,
        fail_every,
        latency,
    } = args;
    use onprem_agent_exporter::sim::{DEFAULT_TOKEN, Faults, SimOptions, Simulator};
    let token =
        std::env::var("ONPREM_AGENT_SIM_TOKEN").unwrap_or_else(|_| DEFAULT_TOKEN.to_string());
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
    let mut banner = format!(
        "simulator: http://{addr}{} ({agents} {} agents)\n",
        sim.list_path(),
        sim.provider()
    );
    if sim.provider() == onprem_agent_exporter::domain::Provider::Calyptia
        && sim.api_token() != token
    {
        // A fake credential for a local simulator; printed because the operator cannot derive it by hand.
        banner += &format!("project token: {}\n", sim.api_token());
    }
    // A fake credential of a local simulator, so the snippet may carry the variable's value in a comment.
    banner += &format!(
        "config snippet (token in a file: echo {} > sim-token):\n\
         sources:\n  - name: sim-{}\n    provider: {}\n    base_url: http://{addr}\n    \
         token_file: sim-token\n",
        sim.api_token(),
        sim.provider(),
        sim.provider()
    );
    // One write, and nothing printed after it: a caller that reads only the first line (the address) and closes
    // the pipe cannot make a later print fail and end the simulator while clients are connecting.
    print!("{banner}");
    sim.serve(listener, shutdown_signal().cancelled_owned())
        .await?;
    Ok(ExitCode::SUCCESS)
}

pub fn parse_latency(s: &str) -> Result<std::time::Duration, String> {
    parse_bounded(s, "0s", "10m")
}

/// A provider on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProviderArg {
    Celigo,
    Planasonix,
    Calyptia,
}

impl From<ProviderArg> for onprem_agent_exporter::domain::Provider {
    fn from(p: ProviderArg) -> Self {
        use onprem_agent_exporter::domain::Provider;
        match p {
            ProviderArg::Celigo => Provider::Celigo,
            ProviderArg::Planasonix => Provider::Planasonix,
            ProviderArg::Calyptia => Provider::Calyptia,
        }
    }
}
