//! Test support: a real SMTP server (Debian's aiosmtpd, started from `tests/e2e/support/smtp_server.py`), a test CA
//! with a leaf certificate it signed, and a parser for what the server received.
//!
//! A missing `/usr/bin/python3` or `python3-aiosmtpd` fails the test loudly: a skipped SMTP test would read as a
//! passed one.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use mailparse::{MailHeaderMap, ParsedMail};
use onprem_agent_exporter::config::email::{EmailConfig, SmtpConfig, SmtpCredentials, TlsMode};
use secrecy::SecretString;
use tempfile::TempDir;

/// The SMTP user every test server accepts.
pub const USER: &str = "alerts";
/// Its password. Tests assert that it never appears in messages, outbox files or logs.
pub const PASSWORD: &str = "s3cret-Smtp-Pa55word";

/// [`PASSWORD`] in every form an SMTP client sends it, for searching output: as written, base64 (AUTH LOGIN's
/// password line) and base64 of `\0user\0password` (AUTH PLAIN's initial response). The base64 forms lack their `=`
/// padding, so a copy cut at the padding is found too.
pub fn password_forms() -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut forms = vec![PASSWORD.to_string()];
    for raw in [PASSWORD.to_string(), format!("\0{USER}\0{PASSWORD}")] {
        forms.push(b64.encode(raw).trim_end_matches('=').to_string());
    }
    forms
}

/// A CA and a server certificate for `localhost` and `127.0.0.1` signed by it, written as PEM files.
pub struct TestCa {
    pub ca_pem: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The CA certificate and its key used directly as a server certificate: a CA is not a valid leaf.
    pub ca_as_leaf_cert_file: PathBuf,
    pub ca_as_leaf_key_file: PathBuf,
    _dir: TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "onprem-agent-exporter test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca_key_pem = ca_key.serialize_pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.use_authority_key_identifier_extension = true;
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

        let write = |name: &str, content: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            p
        };
        TestCa {
            ca_pem: ca_cert.pem(),
            cert_file: write("leaf.pem", &leaf.pem()),
            key_file: write("leaf-key.pem", &leaf_key.serialize_pem()),
            ca_as_leaf_cert_file: write("ca.pem", &ca_cert.pem()),
            ca_as_leaf_key_file: write("ca-key.pem", &ca_key_pem),
            _dir: dir,
        }
    }
}

/// One running aiosmtpd process. Killed on drop.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub mail_dir: TempDir,
}

/// How to start a server.
pub struct ServerOptions<'a> {
    pub mode: TlsMode,
    /// Certificate and key files for `starttls` and `tls`.
    pub cert: Option<(&'a Path, &'a Path)>,
    /// Require AUTH with [`USER`] and [`PASSWORD`].
    pub auth: bool,
    /// A fixed port; `None` lets the server choose.
    pub port: Option<u16>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/support/smtp_server.py")
}

/// Panics with instructions if the SMTP server cannot run here.
fn require_aiosmtpd() {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import aiosmtpd"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3-aiosmtpd is not installed (`/usr/bin/python3 -c 'import aiosmtpd'` failed: {}). \
             Install it with `apt-get install -y python3-aiosmtpd`; `make test` does this.",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "/usr/bin/python3 cannot run ({e}); install python3 and python3-aiosmtpd (`make test` does)"
        ),
    }
}

impl SmtpServer {
    pub fn start(o: ServerOptions<'_>) -> SmtpServer {
        SmtpServer::start_with(o, &[])
    }

    /// A plain-text server (`tls: none`) that refuses every AUTH with a 535 reply quoting the login, the password,
    /// and their base64 forms, as a careless server might.
    pub fn start_echoing_credentials() -> SmtpServer {
        let o = ServerOptions {
            mode: TlsMode::None,
            cert: None,
            auth: true,
            port: None,
        };
        SmtpServer::start_with(o, &["--echo-credentials"])
    }

    fn start_with(o: ServerOptions<'_>, extra: &[&str]) -> SmtpServer {
        require_aiosmtpd();
        let mail_dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script())
            .arg("--dir")
            .arg(mail_dir.path())
            .arg("--mode")
            .arg(o.mode.as_str())
            .arg("--port")
            .arg(o.port.unwrap_or(0).to_string());
        if let Some((cert, key)) = o.cert {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if o.auth {
            cmd.args(["--user", USER, "--password", PASSWORD]);
        }
        cmd.args(extra);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script().display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(port) = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("the SMTP server did not start; stdout {line:?}; stderr:\n{err}");
        };
        SmtpServer {
            child,
            port,
            mail_dir,
        }
    }

    /// Every message received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.mail_dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|eml| {
                let meta = std::fs::read(eml.with_extension("json")).ok()?;
                let meta: serde_json::Value = serde_json::from_slice(&meta).unwrap();
                Some(Received {
                    raw: std::fs::read(&eml).unwrap(),
                    rcpt_tos: meta["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_str().unwrap().to_string())
                        .collect(),
                    auth_user: meta["auth_user"].as_str().map(String::from),
                })
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived (at most 20 s) and returns all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `EmailConfig` for a test server on `port`.
pub fn email_config(mode: TlsMode, port: u16, ca: Option<&TestCa>, auth: bool) -> EmailConfig {
    EmailConfig {
        smtp: SmtpConfig {
            host: "localhost".to_string(),
            port,
            tls: mode,
            credentials: auth.then(|| SmtpCredentials {
                username: USER.to_string(),
                password: SecretString::from(PASSWORD),
            }),
            timeout: Duration::from_secs(10),
            extra_roots_pem: ca
                .map(|c| vec![c.ca_pem.clone().into_bytes()])
                .unwrap_or_default(),
        },
        from: "Agent alerts <alerts@example.com>"
            .parse::<Mailbox>()
            .unwrap(),
        to: vec!["ops@example.com".parse().unwrap()],
    }
}

/// One received message.
pub struct Received {
    pub raw: Vec<u8>,
    /// The envelope recipients.
    pub rcpt_tos: Vec<String>,
    /// The authenticated user, if any.
    pub auth_user: Option<String>,
}

impl Received {
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    pub fn parsed(&self) -> ParsedMail<'_> {
        mailparse::parse_mail(&self.raw)
            .unwrap_or_else(|e| panic!("unparsable message ({e}):\n{}", self.raw_text()))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed().headers.get_first_value(name)
    }

    /// The decoded body of the first part with this MIME type.
    pub fn part(&self, mimetype: &str) -> Option<String> {
        fn find(p: &ParsedMail<'_>, m: &str) -> Option<String> {
            if p.ctype.mimetype == m {
                return p.get_body().ok();
            }
            p.subparts.iter().find_map(|s| find(s, m))
        }
        find(&self.parsed(), mimetype)
    }

    /// `(filename, decoded body)` of every attachment.
    pub fn attachments(&self) -> Vec<(String, String)> {
        fn walk(p: &ParsedMail<'_>, out: &mut Vec<(String, String)>) {
            let d = p.get_content_disposition();
            if let Some(name) = d.params.get("filename") {
                out.push((name.clone(), p.get_body().unwrap_or_default()));
            }
            for s in &p.subparts {
                walk(s, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.parsed(), &mut out);
        out
    }
}
