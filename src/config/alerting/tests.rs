//! Tests of the `alerting:` section: parsing, defaults and the exact error for each invalid input.

use super::*;

const TAIL: &str = "state_file: /tmp/state.json\nemail:\n  smtp: { host: smtp.example.com, tls: none }\n  \
                    from: \"Agent alerts <alerts@example.com>\"\n  to: [\"ops@example.com\"]\n";

/// Parses and validates `head` followed by the required keys, so line numbers in `head` start at 1.
fn load(head: &str) -> Result<AlertingConfig, ConfigError> {
    let yaml = format!("{head}{TAIL}");
    let raw: RawAlerting =
        serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("YAML:\n{yaml}\n{e}"));
    raw.validate(Path::new("config.yaml"), "alerting")
}

#[test]
fn the_contract_example_validates_with_its_values() {
    let cfg = load(
        "external_url: http://exporter.example.com:9877/\ngroup_wait: 30s\ngroup_interval: 5m\n\
         repeat_interval: 4h\nsend_resolved: true\nrules:\n  \
         heartbeat_stale: { after: 10m, for: 0s, severity: critical }\n  \
         agent_offline:   { for: 5m, severity: critical }\n  \
         token_rotation:  { max_age: 90d, warn_before: 14d }\n  \
         source_down:     { for: 10m, severity: critical }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = &cfg.engine;
    assert_eq!(e.state_file, PathBuf::from("/tmp/state.json"));
    assert_eq!(
        e.external_url.as_deref(),
        Some("http://exporter.example.com:9877")
    );
    assert_eq!(
        (
            e.group_wait,
            e.group_interval,
            e.repeat_interval,
            e.send_resolved
        ),
        (
            Duration::from_secs(30),
            Duration::from_secs(300),
            Duration::from_secs(4 * 3600),
            true
        )
    );
    assert_eq!(
        e.rules,
        Rules::default(),
        "the example spells out the defaults"
    );
    assert_eq!(e.default_to, vec!["ops@example.com".to_string()]);
    assert!(!e.rules.version_outdated.enabled);
}

#[test]
fn every_optional_key_is_understood() {
    let cfg = load(
        "rules:\n  heartbeat_stale:\n    keep_firing_for: 2m\n    matchers:\n      \
         - { name: agent_name, value: \"lab-.*\", is_regex: true, is_equal: false }\n  \
         agent_version_outdated: { min_version: \"1.4\", severity: info }\n\
         overrides:\n  - source: lab\n    rules:\n      heartbeat_stale: { after: 2h }\n      \
         agent_offline: { enabled: false }\n\
         mute_windows:\n  - name: weekend\n    time_zone: Europe/Berlin\n    weekdays: [\"saturday:sunday\", mon]\n    \
         times: [{ start: \"22:00\", end: \"06:00\" }]\n    matchers: [{ name: severity, value: warning }]\n\
         routes:\n  - { alertname: SourceDown, to: [oncall@example.com] }\n  \
         - { severity: warning, account: prod, to: [security@example.com, sec2@example.com] }\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = &cfg.engine;
    assert_eq!(
        e.rules.heartbeat_stale.keep_firing_for,
        Duration::from_secs(120)
    );
    assert_eq!(e.rules.heartbeat_stale.matchers.len(), 1);
    assert_eq!(e.rules.min_version, Some(semver::Version::new(1, 4, 0)));
    assert!(e.rules.version_outdated.enabled);
    let lab = e.rules_for("lab");
    assert_eq!(lab.heartbeat_after, Duration::from_secs(7200));
    assert!(!lab.agent_offline.enabled);
    // Everything an override leaves out comes from `rules`, including what `rules` changed.
    assert_eq!(
        lab.heartbeat_stale.keep_firing_for,
        Duration::from_secs(120)
    );
    assert_eq!(lab.min_version, e.rules.min_version);
    assert_eq!(e.rules_for("prod"), &e.rules);
    let w = &e.mute_windows[0];
    assert_eq!(
        (w.weekdays, w.times.clone()),
        (0b110_0001, vec![(22 * 60, 6 * 60)])
    );
    assert_eq!(e.routes.len(), 2);
    assert_eq!(
        e.routes[1].to,
        vec!["security@example.com", "sec2@example.com"]
    );
    assert!(
        cfg.check_sources(Path::new("config.yaml"), "alerting", ["prod", "lab"])
            .is_ok()
    );
    let err = cfg
        .check_sources(Path::new("config.yaml"), "alerting", ["prod"])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config.yaml:8: alerting.overrides: source \"lab\" is not configured (known sources: prod)"
    );
}

/// Each invalid section and the exact error it must produce.
#[test]
fn invalid_sections_name_the_line_the_key_and_the_value() {
    let cases: &[(&str, &str)] = &[
        (
            "group_wait: soon\n",
            "config.yaml:1: alerting.group_wait: invalid duration \"soon\": write a whole number and a unit (ms, s, m, h, d or \
             w), or several, e.g. 30s, 5m, 1h30m or 90d",
        ),
        (
            "group_interval: 10m\nrepeat_interval: 5m\n",
            "config.yaml:2: alerting.repeat_interval: repeat_interval (5m) is shorter than group_interval \
             (10m); a group is only looked at every group_interval",
        ),
        (
            "evaluation_interval: 50ms\n",
            "config.yaml:1: alerting.evaluation_interval: \"50ms\" is too short: must be at least 100ms",
        ),
        (
            "retry_initial_backoff: 0s\n",
            "config.yaml:1: alerting.retry_initial_backoff: \"0s\" is too short: must be at least 100ms",
        ),
        (
            "evaluation_interval: often\n",
            "config.yaml:1: alerting.evaluation_interval: invalid duration \"often\": write a whole number and a unit (ms, s, m, h, d or \
             w), or several, e.g. 30s, 5m, 1h30m or 90d",
        ),
        (
            "group_interval: 0s\n",
            "config.yaml:1: alerting.group_interval: must be longer than 0s",
        ),
        (
            "external_url: ftp://x\n",
            "config.yaml:1: alerting.external_url: bad URL \"ftp://x\": the scheme must be http or https",
        ),
        (
            "external_url: not a url\n",
            "config.yaml:1: alerting.external_url: bad URL \"not a url\": relative URL without a base",
        ),
        (
            "rules:\n  heartbeat_stale: { after: 0s }\n",
            "config.yaml:2: alerting.rules.heartbeat_stale.after: must be longer than 0s",
        ),
        (
            "rules:\n  agent_offline:\n    for: 5 minutes please\n",
            "config.yaml:3: alerting.rules.agent_offline.for: invalid duration \"5 minutes please\": write a whole number and a unit (ms, s, m, h, d or \
             w), or several, e.g. 30s, 5m, 1h30m or 90d",
        ),
        (
            "rules:\n  token_rotation:\n    max_age: 30d\n    warn_before: 30d\n",
            "config.yaml:4: alerting.rules.token_rotation.warn_before: warn_before (30d) must be shorter \
             than max_age (30d)",
        ),
        (
            "rules:\n  agent_version_outdated: { min_version: latest }\n",
            "config.yaml:2: alerting.rules.agent_version_outdated.min_version: bad version \"latest\"; write a \
             semantic version such as 1.4.0",
        ),
        (
            "rules:\n  heartbeat_stale:\n    matchers:\n      - { name: agent_name, value: \"(\", is_regex: true }\n",
            "config.yaml:4: alerting.rules.heartbeat_stale.matchers[0].value: bad regex \"(\": unclosed group",
        ),
        (
            "rules:\n  agent_offline:\n    matchers:\n      - { name: account, value: prod }\n",
            "config.yaml:4: alerting.rules.agent_offline.matchers[0].name: account cannot be matched here; use \
             one of: agent_id, agent_name",
        ),
        (
            "overrides:\n  - source: prod\n  - source: prod\n",
            "config.yaml:3: alerting.overrides[1].source: source \"prod\" already has an override; merge the two",
        ),
        (
            "overrides:\n  - source: prod\n    rules:\n      token_rotation: { warn_before: 100d }\n",
            "config.yaml:4: alerting.overrides[0].rules.token_rotation.warn_before: warn_before (100d) must \
             be shorter than max_age (90d)",
        ),
        (
            "mute_windows:\n  - name: x\n    time_zone: Mars/Olympus\n",
            "config.yaml:3: alerting.mute_windows[0].time_zone: unknown time zone \"Mars/Olympus\"; use an IANA \
             name such as Europe/Berlin",
        ),
        (
            "mute_windows:\n  - name: x\n    weekdays: [funday]\n",
            "config.yaml:3: alerting.mute_windows[0].weekdays[0]: bad weekday \"funday\"; write monday, mon, or \
             a range such as monday:friday",
        ),
        (
            "mute_windows:\n  - name: x\n    times:\n      - { start: \"25:00\", end: \"06:00\" }\n",
            "config.yaml:4: alerting.mute_windows[0].times[0].start: bad time \"25:00\"; write HH:MM",
        ),
        (
            "mute_windows:\n  - name: x\n    times:\n      - { start: \"06:00\", end: \"06:00\" }\n",
            "config.yaml:4: alerting.mute_windows[0].times[0]: start and end are both 06:00; the range would \
             be empty",
        ),
        (
            "mute_windows:\n  - name: x\n    matchers: [{ name: agent_id, value: a }]\n",
            "config.yaml:3: alerting.mute_windows[0].matchers[0].name: agent_id cannot be matched here; use \
             one of: alertname, account, severity",
        ),
        (
            "routes:\n  - { alertname: AgentDown, to: [a@example.com] }\n",
            "config.yaml:2: alerting.routes[0].alertname: unknown alert \"AgentDown\"; the rules are: \
             AgentHeartbeatStale, AgentOffline, AgentTokenRotationDue, AgentTokenRotationOverdue, SourceDown, \
             AgentVersionOutdated",
        ),
        (
            "routes:\n  - { severity: warning, to: [] }\n",
            "config.yaml:2: alerting.routes[0].to: must list at least one recipient (to) or receiver (receivers)",
        ),
        (
            "routes:\n  - severity: warning\n    to:\n      - ops at example.com\n",
            "config.yaml:4: alerting.routes[0].to[0]: \"ops at example.com\" is not an email address",
        ),
    ];
    for (head, want) in cases {
        match load(head) {
            Ok(_) => panic!("accepted:\n{head}"),
            Err(e) => assert_eq!(e.to_string(), *want, "for:\n{head}"),
        }
    }
}

#[test]
fn email_is_optional_when_alertmanagers_are_listed_but_one_channel_is_required() {
    let parse = |yaml: &str| {
        let raw: RawAlerting = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        raw.validate(Path::new("config.yaml"), "alerting")
    };
    let cfg = parse(
        "state_file: /tmp/s.json\nresend_delay: 2s\nalertmanagers:\n  - url: http://am:9093\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.email.is_none());
    assert_eq!(cfg.alertmanagers.len(), 1);
    assert_eq!(cfg.resend_delay, Duration::from_secs(2));
    assert!(cfg.engine.default_to.is_empty());
    let err = parse("state_file: /tmp/s.json\n").unwrap_err().to_string();
    assert_eq!(
        err,
        "config.yaml:1: alerting: no notification channel: set at least one of email, alertmanagers, receivers"
    );
    assert_eq!(load("").unwrap().resend_delay, DEFAULT_RESEND_DELAY);
}

#[test]
fn unknown_keys_are_rejected_by_the_parser() {
    for head in [
        "group_waits: 30s\n",
        "rules:\n  heartbeat_stale: { max_age: 10d }\n",
        "rules:\n  source_down: { matchers: [] }\n",
        "rules:\n  agent_gone: {}\n",
        "overrides:\n  - { source: prod, after: 1h }\n",
        "rules:\n  agent_offline: { severity: page }\n",
    ] {
        let yaml = format!("{head}{TAIL}");
        let parsed: Result<RawAlerting, _> = serde_saphyr::from_str(&yaml);
        assert!(parsed.is_err(), "accepted:\n{yaml}");
    }
}

#[test]
fn the_loop_intervals_default_to_five_seconds_and_may_be_shortened_to_100ms() {
    let defaults = load("").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            defaults.engine.evaluation_interval,
            defaults.retry_initial_backoff
        ),
        (Duration::from_secs(5), Duration::from_secs(5))
    );
    let fast = load("evaluation_interval: 200ms\nretry_initial_backoff: 100ms\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (fast.engine.evaluation_interval, fast.retry_initial_backoff),
        (Duration::from_millis(200), Duration::from_millis(100))
    );
}

/// Every rule block, a key it does not accept, and the exact error: the key's line and path, and the keys
/// that block does accept.
#[test]
fn a_key_a_rule_does_not_accept_is_rejected_at_its_line_listing_the_keys_it_does() {
    let cases: &[(&str, &str)] = &[
        (
            "rules:\n  heartbeat_stale:\n    after: 5m\n    max_age: 10d\n",
            "config.yaml:4: rules.heartbeat_stale.max_age: unknown field `max_age`, expected one of enabled, \
             after, for, keep_firing_for, severity, matchers",
        ),
        (
            "rules:\n  agent_offline: { after: 5m }\n",
            "config.yaml:2: rules.agent_offline.after: unknown field `after`, expected one of enabled, for, \
             keep_firing_for, severity, matchers",
        ),
        (
            "rules:\n  token_rotation:\n    severity: info\n",
            "config.yaml:3: rules.token_rotation.severity: unknown field `severity`, expected one of enabled, \
             max_age, warn_before, keep_firing_for, matchers",
        ),
        (
            "rules:\n  source_down:\n    for: 1m\n    matchers: []\n",
            "config.yaml:4: rules.source_down.matchers: unknown field `matchers`, expected one of enabled, for, \
             keep_firing_for, severity",
        ),
        (
            "overrides:\n  - source: lab\n    rules:\n      agent_version_outdated:\n        warn_before: 1d\n",
            "config.yaml:5: overrides[0].rules.agent_version_outdated.warn_before: unknown field `warn_before`, \
             expected one of enabled, min_version, for, keep_firing_for, severity, matchers",
        ),
        (
            "rules:\n  agent_offline:\n    severity: page\n",
            "config.yaml:3: rules.agent_offline.severity: unknown variant `page`, expected one of info, \
             warning, critical",
        ),
    ];
    for (head, want) in cases {
        let yaml = format!("{head}{TAIL}");
        match crate::config::parse::parse_yaml::<RawAlerting>(&yaml, Path::new("config.yaml")) {
            Ok(_) => panic!("accepted:\n{yaml}"),
            Err(e) => assert_eq!(e.to_string(), *want, "for:\n{yaml}"),
        }
    }
}
