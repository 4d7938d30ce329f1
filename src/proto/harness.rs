//! A small cluster of core nodes on virtual time, wired by an in-memory
//! router, for tests of the distributed logic. Deterministic: the same seed
//! and the same calls give the same run.
//!
//! Every message takes a fixed latency; tests can cut a node off (messages to
//! and from it are dropped) and bring it back. Time only moves when the
//! cluster has nothing else to do, jumping to the next delivery or timer.

use super::message::{ClientRequest, ClientResponse, Context, PeerMessage};
use super::quorum::Consistency;
use super::store::MemStore;
use super::types::{NodeId, Time};
use super::{ClientId, Config, Node, Output};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Upper bound of events processed while waiting for one reply; a request
/// needing more is a bug (its deadline timer must have fired long before).
const MAX_EVENTS_PER_REQUEST: usize = 100_000;

/// A message on its way.
#[derive(Debug)]
struct InFlight {
    from: NodeId,
    to: NodeId,
    message: PeerMessage,
}

/// N core nodes, a router and a virtual clock.
pub struct Cluster {
    nodes: BTreeMap<NodeId, Node<MemStore>>,
    now: Time,
    latency: Duration,
    queue: BTreeMap<(Time, u64), InFlight>,
    sequence: u64,
    cut_off: BTreeSet<NodeId>,
    replies: BTreeMap<ClientId, ClientResponse>,
    next_client: u64,
    delivered: u64,
}

impl Cluster {
    /// `size` nodes with `config`, all members of the ring, RNGs derived
    /// from `seed`; messages take 1 ms.
    pub fn new(size: usize, config: Config, seed: u64) -> Cluster {
        let nodes: BTreeMap<NodeId, Node<MemStore>> = (0..size as u64)
            .map(|i| {
                let node = Node::new(config.clone(), MemStore::new(), seed ^ (i << 32))
                    .expect("a valid config and a fresh store");
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
            replies: BTreeMap::new(),
            next_client: 1,
            delivered: 0,
        };
        for node in cluster.nodes.values_mut() {
            node.set_members(ids.iter().copied());
        }
        cluster
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

    /// The preference list of `key`, as the nodes see it.
    pub fn replicas(&self, key: &[u8]) -> Vec<NodeId> {
        let any = self.nodes.values().next().expect("a cluster has nodes");
        any.ring().preference_list(key, any.config().replication)
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
    /// number of events processed.
    pub fn settle(&mut self) -> usize {
        let mut events = 0;
        while self.step() {
            events += 1;
            assert!(events < MAX_EVENTS_PER_REQUEST, "cluster does not settle");
        }
        events
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
            },
        )
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
                let InFlight { from, to, message } = self.queue.remove(&key).expect("present");
                self.now = self.now.max(at);
                self.delivered += 1;
                let now = self.now;
                self.node_mut(to).handle_peer_message(now, from, message);
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

    /// Routes everything `id` wants sent; drops what crosses a cut.
    fn drain(&mut self, id: NodeId) {
        while let Some(output) = self.node_mut(id).poll_output() {
            match output {
                Output::Send { to, message } => {
                    if self.cut_off.contains(&id) || self.cut_off.contains(&to) {
                        continue;
                    }
                    self.sequence += 1;
                    let at = self.now + self.latency;
                    let message = InFlight {
                        from: id,
                        to,
                        message,
                    };
                    self.queue.insert((at, self.sequence), message);
                }
                Output::Reply { client, response } => {
                    self.replies.insert(client, response);
                }
            }
        }
    }
}
