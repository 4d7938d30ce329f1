//! The HTTP API (`--http ADDR`): the same requests QUIC clients make, for
//! curl and any language, served by the node process and handed to its
//! core in-process (no hop through its own QUIC port).
//!
//! HTTPS with the node's cluster certificate. A client authenticates with
//! a certificate of the cluster CA (its role, as on QUIC) or with a bearer
//! token (`shoal token create`); nothing is served unauthenticated. Plain
//! HTTP only on a loopback address, and only when asked for
//! (`http_plain`); then only tokens authenticate.
//!
//! Limits: connections (`max_connections`), headers (64 KiB), bodies (read
//! with a cap of `max_value_bytes`, never buffered past it), a TLS
//! handshake and a request's headers within 10 s, a body within 30 s,
//! HTTP/2 peers pinged every 30 s and dropped when silent, and a
//! connection's whole life capped at an hour (clients reconnect).

mod api;
pub(super) mod expect;

use super::Event;
use super::revocation::Shared;
use crate::net::tls::{Credentials, PeerCertificate, TlsError};
use crate::proto::{Config, NodeId};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

/// Longest a client may take to finish a TLS handshake or send a request's
/// headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send a request body.
pub(super) const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an HTTP/2 peer is pinged.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Longest a connection lives.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(3600);
/// Largest request head (request line and headers).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most concurrent HTTP/2 streams on one connection.
const MAX_H2_STREAMS: u32 = 256;

/// How a node serves HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Where to listen (TCP).
    pub listen: SocketAddr,
    /// Plain HTTP instead of HTTPS: only on a loopback address.
    pub plain: bool,
}

impl HttpOptions {
    /// HTTPS on `listen`.
    pub fn new(listen: SocketAddr) -> HttpOptions {
        HttpOptions { listen, plain: false }
    }
}

/// What every request handler shares.
pub(super) struct State {
    /// A client of the cluster with this node's certificate, for its
    /// peers' status reports; made on first use.
    peers: tokio::sync::OnceCell<Option<crate::client::Client>>,
    credentials: Credentials,
    /// This node's QUIC address.
    quic: SocketAddr,
    events: mpsc::Sender<Event>,
    config: Config,
    revoked: Shared,
    tokens: api::TokenCache,
    node: NodeId,
    plain: bool,
}

/// Longest a peer's status report is waited for.
const PEER_STATUS_TIMEOUT: Duration = Duration::from_secs(1);

impl State {
    /// Each live member's own report (`None` for one that did not answer
    /// in time), this node's included.
    async fn peer_reports(
        &self,
        report: &crate::proto::StatusReport,
    ) -> Vec<(NodeId, Option<crate::proto::StatusReport>)> {
        let client = self
            .peers
            .get_or_init(|| async {
                crate::client::Client::builder(self.credentials.clone())
                    .seed(self.quic)
                    .attempt_timeout(PEER_STATUS_TIMEOUT)
                    .connect()
                    .await
                    .map_err(|error| tracing::debug!(%error, "no client for peers' status"))
                    .ok()
            })
            .await;
        let mut asked = tokio::task::JoinSet::new();
        for member in report.members.iter().filter(|m| m.up) {
            let (node, addr, client) = (member.node, member.addr, client.clone());
            asked.spawn(async move {
                let own = match client {
                    Some(client) => tokio::time::timeout(PEER_STATUS_TIMEOUT, client.admin().status(addr))
                        .await
                        .ok()
                        .and_then(Result::ok),
                    None => None,
                };
                (node, own)
            });
        }
        let mut reports: Vec<_> = asked.join_all().await;
        reports.sort_by_key(|(node, _)| *node);
        reports
    }
}

/// Binds the HTTP port; refuses plain HTTP off loopback.
pub(super) async fn bind(options: &HttpOptions) -> std::io::Result<TcpListener> {
    bind_tcp(options.listen, options.plain).await
}

/// Binds a door's port; refuses plain HTTP off loopback.
pub(super) async fn bind_tcp(listen: SocketAddr, plain: bool) -> std::io::Result<TcpListener> {
    if plain && !listen.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "plain HTTP is only served on a loopback address; serve HTTPS instead",
        ));
    }
    TcpListener::bind(listen).await
}

/// The TLS configuration: the node's certificate, client certificates of
/// the cluster CA asked for but not required (tokens are the other way).
pub(super) fn tls_config(
    credentials: &Credentials,
) -> Result<Arc<tokio_rustls::rustls::ServerConfig>, TlsError> {
    let mut config = credentials.https_server_config()?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Everything the server needs from the node.
pub(super) struct Parts {
    pub credentials: Credentials,
    pub quic: SocketAddr,
    pub listener: TcpListener,
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    pub events: mpsc::Sender<Event>,
    pub config: Config,
    pub revoked: Shared,
    pub node: NodeId,
    pub max_connections: usize,
}

/// Serves until `shutdown` flips.
pub(super) async fn serve(parts: Parts, shutdown: watch::Receiver<bool>) {
    let state = Arc::new(State {
        peers: tokio::sync::OnceCell::new(),
        credentials: parts.credentials,
        quic: parts.quic,
        events: parts.events,
        config: parts.config,
        revoked: parts.revoked,
        tokens: api::TokenCache::default(),
        node: parts.node,
        plain: parts.tls.is_none(),
    });
    let door = Door {
        name: "HTTP",
        listener: parts.listener,
        tls: parts.tls,
        max_connections: parts.max_connections,
    };
    door.serve(shutdown, move |certificate| {
        hyper_util::service::TowerToHyperService::new(api::router(state.clone(), certificate))
    })
    .await
}

/// A TCP port that serves HTTP/1.1 and HTTP/2, over TLS unless plain, with
/// the limits above: the HTTP API's and the S3 gateway's.
pub(super) struct Door {
    /// What it serves, for logs.
    pub name: &'static str,
    pub listener: TcpListener,
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    pub max_connections: usize,
}

impl Door {
    /// Serves each connection with the service `make` returns for it
    /// (given the client certificate it presented, if any) until
    /// `shutdown` flips.
    pub(super) async fn serve<M, S, B>(self, mut shutdown: watch::Receiver<bool>, make: M)
    where
        M: Fn(Option<PeerCertificate>) -> S + Send + Sync + 'static,
        S: hyper::service::Service<hyper::Request<expect::Body>, Response = hyper::Response<B>>
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let make = Arc::new(make);
        let open = Arc::new(Semaphore::new(self.max_connections));
        let name = self.name;
        loop {
            let (stream, remote) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, door = name, "accept failed");
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let Ok(permit) = open.clone().try_acquire_owned() else {
                tracing::warn!(%remote, door = name, "connection refused: too many open");
                continue;
            };
            let (make, tls) = (make.clone(), self.tls.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let _ = stream.set_nodelay(true);
                match tls {
                    None => serve_connection(stream, expect::Guard(make(None))).await,
                    Some(tls) => {
                        let accept = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
                        let stream = match tokio::time::timeout(HEADER_TIMEOUT, accept).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                return tracing::debug!(%remote, %error, "TLS handshake refused");
                            }
                            Err(_) => return tracing::debug!(%remote, "TLS handshake too slow"),
                        };
                        let certificate = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .and_then(|leaf| PeerCertificate::of_certificate(leaf));
                        serve_connection(stream, expect::Guard(make(certificate))).await
                    }
                }
            });
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one connection.
async fn serve_connection<I, S, B>(io: I, service: S)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = hyper::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .keep_alive_interval(Some(PING_INTERVAL))
        .keep_alive_timeout(HEADER_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
}
