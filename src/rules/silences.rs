//! Silences made at run time through `POST /api/v1/silences`: validating a request, adding it to the engine's
//! state, listing and deleting. Evaluation applies them (see [`Engine::evaluate`]); this is only their bookkeeping.

use jiff::Timestamp;
use serde::Deserialize;

use crate::domain::Silence;
use crate::domain::matcher::{Matcher, RawMatcher};
use crate::rules::engine::Engine;

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

impl Engine {
    /// Every silence, including those that expired in the last day.
    pub fn silences(&self) -> &[Silence] {
        &self.state.silences
    }

    /// Validates a silence against the caps of `alerting.silences` and adds it with a new random (v4 UUID) id.
    ///
    /// Only active and pending silences count against `max_silences`; of the expired ones (kept for a day so `GET`
    /// shows what just ended) at most `max_silences` are kept, the longest-ended going first, so that a client
    /// making short silences in a loop cannot grow the state either.
    pub fn add_silence(&mut self, new: NewSilence, now: Timestamp) -> Result<Silence, Refusal> {
        let limits = self.config().silences;
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
                let d = humantime::parse_duration(d.trim())
                    .map_err(|e| format!("bad duration {d:?}: {e}"))?;
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
        let live = self
            .state
            .silences
            .iter()
            .filter(|s| s.ends_at > now)
            .count();
        if live >= limits.max_silences {
            return Err(Refusal::TooMany(format!(
                "there are {live} active and pending silences, the most allowed \
                 (alerting.silences.max_silences); delete one or wait for one to expire"
            )));
        }
        let mut expired: Vec<Timestamp> = self
            .state
            .silences
            .iter()
            .filter(|s| s.ends_at <= now)
            .map(|s| s.ends_at)
            .collect();
        if expired.len() >= limits.max_silences {
            expired.sort_unstable();
            let cutoff = expired[expired.len() - limits.max_silences];
            self.state
                .silences
                .retain(|s| s.ends_at > now || s.ends_at > cutoff);
        }
        let silence = Silence {
            id: uuid::Uuid::new_v4().to_string(),
            matchers,
            starts_at,
            ends_at,
            created_by,
            comment,
            created_at: now,
        };
        self.state.silences.push(silence.clone());
        self.dirty = true;
        Ok(silence)
    }

    /// Removes the silence `id` and returns it, or `None` if there is no such silence.
    pub fn delete_silence(&mut self, id: &str) -> Option<Silence> {
        let at = self.state.silences.iter().position(|s| s.id == id)?;
        self.dirty = true;
        Some(self.state.silences.remove(at))
    }

    /// Puts back a silence [`Engine::delete_silence`] removed, when that deletion could not be saved.
    pub fn restore_silence(&mut self, silence: Silence) {
        if !self.state.silences.iter().any(|s| s.id == silence.id) {
            self.state.silences.push(silence);
            self.dirty = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::matcher::LabelName;
    use crate::rules::engine::tests::{ago, at, config, t0};
    use crate::rules::state::State;

    #[test]
    fn silences_are_validated_with_sentences() {
        let mut e = Engine::new(config(), State::new(t0()));
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
                "bad duration \"soon\": expected number at 0".to_string(),
            ),
            (
                new(vec![m.clone()], Some(ago(t0(), 60)), None),
                "ends_at (2026-01-05T11:59:00Z) must be after starts_at (2026-01-05T12:00:00Z)"
                    .to_string(),
            ),
        ];
        for (request, want) in cases {
            let got = e.add_silence(request.clone(), t0());
            assert_eq!(
                got.as_ref().map(|s| &s.id),
                Err(&Refusal::Invalid(want)),
                "for {request:?}"
            );
        }
        let err = e
            .add_silence(new(vec![bad_regex], Some(at(60)), None), t0())
            .unwrap_err();
        assert!(
            err.to_string().starts_with("bad regex \"(\""),
            "saw {err:?}"
        );
        let ok = e.add_silence(new(vec![m], None, Some("2h")), t0()).unwrap();
        assert_eq!(ok.ends_at, at(7200));
        assert!(e.delete_silence(&ok.id).is_some());
        assert!(e.delete_silence(&ok.id).is_none(), "deleted twice");
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
        let mut e = Engine::new(cfg, State::new(t0()));
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
            let got = e.add_silence(request.clone(), t0()).map(|s| s.id);
            assert_eq!(got, Err(Refusal::Invalid(want.into())), "for {request:?}");
        }
        e.add_silence(new(vec![m("prod")], None, "1h"), t0())
            .unwrap();
        e.add_silence(new(vec![m("prod")], Some(at(600)), "1h"), t0())
            .unwrap();
        let third = e.add_silence(new(vec![m("prod")], None, "1h"), t0());
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
            e.add_silence(new(vec![m("prod")], Some(now), "1h"), now)
                .unwrap();
        }
        assert!(
            e.silences().len() <= 4,
            "saw {} silences",
            e.silences().len()
        );
        let ids: std::collections::BTreeSet<&str> =
            e.silences().iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), e.silences().len(), "an id was handed out twice");
    }
}
