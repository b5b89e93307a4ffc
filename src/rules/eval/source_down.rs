//! `SourceDown`: the source's polls have been failing; the exporter is blind to that account.

use jiff::Timestamp;

use super::{Finding, Rule, elapsed};
use crate::config::alerting::{RuleSettings, Rules};
use crate::domain::AlertName;
use crate::humanize::duration as human;
use crate::status::SourceStatus;

/// See the module documentation.
pub struct SourceDown;

impl Rule for SourceDown {
    fn settings<'r>(&self, rules: &'r Rules) -> &'r RuleSettings {
        &rules.source_down
    }

    fn source(&self, rules: &Rules, s: &SourceStatus, now: Timestamp, found: &mut Vec<Finding>) {
        if s.up {
            return;
        }
        let since = s.failing_since.unwrap_or(now);
        let reason = s
            .last_error
            .as_ref()
            .map(|e| e.reason.as_str())
            .unwrap_or("unknown");
        let for_ = rules.source_down.for_;
        let failing = elapsed(now, since);
        found.push(Finding {
            alertname: AlertName::SourceDown,
            start: since,
            value: (
                format!("polls failing for {} ({reason})", human(failing)),
                Some(failing),
            ),
            threshold: (human(for_), Some(for_)),
            summary: format!(
                "polls failing for {} ({reason}); alert after {}",
                human(failing),
                human(for_)
            ),
        });
    }
}
