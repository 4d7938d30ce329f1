//! A small cluster of core nodes on virtual time, wired by an in-memory
//! router, for tests of the distributed logic. Deterministic: the same seed
//! and the same calls give the same run.
//!
//! Every message takes a fixed latency; tests can cut a node off (messages to
//! and from it are dropped, those on their way too) and bring it back, or
//! split the nodes in two. Time only moves when the
//! cluster has nothing else to do, jumping to the next delivery or timer.

use super::message::{
    AdminRequest, AdminResponse, ClientRequest, ClientResponse, Context, Fanout, PeerMessage,
};
use super::quorum::Consistency;
use super::store::MemStore;
use super::types::{NodeId, Time};
use super::{ClientId, Config, Node, Output};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Upper bound of events processed while waiting for one reply; a request
/// needing more is a bug (its deadline timer must have fired long before).
const MAX_EVENTS_PER_REQUEST: usize = 100_000;

/// A message on its way.
#[derive(Debug)]
struct InFlight {
    from: NodeId,
    to: NodeId,
    packet: Packet,
}

#[derive(Debug)]
enum Packet {
    Peer(PeerMessage),
    Gossip(Vec<u8>),
}

/// N core nodes, a router and a virtual clock.
pub struct Cluster {
    nodes: BTreeMap<NodeId, Node<MemStore>>,
    now: Time,
    latency: Duration,
    queue: BTreeMap<(Time, u64), InFlight>,
    sequence: u64,
    cut_off: BTreeSet<NodeId>,
    /// Pairs that cannot reach each other (both ways).
    split: BTreeSet<(NodeId, NodeId)>,
    replies: BTreeMap<ClientId, ClientResponse>,
    admin_replies: BTreeMap<ClientId, AdminResponse>,
    next_client: u64,
    delivered: u64,
    addrs: BTreeMap<SocketAddr, NodeId>,
}

impl Cluster {
    /// `size` nodes with `config`, all members of the ring, RNGs derived
    /// from `seed`; messages take 1 ms.
    pub fn new(size: usize, config: Config, seed: u64) -> Cluster {
        Cluster::with_stores(config, seed, (0..size).map(|_| MemStore::new()).collect())
    }

    /// A static cluster of nodes opened on the given stores.
    pub fn with_stores(config: Config, seed: u64, stores: Vec<MemStore>) -> Cluster {
        let nodes: BTreeMap<NodeId, Node<MemStore>> = stores
            .into_iter()
            .enumerate()
            .map(|(i, store)| {
                let node = Node::new(config.clone(), store, seed ^ ((i as u64) << 32))
                    .expect("a valid config and a readable store");
                (node.id(), node)
            })
            .collect();
        let ids: Vec<NodeId> = nodes.keys().copied().collect();
        let mut cluster = Cluster {
            nodes,
            now: Time::from_micros(1_700_000_000_000_000),
            latency: Duration::from_millis(1),
            queue: BTreeMap::new(),
            sequence: 0,
            cut_off: BTreeSet::new(),
            split: BTreeSet::new(),
            replies: BTreeMap::new(),
            admin_replies: BTreeMap::new(),
            next_client: 1,
            delivered: 0,
            addrs: BTreeMap::new(),
        };
        for node in cluster.nodes.values_mut() {
            node.set_members(ids.iter().copied());
        }
        cluster
    }

    /// `size` nodes that find each other by SWIM gossip: each gets a
    /// virtual address (no socket is ever opened) and all but the first
    /// join through the first. Run the cluster a few virtual seconds
    /// ([`Cluster::run_for`]) for membership to converge.
    pub fn with_membership(size: usize, config: Config, seed: u64) -> Cluster {
        let mut cluster = Cluster::new(size, config, seed);
        let ids = cluster.node_ids();
        let addr = |i: usize| SocketAddr::from((Ipv4Addr::LOCALHOST, 7000 + i as u16));
        for (i, &id) in ids.iter().enumerate() {
            cluster.addrs.insert(addr(i), id);
        }
        let now = cluster.now;
        for (i, &id) in ids.iter().enumerate() {
            let seeds: Vec<SocketAddr> = if i == 0 { vec![] } else { vec![addr(0)] };
            let node = cluster.node_mut(id);
            node.set_members([]);
            node.start_membership(now, addr(i), &seeds);
            cluster.drain(id);
        }
        cluster
    }

    /// Starts anti-entropy rounds on every node (a static cluster has none
    /// until asked; [`Cluster::settle`] never returns once they run).
    pub fn enable_anti_entropy(&mut self) {
        let now = self.now;
        for node in self.nodes.values_mut() {
            node.enable_anti_entropy(now);
        }
    }

    /// Makes `id`'s disk full (every write to its store fails, reads
    /// still work), or gives it room again.
    pub fn set_disk_full(&mut self, id: NodeId, full: bool) {
        self.node_mut(id).store_mut().set_full(full);
    }

    /// Damages `key`'s record in `id`'s store: reading it fails there.
    pub fn corrupt_record(&mut self, id: NodeId, key: &[u8]) {
        self.node_mut(id).store_mut().debug_corrupt_record(key);
    }

    /// Runs every event due in the next `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        while self.next_event_time().is_some_and(|at| at <= until) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    fn next_event_time(&self) -> Option<Time> {
        let message = self.queue.keys().next().map(|&(at, _)| at);
        let timer = self.nodes.values().filter_map(|n| n.poll_timeout()).min();
        message.into_iter().chain(timer).min()
    }

    /// The nodes' ids, sorted.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// One node, for inspection.
    pub fn node(&self, id: NodeId) -> &Node<MemStore> {
        &self.nodes[&id]
    }

    /// The virtual time now.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The preference list of `key`, as the first node sees it.
    pub fn replicas(&self, key: &[u8]) -> Vec<NodeId> {
        let any = self.nodes.values().next().expect("a cluster has nodes");
        any.ring().preference_list(key, any.config().replication)
    }

    /// Every node, for inspection.
    pub fn nodes(&self) -> impl Iterator<Item = &Node<MemStore>> {
        self.nodes.values()
    }

    /// A node that is not a replica of `key`, if the cluster has one.
    pub fn non_replica(&self, key: &[u8]) -> Option<NodeId> {
        let replicas = self.replicas(key);
        self.nodes.keys().copied().find(|n| !replicas.contains(n))
    }

    /// Drops every message to and from `node` until [`Cluster::reconnect`].
    pub fn cut_off(&mut self, node: NodeId) {
        self.cut_off.insert(node);
    }

    /// Lets messages to and from `node` through again.
    pub fn reconnect(&mut self, node: NodeId) {
        self.cut_off.remove(&node);
    }

    /// Drops every message between a node of `side` and any other node,
    /// until [`Cluster::heal`]: a network partition.
    pub fn partition(&mut self, side: &[NodeId]) {
        for &a in side {
            for &b in self.nodes.keys().filter(|n| !side.contains(n)) {
                self.split.insert((a, b));
                self.split.insert((b, a));
            }
        }
    }

    /// Sends `message` to `to` as if `from` had sent it now (a message
    /// from a node with another view, say); what `to` answers goes to
    /// `from`.
    pub fn send_as(&mut self, from: NodeId, to: NodeId, message: PeerMessage) {
        self.route(from, to, Packet::Peer(message));
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.split.clear();
    }

    /// Makes every message sent from now on take `latency` (1 ms unless set).
    pub fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    /// Hands `request` to node `at` now; returns the id its reply will carry.
    pub fn submit(&mut self, at: NodeId, request: ClientRequest) -> ClientId {
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let now = self.now;
        self.node_mut(at).handle_client_request(now, client, request);
        self.drain(at);
        client
    }

    /// Runs the cluster until `client`'s reply arrives and returns it.
    pub fn wait(&mut self, client: ClientId) -> ClientResponse {
        for _ in 0..MAX_EVENTS_PER_REQUEST {
            if let Some(response) = self.replies.remove(&client) {
                return response;
            }
            assert!(self.step(), "no reply to {client:?} and nothing left to run");
        }
        panic!("no reply to {client:?} after {MAX_EVENTS_PER_REQUEST} events");
    }

    /// Runs until no message is in flight and no timer is due; returns the
    /// number of events processed. (A cluster with membership never
    /// settles: use [`Cluster::run_for`].)
    pub fn settle(&mut self) -> usize {
        let mut events = 0;
        while self.step() {
            events += 1;
            assert!(events < MAX_EVENTS_PER_REQUEST, "cluster does not settle");
        }
        events
    }

    /// Runs event by event until `done` holds (checked after each), for at
    /// most `limit` of virtual time; whether it came to hold.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&Cluster) -> bool) -> bool {
        let until = self.now + limit;
        while !done(self) {
            if self.next_event_time().is_none_or(|at| at > until) {
                self.now = self.now.max(until);
                return false;
            }
            self.step();
        }
        true
    }

    /// A listing coordinated by `at`: submitted now, answered when it is.
    pub fn list(&mut self, at: NodeId, request: crate::proto::ListRequest) -> ClientResponse {
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let now = self.now;
        self.node_mut(at).handle_list_request(now, client, request);
        self.drain(at);
        self.wait(client)
    }

    /// Hands a watch to node `at` now; returns the id its reply will carry
    /// (see [`Cluster::reply`]).
    pub fn submit_watch(&mut self, at: NodeId, request: crate::proto::WatchRequest) -> ClientId {
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let now = self.now;
        self.node_mut(at).handle_watch_request(now, client, request);
        self.drain(at);
        client
    }

    /// `client`'s reply, if it came (taken: a second call returns `None`).
    pub fn reply(&mut self, client: ClientId) -> Option<ClientResponse> {
        self.replies.remove(&client)
    }

    /// Submits `request` at `at` and waits for the answer.
    pub fn request(&mut self, at: NodeId, request: ClientRequest) -> ClientResponse {
        let client = self.submit(at, request);
        self.wait(client)
    }

    /// A get of `key` coordinated by `at`.
    pub fn get(&mut self, at: NodeId, key: &[u8], consistency: Consistency) -> ClientResponse {
        let key = key.to_vec();
        self.request(
            at,
            ClientRequest::Get {
                key,
                consistency,
                timeout_ms: None,
                fanout: Fanout::All,
            },
        )
    }

    /// A put of `value` coordinated by (or forwarded from) `at`.
    pub fn put(
        &mut self,
        at: NodeId,
        key: &[u8],
        value: &[u8],
        context: Context,
        consistency: Consistency,
    ) -> ClientResponse {
        let (key, value) = (key.to_vec(), value.to_vec());
        self.request(
            at,
            ClientRequest::Put {
                key,
                value,
                context,
                consistency,
                timeout_ms: None,
                sloppy_quorum: true,
                ttl_ms: None,
            },
        )
    }

    /// A delete coordinated by (or forwarded from) `at`.
    pub fn delete(
        &mut self,
        at: NodeId,
        key: &[u8],
        context: Context,
        consistency: Consistency,
    ) -> ClientResponse {
        let key = key.to_vec();
        self.request(
            at,
            ClientRequest::Delete {
                key,
                context,
                consistency,
                timeout_ms: None,
                sloppy_quorum: true,
            },
        )
    }

    /// Sends an operator request to node `at` without running the cluster
    /// (a leave then stays in progress until the cluster runs).
    pub fn submit_admin(&mut self, at: NodeId, request: AdminRequest) -> ClientId {
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let now = self.now;
        self.node_mut(at).handle_admin_request(now, client, request);
        self.drain(at);
        client
    }

    /// The answer to an operator request made with
    /// [`Cluster::submit_admin`], if it came.
    pub fn admin_reply(&mut self, client: ClientId) -> Option<AdminResponse> {
        self.admin_replies.remove(&client)
    }

    /// Sends an operator request to node `at` and runs the cluster until
    /// it is answered (a leave answers once its ranges are handed off).
    pub fn admin(&mut self, at: NodeId, request: AdminRequest) -> AdminResponse {
        let client = self.submit_admin(at, request);
        for _ in 0..MAX_EVENTS_PER_REQUEST {
            if let Some(response) = self.admin_replies.remove(&client) {
                return response;
            }
            assert!(self.step(), "no answer to {client:?} and nothing left to run");
        }
        panic!("no answer to {client:?} after {MAX_EVENTS_PER_REQUEST} events");
    }

    /// Starts a new node on an empty store that joins through the first
    /// node (clusters made by [`Cluster::with_membership`] only).
    pub fn add_node(&mut self, config: Config, seed: u64) -> NodeId {
        let node = Node::new(config, MemStore::new(), seed).expect("a valid config");
        let id = node.id();
        self.nodes.insert(id, node);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 7000 + self.addrs.len() as u16));
        self.addrs.insert(addr, id);
        self.boot(id, addr);
        id
    }

    /// Restarts node `id` on its store, as after a crash of the process
    /// (clusters made by [`Cluster::with_membership`] only).
    pub fn restart(&mut self, id: NodeId, config: Config, seed: u64) {
        let node = self.nodes.remove(&id).expect("a node of this cluster");
        let store = node.into_store();
        let node = Node::new(config, store, seed).expect("a valid config and store");
        self.replace(id, node);
    }

    /// Restarts node `id` on an empty store under the same id, as after
    /// its disk was lost (clusters made by [`Cluster::with_membership`]
    /// only).
    pub fn wipe(&mut self, id: NodeId, config: Config, seed: u64) {
        self.nodes.remove(&id).expect("a node of this cluster");
        let config = Config {
            node_id: Some(id),
            ..config
        };
        let node = Node::new(config, MemStore::new(), seed).expect("a valid config");
        self.replace(id, node);
    }

    fn replace(&mut self, id: NodeId, node: Node<MemStore>) {
        self.nodes.insert(id, node);
        let addr = *self
            .addrs
            .iter()
            .find(|(_, n)| **n == id)
            .expect("a node with an address")
            .0;
        self.boot(id, addr);
    }

    fn boot(&mut self, id: NodeId, addr: SocketAddr) {
        let seeds: Vec<SocketAddr> = self
            .addrs
            .keys()
            .copied()
            .filter(|&a| a != addr)
            .take(1)
            .collect();
        let now = self.now;
        self.node_mut(id).start_membership(now, addr, &seeds);
        self.drain(id);
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node<MemStore> {
        self.nodes.get_mut(&id).expect("a node of this cluster")
    }

    /// Processes the earliest event (a delivery or a timer); false if none.
    fn step(&mut self) -> bool {
        let next_message = self.queue.keys().next().map(|&(at, _)| at);
        let next_timer = self
            .nodes
            .iter()
            .filter_map(|(&id, node)| node.poll_timeout().map(|at| (at, id)))
            .min();
        match (next_message, next_timer) {
            (Some(at), timer) if timer.is_none_or(|(t, _)| at <= t) => {
                let (&key, _) = self.queue.iter().next().expect("a queued message");
                let InFlight { from, to, packet } = self.queue.remove(&key).expect("present");
                self.now = self.now.max(at);
                if self.is_cut(from, to) {
                    return true; // Cut while on its way: lost.
                }
                self.delivered += 1;
                let now = self.now;
                match packet {
                    Packet::Peer(message) => {
                        let kind = message.kind();
                        if let Err(fault) = self.node_mut(to).handle_peer_message(now, from, message) {
                            panic!("an honest node's {kind} was refused as invalid: {fault}");
                        }
                    }
                    Packet::Gossip(data) => self.node_mut(to).handle_gossip(now, &data),
                }
                self.drain(to);
                true
            }
            (_, Some((at, id))) => {
                self.now = self.now.max(at);
                let now = self.now;
                self.node_mut(id).handle_timeout(now);
                self.drain(id);
                true
            }
            (None, None) => false,
            (Some(_), None) => unreachable!("handled by the first arm"),
        }
    }

    /// Queues a packet for delivery after the latency, unless it crosses a cut.
    fn route(&mut self, from: NodeId, to: NodeId, packet: Packet) {
        if self.is_cut(from, to) {
            return;
        }
        self.sequence += 1;
        let at = self.now + self.latency;
        self.queue
            .insert((at, self.sequence), InFlight { from, to, packet });
    }

    fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut_off.contains(&from) || self.cut_off.contains(&to) || self.split.contains(&(from, to))
    }

    /// Routes everything `id` wants sent; drops what crosses a cut.
    fn drain(&mut self, id: NodeId) {
        while let Some(output) = self.node_mut(id).poll_output() {
            match output {
                Output::Send { to, message } => self.route(id, to, Packet::Peer(message)),
                Output::Gossip { to, data } => {
                    let to = *self.addrs.get(&to).expect("gossip goes to a node's address");
                    self.route(id, to, Packet::Gossip(data));
                }
                Output::Reply { client, response } => {
                    self.replies.insert(client, response);
                }
                Output::AdminReply { client, response } => {
                    self.admin_replies.insert(client, response);
                }
            }
        }
    }
}
