//! Polls each source on its interval and publishes the result into the [`Registry`].
//!
//! One task per source, so a slow or rate-limited account never delays another. A poll's result replaces the
//! source's status in one atomic swap; a failed poll keeps the previous agent list (see [`crate::status::SourceStatus::failed`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::sources::Source;
use crate::status::Registry;
use crate::telemetry::error_chain;

/// Polls `source` once and publishes the outcome as source number `index`. Returns true if and only if the poll
/// succeeded. Logs the failure with its whole cause chain; error messages carry no secret by construction.
pub async fn poll_once(source: &dyn Source, registry: &Registry, index: usize) -> bool {
    let started = Instant::now();
    let mut duplicates = 0;
    // A page of nothing but unusable records is a failed poll, not an empty fleet: it keeps the last good snapshot
    // and resolves nothing.
    let result = source.poll().await.and_then(|mut outcome| {
        duplicates = crate::sources::drop_duplicate_ids(&mut outcome.agents);
        outcome.stats.invalid_records += duplicates;
        crate::sources::check_not_vanished(&outcome).map(|()| outcome)
    });
    let took = started.elapsed();
    let now = Timestamp::now();
    let previous = registry.get(index);
    match result {
        Ok(outcome) => {
            tracing::debug!(
                source = source.name(),
                provider = %source.provider(),
                agents = outcome.agents.len(),
                pages = outcome.stats.pages,
                requests = outcome.stats.requests,
                bytes = outcome.stats.bytes,
                invalid_records = outcome.stats.invalid_records,
                health_failures = outcome.stats.health_failures,
                took_ms = took.as_millis() as u64,
                "poll succeeded"
            );
            if outcome.stats.invalid_records > 0 {
                tracing::warn!(
                    source = source.name(),
                    skipped = outcome.stats.invalid_records,
                    duplicates,
                    "skipped agent records without a usable id, that did not decode, or whose id came before"
                );
            }
            if outcome.stats.health_failures > 0 {
                tracing::warn!(
                    source = source.name(),
                    failed = outcome.stats.health_failures,
                    "some per-agent health calls failed; those agents are exported without health figures"
                );
            }
            if previous.last_success.is_none() {
                tracing::info!(
                    source = source.name(),
                    provider = %source.provider(),
                    agents = outcome.agents.len(),
                    took_ms = took.as_millis() as u64,
                    "first successful poll"
                );
            } else if !previous.up && previous.polls > 0 {
                tracing::info!(source = source.name(), "source recovered");
            }
            let mut next = previous.succeeded(outcome, now, took);
            next.not_before = source.not_before();
            registry.publish(index, next);
            true
        }
        Err(error) => {
            match &previous.agents {
                Some(kept) => tracing::warn!(
                    source = source.name(),
                    provider = %source.provider(),
                    reason = %error.reason(),
                    error = %error_chain(&error),
                    kept_agents = kept.agents.len(),
                    "poll failed; keeping the last good snapshot"
                ),
                None => tracing::warn!(
                    source = source.name(),
                    provider = %source.provider(),
                    reason = %error.reason(),
                    error = %error_chain(&error),
                    "poll failed; no agent list yet"
                ),
            }
            let mut next = previous.failed(&error, now, took);
            next.not_before = source.not_before();
            if let Some(until) = next.waiting_until(now) {
                tracing::warn!(
                    source = source.name(),
                    until = %until,
                    "the upstream asked us to wait (Retry-After); no poll until then"
                );
            }
            registry.publish(index, next);
            false
        }
    }
}

/// Polls `source` every `interval` (measured start to start) until `shutdown` is cancelled. The first poll starts
/// at once so that `/readyz` turns ready as soon as possible.
pub async fn run(
    source: Arc<dyn Source>,
    registry: Arc<Registry>,
    index: usize,
    interval: Duration,
    shutdown: CancellationToken,
) {
    tracing::info!(
        source = source.name(),
        provider = %source.provider(),
        interval = %humantime::format_duration(interval),
        "polling"
    );
    let mut ticker = tokio::time::interval(interval);
    // After a poll that overran its interval, wait a full interval rather than firing a burst of catch-up polls
    // at an API that is probably already struggling.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        // A `Retry-After` longer than a poll could honour is honoured across polls: skip ticks until it passes.
        if let Some(until) = registry.get(index).waiting_until(Timestamp::now()) {
            tracing::debug!(source = source.name(), until = %until, "skipping a poll: the upstream asked us to wait");
            continue;
        }
        tokio::select! {
            _ = poll_once(source.as_ref(), &registry, index) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
