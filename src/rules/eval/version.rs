//! `AgentVersionOutdated`: the agent runs a version below `min_version` (off without one).

use jiff::Timestamp;

use super::{Finding, Rule};
use crate::config::alerting::{RuleSettings, Rules};
use crate::domain::{Agent, AlertName, parse_version};

/// See the module documentation.
pub struct VersionOutdated;

impl Rule for VersionOutdated {
    fn settings<'r>(&self, rules: &'r Rules) -> &'r RuleSettings {
        &rules.version_outdated
    }

    fn agent(&self, rules: &Rules, agent: &Agent, now: Timestamp, found: &mut Vec<Finding>) {
        let (Some(min), Some(version)) = (&rules.min_version, agent.version.as_deref()) else {
            return;
        };
        // A version that is not semantic versioning cannot be compared, so it raises nothing.
        if parse_version(version).is_some_and(|v| v < *min) {
            found.push(Finding {
                alertname: AlertName::AgentVersionOutdated,
                start: now,
                value: (version.to_string(), None),
                threshold: (format!(">= {min}"), None),
                summary: format!("version {version}; minimum {min}"),
            });
        }
    }
}
