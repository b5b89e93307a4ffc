//! Reading an exposition: one sample by its line prefix, or every family through Python's reference OpenMetrics
//! parser.

use std::process::{Command, Stdio};

/// The value of the first sample whose line starts with `prefix` in a text exposition.
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Parses an OpenMetrics exposition with Python's reference parser (Debian's `python3-prometheus-client`, run with
/// `/usr/bin/python3`) and returns its families as JSON. Fails the test, showing the parser's error and the head of
/// the exposition, if the parser rejects it.
pub fn parse_with_reference_parser(exposition: &str) -> serde_json::Value {
    parse_with_python(exposition, &[])
}

/// [`parse_with_reference_parser`] for the classic text format, with python3-prometheus-client's text parser.
pub fn parse_text_with_python(exposition: &str) -> serde_json::Value {
    parse_with_python(exposition, &["--text"])
}

fn parse_with_python(exposition: &str, args: &[&str]) -> serde_json::Value {
    use std::io::Write as _;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/support/parse_openmetrics.py"
    );
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 must exist; `make test` installs python3-prometheus-client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Python parser ({args:?}) rejected the exposition: {}\n--- exposition head ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        exposition.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
