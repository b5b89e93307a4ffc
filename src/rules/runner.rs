//! The loop around the pure engine: evaluate every few seconds, hand notifications to the sink, then save the
//! state. The order is what makes delivery exactly-once across crashes (see [`run_once`]).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::atomic_file;
use crate::config::alerting::EngineConfig;
use crate::notify::Notification;
use crate::rules::NotificationSink;
use crate::rules::engine::{Engine, SharedEngine, lock};
use crate::rules::health::StateHealth;
use crate::rules::state::{StateError, load_or_fresh, rebuild_from_notified};
use crate::status::Registry;
use crate::telemetry::error_chain;

/// [`start_engine_with`] with nothing to rebuild from and a health record of its own, for tests and tools.
pub fn start_engine(config: EngineConfig) -> SharedEngine {
    start_engine_with(config, &StateHealth::new(Timestamp::now()), Vec::new)
}

/// Builds the shared engine for `config`, starting from its state file. A missing file starts fresh; an unreadable
/// one is moved aside, logged as an error and counted in `health` (see [`crate::rules::state::load_or_fresh`]).
///
/// When the state starts fresh, `notified` is asked for the last notification of every group (the outbox's record of
/// what was delivered or is queued), and the alerts and the notification log are rebuilt from it
/// ([`rebuild_from_notified`]), so that losing the state file does not mail everyone again about what they were
/// already told.
///
/// A fresh state is written at once: its epoch is part of every notification id, so it must be on disk before the
/// first notification is handed over, or a crash right after that hand-over would restart with another epoch and
/// send the same alert again under a new id.
pub fn start_engine_with(
    config: EngineConfig,
    health: &StateHealth,
    notified: impl FnOnce() -> Vec<Notification>,
) -> SharedEngine {
    let now = Timestamp::now();
    let (mut state, fresh) = load_or_fresh(&config.state_file, now, health);
    if fresh {
        let rebuilt = rebuild_from_notified(&mut state, &notified(), now);
        if rebuilt > 0 {
            tracing::warn!(
                groups = rebuilt,
                "alert state rebuilt from the outbox's last notifications; what they said is not sent again"
            );
        }
    }
    let alerts = state.alerts.len();
    let silences = state.silences.len();
    let path = config.state_file.clone();
    let mut engine = Engine::new(config, state);
    if fresh {
        match engine.state().save(&path) {
            Ok(()) => health.saved(now),
            Err(e) => {
                tracing::error!(error = %e, "cannot write the alert state file; will try again after each evaluation");
                health.save_failed(e.to_string());
                engine.mark_dirty();
            }
        }
    }
    tracing::info!(path = %path.display(), alerts, silences, "alert state loaded");
    Arc::new(Mutex::new(engine))
}

/// Evaluates every `interval` until `shutdown` is cancelled, then saves the state one last
/// time. Takes wall-clock time from [`Timestamp::now`]; records every save in `health`.
pub async fn run(
    engine: SharedEngine,
    registry: Arc<Registry>,
    sink: Arc<dyn NotificationSink>,
    interval: Duration,
    health: Arc<StateHealth>,
    shutdown: CancellationToken,
) {
    run_with_clock(
        engine,
        registry,
        sink,
        interval,
        health,
        shutdown,
        Timestamp::now,
    )
    .await
}

/// [`run`] with the clock given, so tests can drive it from tokio's paused clock.
pub async fn run_with_clock(
    engine: SharedEngine,
    registry: Arc<Registry>,
    sink: Arc<dyn NotificationSink>,
    interval: Duration,
    health: Arc<StateHealth>,
    shutdown: CancellationToken,
    clock: impl Fn() -> Timestamp,
) {
    let state_file = lock(&engine).config().state_file.clone();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        run_once_recorded(&engine, &registry, &sink, &state_file, &health, clock()).await;
    }
    lock(&engine).take_dirty();
    save(&engine, &state_file, &health, clock()).await;
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
    let health = StateHealth::new(now);
    run_once_recorded(engine, registry, sink, state_file, &health, now).await
}

/// [`run_once`], recording the outcome of its save in `health`.
pub async fn run_once_recorded(
    engine: &SharedEngine,
    registry: &Registry,
    sink: &Arc<dyn NotificationSink>,
    state_file: &Path,
    health: &StateHealth,
    now: Timestamp,
) -> Round {
    let sources = registry.snapshot();
    let started = std::time::Instant::now();
    let notifications = lock(engine).evaluate(&sources, now);
    tracing::debug!(
        took_ms = started.elapsed().as_millis() as u64,
        "rules evaluated"
    );
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
            lock(engine).rollback();
            return Round::SinkFailed;
        }
    }
    // While the last save failed, try every round even with nothing new: the silence API and `/readyz` report the
    // trouble until a save succeeds, so recovery must be noticed without waiting for a change.
    let due = lock(engine).take_dirty() || !health.can_save();
    let saved = if due {
        save(engine, state_file, health, now).await
    } else {
        false
    };
    Round::Done { notified, saved }
}

/// Serializes the writers of the state file: the runner's saves and the silence API's. Each takes its copy of the
/// state while holding it, so the copies reach the disk in the order they were taken and a save can never put back
/// an older state over a newer one (a silence just answered `201`, say). One lock for the process: a process has one
/// state file, and [`atomic_file::write`]'s temporary file is per process, not per write.
static STATE_WRITER: Mutex<()> = Mutex::new(());

/// Writes the engine's current state to `path` and fsyncs it (see [`atomic_file::write`]). Blocks: call it from a
/// blocking thread. Holds the engine's lock only while copying the state out.
pub fn write_state(engine: &SharedEngine, path: &Path) -> Result<(), StateError> {
    let _writer = STATE_WRITER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let bytes = lock(engine).state().to_json();
    atomic_file::write(path, &bytes).map_err(|source| StateError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the current state and records the outcome in `health`; on failure logs it and marks the engine dirty so
/// the next round tries again. Returns true if and only if the file was written.
async fn save(engine: &SharedEngine, path: &Path, health: &StateHealth, now: Timestamp) -> bool {
    let (shared, target) = (Arc::clone(engine), path.to_path_buf());
    let written = tokio::task::spawn_blocking(move || write_state(&shared, &target)).await;
    let failure = match written {
        Ok(Ok(())) => {
            health.saved(now);
            return true;
        }
        Ok(Err(StateError::Write { source, .. })) => source.to_string(),
        Err(e) => format!("the writer panicked: {e}"),
    };
    tracing::error!(path = %path.display(), error = %failure, "cannot write the alert state file");
    health.save_failed(format!("cannot write {}: {failure}", path.display()));
    lock(engine).mark_dirty();
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::config::alerting::EngineConfig;
    use crate::model::{Agent, AgentList, Provider};
    use crate::notify::{Notification, SinkError};
    use crate::rules::engine::Engine;
    use crate::rules::state::{State, load};
    use crate::status::SourceStatus;

    fn t0() -> Timestamp {
        "2026-01-05T12:00:00Z".parse().unwrap()
    }

    /// A clock that follows tokio's (paused) clock from `t0`.
    fn tokio_clock() -> impl Fn() -> Timestamp {
        let start = tokio::time::Instant::now();
        move || t0().checked_add(start.elapsed()).unwrap()
    }

    /// A registry with one source that has polled once and has one agent silent for an hour.
    fn registry_with_a_stale_agent() -> Arc<Registry> {
        let registry = Registry::new([("prod", Provider::Celigo)]);
        let mut agent = Agent::new("a1", "edge-1");
        agent.last_heartbeat = Some(t0().checked_sub(Duration::from_secs(3600)).unwrap());
        let mut s = SourceStatus::new("prod", Provider::Celigo);
        s.agents = Some(Arc::new(AgentList {
            polled_at: t0(),
            agents: vec![agent],
        }));
        s.up = true;
        s.polls = 1;
        registry.publish(0, s);
        Arc::new(registry)
    }

    /// Records what it is given, refuses the first `fail_first` batches, and notes whether the state file already
    /// listed the notification's group as sent when the batch arrived (it must not).
    struct RecordingSink {
        got: Mutex<Vec<Notification>>,
        fail_first: AtomicUsize,
        state_file: std::path::PathBuf,
        saw_sent_state_early: Mutex<bool>,
    }

    impl crate::notify::NotificationSink for RecordingSink {
        fn enqueue(&self, notifications: &[Notification]) -> Result<(), SinkError> {
            let on_disk = load(&self.state_file, t0()).state;
            if on_disk.groups.values().any(|g| g.last_sent.is_some()) {
                *self.saw_sent_state_early.lock().unwrap() = true;
            }
            if self
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err("outbox disk full".into());
            }
            self.got
                .lock()
                .unwrap()
                .extend(notifications.iter().cloned());
            Ok(())
        }
    }

    fn setup(fail_first: usize) -> (tempfile::TempDir, SharedEngine, Arc<RecordingSink>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let config = EngineConfig::new(&path, vec!["ops@example.com".into()]);
        let engine = Arc::new(Mutex::new(Engine::new(config, State::new(t0()))));
        let sink = Arc::new(RecordingSink {
            got: Mutex::new(Vec::new()),
            fail_first: AtomicUsize::new(fail_first),
            state_file: path,
            saw_sent_state_early: Mutex::new(false),
        });
        (dir, engine, sink)
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_hands_notifications_over_before_it_saves_the_state_and_saves_on_shutdown() {
        let (_dir, engine, sink) = setup(0);
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(run_with_clock(
            Arc::clone(&engine),
            registry_with_a_stale_agent(),
            sink.clone() as Arc<dyn crate::notify::NotificationSink>,
            Duration::from_secs(5),
            Arc::new(StateHealth::new(t0())),
            shutdown,
            tokio_clock(),
        ));
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(
            sink.got.lock().unwrap().is_empty(),
            "sent before group_wait"
        );
        tokio::time::sleep(Duration::from_secs(20)).await;
        let got: Vec<String> = sink
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.group_key.clone())
            .collect();
        assert_eq!(got, vec!["AgentHeartbeatStale/prod"]);
        assert!(
            !*sink.saw_sent_state_early.lock().unwrap(),
            "the state was saved before the hand-over"
        );
        let on_disk = load(&sink.state_file, t0());
        assert!(on_disk.problem.is_none(), "saw {:?}", on_disk.problem);
        assert!(
            on_disk.state.groups.values().all(|g| g.last_sent.is_some()),
            "saw {:?}",
            on_disk.state.groups
        );
        std::fs::remove_file(&sink.state_file).unwrap();
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the loop stops promptly")
            .unwrap();
        assert!(
            sink.state_file.exists(),
            "the state was not saved on shutdown"
        );
        assert_eq!(
            sink.got.lock().unwrap().len(),
            1,
            "a notification was sent twice"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_batch_comes_again_with_the_same_id_and_is_sent_once() {
        let (_dir, engine, sink) = setup(2);
        let registry = registry_with_a_stale_agent();
        let dyn_sink = sink.clone() as Arc<dyn crate::notify::NotificationSink>;
        let clock = tokio_clock();
        let path = sink.state_file.clone();
        let mut rounds = Vec::new();
        for _ in 0..12 {
            rounds.push(run_once(&engine, &registry, &dyn_sink, &path, clock()).await);
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let failed = rounds.iter().filter(|r| **r == Round::SinkFailed).count();
        assert_eq!(failed, 2, "rounds: {rounds:?}");
        let got = sink.got.lock().unwrap();
        assert_eq!(got.len(), 1, "saw {got:?}");
        let first_id = lock(&engine).state().epoch;
        assert!(
            got[0].id.starts_with(&format!("{first_id:x}-")),
            "id {:?}",
            got[0].id
        );
        assert!(
            got[0].id.ends_with("-1"),
            "the retried notification took a new sequence: {:?}",
            got[0].id
        );
    }

    #[test]
    fn a_fresh_state_is_written_at_start_so_its_ids_survive_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let engine = start_engine(EngineConfig::new(&path, vec![]));
        let epoch = lock(&engine).state().epoch;
        let on_disk = load(&path, t0());
        assert!(on_disk.problem.is_none(), "saw {:?}", on_disk.problem);
        assert_eq!(on_disk.state.epoch, epoch, "the file holds another epoch");
        drop(engine);
        let again = start_engine(EngineConfig::new(&path, vec![]));
        assert_eq!(
            lock(&again).state().epoch,
            epoch,
            "a restart changed the epoch"
        );
    }
}
