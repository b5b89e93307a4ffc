//! Table-driven config tests: each `tests/fixtures/invalid-*.yaml` starts with `# expect: <message>` and must fail
//! to load with exactly that message (`{file}` stands for the fixture's path, `{dir}` for its folder). Valid fixtures must load.

use std::path::{Path, PathBuf};

use onprem_agent_exporter::config::Config;
use secrecy::ExposeSecret;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_invalid_fixture_fails_with_its_expected_message() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for path in fixtures() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("invalid-") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{name} lacks a first line `# expect: <message>`"))
            .replace("{file}", &path.display().to_string())
            .replace("{dir}", &path.parent().unwrap().display().to_string());
        match Config::load(&path) {
            Ok(_) => failures.push(format!(
                "{name}: loaded, but expected the error\n    {expected}"
            )),
            Err(e) if e.to_string() == expected => {}
            Err(e) => failures.push(format!(
                "{name}:\n    expected: {expected}\n    got:      {e}"
            )),
        }
        checked += 1;
    }
    assert!(
        checked >= 10,
        "expected at least 10 invalid fixtures, found {checked}"
    );
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_valid_fixture_loads() {
    let valid: Vec<PathBuf> = fixtures()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("valid-")
        })
        .collect();
    assert!(valid.len() >= 2, "expected valid fixtures, found {valid:?}");
    for path in valid {
        if let Err(e) = Config::load(&path) {
            panic!("{} failed to load: {e}", path.display());
        }
    }
}

#[test]
fn durations_combine_units() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid-combined-durations.yaml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.sources[0].poll_interval.as_secs(), 5400);
    assert_eq!(config.sources[0].request_timeout.as_secs(), 90);
}

#[test]
fn the_minimal_valid_fixture_loads_with_defaults_and_trims_the_token_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid-minimal.yaml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("valid-minimal.yaml failed: {e}"));
    assert_eq!(config.listen_address.to_string(), "0.0.0.0:9877");
    let s = &config.sources[0];
    assert_eq!(s.name, "prod-us");
    assert_eq!(s.base_url.as_str(), "https://api.integrator.io/");
    assert_eq!(s.token.expose_secret(), "fixture-token");
    assert_eq!(s.poll_interval.as_secs(), 60);
    assert_eq!(s.request_timeout.as_secs(), 15);
}

#[test]
fn the_shipped_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.yaml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("examples/config.yaml failed: {e}"));
    let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["prod-us", "prod-eu"]);
    assert_eq!(
        config.sources[1].base_url.as_str(),
        "https://api.eu.integrator.io/"
    );
    let alerting = config
        .alerting
        .as_ref()
        .expect("the example configures alerting");
    assert_eq!(
        alerting.email.as_ref().map(|e| e.recipients()),
        Some(vec!["ops@example.com".to_string()])
    );
    let report = config
        .reports
        .token_compliance
        .as_ref()
        .expect("the example schedules a report");
    assert_eq!(report.timezone_name, "Europe/Berlin");
}

#[test]
fn a_report_without_an_alerting_section_is_rejected_naming_both_keys() {
    let yaml = "sources:\n  - name: a\n    provider: celigo\n    token_env: T\nreports:\n  token_compliance:\n    schedule: \"0 9 * * MON\"\n    to: [\"s@example.com\"]\n";
    let err =
        Config::parse(yaml, Path::new("inline.yaml"), &|_| Some("t".to_string())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "inline.yaml:7: reports.token_compliance: a scheduled report is mailed through alerting.email, but there is no alerting section"
    );
}

#[test]
fn a_token_from_the_environment_is_read_through_the_injected_lookup() {
    let yaml = "sources:\n  - name: a\n    provider: celigo\n    token_env: MY_TOKEN\n";
    let config = Config::parse(yaml, Path::new("inline.yaml"), &|k| {
        (k == "MY_TOKEN").then(|| "  s3cret\n".to_string())
    })
    .unwrap_or_else(|e| panic!("parse failed: {e}"));
    assert_eq!(config.sources[0].token.expose_secret(), "s3cret");
}

#[test]
fn a_config_error_never_shows_the_token() {
    // A bad value next to a valid token: the message must name the key, not echo the secret.
    let yaml =
        "sources:\n  - name: a\n    provider: celigo\n    token_env: T\n    poll_interval: soon\n";
    let err = Config::parse(yaml, Path::new("inline.yaml"), &|_| {
        Some("tok-SECRET-123".to_string())
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(
        !text.contains("tok-SECRET-123"),
        "token leaked into: {text}"
    );
    assert!(
        text.contains("sources[0].poll_interval"),
        "key path missing from: {text}"
    );
}

#[test]
fn check_config_accepts_every_shipped_generic_example() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("generic-") && name.ends_with(".yaml")) {
            continue;
        }
        let out = std::process::Command::new(crate::support::process::EXE)
            .arg("check-config")
            .arg(&path)
            .output()
            .expect("run check-config");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = Config::parse(&std::fs::read_to_string(&path).unwrap(), &path, &|_| {
            Some("runtimes-token-for-the-check".to_string())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            config.sources.iter().all(|s| s.generic.is_some()),
            "{name}: every source is generic"
        );
        checked.push(name);
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "generic-boomi.yaml",
            "generic-builtin-vendors.yaml",
            "generic-cursor.yaml"
        ]
    );
}

#[test]
fn a_relative_state_file_is_relative_to_the_config_file_like_every_other_path() {
    let yaml = "sources:\n  - name: a\n    provider: celigo\n    token_env: T\nalerting:\n  state_file: data/state.json\n  email:\n    smtp: { host: smtp.example.com }\n    from: a@example.com\n    to: [b@example.com]\n";
    let config = Config::parse(yaml, Path::new("/etc/exporter/config.yaml"), &|_| {
        Some("t".to_string())
    })
    .unwrap_or_else(|e| panic!("parse failed: {e}"));
    let alerting = config.alerting.expect("an alerting section");
    assert_eq!(
        alerting.engine.state_file,
        Path::new("/etc/exporter/data/state.json")
    );
}
