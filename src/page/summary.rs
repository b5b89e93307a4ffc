//! What the status page counts: the summary strip's figures and each agent's condition, so the page can list the
//! worst agents first. Pure functions of the page data and `now`.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::domain::AlertName;
use crate::domain::Severity;
use crate::domain::{Agent, age_seconds};
use crate::page::{PageData, Thresholds};
use crate::rules::views::AlertView;
use crate::status::SourceStatus;

/// The figures of the summary strip. Agents are counted once per condition: an offline agent with an old token
/// counts under offline and under the token figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Agents in the last good snapshot of every source.
    pub agents: usize,
    /// Agents the platform reports offline.
    pub offline: usize,
    /// Agents whose heartbeat is older than the threshold (or that never sent one long after registering), counted
    /// as `AgentHeartbeatStale` counts them: not an agent the platform reports offline (that is `AgentOffline`'s),
    /// nor an agent of a source that is down (its figures are from the last good poll; that is `SourceDown`'s).
    pub heartbeat_stale: usize,
    /// Agents whose token is due for rotation and not yet overdue.
    pub tokens_due: usize,
    /// Agents whose token is older than the maximum age.
    pub tokens_overdue: usize,
    /// Sources whose latest poll failed.
    pub sources_down: usize,
    /// Sources that have not finished a poll yet.
    pub sources_pending: usize,
    /// Notifications waiting in the outbox; `None` without alerting.
    pub mails_queued: Option<u64>,
}

/// How bad one agent looks, from bad to fine; the order is the agents table's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// The platform reports it offline.
    Offline,
    /// Its heartbeat is stale.
    Stale,
    /// Its token is overdue for rotation.
    TokenOverdue,
    /// Its token is due for rotation.
    TokenDue,
    /// Nothing above.
    Fine,
}

impl Condition {
    /// The words the agents table shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Offline => "offline",
            Condition::Stale => "heartbeat stale",
            Condition::TokenOverdue => "token overdue",
            Condition::TokenDue => "token due",
            Condition::Fine => "ok",
        }
    }
}

/// Every condition that holds for `agent` at `now`, worst first; `[Fine]` when none does.
pub fn conditions(agent: &Agent, t: &Thresholds, now: Timestamp) -> Vec<Condition> {
    let mut out = Vec::new();
    if agent.offline {
        out.push(Condition::Offline);
    }
    let after = t.heartbeat_stale_after.as_secs_f64();
    let stale = match agent.last_heartbeat {
        Some(hb) => age_seconds(now, hb) > after,
        // Mirrors `AgentHeartbeatStale`: an agent that never sent a heartbeat is stale once it has been registered
        // for longer than the threshold; an unknown registration date gives it the benefit of the doubt.
        None => agent
            .created_at
            .is_some_and(|c| age_seconds(now, c) > after),
    };
    if stale {
        out.push(Condition::Stale);
    }
    if let Some(rotated) = agent.token_rotated {
        let age = age_seconds(now, rotated);
        let max = t.token.max_age.as_secs_f64();
        let due = max - t.token.warn_before.as_secs_f64();
        if age > max {
            out.push(Condition::TokenOverdue);
        } else if age > due {
            out.push(Condition::TokenDue);
        }
    }
    if out.is_empty() {
        out.push(Condition::Fine);
    }
    out
}

/// Counts the summary strip's figures at `now`.
pub fn summarize(data: &PageData, now: Timestamp) -> Summary {
    let mut s = Summary {
        mails_queued: data.notifications.as_ref().map(|n| n.queued),
        ..Summary::default()
    };
    for source in &data.sources {
        if !source.ready() {
            s.sources_pending += 1;
        } else if !source.up {
            s.sources_down += 1;
        }
        let down = source.ready() && !source.up;
        let Some(list) = &source.agents else { continue };
        s.agents += list.agents.len();
        for agent in &list.agents {
            for c in conditions(agent, &data.thresholds, now) {
                match c {
                    Condition::Offline => s.offline += 1,
                    Condition::Stale if !agent.offline && !down => s.heartbeat_stale += 1,
                    Condition::Stale => {}
                    Condition::TokenOverdue => s.tokens_overdue += 1,
                    Condition::TokenDue => s.tokens_due += 1,
                    Condition::Fine => {}
                }
            }
        }
    }
    s
}

/// The worst alert that concerns one agent, as its row in the agents table shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentAlert {
    /// The rule.
    pub alertname: AlertName,
    /// Its severity.
    pub severity: Severity,
    /// `pending` or `firing`.
    pub state: &'static str,
    /// Whether it is inhibited or silenced (so nobody is told).
    pub muted: bool,
}

impl AgentAlert {
    /// Sort key, smaller is worse: firing before pending, told before muted, then by severity.
    fn rank(&self) -> (bool, bool, std::cmp::Reverse<Severity>) {
        (
            self.state != "firing",
            self.muted,
            std::cmp::Reverse(self.severity),
        )
    }
}

/// The worst pending or firing alert per `(account, agent id)`.
pub fn worst_alert_per_agent(alerts: &[AlertView]) -> HashMap<(&str, &str), AgentAlert> {
    let mut out: HashMap<(&str, &str), AgentAlert> = HashMap::new();
    for a in alerts {
        if a.state == "resolved" {
            continue;
        }
        let Some(id) = a.agent_id.as_deref() else {
            continue;
        };
        let this = AgentAlert {
            alertname: a.alertname,
            severity: a.severity,
            state: a.state,
            muted: a.inhibited || !a.silenced_by.is_empty(),
        };
        out.entry((a.account.as_str(), id))
            .and_modify(|w| {
                if this.rank() < w.rank() {
                    *w = this;
                }
            })
            .or_insert(this);
    }
    out
}

/// One row of the agents table.
#[derive(Debug, Clone)]
pub struct AgentRow<'a> {
    /// The source the agent belongs to.
    pub source: &'a SourceStatus,
    /// The agent.
    pub agent: &'a Agent,
    /// Its conditions, worst first.
    pub conditions: Vec<Condition>,
    /// Its worst alert, if any.
    pub alert: Option<AgentAlert>,
}

/// Every agent of every source, worst first: a firing alert, then by condition (offline, stale, overdue, due,
/// fine), then a pending alert, then by account and name so the order is stable between refreshes.
pub fn agent_rows<'a>(data: &'a PageData, now: Timestamp) -> Vec<AgentRow<'a>> {
    let alerts = data
        .alerts
        .as_ref()
        .map(|p| worst_alert_per_agent(&p.alerts))
        .unwrap_or_default();
    let mut rows: Vec<AgentRow<'a>> = data
        .sources
        .iter()
        .filter_map(|s| s.agents.as_ref().map(|list| (s, list)))
        .flat_map(|(s, list)| {
            let alerts = &alerts;
            list.agents.iter().map(move |a| AgentRow {
                source: s.as_ref(),
                agent: a,
                conditions: conditions(a, &data.thresholds, now),
                alert: alerts.get(&(s.name.as_str(), a.id.as_str())).copied(),
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        let key = |r: &AgentRow<'_>| {
            (
                !r.alert.is_some_and(|x| x.state == "firing" && !x.muted),
                r.conditions[0],
                r.alert.is_none(),
            )
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| a.source.name.cmp(&b.source.name))
            .then_with(|| a.agent.name.cmp(&b.agent.name))
    });
    rows
}

/// Alerts grouped by rule and account, the order the page lists them: `SourceDown` first (while a source is down,
/// every other figure of that account is stale), then groups with an alert somebody is told about before fully
/// muted ones, then by severity, rule and account.
pub fn alert_groups(alerts: &[AlertView]) -> Vec<AlertGroup<'_>> {
    let mut groups: Vec<AlertGroup<'_>> = Vec::new();
    let mut index: HashMap<(AlertName, &str), usize> = HashMap::new();
    for a in alerts.iter().filter(|a| a.state != "resolved") {
        let i = *index
            .entry((a.alertname, a.account.as_str()))
            .or_insert_with(|| {
                groups.push(AlertGroup {
                    alertname: a.alertname,
                    account: &a.account,
                    severity: a.severity,
                    shown: Vec::new(),
                    firing: 0,
                    pending: 0,
                    inhibited: 0,
                    silenced: 0,
                });
                groups.len() - 1
            });
        let g = &mut groups[i];
        g.severity = g.severity.max(a.severity);
        if a.state == "firing" {
            g.firing += 1;
        } else {
            g.pending += 1;
        }
        if a.inhibited {
            g.inhibited += 1;
        } else if !a.silenced_by.is_empty() {
            g.silenced += 1;
        } else {
            g.shown.push(a);
        }
    }
    groups.sort_by(|a, b| {
        (a.alertname != AlertName::SourceDown)
            .cmp(&(b.alertname != AlertName::SourceDown))
            .then_with(|| a.shown.is_empty().cmp(&b.shown.is_empty()))
            .then_with(|| b.severity.cmp(&a.severity))
            .then_with(|| a.alertname.cmp(&b.alertname))
            .then_with(|| a.account.cmp(b.account))
    });
    for g in &mut groups {
        g.shown.sort_by(|a, b| {
            (a.state != "firing")
                .cmp(&(b.state != "firing"))
                .then_with(|| a.active_at.cmp(&b.active_at))
                .then_with(|| a.agent_name.cmp(&b.agent_name))
        });
    }
    groups
}

/// The alerts of one rule on one account.
#[derive(Debug, Clone)]
pub struct AlertGroup<'a> {
    /// The rule.
    pub alertname: AlertName,
    /// The account.
    pub account: &'a str,
    /// The worst severity in the group.
    pub severity: Severity,
    /// The alerts somebody is told about (neither inhibited nor silenced), firing first, oldest first.
    pub shown: Vec<&'a AlertView>,
    /// Firing alerts, muted or not.
    pub firing: usize,
    /// Pending alerts, muted or not.
    pub pending: usize,
    /// Alerts another firing alert inhibits; counted, not listed.
    pub inhibited: usize,
    /// Alerts a silence matches (and nothing inhibits); counted, not listed.
    pub silenced: usize,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::domain::{AgentList, Provider};

    fn ago(now: Timestamp, secs: u64) -> Timestamp {
        now.checked_sub(Duration::from_secs(secs)).unwrap()
    }

    fn alert(
        name: AlertName,
        account: &str,
        agent: Option<&str>,
        state: &'static str,
    ) -> AlertView {
        AlertView {
            alertname: name,
            severity: Severity::Critical,
            state,
            account: account.into(),
            provider: crate::domain::Provider::Celigo,
            agent_id: agent.map(Into::into),
            agent_name: agent.map(Into::into),
            version: None,
            value: String::new(),
            threshold: String::new(),
            value_seconds: None,
            threshold_seconds: None,
            summary: String::new(),
            active_at: Timestamp::UNIX_EPOCH,
            fired_at: None,
            resolved_at: None,
            silenced_by: Vec::new(),
            inhibited: false,
        }
    }

    #[test]
    fn the_summary_counts_each_condition_against_the_thresholds() {
        let now = Timestamp::now();
        let day = 86_400;
        let mut fine = Agent::new("fine", "fine");
        fine.last_heartbeat = Some(ago(now, 10));
        fine.token_rotated = Some(ago(now, 10 * day));
        let mut offline = Agent::new("off", "off");
        offline.offline = true;
        offline.last_heartbeat = Some(ago(now, 3600));
        offline.token_rotated = Some(ago(now, 100 * day));
        let mut due = Agent::new("due", "due");
        due.last_heartbeat = Some(ago(now, 10));
        due.token_rotated = Some(ago(now, 80 * day));
        let mut never = Agent::new("never", "never");
        never.created_at = Some(ago(now, day));
        let mut up = SourceStatus::new("up", Provider::Celigo);
        up.up = true;
        up.polls = 1;
        up.agents = Some(Arc::new(AgentList {
            polled_at: now,
            agents: vec![fine, offline, due, never],
        }));
        // A stale agent of a down source is SourceDown's, as the rule engine sees it: not counted as stale.
        let mut gone = Agent::new("gone", "gone");
        gone.last_heartbeat = Some(ago(now, 3600));
        let mut down = SourceStatus::new("down", Provider::Calyptia);
        down.polls = 3;
        down.agents = Some(Arc::new(AgentList {
            polled_at: now,
            agents: vec![gone],
        }));
        let pending = SourceStatus::new("pending", Provider::Planasonix);
        let data = PageData::new(vec![Arc::new(up), Arc::new(down), Arc::new(pending)]);
        assert_eq!(
            summarize(&data, now),
            Summary {
                agents: 5,
                offline: 1,
                // `never` alone: `off` is offline (AgentOffline's), `gone` is on the down source.
                heartbeat_stale: 1,
                tokens_due: 1,
                tokens_overdue: 1,
                sources_down: 1,
                sources_pending: 1,
                mails_queued: None,
            }
        );
        let order: Vec<&str> = agent_rows(&data, now)
            .iter()
            .map(|r| r.agent.id.as_str())
            .collect();
        assert_eq!(order, ["off", "gone", "never", "due", "fine"]);
    }

    #[test]
    fn source_down_comes_first_and_muted_alerts_are_counted_not_listed() {
        let mut inhibited = alert(AlertName::AgentOffline, "b", Some("x"), "firing");
        inhibited.inhibited = true;
        let mut silenced = alert(AlertName::AgentOffline, "b", Some("y"), "firing");
        silenced.silenced_by = vec!["s1".into()];
        let alerts = vec![
            alert(AlertName::AgentHeartbeatStale, "a", Some("z"), "firing"),
            inhibited,
            silenced,
            alert(AlertName::SourceDown, "b", None, "pending"),
            alert(AlertName::AgentOffline, "a", Some("w"), "resolved"),
        ];
        let groups = alert_groups(&alerts);
        let names: Vec<(AlertName, &str)> =
            groups.iter().map(|g| (g.alertname, g.account)).collect();
        assert_eq!(
            names,
            [
                (AlertName::SourceDown, "b"),
                (AlertName::AgentHeartbeatStale, "a"),
                (AlertName::AgentOffline, "b"),
            ]
        );
        let muted = &groups[2];
        assert!(muted.shown.is_empty(), "saw {muted:?}");
        assert_eq!((muted.inhibited, muted.silenced, muted.firing), (1, 1, 2));
    }

    #[test]
    fn an_agent_with_a_firing_alert_is_listed_before_one_without() {
        let now = Timestamp::now();
        let mut quiet = Agent::new("a-quiet", "a");
        quiet.offline = true;
        let mut loud = Agent::new("b-loud", "b");
        loud.last_heartbeat = Some(now);
        let mut s = SourceStatus::new("acct", Provider::Celigo);
        s.up = true;
        s.polls = 1;
        s.agents = Some(Arc::new(AgentList {
            polled_at: now,
            agents: vec![quiet, loud],
        }));
        let mut data = PageData::new(vec![Arc::new(s)]);
        data.alerts = Some(crate::page::AlertsPanel {
            alerts: vec![alert(
                AlertName::AgentVersionOutdated,
                "acct",
                Some("b-loud"),
                "firing",
            )],
            active_silences: 0,
            writes_open: false,
        });
        let rows = agent_rows(&data, now);
        assert_eq!(rows[0].agent.id, "b-loud");
        assert_eq!(
            rows[0].alert.map(|a| a.alertname),
            Some(AlertName::AgentVersionOutdated)
        );
        assert_eq!(rows[1].conditions, [Condition::Offline]);
    }
}
