//! The top-level `reports` section: the scheduled token-age compliance report (when, in which zone, to whom) and
//! the token policy it measures against.
//!
//! As in the other sections, raw serde types reject unknown keys and `validate` returns types that cannot be wrong
//! (a compiled cron schedule, a time zone, parsed mailboxes, durations). Every error is a [`ConfigError::Invalid`]
//! naming the file, the line, the key path (`reports.token_compliance.schedule`) and the bad value.

use std::path::Path;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use lettre::message::Mailbox;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::parse::{ConfigError, Located};

/// The token age at which a token is overdue when `reports.token_compliance.max_age` is not set: 90 days, the
/// rotation policy most security teams start from.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);

/// How long before `max_age` a token counts as due soon when `warn_before` is not set: 14 days.
pub const DEFAULT_WARN_BEFORE: Duration = Duration::from_secs(14 * 86_400);

/// The top-level `reports` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReports {
    /// The token-age compliance report; absent means no scheduled report.
    #[serde(default)]
    pub token_compliance: Option<Spanned<RawTokenCompliance>>,
}

/// `reports.token_compliance` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenCompliance {
    /// A 5-field cron expression (minute hour day-of-month month day-of-week), read in `timezone`.
    pub schedule: Spanned<String>,
    /// An IANA time zone name (default `UTC`).
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    /// Who gets the report.
    pub to: Spanned<Vec<Spanned<String>>>,
    /// A token older than this is overdue (default 90d).
    #[serde(default)]
    pub max_age: Option<Spanned<String>>,
    /// A token within this of `max_age` is due soon (default 14d).
    #[serde(default)]
    pub warn_before: Option<Spanned<String>>,
}

/// The validated `reports` section.
#[derive(Debug, Clone, Default)]
pub struct ReportsConfig {
    /// `None` when no compliance report is scheduled.
    pub token_compliance: Option<TokenComplianceConfig>,
}

impl ReportsConfig {
    /// The thresholds `report` measures against: the configured ones, or the defaults (90d, 14d) when no report is
    /// scheduled.
    pub fn policy(&self) -> TokenPolicy {
        self.token_compliance
            .as_ref()
            .map(|t| t.policy)
            .unwrap_or_default()
    }
}

/// The validated `reports.token_compliance`.
#[derive(Debug, Clone)]
pub struct TokenComplianceConfig {
    /// The schedule as written, for messages and logs.
    pub schedule_text: String,
    /// The compiled schedule; evaluated in [`Self::timezone`], so `0 9 * * MON` means 09:00 local time all year.
    pub schedule: Cron,
    /// The zone the schedule is read in.
    pub timezone: TimeZone,
    /// The zone's name as written (`Europe/Berlin`), for the report header.
    pub timezone_name: String,
    /// Recipients, never empty.
    pub to: Vec<Mailbox>,
    /// The policy thresholds the report measures against.
    pub policy: TokenPolicy,
}

/// When a token is due and overdue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPolicy {
    /// A token older than this is overdue.
    pub max_age: Duration,
    /// A token older than `max_age - warn_before` is due soon. Always shorter than `max_age`.
    pub warn_before: Duration,
}

impl Default for TokenPolicy {
    fn default() -> TokenPolicy {
        TokenPolicy {
            max_age: DEFAULT_MAX_AGE,
            warn_before: DEFAULT_WARN_BEFORE,
        }
    }
}

/// Parses a 5-field cron expression. Seconds and years are refused: the report runs at most once a minute, and a
/// 6-field expression is more often a mistake (a field too many) than a wish for second precision.
pub fn parse_schedule(text: &str) -> Result<Cron, String> {
    let fields = text.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "{text:?} has {fields} fields; write 5 (minute hour day-of-month month day-of-week), as in \"0 9 * * MON\""
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| format!("{text:?} is not a cron expression: {e}"))
}

impl RawReports {
    /// Validates the section found at `key` (normally `reports`) of `file`.
    pub fn validate(self, file: &Path, key: &str) -> Result<ReportsConfig, ConfigError> {
        let v = Located { file };
        let Some(tc) = self.token_compliance else {
            return Ok(ReportsConfig::default());
        };
        let line = tc.referenced.line();
        let tc = tc.value;
        let k = format!("{key}.token_compliance");

        let schedule = parse_schedule(tc.schedule.value.trim())
            .map_err(|m| v.at(tc.schedule.referenced.line(), format!("{k}.schedule"), m))?;
        let (timezone, timezone_name) = match &tc.timezone {
            None => (TimeZone::UTC, "UTC".to_string()),
            Some(z) => {
                let name = z.value.trim();
                let tz = TimeZone::get(name).map_err(|e| {
                    v.at(
                        z.referenced.line(),
                        format!("{k}.timezone"),
                        format!("{:?} is not a known time zone ({e}); write an IANA name like Europe/Berlin", z.value),
                    )
                })?;
                (tz, name.to_string())
            }
        };
        let to = v.mailboxes(&tc.to, &format!("{k}.to"))?;
        let max_age = v.opt_duration(&tc.max_age, &format!("{k}.max_age"), DEFAULT_MAX_AGE)?;
        let warn_before = v.opt_duration(
            &tc.warn_before,
            &format!("{k}.warn_before"),
            DEFAULT_WARN_BEFORE,
        )?;
        if max_age.is_zero() {
            let l = tc.max_age.as_ref().map_or(line, |m| m.referenced.line());
            return Err(v.at(l, format!("{k}.max_age"), "must be longer than zero"));
        }
        if warn_before >= max_age {
            let l = tc
                .warn_before
                .as_ref()
                .map_or(line, |m| m.referenced.line());
            return Err(v.at(
                l,
                format!("{k}.warn_before"),
                format!(
                    "warn_before ({}) must be shorter than max_age ({})",
                    crate::humanize::limit(warn_before),
                    crate::humanize::limit(max_age)
                ),
            ));
        }
        Ok(ReportsConfig {
            token_compliance: Some(TokenComplianceConfig {
                schedule_text: tc.schedule.value.trim().to_string(),
                schedule,
                timezone,
                timezone_name,
                to,
                policy: TokenPolicy {
                    max_age,
                    warn_before,
                },
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(yaml: &str) -> Result<ReportsConfig, ConfigError> {
        let raw: RawReports = serde_saphyr::from_str(yaml).expect("the test YAML parses");
        raw.validate(Path::new("test.yaml"), "reports")
    }

    #[test]
    fn the_report_section_takes_defaults_and_parses_the_schedule_in_its_zone() {
        let cfg = reports(
            "token_compliance:\n  schedule: \"0 9 * * MON\"\n  timezone: Europe/Berlin\n  to: [\"security@example.com\"]\n",
        )
        .unwrap();
        let tc = cfg.token_compliance.expect("token_compliance");
        assert_eq!(tc.policy, TokenPolicy::default());
        assert_eq!(tc.timezone_name, "Europe/Berlin");
        assert_eq!(tc.schedule_text, "0 9 * * MON");
        assert_eq!(tc.to.len(), 1);
        assert!(reports("{}").unwrap().token_compliance.is_none());
    }

    #[test]
    fn invalid_report_sections_name_the_line_the_key_and_the_value() {
        let cases: &[(&str, u64, &str, &str)] = &[
            (
                "token_compliance:\n  schedule: \"0 9 * *\"\n  to: [a@b.c]\n",
                2,
                "reports.token_compliance.schedule",
                "4 fields",
            ),
            (
                "token_compliance:\n  schedule: \"0 9 * * * *\"\n  to: [a@b.c]\n",
                2,
                "reports.token_compliance.schedule",
                "6 fields",
            ),
            (
                "token_compliance:\n  schedule: \"0 25 * * *\"\n  to: [a@b.c]\n",
                2,
                "reports.token_compliance.schedule",
                "0 25",
            ),
            (
                "token_compliance:\n  schedule: \"0 9 * * *\"\n  timezone: Mars/Olympus\n  to: [a@b.c]\n",
                3,
                "reports.token_compliance.timezone",
                "Mars/Olympus",
            ),
            (
                "token_compliance:\n  schedule: \"0 9 * * *\"\n  to: []\n",
                3,
                "reports.token_compliance.to",
                "at least one",
            ),
            (
                "token_compliance:\n  schedule: \"0 9 * * *\"\n  to: [a@b.c]\n  max_age: 10d\n  warn_before: 10d\n",
                5,
                "reports.token_compliance.warn_before",
                "shorter than max_age",
            ),
            (
                "token_compliance:\n  schedule: \"0 9 * * *\"\n  to: [a@b.c]\n  max_age: ninety\n",
                4,
                "reports.token_compliance.max_age",
                "ninety",
            ),
        ];
        for (yaml, line, key, fragment) in cases {
            match reports(yaml) {
                Err(ConfigError::Invalid {
                    line: l,
                    key: k,
                    message,
                    ..
                }) => {
                    assert_eq!(
                        (l, k.as_str()),
                        (*line, *key),
                        "for YAML:\n{yaml}\nmessage: {message}"
                    );
                    assert!(
                        message.contains(fragment),
                        "message {message:?} lacks {fragment:?} for:\n{yaml}"
                    );
                }
                other => panic!("expected Invalid at {key}, got {other:?} for:\n{yaml}"),
            }
        }
    }
}
