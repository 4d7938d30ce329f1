//! The client library: talk to a shoal cluster with a consistency level per
//! request.
//!
//! A [`Client`] connects to any of the seed nodes, learns the ring from it,
//! and sends each request straight to a live replica of the key (falling
//! back to other nodes, which forward, when replicas are unreachable). A
//! read returns every sibling and an opaque [`Context`]; pass the context
//! back with the next write of that key so it replaces what you read.
//!
//! This example runs as it stands: it starts three nodes on loopback in
//! this process (hidden lines, with `node::start`), connects, writes,
//! reads, resolves and deletes. Against a real cluster, give the builder
//! its nodes' addresses and `Credentials::from_cluster_dir` of a directory
//! holding a client certificate (`shoal cluster issue-client`).
//!
//! ```
//! use shoal::{Client, Consistency, Context, Credentials, ReadOptions};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let scratch = std::env::temp_dir().join(format!("shoal-doctest-{}", std::process::id()));
//! # let cluster_dir = scratch.join("cluster");
//! # shoal::net::tls::init_cluster_dir(&cluster_dir)?;
//! # let mut nodes = Vec::new();
//! # let mut addrs = Vec::new();
//! # for i in 0..3 {
//! #     let mut options = shoal::node::NodeOptions::new(
//! #         scratch.join(format!("node{i}")),
//! #         "127.0.0.1:0".parse()?,
//! #         cluster_dir.clone(),
//! #     );
//! #     options.seeds = addrs.clone();
//! #     let node = shoal::node::start(options).await?;
//! #     addrs.push(node.addr());
//! #     nodes.push(node);
//! # }
//! let credentials = Credentials::from_cluster_dir(&cluster_dir)?;
//! # let admin = Client::connect(&addrs, credentials.clone()).await?;
//! # admin.admin().wait_until_members_up(&addrs, 3, Duration::from_secs(20)).await?;
//! # admin.close().await;
//! let client = Client::builder(credentials)
//!     .seeds(addrs.clone())
//!     .default_consistency(Consistency::Quorum)
//!     .connect()
//!     .await?;
//!
//! client.put("user:1", "ada", &Context::empty(), Consistency::Quorum).await?;
//! // A second blind write: the two are concurrent, so both are kept.
//! client.put("user:1", "ada l.", &Context::empty(), Consistency::Quorum).await?;
//! let read = client.get_with("user:1", ReadOptions::default()).await?;
//! assert_eq!(read.values.len(), 2);
//! // A write with the read's context replaces every value it saw.
//! client.put("user:1", "ada lovelace", &read.context, Consistency::Quorum).await?;
//! let read = client.get("user:1", Consistency::All).await?;
//! assert_eq!(read.values.len(), 1);
//! assert_eq!(read.values[0].value, &b"ada lovelace"[..]);
//!
//! client.delete("user:1", &read.context, Consistency::Quorum).await?;
//! assert!(client.get("user:1", Consistency::Quorum).await?.values.is_empty());
//! client.close().await;
//! # for node in nodes {
//! #     node.shutdown().await?;
//! # }
//! # std::fs::remove_dir_all(&scratch)?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

use crate::net::frame::FrameError;
use crate::net::revocation::{REVOKED_KEY, RevocationList};
pub use crate::net::tls::Credentials;
use crate::net::tls::{Role, SERVER_NAME, TlsError, transport_config};
use crate::net::{s3, tokens};
use crate::proto::membership::NodeStatus;
use crate::proto::message::PROTOCOL_VERSION;
use crate::proto::message::{AdminError, MemberReport};
use crate::proto::ring::Ring;
use crate::proto::{
    AdminRequest, AdminResponse, ClientRequest, ClientResponse, Consistency, Context, Fanout, ListRequest,
    ListedKey, NodeId, Request, RequestError, Response, StatusReport, Value, WatchRequest,
};
mod pipe;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No node could be reached. Nothing was sent, or nothing answered.
    #[error("no shoal node reachable (tried {tried}): {last}")]
    Unreachable {
        /// Nodes tried.
        tried: usize,
        /// The last failure.
        last: String,
    },
    /// A write reached `node` but no answer came back (the connection
    /// failed or the attempt timed out): it may or may not have been
    /// applied. It is not sent again, since a second coordinator would
    /// apply it as a second version; read the key to find out.
    #[error("no answer from {node} to a write, which may have been applied: {reason}")]
    Indeterminate {
        /// The node the write was sent to.
        node: SocketAddr,
        /// What went wrong on the way.
        reason: String,
    },
    /// The cluster answered with an error; see it for what happened.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The node refused an admin request. Nothing changed.
    #[error("refused: {reason}")]
    Admin {
        /// Why.
        reason: AdminError,
    },
    /// A node answered with something this client cannot read.
    #[error("bad answer from {addr}: {source}")]
    Protocol {
        /// The node.
        addr: SocketAddr,
        /// The decoding error.
        #[source]
        source: FrameError,
    },
    /// The request was not sent: it names something that does not exist,
    /// or already does (an operator call such as `s3 bucket create`).
    #[error("{reason}")]
    Rejected {
        /// Why.
        reason: String,
    },
    /// A node answered with a response of the wrong kind.
    #[error("unexpected answer: {answer}")]
    Unexpected {
        /// The answer, for the error report.
        answer: String,
    },
    /// The cluster did not reach the awaited state in time.
    #[error("{reason}")]
    NotSettled {
        /// What was awaited and what was last seen.
        reason: String,
    },
    /// The credentials or local endpoint could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The local UDP socket could not be opened.
    #[error("cannot open a local socket: {source}")]
    Socket {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// Whether a write that failed with this error may still have been
    /// applied (on some replicas, and so, after repair, on all): the
    /// answer never came ([`ClientError::Indeterminate`]), fewer replicas
    /// than W acknowledged it in time
    /// ([`RequestError::QuorumNotMet`]), or no replica it was forwarded to
    /// answered ([`RequestError::ForwardFailed`]). Any other error means
    /// the write was not applied.
    pub fn may_have_applied(&self) -> bool {
        matches!(
            self,
            ClientError::Indeterminate { .. }
                | ClientError::Request(
                    RequestError::QuorumNotMet { .. } | RequestError::ForwardFailed { .. }
                )
        )
    }
}

/// What [`Client::watch`] saw: a watch has exactly these two outcomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watched {
    /// The key changed past the watch's context: its state now (no values
    /// if deleted) and the context to watch on from.
    Changed(ReadResult),
    /// No change before the timeout.
    Unchanged,
}

/// A read's result: the concurrent values (none if the key is absent or
/// deleted) and the context to pass to the next write of the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// The siblings.
    pub values: Vec<Value>,
    /// What this read saw.
    pub context: Context,
}

/// Client settings; set them with [`Client::builder`].
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// How long one attempt at one node may take (connect + answer).
    pub attempt_timeout: Duration,
    /// How often the ring is refreshed from a node.
    pub ring_refresh: Duration,
    /// The consistency of a request that asks for [`Consistency::Default`]
    /// (itself by default: the node's `default_consistency`).
    pub default_consistency: Consistency,
    /// The retry policy: at most this many nodes are tried for one request
    /// (replicas of the key first). A read moves on to the next node when
    /// one fails to answer; a write moves on only when it was not sent.
    pub max_nodes_per_request: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            attempt_timeout: Duration::from_secs(5),
            ring_refresh: Duration::from_secs(10),
            default_consistency: Consistency::Default,
            max_nodes_per_request: usize::MAX,
        }
    }
}

/// Builds a [`Client`]: seeds, credentials, default consistency, timeouts
/// and retry policy.
///
/// ```no_run
/// use shoal::{Client, Consistency, Credentials};
/// use std::time::Duration;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::builder(Credentials::from_cluster_dir("cluster".as_ref())?)
///     .seed("127.0.0.1:7101".parse()?)
///     .default_consistency(Consistency::Quorum)
///     .attempt_timeout(Duration::from_secs(2))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct ClientBuilder {
    credentials: Credentials,
    seeds: Vec<SocketAddr>,
    options: ClientOptions,
}

impl ClientBuilder {
    /// Adds a node to learn the ring from (any node will do; give a few).
    pub fn seed(mut self, addr: SocketAddr) -> ClientBuilder {
        self.seeds.push(addr);
        self
    }

    /// Adds several seeds.
    pub fn seeds(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> ClientBuilder {
        self.seeds.extend(addrs);
        self
    }

    /// The consistency of requests that ask for [`Consistency::Default`].
    pub fn default_consistency(mut self, consistency: Consistency) -> ClientBuilder {
        self.options.default_consistency = consistency;
        self
    }

    /// How long one attempt at one node may take (connect + answer).
    pub fn attempt_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.options.attempt_timeout = timeout;
        self
    }

    /// How often the ring is refreshed.
    pub fn ring_refresh(mut self, every: Duration) -> ClientBuilder {
        self.options.ring_refresh = every;
        self
    }

    /// At most this many nodes are tried for one request (at least 1).
    pub fn max_nodes_per_request(mut self, nodes: usize) -> ClientBuilder {
        self.options.max_nodes_per_request = nodes.max(1);
        self
    }

    /// Connects through the seeds and learns the ring.
    pub async fn connect(self) -> Result<Client, ClientError> {
        Client::connect_with(&self.seeds, self.credentials, self.options).await
    }
}

/// How one read is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// How many replicas must answer.
    pub consistency: Consistency,
    /// The node-side deadline; the node's default if `None`.
    pub timeout: Option<Duration>,
    /// Which replicas the coordinator asks: every one that is up (the
    /// default, with read repair) or only as many as `consistency` needs.
    pub fanout: Fanout,
}

impl ReadOptions {
    /// `consistency`, the node's deadline, every replica asked.
    pub fn new(consistency: Consistency) -> ReadOptions {
        ReadOptions {
            consistency,
            timeout: None,
            fanout: Fanout::All,
        }
    }

    /// With a node-side deadline.
    pub fn timeout(mut self, timeout: Duration) -> ReadOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Asking `fanout` replicas: [`Fanout::Needed`] for values written
    /// once and never changed, where read repair has nothing to do.
    pub fn fanout(mut self, fanout: Fanout) -> ReadOptions {
        self.fanout = fanout;
        self
    }
}

impl Default for ReadOptions {
    /// The client's default consistency, the node's deadline.
    fn default() -> ReadOptions {
        ReadOptions::new(Consistency::Default)
    }
}

/// Which keys a listing covers and how: a prefix or a range, a page size,
/// whether to return values, the consistency (see [`Client::list`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListOptions {
    /// The first key.
    pub start: Vec<u8>,
    /// The key to stop before; `None`: to the end of the keyspace.
    pub end: Option<Vec<u8>>,
    /// Most keys per page, 1..=1,000 (default 100).
    pub limit: u32,
    /// Return each key's values too (default: keys and contexts only).
    pub values: bool,
    /// How many replicas of every range of the ring must answer.
    pub consistency: Consistency,
    /// The node-side deadline; the node's default if `None`.
    pub timeout: Option<Duration>,
}

/// Default page size of a listing.
pub const DEFAULT_LIST_LIMIT: u32 = 100;

impl ListOptions {
    /// Every key.
    pub fn all() -> ListOptions {
        ListOptions::range(Vec::new(), None)
    }

    /// Keys that begin with `prefix`.
    pub fn prefix(prefix: impl AsRef<[u8]>) -> ListOptions {
        let prefix = prefix.as_ref();
        ListOptions::range(prefix.to_vec(), crate::proto::message::prefix_end(prefix))
    }

    /// Keys from `start` (inclusive) to `end` (exclusive; `None`: to the end).
    pub fn range(start: impl Into<Vec<u8>>, end: Option<Vec<u8>>) -> ListOptions {
        ListOptions {
            start: start.into(),
            end,
            limit: DEFAULT_LIST_LIMIT,
            values: false,
            consistency: Consistency::Default,
            timeout: None,
        }
    }

    /// With at most `limit` keys per page.
    pub fn limit(mut self, limit: u32) -> ListOptions {
        self.limit = limit;
        self
    }

    /// With (or without) each key's values.
    pub fn values(mut self, values: bool) -> ListOptions {
        self.values = values;
        self
    }

    /// At `consistency`.
    pub fn consistency(mut self, consistency: Consistency) -> ListOptions {
        self.consistency = consistency;
        self
    }

    /// With a node-side deadline.
    pub fn timeout(mut self, timeout: Duration) -> ListOptions {
        self.timeout = Some(timeout);
        self
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Live keys in byte order, each with its context (and values, if
    /// asked for).
    pub keys: Vec<ListedKey>,
    /// Where the next page starts after; `None` when the range is done.
    pub next: Option<Vec<u8>>,
}

impl Page {
    /// The options that list the next page, if there is one.
    pub fn next_options(&self, options: &ListOptions) -> Option<ListOptions> {
        let next = self.next.as_ref()?;
        let mut options = options.clone();
        options.start = crate::proto::message::after(next);
        Some(options)
    }
}

struct View {
    ring: Ring,
    replication: usize,
    members: HashMap<NodeId, MemberReport>,
    refreshed: Option<Instant>,
}

/// Longest a client waits for a node to finish leaving.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3600);

/// How one write is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// How many replicas must acknowledge.
    pub consistency: Consistency,
    /// Whether a home replica known to be down may be stood in for by the
    /// next live node on the ring, which keeps a hint and counts toward W
    /// (on by default: writes stay available while a replica is down, at
    /// the price that a read at R with R + W > N may not see the write
    /// until the hint is delivered).
    pub sloppy_quorum: bool,
    /// The node-side deadline; the node's default if `None`.
    pub timeout: Option<Duration>,
    /// Time to live of a put's value: it reads as absent once this has
    /// passed on the coordinator's clock (within the nodes' `min_ttl` and
    /// `max_ttl`; whole milliseconds). `None`: it never expires. Ignored by
    /// deletes.
    pub ttl: Option<Duration>,
}

impl WriteOptions {
    /// `consistency`, sloppy quorum on, the node's deadline, no expiry.
    pub fn new(consistency: Consistency) -> WriteOptions {
        WriteOptions {
            consistency,
            sloppy_quorum: true,
            timeout: None,
            ttl: None,
        }
    }

    /// A put whose value expires after `ttl`.
    pub fn ttl(mut self, ttl: Duration) -> WriteOptions {
        self.ttl = Some(ttl);
        self
    }

    /// Whether a replica that is down may be stood in for (sloppy quorum).
    pub fn sloppy_quorum(mut self, sloppy: bool) -> WriteOptions {
        self.sloppy_quorum = sloppy;
        self
    }

    /// With a node-side deadline.
    pub fn timeout(mut self, timeout: Duration) -> WriteOptions {
        self.timeout = Some(timeout);
        self
    }

    fn timeout_ms(&self) -> Option<u32> {
        millis(self.timeout)
    }
}

impl Default for WriteOptions {
    /// The client's default consistency, sloppy quorum on, the node's
    /// deadline.
    fn default() -> WriteOptions {
        WriteOptions::new(Consistency::Default)
    }
}

fn millis(timeout: Option<Duration>) -> Option<u32> {
    timeout.map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX).max(1))
}

/// A connection to a shoal cluster. Cheap to clone: clones share one
/// endpoint, its connections and the ring view, so hand a clone to each
/// task; every method takes `&self`.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: quinn::Endpoint,
    seeds: Vec<SocketAddr>,
    options: ClientOptions,
    /// The request streams to each node.
    pipes: std::sync::Mutex<HashMap<SocketAddr, Arc<pipe::Pipe>>>,
    /// Held while connecting to a node, so that concurrent requests wait
    /// for one new connection instead of each making its own.
    connecting: Mutex<HashMap<SocketAddr, Arc<Mutex<()>>>>,
    view: Mutex<View>,
}

/// An attempt's failure.
enum Attempt {
    /// The request never left: safe to send elsewhere.
    NotSent(String),
    /// It was sent but no answer came: a write may have been applied, so
    /// only reads are retried elsewhere.
    NoAnswer(String),
    /// The node answered; final.
    Final(ClientError),
}

impl Client {
    /// Operator calls, sharing this client's connections.
    pub fn admin(&self) -> Admin {
        Admin { client: self.clone() }
    }

    /// A builder for a client with settings other than the defaults.
    pub fn builder(credentials: Credentials) -> ClientBuilder {
        ClientBuilder {
            credentials,
            seeds: Vec::new(),
            options: ClientOptions::default(),
        }
    }

    /// Connects to the cluster through `seeds` and learns its ring.
    pub async fn connect(seeds: &[SocketAddr], credentials: Credentials) -> Result<Client, ClientError> {
        Client::connect_with(seeds, credentials, ClientOptions::default()).await
    }

    /// [`Client::connect`] with explicit options.
    pub async fn connect_with(
        seeds: &[SocketAddr],
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let transport = transport_config(1024);
        let config = credentials.client_config(transport)?;
        let bind = local_bind(seeds);
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|source| ClientError::Socket { source })?;
        endpoint.set_default_client_config(config);
        let client = Client {
            inner: Arc::new(Inner {
                endpoint,
                seeds: seeds.to_vec(),
                options,
                pipes: std::sync::Mutex::new(HashMap::new()),
                connecting: Mutex::new(HashMap::new()),
                view: Mutex::new(View {
                    ring: Ring::new(1),
                    replication: 0,
                    members: HashMap::new(),
                    refreshed: None,
                }),
            }),
        };
        client.refresh_ring().await?;
        Ok(client)
    }

    /// Reads every sibling of `key` at `consistency`.
    ///
    /// ```no_run
    /// # async fn demo(client: shoal::Client) -> Result<(), shoal::ClientError> {
    /// use shoal::Consistency;
    /// let read = client.get("user:1", Consistency::Quorum).await?;
    /// match read.values.len() {
    ///     0 => println!("absent"),
    ///     1 => println!("{}", String::from_utf8_lossy(&read.values[0].value)),
    ///     n => println!("{n} concurrent values: resolve with a put of read.context"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get(
        &self,
        key: impl AsRef<[u8]>,
        consistency: Consistency,
    ) -> Result<ReadResult, ClientError> {
        self.get_with(key, ReadOptions::new(consistency)).await
    }

    /// [`Client::get`] with every read option.
    pub async fn get_with(
        &self,
        key: impl AsRef<[u8]>,
        options: ReadOptions,
    ) -> Result<ReadResult, ClientError> {
        let request = ClientRequest::Get {
            key: key.as_ref().to_vec(),
            consistency: options.consistency,
            timeout_ms: millis(options.timeout),
            fanout: options.fanout,
        };
        read_result(self.data_request(request).await?)
    }

    /// One page of keys in byte order (deleted keys left out). Every range
    /// of the ring must have `consistency` (R) replicas answer: with
    /// R + W > N and strict quorums, a listing that starts after a write
    /// was acknowledged shows its key, and one that starts after a delete
    /// was acknowledged does not. Follow [`Page::next_options`] for the
    /// rest, or use [`Client::list_all`].
    ///
    /// ```no_run
    /// # async fn demo(client: shoal::Client) -> Result<(), shoal::ClientError> {
    /// use shoal::ListOptions;
    /// let mut options = Some(ListOptions::prefix("user:").limit(500));
    /// while let Some(these) = options {
    ///     let page = client.list(&these).await?;
    ///     for listed in &page.keys {
    ///         println!("{}", String::from_utf8_lossy(&listed.key));
    ///     }
    ///     options = page.next_options(&these);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, options: &ListOptions) -> Result<Page, ClientError> {
        let consistency = options.consistency.or(self.inner.options.default_consistency);
        let request = Request::List(ListRequest {
            start: options.start.clone(),
            end: options.end.clone(),
            limit: options.limit,
            values: options.values,
            consistency,
            timeout_ms: millis(options.timeout),
        });
        let candidates = self.candidates(&options.start).await;
        match self.send(request, candidates, true).await? {
            ClientResponse::Listed { keys, next } => Ok(Page { keys, next }),
            other => Err(ClientError::Unexpected {
                answer: format!("{other:?}"),
            }),
        }
    }

    /// Every key of a listing, following its pages (held in memory: for
    /// large ranges, prefer [`Client::list`] page by page).
    pub async fn list_all(&self, options: &ListOptions) -> Result<Vec<ListedKey>, ClientError> {
        let mut keys = Vec::new();
        let mut options = Some(options.clone());
        while let Some(these) = options {
            let page = self.list(&these).await?;
            options = page.next_options(&these);
            keys.extend(page.keys);
        }
        Ok(keys)
    }

    /// Writes `value`, replacing what `context` saw (use
    /// [`Context::empty`] for a blind write). Returns the key's new context.
    ///
    /// ```no_run
    /// # async fn demo(client: shoal::Client) -> Result<(), shoal::ClientError> {
    /// use shoal::{Consistency, Context};
    /// let read = client.get("counter", Consistency::Quorum).await?;
    /// // Replaces every value the read saw; a write it did not see stays as a sibling.
    /// match client.put("counter", "42", &read.context, Consistency::Quorum).await {
    ///     Ok(_) => {}
    ///     Err(error) if error.may_have_applied() => println!("unknown outcome: read it back"),
    ///     Err(error) => return Err(error),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        context: &Context,
        consistency: Consistency,
    ) -> Result<Context, ClientError> {
        self.put_with(key, value, context, WriteOptions::new(consistency))
            .await
    }

    /// [`Client::put`] with every write option.
    pub async fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        context: &Context,
        options: WriteOptions,
    ) -> Result<Context, ClientError> {
        let request = ClientRequest::Put {
            key: key.as_ref().to_vec(),
            value: value.as_ref().to_vec(),
            context: context.clone(),
            consistency: options.consistency,
            timeout_ms: options.timeout_ms(),
            sloppy_quorum: options.sloppy_quorum,
            ttl_ms: options.ttl.map(crate::proto::types::millis),
        };
        written(self.data_request(request).await?)
    }

    /// Deletes `key`: what `context` saw is replaced by a tombstone.
    pub async fn delete(
        &self,
        key: impl AsRef<[u8]>,
        context: &Context,
        consistency: Consistency,
    ) -> Result<Context, ClientError> {
        self.delete_with(key, context, WriteOptions::new(consistency))
            .await
    }

    /// [`Client::delete`] with every write option.
    pub async fn delete_with(
        &self,
        key: impl AsRef<[u8]>,
        context: &Context,
        options: WriteOptions,
    ) -> Result<Context, ClientError> {
        let request = ClientRequest::Delete {
            key: key.as_ref().to_vec(),
            context: context.clone(),
            consistency: options.consistency,
            timeout_ms: options.timeout_ms(),
            sloppy_quorum: options.sloppy_quorum,
        };
        written(self.data_request(request).await?)
    }

    /// Reads `key` with the node at `addr` as its coordinator, and no other
    /// node tried: one node's view and latency (a node answers a read at
    /// ONE from its own store when it is one of the key's replicas).
    pub async fn get_via(
        &self,
        addr: SocketAddr,
        key: impl AsRef<[u8]>,
        consistency: Consistency,
    ) -> Result<ReadResult, ClientError> {
        let request = Request::Data(ClientRequest::Get {
            key: key.as_ref().to_vec(),
            consistency,
            timeout_ms: None,
            fanout: Fanout::All,
        });
        let timeout = self.inner.options.attempt_timeout;
        match self.ask(addr, &request, timeout).await? {
            Response::Data(ClientResponse::Failed(error)) => Err(error.into()),
            Response::Data(response) => read_result(response),
            Response::Admin(other) => Err(ClientError::Unexpected {
                answer: format!("{other:?}"),
            }),
        }
    }

    /// The status report of the node at `addr`.
    async fn status_of(&self, addr: SocketAddr) -> Result<StatusReport, ClientError> {
        match self.admin().request(addr, AdminRequest::Status).await? {
            AdminResponse::Status(report) => Ok(*report),
            other => Err(ClientError::Unexpected {
                answer: format!("{other:?}"),
            }),
        }
    }

    /// One request to the node at `addr` only, answered within
    /// `answer_within`.
    async fn ask(
        &self,
        addr: SocketAddr,
        request: &Request,
        answer_within: Duration,
    ) -> Result<Response, ClientError> {
        self.attempt_within(addr, request, answer_within)
            .await
            .map_err(|e| match e {
                Attempt::NotSent(last) | Attempt::NoAnswer(last) => {
                    ClientError::Unreachable { tried: 1, last }
                }
                Attempt::Final(e) => e,
            })
    }

    /// Waits until `key` changes past `context` (a read's or an earlier
    /// watch's; [`Context::empty`] for any state of the key), or until
    /// `timeout` passes: [`Watched::Changed`] with the key's new state and
    /// context as soon as a replica holds a state `context` does not
    /// cover, else [`Watched::Unchanged`]. A change already there when the
    /// watch starts is reported at once. While the key's replicas are up,
    /// any acknowledged write to it, through any node at any consistency,
    /// ends the watch.
    ///
    /// The watch runs on one node, which asks the key's replicas to report.
    /// Should that node become unreachable or restart, the watch is
    /// re-armed with the same context on another node (nothing is missed:
    /// a change made meanwhile is reported at once), until `timeout`.
    ///
    /// ```no_run
    /// # async fn demo(client: shoal::Client) -> Result<(), shoal::ClientError> {
    /// use shoal::{Consistency, Watched};
    /// use std::time::Duration;
    /// let mut context = client.get("config", Consistency::Quorum).await?.context;
    /// loop {
    ///     match client.watch("config", &context, Duration::from_secs(30)).await? {
    ///         Watched::Changed(read) => {
    ///             println!("now {} value(s)", read.values.len());
    ///             context = read.context;
    ///         }
    ///         Watched::Unchanged => {}
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn watch(
        &self,
        key: impl AsRef<[u8]>,
        context: &Context,
        timeout: Duration,
    ) -> Result<Watched, ClientError> {
        let key = key.as_ref();
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no node tried");
        let mut tried = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(1) {
                // Every node tried failed to hold the watch (an answer
                // would have ended it).
                if tried > 0 {
                    return Err(ClientError::Unreachable { tried, last });
                }
                return Ok(Watched::Unchanged);
            }
            for addr in self.candidates(key).await {
                let left = deadline.saturating_duration_since(Instant::now());
                let request = Request::Watch(WatchRequest {
                    key: key.to_vec(),
                    context: context.clone(),
                    timeout_ms: u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1),
                });
                tried += 1;
                let answer_within = left + self.inner.options.attempt_timeout;
                match self.ask(addr, &request, answer_within).await {
                    Ok(Response::Data(ClientResponse::Found { values, context })) => {
                        return Ok(Watched::Changed(ReadResult { values, context }));
                    }
                    Ok(Response::Data(ClientResponse::Unchanged)) => return Ok(Watched::Unchanged),
                    Ok(Response::Data(ClientResponse::Failed(
                        error @ (RequestError::NotReady { .. } | RequestError::NoReplicas),
                    ))) => last = error.to_string(),
                    Ok(Response::Data(ClientResponse::Failed(error))) => return Err(error.into()),
                    Ok(other) => {
                        return Err(ClientError::Unexpected {
                            answer: format!("{other:?}"),
                        });
                    }
                    Err(ClientError::Unreachable { last: why, .. }) => last = why,
                    Err(error) => return Err(error),
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
            // No node could hold the watch: re-arm after a pause.
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(200))).await;
        }
    }

    /// Re-reads the ring from the first node that answers.
    pub async fn refresh_ring(&self) -> Result<(), ClientError> {
        let mut candidates = self.inner.seeds.clone();
        candidates.extend(
            self.inner
                .view
                .lock()
                .await
                .members
                .values()
                .filter(|m| m.up)
                .map(|m| m.addr),
        );
        candidates.dedup();
        let mut last = String::from("no seeds given");
        for addr in &candidates {
            match self.status_of(*addr).await {
                Ok(report) => {
                    self.install(report).await;
                    return Ok(());
                }
                Err(ClientError::Unreachable { last: why, .. }) => last = why,
                Err(other) => return Err(other),
            }
        }
        Err(ClientError::Unreachable {
            tried: candidates.len(),
            last,
        })
    }

    async fn install(&self, report: StatusReport) {
        let mut view = self.inner.view.lock().await;
        let owners = report
            .members
            .iter()
            .filter(|m| matches!(m.status, NodeStatus::Normal | NodeStatus::Leaving))
            .map(|m| m.node);
        view.ring = Ring::with_nodes(report.vnodes.max(1), owners);
        view.replication = report.replication;
        view.members = report.members.into_iter().map(|m| (m.node, m)).collect();
        view.refreshed = Some(Instant::now());
    }

    /// Nodes to try for `key`: live replicas in preference order, then the
    /// other live nodes, then the seeds.
    async fn candidates(&self, key: &[u8]) -> Vec<SocketAddr> {
        let stale = {
            let view = self.inner.view.lock().await;
            view.refreshed
                .is_none_or(|at| at.elapsed() > self.inner.options.ring_refresh)
        };
        if stale {
            // A failed refresh keeps the old view; the request will tell.
            let _ = self.refresh_ring().await;
        }
        let view = self.inner.view.lock().await;
        let nodes = view.ring.nodes();
        let mut order: Vec<SocketAddr> = Vec::with_capacity(nodes.len() + self.inner.seeds.len());
        let replicas = view.ring.preference_list(key, view.replication);
        let live = |node: &NodeId| view.members.get(node).filter(|m| m.up).map(|m| m.addr);
        let others = nodes.iter().filter(|n| !replicas.contains(n));
        let found = replicas.iter().chain(others).filter_map(live);
        // (A few nodes: a linear search is cheaper than a set.)
        for addr in found.chain(self.inner.seeds.iter().copied()) {
            if !order.contains(&addr) {
                order.push(addr);
            }
        }
        order
    }

    /// Sends a request to the key's replicas in turn. Moves on when a node
    /// is unreachable or not ready; a write that was sent but unanswered is
    /// not sent again (it may have been applied).
    async fn data_request(&self, mut request: ClientRequest) -> Result<ClientResponse, ClientError> {
        request.default_consistency(self.inner.options.default_consistency);
        let candidates = self.candidates(request.key()).await;
        let is_read = matches!(request, ClientRequest::Get { .. });
        self.send(Request::Data(request), candidates, is_read).await
    }

    /// Sends `request` to `candidates` in turn (up to the retry policy's
    /// count). A request that was sent but unanswered goes on to the next
    /// node only if it is a read (`is_read`).
    async fn send(
        &self,
        request: Request,
        mut candidates: Vec<SocketAddr>,
        is_read: bool,
    ) -> Result<ClientResponse, ClientError> {
        candidates.truncate(self.inner.options.max_nodes_per_request);
        let mut last = String::from("no nodes known");
        for &addr in &candidates {
            match self.attempt(addr, &request).await {
                Ok(Response::Data(ClientResponse::Failed(RequestError::NotReady { .. }))) => {
                    last = format!("{addr}: still learning the ring");
                }
                Ok(Response::Data(ClientResponse::Failed(error))) => return Err(error.into()),
                Ok(Response::Data(response)) => return Ok(response),
                Ok(Response::Admin(other)) => {
                    return Err(ClientError::Unexpected {
                        answer: format!("{other:?}"),
                    });
                }
                Err(Attempt::Final(error)) => return Err(error),
                Err(Attempt::NoAnswer(why)) if !is_read => {
                    return Err(ClientError::Indeterminate {
                        node: addr,
                        reason: why,
                    });
                }
                // A connection that failed is replaced on the next request
                // to this node; one that only timed out stays (its other
                // requests are fine).
                Err(Attempt::NotSent(why) | Attempt::NoAnswer(why)) => {
                    last = format!("{addr}: {why}");
                }
            }
        }
        Err(ClientError::Unreachable {
            tried: candidates.len(),
            last,
        })
    }

    /// One request to one node: connecting and answering each bounded by
    /// the attempt timeout.
    async fn attempt(&self, addr: SocketAddr, request: &Request) -> Result<Response, Attempt> {
        self.attempt_within(addr, request, self.inner.options.attempt_timeout)
            .await
    }

    /// [`Client::attempt`] waiting up to `answer_within` for the answer.
    async fn attempt_within(
        &self,
        addr: SocketAddr,
        request: &Request,
        answer_within: Duration,
    ) -> Result<Response, Attempt> {
        let timeout = self.inner.options.attempt_timeout;
        let pipe = tokio::time::timeout(timeout, self.pipe(addr))
            .await
            .map_err(|_| Attempt::NotSent(format!("could not connect within {timeout:?}")))??;
        pipe.call(request, answer_within).await
    }

    /// The request streams to `addr`: the open ones, or new ones on a new
    /// connection.
    async fn pipe(&self, addr: SocketAddr) -> Result<Arc<pipe::Pipe>, Attempt> {
        if let Some(pipe) = self.open_pipe(addr) {
            return Ok(pipe);
        }
        let lock = self
            .inner
            .connecting
            .lock()
            .await
            .entry(addr)
            .or_default()
            .clone();
        let _connecting = lock.lock().await;
        // Another request may have connected meanwhile.
        if let Some(pipe) = self.open_pipe(addr) {
            return Ok(pipe);
        }
        let connecting = self
            .inner
            .endpoint
            .connect(addr, SERVER_NAME)
            .map_err(|e| Attempt::NotSent(e.to_string()))?;
        let connection = connecting
            .await
            .map_err(|e| Attempt::NotSent(handshake_failed(e)))?;
        if !Role::is_node(&connection) {
            connection.close(0u32.into(), b"not a node");
            return Err(Attempt::NotSent(format!(
                "{addr} presented a certificate that is not a node's"
            )));
        }
        let pipe = Arc::new(pipe::Pipe::open(addr, connection).await?);
        let old = self.pipes().insert(addr, pipe.clone());
        if let Some(old) = old {
            // It failed: nothing more goes through it.
            old.connection().close(0u32.into(), b"replaced");
        }
        Ok(pipe)
    }

    /// The usable request streams to `addr`, if there are.
    fn open_pipe(&self, addr: SocketAddr) -> Option<Arc<pipe::Pipe>> {
        self.pipes().get(&addr).filter(|pipe| pipe.usable()).cloned()
    }

    fn pipes(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<pipe::Pipe>>> {
        self.inner
            .pipes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.inner.endpoint.close(0u32.into(), b"client closing");
        self.inner.endpoint.wait_idle().await;
    }
}

/// What went wrong on `connection`: `error`, or, when the node closed the
/// connection because of this client's certificate, that reason
/// ("certificate revoked", "certificate expired").
fn closed_because(connection: &quinn::Connection, error: impl std::fmt::Display) -> String {
    match connection.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(close))
            if close.error_code == crate::net::revocation::CLOSE_CERTIFICATE.into() =>
        {
            format!(
                "{} closed the connection: {}",
                connection.remote_address(),
                String::from_utf8_lossy(&close.reason)
            )
        }
        _ => error.to_string(),
    }
}

/// Why a connection could not be made, naming a protocol mismatch (a node
/// of another shoal release) as such.
fn handshake_failed(error: quinn::ConnectionError) -> String {
    match &error {
        quinn::ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::crypto(NO_APPLICATION_PROTOCOL) =>
        {
            format!(
                "the node does not speak shoal protocol {PROTOCOL_VERSION}, which this client speaks: \
                 client and node are of different shoal releases ({error})"
            )
        }
        _ => error.to_string(),
    }
}

/// The TLS alert a server sends when it speaks none of the client's
/// protocols (RFC 7301).
const NO_APPLICATION_PROTOCOL: u8 = 120;

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Operator calls (a node's status, leave, remove) and waiting for the
/// cluster to settle, apart from the data calls. Get one with
/// [`Client::admin`]; it shares the client's connections.
///
/// ```no_run
/// # async fn demo(client: shoal::Client) -> Result<(), shoal::ClientError> {
/// let node = "127.0.0.1:7101".parse().unwrap();
/// let report = client.admin().status(node).await?;
/// for member in &report.members {
///     println!("{} {} up={}", member.node, member.status, member.up);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    /// Revokes the certificate with `serial` (lowercase hex, see
    /// [`crate::net::tls::normalize_serial`]): adds it to the cluster's
    /// deny list, read and written at QUORUM. Every node refuses it within
    /// seconds, on new connections and on open ones. Returns the list as
    /// written. Needs an admin certificate.
    pub async fn revoke(&self, serial: &str) -> Result<RevocationList, ClientError> {
        let read = self.client.get(REVOKED_KEY, Consistency::Quorum).await?;
        let (mut list, _) = RevocationList::from_values(&read.values);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        list.revoked.entry(serial.to_string()).or_insert(now);
        self.client
            .put(REVOKED_KEY, list.encode(), &read.context, Consistency::Quorum)
            .await?;
        Ok(list)
    }

    /// Makes a bearer token for the HTTP API with `role` (admin,
    /// readwrite or readonly), written at QUORUM; returns its id and the
    /// token, which is shown only now (the cluster keeps only its hash).
    pub async fn create_token(&self, name: &str, role: Role) -> Result<(String, String), ClientError> {
        if role == Role::Node {
            return Err(ClientError::Unexpected {
                answer: "a token cannot have the node role".to_string(),
            });
        }
        let (id, secret, token) = tokens::generate();
        let record = tokens::TokenRecord {
            name: name.to_string(),
            role: role.to_string(),
            secret_sha256: tokens::sha256_hex(secret.as_bytes()),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        self.client
            .put(
                tokens::record_key(&id),
                record.encode(),
                &Context::empty(),
                Consistency::Quorum,
            )
            .await?;
        Ok((id, token))
    }

    /// Every token (id and record), read at QUORUM.
    pub async fn tokens(&self) -> Result<Vec<(String, tokens::TokenRecord)>, ClientError> {
        let listed = self.list_system(tokens::TOKEN_PREFIX).await?;
        Ok(listed
            .into_iter()
            .filter_map(|(id, values)| Some((id, tokens::TokenRecord::from_values(&values)?)))
            .collect())
    }

    /// Revokes token `id`: deletes its record at QUORUM; every node refuses
    /// it within seconds. Whether there was one.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, ClientError> {
        self.delete_record(&tokens::record_key(id)).await
    }

    /// Makes an S3 access key for `name`, which may make buckets through
    /// the gateway if `create_buckets`; returns its id and secret (shown
    /// only now by the CLI). Written at QUORUM.
    pub async fn s3_create_key(
        &self,
        name: &str,
        create_buckets: bool,
    ) -> Result<(String, String), ClientError> {
        let (id, secret) = s3::generate_key();
        let record = s3::KeyRecord {
            name: name.to_string(),
            secret: secret.clone(),
            created: unix_seconds(),
            create_buckets,
        };
        self.client
            .put(
                s3::key_record(&id),
                record.encode(),
                &Context::empty(),
                Consistency::Quorum,
            )
            .await?;
        Ok((id, secret))
    }

    /// Every S3 access key (id and record), read at QUORUM.
    pub async fn s3_keys(&self) -> Result<Vec<(String, s3::KeyRecord)>, ClientError> {
        let listed = self.list_system(s3::KEY_PREFIX).await?;
        Ok(listed
            .into_iter()
            .filter_map(|(id, values)| Some((id, s3::KeyRecord::from_values(&values)?)))
            .collect())
    }

    /// Deletes S3 access key `id`; whether there was one.
    pub async fn s3_delete_key(&self, id: &str) -> Result<bool, ClientError> {
        self.delete_record(&s3::key_record(id)).await
    }

    /// Makes bucket `name` (refused if the name is not one S3 clients
    /// accept, or the bucket exists).
    pub async fn s3_create_bucket(&self, name: &str) -> Result<(), ClientError> {
        s3::check_bucket_name(name).map_err(|reason| ClientError::Rejected { reason })?;
        let key = s3::bucket_record(name);
        let read = self.client.get(&key, Consistency::Quorum).await?;
        if s3::BucketRecord::from_values(&read.values).is_some() {
            return Err(ClientError::Rejected {
                reason: format!("bucket {name} exists"),
            });
        }
        let record = s3::BucketRecord {
            created: unix_seconds(),
            rights: Default::default(),
            location: None,
        };
        self.client
            .put(&key, record.encode(), &read.context, Consistency::Quorum)
            .await?;
        Ok(())
    }

    /// Every bucket (name and record), read at QUORUM.
    pub async fn s3_buckets(&self) -> Result<Vec<(String, s3::BucketRecord)>, ClientError> {
        let listed = self.list_system(s3::BUCKET_PREFIX).await?;
        Ok(listed
            .into_iter()
            .filter_map(|(name, values)| Some((name, s3::BucketRecord::from_values(&values)?)))
            .collect())
    }

    /// Deletes bucket `name`: refused while it holds objects. Whether
    /// there was one.
    pub async fn s3_delete_bucket(&self, name: &str) -> Result<bool, ClientError> {
        let objects = ListOptions::prefix(s3::object_prefix(name))
            .limit(1)
            .consistency(Consistency::Quorum);
        if !self.client.list(&objects).await?.keys.is_empty() {
            return Err(ClientError::Rejected {
                reason: format!("bucket {name} is not empty"),
            });
        }
        self.delete_record(&s3::bucket_record(name)).await
    }

    /// Gives access key `id` `rights` on bucket `name` (added to what it
    /// has). Both must exist.
    pub async fn s3_allow(&self, id: &str, bucket: &str, rights: s3::Rights) -> Result<(), ClientError> {
        let key = self.client.get(s3::key_record(id), Consistency::Quorum).await?;
        if s3::KeyRecord::from_values(&key.values).is_none() {
            return Err(ClientError::Rejected {
                reason: format!("no S3 key {id}"),
            });
        }
        let record_key = s3::bucket_record(bucket);
        let read = self.client.get(&record_key, Consistency::Quorum).await?;
        let Some(mut record) = s3::BucketRecord::from_values(&read.values) else {
            return Err(ClientError::Rejected {
                reason: format!("no bucket {bucket}"),
            });
        };
        let entry = record.rights.entry(id.to_string()).or_default();
        *entry = entry.union(rights);
        self.client
            .put(&record_key, record.encode(), &read.context, Consistency::Quorum)
            .await?;
        Ok(())
    }

    /// Every record under `prefix` (a system prefix): the rest of its key
    /// as text, and its values.
    async fn list_system(&self, prefix: &[u8]) -> Result<Vec<(String, Vec<Value>)>, ClientError> {
        let options = ListOptions::prefix(prefix)
            .limit(crate::proto::message::MAX_LIST_LIMIT)
            .values(true)
            .consistency(Consistency::Quorum);
        let listed = self.client.list_all(&options).await?;
        Ok(listed
            .into_iter()
            .filter_map(|entry| {
                Some((
                    String::from_utf8(entry.key[prefix.len()..].to_vec()).ok()?,
                    entry.values,
                ))
            })
            .collect())
    }

    /// Deletes a record read at QUORUM; whether there was one.
    async fn delete_record(&self, key: &[u8]) -> Result<bool, ClientError> {
        let read = self.client.get(key, Consistency::Quorum).await?;
        if read.values.is_empty() {
            return Ok(false);
        }
        self.client
            .delete(key, &read.context, Consistency::Quorum)
            .await?;
        Ok(true)
    }

    /// The cluster's deny list, read at QUORUM. Needs an admin certificate.
    pub async fn revoked(&self) -> Result<RevocationList, ClientError> {
        let read = self.client.get(REVOKED_KEY, Consistency::Quorum).await?;
        Ok(RevocationList::from_values(&read.values).0)
    }

    /// The status report of the node at `addr`: its view of the members,
    /// its counters, hints and storage health.
    pub async fn status(&self, addr: SocketAddr) -> Result<StatusReport, ClientError> {
        self.client.status_of(addr).await
    }

    /// Sends an admin request to the node at `addr`.
    pub async fn request(
        &self,
        addr: SocketAddr,
        request: AdminRequest,
    ) -> Result<AdminResponse, ClientError> {
        // A leave answers once every range is handed off.
        let answer_within = match request {
            AdminRequest::Leave => LEAVE_TIMEOUT,
            _ => self.client.inner.options.attempt_timeout,
        };
        match self
            .client
            .ask(addr, &Request::Admin(request), answer_within)
            .await?
        {
            Response::Admin(AdminResponse::Refused { reason }) => Err(ClientError::Admin { reason }),
            Response::Admin(response) => Ok(response),
            Response::Data(other) => Err(unexpected(other)),
        }
    }

    /// Waits until each node in `nodes` answers and sees exactly `up`
    /// members up and normal (joined, owning their ranges), then refreshes
    /// the ring.
    pub async fn wait_until_members_up(
        &self,
        nodes: &[SocketAddr],
        up: usize,
        within: Duration,
    ) -> Result<(), ClientError> {
        let deadline = Instant::now() + within;
        loop {
            let mut last = None;
            for &addr in nodes {
                match self.client.status_of(addr).await {
                    Ok(report) => {
                        let seen = report
                            .members
                            .iter()
                            .filter(|m| m.up && m.status == NodeStatus::Normal)
                            .count();
                        if seen != up {
                            last = Some(format!("{addr} sees {seen} members up and normal"));
                        }
                    }
                    Err(error) => last = Some(format!("{addr}: {error}")),
                }
            }
            let Some(last) = last else {
                return self.client.refresh_ring().await;
            };
            if Instant::now() >= deadline {
                return Err(ClientError::NotSettled {
                    reason: format!("members did not settle on {up} up within {within:?}: {last}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Loopback seeds get a loopback socket, so tests never leave the host.
fn local_bind(seeds: &[SocketAddr]) -> SocketAddr {
    match seeds.first() {
        Some(SocketAddr::V4(a)) if a.ip().is_loopback() => (Ipv4Addr::LOCALHOST, 0).into(),
        Some(SocketAddr::V6(a)) if a.ip().is_loopback() => (Ipv6Addr::LOCALHOST, 0).into(),
        Some(SocketAddr::V6(_)) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        _ => (Ipv4Addr::UNSPECIFIED, 0).into(),
    }
}

fn read_result(response: ClientResponse) -> Result<ReadResult, ClientError> {
    match response {
        ClientResponse::Found { values, context } => Ok(ReadResult { values, context }),
        other => Err(unexpected(other)),
    }
}

fn written(response: ClientResponse) -> Result<Context, ClientError> {
    match response {
        ClientResponse::Written { context, .. } => Ok(context),
        other => Err(unexpected(other)),
    }
}

fn unexpected(response: ClientResponse) -> ClientError {
    ClientError::Unexpected {
        answer: format!("{response:?}"),
    }
}
