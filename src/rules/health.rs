//! Whether the alert state file can be written, kept where the metrics, `/readyz`, the landing page and the silence
//! API can see it: a full or read-only disk must show outside the log, not only in it.
//!
//! The runner records every save attempt here and the state loader every unreadable file it set aside. The outbox
//! keeps the matching figures for notifications ([`crate::notify::outbox::OutboxMetrics`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use jiff::Timestamp;

/// HELP text of [`crate::metrics::names::STATE_SAVE_FAILURES`].
pub const SAVE_FAILURES_HELP: &str = "Attempts to write the alert state file that failed (a full or read-only disk, \
     say); the engine keeps running on its in-memory state and tries again after each evaluation.";
/// HELP text of [`crate::metrics::names::STATE_LAST_SAVE`].
pub const LAST_SAVE_HELP: &str =
    "When the alert state file was last written successfully (or loaded, at start), unix seconds.";
/// HELP text of [`crate::metrics::names::STATE_CORRUPT`].
pub const CORRUPT_HELP: &str =
    "Alert state files found unreadable at start and set aside as .corrupt copies.";

/// The state file writer's record. Plain atomics and one short-held `std::sync::Mutex` for the reason: written by
/// the runner, read by scrapes and requests.
#[derive(Debug)]
pub struct StateHealth {
    /// Failed writes since start.
    save_failures: AtomicU64,
    /// The last successful write (or the load at start), unix milliseconds.
    last_save_ms: AtomicI64,
    /// Why the latest write failed; `None` once a write succeeds again.
    problem: Mutex<Option<String>>,
    /// Unreadable state files set aside since start (0 or 1: the file is read once).
    corrupt: AtomicU64,
}

impl StateHealth {
    /// A record that starts healthy, with its last save at `now`.
    pub fn new(now: Timestamp) -> StateHealth {
        StateHealth {
            save_failures: AtomicU64::new(0),
            last_save_ms: AtomicI64::new(now.as_millisecond()),
            problem: Mutex::new(None),
            corrupt: AtomicU64::new(0),
        }
    }

    fn problem_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // The slot holds a plain value; a panic elsewhere cannot leave it half-written.
        self.problem.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a successful write at `now`.
    pub fn saved(&self, now: Timestamp) {
        self.last_save_ms
            .store(now.as_millisecond(), Ordering::Relaxed);
        *self.problem_slot() = None;
    }

    /// Records a failed write and why (a sentence naming the file, never a secret: the state holds none).
    pub fn save_failed(&self, reason: String) {
        self.save_failures.fetch_add(1, Ordering::Relaxed);
        *self.problem_slot() = Some(reason);
    }

    /// Records an unreadable state file that was set aside.
    pub fn corrupt_found(&self) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns true if and only if the latest write of the state file succeeded (or none has failed yet). Silence
    /// writes are refused while this is false: a silence the engine cannot save would vanish at the next restart.
    pub fn can_save(&self) -> bool {
        self.problem_slot().is_none()
    }

    /// Why the latest write failed, while it has not succeeded since.
    pub fn problem(&self) -> Option<String> {
        self.problem_slot().clone()
    }

    /// Failed writes since start.
    pub fn save_failures(&self) -> u64 {
        self.save_failures.load(Ordering::Relaxed)
    }

    /// The last successful write, unix seconds.
    pub fn last_save_seconds(&self) -> f64 {
        self.last_save_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Unreadable state files set aside since start.
    pub fn corrupt_files(&self) -> u64 {
        self.corrupt.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_save_is_counted_and_reported_until_the_next_success() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let h = StateHealth::new(t0);
        assert!(h.can_save());
        h.save_failed("cannot write state file /x: No space left on device".into());
        h.save_failed("cannot write state file /x: Read-only file system".into());
        assert!(!h.can_save());
        assert_eq!(h.save_failures(), 2);
        assert_eq!(
            h.problem().as_deref(),
            Some("cannot write state file /x: Read-only file system")
        );
        assert_eq!(h.last_save_seconds(), 1_000.0);
        h.saved(Timestamp::from_second(1_060).unwrap());
        assert!(h.can_save(), "{:?}", h.problem());
        assert_eq!((h.save_failures(), h.last_save_seconds()), (2, 1_060.0));
    }
}
