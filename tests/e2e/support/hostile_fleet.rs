//! A fleet whose account names, agent names, versions and provider-specific labels break naive exposition writers,
//! for every provider: quotes, backslashes, newlines, tabs, non-ASCII, label syntax and values of 10,000 characters.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use onprem_agent_exporter::domain::{Agent, AgentList, Health, Provider};
use onprem_agent_exporter::sim::fleet::AWKWARD_NAMES;
use onprem_agent_exporter::status::{Registry, SourceStatus};

/// A value of 10,000 characters ending in every character that needs escaping.
pub fn very_long(prefix: &str) -> String {
    format!("{prefix}{}\"\\\n", "ü-agent ".repeat(1_250))
}

/// The accounts and their providers.
pub fn accounts() -> [(&'static str, Provider); 3] {
    [
        ("us \"prod\" \\ celigo", Provider::Celigo),
        ("etl\nprod ☃", Provider::Planasonix),
        ("logging,provider=\"x\"}", Provider::Calyptia),
    ]
}

/// The agent names every account holds.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = AWKWARD_NAMES.iter().map(|n| n.to_string()).collect();
    names.push(very_long("long name "));
    names.extend(CONTROL_NAMES.iter().map(|n| n.to_string()));
    names
}

/// Names with control characters, which no exposition format can carry raw.
pub const CONTROL_NAMES: &[&str] = &[
    "carriage\rreturn",
    "crlf\r\nline",
    "nul\0byte",
    "escape \x1b[31mred\x1b[0m",
    "bell\x07 del\x7f next-line\u{85}",
];

/// A label value as a parser must read it back: every control character but the newline replaced by U+FFFD (the
/// exporter's documented rule, written out again here so the test checks it rather than repeats it).
pub fn as_exposed(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c != '\n' && (c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c)) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// The version of agent number `i`: hostile, very long, missing or plain.
fn version(i: usize) -> Option<String> {
    match i % 4 {
        0 => Some(format!("2.14.{i} \"beta\" \\ build\nnext ☃")),
        1 => Some(very_long("long version ")),
        2 => None,
        _ => Some("2.14.3".to_string()),
    }
}

/// A status registry holding every account, each with one agent per name in [`names`].
pub fn registry() -> Arc<Registry> {
    let registry = Registry::new(accounts());
    let now = Timestamp::now();
    for (index, (account, provider)) in accounts().into_iter().enumerate() {
        let agents = names()
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let mut a = Agent::new(format!("{provider}-{i}"), name);
                a.version = version(i);
                a.last_heartbeat = Some(now);
                let hostile = format!("v \"{i}\" \\ x\ny ☃");
                a.info = match provider {
                    Provider::Celigo => {
                        a.token_rotated = Some(now);
                        Vec::new()
                    }
                    Provider::Planasonix => {
                        a.health = Some(Box::new(Health {
                            cpu_ratio: Some(0.5),
                            last_error: Some(very_long("error ")),
                            ..Health::default()
                        }));
                        vec![("status", hostile.clone()), ("platform", very_long(""))]
                    }
                    Provider::Calyptia | Provider::Generic(_) => vec![
                        ("type", hostile.clone()),
                        ("edition", very_long("")),
                        ("os", "linux\t\"x\"".to_string()),
                        ("arch", "\\".to_string()),
                    ],
                };
                a
            })
            .collect();
        let mut status = SourceStatus::new(account, provider);
        status.up = true;
        status.polls = 1;
        status.last_success = Some(now);
        status.agents = Some(Arc::new(AgentList {
            polled_at: now,
            agents,
        }));
        registry.publish(index, status);
    }
    Arc::new(registry)
}

/// `(account, provider, agent_name, version)` of every agent, as a parser must read them back.
pub fn expected_agents() -> BTreeSet<(String, String, String, String)> {
    let mut expected = BTreeSet::new();
    for (account, provider) in accounts() {
        for (i, name) in names().into_iter().enumerate() {
            let version = version(i).unwrap_or_default();
            expected.insert((
                as_exposed(account),
                provider.to_string(),
                as_exposed(&name),
                as_exposed(&version),
            ));
        }
    }
    expected
}
