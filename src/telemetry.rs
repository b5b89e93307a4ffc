//! Logging setup: `tracing` to stderr as text or JSON, at the level from `--log-level` or `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the global subscriber. `level` (from `--log-level`) wins over `RUST_LOG`; with neither, `info`.
/// Dependencies are held at `warn` unless the filter names them, so debug logs stay about this program.
pub fn init(level: Option<&str>, format: LogFormat) -> anyhow::Result<()> {
    let directives = match level {
        Some(l) => format!("warn,onprem_agent_exporter={l}"),
        None => std::env::var("RUST_LOG")
            .unwrap_or_else(|_| "warn,onprem_agent_exporter=info".to_string()),
    };
    let filter = EnvFilter::try_new(&directives)
        .map_err(|e| anyhow::anyhow!("invalid log level {directives:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
