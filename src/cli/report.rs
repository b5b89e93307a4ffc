//! `onprem-agent-exporter report`.

use super::*;

// The variant's doc comment in `main.rs` is the subcommand's help; this struct holds only its flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The YAML config file.
    #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Also mail the report now, to `reports.token_compliance.to` (or `alerting.email.to`).
    #[arg(long)]
    pub send: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        config,
        format,
        send,
    } = args;
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
