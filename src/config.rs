//! The YAML configuration: parsed into raw types that reject unknown keys, then validated into the types the rest of
//! the program uses (socket addresses, URLs, durations, loaded secrets).
//!
//! Every error names the file, the line and the key path (`sources[1].poll_interval`), and the bad value where
//! showing it is safe. Secrets are read from files or the environment at load time and never from the command line.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

use crate::model::Provider;

/// The default `listen_address`: every interface, port 9877.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9877";

/// A configuration that failed to load. `Display` names the file, line and key path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file itself could not be read.
    #[error("{file}: cannot read config file: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key, or a value of the wrong type.
    #[error("{file}:{line}: {key}: {message}")]
    Syntax {
        file: PathBuf,
        line: u64,
        key: String,
        message: String,
    },
    /// The YAML parsed but a value is not acceptable.
    #[error("{file}:{line}: {key}: {message}")]
    Invalid {
        file: PathBuf,
        line: u64,
        key: String,
        message: String,
    },
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Where the config came from, for messages.
    pub path: PathBuf,
    /// Where the HTTP server listens.
    pub listen_address: SocketAddr,
    /// Every upstream account, in file order. Names are unique.
    pub sources: Vec<SourceConfig>,
}

/// One upstream account, validated.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name; the `account` label.
    pub name: String,
    /// Which API this is.
    pub provider: Provider,
    /// The API root, without a trailing path (`https://api.integrator.io`).
    pub base_url: Url,
    /// The API key. Never logged, never displayed (`SecretString` redacts `Debug`).
    pub token: SecretString,
    /// Time between the starts of two polls.
    pub poll_interval: Duration,
    /// Time limit for one HTTP request, body included.
    pub request_timeout: Duration,
    /// The most pages one poll may fetch before it fails with `page_limit`.
    pub max_pages: u32,
    /// The largest response body accepted, bytes; larger fails with `body_too_large`.
    pub max_body_bytes: u64,
    /// The page size asked for (`limit`), or `None` to let the server choose.
    pub page_size: Option<u32>,
    /// Attempts per request for 429, 5xx, timeouts and connection errors (1 means no retry).
    pub max_attempts: u32,
    /// The longest `Retry-After` honoured; a longer one is capped so one poll cannot stall for hours.
    pub max_retry_after: Duration,
    /// Planasonix only: also call `/api/agents/{id}/health` for each agent.
    pub health: bool,
    /// Planasonix only: how many health calls run at once.
    pub health_concurrency: usize,
    /// Calyptia only: the project id; read from the token when absent.
    pub project_id: Option<String>,
}

impl SourceConfig {
    /// A source with every tunable at its default, for tests and the demo.
    pub fn new(name: &str, provider: Provider, base_url: Url, token: SecretString) -> SourceConfig {
        SourceConfig {
            name: name.to_string(),
            provider,
            base_url,
            token,
            poll_interval: Duration::from_secs(60),
            request_timeout: Duration::from_secs(15),
            max_pages: 1000,
            max_body_bytes: 32 * 1024 * 1024,
            page_size: None,
            max_attempts: 5,
            max_retry_after: Duration::from_secs(60),
            health: false,
            health_concurrency: 4,
            project_id: None,
        }
    }
}
