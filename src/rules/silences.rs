//! Silences made at run time through `POST /api/v1/silences`: validating a request, adding it to the engine's
//! state, listing and deleting. Evaluation applies them (see [`Engine::evaluate`]); this is only their bookkeeping.

use jiff::Timestamp;
use serde::Deserialize;

use crate::rules::engine::Engine;
use crate::rules::matcher::{Matcher, RawMatcher};
use crate::rules::state::Silence;

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

impl Engine {
    /// Every silence, including those that expired in the last day.
    pub fn silences(&self) -> &[Silence] {
        &self.state.silences
    }

    /// Validates and adds a silence. The error is a sentence for the API client.
    pub fn add_silence(&mut self, new: NewSilence, now: Timestamp) -> Result<Silence, String> {
        if new.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        if new.matchers.len() > 32 {
            return Err("a silence takes at most 32 matchers".into());
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
            return Err(format!(
                "ends_at ({ends_at}) must be after starts_at ({starts_at})"
            ));
        }
        if ends_at <= now {
            return Err(format!("ends_at ({ends_at}) is in the past"));
        }
        let text = |s: Option<String>, what: &str| -> Result<String, String> {
            let s = s.unwrap_or_default();
            if s.chars().count() > 1000 {
                return Err(format!("{what} is longer than 1000 characters"));
            }
            Ok(s)
        };
        let silence = Silence {
            id: format!("{:x}-{}", self.state.epoch, self.state.next_silence),
            matchers,
            starts_at,
            ends_at,
            created_by: text(new.created_by, "created_by")?,
            comment: text(new.comment, "comment")?,
            created_at: now,
        };
        self.state.next_silence += 1;
        self.state.silences.push(silence.clone());
        self.dirty = true;
        Ok(silence)
    }

    /// Removes the silence `id`. Returns true if and only if it existed.
    pub fn delete_silence(&mut self, id: &str) -> bool {
        let before = self.state.silences.len();
        self.state.silences.retain(|s| s.id != id);
        let removed = self.state.silences.len() != before;
        self.dirty |= removed;
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::engine::tests::{ago, at, config, t0};
    use crate::rules::matcher::LabelName;
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
            assert_eq!(got.as_ref().map(|s| &s.id), Err(&want), "for {request:?}");
        }
        let err = e
            .add_silence(new(vec![bad_regex], Some(at(60)), None), t0())
            .unwrap_err();
        assert!(err.starts_with("bad regex \"(\""), "saw {err:?}");
        let ok = e.add_silence(new(vec![m], None, Some("2h")), t0()).unwrap();
        assert_eq!(ok.ends_at, at(7200));
        assert!(e.delete_silence(&ok.id));
        assert!(!e.delete_silence(&ok.id), "deleted twice");
    }
}
