use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::notify::{NotificationStatus, Severity};

/// A channel that fails while `down` is set and records what it delivered.
#[derive(Default)]
struct FakeChannel {
    down: AtomicBool,
    delivered: Mutex<Vec<String>>,
}

impl Deliver for FakeChannel {
    fn deliver<'a>(
        &'a self,
        payload: &'a Payload,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(DeliveryError::Smtp(
                    super::super::email::SmtpError::StarttlsUnsupported {
                        host: "fake".into(),
                        port: 25,
                    },
                ));
            }
            let id = match payload {
                Payload::Alert(n) => n.id.clone(),
                Payload::Email(r) => r.subject.clone(),
                Payload::Receiver {
                    receiver,
                    notification,
                } => format!("{}.{}", notification.id, receiver.name),
            };
            self.delivered.lock().unwrap().push(id);
            Ok(())
        })
    }
}

fn notification(id: &str) -> Notification {
    Notification {
        id: id.into(),
        group_key: "AgentOffline/prod".into(),
        status: NotificationStatus::Firing,
        alertname: crate::domain::AlertName::AgentOffline,
        severity: Severity::Critical,
        account: "prod".into(),
        provider: Some(crate::domain::Provider::Celigo),
        to: vec!["ops@example.com".into()],
        receivers: vec![],
        firing: vec![],
        resolved: vec![],
        created_at: Timestamp::now(),
        external_url: None,
        muted: vec![],
        still_muted: 0,
        source_problem: None,
    }
}

fn options() -> OutboxOptions {
    OutboxOptions {
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(8),
        max_age: Duration::from_secs(3600),
        delivered_keep: 3,
    }
}

#[test]
fn backoff_doubles_from_the_initial_wait_and_stops_at_the_cap() {
    let o = options();
    let waits: Vec<u64> = (1..=6).map(|a| o.backoff().after(a).as_secs()).collect();
    assert_eq!(waits, vec![1, 2, 4, 8, 8, 8]);
    assert_eq!(o.backoff().after(u32::MAX), Duration::from_secs(8));
}

#[test]
fn the_outbox_sits_next_to_the_state_file() {
    assert_eq!(
        dir_for_state_file(Path::new("/var/lib/x/state.json")),
        PathBuf::from("/var/lib/x/state.json.outbox")
    );
}

#[tokio::test]
async fn enqueue_is_idempotent_against_pending_and_delivered_ids_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ch = FakeChannel::default();
    {
        let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
        ob.enqueue(&[
            notification("a-1"),
            notification("a-1"),
            notification("a-2"),
        ])
        .unwrap();
        assert_eq!(ob.pending_ids(), vec!["a-1", "a-2"]);
        assert_eq!(ob.metrics().queue_length(), 2);
        assert_eq!(ob.deliver_due(&ch).await, 2);
        assert_eq!(ob.metrics().queue_length(), 0);
        ob.enqueue(&[notification("a-1")]).unwrap();
        assert!(
            ob.pending_ids().is_empty(),
            "a delivered id was queued again"
        );
        ob.enqueue(&[notification("a-3")]).unwrap();
    }
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    assert_eq!(ob.pending_ids(), vec!["a-3"], "pending after restart");
    ob.enqueue(&[
        notification("a-1"),
        notification("a-2"),
        notification("a-3"),
    ])
    .unwrap();
    assert_eq!(ob.deliver_due(&ch).await, 1);
    assert_eq!(*ch.delivered.lock().unwrap(), vec!["a-1", "a-2", "a-3"]);
}

#[tokio::test]
async fn unsafe_ids_are_refused_before_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    for id in ["", "../escape", ".hidden", "a/b", "a b"] {
        let r = ob.enqueue_payload(id, Payload::Alert(notification(id)));
        assert!(
            matches!(r, Err(NotifyError::BadId(_))),
            "id {id:?} gave {r:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn failed_deliveries_back_off_and_succeed_once_the_server_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    let ch = Arc::new(FakeChannel::default());
    ch.down.store(true, Ordering::SeqCst);
    let stop = CancellationToken::new();
    let worker = tokio::spawn(run(ob.clone(), ch.clone(), stop.clone()));
    ob.enqueue(&[notification("b-1"), notification("b-2")])
        .unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let failed = ob.metrics().failed();
    // Attempts at 0, 1, 3, 7, 15 s for each of two messages.
    assert_eq!(failed, 10, "failed attempts after 20 s");
    ch.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(*ch.delivered.lock().unwrap(), vec!["b-1", "b-2"]);
    assert_eq!((ob.metrics().sent(), ob.metrics().queue_length()), (2, 0));
    stop.cancel();
    worker.await.unwrap();
}

#[tokio::test]
async fn a_corrupt_pending_file_is_set_aside_and_counted_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("pending")).unwrap();
    fs::write(dir.path().join("pending/x-1.json"), b"{not json").unwrap();
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    assert!(ob.pending_ids().is_empty());
    assert_eq!(ob.metrics().dropped(), 1);
    assert!(dir.path().join("pending/x-1.json.corrupt").exists());
}

#[tokio::test]
async fn the_delivered_log_is_compacted_but_keeps_the_latest_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ch = FakeChannel::default();
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    for i in 0..10 {
        ob.enqueue(&[notification(&format!("c-{i}"))]).unwrap();
        ob.deliver_due(&ch).await;
    }
    let log = fs::read_to_string(dir.path().join("delivered.log")).unwrap();
    assert!(log.lines().count() <= 6, "log not compacted:\n{log}");
    drop(ob);
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    ob.enqueue(&[notification("c-9")]).unwrap();
    assert!(
        ob.pending_ids().is_empty(),
        "the latest delivered id was forgotten; log:\n{log}"
    );
}

#[tokio::test]
async fn a_failed_store_is_counted_and_reported_until_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    let opened = ob.metrics().last_enqueue_seconds();
    assert!(opened > 0.0);
    // A directory where the pending file's temporary would go makes the store fail, as a full disk would.
    let pending = dir.path().join("pending");
    fs::create_dir(pending.join(format!(".d-1.json.tmp-{}", std::process::id()))).unwrap();
    assert!(ob.enqueue(&[notification("d-1")]).is_err());
    assert_eq!(ob.metrics().enqueue_failures(), 1);
    let problem = ob
        .metrics()
        .enqueue_problem()
        .expect("a problem is reported");
    assert!(problem.contains("d-1.json"), "{problem}");
    ob.enqueue(&[notification("d-2")]).unwrap();
    assert_eq!(ob.metrics().enqueue_problem(), None);
    assert_eq!(ob.metrics().enqueue_failures(), 1);
    assert!(ob.metrics().last_enqueue_seconds() >= opened);
}

#[test]
fn a_group_told_only_through_a_receiver_is_still_read_back_as_notified() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    let mut n = notification("r-1");
    n.to.clear();
    n.receivers = vec![super::super::ReceiverRef {
        name: "ops-chat".into(),
        channel: Channel::Slack,
    }];
    ob.enqueue(&[n]).unwrap();
    let ids: Vec<String> = ob.notified().into_iter().map(|n| n.id).collect();
    assert_eq!(ids, ["r-1"], "a receiver-only notification counts as told");
}

#[tokio::test]
async fn the_last_notification_of_each_group_is_kept_after_delivery_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let ch = FakeChannel::default();
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    let mut older = notification("e-1");
    older.created_at = Timestamp::from_second(1_000).unwrap();
    ob.enqueue(&[older]).unwrap();
    ob.deliver_due(&ch).await;
    let mut newer = notification("e-2");
    newer.created_at = Timestamp::from_second(2_000).unwrap();
    ob.enqueue(&[newer]).unwrap();
    ob.deliver_due(&ch).await;
    let mut other = notification("f-1");
    other.group_key = "SourceDown/prod".into();
    ch.down.store(true, Ordering::SeqCst);
    ob.enqueue(&[other]).unwrap();
    ob.deliver_due(&ch).await;
    assert_eq!(fs::read_dir(dir.path().join("last")).unwrap().count(), 1);
    let ids: Vec<String> = ob.notified().into_iter().map(|n| n.id).collect();
    assert_eq!(
        ids,
        ["e-2", "f-1"],
        "one per group, the latest, pending included"
    );
}

/// A channel whose named receivers in `hung` accept a message and never answer, and which counts how many messages
/// each destination has in flight at most.
#[derive(Default)]
struct HangingChannel {
    hung: HashSet<String>,
    delivered: Mutex<Vec<String>>,
    in_flight: Mutex<BTreeMap<String, (usize, usize)>>,
}

impl HangingChannel {
    fn most_in_flight(&self, destination: &str) -> usize {
        self.in_flight
            .lock()
            .unwrap()
            .get(destination)
            .map_or(0, |c| c.1)
    }
}

impl Deliver for HangingChannel {
    fn deliver<'a>(
        &'a self,
        payload: &'a Payload,
    ) -> Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>> {
        Box::pin(async move {
            let (destination, id) = match payload {
                Payload::Receiver {
                    receiver,
                    notification,
                } => (
                    receiver.name.clone(),
                    format!("{}.{}", notification.id, receiver.name),
                ),
                Payload::Alert(n) => ("email".to_string(), n.id.clone()),
                Payload::Email(r) => ("email".to_string(), r.subject.clone()),
            };
            {
                let mut counts = self.in_flight.lock().unwrap();
                let c = counts.entry(destination.clone()).or_default();
                c.0 += 1;
                c.1 = c.1.max(c.0);
            }
            if self.hung.contains(&destination) {
                std::future::pending::<()>().await;
            }
            self.in_flight
                .lock()
                .unwrap()
                .get_mut(&destination)
                .unwrap()
                .0 -= 1;
            self.delivered.lock().unwrap().push(id);
            Ok(())
        })
    }
}

fn to_receivers(id: &str, group: &str, names: &[&str]) -> Notification {
    let mut n = notification(id);
    n.group_key = group.into();
    n.receivers = names
        .iter()
        .map(|name| super::super::ReceiverRef {
            name: (*name).into(),
            channel: Channel::Webhook,
        })
        .collect();
    n
}

#[tokio::test(start_paused = true)]
async fn a_receiver_that_never_answers_holds_up_neither_mail_nor_other_receivers() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    let ch = Arc::new(HangingChannel {
        hung: ["stuck-1".to_string(), "stuck-2".to_string()].into(),
        ..HangingChannel::default()
    });
    let stop = CancellationToken::new();
    let worker = tokio::spawn(run(ob.clone(), ch.clone(), stop.clone()));
    ob.enqueue(&[to_receivers("g-1", "A/x", &["stuck-1", "stuck-2", "fine"])])
        .unwrap();
    let expected = vec!["g-1".to_string(), "g-1.fine".to_string()];
    for _ in 0..100 {
        if ch.delivered.lock().unwrap().len() == expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut delivered = ch.delivered.lock().unwrap().clone();
    delivered.sort();
    assert_eq!(
        delivered, expected,
        "mail and the healthy receiver went out"
    );
    assert_eq!(ob.pending_ids(), vec!["g-1.stuck-1", "g-1.stuck-2"]);
    stop.cancel();
    // The hung deliveries never end: shutdown waits for them, as it would for a channel's timeout.
    assert!(
        tokio::time::timeout(Duration::from_secs(5), worker)
            .await
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn a_destination_has_at_most_its_cap_in_flight_and_one_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    let ch = Arc::new(HangingChannel {
        hung: ["stuck".to_string()].into(),
        ..HangingChannel::default()
    });
    let stop = CancellationToken::new();
    tokio::spawn(run(ob.clone(), ch.clone(), stop.clone()));
    let mut batch: Vec<Notification> = (0..10)
        .map(|i| to_receivers(&format!("h-{i}"), &format!("A/{i}"), &["stuck"]))
        .collect();
    // Two more in one group: they wait for each other.
    batch.push(to_receivers("i-1", "B/same", &["fine"]));
    batch.push(to_receivers("i-2", "B/same", &["fine"]));
    for n in &mut batch {
        n.to.clear();
    }
    ob.enqueue(&batch).unwrap();
    for _ in 0..100 {
        if ch.delivered.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        *ch.delivered.lock().unwrap(),
        vec!["i-1.fine", "i-2.fine"],
        "one group's messages in order"
    );
    assert_eq!(ch.most_in_flight("stuck"), PER_DESTINATION);
    assert_eq!(ch.most_in_flight("fine"), 1, "one at a time per group");
}

#[tokio::test]
async fn one_round_delivers_every_destination_even_while_another_is_slow() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Arc::new(Outbox::open(dir.path(), options()).unwrap());
    let ch = HangingChannel {
        hung: ["stuck".to_string()].into(),
        ..HangingChannel::default()
    };
    ob.enqueue(&[to_receivers("j-1", "A/x", &["stuck", "fine"])])
        .unwrap();
    let round = ob.deliver_due(&ch);
    let _ = tokio::time::timeout(Duration::from_millis(500), round).await;
    let mut delivered = ch.delivered.lock().unwrap().clone();
    delivered.sort();
    assert_eq!(delivered, ["j-1", "j-1.fine"]);
}
