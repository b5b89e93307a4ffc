//! The web config with the exporter-toolkit's meaning, against the real binary and fixtures made here: the
//! toolkit's test cases read by `check-config` (good files accepted, bad ones refused naming file, line and key),
//! then the handshakes they describe: inline PEM, P-521 alone at TLS 1.3, a TLS 1.2 cipher suite list, client
//! certificates (a self-signed `CA:TRUE` certificate listed as its own client CA), `client_allowed_sans`,
//! `rate_limit`, and Go's `400` for plain HTTP on the TLS port.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::process::check_web_config;
use crate::web::{Ca, Exporter, client};

/// A self-signed certificate with `CA:TRUE` and the subject alternative names `sans`, as `openssl req -x509`
/// makes one: (certificate PEM, key PEM).
fn self_signed(name: &str, sans: &[&str]) -> (String, String) {
    let mut params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Indents `pem` for a YAML block scalar under a key at two spaces.
fn block(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

#[test]
fn check_config_reads_every_toolkit_case_as_the_toolkit_does() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("toolkit cases CA");
    let (cert, key) = ca.leaf(ExtendedKeyUsagePurpose::ServerAuth);
    let (_, other_key) = ca.leaf(ExtendedKeyUsagePurpose::ServerAuth);
    let (client_pem, _) = self_signed("client", &["test3"]);
    for (name, content) in [
        ("server.crt", &cert),
        ("server.key", &key),
        ("other.key", &other_key),
        ("client.pem", &client_pem),
    ] {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let inline = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        block(&cert),
        block(&key)
    );
    let low_cost = bcrypt::hash("x", 4).unwrap();
    // (case, web config, None when accepted or the start of the error after the file name).
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("empty", String::new(), None),
        ("tls off: tls_server_config: {}", "tls_server_config: {}\n".into(), None),
        ("no auth", tls.into(), None),
        ("inline cert and key", inline, None),
        (
            "VerifyClientCertIfGiven without a client CA",
            format!("{tls}  client_auth_type: VerifyClientCertIfGiven\n"),
            None,
        ),
        (
            "RequireAndVerifyClientCert without a client CA",
            format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
            None,
        ),
        (
            "RequireAnyClientCert",
            format!("{tls}  client_auth_type: RequireAnyClientCert\n"),
            None,
        ),
        (
            "all ciphers",
            format!(
                "{tls}  client_auth_type: VerifyClientCertIfGiven\n  cipher_suites:\n  \
                 - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  \
                 - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256\n  - TLS_AES_128_GCM_SHA256\n  \
                 - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\n"
            ),
            None,
        ),
        (
            "some ciphers, client order",
            format!(
                "{tls}  cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  \
                 - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  prefer_server_cipher_suites: false\n  \
                 min_version: TLS12\n  max_version: TLS12\n"
            ),
            None,
        ),
        (
            "all curves",
            format!(
                "{tls}  curve_preferences: [CurveP256, CurveP384, CurveP521, X25519]\n"
            ),
            None,
        ),
        (
            "P-521 alone at TLS 1.3",
            format!("{tls}  min_version: TLS13\n  curve_preferences: [CurveP521]\n"),
            None,
        ),
        (
            "client SANs with a self-signed client CA",
            format!(
                "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client.pem\n  \
                 client_allowed_sans: [one, test3]\n"
            ),
            None,
        ),
        (
            "headers",
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    \
             X-XSS-Protection: \"1\"\n    Strict-Transport-Security: max-age=31536000\n    \
             Content-Security-Policy: \"default-src 'self'\"\n"
                .into(),
            None,
        ),
        (
            "rate limit",
            "rate_limit:\n  interval: 1s\n  burst: 0\n".into(),
            None,
        ),
        (
            "rate limit off",
            "rate_limit:\n  interval: 0\n  burst: 0\n".into(),
            None,
        ),
        (
            "users without TLS",
            format!("basic_auth_users:\n  alice: {low_cost}\n"),
            None,
        ),
        (
            "junk key",
            "tls_server_config:\n  cert_filse: server.crt\n".into(),
            Some(":2: tls_server_config.cert_filse: unknown field"),
        ),
        (
            "cert path empty",
            "tls_server_config:\n  cert_file: \"\"\n  key_file: server.key\n".into(),
            Some(":2: tls_server_config.cert_file: missing one of cert or cert_file"),
        ),
        (
            "key path empty",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: \"\"\n".into(),
            Some(":3: tls_server_config.key_file: missing one of key or key_file"),
        ),
        (
            "cert path invalid",
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n".into(),
            Some(":2: tls_server_config.cert_file:"),
        ),
        (
            "client CA without a policy",
            format!("{tls}  client_ca_file: client.pem\n"),
            Some(":4: tls_server_config.client_ca_file: client CAs are set without a client auth policy"),
        ),
        (
            "client CA file invalid",
            format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: somefile\n"),
            Some(":5: tls_server_config.client_ca_file:"),
        ),
        (
            "invalid user list",
            "basic_auth_users:\n  alice: plaintext\n".into(),
            Some(":2: basic_auth_users.alice: not a bcrypt hash"),
        ),
        (
            "invented cipher",
            format!("{tls}  cipher_suites: [TLS_INVENTED_CIPHER]\n"),
            Some(":4: tls_server_config.cipher_suites: unknown cipher suite"),
        ),
        (
            "invented curve",
            format!("{tls}  curve_preferences: [CurveP257]\n"),
            Some(":4: tls_server_config.curve_preferences: unknown curve"),
        ),
        (
            "wrong TLS version",
            format!("{tls}  min_version: TLS111\n"),
            Some(":4: tls_server_config.min_version: unknown TLS version"),
        ),
        (
            "TLS 1.0, which rustls does not speak",
            format!("{tls}  min_version: TLS10\n"),
            Some(":4: tls_server_config.min_version: TLS10 is not supported"),
        ),
        (
            "no HTTP/2 cipher with HTTP/2 on",
            format!(
                "{tls}  max_version: TLS12\n  cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n"
            ),
            Some(":6: tls_server_config.cipher_suites: HTTP/2 is on but none of its required suites"),
        ),
        (
            "X-Content-Type-Options other than nosniff",
            "http_server_config:\n  headers:\n    X-Content-Type-Options: NOSNIFF\n".into(),
            Some(":3: http_server_config.headers.X-Content-Type-Options: invalid value"),
        ),
        (
            "X-Frame-Options other than deny or sameorigin",
            "http_server_config:\n  headers:\n    X-Frame-Options: allow-from\n".into(),
            Some(":3: http_server_config.headers.X-Frame-Options: invalid value"),
        ),
        (
            "a header that cannot be set",
            "http_server_config:\n  headers:\n    Content-Type: foo\n".into(),
            Some(":3: http_server_config.headers.Content-Type: this header cannot be set"),
        ),
        (
            "a lower-case header name",
            "http_server_config:\n  headers:\n    x-frame-options: deny\n".into(),
            Some(":3: http_server_config.headers.x-frame-options: this header cannot be set"),
        ),
        (
            "a key that does not match the certificate",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n".into(),
            Some(":3: tls_server_config.key_file:"),
        ),
    ];
    let mut failures = Vec::new();
    for (i, (case, yaml, want)) in cases.iter().enumerate() {
        let web = dir.path().join(format!("web-{i}.yml"));
        std::fs::write(&web, yaml).unwrap();
        let out = check_web_config(&web);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ok = match want {
            None => out.status.success(),
            Some(want) => {
                !out.status.success() && stderr.contains(&format!("{}{want}", web.display()))
            }
        };
        if !ok {
            failures.push(format!(
                "{case}: want {}, got exit {} with\n{stderr}",
                want.map_or("OK".to_string(), |w| format!("an error containing {w:?}")),
                out.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The mismatch names both keys and says what is wrong, not rustls's enum.
    let web = dir.path().join(format!("web-{}.yml", cases.len() - 1));
    let out = check_web_config(&web);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not belong to the certificate")
            && stderr.contains("tls_server_config.cert_file")
            && !stderr.contains("KeyMismatch"),
        "{stderr}"
    );
}

/// A TLS client trusting `ca_pem`, with `provider` (to pin suites or groups), `versions` and an optional client
/// certificate.
fn tls_client(
    ca_pem: &str,
    provider: rustls::crypto::CryptoProvider,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// `GET /healthz` over TLS with `config`: the status line, or why the handshake failed.
async fn tls_healthz(addr: SocketAddr, config: rustls::ClientConfig) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.lines()
        .next()
        .map(str::to_string)
        .filter(|l| l.starts_with("HTTP/"))
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))
}

#[tokio::test]
async fn inline_pem_p521_alone_and_a_tls12_suite_list_negotiate_as_in_the_toolkit() {
    use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider, kx_group};
    let ca = Ca::new("handshake CA");
    let (cert, key) = ca.leaf(ExtendedKeyUsagePurpose::ServerAuth);
    let p521 = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}  min_version: TLS13\n  curve_preferences: [CurveP521]\n",
        block(&cert),
        block(&key)
    );
    let exp = Exporter::start(Some(&p521), &[], &[]).await;
    let with_groups = |groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>| {
        let mut p = default_provider();
        p.kx_groups = groups;
        tls_client(&ca.pem, p, &[&rustls::version::TLS13])
    };
    let ok = tls_healthz(
        exp.addr,
        with_groups(vec![onprem_agent_exporter::web::tls::SECP521R1]),
    )
    .await;
    assert_eq!(ok.as_deref(), Ok("HTTP/1.1 200 OK"), "a P-521 client");
    let refused = tls_healthz(exp.addr, with_groups(vec![kx_group::X25519])).await;
    assert!(refused.is_err(), "an X25519-only client: {refused:?}");

    // Plain HTTP on the TLS port: Go's 400, then the connection closes.
    let mut raw = TcpStream::connect(exp.addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer)
        .expect("the server answers and closes");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.0 400 Bad Request\r\n")
            && answer.contains("Client sent an HTTP request to an HTTPS server."),
        "{answer:?}"
    );

    let suites = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                  client_auth_type: VerifyClientCertIfGiven\n  min_version: TLS12\n  max_version: TLS12\n  \
                  cipher_suites:\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n  \
                  - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\n";
    let exp = Exporter::start(
        Some(suites),
        &[("server.crt", &cert), ("server.key", &key)],
        &[],
    )
    .await;
    let with_suite = |suite| {
        let mut p = default_provider();
        p.cipher_suites = vec![suite];
        tls_client(&ca.pem, p, &[&rustls::version::TLS12])
    };
    let ok = tls_healthz(
        exp.addr,
        with_suite(cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    )
    .await;
    assert_eq!(
        ok.as_deref(),
        Ok("HTTP/1.1 200 OK"),
        "a listed suite, no client certificate (VerifyClientCertIfGiven without a client CA)"
    );
    let refused = tls_healthz(
        exp.addr,
        with_suite(cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    )
    .await;
    assert!(refused.is_err(), "a suite not listed: {refused:?}");
    let logs = exp.process.logs();
    assert_eq!(
        logs.matches("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA").count(),
        1,
        "the suite rustls lacks is named in one warning:\n{logs}"
    );
}

#[tokio::test]
async fn a_self_signed_client_ca_is_accepted_as_its_own_client_certificate_and_sans_are_checked() {
    let ca = Ca::new("server CA");
    let (cert, key) = ca.leaf(ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = self_signed("client", &["test3"]);
    let (stranger_cert, stranger_key) = self_signed("stranger", &["test3"]);
    let files = [
        ("server.crt", cert.as_str()),
        ("server.key", key.as_str()),
        ("client.pem", client_cert.as_str()),
    ];
    let web = |sans: &str| {
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client.pem\n{sans}"
        )
    };
    let exp = Exporter::start(
        Some(&web("  client_allowed_sans: [one, test3, two]\n")),
        &files,
        &[],
    )
    .await;
    let r = client(&ca.pem, Some((&client_cert, &client_key)))
        .get(exp.https("/healthz"))
        .send()
        .await
        .expect("the listed self-signed certificate is accepted");
    assert_eq!(r.status(), 200);
    let r = client(&ca.pem, Some((&stranger_cert, &stranger_key)))
        .get(exp.https("/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "an unlisted self-signed certificate: {r:?}");
    let r = client(&ca.pem, None)
        .get(exp.https("/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "no certificate: {r:?}");

    let exp = Exporter::start(Some(&web("  client_allowed_sans: [bad]\n")), &files, &[]).await;
    let r = client(&ca.pem, Some((&client_cert, &client_key)))
        .get(exp.https("/healthz"))
        .send()
        .await;
    assert!(r.is_err(), "a certificate without an allowed SAN: {r:?}");
}

#[tokio::test]
async fn the_rate_limit_answers_429_past_its_burst_with_the_configured_headers() {
    let web = "rate_limit:\n  interval: 1h\n  burst: 3\nhttp_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n";
    let exp = Exporter::start(Some(web), &[], &[]).await;
    let url = |p: &str| format!("http://{}{p}", exp.addr);
    let c = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            c.get(url("/metrics"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let r = c.get(url("/metrics")).send().await.unwrap();
    assert_eq!(r.headers()["x-frame-options"], "sameorigin");
    assert_eq!(
        c.get(url("/healthz")).send().await.unwrap().status(),
        200,
        "/healthz is not rate limited"
    );
}
