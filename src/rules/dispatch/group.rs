//! Grouping and the notification log, as Alertmanager's `dispatch/` and `nflog/`: firing alerts join their group
//! (rule × source). A new group is looked at after `group_wait`, then every `group_interval`. It notifies when an
//! alert appeared that the last notification did not list, when listed alerts resolved (if `send_resolved`), when
//! everything resolved, or when nothing changed for `repeat_interval`. Silenced and inhibited alerts are left out
//! of notifications; a group inside a mute window waits.
//!
//! Muted (inhibited or silenced) alerts are honest: one that was already notified stays listed in the log, so it is
//! neither reported resolved while it is merely hidden nor announced again as new when it shows again; its resolved
//! notice goes out once it really resolves. A notification lists muted firing alerts apart, with what mutes them,
//! and is `Resolved` only when no alert of the group is firing at all, muted or not.
//!
//! Notification ids are `<state epoch hex>-<group hash hex>-<n>`, with `n` counting per group and never reused:
//! the same state and the same input give the same id, which is what lets the outbox drop a replay.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::Timestamp;

use super::inhibit::Inhibitors;
use super::lines::{line, source_problem};
use super::mute;
use super::nflog::Undo;
use crate::config::alerting::EngineConfig;
use crate::domain::{
    Alert, AlertKey, AlertLine, AlertName, AlertState, Notification, NotificationStatus, Silence,
};
use crate::rules::eval::plus;
use crate::rules::state::GroupLog;
use crate::status::SourceStatus;

/// One evaluation's dispatch: the parts of the state it reads and changes, borrowed for the pass. Alerts flow in
/// from the lifecycle; notifications flow out to the sink; nothing flows back.
pub struct Dispatch<'a> {
    /// What routing, grouping and muting run on.
    pub config: &'a EngineConfig,
    /// The alerts; resolved ones whose notice went out are removed (and kept in `undo`).
    pub alerts: &'a mut BTreeMap<AlertKey, Alert>,
    /// The notification log, by group key.
    pub groups: &'a mut BTreeMap<String, GroupLog>,
    /// The last sequence number per group key.
    pub sequences: &'a mut BTreeMap<String, u64>,
    /// Part of every notification id.
    pub epoch: i64,
    /// The silences as of this pass.
    pub silences: &'a [Silence],
    /// What this pass removed, so that a refused hand-over can be undone.
    pub undo: &'a mut Undo,
    /// Set when the pass changed something worth saving.
    pub dirty: bool,
}

impl Dispatch<'_> {
    /// Looks at every group that is due and returns the notifications to send.
    pub fn flush_due(
        &mut self,
        sources: &[Arc<SourceStatus>],
        now: Timestamp,
    ) -> Vec<Notification> {
        let inhibitors = Inhibitors::from(self.alerts);
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| now >= g.next_flush)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for gk in due {
            if let Some(mut n) = self.flush(&gk, &inhibitors, now) {
                if n.alertname == AlertName::SourceDown && n.status == NotificationStatus::Firing {
                    n.source_problem = sources
                        .iter()
                        .find(|s| s.name == n.account)
                        .and_then(|s| source_problem(s))
                        .map(Box::new);
                }
                out.push(n);
            }
            if let Some(g) = self.groups.get_mut(&gk) {
                g.next_flush = plus(now, self.config.group_interval);
                self.dirty = true;
            }
        }
        // A group with nothing notified and no firing or resolved alert is over (pending alerts do not belong to
        // a group yet); the next alert to fire starts a new one, with a fresh group_wait.
        let alerts = &self.alerts;
        let groups = self.groups.len();
        self.groups.retain(|_, g| {
            !g.notified.is_empty()
                || alerts.values().any(|a| {
                    a.alertname == g.alertname
                        && a.account == g.account
                        && a.state != AlertState::Pending
                })
        });
        self.dirty |= self.groups.len() != groups;
        out
    }

    /// Looks at one group, Alertmanager's dedup stage: returns the notification if one is needed, and updates the
    /// notification log.
    fn flush(&mut self, gk: &str, inhibitors: &Inhibitors, now: Timestamp) -> Option<Notification> {
        let group = self.groups.get(gk)?.clone();
        let rules = self.config.rules_for(&group.account);
        let severity = rules.severity(group.alertname);
        if mute::window_holds(self.config, group.alertname, &group.account, severity, now) {
            return None;
        }
        let members: Vec<(&AlertKey, &Alert)> = self
            .alerts
            .range(
                AlertKey {
                    alertname: group.alertname,
                    account: group.account.clone(),
                    agent_id: String::new(),
                }..,
            )
            .take_while(|(k, _)| k.alertname == group.alertname && k.account == group.account)
            .collect();
        let mut firing = Vec::new();
        let mut firing_ids = BTreeSet::new();
        let mut resolved = Vec::new();
        let mut held_back = BTreeSet::new();
        let mut muted = Vec::new();
        let mut still_muted = 0;
        for &(key, a) in &members {
            let muted_by = mute::muted_by(self.silences, a, inhibitors.inhibited_by(key), now);
            let suppressed = muted_by.is_some();
            match (a.state, suppressed) {
                (AlertState::Pending, _) => {}
                (AlertState::Firing, false) => {
                    firing.push(a);
                    firing_ids.insert(key.agent_id.clone());
                }
                (AlertState::Resolved, false) if group.notified.contains(&key.agent_id) => {
                    resolved.push(a)
                }
                (AlertState::Resolved, false) => {}
                (_, true) => {
                    if group.notified.contains(&key.agent_id) {
                        held_back.insert(key.agent_id.clone());
                    }
                    // Only what the recipients were told about is worth a word: it explains why it left the list.
                    if a.state == AlertState::Firing && group.notified.contains(&key.agent_id) {
                        muted.push((a, muted_by));
                    } else if a.state == AlertState::Firing {
                        still_muted += 1;
                    }
                }
            }
        }
        if firing.is_empty() && resolved.is_empty() {
            // Nothing visible. Forget listed agents whose alert no longer exists at all.
            let g = self.groups.get_mut(gk)?;
            let alerts = &self.alerts;
            g.notified.retain(|id| {
                alerts.contains_key(&AlertKey {
                    alertname: group.alertname,
                    account: group.account.clone(),
                    agent_id: id.clone(),
                })
            });
            return None;
        }
        let send_resolved = self.config.send_resolved;
        // A notice speaks only of what its recipients were told about or are told now: when all of that resolved
        // (told alerts muted since still fire), it says so, whatever never-told alerts still fire muted.
        let told_firing = !firing.is_empty() || !muted.is_empty();
        let needed = !firing_ids.is_subset(&group.notified)
            || !told_firing
            || (send_resolved && !resolved.is_empty())
            || group
                .last_sent
                .is_none_or(|t| now >= plus(t, self.config.repeat_interval));
        if !needed {
            if !send_resolved {
                // Nobody will be told these resolved; forget them now rather than at the next repeat.
                let g = self.groups.get_mut(gk)?;
                for a in &resolved {
                    g.notified.remove(a.agent_id.as_deref().unwrap_or_default());
                }
                let done: Vec<AlertKey> = resolved.iter().map(|a| a.key()).collect();
                self.forget(done);
            }
            return None;
        }
        let status = if !told_firing {
            NotificationStatus::Resolved
        } else {
            NotificationStatus::Firing
        };
        let emit = status == NotificationStatus::Firing || send_resolved;
        let notification = emit.then(|| {
            let seq = self.sequences.entry(gk.to_string()).or_insert(0);
            *seq += 1;
            let url = self.config.external_url.as_deref();
            // A grown group marks its newcomers, listed first.
            let grown = group.last_sent.is_some();
            let mut firing_lines: Vec<AlertLine> = firing
                .iter()
                .map(|a| AlertLine {
                    new: grown
                        && !group
                            .notified
                            .contains(a.agent_id.as_deref().unwrap_or_default()),
                    ..line(a, url)
                })
                .collect();
            let mut resolved_lines: Vec<AlertLine> = if send_resolved {
                resolved.iter().map(|a| line(a, url)).collect()
            } else {
                Vec::new()
            };
            let mut muted_lines: Vec<AlertLine> = muted
                .iter()
                .map(|(a, by)| AlertLine {
                    muted_by: by.clone(),
                    ..line(a, url)
                })
                .collect();
            let order = |l: &AlertLine| (l.agent_name.clone(), l.agent_id.clone());
            firing_lines.sort_by_key(|l| (!l.new, order(l)));
            resolved_lines.sort_by_key(order);
            muted_lines.sort_by_key(order);
            Notification {
                id: format!("{:x}-{:016x}-{}", self.epoch, fnv1a(gk), seq),
                group_key: gk.to_string(),
                status,
                alertname: group.alertname,
                severity,
                account: group.account.clone(),
                provider: members.first().map(|(_, a)| a.provider),
                to: self
                    .config
                    .recipients(group.alertname, severity, &group.account),
                receivers: self
                    .config
                    .receivers(group.alertname, severity, &group.account),
                firing: firing_lines,
                resolved: resolved_lines,
                muted: muted_lines,
                still_muted: if status == NotificationStatus::Resolved {
                    still_muted
                } else {
                    0
                },
                source_problem: None,
                created_at: now,
                external_url: self.config.external_url.clone(),
            }
        });
        let done: Vec<AlertKey> = resolved.iter().map(|a| a.key()).collect();
        self.forget(done);
        let g = self.groups.get_mut(gk)?;
        g.notified = firing_ids.into_iter().chain(held_back).collect();
        if notification.is_some() {
            g.last_sent = Some(now);
        }
        notification
    }

    /// Removes resolved alerts whose notice is done, keeping them in the undo record.
    fn forget(&mut self, keys: Vec<AlertKey>) {
        for k in keys {
            if let Some(a) = self.alerts.remove(&k) {
                self.undo.removed.push(a);
                self.dirty = true;
            }
        }
    }
}

/// FNV-1a, 64 bits: a stable hash (unlike `DefaultHasher`) for the group part of notification ids.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
