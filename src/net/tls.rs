//! Mutual TLS from a cluster CA.
//!
//! `shoal cluster init --dir DIR` writes a CA certificate (`ca.pem`) and its
//! key (`ca.key`, mode 0600). A node or client given that directory issues
//! itself a fresh leaf certificate signed by the CA, valid for both server
//! and client authentication. Every connection verifies both sides against
//! the CA alone: a peer or client whose certificate was not signed by this
//! cluster's CA cannot complete a handshake, so it can neither join nor read
//! or write. The ALPN protocol name carries the wire protocol version, so a
//! peer speaking another version is refused at the handshake too.

use crate::proto::message::PROTOCOL_VERSION;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::rustls;
use quinn::rustls::pki_types::pem::PemObject;
use quinn::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The name every leaf certificate carries and every client verifies.
pub const SERVER_NAME: &str = "shoal";
const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";

/// The ALPN name of the protocol version this build speaks.
pub fn alpn() -> Vec<u8> {
    alpn_of(PROTOCOL_VERSION)
}

fn alpn_of(version: u16) -> Vec<u8> {
    format!("shoal/{version}").into_bytes()
}

/// A cluster directory or certificate problem. Nothing was started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The cluster directory could not be read or written.
    #[error("cluster directory {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `cluster init` would overwrite an existing CA.
    #[error("{path} already holds a cluster CA; refusing to overwrite it")]
    AlreadyInitialized {
        /// The CA certificate found.
        path: PathBuf,
    },
    /// Generating, parsing or signing a certificate failed.
    #[error("certificate: {source}")]
    Certificate {
        /// rcgen's error.
        #[from]
        source: rcgen::Error,
    },
    /// The TLS configuration was refused.
    #[error("TLS configuration: {source}")]
    Rustls {
        /// rustls' error.
        #[from]
        source: rustls::Error,
    },
    /// The client verifier could not be built from the CA.
    #[error("TLS client verifier: {reason}")]
    Verifier {
        /// What went wrong.
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a cluster CA in `dir` (created if missing). Refuses to replace
/// an existing one: that would lock every node out of the cluster.
pub fn init_cluster_dir(dir: &Path) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    if cert_path.exists() || key_path.exists() {
        return Err(TlsError::AlreadyInitialized { path: cert_path });
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let cluster_id: u64 = rand::random();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("shoal cluster CA {cluster_id:016x}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem()).map_err(io_error(&cert_path))?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))
}

/// A leaf certificate signed by the cluster CA, with the CA to verify
/// others against.
#[derive(Clone, Debug)]
pub struct Credentials {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    /// The leaf's private key, PKCS#8 DER.
    key: Vec<u8>,
}

impl Credentials {
    /// Loads the cluster CA from `dir` and issues a fresh leaf certificate.
    pub fn from_cluster_dir(dir: &Path) -> Result<Credentials, TlsError> {
        Credentials::issue(dir, None)
    }

    /// Like [`Credentials::from_cluster_dir`], but the leaf is valid only
    /// from `not_before` to `not_after` (year, month, day): for checking
    /// that an expired certificate is refused.
    pub fn from_cluster_dir_valid_between(
        dir: &Path,
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> Result<Credentials, TlsError> {
        Credentials::issue(dir, Some((not_before, not_after)))
    }

    #[allow(clippy::type_complexity)]
    fn issue(dir: &Path, validity: Option<((i32, u8, u8), (i32, u8, u8))>) -> Result<Credentials, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let ca_pem = std::fs::read_to_string(&cert_path).map_err(io_error(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io_error(&key_path))?;
        let ca_key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|_| TlsError::Verifier {
            reason: format!("{} is not a PEM certificate", cert_path.display()),
        })?;
        let leaf_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![SERVER_NAME.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, SERVER_NAME);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if let Some(((y0, m0, d0), (y1, m1, d1))) = validity {
            params.not_before = rcgen::date_time_ymd(y0, m0, d0);
            params.not_after = rcgen::date_time_ymd(y1, m1, d1);
        }
        let leaf = params.signed_by(&leaf_key, &issuer)?;
        Ok(Credentials {
            ca,
            leaf: leaf.der().clone(),
            key: leaf_key.serialize_der(),
        })
    }

    fn roots(&self) -> Result<Arc<rustls::RootCertStore>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone())?;
        Ok(Arc::new(roots))
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }

    /// A QUIC server config that demands a client certificate from the CA.
    pub fn server_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<quinn::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
                .build()
                .map_err(|e| TlsError::Verifier {
                    reason: e.to_string(),
                })?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.leaf.clone()], self.key())?;
        tls.alpn_protocols = vec![alpn()];
        let crypto = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Verifier {
            reason: e.to_string(),
        })?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport);
        Ok(config)
    }

    /// A QUIC client config that presents our leaf and trusts only the CA.
    pub fn client_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<quinn::ClientConfig, TlsError> {
        self.client_config_speaking(transport, PROTOCOL_VERSION)
    }

    /// [`Credentials::client_config`] announcing protocol `version` (a
    /// node refuses any version but its own at the handshake).
    pub fn client_config_speaking(
        &self,
        transport: Arc<quinn::TransportConfig>,
        version: u16,
    ) -> Result<quinn::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(vec![self.leaf.clone()], self.key())?;
        tls.alpn_protocols = vec![alpn_of(version)];
        let crypto = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Verifier {
            reason: e.to_string(),
        })?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport);
        Ok(config)
    }
}

/// QUIC transport settings shared by nodes and clients.
pub fn transport_config(max_streams: u32) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(max_streams.into())
        .max_concurrent_uni_streams(64u32.into())
        .keep_alive_interval(Some(Duration::from_secs(1)))
        .max_idle_timeout(Some(
            Duration::from_secs(5)
                .try_into()
                .expect("5 s is a valid idle timeout"),
        ))
        .datagram_receive_buffer_size(Some(1024 * 1024));
    Arc::new(transport)
}
