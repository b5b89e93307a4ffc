//! The web config file (`--web.config.file`), in the format Prometheus, Alertmanager and node_exporter read
//! (prometheus/exporter-toolkit `docs/web-configuration.md`), so one file and one habit serve every component.
//!
//! Supported: `tls_server_config` (`cert_file`, `key_file`, `client_ca_file`, `client_auth_type`, `min_version`,
//! `max_version`, `prefer_server_cipher_suites`), `http_server_config` (`http2`, `headers`) and `basic_auth_users`.
//! Keys the toolkit knows but this exporter does not implement (inline `cert`/`key`/`client_ca`, `cipher_suites`,
//! `curve_preferences`, `client_allowed_sans`, `rate_limit`) are refused by name rather than ignored, so a file never
//! seems to protect more than it does. Every error names the file, the line and the key; no error repeats a
//! password hash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use crate::config::parse::parse_yaml;
use crate::config::{ConfigError, Located, resolve_path};

/// A validated web config. [`WebConfig::default`] is an empty file's meaning: plain HTTP, no credentials, no extra
/// headers, HTTP/2 offered (the toolkit's default).
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where it was read from, for messages.
    pub path: PathBuf,
    /// TLS, when `tls_server_config` is present; plain HTTP otherwise.
    pub tls: Option<TlsSettings>,
    /// Whether HTTP/2 is offered (through ALPN, so only with TLS). The toolkit's default is on.
    pub http2: bool,
    /// Response headers the user adds, validated as the toolkit validates them.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// User name → bcrypt hash. Empty means no basic auth. Kept out of `Debug` output by [`Users`].
    pub users: Users,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig {
            path: PathBuf::new(),
            tls: None,
            http2: true,
            headers: Vec::new(),
            users: Users::default(),
        }
    }
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

/// The TLS part of a web config.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain, re-read when it changes on disk.
    pub cert_file: PathBuf,
    /// PEM private key, re-read when it changes on disk.
    pub key_file: PathBuf,
    /// PEM bundle of CAs that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// What the server asks of a client's certificate.
    pub client_auth: ClientAuth,
    /// The lowest TLS version accepted.
    pub min_version: TlsVersion,
    /// The highest TLS version accepted.
    pub max_version: TlsVersion,
    /// Whether the server's cipher suite order wins over the client's (the toolkit's default: yes).
    pub prefer_server_cipher_suites: bool,
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
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        (
            "VerifyClientCertIfGiven",
            ClientAuth::VerifyClientCertIfGiven,
        ),
        (
            "RequireAndVerifyClientCert",
            ClientAuth::RequireAndVerifyClientCert,
        ),
    ];

    /// Returns true if and only if the policy checks certificates against `client_ca_file`.
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

/// The headers `http_server_config.headers` may set, and the values the toolkit allows for some of them.
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
    rate_limit: Option<Spanned<IgnoredAny>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    client_ca_file: Option<Spanned<String>>,
    client_auth_type: Option<Spanned<String>>,
    min_version: Option<Spanned<String>>,
    max_version: Option<Spanned<String>>,
    prefer_server_cipher_suites: Option<bool>,
    // Known to the toolkit, not implemented here: refused by name below.
    cert: Option<Spanned<IgnoredAny>>,
    key: Option<Spanned<IgnoredAny>>,
    client_ca: Option<Spanned<IgnoredAny>>,
    cipher_suites: Option<Spanned<IgnoredAny>>,
    curve_preferences: Option<Spanned<IgnoredAny>>,
    client_allowed_sans: Option<Spanned<IgnoredAny>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, Spanned<String>>>,
}

impl WebConfig {
    /// Reads and validates the web config at `path`. Relative file names inside it are taken relative to its folder.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        WebConfig::parse(&text, path)
    }

    /// Validates `text` as if read from `file`. Certificate files are checked to exist here and loaded by
    /// [`crate::web::tls`], which reports their content errors with the same file names.
    pub fn parse(text: &str, file: &Path) -> Result<WebConfig, ConfigError> {
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
            return Err(unsupported(&ctx, r.referenced.line(), "rate_limit"));
        }
        if let Some(tls) = &raw.tls_server_config {
            out.tls = Some(tls_settings(&ctx, tls)?);
        }
        if let Some(http) = &raw.http_server_config {
            if let Some(h2) = http.value.http2 {
                out.http2 = h2;
            }
            for (name, value) in http.value.headers.iter().flatten() {
                out.headers.push(header(&ctx, name, value)?);
            }
        }
        if let Some(users) = &raw.basic_auth_users {
            for (user, hash) in &users.value {
                let key = format!("basic_auth_users.{user}");
                if user.is_empty() || user.contains(':') {
                    return Err(ctx.at(
                        hash.referenced.line(),
                        key,
                        "a user name must be non-empty and must not contain ':' (basic auth splits on it)",
                    ));
                }
                // The hash is a secret: say what is wrong with it, never what it is.
                if let Err(e) = hash.value.trim().parse::<bcrypt::HashParts>() {
                    return Err(ctx.at(
                        hash.referenced.line(),
                        key,
                        format!(
                            "not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
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

fn unsupported(ctx: &Located<'_>, line: u64, key: &str) -> ConfigError {
    ctx.at(
        line,
        key,
        "is part of the exporter-toolkit format but not supported by this exporter; remove it",
    )
}

fn tls_settings(ctx: &Located<'_>, raw: &Spanned<RawTls>) -> Result<TlsSettings, ConfigError> {
    let line = raw.referenced.line();
    let t = &raw.value;
    for (name, present) in [
        ("cert", t.cert.as_ref().map(|v| v.referenced.line())),
        ("key", t.key.as_ref().map(|v| v.referenced.line())),
        (
            "client_ca",
            t.client_ca.as_ref().map(|v| v.referenced.line()),
        ),
        (
            "cipher_suites",
            t.cipher_suites.as_ref().map(|v| v.referenced.line()),
        ),
        (
            "curve_preferences",
            t.curve_preferences.as_ref().map(|v| v.referenced.line()),
        ),
        (
            "client_allowed_sans",
            t.client_allowed_sans.as_ref().map(|v| v.referenced.line()),
        ),
    ] {
        if let Some(at) = present {
            let hint = match name {
                "cert" | "key" | "client_ca" => format!(
                    "inline PEM is not supported by this exporter; put it in a file and use {name}_file"
                ),
                _ => "is part of the exporter-toolkit format but not supported by this exporter; remove it \
                      (rustls chooses safe cipher suites and curves itself)"
                    .to_string(),
            };
            return Err(ctx.at(at, format!("tls_server_config.{name}"), hint));
        }
    }
    let file = |v: &Option<Spanned<String>>, key: &str| -> Result<Option<PathBuf>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let written = v.value.trim();
        if written.is_empty() {
            return Err(ctx.at(
                v.referenced.line(),
                format!("tls_server_config.{key}"),
                "must not be empty",
            ));
        }
        let path = resolve_path(ctx.file, Path::new(written));
        if !path.is_file() {
            return Err(ctx.at(
                v.referenced.line(),
                format!("tls_server_config.{key}"),
                format!("{} is not a readable file", path.display()),
            ));
        }
        Ok(Some(path))
    };
    let cert_file = file(&t.cert_file, "cert_file")?.ok_or_else(|| {
        ctx.at(
            line,
            "tls_server_config.cert_file",
            "is required with tls_server_config",
        )
    })?;
    let key_file = file(&t.key_file, "key_file")?.ok_or_else(|| {
        ctx.at(
            line,
            "tls_server_config.key_file",
            "is required with tls_server_config",
        )
    })?;
    let client_ca_file = file(&t.client_ca_file, "client_ca_file")?;
    let client_auth = match &t.client_auth_type {
        None => ClientAuth::NoClientCert,
        Some(v) => ClientAuth::NAMES
            .iter()
            .find(|(n, _)| *n == v.value.trim())
            .map(|(_, c)| *c)
            .ok_or_else(|| {
                let names: Vec<&str> = ClientAuth::NAMES.iter().map(|(n, _)| *n).collect();
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
    let auth_line = t
        .client_auth_type
        .as_ref()
        .map_or(line, |v| v.referenced.line());
    if client_auth.verifies() && client_ca_file.is_none() {
        return Err(ctx.at(
            auth_line,
            "tls_server_config.client_ca_file",
            "is required when client_auth_type verifies client certificates",
        ));
    }
    if let Some(ca) = &t.client_ca_file
        && !client_auth.verifies()
    {
        return Err(ctx.at(
            ca.referenced.line(),
            "tls_server_config.client_ca_file",
            "is set but client_auth_type does not verify client certificates; set client_auth_type to \
             RequireAndVerifyClientCert (or VerifyClientCertIfGiven)",
        ));
    }
    let version =
        |v: &Option<Spanned<String>>, key: &str, default| -> Result<TlsVersion, ConfigError> {
            let Some(v) = v else { return Ok(default) };
            match v.value.trim() {
                "TLS12" => Ok(TlsVersion::Tls12),
                "TLS13" => Ok(TlsVersion::Tls13),
                "TLS10" | "TLS11" => Err(ctx.at(
                    v.referenced.line(),
                    format!("tls_server_config.{key}"),
                    format!(
                        "{} is not supported: this exporter speaks TLS12 and TLS13 only",
                        v.value.trim()
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
    Ok(TlsSettings {
        cert_file,
        key_file,
        client_ca_file,
        client_auth,
        min_version,
        max_version,
        prefer_server_cipher_suites: t.prefer_server_cipher_suites.unwrap_or(true),
    })
}

fn header(
    ctx: &Located<'_>,
    name: &str,
    value: &Spanned<String>,
) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let key = format!("http_server_config.headers.{name}");
    let line = value.referenced.line();
    let Some((canonical, allowed)) = HEADERS.iter().find(|(h, _)| h.eq_ignore_ascii_case(name))
    else {
        let names: Vec<&str> = HEADERS.iter().map(|(h, _)| *h).collect();
        return Err(ctx.at(
            line,
            key,
            format!("this header cannot be set; allowed: {}", names.join(", ")),
        ));
    };
    let v = value.value.trim();
    if let Some(allowed) = allowed
        && !allowed.iter().any(|a| a.eq_ignore_ascii_case(v))
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
        assert_eq!(tls.cert_file, dir.path().join("server.crt"));
        assert_eq!(tls.client_ca_file, Some(dir.path().join("ca.crt")));
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
                "web.yml:2: tls_server_config.key_file: is required",
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
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
                "tls_server_config.client_ca_file: is required when client_auth_type verifies",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n",
                "web.yml:4: tls_server_config.client_ca_file: is set but client_auth_type does not verify",
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
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                "web.yml:4: tls_server_config.cipher_suites: is part of the exporter-toolkit format but not supported",
            ),
            (
                "tls_server_config:\n  cert: inline\n  key_file: server.key\n",
                "tls_server_config.cert: inline PEM is not supported by this exporter; put it in a file and use cert_file",
            ),
            (
                "rate_limit:\n  interval: 1s\n  burst: 5\n",
                "rate_limit: is part of the exporter-toolkit format",
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
    fn a_bad_password_hash_is_never_repeated_in_the_error() {
        let got = error("basic_auth_users:\n  prometheus: hunter2-not-a-hash\n");
        assert!(!got.contains("hunter2"), "{got}");
    }
}
