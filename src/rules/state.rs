//! What the rule engine must remember across restarts — alert states, the notification log, silences — and the
//! JSON file that keeps it, written atomically.
//!
//! The state holds no secret: agent ids, names and versions, ages and thresholds, and silence matchers only. An
//! unreadable file is renamed aside (`state.json.corrupt-<unix seconds>`, at most [`CORRUPT_KEPT`] of them) so
//! nobody loses the evidence, and the engine starts fresh, rebuilding its alerts and notification log from the
//! outbox's last notifications ([`rebuild_from_notified`]). A `state_file` that is a symbolic link is read and
//! written through to its target.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::atomic_file;
use crate::domain::{
    Alert, AlertKey, AlertName, AlertState, Notification, NotificationStatus, Silence, group_key,
};
use crate::rules::health::StateHealth;

/// The state file format version; a file with another version is set aside like a corrupt one.
pub const FORMAT_VERSION: u32 = 1;

/// How many `.corrupt-*` copies of the state file are kept; older ones are removed when another is set aside, so a
/// disk that corrupts the file at every restart cannot fill up with copies.
pub const CORRUPT_KEPT: usize = 3;

/// The notification log of one group (one rule on one source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupLog {
    /// The group's rule.
    pub alertname: AlertName,
    /// The group's source.
    pub account: String,
    /// When the group's first alert fired; `group_wait` counts from here.
    pub created_at: Timestamp,
    /// When the group is next looked at: `created_at + group_wait`, then every `group_interval`.
    pub next_flush: Timestamp,
    /// When the last notification went out.
    pub last_sent: Option<Timestamp>,
    /// The agent ids (empty for the source) listed as firing by the last notification. The next notification
    /// reports as resolved exactly those of them that resolved.
    pub notified: BTreeSet<String>,
}

/// Everything the engine remembers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// When this state was first created, unix milliseconds. Part of every notification id, so that a state lost
    /// and started afresh can never reuse an id an outbox has already seen.
    pub epoch: i64,
    /// Every pending, firing, or resolved-but-not-yet-notified alert.
    #[serde(with = "alert_list")]
    pub alerts: BTreeMap<AlertKey, Alert>,
    /// The notification log, by group key.
    pub groups: BTreeMap<String, GroupLog>,
    /// The last notification sequence number used per group key. Never pruned (there are at most rules × sources
    /// keys), so a group that ends and starts again never repeats an id.
    pub sequences: BTreeMap<String, u64>,
    /// Only in files of the previous version, which kept silences here: they are moved to the silence store
    /// ([`crate::rules::silences::SilenceStore`]) at start, and a state written since never holds any. (Files
    /// written before silence ids were UUIDs also hold a `next_silence` counter, which is ignored.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silences: Vec<Silence>,
}

impl State {
    /// An empty state created at `now`.
    pub fn new(now: Timestamp) -> State {
        State {
            version: FORMAT_VERSION,
            epoch: now.as_millisecond(),
            alerts: BTreeMap::new(),
            groups: BTreeMap::new(),
            sequences: BTreeMap::new(),
            silences: Vec::new(),
        }
    }

    /// The state as JSON, for the file.
    pub fn to_json(&self) -> Vec<u8> {
        // Compact: with a large fleet the file holds tens of thousands of alerts. Serializing plain data with
        // string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Writes the state to `path` atomically (see [`atomic_file::write`]).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        atomic_file::write(path, &self.to_json()).map_err(|source| StateError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// A state file problem.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state could not be written; the previous file is intact.
    #[error("cannot write state file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What [`load`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The state to start from.
    pub state: State,
    /// When the file was unreadable: why, and where it was moved (or `None` if moving it failed too).
    pub problem: Option<(String, Option<PathBuf>)>,
    /// True if and only if `state` is new: the file was missing or unreadable.
    pub fresh: bool,
}

/// Loads the state from `path` (through a symbolic link to its target). A missing file gives a fresh state. A file
/// that cannot be read or parsed is renamed to `<target>.corrupt-<unix seconds>`, the oldest such copies beyond
/// [`CORRUPT_KEPT`] are removed, and a fresh state is returned with the reason; nothing here fails.
pub fn load(path: &Path, now: Timestamp) -> Loaded {
    let target = atomic_file::resolve(path).unwrap_or_else(|_| path.to_path_buf());
    let reason = match fs::read(&target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Loaded {
                state: State::new(now),
                problem: None,
                fresh: true,
            };
        }
        Err(e) => format!("cannot read it: {e}"),
        Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
            Ok(state) if state.version == FORMAT_VERSION => {
                return Loaded {
                    state,
                    problem: None,
                    fresh: false,
                };
            }
            Ok(state) => format!("format version {} is not {FORMAT_VERSION}", state.version),
            Err(e) => format!("cannot parse it: {e}"),
        },
    };
    let mut aside = target.as_os_str().to_owned();
    aside.push(format!(".corrupt-{}", now.as_second()));
    let aside = PathBuf::from(aside);
    let moved = fs::rename(&target, &aside).ok().map(|_| aside);
    prune_corrupt_copies(&target);
    Loaded {
        state: State::new(now),
        problem: Some((reason, moved)),
        fresh: true,
    }
}

/// Removes the oldest `<target>.corrupt-<unix seconds>` copies beyond [`CORRUPT_KEPT`]. Best effort: a copy that
/// cannot be removed stays, and only costs disk space.
fn prune_corrupt_copies(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.corrupt-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut copies: Vec<(i64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let file_name = e.file_name();
            let seconds = file_name.to_str()?.strip_prefix(&prefix)?.parse().ok()?;
            Some((seconds, e.path()))
        })
        .collect();
    copies.sort();
    let excess = copies.len().saturating_sub(CORRUPT_KEPT);
    for (_, old) in copies.into_iter().take(excess) {
        let _ = fs::remove_file(old);
    }
}

/// [`load`], logging an unreadable file as an error once and counting it in `health`. Returns the state and
/// whether it is fresh (no file, or an unreadable one).
pub fn load_or_fresh(path: &Path, now: Timestamp, health: &StateHealth) -> (State, bool) {
    let loaded = load(path, now);
    match &loaded.problem {
        None => {}
        Some((reason, Some(aside))) => tracing::error!(
            path = %path.display(),
            kept_as = %aside.display(),
            "alert state file is unreadable ({reason}); kept it aside and started afresh, with the alerts and \
             notification log the outbox's last notifications show and no silences"
        ),
        Some((reason, None)) => tracing::error!(
            path = %path.display(),
            "alert state file is unreadable ({reason}) and could not be moved aside; started with an empty state"
        ),
    }
    if loaded.problem.is_some() {
        health.corrupt_found();
    }
    (loaded.state, loaded.fresh)
}

/// Rebuilds the alerts and notification log of a fresh `state` from `notified`, the last notification of each group
/// (delivered or queued), so that the engine carries on as if it had sent them: an alert still firing is not
/// announced again, one that has cleared gets its resolved notice. Only firing notifications count; a group whose
/// last word was "resolved" is over. Returns how many groups were rebuilt.
///
/// An alert comes back firing since the notification's `created_at`, with the value and threshold it said; the next
/// evaluation updates it from the data as usual.
pub fn rebuild_from_notified(
    state: &mut State,
    notified: &[Notification],
    now: Timestamp,
) -> usize {
    let mut rebuilt = 0;
    for n in notified {
        if n.status != NotificationStatus::Firing || n.firing.is_empty() {
            continue;
        }
        let alertname = n.alertname;
        let (true, Some(provider)) = (AlertName::ALL.contains(&alertname), n.provider) else {
            continue;
        };
        let mut ids = BTreeSet::new();
        // Muted lines are alerts announced earlier and silenced since: still part of what people were told.
        for line in n.firing.iter().chain(&n.muted) {
            let alert = Alert {
                alertname,
                account: n.account.clone(),
                provider,
                agent_id: line.agent_id.clone(),
                agent_name: line.agent_name.clone(),
                version: line.version.clone(),
                severity: n.severity,
                value: line.value.clone(),
                threshold: line.threshold.clone(),
                value_seconds: line.value_seconds,
                threshold_seconds: line.threshold_seconds,
                summary: line.summary.clone(),
                state: AlertState::Firing,
                active_at: line.since,
                fired_at: Some(n.created_at),
                keep_firing_since: None,
                resolved_at: None,
            };
            ids.insert(alert.key().agent_id);
            state.alerts.insert(alert.key(), alert);
        }
        state.groups.insert(
            group_key(alertname, &n.account),
            GroupLog {
                alertname,
                account: n.account.clone(),
                created_at: n.created_at,
                next_flush: now,
                last_sent: Some(n.created_at),
                notified: ids,
            },
        );
        rebuilt += 1;
    }
    rebuilt
}

/// Serializes the alert map as a list: JSON object keys must be strings, and each alert carries its key anyway.
mod alert_list {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<AlertKey, Alert>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<AlertKey, Alert>, D::Error> {
        let list = Vec::<Alert>::deserialize(d)?;
        Ok(list.into_iter().map(|a| (a.key(), a)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LabelName, Matcher, Provider, Severity};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn sample() -> State {
        let now = ts("2026-01-05T10:00:00Z");
        let mut state = State::new(now);
        let alert = Alert {
            alertname: AlertName::AgentOffline,
            account: "prod-us".into(),
            provider: Provider::Celigo,
            agent_id: Some("a1".into()),
            agent_name: Some("edge \"1\"\n<b>".into()),
            version: Some("1.2.3".into()),
            severity: Severity::Critical,
            value: "offline".into(),
            threshold: "for 5m".into(),
            state: AlertState::Firing,
            active_at: now,
            fired_at: Some(now),
            keep_firing_since: None,
            resolved_at: None,
            value_seconds: None,
            threshold_seconds: None,
            summary: String::new(),
        };
        state.groups.insert(
            alert.group_key(),
            GroupLog {
                alertname: alert.alertname,
                account: alert.account.clone(),
                created_at: now,
                next_flush: now,
                last_sent: Some(now),
                notified: ["a1".to_string()].into(),
            },
        );
        state.sequences.insert(alert.group_key(), 3);
        state.alerts.insert(alert.key(), alert);
        state.silences.push(Silence {
            id: "s1".into(),
            matchers: vec![Matcher::equal(LabelName::Account, "prod-us")],
            starts_at: now,
            ends_at: ts("2026-01-05T12:00:00Z"),
            created_by: "ops".into(),
            comment: "maintenance".into(),
            created_at: now,
        });
        state
    }

    #[test]
    fn the_state_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let state = sample();
        state.save(&path).unwrap();
        let loaded = load(&path, ts("2026-01-06T00:00:00Z"));
        assert!(loaded.problem.is_none(), "saw {:?}", loaded.problem);
        assert_eq!(loaded.state, state);
    }

    #[test]
    fn a_missing_file_gives_a_fresh_state_without_complaint() {
        let dir = tempfile::tempdir().unwrap();
        let now = ts("2026-01-06T00:00:00Z");
        let loaded = load(&dir.path().join("none.json"), now);
        assert!(loaded.problem.is_none(), "saw {:?}", loaded.problem);
        assert_eq!(loaded.state, State::new(now));
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_and_the_engine_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"{\"version\": 1, \"alerts\": [trunc").unwrap();
        let now = ts("2026-01-06T00:00:00Z");
        let loaded = load(&path, now);
        let (reason, aside) = loaded.problem.expect("a problem is reported");
        assert!(reason.starts_with("cannot parse it: "), "saw {reason:?}");
        let aside = aside.expect("the file was moved");
        assert_eq!(
            aside,
            dir.path()
                .join(format!("state.json.corrupt-{}", now.as_second()))
        );
        assert_eq!(
            fs::read(&aside).unwrap(),
            b"{\"version\": 1, \"alerts\": [trunc"
        );
        assert!(
            !path.exists(),
            "the corrupt file still sits at {}",
            path.display()
        );
        assert_eq!(loaded.state, State::new(now));
    }

    #[test]
    fn a_file_from_another_format_version_is_kept_aside_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = sample();
        state.version = 99;
        fs::write(&path, state.to_json()).unwrap();
        let loaded = load(&path, ts("2026-01-06T00:00:00Z"));
        let (reason, aside) = loaded.problem.expect("a problem is reported");
        assert_eq!(reason, "format version 99 is not 1");
        assert!(aside.is_some(), "the file was not moved");
    }

    #[test]
    fn at_most_three_corrupt_copies_are_kept_and_the_oldest_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for second in [100, 200, 300, 400, 500] {
            fs::write(&path, b"\x00\xff not json").unwrap();
            let loaded = load(&path, Timestamp::from_second(second).unwrap());
            assert!(loaded.fresh && loaded.problem.is_some());
        }
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "state.json.corrupt-300",
                "state.json.corrupt-400",
                "state.json.corrupt-500"
            ],
            "saw {names:?}"
        );
    }

    #[test]
    fn a_corrupt_file_behind_a_symbolic_link_is_set_aside_beside_its_target_and_the_link_stays() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("data")).unwrap();
        let target = dir.path().join("data/state.json");
        fs::write(&target, b"").unwrap();
        let link = dir.path().join("state.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let now = ts("2026-01-06T00:00:00Z");
        let health = StateHealth::new(now);
        let (state, fresh) = load_or_fresh(&link, now, &health);
        assert!(fresh);
        assert_eq!(health.corrupt_files(), 1);
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(
            dir.path()
                .join(format!("data/state.json.corrupt-{}", now.as_second()))
                .exists()
        );
        state.save(&link).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            load(&link, now).state,
            state,
            "the target holds another state"
        );
    }

    #[test]
    fn a_fresh_state_is_rebuilt_from_the_last_firing_notifications_only() {
        use crate::domain::AlertLine;
        let now = ts("2026-01-06T00:00:00Z");
        let sent = ts("2026-01-05T23:00:00Z");
        let line = |id: Option<&str>| AlertLine {
            agent_id: id.map(String::from),
            agent_name: id.map(|i| format!("edge {i}")),
            version: None,
            value: "1h".into(),
            threshold: "5m".into(),
            since: sent,
            resolved_at: None,
            value_seconds: Some(3600),
            threshold_seconds: Some(300),
            summary: "silent for 1h".into(),
            muted_by: None,
            link: None,
            fired_at: Some(sent),
            new: false,
        };
        let note = |alertname: AlertName, status, firing: Vec<AlertLine>| Notification {
            id: "x-1".into(),
            group_key: format!("{alertname}/prod"),
            status,
            alertname,
            severity: Severity::Critical,
            account: "prod".into(),
            provider: Some(Provider::Celigo),
            to: vec![],
            firing,
            resolved: vec![],
            created_at: sent,
            external_url: None,
            muted: vec![],
            still_muted: 0,
            source_problem: None,
            receivers: vec![],
        };
        let notified = [
            note(
                AlertName::AgentHeartbeatStale,
                NotificationStatus::Firing,
                vec![line(Some("a1")), line(Some("a2"))],
            ),
            note(
                AlertName::SourceDown,
                NotificationStatus::Firing,
                vec![line(None)],
            ),
            note(
                AlertName::AgentOffline,
                NotificationStatus::Resolved,
                vec![],
            ),
            note(
                AlertName::TestNotification,
                NotificationStatus::Firing,
                vec![line(None)],
            ),
        ];
        let mut state = State::new(now);
        assert_eq!(rebuild_from_notified(&mut state, &notified, now), 2);
        let stale = &state.groups["AgentHeartbeatStale/prod"];
        assert_eq!(stale.last_sent, Some(sent));
        assert_eq!(stale.notified, ["a1".to_string(), "a2".to_string()].into());
        assert_eq!(
            state.groups["SourceDown/prod"].notified,
            [String::new()].into()
        );
        assert_eq!(state.alerts.len(), 3);
        assert!(
            state
                .alerts
                .values()
                .all(|a| a.state == AlertState::Firing && a.fired_at == Some(sent))
        );
    }
}
