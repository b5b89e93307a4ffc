//! `onprem-agent-exporter test-notify`.

use super::*;

// The variant's doc comment in `main.rs` is the subcommand's help; this struct holds only its flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The YAML config file.
    #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// The receiver's name, as in `alerting.receivers[].name`.
    #[arg(long, value_name = "NAME")]
    pub receiver: String,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args { config, receiver } = args;
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
