//! The command line as a newcomer meets it: a fatal error said once with what to do, no flag value that makes the
//! program panic, and the small conveniences (`check-config --config`, `:9877`, a request timeout that follows the
//! poll interval, `healthcheck HOST:PORT`).

use std::path::Path;
use std::process::{Command, Output};

use crate::support::free_port;
use crate::support::process::EXE;

fn exe(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .env_remove("ONPREM_AGENT_EXPORTER_CONFIG")
        .output()
        .expect("run the exporter")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A valid config in `dir` with `extra` appended to its one source and `top` at the top; returns its path.
fn config(dir: &Path, top: &str, extra: &str) -> String {
    std::fs::write(dir.join("token"), "sim-api-token\n").unwrap();
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "{top}sources:\n  - name: acct\n    provider: celigo\n    base_url: http://127.0.0.1:9\n    \
             token_file: token\n{extra}"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_missing_config_file_is_said_once_with_its_resolved_path_and_a_hint() {
    let out = exe(&["run", "--config", "no-such-dir/config.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one line, not a log line and a copy:\n{err}"
    );
    let resolved = std::env::current_dir()
        .unwrap()
        .join("no-such-dir/config.yaml");
    assert!(
        err.contains(&resolved.display().to_string()),
        "the resolved path: {err}"
    );
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "the cause said once: {err}"
    );
    assert!(err.contains("hint: check the path"), "{err}");
}

#[test]
fn with_json_logs_a_fatal_error_is_one_json_object() {
    let out = exe(&["--log-format", "json", "run", "--config", "no-such.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {err}"));
    assert_eq!(v["level"], "ERROR", "{v}");
    assert!(v["error"].as_str().unwrap().contains("no-such.yaml"), "{v}");
    assert!(v["hint"].as_str().is_some(), "{v}");
}

#[test]
fn a_port_in_use_names_listen_address_in_its_hint() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let path = config(
        dir.path(),
        &format!("listen_address: 127.0.0.1:{port}\n"),
        "",
    );
    let out = exe(&["run", "--config", &path]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("rror")).collect();
    assert_eq!(errors.len(), 1, "said once:\n{err}");
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert!(
        err.contains("listen_address"),
        "a hint naming the key: {err}"
    );
}

#[test]
fn no_flag_value_makes_a_subcommand_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    // `--flag=value`, so that a negative value reaches the flag's parser instead of looking like another flag.
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec!["demo"], "--poll-interval", "0s"),
        (vec!["demo"], "--poll-interval", "-1s"),
        (vec!["demo"], "--poll-interval", "999999999999999h"),
        (vec!["demo"], "--poll-interval", "100y"),
        (vec!["demo"], "--agents", "0"),
        (vec!["demo"], "--agents", "-1"),
        (vec!["demo"], "--agents", "99999999999999"),
        (vec!["simulate"], "--agents", "-1"),
        (vec!["simulate"], "--agents", "99999999999"),
        (vec!["simulate"], "--page-size", "0"),
        (vec!["simulate"], "--page-size", "-5"),
        (vec!["simulate"], "--page-size", "999999999999"),
        (vec!["simulate"], "--latency", "-1s"),
        (vec!["simulate"], "--latency", "100y"),
        (vec!["simulate"], "--rate-limit-every", "0"),
        (vec!["simulate"], "--fail-every", "0"),
        (vec!["simulate"], "--fail-every", "-1"),
        (vec!["healthcheck"], "--timeout", "0s"),
        (vec!["healthcheck"], "--timeout", "-1s"),
        (vec!["healthcheck"], "--timeout", "100y"),
        (vec!["run", "--config", &cfg], "--web.header-timeout", "0s"),
        (
            vec!["run", "--config", &cfg],
            "--web.header-timeout",
            "100y",
        ),
        (vec!["run", "--config", &cfg], "--web.max-connections", "0"),
        (vec!["run", "--config", &cfg], "--web.max-connections", "-1"),
        (vec!["once", "--config", &cfg], "--format", "nonsense"),
        (vec!["report", "--config", &cfg], "--format", "nonsense"),
    ];
    for (prefix, flag, value) in cases {
        let mut args = prefix.clone();
        let pair = format!("{flag}={value}");
        args.push(&pair);
        let out = exe(&args);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} must be a usage error:\n{err}"
        );
        assert!(
            err.contains(flag),
            "{args:?}: the error must name {flag}:\n{err}"
        );
    }
}

#[test]
fn duration_flags_take_durations_as_the_config_file_does_with_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "");
    let cases: Vec<(Vec<&str>, &str, &str, &str)> = vec![
        (
            vec!["demo"],
            "--poll-interval",
            "3 months",
            "months and years have no fixed length",
        ),
        (vec!["demo"], "--poll-interval", "1y", "write days or weeks"),
        (vec!["healthcheck"], "--timeout", "5 seconds", "write 5s"),
        (vec!["simulate"], "--latency", "2 minutes", "write 2m"),
        (
            vec!["run", "--config", &cfg],
            "--web.header-timeout",
            "10",
            "ms, s, m, h, d or w",
        ),
    ];
    for (prefix, flag, value, want) in cases {
        let mut args = prefix.clone();
        let pair = format!("{flag}={value}");
        args.push(&pair);
        let out = exe(&args);
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} must be a usage error:\n{err}"
        );
        assert!(
            err.contains(flag) && err.contains(want),
            "{args:?}: want {flag} and {want:?} in:\n{err}"
        );
    }
}

#[test]
fn config_durations_out_of_bounds_are_refused_with_the_bound() {
    let cases = [
        ("poll_interval: 0s", "at least 1s"),
        ("poll_interval: 1ms", "at least 1s"),
        ("poll_interval: 100w", "at most 1d"),
        ("poll_interval: 100y", "months and years"),
        ("poll_interval: -1s", "poll_interval"),
        ("request_timeout: 0s", "greater than zero"),
    ];
    for (line, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = config(dir.path(), "", &format!("    {line}\n"));
        let out = exe(&["check-config", &path]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{line}: {err}");
        assert!(!err.contains("panicked"), "{line}: {err}");
        assert!(err.contains(want), "{line}: want {want:?} in {err}");
    }
}

#[test]
fn a_short_poll_interval_alone_is_valid_because_the_request_timeout_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "", "    poll_interval: 5s\n");
    let out = exe(&["check-config", &path]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn check_config_takes_the_file_as_an_argument_or_with_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "listen_address: \":9877\"\n", "");
    for args in [
        vec!["check-config", &path],
        vec!["check-config", "--config", &path],
    ] {
        let out = exe(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("listening on 0.0.0.0:9877"),
            "`:9877` means every interface: {stdout}"
        );
    }
}

#[test]
fn healthcheck_accepts_host_port_and_says_why_it_failed() {
    let port = free_port();
    let out = exe(&["healthcheck", "--url", &format!("127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}/healthz")),
        "HOST:PORT becomes the health URL: {err}"
    );
    assert!(
        err.to_lowercase().contains("connection refused"),
        "the cause, not just `error sending request`: {err}"
    );
    assert!(!err.contains("builder error"), "{err}");
}

#[test]
fn simulate_prints_a_config_snippet_that_check_config_accepts_and_documents_its_control_endpoint() {
    use std::io::{BufRead, BufReader};
    let help = exe(&["simulate", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("PUT /_sim/control") && help.contains("fail_every"),
        "{help}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(EXE)
        .args(["simulate", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    while let Some(Ok(line)) = lines.next() {
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("token_file:") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let token = printed
        .split("echo ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token line in:\n{printed}"));
    std::fs::write(dir.path().join("sim-token"), format!("{token}\n")).unwrap();
    let snippet = &printed[printed.find("sources:").expect("a sources: snippet")..];
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, snippet).unwrap();
    let out = exe(&["check-config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "snippet:\n{snippet}\n{}",
        stderr(&out)
    );
}

/// Copies `examples/config.yaml` with its `secrets/` into `dir`, and writes next to it the shipped web config's
/// `basic_auth_users` (its TLS section names certificates the examples do not ship). Returns both paths.
fn shipped_examples(dir: &Path) -> (String, String) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::fs::create_dir(dir.join("secrets")).unwrap();
    for entry in std::fs::read_dir(examples.join("secrets")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("secrets").join(entry.file_name())).unwrap();
    }
    let config = dir.join("config.yaml");
    std::fs::copy(examples.join("config.yaml"), &config).unwrap();
    let web = std::fs::read_to_string(examples.join("web-config.yml")).unwrap();
    let users = &web[web
        .find("basic_auth_users:")
        .expect("the example has users")..];
    let web_config = dir.join("web-config.yml");
    std::fs::write(&web_config, users).unwrap();
    (
        config.to_str().unwrap().to_string(),
        web_config.to_str().unwrap().to_string(),
    )
}

#[test]
fn check_config_warns_about_each_shipped_placeholder_by_key_without_repeating_it() {
    let dir = tempfile::tempdir().unwrap();
    let (config, web_config) = shipped_examples(dir.path());
    let out = exe(&["check-config", &config, "--web.config.file", &web_config]);
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        out.status.success(),
        "placeholders are warnings, not errors:\n{stdout}\n{err}"
    );
    for key in [
        "sources[0].token_file: holds the examples' placeholder API token",
        "sources[1].token_file: holds the examples' placeholder API token",
        "alerting.external_url:",
        "alerting.email.smtp.host: holds the examples' placeholder SMTP server",
        "alerting.email.smtp.password_file: holds the examples' placeholder SMTP password",
        "alerting.email.from:",
        "alerting.email.to:",
        "reports.token_compliance.to:",
        "basic_auth_users.prometheus: holds the hash of the examples' placeholder password",
    ] {
        assert!(err.contains(key), "no warning for `{key}` in:\n{err}");
        assert!(!stdout.contains(key), "warnings go to stderr: {stdout}");
    }
    let shipped_hash = std::fs::read_to_string(&web_config).unwrap();
    let shipped_hash = shipped_hash.split_whitespace().last().unwrap();
    for secret in [
        "example-token-replace-me",
        "example-smtp-password-replace-me",
        shipped_hash,
        "change-me",
    ] {
        assert!(
            !err.contains(secret) && !stdout.contains(secret),
            "a secret value was repeated ({secret}):\n{stdout}\n{err}"
        );
    }

    // The same file with a real-looking token and no alerting section draws no placeholder warning.
    let clean = config_with_real_values(dir.path());
    let out = exe(&["check-config", &clean]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("placeholder"),
        "a false alarm: {}",
        stderr(&out)
    );
}

/// A config with one source whose token is not a placeholder and an alerting section at real-looking addresses.
fn config_with_real_values(dir: &Path) -> String {
    let path = config(
        dir,
        "",
        "alerting:\n  state_file: state.json\n  external_url: https://exporter.corp.internal\n  \
         email:\n    smtp: { host: smtp.corp.internal, port: 25, tls: none }\n    \
         from: alerts@corp.internal\n    to: [ops@corp.internal]\n",
    );
    std::fs::write(dir.join("token"), "3f9a1c0e5b7d4e2f8a6c\n").unwrap();
    path
}

#[test]
fn the_demo_prints_its_banner_in_one_piece_with_no_log_line_inside() {
    use crate::support::wait::WAIT;
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("stdout-and-stderr.txt");
    let file = std::fs::File::create(&both).unwrap();
    // stdout and stderr share one open file (and its offset), so the file holds the writes in the order made.
    let mut demo = Command::new(EXE)
        .args(["--log-level", "debug", "demo", "--listen", "127.0.0.1:0"])
        .args(["--poll-interval", "1s", "--agents", "3", "--outbox"])
        .arg(dir.path().join("outbox"))
        .env("TMPDIR", dir.path())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("start the demo");
    let deadline = std::time::Instant::now() + WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&both).unwrap_or_default();
        // Logs written after the banner prove the process kept logging around it, not that it was quiet.
        if text.contains("Press Ctrl-C to stop.")
            && text
                .lines()
                .skip_while(|l| !l.starts_with("Press Ctrl-C"))
                .count()
                > 1
        {
            break text;
        }
        if std::time::Instant::now() > deadline {
            let _ = demo.kill();
            panic!("no banner within {WAIT:?}:\n{text}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = demo.kill();
    let _ = demo.wait();
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with("onprem-agent-exporter demo:"))
        .unwrap_or_else(|| panic!("no banner heading in:\n{text}"));
    let last = lines
        .iter()
        .position(|l| l.starts_with("Press Ctrl-C"))
        .unwrap();
    assert!(
        lines[..first].iter().any(|l| l.contains(" INFO ")),
        "the demo logs before its banner too, so the check below means something:\n{text}"
    );
    let inside: Vec<&&str> = lines[first..=last]
        .iter()
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN ") || l.contains(" DEBUG "))
        .collect();
    assert!(
        inside.is_empty(),
        "log lines inside the banner: {inside:?}\nwhole output:\n{text}"
    );
    assert!(
        lines[first..=last]
            .iter()
            .all(|l| l.starts_with("onprem-agent-exporter demo:")
                || l.starts_with("  ")
                || l.starts_with("To see an outage")
                || l.starts_with("Press Ctrl-C")),
        "a foreign line inside the banner:\n{}",
        lines[first..=last].join("\n")
    );
}

#[test]
fn healthcheck_prints_ok_in_a_terminal_and_nothing_when_piped() {
    use crate::support::process::TestExporter;
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "listen_address: 127.0.0.1:0\n", "");
    let exporter = TestExporter::start(Path::new(&path), dir.path().join("exporter.log"));
    let target = exporter.addr.to_string();

    let piped = exe(&["healthcheck", "--url", &target]);
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert!(
        piped.stdout.is_empty(),
        "nothing on a pipe, so scripts see no noise: {:?}",
        String::from_utf8_lossy(&piped.stdout)
    );

    // util-linux `script` runs the command on a pseudo-terminal; -e passes its exit code on.
    let command = format!("{EXE} healthcheck --url {target}");
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run `script` (util-linux) to get a pseudo-terminal");
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(
        tty.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&tty.stderr)
    );
    assert_eq!(
        shown.trim(),
        "ok",
        "a person at a terminal is told it worked"
    );
}

#[test]
fn a_second_run_on_the_same_state_file_exits_at_once_naming_the_file_and_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let path = config(
        dir.path(),
        "listen_address: 127.0.0.1:0\n",
        &format!(
            "alerting:\n  state_file: {}\n  receivers:\n    - {{ name: hook, webhook: {{ url: \"http://127.0.0.1:9/x\" }} }}\n  \
             default_receivers: [hook]\n",
            state.display()
        ),
    );
    // Owner-only, so that the one line on stderr is the lock's, not a warning about the token file's mode.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        dir.path().join("token"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let first = crate::support::process::TestExporter::start(
        Path::new(&path),
        dir.path().join("first.log"),
    );
    let started = std::time::Instant::now();
    let out = exe(&["run", "--config", &path]);
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        took < std::time::Duration::from_secs(1),
        "the second run took {took:?} to give up: {err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line:\n{err}");
    assert!(err.contains(&state.display().to_string()), "{err}");
    assert!(
        err.contains(&format!("pid {}", first.child.id())),
        "the holder's pid {}: {err}",
        first.child.id()
    );
    let log = first.logs();
    assert!(
        !log.contains("\"level\":\"ERROR\""),
        "the first exporter was disturbed:\n{log}"
    );
}

#[test]
fn the_test_cert_script_makes_the_pair_the_example_web_configs_name_and_healthcheck_trusts_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts/make-test-cert.sh"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "make-test-cert.sh: {}", stderr(&out));
    for example in ["web-config.yml", "web-config-mtls.yml"] {
        std::fs::copy(
            root.join("examples").join(example),
            dir.path().join(example),
        )
        .unwrap();
    }
    let cfg = config(dir.path(), "listen_address: 127.0.0.1:0\n", "");
    for example in ["web-config.yml", "web-config-mtls.yml"] {
        let web = dir.path().join(example);
        let out = exe(&[
            "check-config",
            &cfg,
            "--web.config.file",
            web.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{example}: {}", stderr(&out));
    }
    // The server certificate names 127.0.0.1, so a client that trusts it alone connects.
    let web = dir.path().join("web-config.yml");
    let exp = crate::support::process::TestExporter::start_with(
        Path::new(&cfg),
        dir.path().join("exporter.log"),
        &[std::ffi::OsStr::new("--web.config.file"), web.as_os_str()],
    );
    let ca = dir.path().join("tls/server.crt");
    let out = exe(&[
        "healthcheck",
        "--url",
        &format!("https://{}/healthz", exp.addr),
        "--ca-file",
        ca.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "healthcheck over TLS: {}\nlog:\n{}",
        stderr(&out),
        exp.log_tail()
    );
}

/// The global flags, documented once in a sentence rather than in every row.
const GLOBAL_FLAGS: [&str; 2] = ["--log-level", "--log-format"];

#[test]
fn the_readme_command_table_lists_every_flag_of_every_command() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut missing = Vec::new();
    for command in [
        "run",
        "check-config",
        "once",
        "simulate",
        "demo",
        "healthcheck",
        "test-email",
        "test-notify",
        "report",
    ] {
        let row = readme
            .lines()
            .find(|l| {
                l.starts_with(&format!("| `{command} ")) || l.starts_with(&format!("| `{command}`"))
            })
            .unwrap_or_else(|| panic!("no row for `{command}` in README's command table"));
        let help = String::from_utf8_lossy(&exe(&[command, "--help"]).stdout).into_owned();
        for flag in help
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("--"))
            .filter_map(|l| l.split([' ', '=']).next())
            .map(|f| format!("--{f}"))
        {
            if flag == "--help" || flag == "--version" || GLOBAL_FLAGS.contains(&flag.as_str()) {
                continue;
            }
            if !row.contains(&flag) {
                missing.push(format!("{command} {flag}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "flags missing from README's command table: {missing:?}"
    );
    for flag in GLOBAL_FLAGS {
        assert!(
            readme.contains(&format!("`{flag}")),
            "README does not mention {flag}"
        );
    }
}

#[test]
fn make_run_takes_the_demo_s_listen_address_from_listen() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |args: &[&str]| {
        let out = Command::new("make")
            .current_dir(root)
            .args(["-n", "run"])
            .args(args)
            .output()
            .expect("run make");
        assert!(out.status.success(), "make -n run: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let custom = run(&["LISTEN=127.0.0.1:9977"]);
    assert!(custom.contains("demo --listen 127.0.0.1:9977"), "{custom}");
    let default = run(&[]);
    assert!(
        default.contains("demo --listen 127.0.0.1:9877"),
        "{default}"
    );
}
