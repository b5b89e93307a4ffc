//! Clients that must not lock anyone out, against the real binary: 520 idle connections of each kind (silent TCP,
//! TLS silent after its handshake, HTTP/2 idle but answering PINGs) from 127.0.0.2 while a scrape from 127.0.0.1
//! answers, with the idle TCP and TLS connections closed within the header timeout; and a cost-18 user that makes
//! neither the start, nor unknown users, nor another user's first login slow.
//!
//! The test process holds over a thousand sockets at a time, so it raises its own open-file limit (soft to hard,
//! `setrlimit`) first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::ExtendedKeyUsagePurpose;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncReadExt as _;

use crate::support::process::check_web_config;
use crate::web::{Ca, Exporter, client, connect_from};

const IDLE: usize = 520;
const OTHER: [u8; 4] = [127, 0, 0, 2];

/// Raises the soft open-file limit of this process to its hard limit.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit read and write a plain struct owned here.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// When each of a set of connections was opened and closed by the server (`None` while open).
type Closes = Vec<tokio::task::JoinHandle<Option<Instant>>>;

/// Waits for every watched connection to end, and returns the longest time one stayed open, or `None` if one was
/// still open after `limit`.
async fn longest_open(opened: Vec<Instant>, closes: Closes, limit: Duration) -> Option<Duration> {
    let mut longest = Duration::ZERO;
    for (opened, close) in opened.into_iter().zip(closes) {
        let closed = tokio::time::timeout(limit, close).await.ok()?.ok()??;
        longest = longest.max(closed - opened);
    }
    Some(longest)
}

/// Reads from `stream` until the server closes it; returns when.
async fn until_closed<S: tokio::io::AsyncRead + Unpin>(mut stream: S) -> Option<Instant> {
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return Some(Instant::now()),
            Ok(_) => {}
        }
    }
}

/// A scrape from 127.0.0.1 must answer 200 within 2 s.
async fn scrape_answers(exp: &Exporter, ca: &Ca, kind: &str) {
    let c = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap()])
        .resolve("localhost", exp.addr)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = Instant::now();
    let r = c.get(exp.https("/metrics")).send().await;
    let status = r.as_ref().map(|r| r.status().as_u16());
    assert_eq!(
        status.as_ref().ok(),
        Some(&200),
        "a scrape while {IDLE} {kind} connections are held from 127.0.0.2: {r:?} after {:?}",
        started.elapsed()
    );
}

fn tls_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn tls_from_other(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = connect_from(OTHER, addr).await.ok()?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .ok()
}

#[tokio::test]
async fn idle_connections_from_one_address_never_keep_a_scrape_out() {
    raise_fd_limit();
    let timeout = Duration::from_secs(2);
    // Slack for a loaded machine between the server's timer and this process noticing the close.
    let slack = Duration::from_millis(1500);
    let ca = Ca::new("idle CA");
    let (cert, key) = ca.leaf(ExtendedKeyUsagePurpose::ServerAuth);
    let exp = Exporter::start(
        Some("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"),
        &[("server.crt", &cert), ("server.key", &key)],
        &["--web.header-timeout", "2s"],
    )
    .await;

    // Silent TCP.
    let (mut opened, mut closes): (Vec<Instant>, Closes) = (Vec::new(), Vec::new());
    for _ in 0..IDLE {
        let stream = connect_from(OTHER, exp.addr).await.unwrap();
        opened.push(Instant::now());
        closes.push(tokio::spawn(until_closed(stream)));
    }
    scrape_answers(&exp, &ca, "silent TCP").await;
    let longest = longest_open(opened, closes, timeout + slack * 4).await;
    assert!(
        longest.is_some_and(|l| l <= timeout + slack),
        "silent TCP connections closed within the header timeout ({timeout:?}); the longest: {longest:?}"
    );

    // TLS, silent after the handshake.
    let config = tls_config(&ca.pem, &[b"http/1.1"]);
    let (mut opened, mut closes): (Vec<Instant>, Closes) = (Vec::new(), Vec::new());
    let mut handshakes = 0;
    for _ in 0..IDLE {
        let started = Instant::now();
        if let Some(stream) = tls_from_other(exp.addr, config.clone()).await {
            handshakes += 1;
            opened.push(started);
            closes.push(tokio::spawn(until_closed(stream)));
        }
    }
    assert!(handshakes > 0, "some TLS connections were accepted");
    scrape_answers(&exp, &ca, "silent TLS").await;
    let longest = longest_open(opened, closes, timeout + slack * 4).await;
    assert!(
        longest.is_some_and(|l| l <= timeout + slack),
        "TLS connections silent after the handshake closed within the header timeout ({timeout:?}); the \
         longest: {longest:?}"
    );

    // HTTP/2, idle, answering PINGs (h2's client answers them by itself while its connection task runs).
    let config = tls_config(&ca.pem, &[b"h2"]);
    let mut held = Vec::new();
    for _ in 0..IDLE {
        let Some(stream) = tls_from_other(exp.addr, config.clone()).await else {
            continue;
        };
        let Ok((send, connection)) = h2::client::handshake(stream).await else {
            continue;
        };
        let opened = Instant::now();
        held.push((
            send,
            opened,
            tokio::spawn(async move {
                let _ = connection.await;
                Some(Instant::now())
            }),
        ));
    }
    assert!(!held.is_empty(), "some HTTP/2 connections were accepted");
    scrape_answers(&exp, &ca, "idle HTTP/2").await;
    let (sends, rest): (Vec<_>, Vec<_>) = held.into_iter().map(|(s, o, c)| (s, (o, c))).unzip();
    let (opened, closes): (Vec<Instant>, Closes) = rest.into_iter().unzip();
    let longest = longest_open(opened, closes, timeout * 2 + slack * 4).await;
    assert!(
        longest.is_some(),
        "idle HTTP/2 connections are closed too, PINGs notwithstanding"
    );
    drop(sends);

    let c = client(&ca.pem, None);
    let r = c.get(exp.https("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the server serves on afterwards");
}

/// A well-formed bcrypt hash at `cost` of an unknown password: a cost-4 hash with its cost field rewritten. Making
/// a real cost-18 hash takes minutes of CPU; the server never needs this one's password, only to hold a user whose
/// checks would be that slow, which is what must not slow anything else.
fn hash_at_cost(cost: u32) -> String {
    let real = bcrypt::hash("never used", 4).unwrap();
    format!("$2b${cost:02}${}", &real[7..])
}

#[tokio::test]
async fn a_cost_18_user_slows_neither_the_start_nor_unknown_users_nor_another_login() {
    let slow = hash_at_cost(18);
    let fast = bcrypt::hash("right", 10).unwrap();
    let web = format!("basic_auth_users:\n  slow: {slow}\n  prometheus: {fast}\n");
    let started = Instant::now();
    let exp = Exporter::start(Some(&web), &[], &["--web.bcrypt-max-cost", "18"]).await;
    let url = |p: &str| format!("http://{}{p}", exp.addr);
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = c.get(url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() <= Duration::from_secs(5),
        "/healthz answered {:?} after start",
        started.elapsed()
    );

    let unknown = |c: reqwest::Client, url: String| async move {
        let t = Instant::now();
        let r = c
            .get(url)
            .basic_auth("nobody", Some("guess"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), t.elapsed())
    };
    let (status, took) = unknown(c.clone(), url("/metrics")).await;
    assert_eq!(status, 401);
    assert!(
        took <= Duration::from_secs(2),
        "an unknown user took {took:?}"
    );

    let flood: Vec<_> = (0..4)
        .map(|_| tokio::spawn(unknown(c.clone(), url("/metrics"))))
        .collect();
    let t = Instant::now();
    let r = c
        .get(url("/metrics"))
        .basic_auth("prometheus", Some("right"))
        .send()
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(r.status(), 200);
    assert!(
        took <= Duration::from_secs(3),
        "a valid first login took {took:?} while four unknown-user requests ran"
    );
    for f in flood {
        let (status, took) = f.await.unwrap();
        assert_eq!(status, 401, "unknown users are refused ({took:?})");
    }

    // Without the raised cap the same file is refused, naming the user.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(&path, &web).unwrap();
    let out = check_web_config(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains(
                ":2: basic_auth_users.slow: the bcrypt hash of user \"slow\" has cost 18"
            ),
        "{stderr}"
    );
}

#[tokio::test]
async fn concurrent_agents_readers_share_one_answer_gzipped_when_asked() {
    let exp = Exporter::start(None, &[], &[]).await;
    exp.process.wait_ready().await;
    let url = format!("http://{}/api/v1/agents", exp.addr);
    let c = reqwest::Client::new();
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { c.get(url).send().await.unwrap().bytes().await.unwrap() })
        })
        .collect();
    let mut bodies = Vec::new();
    for r in readers {
        bodies.push(r.await.unwrap());
    }
    let doc: serde_json::Value = serde_json::from_slice(&bodies[0]).expect("JSON");
    assert_eq!(
        doc["sources"][0]["agents"].as_array().map(Vec::len),
        Some(3)
    );
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "readers that arrive together get the same answer, generated_at included"
    );
    let r = c
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["content-type"], "application/json");
    let zipped = r.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut text)
        .expect("gzip");
    let unzipped: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let ids = |d: &serde_json::Value| -> Vec<String> {
        d["sources"][0]["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a["id"].to_string())
            .collect()
    };
    assert_eq!(
        ids(&unzipped),
        ids(&doc),
        "the gzipped answer holds the same agents"
    );
}
