//! Builds the compliance report: each source's agents classified against the token policy at `now`, most urgent
//! first, with counts by status. Pure: it reads the sources' statuses and `now`, so `report --config FILE` and the
//! scheduler produce the same report.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use jiff::{Timestamp, ToSpan as _};
use serde::Serialize;

use crate::config::reports::TokenPolicy;
use crate::domain::TokenDateSource;
use crate::status::SourceStatus;

/// Where one token stands against the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Older than `max_age`.
    Overdue,
    /// Older than `max_age - warn_before`.
    DueSoon,
    /// Younger than `max_age - warn_before`.
    Ok,
}

impl TokenStatus {
    /// The spelling used in every format.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Overdue => "overdue",
            TokenStatus::DueSoon => "due soon",
            TokenStatus::Ok => "ok",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One agent's line: only agents whose token the report can judge (the provider gave a rotation or creation
/// date); the others are counted in [`Undated`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    pub status: TokenStatus,
    /// The source name (`account` label).
    pub account: String,
    pub provider: String,
    pub agent_id: String,
    /// Untrusted upstream text; every format escapes it its own way.
    pub agent_name: String,
    /// Whole seconds since the last rotation. Negative ages (clock skew) count as zero.
    pub token_age_seconds: u64,
    /// When the token was last rotated.
    pub last_rotated: Timestamp,
    /// True when `last_rotated` is the agent's creation time because the platform recorded no rotation.
    pub rotation_date_is_creation: bool,
    /// `last_rotated + max_age`; `None` only past the end of time.
    pub due_at: Option<Timestamp>,
}

/// The agents of one account whose provider gave no token date: summarised in one line, not listed, because there
/// is nothing to judge (Planasonix and Calyptia expose no token dates).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Undated {
    /// The source name.
    pub account: String,
    /// The provider label.
    pub provider: String,
    /// How many agents of this account have no token date.
    pub agents: usize,
}

impl Undated {
    /// `25 Planasonix agents: no token date available from this provider`.
    pub fn sentence(&self) -> String {
        let mut provider = self.provider.clone();
        if let Some(first) = provider.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        format!(
            "{} {provider} agent{} in {}: no token date available from this provider",
            self.agents,
            if self.agents == 1 { "" } else { "s" },
            self.account
        )
    }
}

/// One source's contribution, so that a source without data is not mistaken for an empty fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportSource {
    pub name: String,
    /// Whether the last poll succeeded.
    pub up: bool,
    /// Whether any agent list (even an old one) is known; `false` means this source's agents are missing.
    pub has_data: bool,
    /// Agents counted from this source.
    pub agents: usize,
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Every agent, judged or not.
    pub agents: usize,
    pub overdue: usize,
    pub due_soon: usize,
    pub ok: usize,
    /// Agents without a token date, not judged (see [`Report::undated`]).
    pub undated: usize,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub generated_at: Timestamp,
    /// The policy, in seconds.
    pub max_age_seconds: u64,
    pub warn_before_seconds: u64,
    pub summary: Summary,
    pub sources: Vec<ReportSource>,
    /// The judged agents, most urgent first: overdue, due soon, ok; older tokens first within each.
    pub agents: Vec<ReportRow>,
    /// Per account, the agents without a token date, in source order; accounts without such agents are left out.
    pub undated: Vec<Undated>,
}

/// Builds the report from the sources' current statuses (as [`crate::status::Registry::snapshot`] returns them) at `now`.
pub fn build(sources: &[Arc<SourceStatus>], policy: TokenPolicy, now: Timestamp) -> Report {
    let max_age = policy.max_age.as_secs();
    let warn_at = policy.max_age.saturating_sub(policy.warn_before).as_secs();
    let mut rows = Vec::new();
    let mut undated = Vec::new();
    let mut report_sources = Vec::new();
    for s in sources {
        let agents = s
            .agents
            .as_ref()
            .map(|l| l.agents.as_slice())
            .unwrap_or(&[]);
        report_sources.push(ReportSource {
            name: s.name.clone(),
            up: s.up,
            has_data: s.agents.is_some(),
            agents: agents.len(),
        });
        let without_date = agents.iter().filter(|a| a.token_rotated.is_none()).count();
        if without_date > 0 {
            undated.push(Undated {
                account: s.name.clone(),
                provider: s.provider.as_str().to_string(),
                agents: without_date,
            });
        }
        for a in agents {
            let Some(rotated) = a.token_rotated else {
                continue;
            };
            let age = now.duration_since(rotated).as_secs().max(0) as u64;
            let status = if age > max_age {
                TokenStatus::Overdue
            } else if age > warn_at {
                TokenStatus::DueSoon
            } else {
                TokenStatus::Ok
            };
            rows.push(ReportRow {
                status,
                account: s.name.clone(),
                provider: s.provider.as_str().to_string(),
                agent_id: a.id.clone(),
                agent_name: a.name.clone(),
                token_age_seconds: age,
                last_rotated: rotated,
                rotation_date_is_creation: a.token_rotated_source == TokenDateSource::Created,
                due_at: rotated.checked_add((max_age as i64).seconds()).ok(),
            });
        }
    }
    rows.sort_by(|a, b| {
        a.status
            .cmp(&b.status)
            .then(b.token_age_seconds.cmp(&a.token_age_seconds))
            .then_with(|| a.account.cmp(&b.account))
            .then_with(|| a.agent_name.cmp(&b.agent_name))
            .then_with(|| a.agent_id.cmp(&b.agent_id))
    });
    let undated_count: usize = undated.iter().map(|u| u.agents).sum();
    let mut summary = Summary {
        agents: rows.len() + undated_count,
        undated: undated_count,
        ..Summary::default()
    };
    for r in &rows {
        match r.status {
            TokenStatus::Overdue => summary.overdue += 1,
            TokenStatus::DueSoon => summary.due_soon += 1,
            TokenStatus::Ok => summary.ok += 1,
        }
    }
    Report {
        generated_at: now,
        max_age_seconds: max_age,
        warn_before_seconds: policy.warn_before.as_secs(),
        summary,
        sources: report_sources,
        agents: rows,
        undated,
    }
}

impl Report {
    /// One sentence: `12 agents: 2 overdue, 3 due soon, 7 ok.`, with `25 more without a token date.` when some
    /// could not be judged, or what an empty or incomplete fleet means.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let missing: Vec<&str> = self
            .sources
            .iter()
            .filter(|x| !x.has_data)
            .map(|x| x.name.as_str())
            .collect();
        let mut line = if s.agents == 0 {
            "No agents: the fleet is empty, so there is nothing to rotate.".to_string()
        } else {
            let judged = s.agents - s.undated;
            let mut line = format!(
                "{judged} agent{}: {} overdue, {} due soon, {} ok.",
                if judged == 1 { "" } else { "s" },
                s.overdue,
                s.due_soon,
                s.ok
            );
            if s.undated > 0 {
                let _ = write!(line, " {} more without a token date.", s.undated);
            }
            line
        };
        if !missing.is_empty() {
            let _ = write!(
                line,
                " Incomplete: no data from {} (never polled successfully).",
                missing.join(", ")
            );
        }
        line
    }
}

/// Fixtures shared by the report's tests: a fleet with one agent of every status.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{Agent, AgentList, Provider};

    pub(crate) const DAY: i64 = 86_400;

    pub(crate) fn now() -> Timestamp {
        Timestamp::from_second(1_780_000_000).unwrap()
    }

    pub(crate) fn agent(id: &str, name: &str, age_days: Option<i64>) -> Agent {
        let mut a = Agent::new(id, name);
        a.token_rotated =
            age_days.map(|d| Timestamp::from_second(now().as_second() - d * DAY).unwrap());
        a
    }

    pub(crate) fn source(name: &str, agents: Vec<Agent>) -> Arc<SourceStatus> {
        let mut s = SourceStatus::new(name, Provider::Celigo);
        s.agents = Some(Arc::new(AgentList {
            polled_at: now(),
            agents,
        }));
        s.up = true;
        s.polls = 1;
        Arc::new(s)
    }

    pub(crate) fn fleet() -> Report {
        let mut created = agent("a5", "created-only", Some(100));
        created.token_rotated_source = TokenDateSource::Created;
        build(
            &[
                source(
                    "prod-us",
                    vec![
                        agent("a1", "fresh", Some(10)),
                        agent("a2", "=cmd|calc", Some(80)),
                        agent("a3", "old, \"quoted\"\nname", Some(120)),
                        agent("a4", "no-date", None),
                    ],
                ),
                source("prod-eu", vec![created]),
            ],
            TokenPolicy::default(),
            now(),
        )
    }

    #[test]
    fn rows_are_classified_against_the_policy_and_sorted_most_urgent_first() {
        let r = fleet();
        let got: Vec<(&str, TokenStatus)> = r
            .agents
            .iter()
            .map(|a| (a.agent_id.as_str(), a.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a3", TokenStatus::Overdue),
                ("a5", TokenStatus::Overdue),
                ("a2", TokenStatus::DueSoon),
                ("a1", TokenStatus::Ok),
            ],
            "report: {r:#?}"
        );
        assert_eq!(
            r.summary_line(),
            "4 agents: 2 overdue, 1 due soon, 1 ok. 1 more without a token date."
        );
        assert_eq!(
            r.undated,
            vec![Undated {
                account: "prod-us".into(),
                provider: "celigo".into(),
                agents: 1
            }]
        );
        let a3 = &r.agents[0];
        assert_eq!(
            a3.due_at,
            Some(Timestamp::from_second(now().as_second() - 30 * DAY).unwrap())
        );
        assert!(r.agents[1].rotation_date_is_creation);
    }

    #[test]
    fn a_source_without_data_is_not_reported_as_an_empty_fleet() {
        let never = Arc::new(SourceStatus::new("prod-eu", Provider::Celigo));
        let r = build(&[never], TokenPolicy::default(), now());
        assert!(
            r.summary_line()
                .contains("Incomplete: no data from prod-eu"),
            "{}",
            r.summary_line()
        );
    }
}
