//! Validation of the `alerting:` section: [`RawAlerting::validate`] checks every key and builds the validated
//! types of [`super`]. Errors name the file, the line, the key path and the bad value.

use std::collections::BTreeMap;
use std::path::Path;
use url::Url;

use jiff::tz::TimeZone;
use serde_saphyr::Spanned;

use super::raw::*;
use super::*;
use crate::config::alertmanagers;
use crate::config::parse::{ConfigError, Located as Invalid};
use crate::config::receivers::{
    Destinations, check_destinations, resolve_names, validate_receivers,
};
use crate::domain::matcher::{LabelName, Matcher, RawMatcher};
use crate::domain::parse_version;
use crate::humanize::limit as human;

impl Invalid<'_> {
    /// Compiles matchers whose names are in `allowed`.
    fn matchers(
        &self,
        raw: &[Spanned<RawMatcher>],
        key: &str,
        allowed: &[LabelName],
    ) -> Result<Vec<Matcher>, ConfigError> {
        raw.iter()
            .enumerate()
            .map(|(i, m)| {
                let key = format!("{key}[{i}]");
                let line = m.referenced.line();
                if !allowed.contains(&m.value.name) {
                    let names: Vec<&str> = allowed.iter().map(|n| n.as_str()).collect();
                    return Err(self.at(
                        line,
                        format!("{key}.name"),
                        format!(
                            "{} cannot be matched here; use one of: {}",
                            m.value.name,
                            names.join(", ")
                        ),
                    ));
                }
                Matcher::new(m.value.clone()).map_err(|e| self.at(line, format!("{key}.value"), e))
            })
            .collect()
    }
}

/// The names a rule's matchers may test: rules look at agents; per-source differences go in `overrides`.
const AGENT_LABELS: [LabelName; 2] = [LabelName::AgentId, LabelName::AgentName];
/// The names a mute window may test: muting applies to whole groups.
const GROUP_LABELS: [LabelName; 3] = [
    LabelName::Alertname,
    LabelName::Account,
    LabelName::Severity,
];

impl RawAlerting {
    /// Validates the section. `key` is its path in the file (`alerting`), for messages.
    pub fn validate(self, file: &Path, key: &str) -> Result<AlertingConfig, ConfigError> {
        let v = Invalid { file };
        if self.state_file.value.as_os_str().is_empty() {
            return Err(v.at(
                self.state_file.referenced.line(),
                format!("{key}.state_file"),
                "must not be empty",
            ));
        }
        let external_url = match &self.external_url {
            None => None,
            Some(raw) => {
                let k = format!("{key}.external_url");
                let url = Url::parse(raw.value.trim()).map_err(|e| {
                    v.at(
                        raw.referenced.line(),
                        &k,
                        format!("bad URL {:?}: {e}", raw.value),
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(v.at(
                        raw.referenced.line(),
                        &k,
                        format!("bad URL {:?}: the scheme must be http or https", raw.value),
                    ));
                }
                Some(url.as_str().trim_end_matches('/').to_string())
            }
        };
        let defaults = EngineConfig::new(PathBuf::new(), Vec::new());
        let group_wait = v.opt_duration(
            &self.group_wait,
            &format!("{key}.group_wait"),
            defaults.group_wait,
        )?;
        let group_interval = v.opt_duration(
            &self.group_interval,
            &format!("{key}.group_interval"),
            defaults.group_interval,
        )?;
        let repeat_interval = v.opt_duration(
            &self.repeat_interval,
            &format!("{key}.repeat_interval"),
            defaults.repeat_interval,
        )?;
        if group_interval.is_zero() {
            let line = self
                .group_interval
                .as_ref()
                .map_or(0, |s| s.referenced.line());
            return Err(v.at(
                line,
                format!("{key}.group_interval"),
                "must be longer than 0s",
            ));
        }
        if repeat_interval < group_interval {
            let line = self
                .repeat_interval
                .as_ref()
                .or(self.group_interval.as_ref())
                .map_or(0, |s| s.referenced.line());
            return Err(v.at(
                line,
                format!("{key}.repeat_interval"),
                format!(
                    "repeat_interval ({}) is shorter than group_interval ({}); a group is only looked at every \
                     group_interval",
                    human(repeat_interval),
                    human(group_interval)
                ),
            ));
        }

        let evaluation_interval = v.opt_duration_at_least(
            &self.evaluation_interval,
            &format!("{key}.evaluation_interval"),
            defaults.evaluation_interval,
            MIN_LOOP_INTERVAL,
        )?;
        let retry_initial_backoff = v.opt_duration_at_least(
            &self.retry_initial_backoff,
            &format!("{key}.retry_initial_backoff"),
            DEFAULT_RETRY_INITIAL_BACKOFF,
            MIN_LOOP_INTERVAL,
        )?;

        let rules = validate_rules(&v, &self.rules, &Rules::default(), &format!("{key}.rules"))?;
        let mut overrides = BTreeMap::new();
        let mut override_lines = BTreeMap::new();
        for (i, o) in self.overrides.iter().enumerate() {
            let k = format!("{key}.overrides[{i}]");
            let source = o.value.source.value.trim().to_string();
            let line = o.value.source.referenced.line();
            if source.is_empty() {
                return Err(v.at(line, format!("{k}.source"), "must not be empty"));
            }
            if override_lines.contains_key(&source) {
                return Err(v.at(
                    line,
                    format!("{k}.source"),
                    format!("source {source:?} already has an override; merge the two"),
                ));
            }
            let merged = validate_rules(&v, &o.value.rules, &rules, &format!("{k}.rules"))?;
            overrides.insert(source.clone(), merged);
            override_lines.insert(source, line);
        }

        let mut mute_windows = Vec::new();
        for (i, w) in self.mute_windows.iter().enumerate() {
            mute_windows.push(validate_mute_window(
                &v,
                &w.value,
                &format!("{key}.mute_windows[{i}]"),
            )?);
        }

        let receivers = validate_receivers(file, &format!("{key}.receivers"), &self.receivers)?;
        let default_receivers = resolve_names(
            file,
            &format!("{key}.default_receivers"),
            &self.default_receivers,
            &receivers,
        )?;
        require_a_channel(
            &v,
            self.state_file.referenced.line(),
            key,
            &[
                ("email", self.email.is_some()),
                ("alertmanagers", !self.alertmanagers.is_empty()),
                ("receivers", !receivers.is_empty()),
            ],
        )?;
        check_destinations(
            file,
            key,
            self.state_file.referenced.line(),
            Destinations {
                email: self.email.is_some(),
                alertmanagers: !self.alertmanagers.is_empty(),
                receivers: receivers.len(),
                default_receivers: default_receivers.len(),
            },
        )?;

        let mut routes = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            let k = format!("{key}.routes[{i}]");
            let alertname = match &r.value.alertname {
                None => None,
                Some(a) => Some(AlertName::parse(a.value.trim()).ok_or_else(|| {
                    let names: Vec<&str> = AlertName::ALL.iter().map(|n| n.as_str()).collect();
                    v.at(
                        a.referenced.line(),
                        format!("{k}.alertname"),
                        format!(
                            "unknown alert {:?}; the rules are: {}",
                            a.value,
                            names.join(", ")
                        ),
                    )
                })?),
            };
            if r.value.to.is_empty() && r.value.receivers.is_empty() {
                return Err(v.at(
                    r.referenced.line(),
                    format!("{k}.to"),
                    "must list at least one recipient (to) or receiver (receivers)",
                ));
            }
            if !r.value.to.is_empty() && self.email.is_none() {
                return Err(v.at(
                    r.value.to[0].referenced.line(),
                    format!("{k}.to"),
                    "addresses need alerting.email to send through; add it or use receivers",
                ));
            }
            let route_receivers = resolve_names(
                file,
                &format!("{k}.receivers"),
                &r.value.receivers,
                &receivers,
            )?;
            let mut to = Vec::new();
            for (j, addr) in r.value.to.iter().enumerate() {
                check_address(&addr.value)
                    .map_err(|m| v.at(addr.referenced.line(), format!("{k}.to[{j}]"), m))?;
                to.push(addr.value.trim().to_string());
            }
            routes.push(Route {
                alertname,
                severity: r.value.severity,
                account: r.value.account.clone(),
                to,
                receivers: route_receivers,
            });
        }

        let resend_delay = v.opt_duration_at_least(
            &self.resend_delay,
            &format!("{key}.resend_delay"),
            DEFAULT_RESEND_DELAY,
            MIN_LOOP_INTERVAL,
        )?;
        let alertmanagers =
            alertmanagers::validate(file, &format!("{key}.alertmanagers"), self.alertmanagers)?;
        let email = match self.email {
            Some(e) => Some(e.validate(file, &format!("{key}.email"))?),
            None => None,
        };
        let default_to = email
            .as_ref()
            .map(EmailConfig::recipients)
            .unwrap_or_default();
        Ok(AlertingConfig {
            engine: EngineConfig {
                // Relative to the config file's folder, as every other path in it.
                state_file: crate::config::parse::resolve_path(file, &self.state_file.value),
                external_url,
                group_wait,
                group_interval,
                repeat_interval,
                send_resolved: self.send_resolved.unwrap_or(true),
                evaluation_interval,
                rules,
                overrides,
                override_lines,
                mute_windows,
                routes,
                default_to,
                silences: self.silences.validate(&v, &format!("{key}.silences"))?,
                default_receivers,
            },
            email,
            receivers,
            alertmanagers,
            resend_delay,
            retry_initial_backoff,
        })
    }
}

/// Fails unless at least one notification channel is configured: an alerting section that tells nobody is a
/// mistake. `channels` lists each channel key of the section with whether it is set; a new channel adds one entry.
/// `line` is where the error points (the section's first key).
pub fn require_a_channel(
    v: &Invalid<'_>,
    line: u64,
    key: &str,
    channels: &[(&str, bool)],
) -> Result<(), ConfigError> {
    if channels.iter().any(|(_, set)| *set) {
        return Ok(());
    }
    let names: Vec<&str> = channels.iter().map(|(n, _)| *n).collect();
    Err(v.at(
        line,
        key,
        format!(
            "no notification channel: set at least one of {}",
            names.join(", ")
        ),
    ))
}

/// Validates `raw` on top of `base`: fields `raw` leaves out keep `base`'s value.
fn validate_rules(
    v: &Invalid<'_>,
    raw: &RawRules,
    base: &Rules,
    key: &str,
) -> Result<Rules, ConfigError> {
    let mut rules = base.clone();
    if let Some(r) = &raw.heartbeat_stale {
        let k = format!("{key}.heartbeat_stale");
        apply_shared(v, r, &mut rules.heartbeat_stale, &k)?;
        rules.heartbeat_after =
            v.opt_duration(&r.after, &format!("{k}.after"), rules.heartbeat_after)?;
        if rules.heartbeat_after.is_zero() {
            let line = r.after.as_ref().map_or(0, |a| a.referenced.line());
            return Err(v.at(line, format!("{k}.after"), "must be longer than 0s"));
        }
    }
    if let Some(r) = &raw.agent_offline {
        apply_shared(
            v,
            r,
            &mut rules.agent_offline,
            &format!("{key}.agent_offline"),
        )?;
    }
    if let Some(r) = &raw.token_rotation {
        let k = format!("{key}.token_rotation");
        apply_shared(v, r, &mut rules.token_rotation, &k)?;
        rules.token_max_age =
            v.opt_duration(&r.max_age, &format!("{k}.max_age"), rules.token_max_age)?;
        rules.token_warn_before = v.opt_duration(
            &r.warn_before,
            &format!("{k}.warn_before"),
            rules.token_warn_before,
        )?;
        if rules.token_max_age.is_zero() {
            let line = r.max_age.as_ref().map_or(0, |a| a.referenced.line());
            return Err(v.at(line, format!("{k}.max_age"), "must be longer than 0s"));
        }
        if rules.token_warn_before >= rules.token_max_age {
            let line = r
                .warn_before
                .as_ref()
                .or(r.max_age.as_ref())
                .map_or(0, |a| a.referenced.line());
            return Err(v.at(
                line,
                format!("{k}.warn_before"),
                format!(
                    "warn_before ({}) must be shorter than max_age ({})",
                    human(rules.token_warn_before),
                    human(rules.token_max_age)
                ),
            ));
        }
    }
    if let Some(r) = &raw.source_down {
        apply_shared(v, r, &mut rules.source_down, &format!("{key}.source_down"))?;
    }
    if let Some(r) = &raw.agent_version_outdated {
        let k = format!("{key}.agent_version_outdated");
        if let Some(min) = &r.min_version {
            let parsed = parse_version(&min.value).ok_or_else(|| {
                v.at(
                    min.referenced.line(),
                    format!("{k}.min_version"),
                    format!(
                        "bad version {:?}; write a semantic version such as 1.4.0",
                        min.value
                    ),
                )
            })?;
            rules.min_version = Some(parsed);
        }
        apply_shared(v, r, &mut rules.version_outdated, &k)?;
        // Without a version to compare against, the rule has nothing to check.
        rules.version_outdated.enabled = rules.min_version.is_some() && r.enabled.unwrap_or(true);
    }
    Ok(rules)
}

/// Applies the keys every rule shares (`enabled`, `for`, `keep_firing_for`, `severity`, `matchers`) to `s`, the
/// block at key path `key`. Keys the rule does not accept are `None`, since the parser rejected them, and change
/// nothing.
fn apply_shared<K>(
    v: &Invalid<'_>,
    r: &RawRule<K>,
    s: &mut RuleSettings,
    key: &str,
) -> Result<(), ConfigError> {
    s.enabled = r.enabled.unwrap_or(s.enabled);
    s.for_ = v.opt_duration(&r.for_, &format!("{key}.for"), s.for_)?;
    s.keep_firing_for = v.opt_duration(
        &r.keep_firing_for,
        &format!("{key}.keep_firing_for"),
        s.keep_firing_for,
    )?;
    s.severity = r.severity.unwrap_or(s.severity);
    if let Some(m) = &r.matchers {
        s.matchers = v.matchers(m, &format!("{key}.matchers"), &AGENT_LABELS)?;
    }
    Ok(())
}

fn validate_mute_window(
    v: &Invalid<'_>,
    raw: &RawMuteWindow,
    key: &str,
) -> Result<MuteWindow, ConfigError> {
    let name = raw.name.value.trim().to_string();
    if name.is_empty() {
        return Err(v.at(
            raw.name.referenced.line(),
            format!("{key}.name"),
            "must not be empty",
        ));
    }
    let time_zone = match &raw.time_zone {
        None => TimeZone::UTC,
        Some(tz) => TimeZone::get(tz.value.trim()).map_err(|_| {
            v.at(
                tz.referenced.line(),
                format!("{key}.time_zone"),
                format!(
                    "unknown time zone {:?}; use an IANA name such as Europe/Berlin",
                    tz.value
                ),
            )
        })?,
    };
    let mut weekdays = 0u8;
    for (i, d) in raw.weekdays.iter().enumerate() {
        let bad = || {
            v.at(
                d.referenced.line(),
                format!("{key}.weekdays[{i}]"),
                format!(
                    "bad weekday {:?}; write monday, mon, or a range such as monday:friday",
                    d.value
                ),
            )
        };
        let text = d.value.trim().to_ascii_lowercase();
        let (from, to) = match text.split_once(':') {
            Some((a, b)) => (weekday(a).ok_or_else(bad)?, weekday(b).ok_or_else(bad)?),
            None => {
                let w = weekday(&text).ok_or_else(bad)?;
                (w, w)
            }
        };
        let mut day = from;
        loop {
            weekdays |= 1 << day;
            if day == to {
                break;
            }
            day = (day + 1) % 7;
        }
    }
    if raw.weekdays.is_empty() {
        weekdays = 0x7f;
    }
    let mut times = Vec::new();
    for (i, t) in raw.times.iter().enumerate() {
        let k = format!("{key}.times[{i}]");
        let line = t.referenced.line();
        let start = clock(&t.value.start, false).ok_or_else(|| {
            v.at(
                line,
                format!("{k}.start"),
                format!("bad time {:?}; write HH:MM", t.value.start),
            )
        })?;
        let end = clock(&t.value.end, true).ok_or_else(|| {
            v.at(
                line,
                format!("{k}.end"),
                format!("bad time {:?}; write HH:MM, up to 24:00", t.value.end),
            )
        })?;
        if start == end {
            return Err(v.at(
                line,
                &k,
                format!(
                    "start and end are both {}; the range would be empty",
                    t.value.start
                ),
            ));
        }
        times.push((start, end));
    }
    let matchers = v.matchers(&raw.matchers, &format!("{key}.matchers"), &GROUP_LABELS)?;
    Ok(MuteWindow {
        name,
        time_zone,
        weekdays,
        times,
        matchers,
    })
}

/// Monday = 0.
fn weekday(s: &str) -> Option<u8> {
    const NAMES: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let s = s.trim();
    NAMES
        .iter()
        .position(|n| *n == s || (s.len() == 3 && n.starts_with(s)))
        .map(|p| p as u8)
}

/// `HH:MM` as minutes after midnight; `24:00` only when `end`.
fn clock(s: &str, end: bool) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    match (h, m) {
        (24, 0) if end => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// A light check of a recipient: the notifier parses addresses fully; this catches typos at load time.
fn check_address(s: &str) -> Result<(), String> {
    let t = s.trim();
    let ok = match t.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !t
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || matches!(c, ',' | '<' | '>'))
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not an email address"))
    }
}
