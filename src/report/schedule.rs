//! Sends the compliance report on its schedule: a 5-field cron expression read in a time zone, the email handed to
//! the outbox so an SMTP outage delays the report but never loses it.
//!
//! The next fire time is always computed in the zone from the wall clock (with croner's fold handling), so
//! `0 9 * * MON` stays at 09:00 local across DST changes, and a time that does not exist on the spring-forward day,
//! or exists twice on the fall-back day, fires once.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::build::build;
use super::email::email;
use crate::config::reports::TokenComplianceConfig;
use crate::notify::NotifyError;
use crate::notify::email::RenderedEmail;
use crate::notify::outbox::{Outbox, Payload};
use crate::status::Registry;

/// The first fire time strictly after `after`, computed in the schedule's zone; `None` if the expression never
/// matches again (croner's search horizon).
pub fn next_fire(cfg: &TokenComplianceConfig, after: Timestamp) -> Option<Timestamp> {
    let zoned = after.to_zoned(cfg.timezone.clone());
    cfg.schedule
        .find_next_occurrence(&zoned, false)
        .ok()
        .map(|z| z.timestamp())
}

/// The outbox id of the report due at `fire_time`: the same fire time always gives the same id, so a restart in
/// the same minute cannot send it twice.
pub fn report_id(fire_time: Timestamp) -> String {
    format!("report-token-compliance-{}", fire_time.as_second())
}

/// Builds the report for `fire_time` and stores it in the outbox. Returns `Ok(false)` if and only if that fire
/// time's report was already queued or sent. One iteration of [`run_schedule`], callable from tests.
pub fn enqueue_report(
    cfg: &TokenComplianceConfig,
    registry: &Registry,
    outbox: &Outbox,
    fire_time: Timestamp,
) -> Result<bool, NotifyError> {
    let report = build(&registry.snapshot(), cfg.policy, fire_time);
    outbox.enqueue_payload(
        &report_id(fire_time),
        Payload::Email(RenderedEmail {
            message_id: Some(report_id(fire_time)),
            ..email(&report, &cfg.to)
        }),
    )
}

/// [`enqueue_report`] on a blocking thread: building the report walks the whole fleet, and storing it writes and
/// fsyncs a file, neither of which belongs on an async worker.
async fn enqueue_report_blocking(
    cfg: &TokenComplianceConfig,
    registry: &Arc<Registry>,
    outbox: &Arc<Outbox>,
    fire_time: Timestamp,
) -> Result<bool, NotifyError> {
    let (cfg, registry, outbox) = (cfg.clone(), registry.clone(), outbox.clone());
    match tokio::task::spawn_blocking(move || enqueue_report(&cfg, &registry, &outbox, fire_time))
        .await
    {
        Ok(queued) => queued,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime shutting down cancels a blocking task; nothing waits for this result then.
        Err(_) => std::future::pending().await,
    }
}

/// The longest single sleep: waking each minute keeps the schedule on the wall clock when the monotonic clock and
/// the wall clock drift apart (suspend, NTP steps).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// How late a missed report is still sent at start-up: a process that was down at 09:00 and is back by the
/// afternoon sends that morning's report; one back the next day waits for the next fire time.
pub const CATCH_UP: Duration = Duration::from_secs(24 * 3600);

/// The last fire time at or before `at`, computed in the schedule's zone.
pub fn previous_fire(cfg: &TokenComplianceConfig, at: Timestamp) -> Option<Timestamp> {
    let zoned = at.to_zoned(cfg.timezone.clone());
    cfg.schedule
        .find_previous_occurrence(&zoned, true)
        .ok()
        .map(|z| z.timestamp())
}

/// Runs the compliance report on its schedule until `shutdown` is cancelled.
///
/// At start, the most recent fire time is caught up if it lies within [`CATCH_UP`] and the outbox has never seen
/// its report, so a restart or an outage of the process over the fire time loses nothing; a first start shortly
/// after a fire time therefore sends that report at once.
pub async fn run_schedule(
    cfg: TokenComplianceConfig,
    registry: Arc<Registry>,
    outbox: Arc<Outbox>,
    shutdown: CancellationToken,
) {
    run_schedule_with_clock(cfg, registry, outbox, shutdown, Timestamp::now).await
}

/// [`run_schedule`] with the wall clock given, so tests can drive it from tokio's paused clock.
pub async fn run_schedule_with_clock(
    cfg: TokenComplianceConfig,
    registry: Arc<Registry>,
    outbox: Arc<Outbox>,
    shutdown: CancellationToken,
    clock: impl Fn() -> Timestamp,
) {
    let mut after = clock();
    if let Some(prev) = previous_fire(&cfg, after) {
        let late = Duration::try_from(prev.duration_until(after)).unwrap_or(Duration::MAX);
        if late <= CATCH_UP && !outbox.knows(&report_id(prev)) {
            tracing::info!(missed = %prev, "sending the compliance report missed while the exporter was down");
            if let Err(error) = enqueue_report_blocking(&cfg, &registry, &outbox, prev).await {
                tracing::error!(%error, "cannot queue the compliance report");
            }
        }
    }
    loop {
        let Some(fire) = next_fire(&cfg, after) else {
            tracing::error!(schedule = %cfg.schedule_text, "the report schedule never fires again; report stopped");
            return;
        };
        tracing::info!(next = %fire, schedule = %cfg.schedule_text, timezone = %cfg.timezone_name, "next compliance report");
        loop {
            let now = clock();
            if now >= fire {
                break;
            }
            let wait = Duration::try_from(now.duration_until(fire))
                .unwrap_or(Duration::ZERO)
                .min(MAX_SLEEP);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        match enqueue_report_blocking(&cfg, &registry, &outbox, fire).await {
            Ok(_) => tracing::info!(id = %report_id(fire), "compliance report queued"),
            Err(error) => tracing::error!(%error, "cannot queue the compliance report"),
        }
        after = fire;
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;
    use jiff::tz::TimeZone;

    use super::*;
    use crate::config::reports::{TokenPolicy, parse_schedule};
    use crate::domain::Provider;

    fn schedule(expr: &str, tz: &str) -> TokenComplianceConfig {
        TokenComplianceConfig {
            schedule_text: expr.into(),
            schedule: parse_schedule(expr).unwrap(),
            timezone: TimeZone::get(tz).unwrap(),
            timezone_name: tz.into(),
            to: vec![],
            policy: TokenPolicy::default(),
        }
    }

    fn at(tz: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        date(y, mo, d)
            .at(h, mi, 0, 0)
            .in_tz(tz)
            .unwrap()
            .timestamp()
    }

    #[test]
    fn a_weekly_schedule_stays_at_nine_local_across_the_spring_dst_change() {
        let cfg = schedule("0 9 * * MON", "Europe/Berlin");
        // Monday 2026-03-23 09:00 CET is 08:00 UTC; after the change on Sunday 2026-03-29, 09:00 CEST is 07:00 UTC.
        let first = next_fire(&cfg, at("UTC", 2026, 3, 20, 0, 0)).unwrap();
        let second = next_fire(&cfg, first).unwrap();
        assert_eq!(first.to_string(), "2026-03-23T08:00:00Z");
        assert_eq!(second.to_string(), "2026-03-30T07:00:00Z");
    }

    #[test]
    fn a_time_skipped_by_spring_forward_fires_once_that_day() {
        // 2026-03-29 is the last Sunday of March: Berlin jumps from 02:00 to 03:00, so 02:30 does not exist.
        let cfg = schedule("30 2 * * *", "Europe/Berlin");
        let mut t = at("Europe/Berlin", 2026, 3, 28, 12, 0);
        let mut fires = Vec::new();
        for _ in 0..3 {
            t = next_fire(&cfg, t).unwrap();
            fires.push(
                t.to_zoned(TimeZone::get("Europe/Berlin").unwrap())
                    .to_string(),
            );
        }
        let on_the_day = fires.iter().filter(|f| f.starts_with("2026-03-29")).count();
        assert_eq!(on_the_day, 1, "fires: {fires:?}");
        assert!(fires[0].starts_with("2026-03-29T03:"), "fires: {fires:?}");
        assert!(fires[1].starts_with("2026-03-30T02:30"), "fires: {fires:?}");
    }

    #[test]
    fn a_time_repeated_by_fall_back_fires_once_that_day() {
        // 2026-10-25 is the last Sunday of October: 02:00 to 03:00 happens twice in Berlin.
        let cfg = schedule("30 2 * * *", "Europe/Berlin");
        let mut t = at("Europe/Berlin", 2026, 10, 24, 12, 0);
        let mut fires = Vec::new();
        for _ in 0..3 {
            t = next_fire(&cfg, t).unwrap();
            fires.push(t);
        }
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let shown: Vec<String> = fires
            .iter()
            .map(|f| f.to_zoned(berlin.clone()).to_string())
            .collect();
        let on_the_day = shown.iter().filter(|f| f.starts_with("2026-10-25")).count();
        assert_eq!(on_the_day, 1, "fires: {shown:?}");
        assert_eq!(
            fires[0].to_string(),
            "2026-10-25T00:30:00Z",
            "fires: {shown:?}"
        );
        assert_eq!(
            fires[1].to_string(),
            "2026-10-26T01:30:00Z",
            "fires: {shown:?}"
        );
    }

    #[test]
    fn a_report_is_queued_once_per_fire_time() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path(), Default::default()).unwrap();
        let registry = Registry::new([("prod-us", Provider::Celigo)]);
        let cfg = schedule("0 9 * * MON", "Europe/Berlin");
        let fire = at("UTC", 2026, 3, 23, 8, 0);
        assert!(enqueue_report(&cfg, &registry, &outbox, fire).unwrap());
        assert!(!enqueue_report(&cfg, &registry, &outbox, fire).unwrap());
        assert_eq!(outbox.pending_ids(), vec![report_id(fire)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_schedule_queues_one_report_per_fire_time_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Outbox::open(dir.path(), Default::default()).unwrap());
        let registry = Arc::new(Registry::new([("prod-us", Provider::Celigo)]));
        let cfg = schedule("*/10 * * * *", "Europe/Berlin");
        let base = at("UTC", 2026, 3, 29, 0, 55);
        let start = tokio::time::Instant::now();
        let clock = move || base + jiff::SignedDuration::try_from(start.elapsed()).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_schedule_with_clock(
            cfg,
            registry,
            outbox.clone(),
            stop.clone(),
            clock,
        ));
        tokio::time::sleep(Duration::from_secs(31 * 60)).await;
        stop.cancel();
        task.await.unwrap();
        let mut ids = outbox.pending_ids();
        ids.sort();
        // 00:50 is caught up at start (the outbox never saw it); then 01:00, 01:10 and 01:20 fire.
        let expected: Vec<String> = [(0, 50), (1, 0), (1, 10), (1, 20)]
            .iter()
            .map(|(h, m)| report_id(at("UTC", 2026, 3, 29, *h, *m)))
            .collect();
        assert_eq!(ids, expected, "queued reports");
    }

    #[tokio::test(start_paused = true)]
    async fn a_report_missed_long_ago_or_already_sent_is_not_caught_up() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Outbox::open(dir.path(), Default::default()).unwrap());
        let registry = Arc::new(Registry::new([("prod-us", Provider::Celigo)]));
        // Weekly on Monday 09:00 Berlin; start on Wednesday: Monday's report is more than a day late.
        let cfg = schedule("0 9 * * MON", "Europe/Berlin");
        let wednesday = at("Europe/Berlin", 2026, 3, 25, 12, 0);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_schedule_with_clock(
            cfg.clone(),
            registry.clone(),
            outbox.clone(),
            stop.clone(),
            move || wednesday,
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.cancel();
        task.await.unwrap();
        assert!(
            outbox.pending_ids().is_empty(),
            "queued: {:?}",
            outbox.pending_ids()
        );

        // Monday afternoon, with the morning's report already queued: no second copy.
        let monday = at("Europe/Berlin", 2026, 3, 23, 15, 0);
        let morning = at("Europe/Berlin", 2026, 3, 23, 9, 0);
        assert!(enqueue_report(&cfg, &registry, &outbox, morning).unwrap());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_schedule_with_clock(
            cfg,
            registry,
            outbox.clone(),
            stop.clone(),
            move || monday,
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(outbox.pending_ids(), vec![report_id(morning)]);
    }
}
