//! The notification log, as Alertmanager's `nflog/`: what was handed to delivery.
//!
//! - [`Undo`]: what one evaluation changed in the log (groups and sequences, part of
//!   [`crate::rules::state::State`] and saved in the state file), so that a hand-over the sink refused can be rolled
//!   back and the next evaluation produces the same notifications with the same ids.
//! - [`HandedOver`]: the last notification of each group handed to delivery, in a file of its own beside the state
//!   file. It is written by the hand-over itself ([`Recording`] wraps the sink), so that data flows one way: a state
//!   file that is lost or corrupt is rebuilt from this record
//!   ([`crate::rules::state::rebuild_from_notified`]), not from the outbox.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::atomic_file;
use crate::domain::{Alert, Notification, NotificationSink, SinkError};
use crate::rules::state::{GroupLog, State};

/// The notification log as it was before one evaluation's flushes.
#[derive(Debug, Default)]
pub struct Undo {
    /// The groups before the flushes.
    pub groups: BTreeMap<String, GroupLog>,
    /// The sequences before the flushes.
    pub sequences: BTreeMap<String, u64>,
    /// Resolved alerts that the flushes removed because their notice was handed over.
    pub removed: Vec<Alert>,
}

impl Undo {
    /// Records the log of `state` as it is now.
    pub fn record(state: &State) -> Undo {
        Undo {
            groups: state.groups.clone(),
            sequences: state.sequences.clone(),
            removed: Vec::new(),
        }
    }

    /// Puts the recorded log and the removed alerts back into `state`. Alert lifecycles stay as they are.
    pub fn apply(self, state: &mut State) {
        state.groups = self.groups;
        state.sequences = self.sequences;
        for a in self.removed {
            state.alerts.insert(a.key(), a);
        }
    }
}

/// The last notification of each group handed to delivery, kept in memory and in its file (`state.nflog.json` for
/// `state.json`): one entry per group (rule × source), so it stays as small as the number of groups.
#[derive(Debug)]
pub struct HandedOver {
    /// The file.
    path: PathBuf,
    /// By group key. A `std::sync::Mutex`: held while the file is written, on a blocking thread (the sink is
    /// called from `spawn_blocking`), never across an `.await`.
    last: Mutex<BTreeMap<String, Notification>>,
}

/// The record of `state_file`: `state.json` keeps it in `state.nflog.json` beside it.
pub fn path_beside(state_file: &Path) -> PathBuf {
    let stem = state_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_string());
    state_file.with_file_name(format!("{stem}.nflog.json"))
}

impl HandedOver {
    /// Opens the record at `path`. A missing or unreadable file is an empty record (an unreadable one is logged):
    /// the record only matters when the state file is lost too.
    pub fn open(path: PathBuf) -> HandedOver {
        let last = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "the notification log cannot be read; starting it afresh");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        HandedOver {
            path,
            last: Mutex::new(last),
        }
    }

    /// Returns true if and only if the record has no entry (a new file, or a first start after an upgrade).
    pub fn is_empty(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Records `notifications` as handed over (the newest per group wins) and writes the file. Blocks.
    pub fn record(&self, notifications: &[Notification]) -> std::io::Result<()> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        for n in notifications {
            match last.get(&n.group_key) {
                Some(known) if known.created_at > n.created_at => {}
                _ => {
                    last.insert(n.group_key.clone(), n.clone());
                }
            }
        }
        let bytes = serde_json::to_vec(&*last).map_err(std::io::Error::other)?;
        atomic_file::write(&self.path, &bytes)
    }

    /// The last notification of every group, for rebuilding a lost state.
    pub fn last(&self) -> Vec<Notification> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// A sink that hands notifications to `inner` and then records them in the notification log: what was handed to
/// delivery is known without asking delivery.
pub struct Recording {
    /// Where notifications go (the outbox).
    pub inner: Arc<dyn NotificationSink>,
    /// The record.
    pub log: Arc<HandedOver>,
}

impl NotificationSink for Recording {
    fn enqueue(&self, notifications: &[Notification]) -> Result<(), SinkError> {
        self.inner.enqueue(notifications)?;
        // The hand-over stands even when the record cannot be written: the record only spares mail after a lost
        // state file, and the next hand-over of the group writes it again.
        if let Err(e) = self.log.record(notifications) {
            tracing::warn!(path = %self.log.path.display(), error = %e, "cannot write the notification log");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AlertName, NotificationStatus, Provider, Severity};

    fn note(group: &str, seq: u32, status: NotificationStatus) -> Notification {
        Notification {
            id: format!("1-{group}-{seq}"),
            group_key: group.to_string(),
            status,
            alertname: AlertName::AgentOffline,
            severity: Severity::Critical,
            account: "prod".into(),
            provider: Some(Provider::Celigo),
            to: vec![],
            receivers: vec![],
            firing: vec![],
            resolved: vec![],
            muted: vec![],
            still_muted: 0,
            source_problem: None,
            created_at: jiff::Timestamp::from_second(1_800_000_000 + i64::from(seq)).unwrap(),
            external_url: None,
        }
    }

    struct Refuse;

    impl NotificationSink for Refuse {
        fn enqueue(&self, _: &[Notification]) -> Result<(), SinkError> {
            Err("outbox disk full".into())
        }
    }

    struct Accept;

    impl NotificationSink for Accept {
        fn enqueue(&self, _: &[Notification]) -> Result<(), SinkError> {
            Ok(())
        }
    }

    #[test]
    fn the_log_keeps_the_newest_notification_per_group_handed_over_and_nothing_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_beside(&dir.path().join("state.json"));
        assert_eq!(path, dir.path().join("state.nflog.json"));
        let log = Arc::new(HandedOver::open(path.clone()));
        let refused = Recording {
            inner: Arc::new(Refuse),
            log: Arc::clone(&log),
        };
        assert!(
            refused
                .enqueue(&[note("a", 1, NotificationStatus::Firing)])
                .is_err()
        );
        assert!(log.is_empty(), "a refused hand-over was recorded");

        let sink = Recording {
            inner: Arc::new(Accept),
            log: Arc::clone(&log),
        };
        sink.enqueue(&[
            note("a", 2, NotificationStatus::Firing),
            note("b", 1, NotificationStatus::Firing),
        ])
        .unwrap();
        sink.enqueue(&[note("a", 3, NotificationStatus::Resolved)])
            .unwrap();
        let ids = |ns: Vec<Notification>| ns.into_iter().map(|n| n.id).collect::<Vec<_>>();
        assert_eq!(ids(log.last()), vec!["1-a-3", "1-b-1"]);
        assert_eq!(
            ids(HandedOver::open(path).last()),
            vec!["1-a-3", "1-b-1"],
            "read back from the file"
        );
    }
}
