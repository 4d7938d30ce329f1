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

pub mod anti_entropy;
mod batches;
mod cleanup;
pub mod config;
pub mod coordinator;
pub mod digest_tree;
mod dispatch;
mod gc;
#[cfg(any(test, feature = "testing"))]
pub mod harness;
mod hints;
mod intake;
mod invariants;
mod local;
mod members;
pub mod membership;
pub mod message;
pub mod quorum;
pub mod ring;
pub mod shared_bytes;
pub mod store;
mod topology;
pub mod types;
pub mod validate;
pub mod version;
mod watch;

pub use config::{Config, ConfigError};
pub use message::{
    AdminRequest, AdminResponse, ClientRequest, ClientResponse, Context, Fanout, ListRequest, ListedKey,
    PeerMessage, Request, RequestError, Response, SYSTEM_KEY_PREFIX, Stats, StatusReport, Value,
    WatchRequest, is_system_key,
};
pub use quorum::Consistency;
pub use store::{MemStore, NodeMeta, Store, StoreError};
pub use types::{NodeId, Time};
pub use validate::Invalid;
pub use version::Versioned;

use membership::Membership;
use message::{AdminError, MemberReport};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ring::Ring;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use version::Actor;

/// About the most bytes of states one batch message carries (hint
/// replay, anti-entropy, join and leave streams): a batch stops before the
/// state that would take it past this, unless it is the first. Keeps
/// messages well inside the frame limit.
pub(crate) const BATCH_BYTES: u64 = 1 << 20;

/// How often a node whose storage failed checks whether it recovered.
pub const STORAGE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Identifies one client request to the driver that submitted it; the
/// driver picks the numbers and the node echoes them in [`Output::Reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// What the node asks its driver to do.
#[derive(Clone, Debug, PartialEq)]
// Not `non_exhaustive`: every driver must handle every kind of output, and
// a new kind should fail their build, not be dropped silently.
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
    /// Answer the admin request `client`.
    AdminReply {
        /// The request being answered.
        client: ClientId,
        /// The answer.
        response: AdminResponse,
    },
    /// Send a SWIM packet to an address (unreliable delivery is fine).
    Gossip {
        /// The destination.
        to: SocketAddr,
        /// The packet.
        data: Vec<u8>,
    },
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
    /// The store and its digest tree (their only owner), and the
    /// storage's health.
    local: local::LocalStore<S>,
    #[allow(dead_code)] // drawn from by membership (foca) and repair jitter
    rng: StdRng,
    anti_entropy: anti_entropy::AntiEntropy,
    /// The member states, the ring they make, and whether it is known.
    view: members::View,
    /// Client requests coordinated or forwarded here.
    requests: coordinator::Requests,
    outputs: VecDeque<Output>,
    stats: Stats,
    hints: hints::Hints,
    /// Batch ids, tagged with the subsystem that sent each batch.
    batches: batches::BatchIds,
    intake: intake::Intake,
    gc: gc::Gc,
    cleanup: cleanup::Cleanup,
    /// The last dot counter this node issued, for any key.
    last_counter: u64,
    topology: topology::Topology,
    /// Peer messages refused at the boundary, by kind (see [`validate`]).
    invalid_messages: BTreeMap<&'static str, u64>,
    watches: watch::Watches,
}

impl<S: Store> Node<S> {
    /// Opens a node on `store`: loads (or creates) its id, bumps and durably
    /// saves its dot epoch, and seeds its RNG from `seed`.
    ///
    /// A store with no metadata (fresh or wiped disk) gets the id from
    /// `config.node_id` or the RNG, and a random epoch in a fresh range, so
    /// dots issued before a disk was lost are never issued again.
    pub fn new(config: Config, store: S, seed: u64) -> Result<Node<S>, StartError> {
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
        let local = local::LocalStore::open(store, &meta)?;
        // A random start, so a restarted node's request ids do not repeat
        // ones peers may still remember (forward deduplication).
        let next_request = (rng.random::<u64>() >> 1).max(1);
        let hints = hints::Hints::load(local.store())?;
        let actor = Actor {
            node: meta.node_id,
            epoch: meta.epoch,
        };
        Ok(Node {
            view: members::View::new(config.vnodes),
            config,
            actor,
            local,
            rng,
            anti_entropy: anti_entropy::AntiEntropy::default(),
            requests: coordinator::Requests::new(next_request),
            outputs: VecDeque::new(),
            stats: Stats::default(),
            hints,
            batches: batches::BatchIds::default(),
            gc: gc::Gc::default(),
            intake: intake::Intake::default(),
            cleanup: cleanup::Cleanup::default(),
            last_counter: 0,
            topology: topology::Topology::default(),
            invalid_messages: BTreeMap::new(),
            watches: watch::Watches::default(),
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
        &self.view.ring
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats;
        self.local.add_stats(&mut stats);
        stats
    }

    /// The store, for inspection.
    pub fn store(&self) -> &S {
        self.local.store()
    }

    /// Client requests and peer operations in flight.
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// This node's view of the cluster.
    pub fn status_report(&self) -> StatusReport {
        let ownership = self.view.ring.ownership();
        let members = self
            .view
            .membership
            .iter()
            .flat_map(|m| m.states())
            .map(|state| MemberReport {
                node: state.node,
                addr: state.addr,
                generation: state.generation,
                status: state.status,
                up: self.is_up(state.node),
                storage_failed: if state.node == self.id() {
                    self.local.failure().is_some()
                } else {
                    state.storage_failed
                },
                ownership: ownership.get(&state.node).copied().unwrap_or(0.0),
            })
            .collect();
        StatusReport {
            node: self.id(),
            generation: self
                .view
                .membership
                .as_ref()
                .map_or(self.epoch(), |m| m.generation()),
            members,
            stats: self.stats(),
            in_flight: self.requests.len(),
            replication: self.config.replication,
            vnodes: self.config.vnodes,
            hints: self.hints.pending(),
            keys: self.local.summary(0, u64::MAX).map_or(0, |s| s.count),
            root: self.local.summary(0, u64::MAX).unwrap_or_default(),
            streaming: self.streaming(),
            storage_failure: self.local.failure().map(str::to_owned),
        }
    }

    /// Replaces the set of nodes that own data (a static cluster, without
    /// gossip).
    pub fn set_members(&mut self, members: impl IntoIterator<Item = NodeId>) {
        self.view.ring.set_nodes(members);
    }

    /// An operator request arrived; the answer comes out as
    /// [`Output::AdminReply`].
    pub fn handle_admin_request(&mut self, now: Time, client: ClientId, request: AdminRequest) {
        let response = match request {
            AdminRequest::Status => AdminResponse::Status(Box::new(self.status_report())),
            AdminRequest::Leave => match self.start_leave(now, client) {
                Some(response) => response,
                None => return, // Answered once the node has left.
            },
            AdminRequest::RemoveNode { node } => self.remove_node(node),
        };
        self.outputs.push_back(Output::AdminReply { client, response });
    }

    /// A client request arrived. Its answer comes out as [`Output::Reply`]
    /// with the same `client`, before the request's deadline passes.
    pub fn handle_client_request(&mut self, now: Time, client: ClientId, request: ClientRequest) {
        self.start(now, coordinator::Requester::Client(client), request);
        self.notify_watches(now);
    }

    /// A listing arrived. Its page (or failure) comes out as
    /// [`Output::Reply`] with the same `client`, before its deadline.
    pub fn handle_list_request(&mut self, now: Time, client: ClientId, request: message::ListRequest) {
        self.start_list(now, coordinator::Requester::Client(client), request);
    }

    /// A peer's message arrived. A message that fails the boundary's checks
    /// ([`validate`]) is dropped before it touches state, counted by kind
    /// ([`Node::invalid_messages`]), and its fault returned for the driver
    /// to log with the peer.
    pub fn handle_peer_message(
        &mut self,
        now: Time,
        from: NodeId,
        message: PeerMessage,
    ) -> Result<(), Invalid> {
        if let Err(invalid) = validate::peer_message(&message, &self.config) {
            *self.invalid_messages.entry(message.kind()).or_insert(0) += 1;
            self.stats.invalid_messages += 1;
            return Err(invalid);
        }
        self.on_peer_message(now, from, message);
        self.notify_watches(now);
        Ok(())
    }

    /// Peer messages refused at the boundary since start, by kind.
    pub fn invalid_messages(&self) -> &BTreeMap<&'static str, u64> {
        &self.invalid_messages
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(id) = self.requests.take_due(now) {
            self.on_timer(now, id);
        }
        if self.watches.poll_timeout().is_some_and(|at| at <= now) {
            self.expire_watches(now);
        }
        let mut effects = Vec::new();
        if let Some(membership) = &mut self.view.membership {
            membership.handle_timeout(now, &mut effects);
        }
        self.apply_effects(effects);
        if self.view.next_state_sync.is_some_and(|at| at <= now) {
            self.periodic_state_sync(now);
        }
        if self.anti_entropy.poll_timeout().is_some_and(|at| at <= now) {
            self.start_anti_entropy(now);
        }
        if self.hints.poll_timeout().is_some_and(|at| at <= now) {
            self.replay_hints(now);
        }
        if self.topology.poll_timeout().is_some_and(|at| at <= now) {
            self.drive_topology(now);
        }
        if self.gc.poll_timeout().is_some_and(|at| at <= now) {
            self.sweep_tombstones(now);
        }
        if self.cleanup.poll_timeout().is_some_and(|at| at <= now) {
            self.drive_cleanup(now);
        }
        if self.intake.poll_timeout().is_some_and(|at| at <= now) {
            self.release_intake(now);
        }
        if self.local.needs_check() {
            self.check_storage(now);
        }
        self.notify_watches(now);
    }

    /// Why this node's storage failed, while it has not recovered (it
    /// serves reads, takes no writes, and checks every
    /// [`STORAGE_CHECK_INTERVAL`] whether the store takes them again).
    pub fn storage_failure(&self) -> Option<&str> {
        self.local.failure()
    }

    /// While storage has failed, asks the store every
    /// [`STORAGE_CHECK_INTERVAL`] whether it takes writes again; tells the
    /// other nodes when storage fails or recovers.
    ///
    /// On recovery the node issues dots under a new epoch, saved first, as
    /// a restart does, and for the same reason: an engine that failed (and
    /// may have been reopened) can have lost writes it had taken, own ones
    /// among them. A dot of the old epoch issued over such a state would
    /// have a higher counter than a lost write's and so cover it, and
    /// merges would drop that write on every replica. Dots of a new epoch
    /// cover none of the old.
    fn check_storage(&mut self, now: Time) {
        if self.local.recovery_due(now) {
            let meta = NodeMeta {
                node_id: self.id(),
                epoch: self.actor.epoch + 1,
                format_version: store::FORMAT_VERSION,
            };
            if self.local.recover(now, &meta) {
                self.actor.epoch = meta.epoch;
            }
        }
        if let Some(failed) = self.local.take_announcement()
            && self
                .view
                .membership
                .as_mut()
                .is_some_and(|m| m.set_storage_failed(failed))
        {
            self.announce_states();
        }
    }

    /// When the node next needs [`Node::handle_timeout`], if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        let operations = self.requests.poll_timeout();
        let membership = self.view.membership.as_ref().and_then(Membership::poll_timeout);
        [
            operations,
            membership,
            self.view.next_state_sync,
            self.anti_entropy.poll_timeout(),
            self.hints.poll_timeout(),
            self.topology.poll_timeout(),
            self.gc.poll_timeout(),
            self.cleanup.poll_timeout(),
            self.intake.poll_timeout(),
            self.local.poll_timeout(),
            self.watches.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn send(&mut self, to: NodeId, message: PeerMessage) {
        self.outputs.push_back(Output::Send { to, message });
    }

    /// Stops the node and hands back its store (the simulator's crash).
    pub fn into_store(self) -> S {
        self.local.into_store()
    }

    /// Starts anti-entropy rounds in a static cluster (membership starts
    /// them by itself).
    pub fn enable_anti_entropy(&mut self, now: Time) {
        self.anti_entropy
            .schedule(now + self.config.anti_entropy_interval);
        self.gc.start(now);
    }

    /// The digest and key count of ring positions `first..=last` here.
    pub fn summary(&self, first: u64, last: u64) -> Result<digest_tree::Summary, StoreError> {
        self.local.summary(first, last)
    }

    /// Saves the digest tree for the next start, which then skips
    /// rebuilding it. Call at a clean stop, after the last write; the
    /// driver syncs afterwards.
    pub fn save_digest_tree(&mut self) -> Result<(), StoreError> {
        self.local.save_tree()
    }

    /// Whether the digest tree was loaded as saved at the last clean stop.
    pub fn digest_tree_restored(&self) -> bool {
        self.local.tree_restored()
    }

    /// Mutable access to the store (the driver syncs it for group commit).
    pub fn store_mut(&mut self) -> &mut S {
        self.local.store_mut()
    }
}

fn refused(reason: AdminError) -> AdminResponse {
    AdminResponse::Refused { reason }
}
