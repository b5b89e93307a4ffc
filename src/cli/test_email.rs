//! `onprem-agent-exporter test-email`.

use super::*;

// The variant's doc comment in `main.rs` is the subcommand's help; this struct holds only its flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The YAML config file.
    #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Send to this address instead of `alerting.email.to`.
    #[arg(long, value_name = "ADDR")]
    pub to: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args { config, to } = args;
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
