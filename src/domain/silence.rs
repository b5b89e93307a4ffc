//! A silence: alerts matching every matcher are not notified between `starts_at` and `ends_at`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::alert::Alert;
use crate::domain::matcher::Matcher;

/// A silence made at run time: alerts matching every matcher are not notified between `starts_at` and `ends_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// A random (v4) UUID, as Alertmanager's: never handed out twice, across restarts and lost state files too.
    /// Files written before this hold `<state epoch hex>-<n>` ids, which keep working.
    pub id: String,
    /// All must match an alert's labels for the silence to apply.
    pub matchers: Vec<Matcher>,
    /// When it starts to apply.
    pub starts_at: Timestamp,
    /// When it stops applying; expired silences stay listed for a day.
    pub ends_at: Timestamp,
    /// Who made it, as they said; free text.
    #[serde(default)]
    pub created_by: String,
    /// Why; free text.
    #[serde(default)]
    pub comment: String,
    /// When the API received it.
    pub created_at: Timestamp,
}

impl Silence {
    /// Returns true if and only if the silence mutes matching alerts at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// `pending`, `active` or `expired`, as Alertmanager says.
    pub fn status(&self, now: Timestamp) -> &'static str {
        if now < self.starts_at {
            "pending"
        } else if now < self.ends_at {
            "active"
        } else {
            "expired"
        }
    }

    /// Returns true if and only if every matcher matches `alert`.
    pub fn matches(&self, alert: &Alert) -> bool {
        self.matchers.iter().all(|m| m.matches(&|n| alert.label(n)))
    }
}
