//! Delivery, one lane per destination: the email channel is one destination, each named receiver (Slack, Teams,
//! PagerDuty, webhook) another. A hung webhook or SMTP server holds up only its own messages.
//!
//! [`run`] claims what is due and sends each message in a task of its own, with at most [`PER_DESTINATION`] messages
//! in flight per destination and one at a time per group and destination, so that a group's messages reach each
//! destination in the order they were queued (a "resolved" never overtakes its "firing"). Nothing waits on another
//! destination: a receiver that accepts the connection and never answers fills its own lane until its channel's
//! timeout, while mail keeps flowing.
//!
//! The file work of a delivery (reading the message, appending its id to the delivered log with fsync, moving the
//! file to `last/`) runs on blocking threads (`spawn_blocking`), never on the async workers and never under the
//! outbox's state lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use jiff::Timestamp;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    Deliver, Entry, NotifyError, Outbox, Payload, Rejection, io_err, sync_dir, write_atomic,
};
use crate::notify::Channel;
use crate::telemetry::error_chain;

/// How many messages one destination may have in flight at once. A destination that hangs holds at most this many
/// connections open (each until its channel's timeout) and delays nothing else; four lets a healthy receiver take a
/// burst of groups at once without opening a connection per group.
pub const PER_DESTINATION: usize = 4;

/// Where a message goes and which group it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Lane {
    /// `email`, or `receiver/<name>`.
    destination: String,
    /// The notification's group key; empty for a pre-rendered email (the report).
    group: String,
}

impl Lane {
    pub(super) fn of(payload: &Payload) -> Lane {
        let destination = match payload {
            Payload::Alert(_) | Payload::Email(_) => "email".to_string(),
            Payload::Receiver { receiver, .. } => format!("receiver/{}", receiver.name),
        };
        let group = payload
            .notification()
            .map_or_else(String::new, |n| n.group_key.clone());
        Lane { destination, group }
    }
}

/// Where a pending message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Its file is being written; not to be sent yet.
    Storing,
    /// On disk, waiting for its turn (or its next attempt).
    Waiting,
    /// Claimed by a delivery task.
    Sending,
}

/// A claimed message: hands it back to the queue when dropped, so that a delivery task that panics or is dropped
/// cannot leave it claimed for good, and wakes the worker to fill the freed place.
struct Claim {
    outbox: Arc<Outbox>,
    id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.outbox.release(&self.id);
        self.outbox.wake.notify_one();
    }
}

/// Runs blocking file work on tokio's blocking threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime shutting down cancels a blocking task; nothing waits for this result then.
        Err(_) => std::future::pending().await,
    }
}

/// Reads and parses one pending file.
fn read_entry(path: &Path) -> Result<Entry, String> {
    fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Entry>(&b).map_err(|e| e.to_string()))
}

/// Removes a pending file that left the queue undelivered, and makes the removal durable.
fn remove_pending(path: &Path, pending_dir: &Path) {
    let _ = fs::remove_file(path);
    let _ = sync_dir(pending_dir);
}

impl Outbox {
    /// Claims the messages that are due now, oldest first, within the lanes' limits (`per_destination` in flight per
    /// destination, one per group and destination). Returns the claimed ids and the earliest instant a message not
    /// claimed now becomes due by its backoff; messages held back only by a full lane are claimed once a delivery
    /// ends (which wakes the worker).
    fn claim_due(&self, per_destination: usize) -> (Vec<String>, Option<Instant>) {
        let now = Instant::now();
        let mut state = self.lock();
        let mut in_flight: HashMap<String, usize> = HashMap::new();
        let mut busy: HashSet<Lane> = HashSet::new();
        for m in state.pending.values().filter(|m| m.stage == Stage::Sending) {
            *in_flight.entry(m.lane.destination.clone()).or_default() += 1;
            busy.insert(m.lane.clone());
        }
        let mut due: Vec<(Timestamp, String)> = state
            .pending
            .iter()
            .filter(|(_, m)| m.stage == Stage::Waiting && m.next_attempt.is_none_or(|t| t <= now))
            .map(|(id, m)| (m.enqueued_at, id.clone()))
            .collect();
        due.sort();
        let mut claimed = Vec::new();
        for (_, id) in due {
            let Some(m) = state.pending.get_mut(&id) else {
                continue;
            };
            let sending = in_flight.entry(m.lane.destination.clone()).or_default();
            if *sending >= per_destination || busy.contains(&m.lane) {
                continue;
            }
            *sending += 1;
            busy.insert(m.lane.clone());
            m.stage = Stage::Sending;
            claimed.push(id);
        }
        let next = state
            .pending
            .values()
            .filter(|m| m.stage == Stage::Waiting)
            .filter_map(|m| m.next_attempt)
            .filter(|t| *t > now)
            .min();
        (claimed, next)
    }

    /// Puts a claimed message back in the queue (a no-op once it left the queue).
    fn release(&self, id: &str) {
        if let Some(m) = self.lock().pending.get_mut(id)
            && m.stage == Stage::Sending
        {
            m.stage = Stage::Waiting;
        }
    }

    /// Tries every message that is due now, once: each destination's messages one after another, oldest first, and
    /// the destinations at the same time, so that a slow one does not hold up the others. Returns how many were
    /// delivered. This is one round of delivery without [`run`]'s limits and timers, callable directly from tests.
    pub async fn deliver_due(self: &Arc<Self>, channel: &dyn Deliver) -> usize {
        let now = Instant::now();
        let mut lanes: BTreeMap<String, Vec<(Timestamp, String)>> = BTreeMap::new();
        {
            let mut state = self.lock();
            for (id, m) in state.pending.iter_mut() {
                if m.stage == Stage::Waiting && m.next_attempt.is_none_or(|t| t <= now) {
                    m.stage = Stage::Sending;
                    lanes
                        .entry(m.lane.destination.clone())
                        .or_default()
                        .push((m.enqueued_at, id.clone()));
                }
            }
        }
        let rounds = lanes.into_values().map(|mut ids| async move {
            ids.sort();
            let mut sent = 0;
            for (_, id) in ids {
                let claim = Claim {
                    outbox: self.clone(),
                    id,
                };
                if self.deliver_one(channel, &claim.id).await {
                    sent += 1;
                }
            }
            sent
        });
        futures_util::future::join_all(rounds)
            .await
            .into_iter()
            .sum()
    }

    /// Tries one claimed message; returns true if and only if it was delivered.
    async fn deliver_one(self: &Arc<Self>, channel: &dyn Deliver, id: &str) -> bool {
        let path = self.pending_dir.join(format!("{id}.json"));
        let read = {
            let path = path.clone();
            blocking(move || read_entry(&path)).await
        };
        let entry = match read {
            Ok(e) => e,
            Err(error) => {
                tracing::error!(file = %path.display(), %error, "outbox file vanished or became unreadable; dropped");
                let from = path.clone();
                blocking(move || fs::rename(&from, from.with_extension("json.corrupt")))
                    .await
                    .ok();
                self.forget(id);
                self.metrics
                    .of(Channel::Email)
                    .dropped
                    .fetch_add(1, Ordering::Relaxed);
                return false;
            }
        };
        let counters = self.metrics.of(entry.payload.channel());
        let error = match channel.deliver(&entry.payload).await {
            Ok(()) => {
                let (outbox, done, payload) = (self.clone(), id.to_string(), entry.payload.clone());
                blocking(move || outbox.record_delivery(&done, &payload, &path)).await;
                self.forget(id);
                counters.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    id,
                    channel = entry.payload.channel().as_str(),
                    group = entry.payload.notification().map_or("", |n| n.group_key.as_str()),
                    to = %entry.payload.recipients(),
                    "notification delivered"
                );
                return true;
            }
            Err(error) => error,
        };
        let age = Timestamp::now().duration_since(entry.enqueued_at);
        let too_old = age.as_secs_f64() > self.options.max_age.as_secs_f64();
        if let Some(status) = error.rejected_status() {
            tracing::error!(
                error = %error_chain(&error),
                id,
                status,
                "notification rejected by its receiver; it will not be retried"
            );
            let pending_dir = self.pending_dir.clone();
            blocking(move || remove_pending(&path, &pending_dir)).await;
            self.forget(id);
            counters.rejected.fetch_add(1, Ordering::Relaxed);
            if let Payload::Receiver {
                receiver,
                notification,
            } = &entry.payload
            {
                self.remember_rejection(Rejection {
                    at: Timestamp::now(),
                    receiver: receiver.name.clone(),
                    channel: receiver.channel,
                    status,
                    group_key: notification.group_key.clone(),
                });
            }
            return false;
        }
        self.remember_error(&entry.payload, error_chain(&error));
        if error.is_permanent() || too_old {
            tracing::error!(
                error = %error_chain(&error),
                id,
                too_old,
                "notification dropped: it cannot be delivered"
            );
            let pending_dir = self.pending_dir.clone();
            blocking(move || remove_pending(&path, &pending_dir)).await;
            self.forget(id);
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if let Some(m) = self.lock().pending.get_mut(id) {
            m.attempts += 1;
            let wait = self.options.backoff().after(m.attempts);
            m.next_attempt = Some(Instant::now() + wait);
            tracing::warn!(
                error = %error_chain(&error),
                id,
                attempts = m.attempts,
                retry_in_seconds = wait.as_secs(),
                "notification delivery failed; will retry"
            );
        }
        counters.failed.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// The file work after a server accepted a message (blocking; run it on a blocking thread): its id goes to the
    /// delivered log, then the file moves to `last/` or goes.
    fn record_delivery(&self, id: &str, payload: &Payload, path: &Path) {
        if let Err(error) = self.mark_delivered(id) {
            // The message went out but could not be recorded; keeping the file would send it again, so the file
            // goes anyway and the in-memory set still blocks a re-enqueue until restart.
            tracing::error!(error = %error_chain(&error), id, "cannot record a delivered notification");
        }
        self.keep_as_last(payload, path);
        let _ = sync_dir(&self.pending_dir);
    }

    /// Moves a delivered pending file to `last/<group>.json` when it holds an alert notification, replacing the
    /// group's previous one; removes it otherwise (or when the move fails: the file must leave `pending/`).
    fn keep_as_last(&self, payload: &Payload, pending: &Path) {
        if let Some(n) = payload.notification() {
            let name: String = n.group_key.bytes().map(|b| format!("{b:02x}")).collect();
            // Hex keeps any group key a safe file name; 200 bytes stays clear of every file system's name limit.
            if name.len() <= 200
                && fs::rename(pending, self.last_dir.join(format!("{name}.json"))).is_ok()
            {
                let _ = sync_dir(&self.last_dir);
                return;
            }
        }
        let _ = fs::remove_file(pending);
    }

    /// Takes a message out of the queue.
    pub(super) fn forget(&self, id: &str) {
        let mut state = self.lock();
        state.pending.remove(id);
        self.metrics
            .queue_length
            .store(state.pending.len() as u64, Ordering::Relaxed);
    }

    /// Remembers `id` as delivered and appends it to the delivered log (fsync'd); compacts the log when it has grown
    /// to twice what it keeps. Blocking: the log's own lock serialises the writers, the state lock is held only for
    /// the in-memory update.
    fn mark_delivered(&self, id: &str) -> Result<(), NotifyError> {
        let log_path: PathBuf = self.dir.join("delivered.log");
        let mut lines = self.log_lines.lock().unwrap_or_else(|p| p.into_inner());
        let compacted = {
            let mut state = self.lock();
            state.delivered.insert(id.to_string());
            state.delivered_order.push_back(id.to_string());
            while state.delivered_order.len() > self.options.delivered_keep {
                if let Some(old) = state.delivered_order.pop_front() {
                    state.delivered.remove(&old);
                }
            }
            (*lines + 1 > 2 * self.options.delivered_keep.max(1)).then(|| {
                let kept = state.delivered_order.len();
                let text: String = state
                    .delivered_order
                    .iter()
                    .flat_map(|d| [d.as_str(), "\n"])
                    .collect();
                (kept, text)
            })
        };
        match compacted {
            Some((kept, text)) => {
                write_atomic(&log_path, text.as_bytes())?;
                *lines = kept;
            }
            None => {
                let mut f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log_path)
                    .map_err(io_err(&log_path))?;
                f.write_all(format!("{id}\n").as_bytes())
                    .map_err(io_err(&log_path))?;
                f.sync_all().map_err(io_err(&log_path))?;
                *lines += 1;
            }
        }
        Ok(())
    }
}

/// The delivery worker: claims what is due (within [`PER_DESTINATION`] per destination and one per group and
/// destination), sends each claimed message in a task of its own, and sleeps until the next retry, a new message,
/// a finished delivery or shutdown. Returns when `shutdown` is cancelled, once the messages
/// being sent are finished, each bounded by its channel's timeout, so that no accepted message stays in the outbox
/// to be sent twice.
pub async fn run(outbox: Arc<Outbox>, channel: Arc<dyn Deliver>, shutdown: CancellationToken) {
    let sending = TaskTracker::new();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let (claimed, next) = outbox.claim_due(PER_DESTINATION);
        for id in claimed {
            let claim = Claim {
                outbox: outbox.clone(),
                id,
            };
            let channel = channel.clone();
            sending.spawn(async move {
                claim.outbox.deliver_one(channel.as_ref(), &claim.id).await;
            });
        }
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = outbox.wake.notified() => {}
            _ = sleep => {}
        }
    }
    sending.close();
    sending.wait().await;
}
