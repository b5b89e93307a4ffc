//! The silence API and the shared scrape renders against the real binary: writes closed without
//! `--web.enable-admin-api`, a silence that survives a SIGKILL right after its `201` (with basic auth from a web
//! config), ids that never repeat across a restart, every cap of `alerting.silences` answered with a sentence, and
//! concurrent scrapes sharing one render.

use std::ffi::OsStr;
use std::io::Read as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use onprem_agent_exporter::sim::SimOptions;

use crate::support::process::TestExporter;
use crate::support::simulator::{TestSim, spawn_sim};
use crate::support::wait::wait_until;

const API_TOKEN: &str = "silences-api-key-4f0b2c9e71";
const USER: &str = "ops";
const PASSWORD: &str = "mute with care";

/// One test's files: the config (a Celigo source and an `alerting` section whose SMTP server is never reached), the
/// state file and the logs of every exporter process started from them.
struct Setup {
    dir: tempfile::TempDir,
    _sim: TestSim,
}

impl Setup {
    /// A simulator of `agents` agents and a config with `alerting_extra` added to its `alerting` section.
    async fn new(agents: usize, alerting_extra: &str) -> Setup {
        let sim = spawn_sim(
            API_TOKEN,
            SimOptions {
                agents,
                ..SimOptions::default()
            },
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("token"), API_TOKEN).unwrap();
        let config = format!(
            "listen_address: 127.0.0.1:0\n\
             sources:\n\
             \x20 - name: silences\n\
             \x20   provider: celigo\n\
             \x20   base_url: http://{sim}\n\
             \x20   token_file: token\n\
             \x20   poll_interval: 1s\n\
             \x20   request_timeout: 1s\n\
             alerting:\n\
             \x20 state_file: {state}\n\
             \x20 evaluation_interval: 200ms\n\
             \x20 retry_initial_backoff: 200ms\n\
             {alerting_extra}\
             \x20 email:\n\
             \x20   smtp: {{ host: 127.0.0.1, port: 9, tls: none, timeout: 1s }}\n\
             \x20   from: \"Agent alerts <alerts@example.com>\"\n\
             \x20   to: [\"ops@example.com\"]\n",
            sim = sim.addr,
            state = p.join("state.json").display(),
        );
        std::fs::write(p.join("config.yaml"), config).unwrap();
        let hash = bcrypt::hash(PASSWORD, 4).unwrap();
        std::fs::write(
            p.join("web.yml"),
            format!("basic_auth_users:\n  {USER}: {hash}\n"),
        )
        .unwrap();
        Setup { dir, _sim: sim }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `run` with `args`, logging to `<log>.log`.
    fn start(&self, log: &str, args: &[&OsStr]) -> TestExporter {
        TestExporter::start_with(
            &self.path("config.yaml"),
            self.path(&format!("{log}.log")),
            args,
        )
    }
}

/// A silence of agent `a1` for `duration`.
fn silence(duration: &str) -> serde_json::Value {
    serde_json::json!({
        "matchers": [{"name": "agent_id", "value": "a1"}],
        "duration": duration,
        "created_by": "e2e",
        "comment": "maintenance"
    })
}

/// POSTs `body` to the exporter's silences, with basic auth if `auth`; returns the status and the JSON body.
async fn post(
    exporter: &TestExporter,
    body: &serde_json::Value,
    auth: bool,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(exporter.url("/api/v1/silences"))
        .json(body);
    if auth {
        request = request.basic_auth(USER, Some(PASSWORD));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::json!(text)),
    )
}

/// The ids `GET /api/v1/silences` lists.
async fn silence_ids(exporter: &TestExporter, auth: bool) -> Vec<String> {
    let mut request = reqwest::Client::new().get(exporter.url("/api/v1/silences"));
    if auth {
        request = request.basic_auth(USER, Some(PASSWORD));
    }
    let body: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
    body["silences"]
        .as_array()
        .unwrap_or_else(|| panic!("saw {body}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn silence_writes_are_refused_with_the_flag_named_unless_the_admin_api_is_enabled() {
    let setup = Setup::new(3, "").await;
    let exporter = setup.start("exporter", &[]);
    let (status, body) = post(&exporter, &silence("1h"), false).await;
    assert_eq!(status, 403, "saw {body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("start it with --web.enable-admin-api"),
        "saw {body}"
    );
    let delete = reqwest::Client::new()
        .delete(exporter.url("/api/v1/silences/anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 403);
    assert!(silence_ids(&exporter, false).await.is_empty());
    let landing = reqwest::get(exporter.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        landing.contains("read-only: start with --web.enable-admin-api"),
        "the landing page does not say writes are closed:\n{landing}"
    );
    assert!(
        !exporter.logs().contains("anyone who reaches the port"),
        "warned about an open write API that is closed; log:\n{}",
        exporter.log_tail()
    );
}

#[tokio::test]
async fn a_silence_answered_201_survives_a_sigkill_and_the_next_one_gets_a_new_id() {
    let setup = Setup::new(3, "").await;
    let web = setup.path("web.yml");
    let args = [
        OsStr::new("--web.config.file"),
        web.as_os_str(),
        OsStr::new("--web.enable-admin-api"),
    ];
    let mut first = setup.start("first", &args);
    let (status, body) = post(&first, &silence("2h"), false).await;
    assert_eq!(status, 401, "no credentials: saw {body}");
    let (status, body) = post(&first, &silence("2h"), true).await;
    let answered = Instant::now();
    first.child.kill().unwrap(); // SIGKILL
    let killed_after = answered.elapsed();
    first.child.wait().unwrap();
    assert_eq!(status, 201, "saw {body}; log:\n{}", first.log_tail());
    assert!(
        killed_after < Duration::from_millis(200),
        "killed {killed_after:?} after the answer"
    );
    let id = body["id"].as_str().expect("an id").to_string();
    assert!(
        !first.logs().contains("anyone who reaches the port"),
        "warned although basic auth is on; log:\n{}",
        first.log_tail()
    );

    let second = setup.start("second", &args);
    assert_eq!(
        silence_ids(&second, true).await,
        vec![id.clone()],
        "log:\n{}",
        second.log_tail()
    );
    let (status, body) = post(&second, &silence("1h"), true).await;
    assert_eq!(status, 201, "saw {body}");
    let next = body["id"].as_str().expect("an id");
    assert_ne!(next, id, "an id was handed out twice");
    for id in [&id, next] {
        let parsed = uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("{id:?}: {e}"));
        assert_eq!(parsed.get_version_num(), 4, "{id}");
    }
}

#[tokio::test]
async fn each_silence_cap_is_answered_with_a_sentence_naming_its_key() {
    let setup = Setup::new(
        3,
        "  silences: { max_silences: 2, max_matchers: 2, max_matcher_value_bytes: 16, max_duration: 1d, \
         max_start_ahead: 1h }\n",
    )
    .await;
    let exporter = setup.start("exporter", &[OsStr::new("--web.enable-admin-api")]);
    assert!(
        exporter.logs().contains(
            "--web.enable-admin-api is set and the web config has no basic_auth_users: anyone who reaches the \
             port can create and delete silences"
        ),
        "no warning about an open write API; log:\n{}",
        exporter.log_tail()
    );
    let in_two_hours = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(2))
        .unwrap();
    let m = |value: &str| serde_json::json!({"name": "agent_id", "value": value});
    let cases = [
        (
            serde_json::json!({"matchers": [m("a"), m("b"), m("c")], "duration": "1h"}),
            400,
            "a silence takes at most 2 matchers (alerting.silences.max_matchers); this one has 3",
        ),
        (
            serde_json::json!({"matchers": [m("x".repeat(17).as_str())], "duration": "1h"}),
            400,
            "the value of matcher agent_id is 17 bytes long; at most 16 are allowed \
             (alerting.silences.max_matcher_value_bytes)",
        ),
        (
            serde_json::json!({"matchers": [m("a1")], "duration": "1000000h"}),
            400,
            "a silence may last at most 1d (alerting.silences.max_duration)",
        ),
        (
            serde_json::json!({"matchers": [m("a1")], "starts_at": in_two_hours, "duration": "1h"}),
            400,
            "a silence may start at most 1h from now (alerting.silences.max_start_ahead)",
        ),
    ];
    for (request, status, want) in cases {
        let (got, body) = post(&exporter, &request, false).await;
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            got == status && error.starts_with(want),
            "for {request}: wanted {status} {want:?}, saw {got} {body}"
        );
    }
    for _ in 0..2 {
        let (status, body) = post(&exporter, &silence("1h"), false).await;
        assert_eq!(status, 201, "saw {body}");
    }
    let (status, body) = post(&exporter, &silence("1h"), false).await;
    assert_eq!(status, 429, "saw {body}");
    assert_eq!(
        body["error"],
        "there are 2 active and pending silences, the most allowed (alerting.silences.max_silences); delete one \
         or wait for one to expire",
    );
    assert_eq!(silence_ids(&exporter, false).await.len(), 2);
}

/// The value of `onprem_agent_exporter_renders_total` for gzipped OpenMetrics, from a plain text scrape.
async fn gzip_openmetrics_renders(exporter: &TestExporter) -> u64 {
    let text = reqwest::get(exporter.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = "onprem_agent_exporter_renders_total{format=\"openmetrics\",encoding=\"gzip\"} ";
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .unwrap_or_else(|| panic!("no {series:?} in:\n{text}"))
        .parse()
        .unwrap()
}

/// Scrapes `/metrics` as Prometheus does (OpenMetrics, gzip) and returns the decompressed body.
async fn scrape_gzip(client: &reqwest::Client, url: &str) -> String {
    let response = client
        .get(url)
        .header("Accept", "application/openmetrics-text; version=1.0.0")
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-encoding").unwrap(), "gzip");
    let bytes = response.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[tokio::test]
async fn concurrent_scrapes_share_one_render() {
    let setup = Setup::new(2000, "").await;
    let exporter = setup.start("exporter", &[]);
    exporter.wait_ready().await;
    let before = gzip_openmetrics_renders(&exporter).await;
    let client = reqwest::Client::new();
    let url = exporter.url("/metrics");
    let scrapes: Vec<_> = (0..32)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { scrape_gzip(&client, &url).await })
        })
        .collect();
    let mut bodies = std::collections::BTreeSet::new();
    for s in scrapes {
        let body = s.await.unwrap();
        assert!(body.ends_with("# EOF\n"), "a truncated body");
        bodies.insert(body);
    }
    // A plain scrape within a second of the last one may be answered from that render: wait for a fresh count.
    let renders = wait_until(
        "the render count to include the burst",
        async || {
            let now = gzip_openmetrics_renders(&exporter).await;
            (now > before).then_some(now - before)
        },
        || exporter.log_tail(),
    )
    .await;
    assert!(
        renders <= 4,
        "32 concurrent scrapes made {renders} renders; log:\n{}",
        exporter.log_tail()
    );
    assert!(
        bodies.len() as u64 <= renders,
        "{} different bodies from {renders} renders",
        bodies.len()
    );
    let rendered_lines = exporter
        .logs()
        .lines()
        .filter(|l| l.contains("exposition rendered") && l.contains("\"encoding\":\"gzip\""))
        .count() as u64;
    assert_eq!(
        rendered_lines, renders,
        "the debug log and the counter disagree"
    );
}

#[tokio::test]
async fn cross_site_writes_are_refused_while_clients_without_an_origin_keep_working() {
    let setup = Setup::new(2, "").await;
    let exporter = setup.start("cross-site", &[OsStr::new("--web.enable-admin-api")]);
    let url = exporter.url("/api/v1/silences");
    let own = format!("http://{}", exporter.addr);
    let c = reqwest::Client::new();
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let r = c
            .post(&url)
            .header(header, value)
            .json(&silence("1h"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "POST with {header}: {value}");
        let r = c
            .delete(format!("{url}/some-id"))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "DELETE with {header}: {value}");
    }
    let r = c
        .post(&url)
        .header("origin", &own)
        .header("sec-fetch-site", "same-origin")
        .json(&silence("1h"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "the server's own page may write");
    let (status, body) = post(&exporter, &silence("1h"), false).await;
    assert_eq!(
        status, 201,
        "a client without Origin (curl, amtool): {body}"
    );
}
