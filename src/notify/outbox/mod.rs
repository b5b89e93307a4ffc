//! The durable outbox: every notification is written to disk before the rule engine is told it was taken, and a
//! delivery worker sends it with retries and capped exponential backoff, deleting it only once the server accepted
//! it. An SMTP outage or a restart therefore loses nothing.
//!
//! Layout, in a directory next to the state file (`state.json` → `state.json.outbox/`):
//!
//! ```text
//! pending/<id>.json   one message waiting for delivery, written atomically (temp file, fsync, rename, fsync dir)
//! delivered.log       the ids delivered lately, one per line, appended and fsync'd before the pending file goes
//! last/<group>.json   the last alert notification delivered per group (the pending file, renamed), so that a
//!                     lost or corrupt state file can be rebuilt from what people were last told ([`Outbox::notified`])
//! ```
//!
//! One notification becomes one message per destination: `<id>` for the email, `<id>.<receiver>` for each named
//! receiver (Slack, Teams, PagerDuty, webhook), so that each destination is retried on its own and a Slack outage
//! never re-sends an email. A receiver's message holds its name and channel, never its URL or key: those are read
//! from the config when the message is sent.
//! `last/` holds one file per group (rule × source), so it stays as small as the number of groups.
//!
//! Enqueue is idempotent by id: an id that is pending or in the delivered log is ignored, so the rule engine may hand
//! the same notification over again after a crash and no second message goes out. Delivery is at least once in one
//! narrow case only: a crash after the server accepted a message and before its id reached the log re-sends it on
//! restart (SMTP has no idempotency key); the message keeps its `Message-ID`, so mail clients fold the copy, and a
//! PagerDuty event keeps its `dedup_key`, so PagerDuty folds it into the same incident.
//!
//! Each destination (the email channel, each named receiver) is delivered on its own ([`deliver`]): a hung webhook
//! or SMTP server holds up only its own messages, never another destination's. All file work of delivery runs on
//! blocking threads.
//!
//! A receiver that refuses a message for good (an HTTP 3xx or 4xx other than 408 and 429) is not retried: the message
//! is counted as `rejected`, logged, and listed in [`Outbox::rejections`] for the landing page.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::future::Future;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::email::{EmailChannel, RenderedEmail};
use super::{
    Channel, DeliveryError, Notification, NotificationSink, NotifyError, ReceiverRef, SinkError,
};
use crate::atomic_file;
use crate::backoff::Backoff;
use crate::telemetry::error_chain;

pub mod deliver;
use deliver::{Lane, Stage};
pub use deliver::{PER_DESTINATION, run};

/// HELP text of `onprem_agent_notifications_total` (named in [`crate::metrics::names::NOTIFICATIONS`]).
pub const NOTIFICATIONS_TOTAL_HELP: &str = "Notification delivery attempts by channel and outcome: sent (accepted by \
     the server), failed (will be retried), rejected (refused for good by the receiver, not retried) or dropped \
     (malformed, no longer routable, or older than the outbox age limit).";

/// How many recent rejections [`Outbox::rejections`] keeps: enough to see which receivers are broken.
pub const REJECTIONS_KEPT: usize = 20;
/// HELP text of [`crate::metrics::names::NOTIFICATION_ENQUEUE_FAILURES`].
pub const ENQUEUE_FAILURES_HELP: &str = "Attempts to store notifications in the outbox that failed (a full or \
     read-only disk, say); the rule engine hands the same notifications over again next round, so none is lost.";
/// HELP text of [`crate::metrics::names::NOTIFICATION_LAST_ENQUEUE`].
pub const LAST_ENQUEUE_HELP: &str = "When the outbox last stored a notification successfully (or was opened, at \
     start), unix seconds.";
/// HELP text of [`crate::metrics::names::NOTIFICATION_QUEUE`].
pub const NOTIFICATION_QUEUE_LENGTH_HELP: &str =
    "Notifications stored in the outbox and not yet delivered.";

/// What the outbox holds for one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// An alert notification from the rule engine, rendered at delivery time.
    Alert(Notification),
    /// A message rendered ahead of time (the compliance report).
    Email(RenderedEmail),
    /// An alert notification for one named receiver, rendered at delivery time from the receiver's current config.
    Receiver {
        receiver: ReceiverRef,
        notification: Notification,
    },
}

impl Payload {
    /// The channel the payload goes through, for the metrics.
    pub fn channel(&self) -> Channel {
        match self {
            Payload::Alert(_) | Payload::Email(_) => Channel::Email,
            Payload::Receiver { receiver, .. } => receiver.channel,
        }
    }

    /// The alert notification the payload carries, whatever its destination; `None` for a pre-rendered email.
    pub fn notification(&self) -> Option<&Notification> {
        match self {
            Payload::Alert(n)
            | Payload::Receiver {
                notification: n, ..
            } => Some(n),
            Payload::Email(_) => None,
        }
    }

    /// Who it goes to, for the delivery log: the email addresses, or the receiver's name (never its URL).
    fn recipients(&self) -> String {
        match self {
            Payload::Alert(n) => n.to.join(", "),
            Payload::Email(e) => {
                e.to.iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            Payload::Receiver { receiver, .. } => receiver.name.clone(),
        }
    }
}

/// A message a receiver refused for good, as the landing page lists it. Holds no secret: the receiver's name, not
/// its URL or key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// When it was refused.
    pub at: Timestamp,
    /// `alerting.receivers[].name`.
    pub receiver: String,
    /// The receiver's channel.
    pub channel: Channel,
    /// The HTTP status the receiver answered.
    pub status: u16,
    /// The notification's group (`AgentOffline/prod`).
    pub group_key: String,
}

/// One pending file's content.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    id: String,
    /// When it was enqueued; orders delivery and bounds its age.
    enqueued_at: Timestamp,
    payload: Payload,
}

/// Tunables; [`OutboxOptions::default`] suits production.
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// The wait after the first failed attempt; doubled per failure up to `max_backoff`. Set from
    /// `alerting.retry_initial_backoff`.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts for one message, so a long outage is noticed soon after it ends.
    pub max_backoff: Duration,
    /// A message still undelivered this long after it was enqueued is dropped (and counted and logged): an alert
    /// a week late helps nobody, and the outbox must not grow without bound.
    pub max_age: Duration,
    /// How many delivered ids the log keeps; far more than one engine restart can re-produce.
    pub delivered_keep: usize,
}

impl OutboxOptions {
    /// The wait between attempts: [`crate::backoff`]'s policy from `initial_backoff` up to `max_backoff`.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            first: self.initial_backoff,
            max: self.max_backoff,
        }
    }
}

impl Default for OutboxOptions {
    fn default() -> OutboxOptions {
        OutboxOptions {
            initial_backoff: crate::config::alerting::DEFAULT_RETRY_INITIAL_BACKOFF,
            max_backoff: Duration::from_secs(600),
            max_age: Duration::from_secs(7 * 86_400),
            delivered_keep: 10_000,
        }
    }
}

/// One channel's delivery counters.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
}

/// Delivery counters for the metrics renderer, per channel. Plain atomics: the worker increments, scrapes read.
#[derive(Debug, Default)]
pub struct OutboxMetrics {
    /// Indexed by the channel's place in [`Channel::ALL`].
    by_channel: [Counters; Channel::ALL.len()],
    queue_length: AtomicU64,
    /// Failed attempts to store a message, since start.
    enqueue_failures: AtomicU64,
    /// The last successful store (or the open), unix milliseconds.
    last_enqueue_ms: AtomicI64,
    /// Why the latest store failed; `None` once one succeeds again. Read by `/readyz` and the landing page.
    enqueue_problem: Mutex<Option<String>>,
}

impl OutboxMetrics {
    fn of(&self, channel: Channel) -> &Counters {
        &self.by_channel[channel as usize]
    }
    fn sum(&self, f: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.by_channel
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum()
    }
    /// Messages the server accepted, since start, all channels.
    pub fn sent(&self) -> u64 {
        self.sum(|c| &c.sent)
    }
    /// Failed attempts that will be retried, since start, all channels.
    pub fn failed(&self) -> u64 {
        self.sum(|c| &c.failed)
    }
    /// Messages a receiver refused for good, since start, all channels.
    pub fn rejected(&self) -> u64 {
        self.sum(|c| &c.rejected)
    }
    /// Messages given up on for another reason, since start, all channels.
    pub fn dropped(&self) -> u64 {
        self.sum(|c| &c.dropped)
    }
    /// Messages waiting now.
    pub fn queue_length(&self) -> u64 {
        self.queue_length.load(Ordering::Relaxed)
    }
    /// Failed attempts to store a message, since start.
    pub fn enqueue_failures(&self) -> u64 {
        self.enqueue_failures.load(Ordering::Relaxed)
    }
    /// The last successful store (or the open, at start), unix seconds.
    pub fn last_enqueue_seconds(&self) -> f64 {
        self.last_enqueue_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }
    /// Why the latest attempt to store a message failed, while none has succeeded since: notifications cannot be
    /// queued now.
    pub fn enqueue_problem(&self) -> Option<String> {
        self.problem_slot().clone()
    }
    fn problem_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A plain value; a panic elsewhere cannot leave it half-written.
        self.enqueue_problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
    /// Records the outcome of one attempt to store a message.
    fn record_enqueue<T>(&self, result: &Result<T, NotifyError>) {
        match result {
            Ok(_) => {
                self.last_enqueue_ms
                    .store(Timestamp::now().as_millisecond(), Ordering::Relaxed);
                *self.problem_slot() = None;
            }
            Err(e) => {
                self.enqueue_failures.fetch_add(1, Ordering::Relaxed);
                *self.problem_slot() = Some(error_chain(e));
            }
        }
    }
    /// `(channel, outcome, count)` for every series of `onprem_agent_notifications_total`, zeros included, so that the
    /// series exist before the first message. Every channel is listed, configured or not, so that a dashboard can
    /// rely on the series.
    pub fn totals(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::with_capacity(Channel::ALL.len() * 4);
        for ch in Channel::ALL {
            let c = self.of(ch);
            for (outcome, n) in [
                ("sent", &c.sent),
                ("failed", &c.failed),
                ("rejected", &c.rejected),
                ("dropped", &c.dropped),
            ] {
                out.push((ch.as_str(), outcome, n.load(Ordering::Relaxed)));
            }
        }
        out
    }
}

/// Something that delivers payloads: [`super::dispatch::Channels`], the email channel alone (the demo), or a fake in
/// tests.
pub trait Deliver: Send + Sync {
    /// Sends one payload; `Ok` only once the receiving server accepted it.
    fn deliver<'a>(
        &'a self,
        payload: &'a Payload,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;
}

impl Deliver for EmailChannel {
    fn deliver<'a>(
        &'a self,
        payload: &'a Payload,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async move {
            match payload {
                Payload::Alert(n) => self.send_notification(n).await,
                Payload::Email(r) => self.send_rendered(r).await,
                Payload::Receiver { receiver, .. } => {
                    Err(DeliveryError::UnknownReceiver(receiver.name.clone()))
                }
            }
        })
    }
}

/// A pending message's place in the queue; the payload stays on disk.
#[derive(Debug)]
struct Meta {
    enqueued_at: Timestamp,
    /// Failed attempts so far (in this process; a restart retries at once).
    attempts: u32,
    /// Not before this instant; `None` means now.
    next_attempt: Option<Instant>,
    /// Its destination and group, which order and bound delivery.
    lane: Lane,
    /// Being stored, waiting, or being sent.
    stage: Stage,
}

#[derive(Debug)]
struct State {
    /// Pending ids.
    pending: BTreeMap<String, Meta>,
    /// Delivered ids, for idempotent enqueue; `delivered_order` keeps their order for trimming.
    delivered: HashSet<String>,
    delivered_order: VecDeque<String>,
}

/// The durable outbox. Share it as `Arc<Outbox>` between the rule engine (as its [`NotificationSink`]) and the
/// delivery worker ([`run`]).
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    pending_dir: PathBuf,
    /// `last/`: the last alert notification delivered per group.
    last_dir: PathBuf,
    /// `std::sync::Mutex`: it is held for in-memory updates only, never for file I/O and never across an `.await`.
    state: Mutex<State>,
    /// Lines in `delivered.log`, to know when to compact it. Its own lock, taken only on blocking threads, serialises
    /// the appends (each fsync'd) and compactions of the log without holding `state` for the length of an fsync.
    log_lines: Mutex<usize>,
    /// Wakes the worker when something is enqueued.
    wake: Notify,
    metrics: OutboxMetrics,
    /// The latest [`REJECTIONS_KEPT`] rejections, newest last, for the landing page. In memory only: after a
    /// restart the counter in the metrics still tells the story.
    rejections: Mutex<VecDeque<Rejection>>,
    /// The last failed delivery per destination (`email`, or a receiver as `name (channel)`), as its error chain
    /// (the same text the log has, which carries no secret) and when; for the landing page. In memory only, and
    /// bounded by the configured destinations.
    last_errors: Mutex<BTreeMap<String, (Timestamp, String)>>,
    options: OutboxOptions,
}

/// The outbox directory for a state file: `<state_file>.outbox`, next to it.
pub fn dir_for_state_file(state_file: &Path) -> PathBuf {
    let mut name = state_file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "state".into());
    name.push(".outbox");
    state_file.with_file_name(name)
}

/// Returns true if and only if `id` is safe as a file name: 1 to 200 bytes of `[0-9A-Za-z._-]`, not starting
/// with a dot.
fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> NotifyError + '_ {
    move |source| NotifyError::Outbox {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (see [`atomic_file::write`]).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NotifyError> {
    atomic_file::write(path, bytes).map_err(io_err(path))
}

fn sync_dir(dir: &Path) -> Result<(), NotifyError> {
    atomic_file::sync_dir(dir).map_err(io_err(dir))
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `dir`, loading the pending messages and the delivered log.
    ///
    /// A pending file that does not parse is renamed to `<name>.corrupt`, logged and counted as dropped, so one
    /// bad file cannot stop delivery of the others.
    pub fn open(dir: impl Into<PathBuf>, options: OutboxOptions) -> Result<Outbox, NotifyError> {
        let dir = dir.into();
        let pending_dir = dir.join("pending");
        fs::create_dir_all(&pending_dir).map_err(io_err(&pending_dir))?;
        let last_dir = dir.join("last");
        fs::create_dir_all(&last_dir).map_err(io_err(&last_dir))?;
        let metrics = OutboxMetrics::default();
        metrics
            .last_enqueue_ms
            .store(Timestamp::now().as_millisecond(), Ordering::Relaxed);

        let mut pending = BTreeMap::new();
        for entry in fs::read_dir(&pending_dir).map_err(io_err(&pending_dir))? {
            let entry = entry.map_err(io_err(&pending_dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if atomic_file::is_temporary(&name) {
                // A write interrupted before its rename: the enqueue never returned Ok, so the engine retries it.
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Entry>(&b).map_err(|e| e.to_string()))
            {
                Ok(e) if e.id == id => {
                    pending.insert(
                        e.id,
                        Meta {
                            enqueued_at: e.enqueued_at,
                            attempts: 0,
                            next_attempt: None,
                            lane: Lane::of(&e.payload),
                            stage: Stage::Waiting,
                        },
                    );
                }
                Ok(e) => {
                    tracing::error!(file = %path.display(), id = %e.id, "outbox file name and id differ; set aside");
                    let _ = fs::rename(&path, path.with_extension("json.corrupt"));
                    // Its channel is unknown; counted under email, where every message went before receivers.
                    metrics
                        .of(Channel::Email)
                        .dropped
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::error!(file = %path.display(), %error, "unreadable outbox file; set aside");
                    let _ = fs::rename(&path, path.with_extension("json.corrupt"));
                    // Its channel is unknown; counted under email, where every message went before receivers.
                    metrics
                        .of(Channel::Email)
                        .dropped
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }

        let log_path = dir.join("delivered.log");
        let mut delivered_order = VecDeque::new();
        let mut log_lines = 0;
        match File::open(&log_path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line.map_err(io_err(&log_path))?;
                    let id = line.trim();
                    if !id.is_empty() {
                        delivered_order.push_back(id.to_string());
                        log_lines += 1;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&log_path)(e)),
        }
        while delivered_order.len() > options.delivered_keep {
            delivered_order.pop_front();
        }
        let delivered = delivered_order.iter().cloned().collect();
        // A message both pending and delivered: the crash came between the log append and the delete.
        let mut state = State {
            pending,
            delivered,
            delivered_order,
        };
        let stale: Vec<String> = state
            .pending
            .keys()
            .filter(|id| state.delivered.contains(*id))
            .cloned()
            .collect();
        for id in stale {
            let _ = fs::remove_file(pending_dir.join(format!("{id}.json")));
            state.pending.remove(&id);
        }
        metrics
            .queue_length
            .store(state.pending.len() as u64, Ordering::Relaxed);
        Ok(Outbox {
            dir,
            pending_dir,
            last_dir,
            state: Mutex::new(state),
            log_lines: Mutex::new(log_lines),
            wake: Notify::new(),
            metrics,
            rejections: Mutex::new(VecDeque::new()),
            last_errors: Mutex::new(BTreeMap::new()),
            options,
        })
    }

    /// The outbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Delivery counters and the queue length.
    pub fn metrics(&self) -> &OutboxMetrics {
        &self.metrics
    }

    /// The ids waiting for delivery, in id order.
    pub fn pending_ids(&self) -> Vec<String> {
        self.lock().pending.keys().cloned().collect()
    }

    /// Returns true if and only if `id` is pending or was delivered lately (within the delivered log).
    pub fn knows(&self, id: &str) -> bool {
        let state = self.lock();
        state.pending.contains_key(id) || state.delivered.contains(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every update is a single insert or remove).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores one payload durably under `id` and wakes the worker. Returns `Ok(false)` if and only if the id was
    /// already pending or delivered, in which case nothing is written.
    ///
    /// Every attempt is recorded in [`OutboxMetrics`]: a failure to store counts as an enqueue failure, and the
    /// outbox reports itself unable to queue until a store succeeds again.
    pub fn enqueue_payload(&self, id: &str, payload: Payload) -> Result<bool, NotifyError> {
        let result = self.store(id, payload);
        if !matches!(result, Err(NotifyError::BadId(_))) {
            self.metrics.record_enqueue(&result);
        }
        result
    }

    fn store(&self, id: &str, payload: Payload) -> Result<bool, NotifyError> {
        if !safe_id(id) {
            return Err(NotifyError::BadId(id.to_string()));
        }
        let entry = Entry {
            id: id.to_string(),
            enqueued_at: Timestamp::now(),
            payload,
        };
        let bytes = serde_json::to_vec_pretty(&entry).map_err(|source| NotifyError::Encode {
            id: id.to_string(),
            source,
        })?;
        {
            let mut state = self.lock();
            if state.pending.contains_key(id) || state.delivered.contains(id) {
                return Ok(false);
            }
            // Reserved while the file is written, outside the lock: a second store of the id sees it and skips, and
            // delivery leaves it alone until it is on disk.
            state.pending.insert(
                id.to_string(),
                Meta {
                    enqueued_at: entry.enqueued_at,
                    attempts: 0,
                    next_attempt: None,
                    lane: Lane::of(&entry.payload),
                    stage: Stage::Storing,
                },
            );
        }
        let written = write_atomic(&self.pending_dir.join(format!("{id}.json")), &bytes);
        let mut state = self.lock();
        if let Err(e) = written {
            state.pending.remove(id);
            return Err(e);
        }
        if let Some(m) = state.pending.get_mut(id) {
            m.stage = Stage::Waiting;
        }
        self.metrics
            .queue_length
            .store(state.pending.len() as u64, Ordering::Relaxed);
        drop(state);
        self.wake.notify_one();
        Ok(true)
    }

    fn remember_error(&self, payload: &Payload, error: String) {
        let destination = match payload {
            Payload::Alert(_) | Payload::Email(_) => Channel::Email.as_str().to_string(),
            Payload::Receiver { receiver, .. } => {
                format!("{} ({})", receiver.name, receiver.channel.as_str())
            }
        };
        let mut kept = self.last_errors.lock().unwrap_or_else(|e| e.into_inner());
        kept.insert(destination, (Timestamp::now(), error));
    }

    /// The last failed delivery per destination (`email`, or a receiver as `name (channel)`): when, and the error
    /// chain, which carries no secret. Destinations that never failed since start are absent.
    pub fn last_errors(&self) -> Vec<(String, Timestamp, String)> {
        let kept = self.last_errors.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter()
            .map(|(d, (at, e))| (d.clone(), *at, e.clone()))
            .collect()
    }

    fn remember_rejection(&self, r: Rejection) {
        let mut kept = self.rejections.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= REJECTIONS_KEPT {
            kept.pop_front();
        }
        kept.push_back(r);
    }

    /// The latest rejections (at most [`REJECTIONS_KEPT`]), newest first, for the landing page.
    pub fn rejections(&self) -> Vec<Rejection> {
        let kept = self.rejections.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().rev().cloned().collect()
    }

    /// The latest alert notification per group that was delivered (`last/`) or is waiting (`pending/`), read from
    /// disk. This is what people were last told, or are about to be: a rule engine that lost its state rebuilds its
    /// notification log from it instead of sending everything again. Unreadable files are skipped.
    pub fn notified(&self) -> Vec<Notification> {
        let mut latest: BTreeMap<String, Notification> = BTreeMap::new();
        for dir in [&self.last_dir, &self.pending_dir] {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let Ok(entry) = fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice::<Entry>(&b).map_err(|e| e.to_string()))
                else {
                    continue;
                };
                // Email or a named receiver: either way, what the group was told.
                let n = match entry.payload {
                    Payload::Alert(n)
                    | Payload::Receiver {
                        notification: n, ..
                    } => n,
                    Payload::Email(_) => continue,
                };
                match latest.get(&n.group_key) {
                    Some(known) if known.created_at >= n.created_at => {}
                    _ => {
                        latest.insert(n.group_key.clone(), n);
                    }
                }
            }
        }
        latest.into_values().collect()
    }
}

impl NotificationSink for Outbox {
    /// Stores one message per destination of each notification: the email (id `<id>`) when the notification names
    /// addresses or no receiver at all, and one message per named receiver (id `<id>.<receiver>`). Receiver names
    /// are `[A-Za-z0-9_-]` and engine ids have no dot, so the ids cannot collide. A crash half-way leaves some
    /// destinations stored; the engine hands the notification over again and the stored ones are skipped.
    fn enqueue(&self, notifications: &[Notification]) -> Result<(), SinkError> {
        for n in notifications {
            if !n.to.is_empty() || n.receivers.is_empty() {
                self.enqueue_payload(&n.id, Payload::Alert(n.clone()))?;
            }
            for r in &n.receivers {
                self.enqueue_payload(
                    &format!("{}.{}", n.id, r.name),
                    Payload::Receiver {
                        receiver: r.clone(),
                        notification: n.clone(),
                    },
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
