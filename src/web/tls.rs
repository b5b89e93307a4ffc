//! TLS for the HTTP server: a rustls configuration built from the web config and rebuilt when the certificate, key
//! or client CA file changes on disk, so a rotated certificate reaches the next connection without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::config::{ClientAuth, TlsSettings, TlsVersion};

/// A TLS set-up that cannot be built. `Display` names the file and what is wrong with it, never its content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file could not be read or holds no usable PEM item.
    #[error("{file}: {message}")]
    File {
        /// The file at fault.
        file: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the combination (for example a key that does not match the certificate).
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The client CA bundle holds no certificate rustls accepts as a trust anchor.
    #[error("{file}: cannot use the client CA certificates: {message}")]
    ClientCa {
        /// The `client_ca_file`.
        file: PathBuf,
        /// Why rustls refused it.
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
    /// Builds the first configuration; an error here stops the start-up with the file named.
    pub fn new(settings: TlsSettings, http2: bool) -> Result<ReloadingTls, TlsError> {
        let alpn = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
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
        Some(&settings.cert_file),
        Some(&settings.key_file),
        settings.client_ca_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|p| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
    .collect()
}

fn file_error(file: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

/// Builds a rustls server configuration from `settings`, with aws-lc-rs, the provider the rest of the tree uses.
pub fn build(settings: &TlsSettings, alpn: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.cert_file)
        .map_err(|e| {
            file_error(
                &settings.cert_file,
                format!("cannot read the certificate: {e}"),
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&settings.cert_file, format!("invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(&settings.cert_file, "holds no PEM certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key_file).map_err(|e| {
        file_error(
            &settings.key_file,
            format!("cannot read a PEM private key: {e}"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        match (settings.min_version, settings.max_version) {
            (TlsVersion::Tls12, TlsVersion::Tls12) => &[&rustls::version::TLS12],
            (TlsVersion::Tls13, _) => &[&rustls::version::TLS13],
            (TlsVersion::Tls12, TlsVersion::Tls13) => {
                &[&rustls::version::TLS13, &rustls::version::TLS12]
            }
        };
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let verifier: Arc<dyn ClientCertVerifier> = match settings.client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                mandatory: settings.client_auth == ClientAuth::RequireAnyClientCert,
                algorithms: provider.signature_verification_algorithms,
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let file = settings
                .client_ca_file
                .as_ref()
                .expect("the web config requires client_ca_file with a verifying client_auth_type");
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(file)
                .map_err(|e| file_error(file, format!("cannot read the client CA bundle: {e}")))?
            {
                let cert =
                    cert.map_err(|e| file_error(file, format!("invalid PEM certificate: {e}")))?;
                roots.add(cert).map_err(|e| TlsError::ClientCa {
                    file: file.clone(),
                    message: e.to_string(),
                })?;
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if settings.client_auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder.build().map_err(|e| TlsError::ClientCa {
                file: file.clone(),
                message: e.to_string(),
            })?
        }
    };
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = alpn.to_vec();
    config.ignore_client_order = settings.prefer_server_cipher_suites;
    Ok(config)
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
