//! Logging setup: `tracing` to stderr as text or JSON, at the level from `--log-level` or `RUST_LOG`; and the one
//! way an error is written into a log line, with its whole cause chain.

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
    // Colours only on a terminal: escape codes in a log file or a journal are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_ansi(ansi)
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// Formats an error and its causes as `outer: inner: innermost`, the whole chain on one line, for the log line where
/// the error is handled.
///
/// A cause whose message the previous level's message already contains is left out: many errors quote their
/// source in their own message (`cannot connect to SMTP server h:25: connection refused`) and still return it from
/// [`std::error::Error::source`], and the log should not say it twice. A left-out cause still counts as the
/// previous level for the next one.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut previous = text.clone();
    let mut cause = error.source();
    while let Some(c) = cause {
        let message = c.to_string();
        if !previous.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        previous = message;
        cause = c.source();
    }
    text
}

/// What to do about a fatal error, for the common ones: a port already in use, a file that does not exist. `None`
/// when the error's own words are the best advice. Reads the causes' [`std::io::ErrorKind`], not their wording.
pub fn hint(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut cause = Some(error);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::AddrInUse => {
                    return Some(
                        "another process listens on that address; stop it, or choose another port with \
                         listen_address in the config file (or --listen for demo and simulate)",
                    );
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    return Some(
                        "that IP address is not one of this host's; use 0.0.0.0 (or :PORT) for every interface",
                    );
                }
                std::io::ErrorKind::NotFound => {
                    return Some(
                        "check the path; a relative path is read from the current directory, and relative paths \
                         inside the config file from the config file's folder",
                    );
                }
                std::io::ErrorKind::PermissionDenied => {
                    return Some(
                        "the exporter's user may not read that file or bind that port; check the owner and mode",
                    );
                }
                _ => {}
            }
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{error_chain, hint};

    #[test]
    fn a_port_in_use_and_a_missing_file_get_a_hint_and_other_errors_none() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot listen on 0.0.0.0:9877: {0}")]
        struct Bind(#[source] std::io::Error);
        let in_use = Bind(std::io::Error::from(std::io::ErrorKind::AddrInUse));
        assert!(hint(&in_use).is_some_and(|h| h.contains("listen_address")));
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert!(hint(&missing).is_some_and(|h| h.contains("relative path")));
        let other = std::io::Error::other("boom");
        assert_eq!(hint(&other), None);
    }

    /// An error with a fixed message and an optional cause.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    fn chain(messages: &[&'static str]) -> Layer {
        let mut error: Option<Box<Layer>> = None;
        for m in messages.iter().rev() {
            error = Some(Box::new(Layer(m, error)));
        }
        *error.expect("at least one message")
    }

    #[test]
    fn every_level_of_the_chain_is_written_outermost_first() {
        let e = chain(&["cannot deliver", "smtp failed", "connection refused"]);
        assert_eq!(
            error_chain(&e),
            "cannot deliver: smtp failed: connection refused"
        );
    }

    #[test]
    fn a_cause_the_previous_message_already_quotes_is_not_repeated() {
        let e = chain(&[
            "connect: cannot connect to SMTP server h:25: connection refused",
            "connection refused",
            "os error 111",
        ]);
        assert_eq!(
            error_chain(&e),
            "connect: cannot connect to SMTP server h:25: connection refused: os error 111"
        );
    }

    #[test]
    fn a_cause_quoted_two_levels_up_but_not_by_its_parent_is_kept() {
        let e = chain(&["timeout after x", "reading body", "x"]);
        assert_eq!(error_chain(&e), "timeout after x: reading body: x");
    }
}
