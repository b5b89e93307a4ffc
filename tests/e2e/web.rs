//! The HTTP surface with a web config: TLS (with certificate rotation and client certificates), basic auth, the
//! security headers, the connection cap and the header timeout, against the real binary, a real Prometheus and
//! promtool.

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use onprem_agent_exporter::sim::SimOptions;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::support::process::{EXE, TestExporter, check_web_config};
use crate::support::prometheus::{require_program, start_prometheus_with};
use crate::support::simulator::{TestSim, spawn_sim};
use crate::support::wait::wait_until;

const API_TOKEN: &str = "web-api-key-5d1e9a7c3b";
const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse battery staple";

/// A test CA that signs server and client certificates.
pub(crate) struct Ca {
    pub(crate) pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `localhost` and 127.0.0.1 (server) or a client, as (certificate PEM, key PEM).
    pub(crate) fn leaf(&self, purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `content` to `path` through a rename, as a certificate manager does, so no reader sees half a file.
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An exporter started with a web config, and everything it was given.
pub(crate) struct Exporter {
    pub(crate) process: TestExporter,
    pub(crate) addr: SocketAddr,
    pub(crate) dir: tempfile::TempDir,
    _sim: TestSim,
}

impl Exporter {
    /// Starts `run` against a fresh simulator with `extra` arguments. `web_yaml` (if any) is written as `web.yml`
    /// beside the `files` given as (name, content): the certificates it names.
    pub(crate) async fn start(
        web_yaml: Option<&str>,
        files: &[(&str, &str)],
        extra: &[&str],
    ) -> Exporter {
        let sim = spawn_sim(
            API_TOKEN,
            SimOptions {
                agents: 3,
                ..SimOptions::default()
            },
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), API_TOKEN).unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "listen_address: 127.0.0.1:0\nsources:\n  - name: web-test\n    provider: celigo\n    \
                 base_url: http://{}\n    token_file: token\n    poll_interval: 1s\n    request_timeout: 1s\n",
                sim.addr
            ),
        )
        .unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let web = dir.path().join("web.yml");
        let mut args: Vec<&OsStr> = Vec::new();
        if let Some(yaml) = web_yaml {
            std::fs::write(&web, yaml).unwrap();
            args.push(OsStr::new("--web.config.file"));
            args.push(web.as_os_str());
        }
        args.extend(extra.iter().map(OsStr::new));
        let process = TestExporter::start_with(&config, dir.path().join("exporter.log"), &args);
        Exporter {
            addr: process.addr,
            process,
            dir,
            _sim: sim,
        }
    }

    pub(crate) fn https(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
}

/// A client that trusts only `ca_pem`, optionally presenting a client certificate.
pub(crate) fn client(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0);
    if let Some((cert, key)) = identity {
        builder = builder
            .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

fn tls_web_yaml(extra: &str) -> String {
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}basic_auth_users:\n  {USER}: {hash}\n"
    )
}

#[tokio::test]
async fn tls_and_basic_auth_guard_every_endpoint_but_healthz() {
    let ca = Ca::new("web test CA");
    let (cert, key) = ca.leaf(ExtendedKeyUsagePurpose::ServerAuth);
    let exp = Exporter::start(
        Some(&tls_web_yaml("")),
        &[("server.crt", &cert), ("server.key", &key)],
        &[],
    )
    .await;
    let c = client(&ca.pem, None);

    for path in ["/metrics", "/", "/api/v1/agents"] {
        let r = c
            .get(exp.https(path))
            .send()
            .await
            .expect("TLS works with the test CA");
        assert_eq!(r.status(), 401, "{path} without credentials");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic"),
            "{path}: a 401 names the Basic scheme"
        );
        let r = c
            .get(exp.https(path))
            .basic_auth(USER, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong password");
        let r = c
            .get(exp.https(path))
            .basic_auth("nobody", Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} for an unknown user");
        let r = c
            .get(exp.https(path))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} with the right credentials");
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("img-src 'self';"),
            "{path}: {csp}"
        );
        // No page shows an inline image, so none may be injected as a `data:` URL either.
        assert!(!csp.contains("data:"), "{path}: {csp}");
    }
    let r = c.get(exp.https("/healthz")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "/healthz carries no data and needs no credentials"
    );

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://{}/healthz", exp.addr))
        .send()
        .await;
    assert!(
        r.as_ref().map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP to the TLS port must not be served: {r:?}"
    );

    // The healthcheck subcommand works with TLS on, through the CA or by skipping verification.
    std::fs::write(exp.dir.path().join("ca.crt"), &ca.pem).unwrap();
    let url = exp.https("/healthz");
    for args in [
        vec!["healthcheck", "--url", &url, "--ca-file"],
        vec!["healthcheck", "--url", &url, "--insecure-skip-verify"],
    ] {
        let mut cmd = Command::new(EXE);
        cmd.args(&args);
        if args.last() == Some(&"--ca-file") {
            cmd.arg(exp.dir.path().join("ca.crt"));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(EXE)
        .args(["healthcheck", "--url", &url])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "without the CA the certificate is not trusted"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "the cause is named: {err}");

    let logs = exp.process.logs();
    assert!(
        !logs.contains(PASSWORD),
        "the password never reaches the log"
    );
}

#[tokio::test]
async fn a_required_client_certificate_must_chain_to_the_client_ca() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let other_ca = Ca::new("unrelated CA");
    let (cert, key) = server_ca.leaf(ExtendedKeyUsagePurpose::ServerAuth);
    let exp = Exporter::start(
        Some(&tls_web_yaml(
            "  client_ca_file: client-ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n",
        )),
        &[
            ("server.crt", &cert),
            ("server.key", &key),
            ("client-ca.crt", &client_ca.pem),
        ],
        &[],
    )
    .await;
    let r = client(&server_ca.pem, None)
        .get(exp.https("/healthz"))
        .send()
        .await;
    assert!(
        r.is_err(),
        "no client certificate: the handshake fails, got {r:?}"
    );
    let (oc, ok) = other_ca.leaf(ExtendedKeyUsagePurpose::ClientAuth);
    let r = client(&server_ca.pem, Some((&oc, &ok)))
        .get(exp.https("/healthz"))
        .send()
        .await;
    assert!(
        r.is_err(),
        "a certificate from another CA is refused, got {r:?}"
    );
    let (cc, ck) = client_ca.leaf(ExtendedKeyUsagePurpose::ClientAuth);
    let r = client(&server_ca.pem, Some((&cc, &ck)))
        .get(exp.https("/metrics"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("a certificate from the client CA is accepted");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_replaced_certificate_reaches_the_next_connection_without_a_restart() {
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let (cert, key) = old_ca.leaf(ExtendedKeyUsagePurpose::ServerAuth);
    let exp = Exporter::start(
        Some(&tls_web_yaml("")),
        &[("server.crt", &cert), ("server.key", &key)],
        &[],
    )
    .await;
    let r = client(&old_ca.pem, None)
        .get(exp.https("/healthz"))
        .send()
        .await;
    assert_eq!(r.expect("the old certificate is served").status(), 200);

    let (cert, key) = new_ca.leaf(ExtendedKeyUsagePurpose::ServerAuth);
    // Key first, then certificate: between the two the pair does not match and the old pair stays in use.
    replace(&exp.dir.path().join("server.key"), &key);
    replace(&exp.dir.path().join("server.crt"), &cert);
    let r = client(&new_ca.pem, None)
        .get(exp.https("/healthz"))
        .send()
        .await;
    assert_eq!(
        r.expect("the new certificate is served at once").status(),
        200
    );
    let r = client(&old_ca.pem, None)
        .get(exp.https("/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "the old certificate is gone, got {r:?}");
}

#[tokio::test]
async fn a_real_prometheus_scrapes_over_tls_with_basic_auth() {
    let ca = Ca::new("prometheus test CA");
    let (cert, key) = ca.leaf(ExtendedKeyUsagePurpose::ServerAuth);
    let exp = Exporter::start(
        Some(&tls_web_yaml("")),
        &[
            ("server.crt", &cert),
            ("server.key", &key),
            ("ca.crt", &ca.pem),
        ],
        &[],
    )
    .await;
    let prom_dir = tempfile::tempdir().unwrap();
    std::fs::write(prom_dir.path().join("password"), PASSWORD).unwrap();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: onprem-agents\n    \
         scheme: https\n    tls_config:\n      ca_file: {ca}\n      server_name: localhost\n    basic_auth:\n      \
         username: {USER}\n      password_file: {pw}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
        ca = exp.dir.path().join("ca.crt").display(),
        pw = prom_dir.path().join("password").display(),
        port = exp.addr.port(),
    );
    let prometheus = start_prometheus_with(&config);
    let target = wait_until(
        "Prometheus to scrape the exporter over TLS with basic auth",
        async || {
            let v = prometheus.get("/api/v1/targets", &[]).await;
            let t = v["data"]["activeTargets"][0].clone();
            (t["health"] == "up").then_some(t)
        },
        || prometheus.process.log_tail(),
    )
    .await;
    assert_eq!(
        target["scrapeUrl"],
        format!("https://127.0.0.1:{}/metrics", exp.addr.port())
    );
}

#[test]
fn promtool_and_check_config_accept_every_shipped_web_config() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("web-config") {
            continue;
        }
        // The examples name their certificates relative to themselves (tls/…), as both tools resolve them.
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join(&name);
        std::fs::copy(&path, &copy).unwrap();
        let ca = Ca::new("example CA");
        let (cert, key) = ca.leaf(ExtendedKeyUsagePurpose::ServerAuth);
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        for (file, content) in [
            ("server.crt", &cert),
            ("server.key", &key),
            ("client-ca.crt", &ca.pem),
        ] {
            std::fs::write(dir.path().join("tls").join(file), content).unwrap();
        }
        let out = Command::new(require_program("promtool"))
            .args(["check", "web-config"])
            .arg(&copy)
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool check web-config {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let out = check_web_config(&copy);
        assert!(
            out.status.success(),
            "check-config --web.config.file {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(
        checked >= 2,
        "the repository ships web config examples (found {checked})"
    );
}

/// A TCP connection to `addr` from the local address `from` (127.0.0.2 stands for another client on loopback).
pub(crate) async fn connect_from(
    from: [u8; 4],
    addr: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(addr).await
}

/// Opens a connection from 127.0.0.2 and sends half a request line, as a slow or hostile client does.
async fn half_request(addr: SocketAddr) -> TcpStream {
    let s = connect_from([127, 0, 0, 2], addr).await.unwrap();
    let mut s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    // The server may already have closed a connection past the per-address cap.
    let _ = s.write_all(b"GET /metr");
    s
}

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_timeout_while_metrics_answer() {
    let exp = Exporter::start(None, &[], &["--web.header-timeout", "1s"]).await;
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..300 {
        stalled.push(half_request(exp.addr).await);
    }
    let r = reqwest::get(format!("http://{}/metrics", exp.addr))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "/metrics answers while 300 connections from another address stall"
    );
    for (i, s) in stalled.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut answer = Vec::new();
        // The server closes the connection (EOF, possibly after a 408 response) or resets it.
        match s.read_to_end(&mut answer) {
            Ok(_) => {}
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "connection {i} was still open {:?} after it stalled",
                started.elapsed()
            ),
        }
    }
    let r = reqwest::get(format!("http://{}/metrics", exp.addr))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let exp = Exporter::start(
        None,
        &[],
        &["--web.max-connections", "2", "--web.header-timeout", "60s"],
    )
    .await;
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(exp.addr).unwrap())
        .collect();
    // Give the server a moment to accept both (an event it does not expose; a short poll of a third request).
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let r = quick
        .get(format!("http://{}/healthz", exp.addr))
        .send()
        .await;
    assert!(
        r.is_err(),
        "a third connection is not served while two are open: {r:?}"
    );
    drop(idle);
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = patient
        .get(format!("http://{}/healthz", exp.addr))
        .send()
        .await;
    assert_eq!(r.expect("served once a slot is free").status(), 200);
}
