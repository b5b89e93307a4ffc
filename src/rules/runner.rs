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
use crate::domain::Notification;
use crate::rules::NotificationSink;
use crate::rules::engine::{Engine, SharedEngine, lock};
use crate::rules::health::StateHealth;
use crate::rules::silences::{self, SilenceStore};
use crate::rules::state::{State, StateError, load_or_fresh, rebuild_from_notified};
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
    let had_silences = !state.silences.is_empty();
    let store = Arc::new(open_silences(&config, &mut state));
    let migrated = had_silences && state.silences.is_empty();
    let alerts = state.alerts.len();
    let silences = store.snapshot().len();
    let path = config.state_file.clone();
    let mut engine = Engine::with_silences(config, state, store);
    if migrated {
        // The state file still holds the silences the store now keeps: write it without them.
        engine.mark_dirty();
    }
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

/// Opens the silence store beside the state file ([`silences::path_beside`]). A file that cannot be read is moved
/// aside (`.corrupt-<unix seconds>`) and logged, and the store starts empty.
///
/// Migration: a state file of the previous version kept the silences itself. They are moved into the store (one log
/// line), and taken out of `state` once the store has saved them; until then `state` keeps them, so the state file
/// still holds them and the next start tries again. The store skips ids it holds already, so a crash between the
/// two writes moves nothing twice.
fn open_silences(config: &EngineConfig, state: &mut State) -> SilenceStore {
    let path = silences::path_beside(&config.state_file);
    let store = match SilenceStore::open(path.clone(), config.silences) {
        Ok(store) => store,
        Err(e) => {
            let aside =
                path.with_extension(format!("json.corrupt-{}", Timestamp::now().as_second()));
            let moved = std::fs::rename(&path, &aside);
            tracing::error!(
                error = %error_chain(&e),
                moved_to = %aside.display(),
                moved = moved.is_ok(),
                "the silences file cannot be read; starting without silences"
            );
            SilenceStore::open(path.clone(), config.silences)
                .unwrap_or_else(|_| SilenceStore::in_memory(config.silences, Vec::new()))
        }
    };
    if !state.silences.is_empty() {
        let count = state.silences.len();
        match store.import(state.silences.clone()) {
            Ok(_) => {
                state.silences.clear();
                tracing::info!(
                    silences = count,
                    from = %config.state_file.display(),
                    to = %path.display(),
                    "silences moved from the state file to a file of their own"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, to = %path.display(), "cannot move the silences out of the state file yet; they stay there and apply");
                return SilenceStore::in_memory(config.silences, state.silences.clone());
            }
        }
    }
    store
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
    expire_silences(engine, now).await;
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

/// Silence expiry maintenance: forgets the silences that ended a day before `now`, on a blocking thread (it writes
/// the silences file) and only when there is one to forget.
async fn expire_silences(engine: &SharedEngine, now: Timestamp) {
    let store = Arc::clone(lock(engine).silence_store());
    if !store.has_expired(now) {
        return;
    }
    match tokio::task::spawn_blocking(move || store.expire(now)).await {
        Ok(Ok(n)) => tracing::debug!(forgotten = n, "expired silences forgotten"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot forget expired silences; will try again next round")
        }
        Err(e) => tracing::warn!(error = %e, "silence expiry panicked"),
    }
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
    use crate::domain::{Agent, AgentList, Provider};
    use crate::domain::{Notification, SinkError};
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

    impl crate::domain::NotificationSink for RecordingSink {
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
            sink.clone() as Arc<dyn crate::domain::NotificationSink>,
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
        let dyn_sink = sink.clone() as Arc<dyn crate::domain::NotificationSink>;
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

    /// A state file as the previous version wrote it: silences inside, and a firing `AgentHeartbeatStale` for
    /// `prod/a1` that was notified ten minutes before `t0`.
    const PREVIOUS_VERSION_STATE: &str = r#"{
  "version": 1,
  "epoch": 1767600000000,
  "alerts": [
    {
      "alertname": "AgentHeartbeatStale", "account": "prod", "provider": "celigo",
      "agent_id": "a1", "agent_name": "edge-1", "version": null, "severity": "critical",
      "value": "last heartbeat 50m ago", "threshold": "10m", "value_seconds": 3000, "threshold_seconds": 600,
      "summary": "last heartbeat 50 min ago; limit 10 min", "state": "firing",
      "active_at": "2026-01-05T11:10:00Z", "fired_at": "2026-01-05T11:30:00Z",
      "keep_firing_since": null, "resolved_at": null
    }
  ],
  "groups": {
    "AgentHeartbeatStale/prod": {
      "alertname": "AgentHeartbeatStale", "account": "prod", "created_at": "2026-01-05T11:30:00Z",
      "next_flush": "2026-01-05T11:55:00Z", "last_sent": "2026-01-05T11:50:00Z", "notified": ["a1"]
    }
  },
  "sequences": { "AgentHeartbeatStale/prod": 4 },
  "silences": [
    {
      "id": "18f0c2a-3", "matchers": [{ "name": "agent_name", "value": "edge-1" }],
      "starts_at": "2026-01-05T11:00:00Z", "ends_at": "2026-01-06T11:00:00Z",
      "created_by": "ops", "comment": "disk swap", "created_at": "2026-01-05T11:00:00Z"
    }
  ],
  "next_silence": 4
}"#;

    #[tokio::test]
    async fn a_state_file_of_the_previous_version_loads_its_silences_move_to_their_own_file_and_nothing_is_sent_again()
     {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, PREVIOUS_VERSION_STATE).unwrap();
        let config = EngineConfig::new(&path, vec!["ops@example.com".into()]);
        let health = StateHealth::new(t0());
        let engine = start_engine_with(config, &health, Vec::new);
        assert_eq!(health.corrupt_files(), 0, "the old file was set aside");

        let moved = SilenceStore::open(silences::path_beside(&path), Default::default()).unwrap();
        let ids: Vec<String> = moved.snapshot().iter().map(|s| s.id.clone()).collect();
        assert_eq!(ids, vec!["18f0c2a-3".to_string()], "the silences file");
        assert!(
            lock(&engine).state().silences.is_empty(),
            "the silences stayed in the alert state"
        );

        let sink = Arc::new(RecordingSink {
            got: Mutex::new(Vec::new()),
            fail_first: AtomicUsize::new(0),
            state_file: path.clone(),
            saw_sent_state_early: Mutex::new(false),
        });
        let dyn_sink = sink.clone() as Arc<dyn crate::domain::NotificationSink>;
        let registry = registry_with_a_stale_agent();
        for secs in [0, 5, 60] {
            let now = t0().checked_add(Duration::from_secs(secs)).unwrap();
            run_once(&engine, &registry, &dyn_sink, &path, now).await;
        }
        let got: Vec<String> = sink
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.id.clone())
            .collect();
        assert!(got.is_empty(), "sent again across the upgrade: {got:?}");
        let views = lock(&engine).alerts(t0());
        assert_eq!(views.len(), 1, "saw {views:?}");
        assert_eq!(
            views[0].silenced_by,
            vec!["18f0c2a-3".to_string()],
            "the moved silence applies"
        );

        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(
            !on_disk.contains("18f0c2a-3"),
            "the state file still holds the silence: {on_disk}"
        );
        let reloaded = load(&path, t0());
        assert!(reloaded.problem.is_none(), "saw {:?}", reloaded.problem);
        assert_eq!(reloaded.state.sequences["AgentHeartbeatStale/prod"], 4);
    }
}
