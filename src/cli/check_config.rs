//! `onprem-agent-exporter check-config`.

use super::*;

// The variant's doc comment in `main.rs` is the subcommand's help; this struct holds only its flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The YAML config file (or give it with --config, as the other subcommands take it).
    #[arg(
        value_name = "FILE",
        required_unless_present = "config",
        conflicts_with = "config"
    )]
    pub file: Option<PathBuf>,
    /// The YAML config file, as `run --config` takes it.
    #[arg(long, env = "ONPREM_AGENT_EXPORTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also validate this web config file (TLS, basic auth, headers), as `run` would load it.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// The highest bcrypt cost accepted in the web config's basic_auth_users, as `run` takes it.
    #[arg(long = "web.bcrypt-max-cost", default_value_t = onprem_agent_exporter::web::config::DEFAULT_MAX_BCRYPT_COST, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_max_cost: u32,
    /// List the sources this shard (INDEX/TOTAL) owns.
    #[arg(long, env = onprem_agent_exporter::domain::shard::SHARD_ENV, value_name = "INDEX/TOTAL")]
    pub shard: Option<Shard>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        file,
        config,
        web_config_file,
        bcrypt_max_cost,
        shard,
    } = args;
    let file = file.or(config).expect("clap requires FILE or --config");
    let mut config = Config::load(&file)?;
    // A placeholder from the examples is valid but not ready for production: a warning on stderr naming
    // the file and key (never the value), and the exit code stays 0.
    let warn = |path: &std::path::Path, found: Vec<placeholders::Placeholder>| {
        for p in found {
            tracing::warn!(file = %path.display(), "{p}");
        }
    };
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    warn(&file, placeholders::in_config(&config, &text));
    if let Some(web) = &web_config_file {
        let web_config = WebConfig::load_with(web, bcrypt_max_cost)?;
        warn(web, placeholders::in_web_users(&web_config.users.0));
        Web::new(web_config, Limits::default())?;
        println!("{}: OK", web.display());
    }
    // Building the sources catches what only a client can check (a Calyptia token without a project id),
    // so that check-config fails exactly where run would.
    app::Exporter::new(&config.sources)?;
    println!(
        "{}: OK ({} source{}, listening on {})",
        file.display(),
        config.sources.len(),
        if config.sources.len() == 1 { "" } else { "s" },
        config.listen_address
    );
    if let Some(shard) = shard {
        config.shard = shard;
        let owned = app::owned_sources(&config);
        println!(
            "shard {shard} owns {} of {} sources:",
            owned.len(),
            config.sources.len()
        );
        for s in owned {
            println!("  {}", s.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
