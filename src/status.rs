//! The exporter's live state: one immutable [`SourceStatus`] per configured source, swapped atomically by the
//! poller and read without locks by scrapes, the HTTP API and the rule engine.
//!
//! A failed poll replaces the status but carries the previous agent list over, so the last good snapshot is
//! served (marked stale by `up == false`) until a later poll replaces it.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jiff::Timestamp;

use crate::domain::{Provider, SharedAgents};
use crate::sources::{ErrorReason, PollOutcome, UpstreamError};

/// Number of distinct [`ErrorReason`]s, the length of the error counter array.
pub const REASONS: usize = ErrorReason::ALL.len();

/// Everything known about one source at one instant. Immutable: the poller builds a new one per poll.
#[derive(Debug, Clone)]
pub struct SourceStatus {
    /// The configured name; the `account` label.
    pub name: String,
    /// The provider; the `provider` label.
    pub provider: Provider,
    /// The last good agent list, `None` until the first poll succeeds. Kept across failed polls.
    pub agents: Option<SharedAgents>,
    /// Whether the most recent poll succeeded. `false` before the first poll finishes.
    pub up: bool,
    /// How many polls have finished, successful or not. `0` means the source is not ready yet.
    pub polls: u64,
    /// When the most recent poll finished.
    pub last_attempt: Option<Timestamp>,
    /// When the most recent successful poll finished.
    pub last_success: Option<Timestamp>,
    /// How long the most recent poll took, retries included.
    pub last_duration: Option<Duration>,
    /// The most recent failure, while the source is failing; cleared by a success.
    pub last_error: Option<SourceError>,
    /// When the current run of failed polls began (the first failure after a success, or after start).
    /// `None` while the source is up. The rule engine's `SourceDown` measures from here.
    pub failing_since: Option<Timestamp>,
    /// Errors counted since start, indexed like [`ErrorReason::ALL`]. Monotonic.
    pub errors: [u64; REASONS],
    /// The instant before which the upstream asked (by `Retry-After`) not to be polled; polls are skipped until then.
    /// Set after each poll from [`crate::sources::Source::not_before`]; may lie in the past.
    pub not_before: Option<Timestamp>,
}

/// A poll failure, reduced to what may be shown: a reason and a message that carries no secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceError {
    pub reason: ErrorReason,
    pub message: String,
    /// The URL that failed without its query string (page cursors are noise in a notice), or `None` when the
    /// error names no URL.
    pub url: Option<String>,
}

impl SourceStatus {
    /// The status of a source that has not been polled yet.
    pub fn new(name: &str, provider: Provider) -> SourceStatus {
        SourceStatus {
            name: name.to_string(),
            provider,
            agents: None,
            up: false,
            polls: 0,
            last_attempt: None,
            last_success: None,
            last_duration: None,
            last_error: None,
            failing_since: None,
            errors: [0; REASONS],
            not_before: None,
        }
    }

    /// Returns the status after a successful poll that finished at `now`.
    pub fn succeeded(&self, outcome: PollOutcome, now: Timestamp, took: Duration) -> SourceStatus {
        let mut next = self.clone();
        next.errors[index(ErrorReason::InvalidRecord)] += outcome.stats.invalid_records;
        next.errors[index(ErrorReason::Health)] += outcome.stats.health_failures;
        next.agents = Some(Arc::new(crate::domain::AgentList {
            polled_at: now,
            agents: outcome.agents,
        }));
        next.up = true;
        next.polls += 1;
        next.last_attempt = Some(now);
        next.last_success = Some(now);
        next.last_duration = Some(took);
        next.last_error = None;
        next.failing_since = None;
        next
    }

    /// Returns the status after a failed poll that finished at `now`; the previous agent list is kept.
    pub fn failed(&self, error: &UpstreamError, now: Timestamp, took: Duration) -> SourceStatus {
        let mut next = self.clone();
        next.errors[index(error.reason())] += 1;
        next.up = false;
        next.polls += 1;
        next.last_attempt = Some(now);
        next.last_duration = Some(took);
        // The message names the URL without its query string too, as the `url` field does.
        let url = error
            .url()
            .map(|u| u.split(['?', '#']).next().unwrap_or(u).to_string());
        let mut message = error.to_string();
        if let (Some(full), Some(short)) = (error.url(), &url) {
            message = message.replacen(full, short, 1);
        }
        next.last_error = Some(SourceError {
            reason: error.reason(),
            message,
            url,
        });
        next.failing_since = self.failing_since.or(Some(now));
        next
    }

    /// The instant polls resume, if and only if the upstream asked us to wait and that instant is after `now`.
    pub fn waiting_until(&self, now: Timestamp) -> Option<Timestamp> {
        self.not_before.filter(|t| *t > now)
    }

    /// Returns true if and only if the source has finished at least one poll.
    pub fn ready(&self) -> bool {
        self.polls > 0
    }

    /// The number of errors counted under `reason`.
    pub fn error_count(&self, reason: ErrorReason) -> u64 {
        self.errors[index(reason)]
    }
}

/// The position of `reason` in [`ErrorReason::ALL`].
fn index(reason: ErrorReason) -> usize {
    ErrorReason::ALL
        .iter()
        .position(|r| *r == reason)
        .expect("ErrorReason::ALL lists every variant")
}

/// The live status of every configured source, in config order. The set of sources is fixed at start.
#[derive(Debug)]
pub struct Registry {
    /// One cell per source. `ArcSwap` rather than a lock: scrapes must never wait for the poller, and a reader
    /// holding an old `Arc` keeps a consistent view while the next one is published.
    sources: Vec<ArcSwap<SourceStatus>>,
}

impl Registry {
    /// A registry with one not-yet-polled status per `(name, provider)`.
    pub fn new<'a>(sources: impl IntoIterator<Item = (&'a str, Provider)>) -> Registry {
        Registry {
            sources: sources
                .into_iter()
                .map(|(name, provider)| ArcSwap::from_pointee(SourceStatus::new(name, provider)))
                .collect(),
        }
    }

    /// A consistent copy of every source's current status.
    pub fn snapshot(&self) -> Vec<Arc<SourceStatus>> {
        self.sources.iter().map(|s| s.load_full()).collect()
    }

    /// The current status of source number `index`.
    pub fn get(&self, index: usize) -> Arc<SourceStatus> {
        self.sources[index].load_full()
    }

    /// Publishes a new status for source number `index`. Only that source's poller calls this.
    pub fn publish(&self, index: usize, status: SourceStatus) {
        self.sources[index].store(Arc::new(status));
    }

    /// The number of sources.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Returns true if and only if no source is configured.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Returns true if and only if every source has finished its first poll.
    pub fn all_ready(&self) -> bool {
        self.sources.iter().all(|s| s.load().ready())
    }
}
