//! Membership glue: what this node knows of the cluster (the gossiped
//! member states, the ring they make, the ring after the join or leave
//! under way, and whether it knows the ring yet), and how member states
//! move between nodes: SWIM effects, state syncs and answers, and the
//! copy saved for restarts.

use super::membership::{Effect, MemberState, Membership, NodeStatus, PeerId, STATE_SYNC_INTERVAL};
use super::message::AdminError;
use super::ring::Ring;
use super::{AdminResponse, Node, NodeId, Output, PeerMessage, Store, Time, refused};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::net::SocketAddr;

/// The store record holding the ring's member states.
const MEMBERS_STATE: &str = "members";

/// What this node knows of the cluster.
pub(super) struct View {
    pub(super) ring: Ring,
    /// The ring once every joining node is normal and every leaving node
    /// left; `None` when nothing is in transition. Writes also go to
    /// replicas it adds (pending replicas).
    pub(super) future_ring: Option<Ring>,
    /// `None` in a static test cluster whose ring is set by hand.
    pub(super) membership: Option<Membership>,
    /// Whether the ring is known (always, without membership).
    pub(super) ready: bool,
    pub(super) next_state_sync: Option<Time>,
}

impl View {
    /// A static ring with no members yet, `vnodes` per node.
    pub(super) fn new(vnodes: u32) -> View {
        View {
            ring: Ring::new(vnodes),
            future_ring: None,
            membership: None,
            ready: true,
            next_state_sync: None,
        }
    }
}

impl<S: Store> Node<S> {
    /// Starts SWIM membership as a node listening on `addr` and announces it
    /// to `seeds` (none for the first node). The ring then follows the
    /// gossiped member states.
    ///
    /// The node's generation is its start time: it grows across restarts
    /// even when the disk was lost (unlike the epoch, which a wiped disk
    /// draws afresh), so a restarted node always supersedes its old
    /// identity. A node given seeds serves clients only once a peer has
    /// sent it the ring; until then it answers `NotReady`.
    pub fn start_membership(&mut self, now: Time, addr: SocketAddr, seeds: &[SocketAddr]) {
        let me = PeerId {
            node: self.id(),
            addr,
            generation: now.as_micros(),
        };
        self.view.ready = seeds.iter().all(|&s| s == addr);
        let rng = StdRng::seed_from_u64(self.rng.random());
        // The ring as this node knew it before a restart: it is ready at
        // once, even if every other node restarted too.
        let known: Vec<MemberState> = self
            .local
            .load_state(MEMBERS_STATE)
            .ok()
            .flatten()
            .and_then(|bytes| rmp_serde::from_slice(&bytes).ok())
            .unwrap_or_default();
        let persisted = known.iter().find(|s| s.node == me.node).map(|s| s.status);
        let has_seeds = seeds.iter().any(|&s| s != addr);
        if persisted == Some(NodeStatus::Left) {
            self.drop_copy_left_behind();
        }
        let status = Self::starting_status(persisted, has_seeds);
        let mut membership = Membership::new(me, status, rng, 16);
        let others: Vec<MemberState> = known.into_iter().filter(|s| s.node != me.node).collect();
        self.view.ready |= !others.is_empty();
        membership.merge_states(&others);
        let mut effects = Vec::new();
        membership.join(now, seeds, &mut effects);
        self.view.membership = Some(membership);
        self.persist_members();
        self.anti_entropy
            .schedule(now + self.config.anti_entropy_interval);
        self.gc.start(now);
        self.cleanup.start(now);
        self.view.next_state_sync = Some(now + STATE_SYNC_INTERVAL);
        self.recompute_ring();
        self.apply_effects(effects);
        if status == NodeStatus::Joining {
            self.resume_join();
        }
    }

    /// Leaves SWIM without changing this node's ring status (a graceful
    /// stop): peers mark it down at once rather than after the failure
    /// detector's timeout, and it rejoins with a new generation on restart.
    pub fn stop_gossip(&mut self, now: Time) {
        let mut effects = Vec::new();
        if let Some(membership) = &mut self.view.membership {
            membership.leave(now, &mut effects);
        }
        self.apply_effects(effects);
    }

    /// A SWIM packet arrived.
    pub fn handle_gossip(&mut self, now: Time, data: &[u8]) {
        let mut effects = Vec::new();
        if let Some(membership) = &mut self.view.membership {
            membership.handle_packet(now, data, &mut effects);
        }
        self.apply_effects(effects);
    }

    /// The membership view, if gossip runs.
    pub fn membership(&self) -> Option<&Membership> {
        self.view.membership.as_ref()
    }

    /// Where `node` listens, if known.
    pub fn addr_of(&self, node: NodeId) -> Option<SocketAddr> {
        self.view.membership.as_ref().and_then(|m| m.addr_of(node))
    }

    /// Whether `node` is believed alive (always, without membership).
    pub fn is_up(&self, node: NodeId) -> bool {
        self.view.membership.as_ref().is_none_or(|m| m.is_up(node))
    }

    /// Whether this node knows `node` to be leaving the cluster.
    pub(super) fn is_leaving(&self, node: NodeId) -> bool {
        self.view
            .membership
            .as_ref()
            .and_then(|m| m.state(node))
            .is_some_and(|s| s.status == NodeStatus::Leaving)
    }

    /// Marks a dead node left so it no longer owns ranges.
    pub(super) fn remove_node(&mut self, node: NodeId) -> AdminResponse {
        let me = self.id();
        let Some(membership) = &mut self.view.membership else {
            return refused(AdminError::NoMembership);
        };
        if node == me {
            return refused(AdminError::RemoveSelf);
        }
        if membership.is_up(node) {
            return refused(AdminError::NodeAlive { node });
        }
        if !membership.set_status(node, NodeStatus::Left) {
            return refused(AdminError::UnknownNode { node });
        }
        self.announce_states();
        AdminResponse::Done
    }

    /// Whether `node` is a member this node knows of (in any status; in a
    /// static cluster, one of the ring's nodes).
    pub(super) fn knows_member(&self, node: NodeId) -> bool {
        match &self.view.membership {
            Some(membership) => membership.state(node).is_some(),
            None => self.view.ring.nodes().contains(&node),
        }
    }

    /// A state sync to every live member.
    fn sync_live_members(&self) -> Vec<Effect> {
        self.view
            .membership
            .iter()
            .flat_map(|m| m.up_members())
            .map(|p| Effect::SyncStates { to: p.node })
            .collect()
    }

    /// Member states changed here: tell every live member, recompute the
    /// ring and save them.
    pub(super) fn announce_states(&mut self) {
        let mut effects = self.sync_live_members();
        effects.push(Effect::Changed);
        self.apply_effects(effects);
        self.persist_members();
    }

    pub(super) fn apply_effects(&mut self, effects: Vec<Effect>) {
        let mut changed = false;
        for effect in effects {
            match effect {
                Effect::Gossip { to, data } => self.outputs.push_back(Output::Gossip { to, data }),
                Effect::SyncStates { to } => self.sync_states_to(to),
                Effect::Changed => changed = true,
            }
        }
        if changed {
            self.recompute_ring();
        }
    }

    pub(super) fn sync_states_to(&mut self, to: NodeId) {
        self.send_states_to(to, false);
    }

    /// Sends every member state this node knows to `to`; `answer`: in
    /// answer to a joining, leaving or departed node's states, or to
    /// states that lacked something this node knows.
    pub(super) fn send_states_to(&mut self, to: NodeId, answer: bool) {
        if let Some(membership) = &self.view.membership {
            // Until this node knows the ring, its own state stays private:
            // what peers say of it first tells whether it is a new node or
            // one restarted on an empty disk under an id that owns ranges.
            let me = self.id();
            let states: Vec<MemberState> = membership
                .states()
                .filter(|s| self.view.ready || s.node != me)
                .copied()
                .collect();
            let ready = self.view.ready;
            self.send(
                to,
                PeerMessage::MemberStates {
                    states,
                    ready,
                    answer,
                },
            );
        }
    }

    /// Merges a peer's member states. States from a peer that knows the
    /// ring make this node ready; a peer that is itself still starting may
    /// know only part of the ring.
    pub(crate) fn on_member_states(
        &mut self,
        from: NodeId,
        states: &[MemberState],
        sender_ready: bool,
        answer: bool,
    ) {
        let was_ready = self.view.ready;
        self.note_known_by(from, states);
        self.check_replacement(states);
        self.view.ready |= sender_ready;
        if let Some(membership) = &mut self.view.membership
            && (membership.merge_states(states) || self.view.ready != was_ready)
        {
            self.recompute_ring();
            self.persist_members();
        }
        // A member joining, leaving or gone waits for the others to
        // confirm its status: these states now hold it. A sender that
        // lacks something this node knows learns it at once (a replica
        // that refused a request for a stale ring catches the coordinator
        // up this way, and the reverse). An answer is not answered (two
        // nodes leaving at once would answer each other forever).
        let changing = states.iter().any(|s| {
            s.node == from
                && matches!(
                    s.status,
                    NodeStatus::Joining | NodeStatus::Leaving | NodeStatus::Left
                )
        });
        let news = self
            .view
            .membership
            .as_ref()
            .is_some_and(|m| m.has_news_for(states));
        if !answer && from != self.id() && self.view.ready && (changing || news) {
            self.send_states_to(from, true);
        }
        if self.view.ready && !was_ready {
            // Peers may hear this node's own state now (joining, say).
            let effects = self.sync_live_members();
            self.apply_effects(effects);
        }
    }

    /// Saves the member states, once they are worth restarting from.
    pub(super) fn persist_members(&mut self) {
        let (true, Some(membership)) = (self.view.ready, &self.view.membership) else {
            return;
        };
        let states: Vec<MemberState> = membership.states().copied().collect();
        let bytes = rmp_serde::to_vec(&states).expect("member states encode");
        // Best effort: losing this only means learning the ring from a
        // peer after the next restart.
        let _ = self.local.save_state(MEMBERS_STATE, &bytes);
    }

    /// Whether the node knows the ring and serves client requests.
    pub fn is_ready(&self) -> bool {
        self.view.ready
    }

    pub(super) fn recompute_ring(&mut self) {
        let Some(membership) = &self.view.membership else {
            return;
        };
        self.view.ring.set_nodes(membership.ring_members());
        let in_transition = membership
            .states()
            .any(|s| matches!(s.status, NodeStatus::Joining | NodeStatus::Leaving));
        self.view.future_ring = in_transition.then(|| {
            let future = membership
                .states()
                .filter(|s| matches!(s.status, NodeStatus::Normal | NodeStatus::Joining))
                .map(|s| s.node);
            Ring::with_nodes(self.config.vnodes, future)
        });
        if self.status() == NodeStatus::Joining {
            self.topology.wake_now();
        }
    }

    /// Pushes our member states to one random live member.
    pub(super) fn periodic_state_sync(&mut self, now: Time) {
        self.view.next_state_sync = Some(now + STATE_SYNC_INTERVAL);
        let Some(membership) = &self.view.membership else {
            return;
        };
        let up: Vec<NodeId> = membership.up_members().map(|p| p.node).collect();
        if !up.is_empty() {
            let to = up[self.rng.random_range(0..up.len())];
            self.sync_states_to(to);
        }
    }

    /// Whether writes may go to `node`: it is up and its storage has not
    /// failed (as far as this node knows).
    pub(crate) fn writable(&self, node: NodeId) -> bool {
        if node == self.id() {
            return self.local.failure().is_none();
        }
        self.is_up(node)
            && !self
                .view
                .membership
                .as_ref()
                .is_some_and(|m| m.storage_failed(node))
    }
}
