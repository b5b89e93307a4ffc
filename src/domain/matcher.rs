//! Label matchers, shared by rule scopes, mute windows, routes and silences: `name = value`, `name != value`,
//! `name =~ regex` and `name !~ regex`, with Alertmanager's semantics (regexes are fully anchored, and a label the
//! alert does not carry matches as the empty string).

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The labels an alert carries, and so the names a matcher may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelName {
    /// The rule's name, such as `AgentOffline`.
    Alertname,
    /// The source name (`account` label).
    Account,
    /// The agent's id; empty for source-level alerts.
    AgentId,
    /// The agent's name; empty for source-level alerts.
    AgentName,
    /// `info`, `warning` or `critical`.
    Severity,
}

impl LabelName {
    /// The label name as it is written in config and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelName::Alertname => "alertname",
            LabelName::Account => "account",
            LabelName::AgentId => "agent_id",
            LabelName::AgentName => "agent_name",
            LabelName::Severity => "severity",
        }
    }
}

impl fmt::Display for LabelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The serialized form of a [`Matcher`], as it appears in config, in `POST /api/v1/silences` and in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatcher {
    /// Which label to test.
    pub name: LabelName,
    /// The literal value, or the regex when `is_regex`.
    pub value: String,
    /// Treat `value` as a regular expression, anchored at both ends.
    #[serde(default)]
    pub is_regex: bool,
    /// `true` (the default) to match when the label matches; `false` to match when it does not.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// A validated matcher: the regex, when there is one, is compiled once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RawMatcher", into = "RawMatcher")]
pub struct Matcher {
    raw: RawMatcher,
    /// The anchored regex, for `is_regex` matchers only.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.raw == other.raw
    }
}

impl Matcher {
    /// Validates a raw matcher. The error is a lowercase sentence naming the bad regex.
    pub fn new(raw: RawMatcher) -> Result<Matcher, String> {
        let regex = if raw.is_regex {
            let anchored = format!("^(?:{})$", raw.value);
            Some(Regex::new(&anchored).map_err(|e| {
                let detail = e.to_string();
                // The last line says what is wrong; the lines above draw a caret under our anchored copy.
                let last = detail.lines().last().unwrap_or_default().trim();
                let last = last.strip_prefix("error: ").unwrap_or(last);
                format!("bad regex {:?}: {last}", raw.value)
            })?)
        } else {
            None
        };
        Ok(Matcher { raw, regex })
    }

    /// An equality matcher, for tests and code-built matchers.
    pub fn equal(name: LabelName, value: &str) -> Matcher {
        Matcher {
            raw: RawMatcher {
                name,
                value: value.to_string(),
                is_regex: false,
                is_equal: true,
            },
            regex: None,
        }
    }

    /// The label this matcher tests.
    pub fn name(&self) -> LabelName {
        self.raw.name
    }

    /// The serialized form.
    pub fn raw(&self) -> &RawMatcher {
        &self.raw
    }

    /// Returns true if and only if `value` (the label's value, empty when absent) satisfies the matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        let hit = match &self.regex {
            Some(re) => re.is_match(value),
            None => self.raw.value == value,
        };
        hit == self.raw.is_equal
    }

    /// Returns true if and only if the labels looked up through `label` satisfy this matcher.
    pub fn matches(&self, label: &dyn Fn(LabelName) -> String) -> bool {
        self.matches_value(&label(self.raw.name))
    }
}

impl TryFrom<RawMatcher> for Matcher {
    type Error = String;
    fn try_from(raw: RawMatcher) -> Result<Matcher, String> {
        Matcher::new(raw)
    }
}

impl From<Matcher> for RawMatcher {
    fn from(m: Matcher) -> RawMatcher {
        m.raw
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match (self.raw.is_equal, self.raw.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        };
        write!(f, "{}{}{:?}", self.raw.name, op, self.raw.value)
    }
}

/// Returns true if and only if every matcher matches; an empty list matches everything.
pub fn all_match(matchers: &[Matcher], label: &dyn Fn(LabelName) -> String) -> bool {
    matchers.iter().all(|m| m.matches(label))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: LabelName, value: &str, is_regex: bool, is_equal: bool) -> RawMatcher {
        RawMatcher {
            name,
            value: value.to_string(),
            is_regex,
            is_equal,
        }
    }

    #[test]
    fn matchers_follow_alertmanager_semantics() {
        // (matcher, label value, expected)
        let cases = [
            (
                raw(LabelName::AgentName, "edge-1", false, true),
                "edge-1",
                true,
            ),
            (
                raw(LabelName::AgentName, "edge-1", false, true),
                "edge-10",
                false,
            ),
            (
                raw(LabelName::AgentName, "edge-1", false, false),
                "edge-10",
                true,
            ),
            (
                raw(LabelName::AgentName, "edge-.*", true, true),
                "edge-10",
                true,
            ),
            (
                raw(LabelName::AgentName, "edge", true, true),
                "my-edge-1",
                false,
            ),
            (
                raw(LabelName::AgentName, "edge-.*", true, false),
                "core-1",
                true,
            ),
            (raw(LabelName::AgentId, "", false, true), "", true),
            (raw(LabelName::AgentId, "a|b", true, true), "b", true),
        ];
        for (r, value, want) in cases {
            let m = Matcher::new(r.clone()).unwrap();
            assert_eq!(
                m.matches_value(value),
                want,
                "matcher {m} against {value:?}"
            );
        }
    }

    #[test]
    fn a_bad_regex_is_rejected_with_its_text() {
        let err = Matcher::new(raw(LabelName::AgentName, "edge-(", true, true)).unwrap_err();
        assert!(err.starts_with("bad regex \"edge-(\": "), "saw {err:?}");
    }

    #[test]
    fn a_matcher_round_trips_through_json_and_compiles_on_load() {
        let m = Matcher::new(raw(LabelName::Account, "prod-.*", true, true)).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"name":"account","value":"prod-.*","is_regex":true,"is_equal":true}"#
        );
        let back: Matcher = serde_json::from_str(&json).unwrap();
        assert!(back.matches_value("prod-us"), "saw {back:?}");
        let bad =
            serde_json::from_str::<Matcher>(r#"{"name":"account","value":"(","is_regex":true}"#);
        assert!(bad.is_err(), "saw {bad:?}");
    }
}
