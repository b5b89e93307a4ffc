//! TLS for the HTTP server: a rustls configuration built from the web config with the exporter-toolkit's meaning
//! (client certificates as Go's `crypto/tls` verifies them, `client_allowed_sans`, `cipher_suites`,
//! `curve_preferences`), rebuilt when the certificate, key or client CA file changes on disk, so a rotated
//! certificate reaches the next connection without a restart.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_lc_rs::agreement;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, SharedSecret, SupportedKxGroup, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, NamedGroup, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::config::{ClientAuth, Curve, GO_CIPHER_SUITES, Origin, Pem, TlsSettings, TlsVersion};

/// A TLS set-up that cannot be built. `Display` names the web config file, the line and the key, and what is wrong
/// (never the content of a key).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA could not be read, holds no usable PEM item, or does not fit the others.
    #[error("{origin}: {message}")]
    At {
        /// Where the value is set in the web config.
        origin: Origin,
        /// What is wrong with it.
        message: String,
    },
}

/// When each watched file last changed, as far as `stat` tells: modification time and length.
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// Hands out the current rustls configuration, rebuilding it when a watched file changed since the last build.
pub struct ReloadingTls {
    settings: TlsSettings,
    /// ALPN protocols offered: `h2` only when HTTP/2 is enabled.
    alpn: Vec<Vec<u8>>,
    /// The last configuration built and the file stamps it was built from. A std mutex: it is held only to compare
    /// stamps and swap an `Arc`, never across an await; rebuilding (a few file reads) happens under it so two
    /// handshakes do not rebuild twice.
    current: Mutex<(Stamp, Arc<ServerConfig>)>,
}

impl ReloadingTls {
    /// Builds the first configuration; an error here stops the start-up with the file, line and key named. Cipher
    /// suites that rustls does not implement are named in one warning here, not at every rebuild.
    pub fn new(settings: TlsSettings, http2: bool) -> Result<ReloadingTls, TlsError> {
        let alpn = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let unsupported: Vec<&str> = settings
            .cipher_suites
            .iter()
            .filter(|n| GO_CIPHER_SUITES.contains(&(**n, false)))
            .copied()
            .collect();
        if !unsupported.is_empty() {
            tracing::warn!(
                suites = %unsupported.join(", "),
                "tls_server_config.cipher_suites lists suites rustls does not implement (RSA key exchange or CBC); \
                 they are left out"
            );
        }
        let stamp = stamp(&settings);
        let config = Arc::new(build(&settings, &alpn)?);
        Ok(ReloadingTls {
            settings,
            alpn,
            current: Mutex::new((stamp, config)),
        })
    }

    /// The configuration for a new connection. When a file changed since the last build, it is rebuilt; a rebuild
    /// that fails (a half-written certificate during rotation) keeps serving the previous configuration and logs
    /// why, once per change.
    pub fn config(&self) -> Arc<ServerConfig> {
        let now = stamp(&self.settings);
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.0 != now {
            match build(&self.settings, &self.alpn) {
                Ok(config) => {
                    tracing::info!(
                        "TLS certificate files changed on disk; new connections use them"
                    );
                    *current = (now, Arc::new(config));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TLS files changed but cannot be used; keeping the previous ones");
                    current.0 = now;
                }
            }
        }
        current.1.clone()
    }

    /// Runs the TLS handshake on `stream` with the current configuration.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        tokio_rustls::TlsAcceptor::from(self.config())
            .accept(stream)
            .await
    }
}

fn stamp(settings: &TlsSettings) -> Stamp {
    [
        Some(&settings.cert.0),
        Some(&settings.key.0),
        settings.client_ca.as_ref().map(|c| &c.0),
    ]
    .into_iter()
    .flatten()
    .filter_map(|p| match p {
        Pem::File(p) => Some(p),
        Pem::Inline(_) => None,
    })
    .map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
    .collect()
}

fn at(origin: &Origin, message: impl Into<String>) -> TlsError {
    TlsError::At {
        origin: origin.clone(),
        message: message.into(),
    }
}

/// The PEM text of `pem`, with the file named in errors.
fn read_pem(pem: &Pem, origin: &Origin) -> Result<Vec<u8>, TlsError> {
    match pem {
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        Pem::File(path) => std::fs::read(path)
            .map_err(|e| at(origin, format!("cannot read {}: {e}", path.display()))),
    }
}

/// What to call the source of `pem` in a message: the file, or "the inline PEM".
fn what(pem: &Pem) -> String {
    match pem {
        Pem::File(p) => p.display().to_string(),
        Pem::Inline(_) => "the inline PEM".to_string(),
    }
}

fn certificates(pem: &Pem, origin: &Origin) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read_pem(pem, origin)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            at(
                origin,
                format!("{}: invalid PEM certificate: {e}", what(pem)),
            )
        })?;
    if certs.is_empty() {
        return Err(at(
            origin,
            format!("{} holds no PEM certificate", what(pem)),
        ));
    }
    Ok(certs)
}

/// Builds a rustls server configuration from `settings`, with aws-lc-rs, the provider the rest of the tree uses.
pub fn build(settings: &TlsSettings, alpn: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let (cert_pem, cert_origin) = &settings.cert;
    let (key_pem, key_origin) = &settings.key;
    let certs = certificates(cert_pem, cert_origin)?;
    let key = PrivateKeyDer::from_pem_slice(&read_pem(key_pem, key_origin)?).map_err(|e| {
        at(
            key_origin,
            format!("{}: cannot read a PEM private key: {e}", what(key_pem)),
        )
    })?;
    let provider = Arc::new(provider(settings));
    let versions: &[&rustls::SupportedProtocolVersion] =
        match (settings.min_version, settings.max_version) {
            (TlsVersion::Tls12, TlsVersion::Tls12) => &[&rustls::version::TLS12],
            (TlsVersion::Tls13, _) => &[&rustls::version::TLS13],
            (TlsVersion::Tls12, TlsVersion::Tls13) => {
                &[&rustls::version::TLS13, &rustls::version::TLS12]
            }
        };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| {
            at(
                &settings.at,
                format!("the versions, cipher suites and curves cannot be used together: {e}"),
            )
        })?;
    let verifier = client_verifier(settings, &provider)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| {
            at(
                key_origin,
                format!("{}: cannot use the private key: {e}", what(key_pem)),
            )
        })?;
    let certified = rustls::sign::CertifiedKey::new(certs.clone(), signing_key);
    // The check `with_single_cert` makes, done here so the message names both keys instead of `KeyMismatch`.
    if let Err(e) = certified.keys_match() {
        let reason = match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                "the private key does not belong to the certificate".to_string()
            }
            other => other.to_string(),
        };
        return Err(at(
            key_origin,
            format!(
                "{}: {reason} of {} ({cert_origin})",
                what(key_pem),
                what(cert_pem)
            ),
        ));
    }
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| at(cert_origin, e.to_string()))?;
    config.alpn_protocols = alpn.to_vec();
    config.ignore_client_order = settings.prefer_server_cipher_suites;
    Ok(config)
}

/// aws-lc-rs with the cipher suites and key-exchange groups the settings allow, in their order.
fn provider(settings: &TlsSettings) -> CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !settings.cipher_suites.is_empty() {
        // Go ignores `cipher_suites` for TLS 1.3, so every TLS 1.3 suite stays; TLS 1.2 suites follow the list.
        let all = rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES;
        let name = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
        let mut suites: Vec<_> = all
            .iter()
            .filter(|s| s.tls13().is_some())
            .copied()
            .collect();
        for wanted in &settings.cipher_suites {
            suites.extend(
                all.iter()
                    .filter(|s| s.tls13().is_none() && name(s) == *wanted)
                    .copied(),
            );
        }
        provider.cipher_suites = suites;
    }
    if !settings.curves.is_empty() {
        use rustls::crypto::aws_lc_rs::kx_group;
        provider.kx_groups = settings
            .curves
            .iter()
            .map(|c| match c {
                Curve::P256 => kx_group::SECP256R1,
                Curve::P384 => kx_group::SECP384R1,
                Curve::P521 => SECP521R1,
                Curve::X25519 => kx_group::X25519,
            })
            .collect();
    }
    provider
}

/// The client certificate policy of `settings`.
fn client_verifier(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let algorithms = provider.signature_verification_algorithms;
    let sans = settings.client_allowed_sans.clone();
    let inner: Arc<dyn ClientCertVerifier> = match settings.client_auth {
        ClientAuth::NoClientCert => return Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: settings.client_auth == ClientAuth::RequireAnyClientCert,
                algorithms,
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let mut roots = RootCertStore::empty();
            let listed = match &settings.client_ca {
                Some((pem, origin)) => {
                    let certs = certificates(pem, origin)?;
                    for cert in &certs {
                        roots.add(cert.clone()).map_err(|e| {
                            at(
                                origin,
                                format!("{}: cannot use a client CA: {e}", what(pem)),
                            )
                        })?;
                    }
                    certs
                }
                None => {
                    // Go verifies against the system's roots when no client CA is given.
                    let found = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(found.certs);
                    Vec::new()
                }
            };
            let roots = Arc::new(roots);
            let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let builder = if settings.client_auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            let (webpki, require_chain) = match builder.build() {
                Ok(v) => (v, true),
                // No system roots at all: nothing can be verified, so only self-listed certificates could pass;
                // with none listed, every certificate is refused (as Go refuses them with an empty pool).
                Err(_) => (
                    Arc::new(AnyClientCert {
                        mandatory: settings.client_auth == ClientAuth::RequireAndVerifyClientCert,
                        algorithms,
                    }) as Arc<dyn ClientCertVerifier>,
                    false,
                ),
            };
            Arc::new(GoClientCert {
                webpki,
                listed,
                require_chain,
            })
        }
    };
    Ok(Arc::new(AllowedSans { inner, sans }))
}

/// Go's client certificate check around webpki's: a certificate that is itself listed among the client CAs is
/// accepted whatever its basic constraints (Go's `x509.Verify` finds it in the pool and stops there; webpki refuses
/// a `CA:TRUE` certificate as an end entity). Its validity period is still checked. That is the self-signed
/// certificate `openssl req -x509` makes, listed as its own `client_ca_file`.
#[derive(Debug)]
struct GoClientCert {
    webpki: Arc<dyn ClientCertVerifier>,
    /// The client CA certificates, as DER, to recognise a listed certificate.
    listed: Vec<CertificateDer<'static>>,
    /// False only when `webpki` cannot verify anything (no roots): then only listed certificates pass.
    require_chain: bool,
}

impl ClientCertVerifier for GoClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self
            .listed
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            let valid = x509_parser::parse_x509_certificate(end_entity)
                .ok()
                .and_then(|(_, cert)| {
                    let at = x509_parser::time::ASN1Time::from_timestamp(
                        i64::try_from(now.as_secs()).ok()?,
                    )
                    .ok()?;
                    Some(cert.validity().is_valid_at(at))
                })
                .unwrap_or(false);
            return if valid {
                Ok(ClientCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Expired,
                ))
            };
        }
        if !self.require_chain {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ));
        }
        self.webpki
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The toolkit's `client_allowed_sans`: after the policy's own check, the client certificate must carry one of the
/// listed DNS names, e-mail addresses, IP addresses or URIs, compared exactly as Go prints them. Without the key,
/// the inner policy alone decides.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Option<Vec<String>>,
}

/// The subject alternative names of `cert` as Go's `x509.Certificate` lists them (DNS names, e-mail addresses, IP
/// addresses, URIs); empty when the certificate cannot be parsed.
pub fn subject_alt_names(cert: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert) else {
        return Vec::new();
    };
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                Some(s.to_string())
            }
            GeneralName::IPAddress(b) => match b.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        // With a SAN list, a client without a certificate cannot match it (the toolkit fails such a handshake).
        self.sans.is_some() || self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let Some(allowed) = &self.sans else {
            return Ok(verified);
        };
        if subject_alt_names(end_entity)
            .iter()
            .any(|san| allowed.contains(san))
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Go's `RequestClientCert` and `RequireAnyClientCert`: a client certificate is asked for (and, for the second,
/// required) but not checked against any CA. The handshake signature is still verified, so the client does hold the
/// key of the certificate it sent. The toolkit documents both as insecure; they exist for parity with it.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// ECDHE on secp521r1 (the toolkit's `CurveP521`). Written here because rustls's aws-lc-rs provider offers only
/// X25519, P-256, P-384 and the ML-KEM hybrids; aws-lc-rs itself has P-521 agreement, which this wraps exactly as
/// rustls wraps P-384 (ephemeral key, uncompressed point, shared secret).
pub static SECP521R1: &dyn SupportedKxGroup = &P521;

#[derive(Debug)]
struct P521;

impl SupportedKxGroup for P521 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P521, &rng)
            .map_err(|_| rustls::Error::FailedToGetRandomBytes)?;
        let public = private
            .compute_public_key()
            .map_err(|_| rustls::Error::FailedToGetRandomBytes)?;
        Ok(Box::new(P521Exchange { private, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp521r1
    }
}

struct P521Exchange {
    private: agreement::EphemeralPrivateKey,
    public: agreement::PublicKey,
}

impl ActiveKeyExchange for P521Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        // TLS allows only the uncompressed point form (RFC 8446, 4.2.8.2); aws-lc-rs would accept others.
        if peer.first() != Some(&0x04) {
            return Err(rustls::PeerMisbehaved::InvalidKeyShare.into());
        }
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P521, peer);
        agreement::agree_ephemeral(
            self.private,
            peer,
            rustls::Error::from(rustls::PeerMisbehaved::InvalidKeyShare),
            |secret| Ok(SharedSecret::from(secret)),
        )
    }

    fn pub_key(&self) -> &[u8] {
        self.public.as_ref()
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp521r1
    }
}
