//! The loop around the pure engine: evaluate every few seconds, hand notifications to the sink, then save the
//! state. The order is what makes delivery exactly-once across crashes (see [`run_once`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::rules::NotificationSink;
use crate::rules::api::{SharedEngine, lock};
use crate::rules::state::write_atomic;
use crate::status::Registry;

/// Evaluates every `interval` until `shutdown` turns true (or its sender goes away), then saves the state one last
/// time. Takes wall-clock time from [`Timestamp::now`].
pub async fn run(
    engine: SharedEngine,
    registry: Arc<Registry>,
    sink: Arc<dyn NotificationSink>,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    run_with_clock(engine, registry, sink, interval, shutdown, Timestamp::now).await
}

/// [`run`] with the clock given, so tests can drive it from tokio's paused clock.
pub async fn run_with_clock(
    engine: SharedEngine,
    registry: Arc<Registry>,
    sink: Arc<dyn NotificationSink>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
    clock: impl Fn() -> Timestamp,
) {
    let state_file = lock(&engine).config().state_file.clone();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        }
        run_once(&engine, &registry, &sink, &state_file, clock()).await;
    }
    lock(&engine).take_dirty();
    save(&engine, &state_file).await;
    tracing::debug!("rule engine stopped");
}

/// What one round did, for tests and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Evaluated; `notified` notifications went to the sink; `saved` says whether the state file was written.
    Done { notified: usize, saved: bool },
    /// The sink refused the batch; the engine was rolled back and will produce the same batch next round.
    SinkFailed,
}

/// One round: evaluate at `now`, enqueue the notifications durably, and only then save the state.
///
/// If the process dies after the enqueue but before the save, the reloaded state makes the engine produce the same
/// notifications again, with the same ids, and the outbox drops them as duplicates. If the sink fails, the engine
/// is rolled back so nothing is marked sent that was not stored.
pub async fn run_once(
    engine: &SharedEngine,
    registry: &Registry,
    sink: &Arc<dyn NotificationSink>,
    state_file: &Path,
    now: Timestamp,
) -> Round {
    let sources = registry.snapshot();
    let (before, notifications) = {
        let mut e = lock(engine);
        let before = e.state().clone();
        let notifications = e.evaluate(&sources, now);
        (before, notifications)
    };
    let notified = notifications.len();
    if notified > 0 {
        for n in &notifications {
            tracing::info!(
                id = %n.id,
                group = %n.group_key,
                status = ?n.status,
                firing = n.firing.len(),
                resolved = n.resolved.len(),
                "notification due"
            );
        }
        let sink = Arc::clone(sink);
        let handed = tokio::task::spawn_blocking(move || sink.enqueue(&notifications)).await;
        let failure = match handed {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(error_chain(e.as_ref())),
            Err(e) => Some(format!("the sink panicked: {e}")),
        };
        if let Some(cause) = failure {
            tracing::error!(error = %cause, "could not queue notifications; will try again next round");
            lock(engine).rollback(before);
            return Round::SinkFailed;
        }
    }
    let saved = if lock(engine).take_dirty() {
        save(engine, state_file).await
    } else {
        false
    };
    Round::Done { notified, saved }
}

/// Writes the current state; on failure logs it and marks the engine dirty so the next round tries again.
/// Returns true if and only if the file was written.
async fn save(engine: &SharedEngine, path: &Path) -> bool {
    let bytes = lock(engine).state().to_json();
    let target = path.to_path_buf();
    let written = tokio::task::spawn_blocking(move || write_atomic(&target, &bytes)).await;
    let failure = match written {
        Ok(Ok(())) => return true,
        Ok(Err(e)) => e.to_string(),
        Err(e) => format!("the writer panicked: {e}"),
    };
    tracing::error!(path = %path.display(), error = %failure, "cannot write the alert state file");
    lock(engine).mark_dirty();
    false
}

/// `error: cause: cause`, the whole chain on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
