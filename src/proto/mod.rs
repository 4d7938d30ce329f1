//! The core of shoal: all distributed logic, with no I/O of its own.
//!
//! A [`Node`] takes inputs and yields outputs; it never awaits, never reads a
//! clock and draws randomness only from the seeded RNG it was given. Two
//! drivers run it: the production node (QUIC, on-disk storage) and the
//! simulator (one thread, virtual time). The build enforces the split: a test
//! fails if this directory names an async runtime, a network or storage
//! crate, a clock or the global RNG.
//!
//! # Driving a node
//!
//! 1. Create it with [`Node::new`] and give it the ring's members with
//!    [`Node::set_members`].
//! 2. Feed inputs as they arrive: [`Node::handle_client_request`],
//!    [`Node::handle_peer_message`], and [`Node::handle_timeout`] when the
//!    time from [`Node::poll_timeout`] has come. Every input takes `now`.
//! 3. After each input, drain [`Node::poll_output`] until it returns `None`,
//!    sending messages and replies as told; then ask `poll_timeout` again.

pub mod config;
pub mod coordinator;
pub mod harness;
pub mod message;
pub mod quorum;
pub mod ring;
pub mod store;
pub mod types;
pub mod version;

pub use config::{Config, ConfigError};
pub use message::{ClientRequest, ClientResponse, Context, PeerMessage, RequestError, Value};
pub use quorum::Consistency;
pub use store::{MemStore, NodeMeta, Store, StoreError};
pub use types::{NodeId, Time};
pub use version::Versioned;

use coordinator::Operation;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ring::Ring;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use version::Actor;

/// Identifies one client request to the driver that submitted it; the
/// driver picks the numbers and the node echoes them in [`Output::Reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// What the node asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to the peer `to`. Delivery may fail; the core copes.
    Send {
        /// The destination node.
        to: NodeId,
        /// What to send.
        message: PeerMessage,
    },
    /// Answer the client request `client`.
    Reply {
        /// The request being answered.
        client: ClientId,
        /// The answer.
        response: ClientResponse,
    },
}

/// Counters for `shoal status` and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Client requests this node coordinated or forwarded.
    pub requests: u64,
    /// Requests that failed for lack of replicas' answers.
    pub quorum_failures: u64,
    /// Writes this node forwarded because it is not a replica.
    pub forwards: u64,
    /// Replica reads and writes served for peers.
    pub replica_ops: u64,
}

/// The node could not start. Nothing was served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be read or the new epoch not persisted.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One shoal node's state machine. See the module doc for the driving order.
pub struct Node<S: Store> {
    config: Config,
    actor: Actor,
    store: S,
    #[allow(dead_code)] // drawn from by membership (foca) and repair jitter
    rng: StdRng,
    ring: Ring,
    next_request: u64,
    operations: BTreeMap<u64, Operation>,
    timers: BTreeSet<(Time, u64)>,
    outputs: VecDeque<Output>,
    stats: Stats,
}

impl<S: Store> Node<S> {
    /// Opens a node on `store`: loads (or creates) its id, bumps and durably
    /// saves its dot epoch, and seeds its RNG from `seed`.
    ///
    /// A store with no metadata (fresh or wiped disk) gets the id from
    /// `config.node_id` or the RNG, and a random epoch in a fresh range, so
    /// dots issued before a disk was lost are never issued again.
    pub fn new(config: Config, mut store: S, seed: u64) -> Result<Node<S>, StartError> {
        config.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let meta = match store.load_meta()? {
            Some(meta) if config.debug_skip_epoch_bump => meta,
            Some(meta) => NodeMeta {
                epoch: meta.epoch + 1,
                ..meta
            },
            None => NodeMeta {
                node_id: config.node_id.unwrap_or_else(|| NodeId(rng.random())),
                epoch: if config.debug_skip_epoch_bump {
                    1
                } else {
                    u64::from(rng.random::<u32>()) << 32
                },
                format_version: store::FORMAT_VERSION,
            },
        };
        store.save_meta(&meta)?;
        let actor = Actor {
            node: meta.node_id,
            epoch: meta.epoch,
        };
        Ok(Node {
            ring: Ring::new(config.vnodes),
            config,
            actor,
            store,
            rng,
            next_request: 1,
            operations: BTreeMap::new(),
            timers: BTreeSet::new(),
            outputs: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    /// This node's stable id.
    pub fn id(&self) -> NodeId {
        self.actor.node
    }

    /// The dot epoch of this run.
    pub fn epoch(&self) -> u64 {
        self.actor.epoch
    }

    /// The node's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ring as this node sees it.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The store, for inspection.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Client requests and peer operations in flight.
    pub fn in_flight(&self) -> usize {
        self.operations.len()
    }

    /// Replaces the set of nodes that own data.
    pub fn set_members(&mut self, members: impl IntoIterator<Item = NodeId>) {
        self.ring.set_nodes(members);
    }

    /// A client request arrived. Its answer comes out as [`Output::Reply`]
    /// with the same `client`, before the request's deadline passes.
    pub fn handle_client_request(&mut self, now: Time, client: ClientId, request: ClientRequest) {
        self.start(now, coordinator::Requester::Client(client), request);
    }

    /// A peer's message arrived.
    pub fn handle_peer_message(&mut self, now: Time, from: NodeId, message: PeerMessage) {
        self.on_peer_message(now, from, message);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id));
            self.on_timer(now, id);
        }
    }

    /// When the node next needs [`Node::handle_timeout`], if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn send(&mut self, to: NodeId, message: PeerMessage) {
        self.outputs.push_back(Output::Send { to, message });
    }

    fn set_timer(&mut self, at: Time, operation: u64) {
        self.timers.insert((at, operation));
    }

    fn fresh_request_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }
}
