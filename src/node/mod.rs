//! The production driver: the core on real sockets and a real disk.
//!
//! One task owns the [`Node`] and loops: it waits for the next event (a
//! client request, a peer message, a SWIM packet), the next timer, or
//! shutdown; feeds the core; and carries out its outputs. Events that
//! arrived together are fed as one batch, so with `fsync` durability one
//! fsync covers the whole batch (group commit) before any of its
//! acknowledgements leave.
//!
//! Around it: an accept loop (request streams from clients, message streams
//! and SWIM datagrams from peers) and one outgoing link per peer, each with
//! a bounded queue: a peer that cannot keep up loses messages, which the
//! core tolerates, rather than growing memory without bound.

pub mod http;
mod lanes;
mod link;
pub mod metrics;
mod revocation;
mod s3;
pub mod settings;

use crate::net::frame::{DEFAULT_MAX_FRAME, FrameError};
use crate::net::stream::FrameReader;
use crate::net::tls::{
    CLOSE_PROTOCOL, Credentials, PeerCertificate, Role, TlsError, older_protocol, transport_config,
};
use crate::proto::message::{AdminError, Operation, PROTOCOL_VERSION, PeerBatch, PeerHello};
use crate::proto::{
    AdminRequest, AdminResponse, ClientId, ClientResponse, Config, Node, NodeId, Output, PeerMessage,
    Request, RequestError, Response, StartError, Store, StoreError, Time,
};
use crate::storage::{FjallStore, MemoryStore, NodeStore};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// When a write is acknowledged.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Durability {
    /// Once it reached the operating system (survives a process crash).
    #[default]
    Buffer,
    /// Once it was fsynced (survives power loss); fsyncs are batched.
    Fsync,
}

/// Where a node keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Storage {
    /// On disk, in the data directory (fjall).
    Disk,
    /// In memory only, holding at most `max_bytes` of keys, states and
    /// hints; the data directory keeps only the node's identity. A
    /// restarted memory node comes back empty under its old id and is
    /// refilled by anti-entropy, hints and read repair. Past the limit,
    /// writes that would grow the store get `OutOfMemory`.
    Memory {
        /// The limit (`max_memory_bytes`).
        max_bytes: u64,
    },
}

/// What a node does when its storage fails (a full or failing disk).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DiskFailurePolicy {
    /// Keep serving reads and refuse writes at once, tell the other nodes
    /// (they write to stand-ins and keep hints for it), and take writes
    /// again by itself once the store does.
    #[default]
    ReadOnly,
    /// Stop the process with a non-zero exit and a clear message, for a
    /// supervisor to act on.
    Stop,
}

/// Everything needed to start a node. Make one with [`NodeOptions::new`]
/// and change the fields that differ from the defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeOptions {
    /// The data directory.
    pub data_dir: PathBuf,
    /// On disk, or in memory only.
    pub storage: Storage,
    /// The UDP address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// The cluster directory holding the CA.
    pub cluster_dir: PathBuf,
    /// Nodes to join through; empty for the first node.
    pub seeds: Vec<SocketAddr>,
    /// When writes are acknowledged.
    pub durability: Durability,
    /// What to do when storage fails.
    pub disk_failure_policy: DiskFailurePolicy,
    /// The core's settings.
    pub config: Config,
    /// Limits of the network layer.
    pub limits: Limits,
    /// The HTTP API, if served.
    pub http: Option<HttpOptions>,
    /// The S3 gateway, if served.
    pub s3: Option<S3Options>,
}

impl NodeOptions {
    /// A node with its data in `data_dir`, listening on `listen`, in the
    /// cluster whose certificates are in `cluster_dir`: no seeds (the first
    /// node), buffered durability, the default disk failure policy,
    /// settings and limits, data on disk.
    pub fn new(data_dir: PathBuf, listen: SocketAddr, cluster_dir: PathBuf) -> NodeOptions {
        NodeOptions {
            data_dir,
            storage: Storage::Disk,
            listen,
            cluster_dir,
            seeds: Vec::new(),
            durability: Durability::Buffer,
            disk_failure_policy: DiskFailurePolicy::default(),
            config: Config::default(),
            limits: Limits::default(),
            http: None,
            s3: None,
        }
    }
}

/// Limits that protect a node from its clients and peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most connections open at once; more are refused.
    pub max_connections: usize,
    /// Most requests in flight on one connection (QUIC stream credit: a
    /// client wanting more waits for one to finish).
    pub max_requests_per_connection: u32,
    /// Largest message accepted, in bytes; a larger one closes its stream.
    pub max_frame_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_requests_per_connection: MAX_STREAMS_PER_CONNECTION,
            max_frame_bytes: DEFAULT_MAX_FRAME,
        }
    }
}

/// The node could not start or failed while running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The cluster directory or certificates are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A runtime of its own could not be made for the node.
    #[error("cannot start a runtime for the node: {source}")]
    Runtime {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The data directory could not be opened.
    #[error("data directory: {0}")]
    Store(#[from] StoreError),
    /// The core refused to start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A setting's value cannot be used.
    #[error("{name}: {reason}")]
    Setting {
        /// The setting.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Most events fed to the core before its outputs are carried out.
const MAX_BATCH: usize = 512;
/// Most events queued for the core; senders wait beyond it.
const EVENT_QUEUE: usize = 16_384;
/// Most request streams open at once on one connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 1024;
/// How long a graceful stop waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

enum Event {
    Request {
        request: Request,
        reply: lanes::Replier,
    },
    /// Messages from a peer, in the order it sent them.
    Peer {
        from: NodeId,
        messages: PeerBatch,
    },
    Gossip {
        data: Bytes,
    },
}

/// The node stopped before answering a request of an in-process door.
struct Stopped;

/// Hands `request` to the node's core from a door in this process (the
/// HTTP API, the S3 gateway), as a client connection would, and waits for
/// the answer.
async fn submit(events: &mpsc::Sender<Event>, request: Request) -> Result<Response, Stopped> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    events
        .send(Event::Request {
            request,
            reply: reply.into(),
        })
        .await
        .map_err(|_| Stopped)?;
    answer.await.map_err(|_| Stopped)
}

pub use http::HttpOptions;
pub use s3::S3Options;

/// A running node.
pub struct NodeHandle {
    addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    s3_addr: Option<SocketAddr>,
    id: NodeId,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), StoreError>>,
}

impl NodeHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where its HTTP API listens, if it serves one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Where the S3 gateway listens, if it does.
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.s3_addr
    }

    /// Its node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Stops gracefully: stops accepting, finishes requests in flight,
    /// persists, and leaves the gossip. Returns once it has stopped.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        let _ = self.shutdown.send(true);
        self.wait().await
    }

    /// Waits until the node stops by itself (after a `leave`) or is shut
    /// down.
    pub async fn wait(self) -> Result<(), StoreError> {
        match self.task.await {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// A trigger that stops the node gracefully, usable from elsewhere.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// A status report as JSON, as `shoal status --json` and `GET /v1/status`
/// show it, with `counters`: each member's own counters (`null` for one
/// that did not answer). Node ids are the 16 hex digits shoal prints
/// everywhere else, in place of the numbers their serde form gives (JSON
/// readers round integers past 2^53): the report's node, each member's,
/// and each hint queue's target.
pub fn status_json(
    report: &crate::proto::StatusReport,
    members: &[(NodeId, Option<crate::proto::StatusReport>)],
) -> Result<serde_json::Value, serde_json::Error> {
    let counters: serde_json::Map<String, serde_json::Value> = members
        .iter()
        .map(|(node, own)| {
            let value = own.as_ref().map(|r| {
                serde_json::json!({
                    "stats": r.stats,
                    "hints": r.hints.iter().map(|h| serde_json::json!({
                        "target": h.target.to_string(),
                        "count": h.count,
                        "bytes": h.bytes,
                    })).collect::<Vec<_>>(),
                    "in_flight": r.in_flight,
                    "keys": r.keys,
                    "root": format!("{:016x}", r.root.digest),
                    "streaming": r.streaming,
                    "storage_failure": r.storage_failure,
                })
            });
            (node.to_string(), serde_json::to_value(value).unwrap_or_default())
        })
        .collect();
    let mut json = serde_json::to_value(report)?;
    json["counters"] = serde_json::Value::Object(counters);
    let to_hex = |value: &mut serde_json::Value| {
        if let Some(id) = value.as_u64() {
            *value = serde_json::Value::String(NodeId(id).to_string());
        }
    };
    to_hex(&mut json["node"]);
    for (list, field) in [("members", "node"), ("hints", "target")] {
        if let Some(items) = json[list].as_array_mut() {
            items.iter_mut().for_each(|item| to_hex(&mut item[field]));
        }
    }
    Ok(json)
}

/// Starts a node and returns once it listens.
pub async fn start(options: NodeOptions) -> Result<NodeHandle, NodeError> {
    disable_transparent_huge_pages();
    if Credentials::dir_holds_ca_key(&options.cluster_dir) && !options.listen.ip().is_loopback() {
        tracing::warn!(
            cluster_dir = %options.cluster_dir.display(),
            "this node's cluster directory holds the CA key: anyone who reads it can mint node \
             certificates; give nodes a directory from `shoal cluster issue-node` instead"
        );
    }
    let credentials = Credentials::from_cluster_dir(&options.cluster_dir)?;
    let store = match options.storage {
        Storage::Disk => NodeStore::Disk(FjallStore::open(&options.data_dir)?),
        Storage::Memory { max_bytes } => NodeStore::Memory(MemoryStore::open(&options.data_dir, max_bytes)?),
    };
    let mut node = Node::new(options.config.clone(), store, rand::random())?;
    let limits = options.limits;
    let transport = transport_config(limits.max_requests_per_connection);
    let server = credentials.server_config(transport.clone())?;
    let client = credentials.client_config(transport)?;
    let mut endpoint = quinn::Endpoint::server(server, options.listen).map_err(|source| NodeError::Bind {
        addr: options.listen,
        source,
    })?;
    endpoint.set_default_client_config(client);
    let addr = endpoint.local_addr().map_err(|source| NodeError::Bind {
        addr: options.listen,
        source,
    })?;
    let clock = Clock::new();
    node.start_membership(clock.now(), addr, &options.seeds);
    let id = node.id();
    tracing::info!(node = %id, %addr, epoch = node.epoch(), "node started");
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let revoked = watch::Sender::new(Arc::new(revocation::load(&options.data_dir)));
    tokio::spawn(revocation::refresh(
        events_tx.clone(),
        revoked.clone(),
        options.data_dir.clone(),
    ));
    let http_addr = match &options.http {
        Some(http) => Some(
            start_http(
                http,
                &credentials,
                &options,
                (id, addr),
                &events_tx,
                &revoked,
                &shutdown,
            )
            .await?,
        ),
        None => None,
    };
    let s3_addr = match &options.s3 {
        Some(s3) => {
            let parts = s3::Parts {
                options: s3.clone(),
                credentials: credentials.clone(),
                events: events_tx.clone(),
                max_connections: options.limits.max_connections,
                max_value_bytes: options.config.max_value_bytes,
            };
            Some(s3::start(parts, shutdown.subscribe()).await?)
        }
        None => None,
    };
    let accept = tokio::spawn(accept_loop(endpoint.clone(), events_tx, limits, revoked.clone()));
    let driver = Driver {
        node,
        clock,
        endpoint,
        links: HashMap::new(),
        pending: HashMap::new(),
        next_client: 1,
        durability: options.durability,
        disk_failure_policy: options.disk_failure_policy,
        storage_failed: false,
        leaving: false,
        exporter: metrics::Exporter::default(),
        request_metrics: metrics::RequestMetrics::default(),
        bulk: std::collections::VecDeque::new(),
        max_frame: limits.max_frame_bytes,
        invalid_logged: None,
        revoked,
    };
    let task = tokio::spawn(driver.run(events_rx, shutdown_rx, accept));
    Ok(NodeHandle {
        addr,
        http_addr,
        s3_addr,
        id,
        shutdown,
        task,
    })
}

/// Binds and serves the HTTP API; its address.
async fn start_http(
    http: &HttpOptions,
    credentials: &Credentials,
    options: &NodeOptions,
    (node, addr_quic): (NodeId, SocketAddr),
    events: &mpsc::Sender<Event>,
    revoked: &revocation::Shared,
    shutdown: &watch::Sender<bool>,
) -> Result<SocketAddr, NodeError> {
    let bind_error = |source| NodeError::Bind {
        addr: http.listen,
        source,
    };
    let listener = http::bind(http).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    // Record from now on, for `GET /metrics`.
    metrics::handle(node);
    let tls = if http.plain {
        None
    } else {
        Some(http::tls_config(credentials)?)
    };
    let parts = http::Parts {
        credentials: credentials.clone(),
        quic: addr_quic,
        listener,
        tls,
        events: events.clone(),
        config: options.config.clone(),
        revoked: revoked.clone(),
        node,
        max_connections: options.limits.max_connections,
    };
    tokio::spawn(http::serve(parts, shutdown.subscribe()));
    let scheme = if http.plain { "http" } else { "https" };
    tracing::info!(url = %format!("{scheme}://{addr}/"), "HTTP API served");
    Ok(addr)
}

/// Turns transparent huge pages off for this process, once.
///
/// The allocator asks for huge pages on its large regions; the first touch
/// of each then zeroes 2 MiB while the node's core waits, which measured
/// 4-5 ms on a VM: a stall every time a memtable grows by 2 MiB, that all
/// requests queue behind (the p99 of gets rose several times during hint
/// replay). Databases commonly recommend THP off for this reason; the
/// memory cost is a few more page-table entries.
fn disable_transparent_huge_pages() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(target_os = "linux")]
        {
            if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
                tracing::debug!(%error, "transparent huge pages stay on");
            }
        }
    });
}

/// The core's notion of now: the wall clock at start plus monotonic time
/// since, so it never goes backwards.
struct Clock {
    wall_at_start: u64,
    start: Instant,
}

impl Clock {
    fn new() -> Clock {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Clock {
            wall_at_start: u64::try_from(wall.as_micros()).unwrap_or(u64::MAX),
            start: Instant::now(),
        }
    }

    fn now(&self) -> Time {
        let elapsed = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        Time::from_micros(self.wall_at_start.saturating_add(elapsed))
    }

    fn instant_of(&self, at: Time) -> tokio::time::Instant {
        let offset = at.as_micros().saturating_sub(self.wall_at_start);
        tokio::time::Instant::from_std(self.start + Duration::from_micros(offset))
    }
}

enum Reply {
    Data(lanes::Replier, metrics::RequestLabels),
    Admin { reply: lanes::Replier, leave: bool },
}

struct Driver {
    node: Node<NodeStore>,
    clock: Clock,
    endpoint: quinn::Endpoint,
    links: HashMap<SocketAddr, link::Link>,
    pending: HashMap<ClientId, Reply>,
    next_client: u64,
    durability: Durability,
    disk_failure_policy: DiskFailurePolicy,
    /// Whether the core's storage was failed when last looked at.
    storage_failed: bool,
    leaving: bool,
    exporter: metrics::Exporter,
    request_metrics: metrics::RequestMetrics,
    /// Bulk repair and topology messages waiting for a quiet moment.
    bulk: std::collections::VecDeque<Event>,
    /// Largest message a peer accepts (every node has the same limits).
    max_frame: usize,
    /// When an invalid peer message was last logged: a flood of junk is
    /// logged at most once a second (the metric counts every message).
    invalid_logged: Option<crate::proto::Time>,
    /// The revoked certificates this node knows of: its links to peers
    /// close when the peer's certificate is listed.
    revoked: revocation::Shared,
}

impl Driver {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut shutdown: watch::Receiver<bool>,
        accept: JoinHandle<()>,
    ) -> Result<(), StoreError> {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while !self.leaving {
            let timer = self.node.poll_timeout().map(|at| self.clock.instant_of(at));
            let bulk_waiting = !self.bulk.is_empty();
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                received = events.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                    self.feed(batch.drain(..))?;
                }
                _ = sleep_until(timer) => self.node.handle_timeout(self.clock.now()),
                // Nothing else ready: the next piece of bulk work.
                () = std::future::ready(()), if bulk_waiting => self.feed_bulk()?,
            }
            self.flush_outputs();
            self.watch_storage()?;
            self.exporter.tick(&self.node);
            if !self.bulk.is_empty() {
                // Let other tasks (this process's other connections and
                // nodes) run between pieces of bulk work.
                tokio::task::yield_now().await;
            }
        }
        let rest: Vec<Event> = self.bulk.drain(..).collect();
        self.feed_events(rest)?;
        self.stop(&mut events, accept).await
    }

    /// Logs a storage failure and its recovery, and stops the node on a
    /// failure if the policy says so.
    fn watch_storage(&mut self) -> Result<(), StoreError> {
        let failure = self.node.storage_failure();
        if failure.is_some() == self.storage_failed {
            return Ok(());
        }
        self.storage_failed = failure.is_some();
        let node = self.node.id();
        match (failure, self.disk_failure_policy) {
            (Some(reason), DiskFailurePolicy::Stop) => {
                tracing::error!(%node, reason, "storage failed; disk_failure_policy is stop: the node stops");
                return Err(StoreError::Engine {
                    source: format!("storage failed ({reason}); stopped by disk_failure_policy = stop")
                        .into(),
                });
            }
            (Some(reason), _) => tracing::error!(
                %node,
                reason,
                "storage failed: the node is read-only (serves reads, refuses writes; other nodes write to \
                 stand-ins and keep hints for it) and checks every second whether the store takes writes again"
            ),
            (None, _) => tracing::info!(%node, "storage recovered: the node takes writes again"),
        }
        Ok(())
    }

    /// Feeds a batch of events: client requests, replica reads and writes
    /// and gossip at once; the bulk work of repair and topology (hint
    /// replay, streaming, handoff, anti-entropy states) is queued and fed
    /// one message at a time when nothing else is ready, so a repair in
    /// progress adds little to request latency. (Bulk messages are few at
    /// a time: each sender waits for its batch to be acknowledged.)
    fn feed(&mut self, batch: impl Iterator<Item = Event>) -> Result<(), StoreError> {
        let mut urgent = Vec::new();
        for event in batch {
            match event {
                Event::Peer { from, messages } if messages.iter().any(PeerMessage::is_bulk) => {
                    let (bulk, messages): (PeerBatch, PeerBatch) =
                        messages.into_iter().partition(PeerMessage::is_bulk);
                    self.bulk.extend(bulk.into_iter().map(|message| Event::Peer {
                        from,
                        messages: vec![message],
                    }));
                    urgent.push(Event::Peer { from, messages });
                }
                event => urgent.push(event),
            }
        }
        self.feed_events(urgent)?;
        // Never let bulk work pile up: past a batch's worth, feed it now.
        while self.bulk.len() > MAX_BATCH {
            self.feed_bulk()?;
        }
        Ok(())
    }

    /// Feeds the oldest queued bulk message.
    fn feed_bulk(&mut self) -> Result<(), StoreError> {
        match self.bulk.pop_front() {
            Some(event) => self.feed_events(vec![event]),
            None => Ok(()),
        }
    }

    /// Feeds events in order, then makes their writes durable if needed.
    fn feed_events(&mut self, batch: Vec<Event>) -> Result<(), StoreError> {
        let mut wrote = false;
        for event in batch {
            let now = self.clock.now();
            match event {
                Event::Request { request, reply } => {
                    let client = ClientId(self.next_client);
                    self.next_client += 1;
                    match request {
                        Request::Data(request) => {
                            wrote |= !matches!(request, crate::proto::ClientRequest::Get { .. });
                            let default = self.node.config().default_consistency;
                            let labels = metrics::RequestLabels::new(&request, default);
                            self.pending.insert(client, Reply::Data(reply, labels));
                            self.node.handle_client_request(now, client, request);
                        }
                        Request::List(request) => {
                            let consistency = request.consistency.or(self.node.config().default_consistency);
                            let labels = metrics::RequestLabels::of(Operation::List, consistency);
                            self.pending.insert(client, Reply::Data(reply, labels));
                            self.node.handle_list_request(now, client, request);
                        }
                        Request::Watch(request) => {
                            let labels =
                                metrics::RequestLabels::of(Operation::Watch, crate::proto::Consistency::One);
                            self.pending.insert(client, Reply::Data(reply, labels));
                            self.node.handle_watch_request(now, client, request);
                        }
                        Request::Admin(request) => {
                            let leave = request == AdminRequest::Leave;
                            self.pending.insert(client, Reply::Admin { reply, leave });
                            self.node.handle_admin_request(now, client, request);
                        }
                    }
                }
                Event::Peer { from, messages } => {
                    for message in messages {
                        wrote |= message.writes();
                        let kind = message.kind();
                        if let Err(fault) = self.node.handle_peer_message(now, from, message)
                            && self
                                .invalid_logged
                                .is_none_or(|at| now >= at + Duration::from_secs(1))
                        {
                            self.invalid_logged = Some(now);
                            tracing::warn!(node = %self.node.id(), peer = %from, kind, %fault, "invalid peer message dropped");
                        }
                    }
                }
                Event::Gossip { data } => self.node.handle_gossip(now, &data),
            }
        }
        if wrote && self.durability == Durability::Fsync {
            self.node.store_mut().sync()?;
        }
        Ok(())
    }

    /// Carries out the core's outputs. The messages for each peer are
    /// handed to its link together, so they travel in one frame.
    fn flush_outputs(&mut self) {
        // (peer, its messages), in the order of each peer's first message.
        let mut outgoing: Vec<(SocketAddr, PeerBatch)> = Vec::new();
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Send { to, message } => match self.node.addr_of(to) {
                    Some(addr) => match outgoing.iter_mut().find(|(to, _)| *to == addr) {
                        Some((_, messages)) => messages.push(message),
                        None => outgoing.push((addr, vec![message])),
                    },
                    None => tracing::debug!(node = %to, "no address known; message dropped"),
                },
                Output::Gossip { to, data } => self.link(to).send_gossip(Bytes::from(data)),
                Output::Reply { client, response } => self.reply(client, Response::Data(response)),
                Output::AdminReply { client, response } => {
                    let done = matches!(response, AdminResponse::Done);
                    if let Some(Reply::Admin { leave: true, .. }) = self.pending.get(&client) {
                        self.leaving |= done;
                    }
                    self.reply(client, Response::Admin(response));
                }
            }
        }
        for (addr, messages) in outgoing {
            self.link(addr).send_messages(messages);
        }
    }

    fn reply(&mut self, client: ClientId, response: Response) {
        let reply = match self.pending.remove(&client) {
            Some(Reply::Data(reply, labels)) => {
                if let Response::Data(data) = &response {
                    self.request_metrics.done(labels, data);
                }
                reply
            }
            Some(Reply::Admin { reply, .. }) => reply,
            None => return,
        };
        // The client may have gone; nothing to do then.
        reply.send(response);
    }

    fn link(&mut self, addr: SocketAddr) -> &link::Link {
        let endpoint = &self.endpoint;
        let (me, max_frame) = (self.node.id(), self.max_frame);
        let revoked = &self.revoked;
        self.links
            .entry(addr)
            .or_insert_with(|| link::Link::spawn(endpoint.clone(), addr, me, max_frame, revoked.subscribe()))
    }

    /// Graceful stop: no new connections, requests in flight finished,
    /// everything persisted, SWIM left.
    async fn stop(
        mut self,
        events: &mut mpsc::Receiver<Event>,
        accept: JoinHandle<()>,
    ) -> Result<(), StoreError> {
        self.endpoint.set_server_config(None);
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        let mut batch = Vec::new();
        while self.node.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            let timer = self.node.poll_timeout().map(|at| self.clock.instant_of(at));
            tokio::select! {
                received = events.recv_many(&mut batch, MAX_BATCH) => {
                    if received == 0 { break; }
                    self.feed(batch.drain(..))?;
                }
                _ = sleep_until(timer) => self.node.handle_timeout(self.clock.now()),
                _ = tokio::time::sleep_until(deadline) => break,
            }
            self.flush_outputs();
        }
        self.node.save_digest_tree()?;
        self.node.store_mut().sync()?;
        self.node.stop_gossip(self.clock.now());
        self.flush_outputs();
        // Let the goodbye packets leave before the endpoint closes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        accept.abort();
        self.links.clear();
        self.endpoint.close(0u32.into(), b"node stopping");
        // Release the UDP port before returning, so a restart can bind it.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        tracing::info!(node = %self.node.id(), "node stopped");
        Ok(())
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    events: mpsc::Sender<Event>,
    limits: Limits,
    revoked: revocation::Shared,
) {
    let open = Arc::new(AtomicUsize::new(0));
    while let Some(incoming) = endpoint.accept().await {
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            tracing::warn!(
                remote = %incoming.remote_address(),
                max_connections = limits.max_connections,
                "connection refused: too many open"
            );
            incoming.refuse();
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let guard = OpenConnection(open.clone());
        tokio::spawn(serve_connection(
            incoming,
            events.clone(),
            limits,
            guard,
            revoked.subscribe(),
        ));
    }
}

/// Counts a connection as open until dropped.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_connection(
    incoming: quinn::Incoming,
    events: mpsc::Sender<Event>,
    limits: Limits,
    _open: OpenConnection,
    revoked: watch::Receiver<Arc<crate::net::revocation::RevocationList>>,
) {
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::debug!(%error, "handshake refused");
            return;
        }
    };
    if let Some(version) = older_protocol(&connection) {
        tracing::debug!(remote = %connection.remote_address(), version, "a client of an older release refused");
        let reason = format!(
            "this node speaks shoal protocol {PROTOCOL_VERSION}, the client speaks {version}: \
             use a client of the node's release"
        );
        connection.close(CLOSE_PROTOCOL.into(), reason.as_bytes());
        return;
    }
    let max_frame = limits.max_frame_bytes;
    // The handshake verified the chain, so there is a certificate.
    let Some(certificate) = PeerCertificate::of_connection(&connection) else {
        connection.close(0u32.into(), b"unreadable certificate");
        return;
    };
    if !revocation::admit(&connection, &certificate, &revoked.borrow()) {
        return;
    }
    // The role the peer's certificate carries; none on a certificate a
    // holder of the CA key issued itself (development), which may do
    // anything.
    let role = certificate.role;
    let closer = revocation::close_when_invalid(connection.clone(), certificate, revoked);
    // Peer traffic only from nodes.
    if matches!(role, None | Some(Role::Node)) {
        tokio::spawn(serve_datagrams(connection.clone(), events.clone()));
        tokio::spawn(serve_peer_streams(connection.clone(), events.clone(), max_frame));
    }
    let in_flight = Arc::new(tokio::sync::Semaphore::new(
        limits.max_requests_per_connection as usize,
    ));
    while let Ok((send, recv)) = connection.accept_bi().await {
        tokio::spawn(lanes::serve(
            send,
            recv,
            events.clone(),
            max_frame,
            role,
            in_flight.clone(),
        ));
    }
    closer.abort();
}

async fn serve_datagrams(connection: quinn::Connection, events: mpsc::Sender<Event>) {
    while let Ok(data) = connection.read_datagram().await {
        if events.send(Event::Gossip { data }).await.is_err() {
            return;
        }
    }
}

async fn serve_peer_streams(connection: quinn::Connection, events: mpsc::Sender<Event>, max_frame: usize) {
    while let Ok(recv) = connection.accept_uni().await {
        let events = events.clone();
        tokio::spawn(async move {
            let mut reader = FrameReader::new(recv, max_frame);
            let from = match reader.next::<PeerHello>().await {
                Ok(Some(hello)) => hello.node,
                _ => return,
            };
            loop {
                match reader.next::<PeerBatch>().await {
                    Ok(Some(messages)) => {
                        if events.send(Event::Peer { from, messages }).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(error) => {
                        log_bad_frame(&error, "peer stream");
                        reader.stop(1);
                        return;
                    }
                }
            }
        });
    }
}

/// The answer to a request the certificate's role may not make; nothing
/// reaches the core.
fn forbidden(role: Role, request: &Request) -> Response {
    let (role, needed) = (role.to_string(), Role::needed_for(request).to_string());
    tracing::debug!(%role, %needed, "request refused for the certificate's role");
    match request {
        Request::Data(_) | Request::List(_) | Request::Watch(_) => {
            Response::Data(ClientResponse::Failed(RequestError::Forbidden { role, needed }))
        }
        Request::Admin(_) => Response::Admin(AdminResponse::Refused {
            reason: AdminError::Forbidden { role, needed },
        }),
    }
}

/// A stream that ended because its connection closed is routine; a frame
/// that failed to decode is worth a warning.
fn log_bad_frame(error: &FrameError, place: &str) {
    match error {
        FrameError::Io { .. } => tracing::debug!(%error, place, "stream ended"),
        _ => tracing::warn!(%error, place, "bad frame; stream closed"),
    }
}
