//! `onprem-agent-exporter run`.

use super::*;

// The variant's doc comment in `main.rs` is the subcommand's help; this struct holds only its flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The YAML config file.
    #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    #[command(flatten)]
    pub web: WebArgs,
    /// Poll, serve and alert on only the sources whose name hashes to INDEX modulo TOTAL (FNV-1a 64 of the
    /// name; see CONFIGURATION.md), so TOTAL replicas split the accounts. A StatefulSet passes its ordinal.
    #[arg(long, env = onprem_agent_exporter::domain::shard::SHARD_ENV, value_name = "INDEX/TOTAL")]
    pub shard: Option<Shard>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args { config, web, shard } = args;
    let mut config = Config::load(&config)?;
    config.shard = shard.unwrap_or_default();
    let web = web.load()?;
    // Held until the process exits: a second `run` on the same state file stops here, naming it.
    let _state_lock = config
        .alerting
        .as_ref()
        .map(|a| onprem_agent_exporter::state_lock::StateLock::acquire(&a.engine.state_file))
        .transpose()?;
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
