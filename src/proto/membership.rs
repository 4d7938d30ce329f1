//! Who is in the cluster: SWIM liveness (foca) and the ring metadata.
//!
//! Two layers:
//!
//! * **Liveness** comes from foca's SWIM failure detector, embedded here and
//!   driven like the rest of the core: its `Runtime` calls are collected and
//!   turned into core outputs (gossip packets, timers). A member's identity
//!   is [`PeerId`]: node id, address and a *generation* (the node's dot
//!   epoch, bumped on every start), so a restarted node is a new identity
//!   that wins over its old one at the same address.
//! * **Ring metadata**: each node's [`MemberState`] (address, generation,
//!   status joining / normal / leaving / left) with a version. States merge
//!   by keeping the higher `(generation, version)` per node. They are sent
//!   whole to every member foca reports up (so a node that joins late
//!   learns everything), to all live members when one changes, and to one
//!   random live member periodically, so nothing depends on a broadcast that
//!   is sent only a few times.
//!
//! Down members stay in the ring (a failure is not a topology change); the
//! coordinator simply does not wait for them.

use super::types::{NodeId, Time};
use bytes::{Buf, BufMut};
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, OwnedNotification, Timer};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// Largest SWIM packet: fits a QUIC datagram on any path.
pub const MAX_GOSSIP_PACKET: usize = 1100;

/// A member's identity in SWIM: a restarted node has a higher generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PeerId {
    /// The stable node id.
    pub node: NodeId,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Bumped on every start (the node's dot epoch).
    pub generation: u64,
}

impl PeerId {
    /// The identity to announce to a seed known only by address: the seed
    /// accepts announcements addressed to any identity at its address.
    pub fn seed(addr: SocketAddr) -> PeerId {
        PeerId {
            node: NodeId(0),
            addr,
            generation: 0,
        }
    }
}

impl foca::Identity for PeerId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(PeerId {
            generation: self.generation + 1,
            ..*self
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// A node's place in the ring's life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NodeStatus {
    /// Receiving its ranges; owns nothing yet.
    Joining,
    /// Owns its ranges.
    Normal,
    /// Handing its ranges off; still owns them.
    Leaving,
    /// Gone; owns nothing.
    Left,
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeStatus::Joining => "joining",
            NodeStatus::Normal => "normal",
            NodeStatus::Leaving => "leaving",
            NodeStatus::Left => "left",
        })
    }
}

/// Ring metadata of one node, as gossiped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    /// The node.
    pub node: NodeId,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its generation when this state was set.
    pub generation: u64,
    /// Its status.
    pub status: NodeStatus,
    /// Bumped on every change within a generation.
    pub version: u64,
    /// The node's storage failed (a full or failing disk): it serves
    /// reads but takes no writes, so coordinators treat it as down for
    /// writes (fallbacks and hints take its share) until it clears this.
    #[serde(default)]
    pub storage_failed: bool,
}

impl MemberState {
    fn supersedes(&self, other: &MemberState) -> bool {
        (self.generation, self.version) > (other.generation, other.version)
    }

    /// Whether the node owns ranges in this state.
    pub fn owns_ranges(&self) -> bool {
        matches!(self.status, NodeStatus::Normal | NodeStatus::Leaving)
    }
}

/// foca's packets, as MessagePack.
pub struct SwimCodec;

/// A SWIM packet that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwimCodecError {
    /// The packet's bytes are not a valid SWIM message. It was ignored.
    #[error("undecodable SWIM packet: {reason}")]
    Decode {
        /// The decoder's complaint.
        reason: String,
    },
    /// The item does not fit in the packet being built. Nothing was written.
    #[error("SWIM packet full")]
    NoSpace,
}

fn encode_to<T: Serialize>(item: &T, mut buf: impl BufMut) -> Result<(), SwimCodecError> {
    let bytes = rmp_serde::to_vec(item).expect("SWIM items always encode");
    if buf.remaining_mut() < bytes.len() {
        return Err(SwimCodecError::NoSpace);
    }
    buf.put_slice(&bytes);
    Ok(())
}

fn decode_from<T: serde::de::DeserializeOwned>(buf: impl Buf) -> Result<T, SwimCodecError> {
    // Reads exactly one item and advances the caller's cursor past it.
    let mut reader = buf.reader();
    let mut deserializer = rmp_serde::Deserializer::new(&mut reader);
    deserializer.set_max_depth(16);
    T::deserialize(&mut deserializer).map_err(|e| SwimCodecError::Decode {
        reason: e.to_string(),
    })
}

impl foca::Codec<PeerId> for SwimCodec {
    type Error = SwimCodecError;

    fn encode_header(&mut self, header: &foca::Header<PeerId>, buf: impl BufMut) -> Result<(), Self::Error> {
        encode_to(header, buf)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<foca::Header<PeerId>, Self::Error> {
        decode_from(buf)
    }

    fn encode_member(&mut self, member: &foca::Member<PeerId>, buf: impl BufMut) -> Result<(), Self::Error> {
        encode_to(member, buf)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<foca::Member<PeerId>, Self::Error> {
        decode_from(buf)
    }
}

/// What membership asks the node to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send a SWIM packet to an address.
    Gossip {
        /// The destination.
        to: SocketAddr,
        /// The packet.
        data: Vec<u8>,
    },
    /// Send our member states to a node (it came up, or it is time).
    SyncStates {
        /// The destination.
        to: NodeId,
    },
    /// Liveness or ring metadata changed: recompute the ring.
    Changed,
}

/// SWIM liveness plus ring metadata; see the module doc.
pub struct Membership {
    me: PeerId,
    foca: Foca<PeerId, SwimCodec, StdRng, NoCustomBroadcast>,
    runtime: AccumulatingRuntime<PeerId>,
    states: BTreeMap<NodeId, MemberState>,
    up: BTreeMap<NodeId, PeerId>,
    /// When members now down were last seen going down.
    down_since: BTreeMap<NodeId, Time>,
    timers: BTreeMap<(Time, u64), Timer<PeerId>>,
    timer_sequence: u64,
    seeds: Vec<SocketAddr>,
    next_announce: Option<Time>,
}

impl Membership {
    /// Membership for `me`, expecting a cluster of about `cluster_size`.
    pub fn new(me: PeerId, status: NodeStatus, rng: StdRng, cluster_size: u32) -> Membership {
        let size = NonZeroU32::new(cluster_size.max(1)).expect("at least 1");
        let mut config = foca::Config::new_lan(size);
        config.max_packet_size = std::num::NonZeroUsize::new(MAX_GOSSIP_PACKET).expect("non-zero");
        // After a partition heals, both sides think the other is down and
        // neither would probe it: ask down members back often.
        config.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: REANNOUNCE_INTERVAL,
            num_members: std::num::NonZeroUsize::new(3).expect("non-zero"),
        });
        let foca = Foca::new(me, config, rng, SwimCodec);
        let mine = MemberState {
            node: me.node,
            addr: me.addr,
            generation: me.generation,
            status,
            version: 1,
            storage_failed: false,
        };
        Membership {
            me,
            foca,
            runtime: AccumulatingRuntime::new(),
            states: BTreeMap::from([(me.node, mine)]),
            up: BTreeMap::new(),
            down_since: BTreeMap::new(),
            timers: BTreeMap::new(),
            timer_sequence: 0,
            seeds: Vec::new(),
            next_announce: None,
        }
    }

    /// Announces this node to the seeds (and to the members it knows);
    /// then every [`REANNOUNCE_INTERVAL`] to the members it believes down,
    /// and to the seeds again while it knows no live member.
    pub fn join(&mut self, now: Time, seeds: &[SocketAddr], effects: &mut Vec<Effect>) {
        self.seeds = seeds.iter().copied().filter(|&s| s != self.me.addr).collect();
        self.announce_to(now, true, effects);
    }

    /// Announces this node to every member it knows that has not left and
    /// that it believes down, and to the seeds too with `seeds` (when it
    /// believes every member down: a node cut off from all, by a partition
    /// or its own crash, finds the cluster again even if its seeds are
    /// gone, although SWIM itself no longer probes members it believes
    /// down). SWIM asks down members back on its own, by the identities it
    /// last knew; after links failed one way and members rejoined under new
    /// generations, nodes were seen holding each other's old identities
    /// and never meeting again (simulator seed 6772). An announcement
    /// reaches any identity at the member's address.
    fn announce_to(&mut self, now: Time, seeds: bool, effects: &mut Vec<Effect>) {
        let members = self
            .states
            .values()
            .filter(|s| {
                s.node != self.me.node && s.status != NodeStatus::Left && !self.up.contains_key(&s.node)
            })
            .map(|s| s.addr);
        let seeds = self.seeds.iter().copied().filter(|_| seeds);
        let mut targets: Vec<SocketAddr> = seeds.chain(members).collect();
        targets.sort();
        targets.dedup();
        for addr in targets {
            // A failed announce only means this node is not reachable now.
            let _ = self.foca.announce(PeerId::seed(addr), &mut self.runtime);
        }
        self.next_announce = Some(now + REANNOUNCE_INTERVAL);
        self.drain(now, effects);
    }

    /// A SWIM packet arrived.
    pub fn handle_packet(&mut self, now: Time, data: &[u8], effects: &mut Vec<Effect>) {
        // Junk or a stale packet: foca changed nothing, so ignoring is safe.
        let _ = self.foca.handle_data(data, &mut self.runtime);
        self.drain(now, effects);
    }

    /// Fires due SWIM timers.
    pub fn handle_timeout(&mut self, now: Time, effects: &mut Vec<Effect>) {
        while let Some((&(at, seq), _)) = self.timers.first_key_value() {
            if at > now {
                break;
            }
            let timer = self.timers.remove(&(at, seq)).expect("present");
            let _ = self.foca.handle_timer(timer, &mut self.runtime);
        }
        self.drain(now, effects);
        if self.next_announce.is_some_and(|at| at <= now) {
            let alone = self.up.is_empty();
            self.announce_to(now, alone, effects);
        }
    }

    /// The next SWIM timer.
    pub fn poll_timeout(&self) -> Option<Time> {
        let foca = self.timers.keys().next().map(|&(at, _)| at);
        foca.into_iter().chain(self.next_announce).min()
    }

    /// Merges states received from a peer; true if anything changed.
    pub fn merge_states(&mut self, states: &[MemberState]) -> bool {
        let mut changed = false;
        for state in states {
            let newer = match self.states.get(&state.node) {
                Some(known) => state.supersedes(known),
                None => true,
            };
            if newer {
                self.states.insert(state.node, *state);
                changed = true;
            }
        }
        changed
    }

    /// Whether this node knows a member state that `states` lack or hold
    /// in an older version.
    pub fn has_news_for(&self, states: &[MemberState]) -> bool {
        self.states.values().any(|ours| {
            states
                .iter()
                .find(|s| s.node == ours.node)
                .is_none_or(|theirs| ours.supersedes(theirs))
        })
    }

    /// Sets this node's status, or another node's (an operator removing a
    /// dead node), with a bumped version so the change wins everywhere.
    pub fn set_status(&mut self, node: NodeId, status: NodeStatus) -> bool {
        match self.states.get_mut(&node) {
            Some(state) => {
                state.status = status;
                state.version += 1;
                true
            }
            None => false,
        }
    }

    /// Sets whether this node's own storage has failed, with a bumped
    /// version so the change wins everywhere; false if it was so already.
    pub fn set_storage_failed(&mut self, failed: bool) -> bool {
        let me = self.me.node;
        match self.states.get_mut(&me) {
            Some(state) if state.storage_failed != failed => {
                state.storage_failed = failed;
                state.version += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether `node`'s storage is known to have failed.
    pub fn storage_failed(&self, node: NodeId) -> bool {
        self.states.get(&node).is_some_and(|s| s.storage_failed)
    }

    /// Leaves the SWIM cluster (after our Left state was sent).
    pub fn leave(&mut self, now: Time, effects: &mut Vec<Effect>) {
        let _ = self.foca.leave_cluster(&mut self.runtime);
        self.drain(now, effects);
    }

    /// This node's generation.
    pub fn generation(&self) -> u64 {
        self.me.generation
    }

    /// Every known member's state, by node id.
    pub fn states(&self) -> impl Iterator<Item = &MemberState> {
        self.states.values()
    }

    /// One member's state.
    pub fn state(&self, node: NodeId) -> Option<&MemberState> {
        self.states.get(&node)
    }

    /// Whether the failure detector considers `node` alive (self always).
    pub fn is_up(&self, node: NodeId) -> bool {
        node == self.me.node || self.up.contains_key(&node)
    }

    /// When `node` went down, if it is down and was seen going down.
    pub fn down_since(&self, node: NodeId) -> Option<Time> {
        self.down_since.get(&node).copied()
    }

    /// Live members other than this node, by id.
    pub fn up_members(&self) -> impl Iterator<Item = &PeerId> {
        self.up.values()
    }

    /// The nodes that own ranges now.
    pub fn ring_members(&self) -> Vec<NodeId> {
        self.states
            .values()
            .filter(|s| s.owns_ranges())
            .map(|s| s.node)
            .collect()
    }

    /// Where `node` listens, if known.
    pub fn addr_of(&self, node: NodeId) -> Option<SocketAddr> {
        self.up
            .get(&node)
            .map(|p| p.addr)
            .or_else(|| self.states.get(&node).map(|s| s.addr))
    }

    /// Turns what foca asked for into effects and timers.
    fn drain(&mut self, now: Time, effects: &mut Vec<Effect>) {
        while let Some((to, data)) = self.runtime.to_send() {
            effects.push(Effect::Gossip {
                to: to.addr,
                data: data.to_vec(),
            });
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.timer_sequence += 1;
            self.timers.insert((now + after, self.timer_sequence), timer);
        }
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(peer) => {
                    self.up.insert(peer.node, peer);
                    self.down_since.remove(&peer.node);
                    effects.push(Effect::SyncStates { to: peer.node });
                    effects.push(Effect::Changed);
                }
                // Only the identity we know as up goes down: a stale one
                // (an older generation) must not hide its successor.
                OwnedNotification::MemberDown(peer) if self.up.get(&peer.node) == Some(&peer) => {
                    self.up.remove(&peer.node);
                    self.down_since.insert(peer.node, now);
                    effects.push(Effect::Changed);
                }
                OwnedNotification::Rename(old, peer) => {
                    self.up.remove(&old.node);
                    self.up.insert(peer.node, peer);
                    self.down_since.remove(&peer.node);
                    effects.push(Effect::SyncStates { to: peer.node });
                    effects.push(Effect::Changed);
                }
                _ => {}
            }
        }
    }
}

/// How often a node alone re-announces to its seeds, and how often down
/// members are asked back.
pub const REANNOUNCE_INTERVAL: Duration = Duration::from_secs(5);

/// How often member states are pushed to one random live member.
pub const STATE_SYNC_INTERVAL: Duration = Duration::from_secs(1);
