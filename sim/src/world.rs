//! The simulated world: N nodes running the production core, a network, a
//! disk per node, clients, and faults, all on one thread, one virtual
//! clock and one seeded RNG.
//!
//! A run has two phases. In the **fault phase** clients issue operations
//! while the faults enabled for the run strike. At its end the world
//! **heals**: partitions close, network faults stop, crashed nodes restart.
//! After [`SETTLE`] a checker client reads every key at ALL (each read must
//! succeed: liveness) and read repair brings replicas together; after
//! [`CONVERGE`] more the replicas' states are collected for the checkers.

use crate::disk::SimStore;
use crate::history::{History, Kind, Op, Outcome, Phase};
use crate::options::{Fault, Options};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shoal::proto::quorum::Access;
use shoal::proto::version::{Dot, VersionVector};
use shoal::proto::{
    AdminRequest, AdminResponse, ClientId, ClientRequest, ClientResponse, Config, Consistency, Context, Node,
    NodeId, Output, PeerMessage, Stats, Store, Time, Versioned,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use xxhash_rust::xxh3::Xxh3;

/// Quiet time after healing before the checker reads.
pub const SETTLE: Duration = Duration::from_secs(20);
/// Time after the checker's reads before states are compared: enough for
/// every pair of 5 nodes to run anti-entropy at the default interval.
pub const CONVERGE: Duration = Duration::from_secs(40);
/// Simulated start: a fixed, realistic wall-clock time.
const EPOCH: Time = Time::from_micros(1_790_000_000_000_000);
/// Client <-> node latency (clients are never partitioned).
const CLIENT_LATENCY: Duration = Duration::from_millis(1);
/// How long after a leaving node restarted (or refused to leave while
/// joining) it is asked to leave again.
const RELEAVE_AFTER: Duration = Duration::from_secs(10);

/// A packet between nodes.
#[derive(Clone, Debug)]
enum Packet {
    Peer(PeerMessage),
    Gossip(Vec<u8>),
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: usize,
        to: usize,
        packet: Packet,
    },
    Request {
        node: usize,
        op: usize,
        request: ClientRequest,
    },
    Reply {
        op: usize,
        response: ClientResponse,
    },
    ClientTimeout {
        op: usize,
    },
    ClientNext {
        client: usize,
    },
    Sync {
        node: usize,
    },
    Crash {
        node: usize,
        wipe: bool,
        downtime: Duration,
    },
    Restart {
        node: usize,
    },
    Block {
        pairs: Vec<(usize, usize)>,
        length: Duration,
    },
    Unblock {
        pairs: Vec<(usize, usize)>,
    },
    Heal,
    HealRead {
        key: usize,
    },
    CheckFormed,
    Join {
        node: usize,
    },
    /// A node is asked to leave: a random running one, or (`again`) the
    /// one asked before, once it restarted after a crash cut its leave
    /// short or once it may have finished joining.
    Leave {
        again: Option<usize>,
    },
    /// A node's disk fills up for `length`.
    DiskFull {
        node: usize,
        length: Duration,
    },
    /// A node's disk has room again.
    DiskRoom {
        node: usize,
    },
}

impl Event {
    fn tag(&self) -> u8 {
        match self {
            Event::Deliver { .. } => 1,
            Event::Request { .. } => 2,
            Event::Reply { .. } => 3,
            Event::ClientTimeout { .. } => 4,
            Event::ClientNext { .. } => 5,
            Event::Sync { .. } => 6,
            Event::Crash { .. } => 7,
            Event::Restart { .. } => 8,
            Event::Block { .. } => 9,
            Event::Unblock { .. } => 10,
            Event::Heal => 11,
            Event::HealRead { .. } => 12,
            Event::CheckFormed => 13,
            Event::Join { .. } => 14,
            Event::Leave { .. } => 15,
            Event::DiskFull { .. } => 16,
            Event::DiskRoom { .. } => 17,
        }
    }
}

struct SimNode {
    id: NodeId,
    addr: SocketAddr,
    /// Local clock minus global clock, in microseconds.
    skew: i64,
    node: Option<Node<SimStore>>,
    /// The disk while the node is down.
    parked: Option<SimStore>,
    /// Outputs waiting for the group commit.
    held: Vec<Output>,
    sync_scheduled: bool,
    /// It left the cluster and stays down.
    left: bool,
}

/// Counts of faults injected, for the report.
#[derive(Clone, Debug, Default)]
pub struct FaultCounts {
    /// Messages dropped by loss.
    pub lost: u64,
    /// Messages dropped by a partition.
    pub blocked: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Messages reordered.
    pub reordered: u64,
    /// Messages delayed by seconds.
    pub delayed: u64,
    /// Partitions (two-way and one-way).
    pub partitions: u64,
    /// Crashes.
    pub crashes: u64,
    /// Wipes.
    pub wipes: u64,
    /// Nodes that joined.
    pub joins: u64,
    /// Nodes that finished leaving.
    pub leaves: u64,
    /// Times a node's disk filled up.
    pub disks_full: u64,
}

/// Repairs the nodes made, summed over the run (across restarts).
#[derive(Clone, Debug, Default)]
pub struct RepairCounts {
    /// Hints stored.
    pub hints_stored: u64,
    /// Hints delivered.
    pub hints_replayed: u64,
    /// Hints dropped by their bounds.
    pub hints_dropped: u64,
    /// Hints past the window re-homed to their key's home replicas.
    pub hints_rehomed: u64,
    /// Stale replicas written back to by reads.
    pub read_repairs: u64,
    /// Keys anti-entropy changed.
    pub ae_keys_repaired: u64,
    /// Keys joining nodes streamed in.
    pub keys_streamed_in: u64,
    /// Keys leaving nodes handed off.
    pub keys_handed_off: u64,
    /// Tombstones collected.
    pub tombstones_removed: u64,
    /// Keys dropped by nodes that no longer own them.
    pub keys_cleaned_up: u64,
    /// Replica requests refused for a coordinator's stale ring view.
    pub placement_refusals: u64,
}

impl RepairCounts {
    fn add(&mut self, stats: &Stats) {
        self.hints_stored += stats.hints_stored;
        self.hints_replayed += stats.hints_replayed;
        self.hints_dropped += stats.hints_dropped;
        self.hints_rehomed += stats.hints_rehomed;
        self.read_repairs += stats.read_repairs;
        self.ae_keys_repaired += stats.ae_keys_repaired;
        self.keys_streamed_in += stats.keys_streamed_in;
        self.keys_handed_off += stats.keys_handed_off;
        self.tombstones_removed += stats.tombstones_removed;
        self.keys_cleaned_up += stats.keys_cleaned_up;
        self.placement_refusals += stats.placement_refusals;
    }
}

/// One dot of one key seen with two values: it was issued twice.
#[derive(Clone, Debug)]
pub struct DotConflict {
    /// The key it was seen for the second time.
    pub key: Vec<u8>,
    /// The key it was first seen for (a node's dots are unique across
    /// keys).
    pub first_key: Vec<u8>,
    /// The dot.
    pub dot: Dot,
    /// The value seen first (`None`: a tombstone).
    pub first: Option<Vec<u8>>,
    /// The other value.
    pub second: Option<Vec<u8>>,
}

/// What a finished run hands the checkers.
pub struct RunResult {
    /// The options.
    pub options: Options,
    /// Every client operation.
    pub history: History,
    /// Per key: each replica's final state.
    pub final_states: BTreeMap<Vec<u8>, Vec<(NodeId, Versioned)>>,
    /// Dots seen with two different values for one key.
    pub dot_conflicts: Vec<DotConflict>,
    /// When which node lost its disk.
    pub wipes: Vec<(Time, NodeId)>,
    /// Faults injected.
    pub faults: FaultCounts,
    /// Hash of every event processed, in order.
    pub trace_hash: u64,
    /// Events processed.
    pub events: u64,
    /// Simulated time of the whole run.
    pub simulated: Duration,
    /// N.
    pub replication: usize,
    /// Per key: its preference list.
    pub replicas: BTreeMap<Vec<u8>, Vec<NodeId>>,
    /// Hints each node still held at the end.
    pub hints_left: BTreeMap<NodeId, u64>,
    /// Ring members (by a running node's ring) not running after healing:
    /// a node that left, or stopped, and is still in the ring.
    pub stopped_replicas: Vec<NodeId>,
    /// Peer messages a node refused at its boundary as invalid (every
    /// node is honest here, so any is a bug), described.
    pub refused_messages: Vec<String>,
    /// The core's cross-subsystem invariants found broken, sampled every
    /// [`INVARIANT_SAMPLE`] events (the first few, described).
    pub broken_invariants: Vec<String>,
    /// Repairs made.
    pub repairs: RepairCounts,
}

/// Every this many events, the node just given an input checks the
/// core's invariants (a check reads a whole node: not at every event).
pub const INVARIANT_SAMPLE: u64 = 64;

/// See the module doc.
pub struct World {
    options: Options,
    config: Config,
    rng: StdRng,
    now: Time,
    queue: BTreeMap<(Time, u64), Event>,
    sequence: u64,
    nodes: Vec<SimNode>,
    by_id: BTreeMap<NodeId, usize>,
    by_addr: BTreeMap<SocketAddr, usize>,
    blocked: BTreeSet<(usize, usize)>,
    faults_on: bool,
    /// The node asked to leave, until it has left.
    leave_asked: Option<usize>,
    history: History,
    contexts: Vec<BTreeMap<Vec<u8>, VersionVector>>,
    /// Each dot seen: the key and value it was issued for.
    dots: BTreeMap<Dot, (Vec<u8>, Option<Vec<u8>>)>,
    dot_conflicts: Vec<DotConflict>,
    wipes: Vec<(Time, NodeId)>,
    refused_messages: Vec<String>,
    broken_invariants: Vec<String>,
    counts: FaultCounts,
    repairs: RepairCounts,
    trace: Xxh3,
    events: u64,
}

impl World {
    /// A world for `options`, nodes started and joined.
    pub fn new(options: Options) -> World {
        let mut rng = StdRng::seed_from_u64(options.seed);
        let config = Config {
            debug_skip_epoch_bump: options.skip_epoch_bump,
            read_repair: options.read_repair,
            // Odd seeds hold reads until their repairs are acknowledged.
            read_repair_blocking: options.seed % 2 == 1,
            // Short enough that hints expire and tombstones are collected
            // many times in a run.
            hint_window: Duration::from_secs(15),
            tombstone_grace: Duration::from_secs(30),
            // Nodes drop ranges they gave up soon after a join or leave.
            cleanup_delay: Duration::from_secs(5),
            ..Config::default()
        };
        let skew_max = i64::try_from(options.rates.skew_max.as_micros()).unwrap_or(i64::MAX);
        // A run with joins has one more node, started during the run.
        let spare = usize::from(options.faults.has(Fault::Join));
        let nodes: Vec<SimNode> = (0..options.nodes + spare)
            .map(|i| SimNode {
                id: NodeId(rng.random()),
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 7000 + i as u16)),
                skew: if options.faults.has(Fault::Skew) {
                    rng.random_range(-skew_max..=skew_max)
                } else {
                    0
                },
                node: None,
                parked: Some(SimStore::default()),
                held: Vec::new(),
                sync_scheduled: false,
                left: false,
            })
            .collect();
        let mut world = World {
            by_id: nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect(),
            by_addr: nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect(),
            nodes,
            contexts: vec![BTreeMap::new(); options.clients],
            options,
            config,
            rng,
            now: EPOCH,
            queue: BTreeMap::new(),
            sequence: 0,
            blocked: BTreeSet::new(),
            faults_on: true,
            leave_asked: None,
            history: History::default(),
            dots: BTreeMap::new(),
            dot_conflicts: Vec::new(),
            wipes: Vec::new(),
            refused_messages: Vec::new(),
            broken_invariants: Vec::new(),
            counts: FaultCounts::default(),
            repairs: RepairCounts::default(),
            trace: Xxh3::new(),
            events: 0,
        };
        for i in 0..world.options.nodes {
            let seeds = if i == 0 { vec![] } else { vec![world.nodes[0].addr] };
            world.boot(i, &seeds);
        }
        world.schedule_faults();
        world.at(Duration::from_millis(500), Event::CheckFormed);
        world.at(world.options.duration, Event::Heal);
        world
    }

    /// Runs the whole run and returns what the checkers need.
    pub fn run(mut self) -> RunResult {
        let end = EPOCH + self.options.duration + SETTLE + CONVERGE;
        while self.step(end) {}
        self.finish()
    }

    fn at(&mut self, after: Duration, event: Event) {
        self.sequence += 1;
        self.queue.insert((self.now + after, self.sequence), event);
    }

    fn local(&self, i: usize) -> Time {
        shift(self.now, self.nodes[i].skew)
    }

    /// Starts node `i` on its parked disk.
    fn boot(&mut self, i: usize, seeds: &[SocketAddr]) {
        let store = self.nodes[i].parked.take().expect("a down node has a disk");
        let config = Config {
            node_id: Some(self.nodes[i].id),
            ..self.config.clone()
        };
        let mut node = Node::new(config, store, self.rng.random()).expect("valid config and store");
        assert_eq!(node.id(), self.nodes[i].id, "a node keeps its id across restarts");
        let (local, addr) = (self.local(i), self.nodes[i].addr);
        node.start_membership(local, addr, seeds);
        self.nodes[i].node = Some(node);
        self.after_input(i);
    }

    /// Processes the next event or timer due by `end`; false when done.
    fn step(&mut self, end: Time) -> bool {
        let next_event = self.queue.keys().next().map(|&(at, _)| at);
        let next_timer = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let local = n.node.as_ref()?.poll_timeout()?;
                Some((shift(local, -n.skew), i))
            })
            .min();
        let timer_first = match (next_event, next_timer) {
            (Some(e), Some((t, _))) => t < e,
            (None, Some(_)) => true,
            _ => false,
        };
        let at = if timer_first {
            next_timer.map(|(t, _)| t)
        } else {
            next_event
        };
        let Some(at) = at.filter(|&at| at <= end) else {
            return false;
        };
        self.now = self.now.max(at);
        self.events += 1;
        self.trace.update(&self.now.as_micros().to_le_bytes());
        if timer_first {
            let i = next_timer.expect("timer").1;
            self.trace.update(&[0, i as u8]);
            let local = self.local(i);
            if let Some(node) = self.nodes[i].node.as_mut() {
                node.handle_timeout(local);
            }
            self.after_input(i);
        } else {
            let (_, event) = self.queue.pop_first().expect("an event");
            self.trace.update(&[event.tag()]);
            self.handle(event);
        }
        true
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, packet } => self.deliver(from, to, packet),
            Event::Request { node, op, request } => {
                self.trace.update(&(op as u64).to_le_bytes());
                let local = self.local(node);
                if let Some(n) = self.nodes[node].node.as_mut() {
                    n.handle_client_request(local, ClientId(op as u64), request);
                    self.after_input(node);
                }
            }
            Event::Reply { op, response } => self.complete(op, response),
            Event::ClientTimeout { op } => {
                if self.history.ops[op].outcome == Outcome::Pending {
                    self.finish_op(op, Outcome::TimedOut);
                }
            }
            Event::ClientNext { client } => self.next_op(client),
            Event::Sync { node } => self.sync(node),
            Event::Crash { node, wipe, downtime } => self.crash(node, wipe, downtime),
            Event::Restart { node } => {
                if self.nodes[node].node.is_none() && !self.nodes[node].left {
                    let seeds = self.seeds_for(node);
                    self.boot(node, &seeds);
                    // A restarted node forgets a leave in progress; as an
                    // operator would, ask it again once it is back in.
                    if self.leave_asked == Some(node) {
                        self.at(RELEAVE_AFTER, Event::Leave { again: Some(node) });
                    }
                }
            }
            Event::Block { pairs, length } => {
                if self.faults_on {
                    self.counts.partitions += 1;
                    self.blocked.extend(pairs.iter().copied());
                    self.at(length, Event::Unblock { pairs });
                }
            }
            Event::Unblock { pairs } => {
                for pair in pairs {
                    self.blocked.remove(&pair);
                }
            }
            Event::DiskFull { node, length } => {
                if self.faults_on {
                    self.counts.disks_full += 1;
                    self.set_disk_full(node, true);
                    self.at(length, Event::DiskRoom { node });
                }
            }
            Event::DiskRoom { node } => self.set_disk_full(node, false),
            Event::Heal => self.heal(),
            Event::HealRead { key } => self.heal_read(key),
            Event::CheckFormed => self.check_formed(),
            Event::Join { node } => {
                if self.nodes[node].node.is_none() && !self.nodes[node].left {
                    self.counts.joins += 1;
                    let seeds = self.seeds_for(node);
                    self.boot(node, &seeds);
                }
            }
            Event::Leave { again } => self.start_leave(again),
        }
    }

    fn deliver(&mut self, from: usize, to: usize, packet: Packet) {
        self.trace.update(&[from as u8, to as u8]);
        let local = self.local(to);
        let sender = self.nodes[from].id;
        let Some(node) = self.nodes[to].node.as_mut() else {
            return; // Sent to a node that is down.
        };
        match packet {
            Packet::Peer(message) => {
                if let Ok(bytes) = rmp_serde::to_vec(&message) {
                    self.trace.update(&bytes);
                }
                let kind = message.kind();
                if let Err(fault) = node.handle_peer_message(local, sender, message) {
                    self.refused_messages
                        .push(format!("{kind} from {sender} to node {to} at {local:?}: {fault}"));
                }
            }
            Packet::Gossip(data) => {
                self.trace.update(&data);
                node.handle_gossip(local, &data);
            }
        }
        self.after_input(to);
    }

    /// Collects a node's outputs; they leave only once its writes are
    /// durable (the production driver's group commit).
    fn after_input(&mut self, i: usize) {
        let sim = &mut self.nodes[i];
        let Some(node) = sim.node.as_mut() else {
            return;
        };
        if self.events.is_multiple_of(INVARIANT_SAMPLE)
            && self.broken_invariants.len() < 10
            && let Err(broken) = node.check_invariants()
        {
            let at = self.now.saturating_since(EPOCH);
            self.broken_invariants
                .push(format!("at {at:?}, node {}: {broken}", node.id()));
        }
        while let Some(output) = node.poll_output() {
            sim.held.push(output);
        }
        if node.store().is_dirty() {
            if !sim.sync_scheduled {
                sim.sync_scheduled = true;
                let latency = Duration::from_micros(self.rng.random_range(50..500));
                self.at(latency, Event::Sync { node: i });
            }
            return;
        }
        let held = std::mem::take(&mut self.nodes[i].held);
        for output in held {
            self.dispatch(i, output);
        }
    }

    fn sync(&mut self, i: usize) {
        self.nodes[i].sync_scheduled = false;
        if let Some(node) = self.nodes[i].node.as_mut() {
            node.store_mut().sync().expect("the simulated disk cannot fail");
            self.after_input(i);
        }
    }

    fn dispatch(&mut self, from: usize, output: Output) {
        match output {
            Output::Send { to, message } => {
                let states: Vec<(&[u8], &Versioned)> = match &message {
                    PeerMessage::ReplicaPut { key, object, .. }
                    | PeerMessage::HintedPut { key, object, .. } => {
                        vec![(key, object)]
                    }
                    PeerMessage::Push { states, .. }
                    | PeerMessage::AeStates { states, .. }
                    | PeerMessage::StreamBatch { states, .. } => {
                        states.iter().map(|s| (s.key.as_slice(), &s.object)).collect()
                    }
                    PeerMessage::HandOffHints { hints, .. } => {
                        hints.iter().map(|h| (h.key.as_slice(), &h.object)).collect()
                    }
                    _ => Vec::new(),
                };
                for (key, object) in states {
                    for sibling in object.siblings() {
                        self.register_dot(key, sibling.dot, &sibling.value);
                    }
                }
                let to = self.by_id[&to];
                self.send(from, to, Packet::Peer(message));
            }
            Output::Gossip { to, data } => {
                if let Some(&to) = self.by_addr.get(&to) {
                    self.send(from, to, Packet::Gossip(data));
                }
            }
            Output::Reply { client, response } => {
                self.at(
                    CLIENT_LATENCY,
                    Event::Reply {
                        op: client.0 as usize,
                        response,
                    },
                );
            }
            Output::AdminReply { response, .. } => {
                // Only leaves are asked for; a finished one stops the node.
                // A node still joining is asked again later, as an
                // operator would.
                match response {
                    AdminResponse::Done => self.stop_left(from),
                    AdminResponse::Refused {
                        reason: shoal::proto::message::AdminError::StillJoining,
                    } => self.at(RELEAVE_AFTER, Event::Leave { again: Some(from) }),
                    _ => {}
                }
            }
        }
    }

    /// A node for a client request: any member of the cluster, up or down
    /// (not one that left, nor the spare before it joins).
    fn pick_node(&mut self) -> usize {
        let members: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].left && (i < self.options.nodes || self.nodes[i].parked.is_none()))
            .collect();
        members[self.rng.random_range(0..members.len())]
    }

    /// Addresses of every other node.
    fn seeds_for(&self, i: usize) -> Vec<SocketAddr> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n.addr)
            .collect()
    }

    /// Asks a random running node (or `again` that node) to leave the
    /// cluster.
    fn start_leave(&mut self, again: Option<usize>) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].node.is_some())
            .collect();
        if running.len() <= 1 || !self.faults_on {
            return;
        }
        let i = match again {
            Some(i) if running.contains(&i) && self.leave_asked == Some(i) => i,
            Some(_) => return,
            None => running[self.rng.random_range(0..running.len())],
        };
        self.leave_asked = Some(i);
        self.trace.update(&[0xfe, i as u8]);
        let local = self.local(i);
        if let Some(node) = self.nodes[i].node.as_mut() {
            node.handle_admin_request(local, ClientId(u64::MAX), AdminRequest::Leave);
            self.after_input(i);
        }
        if again.is_none() {
            // An operator whose first request went unanswered asks again
            // while the node may still be leaving.
            self.at(RELEAVE_AFTER, Event::Leave { again: Some(i) });
        }
    }

    /// A node finished leaving: it stops for good.
    fn stop_left(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].node.take() {
            self.repairs.add(&node.stats());
            self.nodes[i].parked = Some(node.into_store());
            self.nodes[i].left = true;
            self.counts.leaves += 1;
            self.leave_asked = None;
        }
    }

    /// Remembers the value of each dot of each key; a dot seen with two
    /// values was issued twice.
    fn register_dot(&mut self, key: &[u8], dot: Dot, value: &Option<Vec<u8>>) {
        match self.dots.get(&dot) {
            Some((known_key, known)) if known_key != key || known != value => {
                self.dot_conflicts.push(DotConflict {
                    key: key.to_vec(),
                    dot,
                    first_key: known_key.clone(),
                    first: known.clone(),
                    second: value.clone(),
                })
            }
            Some(_) => {}
            None => {
                self.dots.insert(dot, (key.to_vec(), value.clone()));
            }
        }
    }

    /// Puts a packet on the network, through the faults that are on.
    fn send(&mut self, from: usize, to: usize, packet: Packet) {
        if self.blocked.contains(&(from, to)) {
            self.counts.blocked += 1;
            return;
        }
        let faults = self.faults_on;
        let rates = self.options.rates.clone();
        let on = |fault| faults && self.options.faults.has(fault);
        let (loss, duplicate) = (on(Fault::Loss), on(Fault::Duplicate));
        if loss && self.rng.random_bool(rates.loss) {
            self.counts.lost += 1;
            return;
        }
        let copies = if duplicate && self.rng.random_bool(rates.duplicate) {
            self.counts.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let latency = self.latency();
            let packet = packet.clone();
            self.at(latency, Event::Deliver { from, to, packet });
        }
    }

    fn latency(&mut self) -> Duration {
        let rates = &self.options.rates;
        let mut micros = self.rng.random_range(200..1500);
        if self.faults_on && self.options.faults.has(Fault::Reorder) && self.rng.random_bool(rates.reorder) {
            self.counts.reordered += 1;
            micros += self.rng.random_range(0..20_000);
        }
        if self.faults_on && self.options.faults.has(Fault::Delay) && self.rng.random_bool(rates.delay) {
            self.counts.delayed += 1;
            micros += self.rng.random_range(500_000..3_000_000);
        }
        Duration::from_micros(micros)
    }

    fn crash(&mut self, i: usize, wipe: bool, downtime: Duration) {
        if !self.faults_on {
            return;
        }
        let Some(node) = self.nodes[i].node.take() else {
            return; // Already down.
        };
        self.repairs.add(&node.stats());
        let mut store = node.into_store();
        store.crash();
        self.counts.crashes += 1;
        if wipe {
            self.counts.wipes += 1;
            self.wipes.push((self.now, self.nodes[i].id));
            store = SimStore::default();
        }
        self.nodes[i].parked = Some(store);
        self.nodes[i].held.clear();
        self.nodes[i].sync_scheduled = false;
        self.at(downtime, Event::Restart { node: i });
    }

    /// Fills node `i`'s disk, running or parked, or gives it room again.
    fn set_disk_full(&mut self, i: usize, full: bool) {
        let slot = &mut self.nodes[i];
        match (slot.node.as_mut(), slot.parked.as_mut()) {
            (Some(node), _) => node.store_mut().set_full(full),
            (None, Some(store)) => store.set_full(full),
            (None, None) => {}
        }
    }

    /// Draws the run's partitions and crashes up front.
    fn schedule_faults(&mut self) {
        let rates = self.options.rates.clone();
        let duration = self.options.duration;
        let n = self.nodes.len();
        let each = |world: &mut World,
                    fault: Fault,
                    every: Duration,
                    mut make: Box<dyn FnMut(&mut World) -> Event>| {
            if !world.options.faults.has(fault) {
                return;
            }
            let mut at = Duration::ZERO;
            loop {
                let gap = world.rng.random_range(0.0..2.0) * every.as_secs_f64();
                at += Duration::from_secs_f64(gap.max(1.0));
                if at >= duration {
                    break;
                }
                let event = make(world);
                world.sequence += 1;
                world.queue.insert((EPOCH + at, world.sequence), event);
            }
        };
        let length = |world: &mut World| {
            Duration::from_millis(
                world
                    .rng
                    .random_range(500..=rates.partition_max.as_millis() as u64),
            )
        };
        each(
            self,
            Fault::Partition,
            rates.partition_every,
            Box::new(move |w| {
                let side: Vec<bool> = (0..n).map(|_| w.rng.random_bool(0.5)).collect();
                let pairs = (0..n)
                    .flat_map(|a| (0..n).map(move |b| (a, b)))
                    .filter(|&(a, b)| side[a] != side[b])
                    .collect();
                Event::Block {
                    pairs,
                    length: length(w),
                }
            }),
        );
        each(
            self,
            Fault::OneWay,
            rates.partition_every,
            Box::new(move |w| {
                let a = w.rng.random_range(0..n);
                let b = (a + w.rng.random_range(1..n)) % n;
                Event::Block {
                    pairs: vec![(a, b)],
                    length: length(w),
                }
            }),
        );
        if self.options.faults.has(Fault::Join) {
            let at = duration.mul_f64(self.rng.random_range(0.1..0.6));
            let node = self.options.nodes;
            self.sequence += 1;
            self.queue
                .insert((EPOCH + at, self.sequence), Event::Join { node });
        }
        if self.options.faults.has(Fault::Leave) {
            let at = duration.mul_f64(self.rng.random_range(0.3..0.8));
            self.sequence += 1;
            self.queue
                .insert((EPOCH + at, self.sequence), Event::Leave { again: None });
        }
        each(
            self,
            Fault::DiskFull,
            rates.crash_every,
            Box::new(move |w| Event::DiskFull {
                node: w.rng.random_range(0..n),
                length: Duration::from_millis(w.rng.random_range(1_000..=20_000)),
            }),
        );
        let downtime = rates.downtime_max;
        for (fault, wipe) in [(Fault::Crash, false), (Fault::Wipe, true)] {
            each(
                self,
                fault,
                rates.crash_every,
                Box::new(move |w| Event::Crash {
                    node: w.rng.random_range(0..n),
                    wipe,
                    downtime: Duration::from_millis(w.rng.random_range(200..=downtime.as_millis() as u64)),
                }),
            );
        }
    }

    /// Starts the clients once every running node knows the whole ring (an
    /// operator waits for the cluster to form before using it); checks
    /// again every half second until then.
    fn check_formed(&mut self) {
        let n = self.options.nodes;
        let formed = self
            .nodes
            .iter()
            .filter_map(|s| s.node.as_ref())
            .all(|node| node.is_ready() && node.ring().nodes().len() == n);
        if !formed && self.faults_on {
            self.at(Duration::from_millis(500), Event::CheckFormed);
            return;
        }
        for client in 0..self.options.clients {
            self.at(
                Duration::from_millis(client as u64 * 7),
                Event::ClientNext { client },
            );
        }
    }

    fn next_op(&mut self, client: usize) {
        if !self.faults_on
            || self
                .history
                .ops
                .iter()
                .filter(|o| o.phase == Phase::Fault)
                .count()
                >= self.options.ops
        {
            return;
        }
        let key = format!("key{}", self.rng.random_range(0..self.options.keys)).into_bytes();
        let op = self.history.ops.len();
        let roll = self.rng.random_range(0..100);
        let kind = match roll {
            0..45 => Kind::Get,
            45..90 => Kind::Put {
                value: format!("c{client}-op{op}").into_bytes(),
            },
            _ => Kind::Delete,
        };
        let consistency = self.pick_consistency();
        let context = match (&kind, self.rng.random_bool(0.85)) {
            (Kind::Get, _) | (_, false) => VersionVector::new(),
            (_, true) => self.contexts[client].get(&key).cloned().unwrap_or_default(),
        };
        let node = self.pick_node();
        self.submit(client, node, key, kind, consistency, context, Phase::Fault);
    }

    fn pick_consistency(&mut self) -> Consistency {
        if let Some((r, w)) = self.options.forced_rw {
            return Consistency::Custom { r, w };
        }
        match self.rng.random_range(0..10) {
            0 => Consistency::One,
            1 => Consistency::Two,
            2 => Consistency::All,
            3 => Consistency::Custom { r: 1, w: 3 },
            4 => Consistency::Custom { r: 3, w: 1 },
            _ => Consistency::Quorum,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        client: usize,
        node: usize,
        key: Vec<u8>,
        kind: Kind,
        consistency: Consistency,
        context: VersionVector,
        phase: Phase,
    ) {
        let op = self.history.ops.len();
        let wire_context = Context::from(context.clone());
        // Runs that claim strict quorums (--r/--w) write strictly; others
        // mix sloppy and strict writes.
        let sloppy = kind != Kind::Get && self.options.forced_rw.is_none() && self.rng.random_bool(0.5);
        let request = match &kind {
            Kind::Get => ClientRequest::Get {
                key: key.clone(),
                consistency,
                timeout_ms: None,
            },
            Kind::Put { value } => ClientRequest::Put {
                key: key.clone(),
                value: value.clone(),
                context: wire_context,
                consistency,
                timeout_ms: None,
                sloppy_quorum: sloppy,
            },
            Kind::Delete => ClientRequest::Delete {
                key: key.clone(),
                context: wire_context,
                consistency,
                timeout_ms: None,
                sloppy_quorum: sloppy,
            },
        };
        self.history.ops.push(Op {
            client,
            key,
            kind,
            consistency,
            context,
            sloppy_quorum: sloppy,
            phase,
            invoked: self.now,
            completed: None,
            outcome: Outcome::Pending,
        });
        self.at(CLIENT_LATENCY, Event::Request { node, op, request });
        let give_up = self.config.request_timeout + Duration::from_secs(2);
        self.at(give_up, Event::ClientTimeout { op });
    }

    fn complete(&mut self, op: usize, response: ClientResponse) {
        if self.history.ops[op].outcome != Outcome::Pending {
            return; // The client gave up already.
        }
        self.trace.update(format!("{response:?}").as_bytes());
        let outcome = match response {
            ClientResponse::Found { values, context } => Outcome::Read {
                values: values.into_iter().map(|v| v.value).collect(),
                context: context.version_vector().clone(),
            },
            ClientResponse::Written { dot, .. } => Outcome::Written { dot },
            ClientResponse::Failed(error) => Outcome::Failed {
                error: error.to_string(),
            },
        };
        // Carry the causal context like a real client.
        let client = self.history.ops[op].client;
        if let Some(contexts) = self.contexts.get_mut(client) {
            let key = self.history.ops[op].key.clone();
            match &outcome {
                Outcome::Read { context, .. } => {
                    contexts.insert(key, context.clone());
                }
                Outcome::Written { dot } => {
                    let mut seen = self.history.ops[op].context.clone();
                    seen.add(dot);
                    contexts.insert(key, seen);
                }
                _ => {}
            }
        }
        if let Outcome::Written { dot } = &outcome {
            let op = &self.history.ops[op];
            let value = match &op.kind {
                Kind::Put { value } => Some(value.clone()),
                _ => None,
            };
            let (key, dot) = (op.key.clone(), *dot);
            self.register_dot(&key, dot, &value);
        }
        self.finish_op(op, outcome);
    }

    fn finish_op(&mut self, op: usize, outcome: Outcome) {
        self.history.ops[op].outcome = outcome;
        self.history.ops[op].completed = Some(self.now);
        let client = self.history.ops[op].client;
        if self.history.ops[op].phase == Phase::Fault && self.faults_on {
            let mean =
                self.options.duration.as_secs_f64() * self.options.clients as f64 / self.options.ops as f64;
            let think = Duration::from_secs_f64(self.rng.random_range(0.0..2.0 * mean));
            self.at(think, Event::ClientNext { client });
        }
    }

    fn heal(&mut self) {
        self.faults_on = false;
        self.blocked.clear();
        for i in 0..self.nodes.len() {
            self.set_disk_full(i, false);
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_none() && !self.nodes[i].left {
                let seeds = self.seeds_for(i);
                self.boot(i, &seeds);
            }
        }
        for key in 0..self.options.keys {
            self.at(
                SETTLE + Duration::from_millis(key as u64 * 10),
                Event::HealRead { key },
            );
        }
    }

    fn heal_read(&mut self, key: usize) {
        let node = self.pick_node();
        let key = format!("key{key}").into_bytes();
        let client = usize::MAX;
        self.submit(
            client,
            node,
            key,
            Kind::Get,
            Consistency::All,
            VersionVector::new(),
            Phase::Heal,
        );
    }

    /// The node `id`, if it runs.
    fn running(&self, id: NodeId) -> Option<&Node<SimStore>> {
        self.by_id.get(&id).and_then(|&i| self.nodes[i].node.as_ref())
    }

    fn finish(mut self) -> RunResult {
        let keys: Vec<Vec<u8>> = (0..self.options.keys)
            .map(|k| format!("key{k}").into_bytes())
            .collect();
        let ring = self
            .nodes
            .iter()
            .find_map(|n| n.node.as_ref())
            .expect("nodes run after healing")
            .ring()
            .clone();
        let stopped_replicas: Vec<NodeId> = ring
            .nodes()
            .iter()
            .copied()
            .filter(|&id| self.running(id).is_none())
            .collect();
        let mut final_states = BTreeMap::new();
        let mut replicas_of = BTreeMap::new();
        for key in keys {
            let replicas = ring.preference_list(&key, self.config.replication);
            let states: Vec<(NodeId, Versioned)> = replicas
                .iter()
                .filter_map(|id| {
                    let node = self.running(*id)?;
                    Some((*id, node.store().get(&key).expect("sim disk").unwrap_or_default()))
                })
                .collect();
            for (_, state) in &states {
                for sibling in state.siblings() {
                    self.register_dot(&key, sibling.dot, &sibling.value);
                }
            }
            replicas_of.insert(key.clone(), replicas);
            final_states.insert(key, states);
        }
        let simulated = self.now.saturating_since(EPOCH);
        let hints_left = self
            .nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .map(|node| (node.id(), node.hints_held()))
            .collect();
        for node in self.nodes.iter().filter_map(|n| n.node.as_ref()) {
            self.repairs.add(&node.stats());
        }
        RunResult {
            hints_left,
            stopped_replicas,
            refused_messages: self.refused_messages,
            broken_invariants: self.broken_invariants,
            repairs: self.repairs,
            replication: self.config.replication,
            options: self.options,
            history: self.history,
            final_states,
            dot_conflicts: self.dot_conflicts,
            wipes: self.wipes,
            faults: self.counts,
            trace_hash: self.trace.digest(),
            events: self.events,
            simulated,
            replicas: replicas_of,
        }
    }
}

/// Required replicas of `consistency` for `access` when keys have `n`.
pub fn required(consistency: Consistency, access: Access, n: usize) -> usize {
    consistency.required(access, n).unwrap_or(n)
}

fn shift(time: Time, by: i64) -> Time {
    Time::from_micros(time.as_micros().saturating_add_signed(by))
}
