//! Silences made at run time through `POST /api/v1/silences`, in a store of their own ([`SilenceStore`]):
//! validating a request, adding, listing, deleting, and forgetting those that ended a day ago. Dispatch applies them
//! (see [`crate::rules::dispatch::mute`]) to the snapshot it takes at the start of each evaluation.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::atomic_file;
use crate::config::silences::SilenceLimits;
use crate::domain::Silence;
use crate::domain::matcher::{Matcher, RawMatcher};
use crate::telemetry::error_chain;

/// A silence request, as `POST /api/v1/silences` takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// At least one; every matcher must match for the silence to apply.
    pub matchers: Vec<RawMatcher>,
    /// Default: now.
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
    /// When the silence ends; give this or `duration`.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// How long from `starts_at` (`2h`, `1d`); give this or `ends_at`.
    #[serde(default)]
    pub duration: Option<String>,
    /// Who asks; free text, at most 1000 characters.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Why; free text, at most 1000 characters.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Why a silence was refused; the text is a sentence for the API client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request is malformed or past a per-silence cap (`400 Bad Request`).
    #[error("{0}")]
    Invalid(String),
    /// `alerting.silences.max_silences` active and pending silences exist already (`429 Too Many Requests`).
    #[error("{0}")]
    TooMany(String),
    /// The silences file could not be written, so nothing changed (`503 Service Unavailable`); the text is the
    /// cause chain.
    #[error("{0}")]
    Unsaved(String),
}

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal::Invalid(message)
    }
}

impl From<&str> for Refusal {
    fn from(message: &str) -> Refusal {
        Refusal::Invalid(message.to_string())
    }
}

/// Where silences live: their own file beside the state file, their own lock, and a published copy that readers
/// and evaluation take without waiting, as Alertmanager's `silence/` package keeps them apart from alerts.
///
/// A write (create, delete, expiry) validates against the current list, writes the whole list to the file and only
/// then publishes it, all under the store's own lock: a write never touches the alert state and never waits on an
/// evaluation, and a write that cannot be saved changes nothing.
#[derive(Debug)]
pub struct SilenceStore {
    /// The file, or `None` for a store kept in memory only (tests, tools).
    path: Option<PathBuf>,
    /// The caps of `alerting.silences`.
    limits: SilenceLimits,
    /// Serializes writers, so that each one validates against the list the previous one saved and the file gets
    /// the lists in the order they were made. A `std::sync::Mutex`: it is held across blocking file I/O, which is
    /// why writers run on blocking threads, and never across an `.await`.
    writer: Mutex<()>,
    /// The silences as last saved: every one not yet forgotten, expired ones for a day.
    current: ArcSwap<Vec<Silence>>,
}

/// The silences file as written: `{"version": 1, "silences": [...]}`.
#[derive(Debug, Serialize, Deserialize)]
struct SilencesFile {
    /// [`SILENCES_FORMAT_VERSION`].
    version: u32,
    /// Every silence kept.
    silences: Vec<Silence>,
}

/// The silences file format version.
pub const SILENCES_FORMAT_VERSION: u32 = 1;

/// How long an expired silence stays listed before it is forgotten.
pub const EXPIRED_SILENCE_KEPT: Duration = Duration::from_secs(24 * 3600);

/// Why the silences file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SilenceStoreError {
    /// The file could not be written (a full or read-only disk).
    #[error("cannot write silences file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file could not be read.
    #[error("cannot read silences file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a silences file of this version.
    #[error("silences file {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The silences file that belongs to `state_file`: `state.json` keeps its silences in `state.silences.json` beside it.
pub fn path_beside(state_file: &Path) -> PathBuf {
    let stem = state_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_string());
    state_file.with_file_name(format!("{stem}.silences.json"))
}

impl SilenceStore {
    /// A store kept in memory only, with `silences` in it.
    pub fn in_memory(limits: SilenceLimits, silences: Vec<Silence>) -> SilenceStore {
        SilenceStore {
            path: None,
            limits,
            writer: Mutex::new(()),
            current: ArcSwap::from_pointee(silences),
        }
    }

    /// Opens the store at `path`. A missing file is an empty store; a file that cannot be parsed is an error, so that
    /// the caller can set it aside and say so. Blocks: call it at start or from a blocking thread.
    pub fn open(path: PathBuf, limits: SilenceLimits) -> Result<SilenceStore, SilenceStoreError> {
        let silences = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: SilencesFile =
                    serde_json::from_slice(&bytes).map_err(|e| SilenceStoreError::Invalid {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                if file.version != SILENCES_FORMAT_VERSION {
                    return Err(SilenceStoreError::Invalid {
                        path,
                        message: format!("unknown version {}", file.version),
                    });
                }
                file.silences
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(SilenceStoreError::Read { path, source }),
        };
        Ok(SilenceStore {
            path: Some(path),
            limits,
            writer: Mutex::new(()),
            current: ArcSwap::from_pointee(silences),
        })
    }

    /// The file, if the store has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Every silence kept now, without waiting for anything: the copy the last write published.
    pub fn snapshot(&self) -> Arc<Vec<Silence>> {
        self.current.load_full()
    }

    /// Runs `change` on a copy of the list under the writer lock; when it returns `Some`, saves the copy and
    /// publishes it. Blocks on the file write.
    fn write<T>(
        &self,
        change: impl FnOnce(&mut Vec<Silence>) -> Result<Option<T>, Refusal>,
    ) -> Result<Option<T>, Refusal> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = Vec::clone(&self.current.load());
        let Some(out) = change(&mut next)? else {
            return Ok(None);
        };
        if let Some(path) = &self.path {
            let file = SilencesFile {
                version: SILENCES_FORMAT_VERSION,
                silences: next,
            };
            let bytes = serde_json::to_vec_pretty(&file).expect("silences serialize");
            atomic_file::write(path, &bytes).map_err(|source| {
                Refusal::Unsaved(error_chain(&SilenceStoreError::Write {
                    path: path.clone(),
                    source,
                }))
            })?;
            next = file.silences;
        }
        self.current.store(Arc::new(next));
        Ok(Some(out))
    }

    /// Adds `silences` that the store does not hold yet (by id), and saves: the migration of silences that a state
    /// file of the previous version kept. Returns how many were added.
    pub fn import(&self, silences: Vec<Silence>) -> Result<usize, Refusal> {
        let added = self.write(|list| {
            let before = list.len();
            for s in silences {
                if !list.iter().any(|have| have.id == s.id) {
                    list.push(s);
                }
            }
            Ok(Some(list.len() - before))
        })?;
        Ok(added.unwrap_or(0))
    }

    /// Validates a silence against the caps of `alerting.silences`, adds it with a new random (v4 UUID) id and saves.
    ///
    /// Only active and pending silences count against `max_silences`; of the expired ones (kept for a day so `GET`
    /// shows what just ended) at most `max_silences` are kept, the longest-ended going first, so that a client
    /// making short silences in a loop cannot grow the file either. Blocks on the file write.
    pub fn add(&self, new: NewSilence, now: Timestamp) -> Result<Silence, Refusal> {
        let limits = self.limits;
        if new.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        if new.matchers.len() > limits.max_matchers {
            return Err(Refusal::Invalid(format!(
                "a silence takes at most {} matchers (alerting.silences.max_matchers); this one has {}",
                limits.max_matchers,
                new.matchers.len()
            )));
        }
        if let Some(m) = new
            .matchers
            .iter()
            .find(|m| m.value.len() > limits.max_matcher_value_bytes)
        {
            return Err(Refusal::Invalid(format!(
                "the value of matcher {} is {} bytes long; at most {} are allowed \
                 (alerting.silences.max_matcher_value_bytes)",
                m.name.as_str(),
                m.value.len(),
                limits.max_matcher_value_bytes
            )));
        }
        let matchers = new
            .matchers
            .into_iter()
            .map(Matcher::new)
            .collect::<Result<Vec<_>, _>>()?;
        let starts_at = new.starts_at.unwrap_or(now);
        let ends_at = match (new.ends_at, new.duration) {
            (Some(_), Some(_)) => return Err("give ends_at or duration, not both".into()),
            (None, None) => return Err("give ends_at or duration".into()),
            (Some(t), None) => t,
            (None, Some(d)) => {
                // The same durations, and the same messages, as the config file's.
                let d = crate::config::parse::duration(&d)?;
                starts_at.checked_add(d).map_err(|_| {
                    format!("duration {} is too long", humantime::format_duration(d))
                })?
            }
        };
        if ends_at <= starts_at {
            return Err(Refusal::Invalid(format!(
                "ends_at ({ends_at}) must be after starts_at ({starts_at})"
            )));
        }
        if ends_at <= now {
            return Err(Refusal::Invalid(format!(
                "ends_at ({ends_at}) is in the past"
            )));
        }
        let max_duration = jiff::SignedDuration::try_from(limits.max_duration)
            .unwrap_or(jiff::SignedDuration::MAX);
        if ends_at.duration_since(starts_at) > max_duration {
            return Err(Refusal::Invalid(format!(
                "a silence may last at most {} (alerting.silences.max_duration); this one lasts {}",
                crate::humanize::duration(limits.max_duration),
                crate::humanize::duration(ends_at.duration_since(starts_at).unsigned_abs())
            )));
        }
        let max_ahead = jiff::SignedDuration::try_from(limits.max_start_ahead)
            .unwrap_or(jiff::SignedDuration::MAX);
        if starts_at.duration_since(now) > max_ahead {
            return Err(Refusal::Invalid(format!(
                "a silence may start at most {} from now (alerting.silences.max_start_ahead); this one starts at \
                 {starts_at}",
                crate::humanize::duration(limits.max_start_ahead)
            )));
        }
        let text = |s: Option<String>, what: &str| -> Result<String, Refusal> {
            let s = s.unwrap_or_default();
            if s.chars().count() > 1000 {
                return Err(Refusal::Invalid(format!(
                    "{what} is longer than 1000 characters"
                )));
            }
            Ok(s)
        };
        let created_by = text(new.created_by, "created_by")?;
        let comment = text(new.comment, "comment")?;
        let silence = Silence {
            id: uuid::Uuid::new_v4().to_string(),
            matchers,
            starts_at,
            ends_at,
            created_by,
            comment,
            created_at: now,
        };
        let added = self.write(|list| {
            let live = list.iter().filter(|s| s.ends_at > now).count();
            if live >= limits.max_silences {
                return Err(Refusal::TooMany(format!(
                    "there are {live} active and pending silences, the most allowed \
                     (alerting.silences.max_silences); delete one or wait for one to expire"
                )));
            }
            let mut expired: Vec<Timestamp> = list
                .iter()
                .filter(|s| s.ends_at <= now)
                .map(|s| s.ends_at)
                .collect();
            if expired.len() >= limits.max_silences {
                expired.sort_unstable();
                let cutoff = expired[expired.len() - limits.max_silences];
                list.retain(|s| s.ends_at > now || s.ends_at > cutoff);
            }
            list.push(silence.clone());
            Ok(Some(()))
        })?;
        debug_assert!(added.is_some());
        Ok(silence)
    }

    /// Removes the silence `id`, saves, and returns it; `Ok(None)` if there is no such silence. Blocks on the file
    /// write.
    pub fn delete(&self, id: &str) -> Result<Option<Silence>, Refusal> {
        self.write(|list| {
            let Some(at) = list.iter().position(|s| s.id == id) else {
                return Ok(None);
            };
            Ok(Some(list.remove(at)))
        })
    }

    /// Returns true if and only if a silence ended more than [`EXPIRED_SILENCE_KEPT`] before `now`.
    pub fn has_expired(&self, now: Timestamp) -> bool {
        let cutoff = now
            .checked_sub(EXPIRED_SILENCE_KEPT)
            .unwrap_or(Timestamp::MIN);
        self.current.load().iter().any(|s| s.ends_at <= cutoff)
    }

    /// Expiry maintenance: forgets silences that ended more than [`EXPIRED_SILENCE_KEPT`] before `now`, and saves
    /// when that changed anything. Cheap when there is nothing to forget (no lock, no write). Blocks on the write.
    pub fn expire(&self, now: Timestamp) -> Result<usize, Refusal> {
        let cutoff = now
            .checked_sub(EXPIRED_SILENCE_KEPT)
            .unwrap_or(Timestamp::MIN);
        if !self.has_expired(now) {
            return Ok(0);
        }
        let forgotten = self.write(|list| {
            let before = list.len();
            list.retain(|s| s.ends_at > cutoff);
            Ok((list.len() != before).then_some(before - list.len()))
        })?;
        Ok(forgotten.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matcher::LabelName;
    use crate::rules::engine::tests::{ago, at, config, t0};

    #[test]
    fn silences_are_validated_with_sentences() {
        let e = SilenceStore::in_memory(config().silences, Vec::new());
        let m = RawMatcher {
            name: LabelName::Account,
            value: "prod".into(),
            is_regex: false,
            is_equal: true,
        };
        let new = |matchers: Vec<RawMatcher>,
                   ends_at: Option<Timestamp>,
                   duration: Option<&str>| NewSilence {
            matchers,
            starts_at: None,
            ends_at,
            duration: duration.map(str::to_string),
            created_by: None,
            comment: None,
        };
        let bad_regex = RawMatcher {
            value: "(".into(),
            is_regex: true,
            ..m.clone()
        };
        let cases = [
            (
                new(vec![], Some(at(60)), None),
                "a silence needs at least one matcher".to_string(),
            ),
            (
                new(vec![m.clone()], None, None),
                "give ends_at or duration".to_string(),
            ),
            (
                new(vec![m.clone()], Some(at(60)), Some("1h")),
                "give ends_at or duration, not both".to_string(),
            ),
            (
                new(vec![m.clone()], None, Some("soon")),
                "invalid duration \"soon\": write a whole number and a unit (ms, s, m, h, d or w), or several, \
                 e.g. 30s, 5m, 1h30m or 90d"
                    .to_string(),
            ),
            (
                new(vec![m.clone()], Some(ago(t0(), 60)), None),
                "ends_at (2026-01-05T11:59:00Z) must be after starts_at (2026-01-05T12:00:00Z)"
                    .to_string(),
            ),
        ];
        for (request, want) in cases {
            let got = e.add(request.clone(), t0());
            assert_eq!(
                got.as_ref().map(|s| &s.id),
                Err(&Refusal::Invalid(want)),
                "for {request:?}"
            );
        }
        let err = e
            .add(new(vec![bad_regex], Some(at(60)), None), t0())
            .unwrap_err();
        assert!(
            err.to_string().starts_with("bad regex \"(\""),
            "saw {err:?}"
        );
        let ok = e.add(new(vec![m], None, Some("2h")), t0()).unwrap();
        assert_eq!(ok.ends_at, at(7200));
        assert!(e.delete(&ok.id).unwrap().is_some());
        assert!(e.delete(&ok.id).unwrap().is_none(), "deleted twice");
    }

    #[test]
    fn each_cap_is_answered_with_a_sentence_naming_its_key() {
        let mut cfg = config();
        cfg.silences = crate::config::silences::SilenceLimits {
            max_silences: 2,
            max_matchers: 2,
            max_matcher_value_bytes: 8,
            max_duration: std::time::Duration::from_secs(3600),
            max_start_ahead: std::time::Duration::from_secs(600),
        };
        let e = SilenceStore::in_memory(cfg.silences, Vec::new());
        let m = |value: &str| RawMatcher {
            name: LabelName::Account,
            value: value.into(),
            is_regex: false,
            is_equal: true,
        };
        let new =
            |matchers: Vec<RawMatcher>, starts_at: Option<Timestamp>, duration: &str| NewSilence {
                matchers,
                starts_at,
                ends_at: None,
                duration: Some(duration.into()),
                created_by: None,
                comment: None,
            };
        let cases = [
            (
                new(vec![m("a"), m("b"), m("c")], None, "1h"),
                "a silence takes at most 2 matchers (alerting.silences.max_matchers); this one has 3",
            ),
            (
                new(vec![m("123456789")], None, "1h"),
                "the value of matcher account is 9 bytes long; at most 8 are allowed \
                 (alerting.silences.max_matcher_value_bytes)",
            ),
            (
                new(vec![m("prod")], None, "1000000h"),
                "a silence may last at most 1h (alerting.silences.max_duration); this one lasts 41666d 16h",
            ),
            (
                new(vec![m("prod")], Some(at(601)), "1h"),
                "a silence may start at most 10m from now (alerting.silences.max_start_ahead); this one starts \
                 at 2026-01-05T12:10:01Z",
            ),
        ];
        for (request, want) in cases {
            let got = e.add(request.clone(), t0()).map(|s| s.id);
            assert_eq!(got, Err(Refusal::Invalid(want.into())), "for {request:?}");
        }
        e.add(new(vec![m("prod")], None, "1h"), t0()).unwrap();
        e.add(new(vec![m("prod")], Some(at(600)), "1h"), t0())
            .unwrap();
        let third = e.add(new(vec![m("prod")], None, "1h"), t0());
        assert_eq!(
            third.map(|s| s.id),
            Err(Refusal::TooMany(
                "there are 2 active and pending silences, the most allowed (alerting.silences.max_silences); \
                 delete one or wait for one to expire"
                    .into()
            ))
        );
        // Once they have expired, new ones are taken, and the expired ones kept stay within the cap.
        for i in 0..5 {
            let now = at(7200 + i * 3600);
            e.add(new(vec![m("prod")], Some(now), "1h"), now).unwrap();
        }
        assert!(
            e.snapshot().len() <= 4,
            "saw {} silences",
            e.snapshot().len()
        );
        let kept = e.snapshot();
        let ids: std::collections::BTreeSet<&str> = kept.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), e.snapshot().len(), "an id was handed out twice");
    }
}
