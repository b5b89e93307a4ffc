//! The web config file (`--web.config.file`), in the format Prometheus, Alertmanager and node_exporter read
//! (prometheus/exporter-toolkit `docs/web-configuration.md`), so one file and one habit serve every component.
//!
//! Every key of the toolkit is read with the toolkit's meaning: `tls_server_config` (files or inline PEM, client
//! certificates, `client_allowed_sans`, `cipher_suites`, `curve_preferences`, versions), `http_server_config`
//! (`http2`, `headers`, checked as the toolkit checks them: exact names and exact values), `rate_limit` and
//! `basic_auth_users`. The few differences (no `TLS10`/`TLS11`, cipher suites rustls does not implement, a highest
//! bcrypt cost) are refused or warned about by name; CONFIGURATION.md lists them. Every error names the file, the
//! line and the key; no error repeats a password hash or an inline key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::parse::parse_yaml;
use crate::config::{ConfigError, Located, resolve_path};

/// The highest bcrypt cost accepted by default. One check at cost 16 takes about 5 s of one core; every step
/// doubles it, so a cost-18 hash makes each first login of that user cost 20 s or more and a cost-31 one hours.
/// `--web.bcrypt-max-cost` raises it for a file that needs more.
pub const DEFAULT_MAX_BCRYPT_COST: u32 = 16;

/// A validated web config. [`WebConfig::default`] is an empty file's meaning: plain HTTP, no credentials, no extra
/// headers, HTTP/2 offered (the toolkit's default).
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where it was read from, for messages.
    pub path: PathBuf,
    /// TLS, when `tls_server_config` names a certificate, a key, a client CA or a client auth type (the toolkit's
    /// test); plain HTTP otherwise, `tls_server_config: {}` included.
    pub tls: Option<TlsSettings>,
    /// Whether HTTP/2 is offered (through ALPN, so only with TLS). The toolkit's default is on.
    pub http2: bool,
    /// Response headers the user adds, validated as the toolkit validates them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// User name → bcrypt hash. Empty means no basic auth. Kept out of `Debug` output by [`Users`].
    pub users: Users,
    /// `rate_limit`, when its interval is not zero.
    pub rate_limit: Option<RateLimit>,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig {
            path: PathBuf::new(),
            tls: None,
            http2: true,
            headers: Vec::new(),
            users: Users::default(),
            rate_limit: None,
        }
    }
}

/// The toolkit's `rate_limit`: a token bucket of `burst` tokens, one more every `interval`, shared by all requests
/// (Go's `rate.NewLimiter(rate.Every(interval), burst)`). A burst of 0 refuses everything, as in Go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The time one token takes to come back.
    pub interval: Duration,
    /// The bucket's size, and its content at start.
    pub burst: u32,
}

/// Basic-auth users: name → bcrypt hash. `Debug` shows the names only: the hashes are secrets (a weak password
/// falls to an offline attack on its hash).
#[derive(Clone, Default)]
pub struct Users(pub BTreeMap<String, String>);

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// PEM from a file (re-read when it changes) or written inline in the web config.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    /// A file, resolved against the web config's folder.
    File(PathBuf),
    /// PEM text from the web config itself (`cert`, `key`, `client_ca`).
    Inline(String),
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pem::File(p) => write!(f, "File({})", p.display()),
            // An inline key is a secret: never printed.
            Pem::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

/// Where a value came from: the line and key in the web config, so that errors found when the TLS configuration is
/// built (a key that does not match its certificate) still name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The web config file.
    pub file: PathBuf,
    /// The line of the key.
    pub line: u64,
    /// The key path, such as `tls_server_config.key_file`.
    pub key: String,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.key)
    }
}

/// The TLS part of a web config.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Where `tls_server_config` itself is, for errors about the combination of its keys.
    pub at: Origin,
    /// PEM certificate chain, and where it is set.
    pub cert: (Pem, Origin),
    /// PEM private key, and where it is set.
    pub key: (Pem, Origin),
    /// PEM bundle of CAs that client certificates must chain to; `None` means the system's trust store, as Go
    /// does when `ClientCAs` is nil.
    pub client_ca: Option<(Pem, Origin)>,
    /// What the server asks of a client's certificate.
    pub client_auth: ClientAuth,
    /// The lowest TLS version accepted.
    pub min_version: TlsVersion,
    /// The highest TLS version accepted.
    pub max_version: TlsVersion,
    /// Whether the server's cipher suite order wins over the client's (the toolkit's default: yes).
    pub prefer_server_cipher_suites: bool,
    /// The TLS 1.2 cipher suites allowed, by Go name, in order; empty means rustls's defaults. Go ignores the list
    /// for TLS 1.3, and so does this exporter.
    pub cipher_suites: Vec<&'static str>,
    /// The key-exchange groups, in order; empty means the provider's defaults.
    pub curves: Vec<Curve>,
    /// `client_allowed_sans`: a verified client certificate must carry one of these DNS names, e-mail addresses,
    /// IP addresses or URIs. `None` when the key is absent.
    pub client_allowed_sans: Option<Vec<String>>,
}

/// Go's `tls.ClientAuthType` names, as the toolkit spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    NoClientCert,
    /// A certificate is asked for but not required, and not verified.
    RequestClientCert,
    /// A certificate is required but not verified against a CA.
    RequireAnyClientCert,
    /// A certificate is optional; one that is sent must chain to `client_ca_file`.
    VerifyClientCertIfGiven,
    /// A certificate that chains to `client_ca_file` is required. The only policy that authenticates clients.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: &[(&str, ClientAuth)] = &[
        ("", ClientAuth::NoClientCert),
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        // The toolkit keeps this older name for RequireAnyClientCert.
        ("RequireClientCert", ClientAuth::RequireAnyClientCert),
        (
            "VerifyClientCertIfGiven",
            ClientAuth::VerifyClientCertIfGiven,
        ),
        (
            "RequireAndVerifyClientCert",
            ClientAuth::RequireAndVerifyClientCert,
        ),
    ];

    /// Returns true if and only if the policy checks certificates against a CA.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// A TLS protocol version. rustls speaks 1.2 and 1.3 only; the toolkit's `TLS10` and `TLS11` are refused with a
/// sentence rather than silently raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// The toolkit's `curve_preferences` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// `CurveP256`: secp256r1.
    P256,
    /// `CurveP384`: secp384r1.
    P384,
    /// `CurveP521`: secp521r1.
    P521,
    /// `X25519`.
    X25519,
}

impl Curve {
    const NAMES: &[(&str, Curve)] = &[
        ("CurveP256", Curve::P256),
        ("CurveP384", Curve::P384),
        ("CurveP521", Curve::P521),
        ("X25519", Curve::X25519),
    ];
}

/// Go's names of the cipher suites `crypto/tls` calls secure (`tls.CipherSuites()`), the list the toolkit accepts.
/// The second value says whether rustls implements the suite: the others (RSA key exchange, CBC) are left out with
/// one warning naming them.
pub const GO_CIPHER_SUITES: &[(&str, bool)] = &[
    ("TLS_RSA_WITH_AES_128_CBC_SHA", false),
    ("TLS_RSA_WITH_AES_256_CBC_SHA", false),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", false),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", false),
    ("TLS_AES_128_GCM_SHA256", true),
    ("TLS_AES_256_GCM_SHA384", true),
    ("TLS_CHACHA20_POLY1305_SHA256", true),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", false),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", false),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", false),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", false),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", true),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", true),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", true),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", true),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", true),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", true),
];

/// The suites Go's HTTP/2 server requires among `cipher_suites` when TLS 1.2 is allowed (RFC 7540, 9.2.2).
const HTTP2_REQUIRED: &[&str] = &[
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
];

/// The headers `http_server_config.headers` may set, and the values the toolkit allows for some of them. Names and
/// values are compared exactly, as the toolkit compares them.
const HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<Spanned<RawTls>>,
    http_server_config: Option<Spanned<RawHttp>>,
    basic_auth_users: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    rate_limit: Option<Spanned<RawRateLimit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    client_ca_file: Option<Spanned<String>>,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    client_ca: Option<Spanned<String>>,
    client_auth_type: Option<Spanned<String>>,
    min_version: Option<Spanned<String>>,
    max_version: Option<Spanned<String>>,
    prefer_server_cipher_suites: Option<bool>,
    cipher_suites: Option<Vec<Spanned<String>>>,
    curve_preferences: Option<Vec<Spanned<String>>>,
    client_allowed_sans: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    interval: Option<Spanned<GoDuration>>,
    burst: Option<Spanned<i64>>,
}

/// A Go `time.Duration` as YAML writes it: a string such as `1s`, or an integer number of nanoseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GoDuration {
    Nanos(u64),
    Text(String),
}

impl WebConfig {
    /// Reads and validates the web config at `path` with the default highest bcrypt cost.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        WebConfig::load_with(path, DEFAULT_MAX_BCRYPT_COST)
    }

    /// Reads and validates the web config at `path`, refusing bcrypt hashes above `max_cost`. Relative file names
    /// inside it are taken relative to its folder.
    pub fn load_with(path: &Path, max_cost: u32) -> Result<WebConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        WebConfig::parse_with(&text, path, max_cost)
    }

    /// Validates `text` as if read from `file`, with the default highest bcrypt cost.
    pub fn parse(text: &str, file: &Path) -> Result<WebConfig, ConfigError> {
        WebConfig::parse_with(text, file, DEFAULT_MAX_BCRYPT_COST)
    }

    /// Validates `text` as if read from `file`. Certificate files are checked to exist here and loaded by
    /// [`crate::web::tls`], which reports their content errors with the same file, line and key.
    pub fn parse_with(text: &str, file: &Path, max_cost: u32) -> Result<WebConfig, ConfigError> {
        let ctx = Located { file };
        // An empty file is a valid web config (no TLS, no auth), as for the toolkit.
        let raw = if text.trim().is_empty() {
            None
        } else {
            Some(parse_yaml::<RawWebConfig>(text, file)?)
        };
        let mut out = WebConfig {
            path: file.to_path_buf(),
            ..WebConfig::default()
        };
        let Some(raw) = raw else {
            return Ok(out);
        };
        if let Some(r) = &raw.rate_limit {
            out.rate_limit = rate_limit(&ctx, r)?;
        }
        if let Some(http) = &raw.http_server_config {
            if let Some(h2) = http.value.http2 {
                out.http2 = h2;
            }
            for (name, value) in http.value.headers.iter().flatten() {
                out.headers.push(header(&ctx, name, value)?);
            }
        }
        if let Some(tls) = &raw.tls_server_config {
            out.tls = tls_settings(&ctx, tls, out.http2)?;
        }
        if let Some(users) = &raw.basic_auth_users {
            for (user, hash) in &users.value {
                let key = format!("basic_auth_users.{user}");
                let line = hash.referenced.line();
                if user.is_empty() || user.contains(':') {
                    return Err(ctx.at(
                        line,
                        key,
                        "a user name must be non-empty and must not contain ':' (basic auth splits on it)",
                    ));
                }
                // The hash is a secret: say what is wrong with it, never what it is.
                let parts = hash.value.trim().parse::<bcrypt::HashParts>().map_err(|e| {
                    ctx.at(
                        line,
                        key.clone(),
                        format!(
                            "not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                        ),
                    )
                })?;
                if parts.get_cost() > max_cost {
                    return Err(ctx.at(
                        line,
                        key,
                        format!(
                            "the bcrypt hash of user {user:?} has cost {}, above the highest accepted ({max_cost}): \
                             each check would take {}× as long as at cost 10; make a new hash with \
                             `htpasswd -nBC 10 {user}` or raise --web.bcrypt-max-cost",
                            parts.get_cost(),
                            1u64 << (parts.get_cost().saturating_sub(10)).min(40)
                        ),
                    ));
                }
                out.users
                    .0
                    .insert(user.clone(), hash.value.trim().to_string());
            }
        }
        Ok(out)
    }
}

fn rate_limit(
    ctx: &Located<'_>,
    raw: &Spanned<RawRateLimit>,
) -> Result<Option<RateLimit>, ConfigError> {
    let interval = match &raw.value.interval {
        None => Duration::ZERO,
        Some(v) => match &v.value {
            GoDuration::Nanos(n) => Duration::from_nanos(*n),
            GoDuration::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
                ctx.at(
                    v.referenced.line(),
                    "rate_limit.interval",
                    format!("invalid duration {t:?}: {e} (write for example 1s or 500ms)"),
                )
            })?,
        },
    };
    let burst = match &raw.value.burst {
        None => 0,
        Some(b) => u32::try_from(b.value).map_err(|_| {
            ctx.at(
                b.referenced.line(),
                "rate_limit.burst",
                format!("must be between 0 and {}, not {}", u32::MAX, b.value),
            )
        })?,
    };
    // The toolkit turns the limiter on only for a non-zero interval.
    Ok((!interval.is_zero()).then_some(RateLimit { interval, burst }))
}

fn tls_settings(
    ctx: &Located<'_>,
    raw: &Spanned<RawTls>,
    http2: bool,
) -> Result<Option<TlsSettings>, ConfigError> {
    let line = raw.referenced.line();
    let t = &raw.value;
    let set = |v: &Option<Spanned<String>>| v.as_ref().is_some_and(|v| !v.value.is_empty());
    // The toolkit's `IsEnabled`: TLS is on when any of these is set; `tls_server_config: {}` (or one with only
    // versions, suites or curves) means plain HTTP.
    if ![
        &t.cert_file,
        &t.cert,
        &t.key_file,
        &t.key,
        &t.client_ca_file,
        &t.client_ca,
        &t.client_auth_type,
    ]
    .into_iter()
    .any(set)
    {
        return Ok(None);
    }
    let origin = |v: &Spanned<String>, key: &str| Origin {
        file: ctx.file.to_path_buf(),
        line: v.referenced.line(),
        key: format!("tls_server_config.{key}"),
    };
    let pem = |file: &Option<Spanned<String>>,
               inline: &Option<Spanned<String>>,
               file_key: &str,
               inline_key: &str|
     -> Result<Option<(Pem, Origin)>, ConfigError> {
        if let Some(v) = file.as_ref().filter(|v| !v.value.is_empty()) {
            let path = resolve_path(ctx.file, Path::new(v.value.trim()));
            if !path.is_file() {
                return Err(ctx.at(
                    v.referenced.line(),
                    format!("tls_server_config.{file_key}"),
                    format!("{} is not a readable file", path.display()),
                ));
            }
            return Ok(Some((Pem::File(path), origin(v, file_key))));
        }
        Ok(inline
            .as_ref()
            .filter(|v| !v.value.is_empty())
            .map(|v| (Pem::Inline(v.value.clone()), origin(v, inline_key))))
    };
    let cert = pem(&t.cert_file, &t.cert, "cert_file", "cert")?.ok_or_else(|| {
        let at = t
            .cert_file
            .as_ref()
            .or(t.cert.as_ref())
            .map_or(line, |v| v.referenced.line());
        ctx.at(
            at,
            "tls_server_config.cert_file",
            "missing one of cert or cert_file",
        )
    })?;
    let key = pem(&t.key_file, &t.key, "key_file", "key")?.ok_or_else(|| {
        let at = t
            .key_file
            .as_ref()
            .or(t.key.as_ref())
            .map_or(line, |v| v.referenced.line());
        ctx.at(
            at,
            "tls_server_config.key_file",
            "missing one of key or key_file",
        )
    })?;
    let client_ca = pem(
        &t.client_ca_file,
        &t.client_ca,
        "client_ca_file",
        "client_ca",
    )?;
    let client_auth = match &t.client_auth_type {
        None => ClientAuth::NoClientCert,
        Some(v) => ClientAuth::NAMES
            .iter()
            .find(|(n, _)| *n == v.value)
            .map(|(_, c)| *c)
            .ok_or_else(|| {
                let names: Vec<&str> = ClientAuth::NAMES[1..].iter().map(|(n, _)| *n).collect();
                ctx.at(
                    v.referenced.line(),
                    "tls_server_config.client_auth_type",
                    format!(
                        "unknown client_auth_type {:?}; expected one of {}",
                        v.value,
                        names.join(", ")
                    ),
                )
            })?,
    };
    if let Some((_, at)) = &client_ca
        && client_auth == ClientAuth::NoClientCert
    {
        return Err(ctx.at(
            at.line,
            at.key.clone(),
            "client CAs are set without a client auth policy; set client_auth_type (RequireAndVerifyClientCert \
             checks client certificates against them)",
        ));
    }
    let version = |v: &Option<Spanned<String>>,
                   key: &str,
                   default|
     -> Result<TlsVersion, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        match v.value.as_str() {
                "TLS12" => Ok(TlsVersion::Tls12),
                "TLS13" => Ok(TlsVersion::Tls13),
                "TLS10" | "TLS11" => Err(ctx.at(
                    v.referenced.line(),
                    format!("tls_server_config.{key}"),
                    format!(
                        "{} is not supported: this exporter speaks TLS12 and TLS13 only (older versions are \
                         broken and rustls does not implement them)",
                        v.value
                    ),
                )),
                other => Err(ctx.at(
                    v.referenced.line(),
                    format!("tls_server_config.{key}"),
                    format!("unknown TLS version {other:?}; expected TLS12 or TLS13"),
                )),
            }
    };
    let min_version = version(&t.min_version, "min_version", TlsVersion::Tls12)?;
    let max_version = version(&t.max_version, "max_version", TlsVersion::Tls13)?;
    if min_version > max_version {
        let at = t.min_version.as_ref().map_or(line, |v| v.referenced.line());
        return Err(ctx.at(
            at,
            "tls_server_config.min_version",
            "is higher than max_version",
        ));
    }
    let mut cipher_suites = Vec::new();
    for v in t.cipher_suites.iter().flatten() {
        let Some((name, _)) = GO_CIPHER_SUITES.iter().find(|(n, _)| *n == v.value) else {
            return Err(ctx.at(
                v.referenced.line(),
                "tls_server_config.cipher_suites",
                format!("unknown cipher suite {:?} (Go's names, such as TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)", v.value),
            ));
        };
        cipher_suites.push(*name);
    }
    if let Some(list) = &t.cipher_suites {
        let at = list.first().map_or(line, |v| v.referenced.line());
        if http2
            && !list.is_empty()
            && min_version < TlsVersion::Tls13
            && !cipher_suites.iter().any(|c| HTTP2_REQUIRED.contains(c))
        {
            return Err(ctx.at(
                at,
                "tls_server_config.cipher_suites",
                format!(
                    "HTTP/2 is on but none of its required suites is listed ({}); add one or set \
                     http_server_config.http2: false",
                    HTTP2_REQUIRED.join(" or ")
                ),
            ));
        }
        let usable = cipher_suites
            .iter()
            .any(|n| n.starts_with("TLS_ECDHE_") && GO_CIPHER_SUITES.contains(&(n, true)));
        if !list.is_empty() && max_version == TlsVersion::Tls12 && !usable {
            return Err(ctx.at(
                at,
                "tls_server_config.cipher_suites",
                "lists no TLS 1.2 suite this exporter implements (ECDHE with AES-GCM or ChaCha20-Poly1305) and \
                 TLS 1.3 is off, so no client could connect",
            ));
        }
    }
    let mut curves = Vec::new();
    for v in t.curve_preferences.iter().flatten() {
        let Some((_, c)) = Curve::NAMES.iter().find(|(n, _)| *n == v.value) else {
            let names: Vec<&str> = Curve::NAMES.iter().map(|(n, _)| *n).collect();
            return Err(ctx.at(
                v.referenced.line(),
                "tls_server_config.curve_preferences",
                format!(
                    "unknown curve {:?}; expected one of {}",
                    v.value,
                    names.join(", ")
                ),
            ));
        };
        curves.push(*c);
    }
    let client_allowed_sans = t
        .client_allowed_sans
        .as_ref()
        .map(|l| l.iter().map(|v| v.value.clone()).collect());
    Ok(Some(TlsSettings {
        at: Origin {
            file: ctx.file.to_path_buf(),
            line,
            key: "tls_server_config".to_string(),
        },
        cert,
        key,
        client_ca,
        client_auth,
        min_version,
        max_version,
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
        cipher_suites,
        curves,
        client_allowed_sans,
    }))
}

fn header(
    ctx: &Located<'_>,
    name: &str,
    value: &Spanned<String>,
) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let key = format!("http_server_config.headers.{name}");
    let line = value.referenced.line();
    // Exact names, as the toolkit's map lookup: `x-frame-options` is refused there, so it is refused here.
    let Some((canonical, allowed)) = HEADERS.iter().find(|(h, _)| *h == name) else {
        let names: Vec<&str> = HEADERS.iter().map(|(h, _)| *h).collect();
        return Err(ctx.at(
            line,
            key,
            format!(
                "this header cannot be set (names are case-sensitive, as in the exporter-toolkit); allowed: {}",
                names.join(", ")
            ),
        ));
    };
    let v = value.value.as_str();
    if let Some(allowed) = allowed
        && !allowed.contains(&v)
    {
        return Err(ctx.at(
            line,
            key,
            format!(
                "invalid value {v:?}; expected one of {}",
                allowed.join(", ")
            ),
        ));
    }
    let value = HeaderValue::from_str(v).map_err(|_| {
        ctx.at(
            line,
            key.clone(),
            "is not a valid header value (control characters?)",
        )
    })?;
    // The names in HEADERS are valid; `from_bytes` lower-cases them.
    let name =
        HeaderName::from_bytes(canonical.as_bytes()).expect("the allowed header names are valid");
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder with a certificate, a key and a CA file (contents are not parsed here), and a web config in it.
    fn setup(yaml: &str) -> (tempfile::TempDir, Result<WebConfig, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        for f in ["server.crt", "server.key", "ca.crt"] {
            std::fs::write(dir.path().join(f), "-").unwrap();
        }
        let path = dir.path().join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        let result = WebConfig::load(&path);
        (dir, result)
    }

    fn error(yaml: &str) -> String {
        let (_dir, result) = setup(yaml);
        result.expect_err("the web config is refused").to_string()
    }

    const HASH: &str = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

    #[test]
    fn a_full_config_is_read_with_paths_relative_to_the_file() {
        let yaml = format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n  \
             client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS13\nhttp_server_config:\n  http2: false\n  \
             headers:\n    Strict-Transport-Security: max-age=31536000\n    X-Frame-Options: sameorigin\n\
             basic_auth_users:\n  prometheus: {HASH}\n"
        );
        let (dir, result) = setup(&yaml);
        let web = result.expect("valid");
        let tls = web.tls.expect("TLS is on");
        assert_eq!(tls.cert.0, Pem::File(dir.path().join("server.crt")));
        assert_eq!(tls.cert.1.line, 2);
        assert_eq!(
            tls.client_ca.map(|c| c.0),
            Some(Pem::File(dir.path().join("ca.crt")))
        );
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(
            (tls.min_version, tls.max_version),
            (TlsVersion::Tls13, TlsVersion::Tls13)
        );
        assert!(!web.http2);
        assert_eq!(web.headers.len(), 2);
        assert_eq!(
            web.users.0.get("prometheus").map(String::as_str),
            Some(HASH)
        );
        assert!(
            !format!("{:?}", web.users).contains("$2y$"),
            "Debug never shows a hash"
        );
    }

    #[test]
    fn an_empty_file_means_plain_http_without_credentials() {
        let (_dir, result) = setup("");
        let web = result.expect("valid");
        assert!(web.tls.is_none() && web.users.0.is_empty() && web.http2);
    }

    #[test]
    fn mistakes_are_refused_with_the_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "tls_server_config:\n  cert_file: server.crt\n",
                "web.yml:2: tls_server_config.key_file: missing one of key or key_file",
            ),
            (
                "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n",
                "web.yml:2: tls_server_config.cert_file:",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Maybe\n",
                "web.yml:4: tls_server_config.client_auth_type: unknown client_auth_type \"Maybe\"",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n",
                "web.yml:4: tls_server_config.client_ca_file: client CAs are set without a client auth policy",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  max_version: TLS11\n",
                "web.yml:4: tls_server_config.max_version: TLS11 is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS111\n",
                "web.yml:4: tls_server_config.min_version: unknown TLS version \"TLS111\"",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  curve_preferences: [CurveP522]\n",
                "web.yml:4: tls_server_config.curve_preferences: unknown curve \"CurveP522\"",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  max_version: TLS12\n  cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n",
                "web.yml:6: tls_server_config.cipher_suites: HTTP/2 is on but none of its required suites is listed",
            ),
            (
                "http_server_config:\n  http2: false\ntls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  max_version: TLS12\n  cipher_suites:\n  - TLS_RSA_WITH_AES_128_CBC_SHA\n",
                "tls_server_config.cipher_suites: lists no TLS 1.2 suite this exporter implements",
            ),
            (
                "http_server_config:\n  headers:\n    x-frame-options: deny\n",
                "web.yml:3: http_server_config.headers.x-frame-options: this header cannot be set",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: DENY\n",
                "web.yml:3: http_server_config.headers.X-Frame-Options: invalid value \"DENY\"",
            ),
            (
                "basic_auth_users:\n  slow: $2y$17$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n",
                "web.yml:2: basic_auth_users.slow: the bcrypt hash of user \"slow\" has cost 17, above the highest accepted (16)",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS10\n",
                "web.yml:4: tls_server_config.min_version: TLS10 is not supported",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS13\n  max_version: TLS12\n",
                "tls_server_config.min_version: is higher than max_version",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_INVENTED]\n",
                "web.yml:4: tls_server_config.cipher_suites: unknown cipher suite \"TLS_INVENTED\"",
            ),
            (
                "tls_server_config:\n  cert: \"\"\n  key_file: server.key\n",
                "web.yml:2: tls_server_config.cert_file: missing one of cert or cert_file",
            ),
            (
                "rate_limit:\n  interval: soon\n  burst: 5\n",
                "web.yml:2: rate_limit.interval: invalid duration \"soon\"",
            ),
            (
                "tls_server_config:\n  cert_filе: x\n",
                "web.yml:2: tls_server_config.cert_filе: unknown field",
            ),
            ("basic_auth: {}\n", "unknown field `basic_auth`"),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "web.yml:3: http_server_config.headers.X-Frame-Options: invalid value \"allow\"",
            ),
            (
                "http_server_config:\n  headers:\n    Set-Cookie: a=b\n",
                "http_server_config.headers.Set-Cookie: this header cannot be set",
            ),
            (
                "basic_auth_users:\n  prometheus: plain-text-password\n",
                "web.yml:2: basic_auth_users.prometheus: not a bcrypt hash",
            ),
        ];
        for (yaml, want) in cases {
            let got = error(yaml);
            assert!(
                got.contains(want),
                "for\n{yaml}\nwant an error containing {want:?}\ngot {got:?}"
            );
        }
    }

    #[test]
    fn the_toolkits_good_files_are_read_with_its_meaning() {
        let tls = |extra: &str| {
            let (_dir, result) = setup(&format!(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}"
            ));
            result.expect("valid").tls.expect("TLS is on")
        };
        let t = tls("  client_auth_type: VerifyClientCertIfGiven\n");
        assert!(
            t.client_ca.is_none(),
            "no client CA means the system's roots"
        );
        let t = tls("  client_auth_type: RequireClientCert\n");
        assert_eq!(t.client_auth, ClientAuth::RequireAnyClientCert);
        let t = tls("  min_version: TLS13\n  curve_preferences: [CurveP521]\n");
        assert_eq!(t.curves, vec![Curve::P521]);
        let t = tls(
            "  cipher_suites:\n  - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  - TLS_RSA_WITH_AES_128_CBC_SHA\n",
        );
        assert_eq!(
            t.cipher_suites,
            vec![
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_RSA_WITH_AES_128_CBC_SHA"
            ]
        );
        let t = tls("  client_allowed_sans: [one, two]\n");
        assert_eq!(
            t.client_allowed_sans,
            Some(vec!["one".to_string(), "two".to_string()])
        );
        let (_dir, result) = setup("tls_server_config:\n  cert: |\n    PEM\n  key: |\n    KEY\n");
        let t = result.expect("inline PEM").tls.expect("TLS is on");
        assert_eq!(t.cert.0, Pem::Inline("PEM\n".to_string()));
        assert!(
            !format!("{t:?}").contains("KEY"),
            "an inline key is never printed"
        );
        for plain in [
            "tls_server_config: {}\n",
            "tls_server_config:\n  min_version: TLS13\n",
        ] {
            let (_dir, result) = setup(plain);
            assert!(
                result.expect("valid").tls.is_none(),
                "{plain} means plain HTTP"
            );
        }
        let (_dir, result) = setup("rate_limit:\n  interval: 0\n  burst: 0\n");
        assert_eq!(
            result.expect("valid").rate_limit,
            None,
            "a zero interval is off"
        );
        let (_dir, result) = setup("rate_limit:\n  interval: 1s\n  burst: 3\n");
        assert_eq!(
            result.expect("valid").rate_limit,
            Some(RateLimit {
                interval: Duration::from_secs(1),
                burst: 3
            })
        );
    }

    #[test]
    fn a_bad_password_hash_is_never_repeated_in_the_error() {
        let got = error("basic_auth_users:\n  prometheus: hunter2-not-a-hash\n");
        assert!(!got.contains("hunter2"), "{got}");
    }
}
