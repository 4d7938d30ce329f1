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
    KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The name every leaf certificate carries and every client verifies.
pub const SERVER_NAME: &str = "shoal";
const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
/// An issued certificate and its key, in a directory made by
/// [`issue_to_dir`] (with the CA certificate, and without its key).
const LEAF_CERT_FILE: &str = "cert.pem";
const LEAF_KEY_FILE: &str = "key.pem";
/// The SAN URI that carries a certificate's role: `shoal:role:<role>`.
const ROLE_URI_PREFIX: &str = "shoal:role:";

/// What a certificate's holder may do, written into the certificate (a SAN
/// URI) so that every node can read it without asking anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// A node: peer traffic, and other nodes' status.
    Node,
    /// An operator: leave, remove, status, and everything `readwrite` may.
    Admin,
    /// An application: get, put, delete, list.
    ReadWrite,
    /// A reader: get, list, status.
    ReadOnly,
}

impl Role {
    /// The name used on the command line and in the certificate.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Admin => "admin",
            Role::ReadWrite => "readwrite",
            Role::ReadOnly => "readonly",
        }
    }
}

impl Role {
    /// The role a certificate (DER) carries in its SAN URI, if any: `None`
    /// for a certificate without one (issued by a holder of the CA key for
    /// itself, in development) or one that cannot be read. A role is only
    /// read from the SAN, never from names a requester chose.
    pub fn of_certificate(der: &[u8]) -> Option<Role> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let names = cert.subject_alternative_name().ok()??;
        names.value.general_names.iter().find_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(ROLE_URI_PREFIX)?.parse().ok(),
            _ => None,
        })
    }

    /// The role of the certificate the other end of `connection` presented
    /// (see [`Role::of_certificate`]).
    pub fn of_connection(connection: &quinn::Connection) -> Option<Role> {
        let chain = connection
            .peer_identity()?
            .downcast::<Vec<CertificateDer<'static>>>()
            .ok()?;
        chain.first().and_then(|leaf| Role::of_certificate(leaf))
    }

    /// Whether the other end of `connection` is a node: its certificate
    /// has the `node` role, or no role (development). Clients and peers
    /// talk only to nodes, so a client certificate cannot pose as one.
    pub fn is_node(connection: &quinn::Connection) -> bool {
        matches!(Role::of_connection(connection), None | Some(Role::Node))
    }

    /// Whether this role may send `request`. The cluster's own records
    /// (keys under [`crate::proto::SYSTEM_KEY_PREFIX`], such as the
    /// revocation list) are for admins only.
    pub fn allows(self, request: &crate::proto::Request) -> bool {
        use crate::proto::{AdminRequest, ClientRequest, Request, is_system_key};
        match (self, request) {
            // What nodes gossip anyway: a node's HTTP status page gathers
            // its peers' reports with its own certificate.
            (Role::Node, Request::Admin(AdminRequest::Status)) => true,
            (Role::Node, _) => false,
            (Role::Admin, _) => true,
            (_, Request::Data(data)) if is_system_key(data.key()) => false,
            (_, Request::List(list)) if is_system_key(&list.start) => false,
            (_, Request::Watch(watch)) if is_system_key(&watch.key) => false,
            (Role::ReadWrite | Role::ReadOnly, Request::Watch(_)) => true,
            (Role::ReadWrite, Request::Data(_)) => true,
            (Role::ReadOnly, Request::Data(ClientRequest::Get { .. })) => true,
            (Role::ReadWrite | Role::ReadOnly, Request::List(_)) => true,
            (Role::ReadWrite | Role::ReadOnly, Request::Admin(AdminRequest::Status)) => true,
            _ => false,
        }
    }

    /// The least role that may send `request`.
    pub fn needed_for(request: &crate::proto::Request) -> Role {
        [Role::ReadOnly, Role::ReadWrite, Role::Admin]
            .into_iter()
            .find(|role| role.allows(request))
            .unwrap_or(Role::Admin)
    }
}

/// What a node needs to know of the certificate at the other end of a
/// connection: read once, after the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate {
    /// Its role (see [`Role::of_certificate`]).
    pub role: Option<Role>,
    /// Its serial number, lowercase hex without separators (as
    /// `shoal cluster issue-*` prints it and `shoal cluster revoke` takes it).
    pub serial: String,
    /// When it expires, seconds since the Unix epoch.
    pub not_after: i64,
}

impl PeerCertificate {
    /// Reads a certificate (DER); `None` if it cannot be parsed.
    pub fn of_certificate(der: &[u8]) -> Option<PeerCertificate> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(PeerCertificate {
            role: Role::of_certificate(der),
            serial: hex(cert.raw_serial()),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// The certificate the other end of `connection` presented.
    pub fn of_connection(connection: &quinn::Connection) -> Option<PeerCertificate> {
        let chain = connection
            .peer_identity()?
            .downcast::<Vec<CertificateDer<'static>>>()
            .ok()?;
        chain
            .first()
            .and_then(|leaf| PeerCertificate::of_certificate(leaf))
    }

    /// The day it expires, `YYYY-MM-DD` (UTC).
    pub fn expiry_date(&self) -> String {
        let (year, month, day) = civil_date(self.not_after.div_euclid(86_400));
        format!("{year:04}-{month:02}-{day:02}")
    }

    /// Reads the certificate in a PEM file (`cert.pem` of an issued
    /// directory).
    pub fn of_pem_file(path: &Path) -> Result<PeerCertificate, TlsError> {
        let der = CertificateDer::from_pem_file(path).map_err(|e| TlsError::Verifier {
            reason: format!("{}: {e}", path.display()),
        })?;
        PeerCertificate::of_certificate(&der).ok_or_else(|| TlsError::Verifier {
            reason: format!("{}: not an X.509 certificate", path.display()),
        })
    }
}

/// `bytes` as lowercase hex.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A certificate serial as the command line may give it (hex, with or
/// without `:` separators and a `0x` prefix, any case) in the form
/// [`PeerCertificate::serial`] has; `None` if it is not hex.
pub fn normalize_serial(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    let digits: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let valid = !digits.is_empty() && digits.len() <= 64 && digits.chars().all(|c| c.is_ascii_hexdigit());
    // DER serials are whole bytes; a leading zero may have been dropped.
    valid.then(|| {
        if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        }
    })
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        [Role::Node, Role::Admin, Role::ReadWrite, Role::ReadOnly]
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not a role: node, admin, readwrite or readonly"))
    }
}

/// The ALPN name of the protocol version this build speaks.
pub fn alpn() -> Vec<u8> {
    alpn_of(PROTOCOL_VERSION)
}

/// The application close code of a connection refused because its peer
/// speaks an older protocol; the close reason says which.
pub const CLOSE_PROTOCOL: u32 = 0x5e2;

/// The protocol a connection's peer announced, when it is older than this
/// build's: the node accepts such a handshake only to tell the peer, in
/// the close reason, why it cannot serve it (instead of a bare TLS alert).
pub fn older_protocol(connection: &quinn::Connection) -> Option<u16> {
    let data = connection.handshake_data()?;
    let data = data.downcast::<quinn::crypto::rustls::HandshakeData>().ok()?;
    let name = data.protocol?;
    let version = std::str::from_utf8(name.strip_prefix(b"shoal/")?)
        .ok()?
        .parse::<u16>()
        .ok()?;
    (version < PROTOCOL_VERSION).then_some(version)
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

/// Issues a certificate for `role` (named `name`, valid from yesterday for
/// `valid_for`) signed by the CA in `cluster_dir`, and writes it to `out`
/// with its key and the CA certificate, but not the CA key: a node or
/// client started from `out` can prove who it is and check its peers, and
/// cannot issue certificates. Refuses a directory that already holds one.
/// Returns what nodes will read of the certificate (its serial, to revoke
/// it by, and its expiry).
pub fn issue_to_dir(
    cluster_dir: &Path,
    out: &Path,
    role: Role,
    name: &str,
    valid_for: Duration,
) -> Result<PeerCertificate, TlsError> {
    let cert_path = out.join(LEAF_CERT_FILE);
    if cert_path.exists() || out.join(CA_KEY_FILE).exists() {
        return Err(TlsError::AlreadyInitialized { path: cert_path });
    }
    let (ca_pem, issuer) = load_issuer(cluster_dir)?;
    let days = (valid_for.as_secs() / 86_400).max(1);
    let today = days_since_epoch();
    let span = (civil_date(today - 1), civil_date(today + days as i64));
    let (leaf, key) = sign_leaf(&issuer, Some(role), name, Some(span))?;
    std::fs::create_dir_all(out).map_err(io_error(out))?;
    let ca_out = out.join(CA_CERT_FILE);
    std::fs::write(&ca_out, &ca_pem).map_err(io_error(&ca_out))?;
    write_private(&out.join(LEAF_KEY_FILE), key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, leaf.pem()).map_err(io_error(&cert_path))?;
    PeerCertificate::of_certificate(leaf.der()).ok_or_else(|| TlsError::Verifier {
        reason: "the issued certificate cannot be read back".to_string(),
    })
}

/// The CA certificate (PEM) and an issuer for it, from `dir`.
fn load_issuer(dir: &Path) -> Result<(String, Issuer<'static, KeyPair>), TlsError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let ca_pem = std::fs::read_to_string(&cert_path).map_err(io_error(&cert_path))?;
    let key_pem = std::fs::read_to_string(&key_path).map_err(io_error(&key_path))?;
    let ca_key = KeyPair::from_pem(&key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    Ok((ca_pem, issuer))
}

/// A (year, month, day) span of validity.
type Span = ((i32, u8, u8), (i32, u8, u8));

/// A leaf certificate for `role` (none: the development certificate a
/// holder of the CA key issues itself), valid over `span` (`None`:
/// rcgen's default).
fn sign_leaf(
    issuer: &Issuer<'static, KeyPair>,
    role: Option<Role>,
    name: &str,
    span: Option<Span>,
) -> Result<(rcgen::Certificate, KeyPair), TlsError> {
    let leaf_key = KeyPair::generate()?;
    // `shoal` is the name QUIC peers check; the loopback names let HTTPS
    // clients such as curl check a node on this machine.
    let names = [SERVER_NAME, "localhost", "127.0.0.1", "::1"].map(String::from);
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, name);
    if let Some(role) = role {
        let uri = format!("{ROLE_URI_PREFIX}{role}");
        params.subject_alt_names.push(SanType::URI(uri.try_into()?));
    }
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if let Some(((y0, m0, d0), (y1, m1, d1))) = span {
        params.not_before = rcgen::date_time_ymd(y0, m0, d0);
        params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    }
    let leaf = params.signed_by(&leaf_key, issuer)?;
    Ok((leaf, leaf_key))
}

/// Days since 1970-01-01 by the system clock.
fn days_since_epoch() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs / 86_400) as i64
}

/// The (year, month, day) of a day counted from 1970-01-01 (the proleptic
/// Gregorian calendar's civil-from-days).
fn civil_date(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month, day)
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
    /// Credentials from `dir`: the certificate and key issued into it by
    /// [`issue_to_dir`] (`shoal cluster issue-node` / `issue-client`), or,
    /// in a cluster directory that holds the CA key (local development, the
    /// demo), a fresh certificate issued with it.
    pub fn from_cluster_dir(dir: &Path) -> Result<Credentials, TlsError> {
        if dir.join(LEAF_CERT_FILE).exists() {
            return Credentials::load_issued(dir);
        }
        Credentials::issue(dir, None)
    }

    /// Whether `dir` holds the CA key (anyone given it can issue
    /// certificates).
    pub fn dir_holds_ca_key(dir: &Path) -> bool {
        dir.join(CA_KEY_FILE).exists()
    }

    fn load_issued(dir: &Path) -> Result<Credentials, TlsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path)
                .map_err(io_error(&path))
                .map(|bytes| (path, bytes))
        };
        let not_pem = |path: &Path| TlsError::Verifier {
            reason: format!("{} is not a PEM certificate or key", path.display()),
        };
        let (ca_path, ca) = read(CA_CERT_FILE)?;
        let (leaf_path, leaf) = read(LEAF_CERT_FILE)?;
        let (key_path, key) = read(LEAF_KEY_FILE)?;
        Ok(Credentials {
            ca: CertificateDer::from_pem_slice(&ca).map_err(|_| not_pem(&ca_path))?,
            leaf: CertificateDer::from_pem_slice(&leaf).map_err(|_| not_pem(&leaf_path))?,
            key: PrivatePkcs8KeyDer::from_pem_slice(&key)
                .map_err(|_| not_pem(&key_path))?
                .secret_pkcs8_der()
                .to_vec(),
        })
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

    fn issue(dir: &Path, validity: Option<Span>) -> Result<Credentials, TlsError> {
        let (ca_pem, issuer) = load_issuer(dir)?;
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|_| TlsError::Verifier {
            reason: format!("{} is not a PEM certificate", dir.join(CA_CERT_FILE).display()),
        })?;
        let (leaf, leaf_key) = sign_leaf(&issuer, None, SERVER_NAME, validity)?;
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
        self.server_config_speaking(transport, PROTOCOL_VERSION)
    }

    /// [`Credentials::server_config`] of a node whose newest protocol is
    /// `newest` (it accepts the handshake of that one and older ones).
    pub fn server_config_speaking(
        &self,
        transport: Arc<quinn::TransportConfig>,
        newest: u16,
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
        // This build's protocol first, then the older ones (refused with a
        // reason after the handshake; see `older_protocol`).
        tls.alpn_protocols = (1..=newest).rev().map(alpn_of).collect();
        let crypto = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Verifier {
            reason: e.to_string(),
        })?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport);
        Ok(config)
    }

    /// A TLS server config for HTTPS: our leaf, and client certificates of
    /// the CA verified when presented (not required: HTTP clients may
    /// authenticate with a token instead).
    pub fn https_server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(self.roots()?, provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier {
                    reason: e.to_string(),
                })?;
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.leaf.clone()], self.key())?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_taken_as_operators_write_them() {
        assert_eq!(normalize_serial("0A:1b:FF").as_deref(), Some("0a1bff"));
        assert_eq!(normalize_serial(" 0x0a1bff ").as_deref(), Some("0a1bff"));
        assert_eq!(normalize_serial("a1bff").as_deref(), Some("0a1bff"));
        assert_eq!(normalize_serial(""), None);
        assert_eq!(normalize_serial("0a1g"), None);
        assert_eq!(normalize_serial(&"a".repeat(65)), None);
    }

    #[test]
    fn an_issued_certificate_reads_back_with_its_role_serial_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        init_cluster_dir(&dir.path().join("ca")).unwrap();
        let out = dir.path().join("app");
        let issued = issue_to_dir(
            &dir.path().join("ca"),
            &out,
            Role::ReadOnly,
            "app",
            Duration::from_secs(10 * 86_400),
        )
        .unwrap();
        let read = PeerCertificate::of_pem_file(&out.join(LEAF_CERT_FILE)).unwrap();
        assert_eq!(read, issued);
        assert_eq!(read.role, Some(Role::ReadOnly));
        assert_eq!(normalize_serial(&read.serial), Some(read.serial.clone()));
        let days_left = (read.not_after - days_since_epoch() * 86_400) / 86_400;
        assert!((9..=10).contains(&days_left), "{days_left}");
    }
}
