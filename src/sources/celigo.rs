//! The Celigo integrator.io source.

use crate::config::SourceConfig;
use crate::model::Provider;

use super::{BoxFuture, PollOutcome, Source, UpstreamError};

/// Placeholder until the client lands.
pub struct CeligoSource {
    config: SourceConfig,
}

impl CeligoSource {
    /// Builds the client.
    pub fn new(config: SourceConfig) -> Result<CeligoSource, reqwest::Error> {
        Ok(CeligoSource { config })
    }
}

impl Source for CeligoSource {
    fn name(&self) -> &str {
        &self.config.name
    }
    fn provider(&self) -> Provider {
        Provider::Celigo
    }
    fn poll(&self) -> BoxFuture<'_, Result<PollOutcome, UpstreamError>> {
        Box::pin(async { Ok(PollOutcome::default()) })
    }
}
