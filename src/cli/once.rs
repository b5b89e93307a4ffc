//! `onprem-agent-exporter once`.

use super::*;

// The variant's doc comment in `main.rs` is the subcommand's help; this struct holds only its flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The YAML config file.
    #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Exposition format.
    #[arg(long, value_enum, default_value_t = OnceFormat::Openmetrics)]
    pub format: OnceFormat,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args { config, format } = args;
    let config = Config::load(&config)?;
    let exporter = app::Exporter::new(&config.sources)?;
    let failures = exporter.poll_all_once().await;
    let format = match format {
        OnceFormat::Openmetrics => Format::OpenMetrics,
        OnceFormat::Text => Format::Text,
    };
    let mut exposition = metrics::Exposition::new(exporter.registry.clone());
    // `once` polls every source (no shard): 0 of 1, as every command that serves /metrics exports it.
    exposition.register_shard(&onprem_agent_exporter::domain::Shard::ALL);
    let text = exposition.render(format);
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

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OnceFormat {
    /// OpenMetrics 1.0, as Prometheus scrapes it.
    Openmetrics,
    /// The classic Prometheus text format (what `promtool check metrics` reads).
    Text,
}
