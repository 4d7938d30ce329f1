//! Every message that crosses the wire: client requests and responses, and
//! the replica protocol between peers.
//!
//! Messages are encoded as MessagePack arrays (compact; a field added breaks
//! old readers), so any change to a message's shape must bump
//! [`PROTOCOL_VERSION`]. The frame layer (`net::frame`) writes the version in
//! front of every body and refuses versions it does not speak before decoding
//! anything else.

use super::membership::{MemberState, NodeStatus};
use super::quorum::Consistency;
use super::types::NodeId;
use super::version::{Dot, VersionVector, Versioned};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// The wire protocol this build speaks.
///
/// 6: a client stream carries many requests, each tagged with an id the
/// answer repeats ([`Tagged`]); answers come back in any order.
/// 7: watches ([`Request::Watch`], [`ClientResponse::Unchanged`], and the
/// peer messages `WatchStart`, `WatchReply`, `WatchCancel`).
/// 8: a frame on a peer's message stream holds a [`PeerBatch`], every
/// message one turn of the sender's driver had for that peer, not one.
pub const PROTOCOL_VERSION: u16 = 8;

/// The causal context a read returns and a write passes back: everything the
/// reader had seen. Opaque to clients; printable as hex for the CLI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context(pub(crate) VersionVector);

impl Context {
    /// The empty context: a write with it supersedes nothing.
    pub fn empty() -> Context {
        Context::default()
    }

    /// Whether it covers nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The version vector inside.
    pub fn version_vector(&self) -> &VersionVector {
        &self.0
    }
}

impl From<VersionVector> for Context {
    fn from(clock: VersionVector) -> Context {
        Context(clock)
    }
}

impl fmt::Display for Context {
    /// Lower-case hex of the MessagePack encoding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = rmp_serde::to_vec(&self.0).map_err(|_| fmt::Error)?;
        bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A context string that is not one this build printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed context: expected the hex string a get printed")]
pub struct MalformedContext;

impl std::str::FromStr for Context {
    type Err = MalformedContext;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(Context::empty());
        }
        if s.len() % 2 != 0 || !s.is_ascii() {
            return Err(MalformedContext);
        }
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| MalformedContext)?;
        rmp_serde::from_slice(&bytes)
            .map(Context)
            .map_err(|_| MalformedContext)
    }
}

/// Which kind of client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Operation {
    /// Read a key.
    Get,
    /// Write a value.
    Put,
    /// Write a tombstone.
    Delete,
    /// List keys.
    List,
    /// Watch a key.
    Watch,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Get => "get",
            Operation::Put => "put",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Watch => "watch",
        })
    }
}

/// A client's request to any node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientRequest {
    /// Read every sibling of `key`.
    Get {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// How many replicas must answer.
        consistency: Consistency,
        /// Deadline in milliseconds from arrival; the node's default if none.
        timeout_ms: Option<u32>,
        /// Which replicas are asked. Left out of the encoding when
        /// [`Fanout::All`], so that a request encodes as before.
        #[serde(default, skip_serializing_if = "Fanout::is_all")]
        fanout: Fanout,
    },
    /// Write `value`, superseding what `context` saw.
    Put {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// The context of the read this write follows, or empty.
        context: Context,
        /// How many replicas must acknowledge.
        consistency: Consistency,
        /// Deadline in milliseconds from arrival; the node's default if none.
        timeout_ms: Option<u32>,
        /// Sloppy quorum: a home replica known to be down is stood in for
        /// by the next live node on the ring, which keeps a hint for it and
        /// counts toward W.
        sloppy_quorum: bool,
        /// Time to live in milliseconds: the value reads as absent once it
        /// has passed (from the coordinator's clock when it takes the
        /// write). Within the node's `min_ttl..=max_ttl`. Left out of the
        /// encoding when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
    /// Delete `key`: a tombstone superseding what `context` saw.
    Delete {
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The context of the read this delete follows.
        context: Context,
        /// How many replicas must acknowledge.
        consistency: Consistency,
        /// Deadline in milliseconds from arrival; the node's default if none.
        timeout_ms: Option<u32>,
        /// Sloppy quorum: a home replica known to be down is stood in for
        /// by the next live node on the ring, which keeps a hint for it and
        /// counts toward W.
        sloppy_quorum: bool,
    },
}

/// Which of a key's replicas a read asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fanout {
    /// Every replica that is up: the answer comes from the first R, the
    /// others' answers repair stale replicas (read repair).
    #[default]
    All,
    /// Only as many replicas as the consistency needs, the coordinator's
    /// own copy first; a replica that fails is replaced by the next one.
    /// No read repair. R + W > N still holds, so a read at R sees what a
    /// write at W acknowledged. Meant for values that never change once
    /// written (the object gateway's data blocks), where repair has
    /// nothing to do and the other replicas' copies are wasted work.
    Needed,
}

impl Fanout {
    /// Whether every replica is asked.
    pub fn is_all(&self) -> bool {
        *self == Fanout::All
    }
}

/// Keys that begin with these bytes hold the cluster's own records (the
/// revocation list, and later the object gateway's keys and buckets): they
/// replicate, repair and read like any key, but only admin certificates may
/// read or write them directly.
pub const SYSTEM_KEY_PREFIX: &[u8] = b"\0shoal/";

/// Whether `key` is one of the cluster's own records.
pub fn is_system_key(key: &[u8]) -> bool {
    key.starts_with(SYSTEM_KEY_PREFIX)
}

impl ClientRequest {
    /// The request's key.
    pub fn key(&self) -> &[u8] {
        match self {
            ClientRequest::Get { key, .. }
            | ClientRequest::Put { key, .. }
            | ClientRequest::Delete { key, .. } => key,
        }
    }

    /// Which operation it is.
    pub fn operation(&self) -> Operation {
        match self {
            ClientRequest::Get { .. } => Operation::Get,
            ClientRequest::Put { .. } => Operation::Put,
            ClientRequest::Delete { .. } => Operation::Delete,
        }
    }

    /// The requested consistency.
    pub fn consistency(&self) -> Consistency {
        match self {
            ClientRequest::Get { consistency, .. }
            | ClientRequest::Put { consistency, .. }
            | ClientRequest::Delete { consistency, .. } => *consistency,
        }
    }

    /// Puts `default` in place of [`Consistency::Default`] (a client's own
    /// default); other levels stay.
    pub fn default_consistency(&mut self, default: Consistency) {
        match self {
            ClientRequest::Get { consistency, .. }
            | ClientRequest::Put { consistency, .. }
            | ClientRequest::Delete { consistency, .. } => {
                if *consistency == Consistency::Default {
                    *consistency = default;
                }
            }
        }
    }

    /// The requested deadline, if any.
    pub fn timeout_ms(&self) -> Option<u32> {
        match self {
            ClientRequest::Get { timeout_ms, .. }
            | ClientRequest::Put { timeout_ms, .. }
            | ClientRequest::Delete { timeout_ms, .. } => *timeout_ms,
        }
    }

    fn timeout_ms_mut(&mut self) -> &mut Option<u32> {
        match self {
            ClientRequest::Get { timeout_ms, .. }
            | ClientRequest::Put { timeout_ms, .. }
            | ClientRequest::Delete { timeout_ms, .. } => timeout_ms,
        }
    }

    /// Whether a write may count fallback nodes toward W (false for a get).
    pub fn sloppy_quorum(&self) -> bool {
        match self {
            ClientRequest::Get { .. } => false,
            ClientRequest::Put { sloppy_quorum, .. } | ClientRequest::Delete { sloppy_quorum, .. } => {
                *sloppy_quorum
            }
        }
    }

    /// The same request with a new deadline (used when forwarding).
    pub fn with_timeout_ms(mut self, ms: u32) -> ClientRequest {
        *self.timeout_ms_mut() = Some(ms);
        self
    }
}

/// An operator's request to a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminRequest {
    /// The node's view of the cluster and its counters.
    Status,
    /// Leave the cluster: the node marks itself left, tells the others and
    /// stops.
    Leave,
    /// Forget a dead node: it no longer owns ranges.
    RemoveNode {
        /// The node to remove.
        node: NodeId,
    },
}

/// Most keys one listing page returns (and one replica answers with).
pub const MAX_LIST_LIMIT: u32 = 1_000;

/// A page of keys in byte order, from `start` (inclusive) up to `end`
/// (exclusive; none: the end of the keyspace). A prefix `p` is the range
/// from `p` to [`prefix_end`]`(p)`. To continue after a page, list again
/// from [`after`]`(next)`. Keys are placed by hash, so every page asks the
/// replicas of the whole ring: it is complete only when, for every range
/// of the ring, R of its replicas answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRequest {
    /// The first key.
    #[serde(with = "serde_bytes")]
    pub start: Vec<u8>,
    /// The key the listing stops before; none: to the end.
    #[serde(with = "serde_bytes")]
    pub end: Option<Vec<u8>>,
    /// Most keys in the page (1..=[`MAX_LIST_LIMIT`]).
    pub limit: u32,
    /// Each key's values too (else only keys and contexts).
    pub values: bool,
    /// How many replicas of every range must answer (the read part).
    pub consistency: Consistency,
    /// Deadline in milliseconds from arrival; the node's default if none.
    pub timeout_ms: Option<u32>,
}

/// The key right after `key` in byte order: where to list on from after a
/// page whose `next` is `key`.
pub fn after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The first key past every key that begins with `prefix`; none if there
/// is none (the prefix is empty or all 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// One key of a listing page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedKey {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Its siblings, if the request asked for values (else empty).
    pub values: Vec<Value>,
    /// Its context, to write or delete it after this listing.
    pub context: Context,
}

/// What a replica answers to a listing: its first states from the start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedStates {
    /// States in key order, deleted ones (tombstones) included.
    pub states: Vec<KeyState>,
    /// Whether these are all its keys up to the end of the range; if not,
    /// it knows nothing past the last one.
    pub complete: bool,
}

/// Wait until `key` changes past what `context` saw, or `timeout_ms`.
/// Answered with [`ClientResponse::Found`] (the key's state on the replica
/// that saw the change first, and its context) as soon as a replica of
/// the key holds a state `context` does not cover, or with
/// [`ClientResponse::Unchanged`] at the timeout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// What the watcher has seen (a read's or an earlier watch's context;
    /// empty: any state of the key is a change).
    pub context: Context,
    /// How long to wait, in milliseconds (at most `max_watch_timeout`).
    pub timeout_ms: u32,
}

/// What a client sends on a request stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// A get, put or delete.
    Data(ClientRequest),
    /// An operator request.
    Admin(AdminRequest),
    /// A listing of keys, answered with [`ClientResponse::Listed`] in
    /// [`Response::Data`].
    List(ListRequest),
    /// A watch of a key, answered in [`Response::Data`].
    Watch(WatchRequest),
}

/// What a node answers on a request stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// The answer to [`Request::Data`].
    Data(ClientResponse),
    /// The answer to [`Request::Admin`].
    Admin(AdminResponse),
}

/// A request or answer on a client stream, tagged with the id the client
/// chose for the request. A client stream carries any number of requests,
/// one after another; the node answers each with the same id, in the order
/// the answers are ready (not the order of the requests).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tagged<T> {
    /// The client's id for the request.
    pub id: u64,
    /// The request or the answer.
    pub body: T,
}

/// The body of every frame after the [`PeerHello`] on a peer's message
/// stream: the messages for that peer, in the order the sender's core made
/// them. A sender puts all it has for the peer at once in one frame (up to
/// a size), so replies and acknowledgements travel with the requests made
/// in the same turn, and the receiver hands them to its core together.
pub type PeerBatch = Vec<PeerMessage>;

/// The first frame on a peer's message stream: who is sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHello {
    /// The sending node.
    pub node: NodeId,
}

/// An interval of ring positions and a node's summary of its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AeInterval {
    /// First position.
    pub first: u64,
    /// Last position.
    pub last: u64,
    /// XOR digest and count of the keys in it.
    pub summary: super::digest_tree::Summary,
}

/// A key and the digest of its state (anti-entropy compares them; tombstone
/// collection asks whether a replica holds exactly this state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDigest {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Its digest.
    pub digest: u64,
}

/// A key and its whole state, as every bulk message carries it:
/// anti-entropy repairs, replayed and handed-off hints, join and leave
/// streams, cleanup pushes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Its state.
    pub object: Versioned,
}

/// A place in a range being streamed: the last (ring position, key) sent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamCursor {
    /// The key's ring position.
    pub position: u64,
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
}

/// How far a join or a leave has moved its ranges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamProgress {
    /// Joining (receiving ranges) or leaving (handing them off).
    pub leaving: bool,
    /// Ranges to move.
    pub ranges: u64,
    /// Ranges moved.
    pub ranges_done: u64,
    /// Keys moved so far.
    pub keys: u64,
    /// Bytes of states moved so far.
    pub bytes: u64,
    /// Replicas of the ranges to move that have not yet confirmed they
    /// know of the join or leave: nothing moves until they do (enough of
    /// them; see the topology module).
    #[serde(default)]
    pub unconfirmed: u64,
}

/// One member as a node sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberReport {
    /// The node.
    pub node: NodeId,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its generation (bumped on every start).
    pub generation: u64,
    /// Its ring status.
    pub status: NodeStatus,
    /// Whether the failure detector considers it alive.
    pub up: bool,
    /// Its share of the ring as first replica (0 if it owns none).
    pub ownership: f64,
    /// Its storage failed (a full or failing disk): it serves reads, takes
    /// no writes, and coordinators write to stand-ins for it.
    #[serde(default)]
    pub storage_failed: bool,
}

/// Counters of one node since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Client requests this node coordinated or forwarded.
    pub requests: u64,
    /// Requests that failed for lack of replicas' answers.
    pub quorum_failures: u64,
    /// Writes this node forwarded because it is not a replica.
    pub forwards: u64,
    /// Replica reads and writes served for peers.
    pub replica_ops: u64,
    /// Stale replicas a read wrote the merged state back to.
    pub read_repairs: u64,
    /// Anti-entropy exchanges this node started.
    pub ae_exchanges: u64,
    /// Keys whose state anti-entropy changed here.
    pub ae_keys_repaired: u64,
    /// Bytes of anti-entropy messages this node sent (approximate).
    pub ae_bytes_sent: u64,
    /// Hints this node stored for replicas that missed a write.
    pub hints_stored: u64,
    /// Hints delivered to their replica and deleted.
    pub hints_replayed: u64,
    /// Keys this node received while joining.
    pub keys_streamed_in: u64,
    /// Bytes of states this node received while joining.
    pub bytes_streamed_in: u64,
    /// Keys this node handed off while leaving.
    pub keys_handed_off: u64,
    /// Tombstones removed here, every home replica having held them.
    pub tombstones_removed: u64,
    /// Keys of ranges this node no longer owns, removed once their owners
    /// held them (cleanup after a join or leave).
    pub keys_cleaned_up: u64,
    /// Stored records that failed their checksum or could not be decoded:
    /// dropped, never served, and repaired from the other replicas.
    pub corrupt_records_dropped: u64,
    /// Digest index entries the background sweep found wrong and rewrote.
    pub digests_repaired: u64,
    /// Hints not stored or thrown away: past the hint window, over the
    /// per-replica byte limit, or for a removed node. Anti-entropy repairs
    /// what they held.
    pub hints_dropped: u64,
    /// Hints past the hint window whose state this node pushed to every
    /// live home replica of their key instead (or merged into its own
    /// copy, when it had become one), then deleted.
    pub hints_rehomed: u64,
    /// Replica requests refused because the coordinator's view of the
    /// key's replicas lacked a join or leave this node knows of (the
    /// coordinator is sent this node's member states to catch up).
    pub placement_refusals: u64,
    /// Peer messages dropped at the core's boundary as malformed (a key
    /// out of bounds, a reversed interval, a state breaking its
    /// invariants, ...): nothing in them was applied.
    #[serde(default)]
    pub invalid_messages: u64,
    /// Times this node's storage failed (a full or failing disk) and it
    /// turned read-only until the store took writes again.
    #[serde(default)]
    pub storage_failures: u64,
}

/// Hints one node holds for one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintsPending {
    /// The replica the hints are for.
    pub target: NodeId,
    /// How many.
    pub count: u64,
    /// Their size in bytes.
    pub bytes: u64,
}

/// A node's answer to [`AdminRequest::Status`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The answering node.
    pub node: NodeId,
    /// Its generation.
    pub generation: u64,
    /// Every member it knows, itself included, by node id.
    pub members: Vec<MemberReport>,
    /// Its counters.
    pub stats: Stats,
    /// Operations it is coordinating now.
    pub in_flight: usize,
    /// N.
    pub replication: usize,
    /// Virtual nodes per node (clients compute the same ring).
    pub vnodes: u32,
    /// Hints waiting for their replica, by replica.
    pub hints: Vec<HintsPending>,
    /// Keys this node stores (tombstones included).
    pub keys: u64,
    /// The root of its digest tree: the XOR of every stored key's digest,
    /// and the key count. Two nodes holding the same keys in the same
    /// states have the same root (with N equal to the cluster size, every
    /// converged node does).
    pub root: super::digest_tree::Summary,
    /// The join or leave this node is carrying out, if any.
    pub streaming: Option<StreamProgress>,
    /// Why this node's storage failed, while it has not recovered (it
    /// serves reads and refuses writes); `None` while it is healthy.
    #[serde(default)]
    pub storage_failure: Option<String>,
}

/// A node's answer to an [`AdminRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminResponse {
    /// The status asked for.
    Status(Box<StatusReport>),
    /// The request was carried out.
    Done,
    /// The request was refused; nothing changed.
    Refused {
        /// Why.
        reason: AdminError,
    },
}

/// Why an admin request was refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The node does not know the member named.
    #[error("unknown node {node}")]
    UnknownNode {
        /// The node named.
        node: NodeId,
    },
    /// A node cannot remove itself; use leave.
    #[error("a node cannot remove itself; ask it to leave instead")]
    RemoveSelf,
    /// The node to remove is alive; ask it to leave instead.
    #[error("node {node} is alive; ask it to leave instead")]
    NodeAlive {
        /// The node named.
        node: NodeId,
    },
    /// This node runs without membership (a test cluster).
    #[error("this node runs without membership")]
    NoMembership,
    /// The node is the last that owns data; leaving would lose it all.
    #[error("this is the only node that owns data; leaving would lose every key")]
    LastNode,
    /// The node is still joining; it can leave once it has joined.
    #[error("this node is still joining; ask again once it is normal")]
    StillJoining,
    /// The requester's certificate does not carry a role that may do this.
    #[error("the certificate's role is {role}; this needs the {needed} role")]
    Forbidden {
        /// The role of the requester's certificate.
        role: String,
        /// The least role that may make this request.
        needed: String,
    },
}

/// One live value of a key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    /// The bytes written (shared with the state they were read from, not
    /// copied; a large one decoded from a frame shares the frame's memory,
    /// [`super::shared_bytes`]).
    #[serde(deserialize_with = "super::shared_bytes::deserialize")]
    pub value: bytes::Bytes,
    /// The coordinator's wall clock at the write, ms since the Unix epoch.
    pub timestamp_ms: u64,
}

/// The value's bytes as a list of numbers, as for a `Vec<u8>` (the
/// simulator's traces hash this form).
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("value", &&self.value[..])
            .field("timestamp_ms", &self.timestamp_ms)
            .finish()
    }
}

/// A node's answer to a client request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientResponse {
    /// A get's result: every sibling (none if the key is absent or deleted)
    /// and the context to pass to a following write.
    Found {
        /// Concurrent values, oldest dot first.
        values: Vec<Value>,
        /// What this read saw.
        context: Context,
    },
    /// A put or delete reached its write quorum.
    Written {
        /// The key's context after the write, on its coordinator.
        context: Context,
        /// The write's unique version id.
        dot: Dot,
    },
    /// A listing page: live keys in byte order (deleted ones left out),
    /// and where to go on from, if the range may hold more.
    Listed {
        /// The keys.
        keys: Vec<ListedKey>,
        /// List again from [`after`]`(next)` for the next page; none when
        /// the range is exhausted.
        #[serde(with = "serde_bytes")]
        next: Option<Vec<u8>>,
    },
    /// The request failed; see the error for what happened to state.
    Failed(RequestError),
    /// A watch's timeout passed with no change of its key.
    Unchanged,
}

/// Why a request failed, and what happened to state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Too few replicas answered before the deadline. A failed write may
    /// still have reached `succeeded` replicas; it is not rolled back.
    #[error(
        "{operation} failed: {succeeded} of {replicas} replicas answered, {required} needed ({consistency})"
    )]
    QuorumNotMet {
        /// The operation.
        operation: Operation,
        /// The consistency asked for.
        consistency: Consistency,
        /// Replicas that answered in time.
        succeeded: usize,
        /// Replicas that had to answer.
        required: usize,
        /// Replicas asked.
        replicas: usize,
    },
    /// The consistency needs more replicas than a key has. Nothing changed.
    #[error("consistency {consistency} needs {required} replicas but keys have {replication}")]
    ImpossibleConsistency {
        /// The consistency asked for.
        consistency: Consistency,
        /// Replicas it needs.
        required: usize,
        /// N.
        replication: usize,
    },
    /// The key is empty or longer than the limit. Nothing changed.
    #[error("key of {size} bytes is outside the allowed 1..={max}")]
    BadKeySize {
        /// The key's length.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The value is longer than the limit. Nothing changed.
    #[error("value of {size} bytes exceeds the limit of {max}")]
    ValueTooLarge {
        /// The value's length.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The write would leave too many siblings; read, resolve and write
    /// with the context. Nothing changed.
    #[error("the write would leave {count} siblings, more than the limit of {max}")]
    TooManySiblings {
        /// Siblings the write would have left.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The node is coordinating as many requests as it allows. Nothing
    /// changed; retry later or elsewhere.
    #[error("node busy: {max} requests already in flight")]
    Busy {
        /// The limit.
        max: usize,
    },
    /// The node knows no replicas for the key (the ring is empty). Nothing
    /// changed.
    #[error("no replicas known for this key")]
    NoReplicas,
    /// A put's time to live is outside the node's limits. Nothing changed.
    #[error("a time to live of {ttl_ms} ms is outside {min_ms}..={max_ms} ms (min_ttl..=max_ttl)")]
    BadTtl {
        /// The time to live asked for.
        ttl_ms: u64,
        /// The shortest allowed (`min_ttl`).
        min_ms: u64,
        /// The longest allowed (`max_ttl`).
        max_ms: u64,
    },
    /// A watch's timeout is 0 or longer than the node allows
    /// (`max_watch_timeout`).
    #[error("watch timeout of {timeout_ms} ms is not within 1..={max_ms} ms")]
    BadWatchTimeout {
        /// The timeout asked for.
        timeout_ms: u32,
        /// The longest allowed.
        max_ms: u64,
    },
    /// A listing's limit or bounds are not acceptable. Nothing changed.
    #[error("invalid listing: {reason}")]
    InvalidListing {
        /// What is wrong.
        reason: String,
    },
    /// A forwarded write reached a node that is not one of the key's
    /// replicas (the two nodes' rings differ). Nothing changed.
    #[error("node {node} is not a replica of this key")]
    NotReplica {
        /// The node that refused.
        node: NodeId,
    },
    /// The node has just started and does not know the ring yet. Nothing
    /// changed; try another node.
    #[error("node {node} is still learning the ring; try another node")]
    NotReady {
        /// The node that refused.
        node: NodeId,
    },
    /// No replica could coordinate the write before the deadline. The write
    /// may have been applied by a replica whose answer was lost.
    #[error("write could not be forwarded: no replica of {tried} tried answered in time")]
    ForwardFailed {
        /// Replicas tried.
        tried: usize,
    },
    /// The coordinator's storage failed. Nothing was acknowledged.
    #[error("storage failed on node {node}: {reason}")]
    StorageFailed {
        /// The node whose storage failed.
        node: NodeId,
        /// The storage engine's description.
        reason: String,
    },
    /// A replica of the key is a memory node that holds as much as its
    /// limit allows: it refused the write, and too few others took it.
    /// Deletes are still taken; delete keys or raise `max_memory_bytes`.
    /// The write may have been applied by other replicas.
    #[error("node {node} is out of memory (limit {max} bytes): the write was refused")]
    OutOfMemory {
        /// The node that refused.
        node: NodeId,
        /// Its limit (`max_memory_bytes`).
        max: u64,
    },
    /// The key's state (all its siblings) would grow past the limit; read,
    /// resolve and write with the context. Nothing changed.
    #[error("the write would leave {size} bytes of state for the key, more than the limit of {max}")]
    StateTooLarge {
        /// The state's size after the write.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The client's certificate does not carry a role that may do this.
    /// Nothing changed.
    #[error("refused: the certificate's role is {role}; this needs the {needed} role")]
    Forbidden {
        /// The role of the client's certificate.
        role: String,
        /// The least role that may make this request.
        needed: String,
    },
    /// The request's causal context is not one a read returned (a
    /// counter out of range). Nothing changed.
    #[error("malformed context: {reason}")]
    MalformedContext {
        /// What is wrong with it.
        reason: super::version::MalformedState,
    },
}

/// Why a replica did not serve a coordinator's request. Nothing changed
/// on the replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The replica's storage failed (a full or failing disk), or refused
    /// the write while it has not recovered.
    #[error("replica storage failed: {reason}")]
    Storage {
        /// The storage engine's description.
        reason: String,
    },
    /// The coordinator's view of the key's replicas lacks a join or leave
    /// this replica knows of; the replica sent it its member states.
    #[error(
        "ring views differ: this replica sees replicas {:?} (future {:?}) for the key, the coordinator {:?} \
         (future {:?})",
        ours.current, ours.future, theirs.current, theirs.future
    )]
    PlacementMismatch {
        /// The key's replicas as this replica sees them.
        ours: Placement,
        /// As the coordinator sent them.
        theirs: Placement,
    },
    /// A hint for `node`, which this replica does not know as a member:
    /// it would never be delivered, so it is not kept.
    #[error("no hint stored for {node}: not a member this node knows")]
    UnknownNode {
        /// The node the hint was for.
        node: NodeId,
    },
    /// The replica is a memory node at its memory limit: it took nothing.
    #[error("replica out of memory: it holds as much as its limit of {max} bytes allows")]
    OutOfMemory {
        /// Its limit (`max_memory_bytes`).
        max: u64,
    },
    /// The replica holds as many watches as it may (`max_watches`).
    #[error("replica holds its most watches ({max})")]
    TooManyWatches {
        /// Its limit.
        max: usize,
    },
    /// A hint for `target` would go past this node's hint limits (the hint
    /// window, or the bytes held for that replica).
    #[error("no hint stored for {target}: over the hint limits")]
    HintLimits {
        /// The replica the hint was for.
        target: NodeId,
    },
}

impl From<super::store::StoreError> for ReplicaError {
    fn from(error: super::store::StoreError) -> ReplicaError {
        match error {
            super::store::StoreError::OutOfMemory { max, .. } => ReplicaError::OutOfMemory { max },
            error => ReplicaError::Storage {
                reason: error.to_string(),
            },
        }
    }
}

/// The replicas a coordinator sees for a key: its current ones and, while
/// ranges move (a join or leave), its future ones. A replica refuses a
/// request whose coordinator does not count a quorum among the replicas the
/// key will have in the replica's view: a coordinator that has not heard of
/// a join or leave must not gather a quorum of the old replicas only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The key's current replicas.
    pub current: Vec<NodeId>,
    /// Its replicas once the join or leave under way completes, if other.
    pub future: Option<Vec<NodeId>>,
}

impl Placement {
    /// Whether a replica whose view is `self` may serve a coordinator whose
    /// view is `theirs`: the coordinator counts a quorum among the key's
    /// replicas as they will be once the move `self` knows of completes
    /// (its future replicas, or its current ones when nothing moves). A
    /// coordinator that knows more (the move completed) passes; one that
    /// never heard of the move does not. Sets compare as sets.
    pub fn admits(&self, theirs: &Placement) -> bool {
        let same = |a: &[NodeId], b: &[NodeId]| a.len() == b.len() && a.iter().all(|n| b.contains(n));
        let last = self.future.as_deref().unwrap_or(&self.current);
        same(last, &theirs.current) || theirs.future.as_deref().is_some_and(|f| same(last, f))
    }
}

/// The replica protocol between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PeerMessage {
    /// Coordinator -> replica: send your state of `key`.
    ReplicaGet {
        /// Correlates the reply.
        request: u64,
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The coordinator's replicas for the key (checked when present).
        #[serde(default)]
        placement: Option<Placement>,
    },
    /// Replica -> coordinator: the replica's state (empty if absent).
    ReplicaGetReply {
        /// The `ReplicaGet` answered.
        request: u64,
        /// The state, or why it could not be read.
        result: Result<Versioned, ReplicaError>,
    },
    /// Coordinator -> replica: your first states in `start..end` (at
    /// most `limit`), for a listing.
    ReplicaList {
        /// Correlates the reply.
        request: u64,
        /// The first key.
        #[serde(with = "serde_bytes")]
        start: Vec<u8>,
        /// The key to stop before; none: to the end.
        #[serde(with = "serde_bytes")]
        end: Option<Vec<u8>>,
        /// Most states.
        limit: u32,
    },
    /// Replica -> coordinator: the answer to a `ReplicaList`.
    ReplicaListReply {
        /// The `ReplicaList` answered.
        request: u64,
        /// The states, or why they could not be read.
        result: Result<ListedStates, ReplicaError>,
    },
    /// Coordinator -> replica: merge this state of `key` into yours.
    ReplicaPut {
        /// Correlates the reply.
        request: u64,
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The coordinator's state after the write (shared by the
        /// messages to every replica; encoded as the state itself).
        object: Arc<Versioned>,
        /// The coordinator's replicas for the key (checked when present;
        /// absent for read repair, which only merges what exists).
        #[serde(default)]
        placement: Option<Placement>,
    },
    /// Replica -> coordinator: merged and stored.
    ReplicaPutReply {
        /// The `ReplicaPut` answered.
        request: u64,
        /// Success, or why it could not be stored.
        result: Result<(), ReplicaError>,
    },
    /// Non-replica -> replica: coordinate this client write for me.
    Forward {
        /// Correlates the reply.
        request: u64,
        /// The client's request, deadline adjusted.
        client: ClientRequest,
    },
    /// Replica -> forwarding node: the response to relay to the client.
    ForwardReply {
        /// The `Forward` answered.
        request: u64,
        /// The coordinator's response.
        response: ClientResponse,
    },
    /// Watching node -> replica: report when your state of `key` is no
    /// longer covered by `context`, within `timeout_ms`.
    WatchStart {
        /// The watch, as its node numbers it.
        watch: u64,
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// What the watcher has seen.
        context: Context,
        /// How long the watch waits.
        timeout_ms: u32,
    },
    /// Replica -> watching node: the key's state, now past the watch's
    /// context (sent once; the replica then forgets the watch), or why
    /// the replica does not watch.
    WatchReply {
        /// The `WatchStart` answered.
        watch: u64,
        /// The replica's state, or why it refused.
        result: Result<Versioned, ReplicaError>,
    },
    /// Watching node -> replica: the watch ended, forget it.
    WatchCancel {
        /// The watch.
        watch: u64,
    },
    /// Anti-entropy: the sender's summaries of intervals both replicate.
    AeSummaries {
        /// The intervals and the sender's summaries of them.
        intervals: Vec<AeInterval>,
    },
    /// Anti-entropy: the sender's keys and digests in `first..=last`.
    AeKeys {
        /// First ring position.
        first: u64,
        /// Last ring position.
        last: u64,
        /// The keys there and their digests.
        entries: Vec<KeyDigest>,
    },
    /// Anti-entropy: states to merge, and keys whose states the sender
    /// wants.
    AeStates {
        /// States to merge.
        states: Vec<KeyState>,
        /// Keys to send back.
        want: Vec<Vec<u8>>,
    },
    /// Coordinator -> fallback node: keep this state of `key` as a hint
    /// for `target`, a home replica that is down, and deliver it later.
    /// Answered with [`PeerMessage::ReplicaPutReply`] once durable.
    HintedPut {
        /// Correlates the reply.
        request: u64,
        /// The key.
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        /// The coordinator's state after the write (shared, as in
        /// `ReplicaPut`).
        object: Arc<Versioned>,
        /// The replica the hint is for.
        target: NodeId,
        /// The coordinator's replicas for the key (checked when present).
        #[serde(default)]
        placement: Option<Placement>,
        /// Every node the coordinator sent the write to, kept with the
        /// hint (see [`Hint::written_to`](super::store::Hint)).
        #[serde(default)]
        written_to: Vec<NodeId>,
    },
    /// States to merge and acknowledge: hints replayed to their replica,
    /// or a leaving node's keys handed to a node that takes over its
    /// ranges.
    Push {
        /// Correlates the acknowledgement.
        batch: u64,
        /// The states.
        states: Vec<KeyState>,
    },
    /// The pushed states are merged and durable (the sender may forget
    /// them), or why not.
    PushAck {
        /// The `Push` answered.
        batch: u64,
        /// Success, or why the states could not be stored.
        result: Result<(), ReplicaError>,
    },
    /// Leaving node -> a remaining node: keep these hints for `target`
    /// (down, so the leaving node could not deliver them) and deliver them
    /// later. Answered with [`PeerMessage::PushAck`] once durable.
    HandOffHints {
        /// Correlates the acknowledgement.
        batch: u64,
        /// The replica the hints are for.
        target: NodeId,
        /// The hints, with the time each was first stored.
        hints: Vec<super::store::Hint>,
        /// The sender's clock (ms) when it sent them: the receiver keeps
        /// each hint's age as the sender measured it, whatever the two
        /// clocks read. `None`: take the times as they are.
        #[serde(default)]
        sent_ms: Option<u64>,
    },
    /// Joining node -> current replica: send your keys in `first..=last`
    /// after `after` (a ring position and key), a batch at a time.
    StreamRequest {
        /// Correlates the batch.
        stream: u64,
        /// First ring position of the range.
        first: u64,
        /// Last ring position of the range.
        last: u64,
        /// Keys up to this (position, key) were received already.
        after: Option<StreamCursor>,
    },
    /// Replica -> joining node: the next keys of a range.
    StreamBatch {
        /// The `StreamRequest` answered.
        stream: u64,
        /// The keys' states, in ring order.
        states: Vec<KeyState>,
        /// Where to continue; `None` when the range is complete.
        next: Option<StreamCursor>,
    },
    /// Tombstone collection: do you hold these keys in exactly this state
    /// (digest)? Sent by a key's first replica to the others.
    GcCheck {
        /// Keys and the digests of their tombstone states.
        keys: Vec<KeyDigest>,
    },
    /// The keys of a `GcCheck` held in exactly the state asked about.
    GcConfirm {
        /// The keys confirmed.
        keys: Vec<Vec<u8>>,
    },
    /// Every home replica holds these tombstones: remove each key whose
    /// state still has this digest.
    GcRemove {
        /// Keys and the digests of their tombstone states.
        keys: Vec<KeyDigest>,
    },
    /// Ring metadata: every member state the sender knows.
    MemberStates {
        /// The states.
        states: Vec<MemberState>,
        /// Whether the sender knows the ring itself (a node that just
        /// started may not yet).
        ready: bool,
        /// An answer: to a joining, leaving or departed node's states,
        /// confirming its status is known, or to states that lacked
        /// something the sender knew (an answer is never answered).
        #[serde(default)]
        answer: bool,
    },
}

impl PeerMessage {
    /// The message's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerMessage::ReplicaGet { .. } => "ReplicaGet",
            PeerMessage::ReplicaGetReply { .. } => "ReplicaGetReply",
            PeerMessage::ReplicaList { .. } => "ReplicaList",
            PeerMessage::ReplicaListReply { .. } => "ReplicaListReply",
            PeerMessage::ReplicaPut { .. } => "ReplicaPut",
            PeerMessage::ReplicaPutReply { .. } => "ReplicaPutReply",
            PeerMessage::Forward { .. } => "Forward",
            PeerMessage::ForwardReply { .. } => "ForwardReply",
            PeerMessage::AeSummaries { .. } => "AeSummaries",
            PeerMessage::AeKeys { .. } => "AeKeys",
            PeerMessage::AeStates { .. } => "AeStates",
            PeerMessage::HintedPut { .. } => "HintedPut",
            PeerMessage::Push { .. } => "Push",
            PeerMessage::PushAck { .. } => "PushAck",
            PeerMessage::HandOffHints { .. } => "HandOffHints",
            PeerMessage::StreamRequest { .. } => "StreamRequest",
            PeerMessage::StreamBatch { .. } => "StreamBatch",
            PeerMessage::GcCheck { .. } => "GcCheck",
            PeerMessage::GcConfirm { .. } => "GcConfirm",
            PeerMessage::GcRemove { .. } => "GcRemove",
            PeerMessage::MemberStates { .. } => "MemberStates",
            PeerMessage::WatchStart { .. } => "WatchStart",
            PeerMessage::WatchReply { .. } => "WatchReply",
            PeerMessage::WatchCancel { .. } => "WatchCancel",
        }
    }

    /// Whether this is bulk repair or topology work (many keys at once)
    /// rather than a request's replica read or write: a node may handle it
    /// after the requests that arrived with it.
    pub fn is_bulk(&self) -> bool {
        matches!(
            self,
            PeerMessage::Push { .. }
                | PeerMessage::HandOffHints { .. }
                | PeerMessage::AeKeys { .. }
                | PeerMessage::AeStates { .. }
                | PeerMessage::StreamRequest { .. }
                | PeerMessage::StreamBatch { .. }
                | PeerMessage::GcCheck { .. }
                | PeerMessage::GcRemove { .. }
        )
    }

    /// Whether handling this message writes to the store: its reply must
    /// wait until the write is durable.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            PeerMessage::ReplicaPut { .. }
                | PeerMessage::HintedPut { .. }
                | PeerMessage::Push { .. }
                | PeerMessage::HandOffHints { .. }
                | PeerMessage::AeStates { .. }
                | PeerMessage::StreamBatch { .. }
                | PeerMessage::GcRemove { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_asking_every_replica_encodes_as_before_fanout_existed() {
        // The encoding of a get before `fanout`: three fields.
        #[derive(Serialize)]
        enum Before {
            Get {
                #[serde(with = "serde_bytes")]
                key: Vec<u8>,
                consistency: Consistency,
                timeout_ms: Option<u32>,
            },
        }
        let before = Before::Get {
            key: b"k".to_vec(),
            consistency: Consistency::Quorum,
            timeout_ms: Some(5),
        };
        let get = |fanout| ClientRequest::Get {
            key: b"k".to_vec(),
            consistency: Consistency::Quorum,
            timeout_ms: Some(5),
            fanout,
        };
        let old = rmp_serde::to_vec(&before).unwrap();
        assert_eq!(rmp_serde::to_vec(&get(Fanout::All)).unwrap(), old);
        assert_eq!(
            rmp_serde::from_slice::<ClientRequest>(&old).unwrap(),
            get(Fanout::All)
        );
        let needed = rmp_serde::to_vec(&get(Fanout::Needed)).unwrap();
        assert_ne!(needed, old);
        assert_eq!(
            rmp_serde::from_slice::<ClientRequest>(&needed).unwrap(),
            get(Fanout::Needed)
        );
    }

    #[test]
    fn context_round_trips_through_its_text_form() {
        let mut object = Versioned::new();
        let actor = super::super::version::Actor {
            node: NodeId(7),
            epoch: 3,
        };
        object
            .write(actor, &VersionVector::new(), Some(b"v".to_vec()), 1, 8)
            .unwrap();
        let context = Context(object.clock().clone());
        let text = context.to_string();
        assert_eq!(text.parse::<Context>(), Ok(context));
        assert_eq!("".parse::<Context>(), Ok(Context::empty()));
        assert_eq!("zz".parse::<Context>(), Err(MalformedContext));
        assert_eq!("c1".parse::<Context>(), Err(MalformedContext));
    }
}
