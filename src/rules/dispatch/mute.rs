//! Muting: mute windows (recurring times when a group's notifications wait, Alertmanager's time intervals) and
//! silences (alerts left out of notifications while a silence matches them).

use jiff::Timestamp;

use crate::config::alerting::{EngineConfig, MuteWindow};
use crate::domain::matcher::{LabelName, all_match};
use crate::domain::{Alert, AlertName, Severity, Silence};

impl MuteWindow {
    /// Returns true if and only if `now` falls inside the window, in the window's time zone.
    pub fn contains(&self, now: Timestamp) -> bool {
        let zoned = now.to_zoned(self.time_zone.clone());
        let day = zoned.weekday().to_monday_zero_offset() as u8;
        let yesterday = (day + 6) % 7;
        let on = |d: u8| self.weekdays & (1 << d) != 0;
        if self.times.is_empty() {
            return on(day);
        }
        let minute = zoned.hour() as u16 * 60 + zoned.minute() as u16;
        self.times.iter().any(|&(start, end)| {
            if start < end {
                on(day) && minute >= start && minute < end
            } else {
                (on(day) && minute >= start) || (on(yesterday) && minute < end)
            }
        })
    }
}

/// Returns true if and only if a mute window of `config` holds back the group `(alertname, account)` at `now`.
pub fn window_holds(
    config: &EngineConfig,
    alertname: AlertName,
    account: &str,
    severity: Severity,
    now: Timestamp,
) -> bool {
    let label = |n: LabelName| match n {
        LabelName::Alertname => alertname.as_str().to_string(),
        LabelName::Account => account.to_string(),
        LabelName::Severity => severity.as_str().to_string(),
        LabelName::AgentId | LabelName::AgentName => String::new(),
    };
    config
        .mute_windows
        .iter()
        .any(|w| all_match(&w.matchers, &label) && w.contains(now))
}

/// What mutes `alert` at `now`, in words (`inhibited by AgentOffline`, `silenced by 18f-3 (maintenance)`), or
/// `None` when nothing does. An inhibition is named first: it lasts as long as its cause, a silence may outlive
/// it.
pub fn muted_by(
    silences: &[Silence],
    alert: &Alert,
    inhibitor: Option<AlertName>,
    now: Timestamp,
) -> Option<String> {
    if let Some(by) = inhibitor {
        return Some(format!("inhibited by {by}"));
    }
    let silences: Vec<String> = silenced_by(silences, alert, now)
        .map(|s| {
            if s.comment.is_empty() {
                s.id.clone()
            } else {
                format!("{} ({})", s.id, s.comment)
            }
        })
        .collect();
    (!silences.is_empty()).then(|| format!("silenced by {}", silences.join(", ")))
}

/// The active silences that match `alert` at `now`.
pub fn silenced_by<'a>(
    silences: &'a [Silence],
    alert: &'a Alert,
    now: Timestamp,
) -> impl Iterator<Item = &'a Silence> + 'a {
    silences
        .iter()
        .filter(move |s| s.is_active(now) && s.matches(alert))
}
