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
use crate::history::{History, Outcome};
use crate::options::{Fault, Options};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shoal::proto::quorum::Access;
use shoal::proto::version::{Dot, VersionVector};
use shoal::proto::{
    ClientId, ClientResponse, Config, Consistency, Node, NodeId, Output, PeerMessage, Request, Stats, Store,
    Time, Versioned,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use xxhash_rust::xxh3::Xxh3;

mod faults;
mod network;
mod workload;

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
        request: Request,
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
    /// When some replica was cut off, down, out of disk or moving ranges
    /// (partitions, crashes, full disks, a join or a leave): from, until.
    pub disturbances: Vec<(Time, Time)>,
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
    disturbances: Vec<(Time, Time)>,
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
        let config = {
            let mut cfg = Config::default();
            cfg.debug_skip_epoch_bump = options.skip_epoch_bump;
            cfg.debug_deaf_watches = options.deaf_watches;
            cfg.debug_ignore_expiry = options.ignore_expiry;
            cfg.read_repair = options.read_repair;
            cfg.// Odd seeds hold reads until their repairs are acknowledged.
            read_repair_blocking = options.seed % 2 == 1;
            cfg.// Short enough that hints expire and tombstones are collected
            // many times in a run.
            hint_window = Duration::from_secs(15);
            cfg.tombstone_grace = Duration::from_secs(30);
            cfg.// Nodes drop ranges they gave up soon after a join or leave.
            cleanup_delay = Duration::from_secs(5);
            cfg
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
            disturbances: Vec::new(),
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
        let config = {
            let mut cfg = self.config.clone();
            cfg.node_id = Some(self.nodes[i].id);
            cfg
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
                    match request {
                        Request::Data(request) => {
                            n.handle_client_request(local, ClientId(op as u64), request)
                        }
                        Request::List(request) => n.handle_list_request(local, ClientId(op as u64), request),
                        Request::Watch(request) => {
                            n.handle_watch_request(local, ClientId(op as u64), request)
                        }
                        other => panic!("a request the simulator does not send: {other:?}"),
                    }
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
                    self.disturbed(length);
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
                    self.disturbed(length);
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
                    // Ranges move until some time after; count the rest of
                    // the run as disturbed.
                    self.disturbed(self.options.duration);
                    let seeds = self.seeds_for(node);
                    self.boot(node, &seeds);
                }
            }
            Event::Leave { again } => self.start_leave(again),
        }
    }

    /// Notes that a fault striking now lasts `length`, and a little more
    /// (a restarted node rejoins, a healed link's members are seen up
    /// again).
    fn disturbed(&mut self, length: Duration) {
        let until = self.now + length + Duration::from_secs(5);
        self.disturbances.push((self.now, until));
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
                    self.register_dot(&key, sibling.dot, sibling.value.as_deref());
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
            disturbances: self.disturbances,
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
