//! `alerting.silences`: the caps on silences made through `POST /api/v1/silences`, so that nobody who may write
//! silences can grow the silences file, the API's answers or the engine's work without bound, or mute alerts for
//! years.
//!
//! With the defaults the matchers of every live silence together stay under 8 MiB
//! (`max_silences × max_matchers × max_matcher_value_bytes`), and the `comment` and `created_by` texts (1000
//! characters each, not configurable) add at most 8 MB more.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::parse::{ConfigError, Located};

/// `alerting.silences` as written; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSilenceLimits {
    /// The most active and pending silences at once (default 1000). One more is answered 429.
    #[serde(default)]
    pub max_silences: Option<Spanned<u64>>,
    /// The most matchers in one silence (default 16).
    #[serde(default)]
    pub max_matchers: Option<Spanned<u64>>,
    /// The longest matcher value, in bytes of UTF-8 (default 512).
    #[serde(default)]
    pub max_matcher_value_bytes: Option<Spanned<u64>>,
    /// The longest silence, from its start to its end (default 30d).
    #[serde(default)]
    pub max_duration: Option<Spanned<String>>,
    /// How far after its creation a silence may start (default 30d).
    #[serde(default)]
    pub max_start_ahead: Option<Spanned<String>>,
}

/// The validated caps the silence API enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceLimits {
    /// The most active and pending silences held at once. Expired silences do not count; they are kept for a day
    /// for `GET`, and at most this many of them (the oldest go first).
    pub max_silences: usize,
    /// The most matchers in one silence.
    pub max_matchers: usize,
    /// The longest matcher value, in bytes.
    pub max_matcher_value_bytes: usize,
    /// The longest time from `starts_at` to `ends_at`.
    pub max_duration: Duration,
    /// The latest `starts_at` may be after the request.
    pub max_start_ahead: Duration,
}

impl Default for SilenceLimits {
    /// Generous for people and tools (Alertmanager's own silences rarely have more than a handful of matchers or
    /// last more than a week), small enough that the silences file stays a few megabytes.
    fn default() -> SilenceLimits {
        SilenceLimits {
            max_silences: 1000,
            max_matchers: 16,
            max_matcher_value_bytes: 512,
            max_duration: Duration::from_secs(30 * 86_400),
            max_start_ahead: Duration::from_secs(30 * 86_400),
        }
    }
}

impl RawSilenceLimits {
    /// Validates the caps; `key` is the section's path (`alerting.silences`). Each count must be at least 1 and a
    /// duration longer than 0s.
    pub fn validate(&self, v: &Located<'_>, key: &str) -> Result<SilenceLimits, ConfigError> {
        let d = SilenceLimits::default();
        let count = |raw: &Option<Spanned<u64>>, name: &str, default: usize| match raw {
            None => Ok(default),
            Some(n) if n.value == 0 => Err(v.at(
                n.referenced.line(),
                format!("{key}.{name}"),
                "must be at least 1",
            )),
            Some(n) => usize::try_from(n.value).map_err(|_| {
                v.at(
                    n.referenced.line(),
                    format!("{key}.{name}"),
                    format!("{} is too large", n.value),
                )
            }),
        };
        let duration = |raw: &Option<Spanned<String>>, name: &str, default: Duration| {
            let k = format!("{key}.{name}");
            let got = v.opt_duration(raw, &k, default)?;
            match raw {
                Some(r) if got.is_zero() => {
                    Err(v.at(r.referenced.line(), k, "must be longer than 0s"))
                }
                _ => Ok(got),
            }
        };
        Ok(SilenceLimits {
            max_silences: count(&self.max_silences, "max_silences", d.max_silences)?,
            max_matchers: count(&self.max_matchers, "max_matchers", d.max_matchers)?,
            max_matcher_value_bytes: count(
                &self.max_matcher_value_bytes,
                "max_matcher_value_bytes",
                d.max_matcher_value_bytes,
            )?,
            max_duration: duration(&self.max_duration, "max_duration", d.max_duration)?,
            max_start_ahead: duration(&self.max_start_ahead, "max_start_ahead", d.max_start_ahead)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn validate(yaml: &str) -> Result<SilenceLimits, String> {
        let raw: RawSilenceLimits = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        let v = Located {
            file: Path::new("config.yaml"),
        };
        raw.validate(&v, "alerting.silences")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_caps_default_when_unset_and_bad_values_name_their_key() {
        assert_eq!(validate("{}"), Ok(SilenceLimits::default()));
        assert_eq!(
            validate("max_silences: 10\nmax_duration: 7d\n"),
            Ok(SilenceLimits {
                max_silences: 10,
                max_duration: Duration::from_secs(7 * 86_400),
                ..SilenceLimits::default()
            })
        );
        let cases = [
            (
                "max_matchers: 0\n",
                "config.yaml:1: alerting.silences.max_matchers: must be at least 1",
            ),
            (
                "max_start_ahead: 0s\n",
                "config.yaml:1: alerting.silences.max_start_ahead: must be longer than 0s",
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(validate(yaml), Err(want.to_string()), "for {yaml:?}");
        }
        let unknown = validate("max_silence: 3\n").unwrap_err();
        assert!(
            unknown.contains("unknown field `max_silence`"),
            "saw {unknown}"
        );
    }
}
