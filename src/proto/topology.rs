//! Join and leave: ranges change owner only after their data has moved.
//!
//! **Join.** A node started with seeds on an empty data directory is
//! `joining`: it owns nothing and serves as a coordinator only. Once it
//! knows the ring it plans, for every range it will own, which current
//! replicas to stream it from (the replica that loses the range first: it
//! may hold writes nobody else does), and pulls each range a batch at a time
//! ([`PeerMessage::StreamRequest`] / [`PeerMessage::StreamBatch`]), a few
//! ranges at once. Meanwhile coordinators send every write to it as well.
//! While ranges move (join or leave), reads and strict writes need their
//! quorum among a key's current replicas and among its future ones
//! ([`QuorumTracker::joint`](super::quorum::QuorumTracker::joint)): a
//! coordinator cut off before it learned that the move completed then
//! still agrees with one using the new ring. Progress is saved, so a join
//! interrupted by a restart resumes where it stopped. When every range is
//! in, the node turns `normal` and takes its ranges. A node restarted on an
//! empty directory under an id the ring already knows as an owner (a lost
//! disk, `--node-id`) takes its place back at once instead: anti-entropy,
//! hints and read repair refill it.
//!
//! **Fencing.** Neither a join nor a leave moves a range (or finishes)
//! until, for every range it moves, a majority of the range's current
//! replicas, and each of them that is up, have confirmed they know the
//! node's new status (a member answers a joining or leaving node's member
//! states; the node asks again every [`CHECK_INTERVAL`] and `shoal status`
//! counts whom it waits for). Replica requests carry the coordinator's
//! view of the key's replicas, and a replica that knows of the move
//! refuses a coordinator that does not count a quorum among the key's
//! future replicas ([`Placement`](super::message::Placement)). So a
//! coordinator a partition kept from hearing of the move cannot gather a
//! quorum of old replicas once data moves: the replicas that know refuse
//! it, and they are a majority.
//!
//! **Leave.** A leaving node is `leaving` (it still owns its ranges) while it
//! pushes every key of every range it owns to the node that takes the range
//! over (or, where nobody new does, to the first remaining replica), a batch
//! at a time, each acknowledged once durable ([`PeerMessage::Push`]).
//! Writes meanwhile also go to the new owners. When every batch is
//! acknowledged, and every hint it held is delivered or handed to a
//! remaining node, it turns `left` and tells every member, again every
//! half second, until they confirm (a member told of a departure answers
//! with its member states, which hold it): it goes once a majority of the
//! other ring members confirmed and either every live member did or
//! [`DEPART_WAIT`] passed (gossip spreads it to the rest). Then it leaves
//! the gossip and answers the operator. A departure nobody running had
//! heard of would leave the cluster believing the node is still leaving,
//! forever; one member's word is not enough, since that member may crash
//! (membership is not kept across a restart) before it passed it on.

use super::batches::BatchOwner;
use super::membership::NodeStatus;
use super::message::{AdminError, AdminResponse, KeyState, PeerMessage, StreamCursor, StreamProgress, after};
use super::ring::Ring;
use super::store::{Store, StoreError, state_bytes};
use super::types::{NodeId, Time};
use super::{BATCH_BYTES, ClientId, Node, Output, refused};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Most keys in one stream or push batch.
const BATCH_KEYS: usize = 1024;
/// Ranges with a batch in flight at once.
const IN_FLIGHT: usize = 16;
/// How long a batch may go unanswered before it is asked for again.
const BATCH_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a join or leave looks for work when it waits.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long a node that left waits, once a majority of the members
/// confirmed its departure, for the other live members to confirm too.
pub const DEPART_WAIT: Duration = Duration::from_secs(5);
/// The store record holding a join's progress.
const JOIN_STATE: &str = "join";

/// One range to move.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Transfer {
    first: u64,
    last: u64,
    /// Join: current replicas to stream from, preferred first. Leave: the
    /// node to push to.
    peers: Vec<NodeId>,
    /// Which of `peers` is asked now.
    peer: usize,
    /// Keys up to here have moved.
    cursor: Option<StreamCursor>,
    done: bool,
    #[serde(skip)]
    in_flight: Option<InFlight>,
}

#[derive(Clone, Debug)]
struct InFlight {
    id: u64,
    expires: Time,
    /// Leave: the cursor once this batch is acknowledged, and whether it
    /// ends the range.
    next: Option<StreamCursor>,
    ends: bool,
    keys: u64,
    bytes: u64,
}

/// The ranges a join or leave moves.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Plan {
    /// The ring members the plan was made for.
    owners: Vec<NodeId>,
    transfers: Vec<Transfer>,
    keys: u64,
    bytes: u64,
}

impl Plan {
    fn progress(&self, leaving: bool, unconfirmed: u64) -> StreamProgress {
        StreamProgress {
            unconfirmed,
            leaving,
            ranges: self.transfers.len() as u64,
            ranges_done: self.transfers.iter().filter(|t| t.done).count() as u64,
            keys: self.keys,
            bytes: self.bytes,
        }
    }

    fn is_done(&self) -> bool {
        self.transfers.iter().all(|t| t.done)
    }
}

/// A node that left, telling the members so.
#[derive(Debug)]
struct Departure {
    since: Time,
}

/// The join or leave in progress.
#[derive(Debug, Default)]
pub(super) struct Topology {
    join: Option<Plan>,
    leave: Option<Plan>,
    /// Who wait for the leave to finish: each request to leave, answered
    /// together once it has (the node process exits on that answer).
    leave_waiters: Vec<ClientId>,
    /// The node left and tells the members until they confirm.
    departure: Option<Departure>,
    /// For each member, the newest state of this node (generation,
    /// version) it has shown: a member told of a status change answers
    /// with its member states, which hold it.
    known_by: BTreeMap<NodeId, (u64, u64)>,
    /// When to ask the members that have not confirmed a change again.
    next_ask: Option<Time>,
    /// Replicas the join or leave waits for, as last checked.
    unconfirmed: u64,
    next_check: Option<Time>,
    next_stream: u64,
    /// The join's progress changed since it was saved.
    unsaved: bool,
}

impl Topology {
    /// When the node next needs to drive a join or leave.
    /// The next stream requests of a join: for each range not streamed
    /// and not waiting for an answer (an unanswered one past its time
    /// moves to the range's next source), one to a live source, up to
    /// [`IN_FLIGHT`] in flight. `up[i][k]`: whether range i's source k is
    /// up.
    fn stream_requests(&mut self, now: Time, up: &[Vec<bool>]) -> Vec<(NodeId, PeerMessage)> {
        let Some(plan) = self.join.as_mut() else {
            return Vec::new();
        };
        let mut busy = 0;
        let mut sends = Vec::new();
        for (transfer, up) in plan.transfers.iter_mut().zip(up) {
            if transfer.done {
                continue;
            }
            if let Some(in_flight) = &transfer.in_flight {
                if in_flight.expires > now {
                    busy += 1;
                    continue;
                }
                // Unanswered: ask the next replica.
                transfer.in_flight = None;
                transfer.peer = (transfer.peer + 1) % transfer.peers.len();
            }
            let count = transfer.peers.len();
            let Some(offset) = (0..count).find(|k| up[(transfer.peer + k) % count]) else {
                continue; // Every source is down: wait.
            };
            if busy >= IN_FLIGHT {
                break;
            }
            transfer.peer = (transfer.peer + offset) % count;
            self.next_stream += 1;
            let stream = self.next_stream;
            transfer.in_flight = Some(InFlight {
                id: stream,
                expires: now + BATCH_TIMEOUT,
                next: None,
                ends: false,
                keys: 0,
                bytes: 0,
            });
            busy += 1;
            sends.push((
                transfer.peers[transfer.peer],
                PeerMessage::StreamRequest {
                    stream,
                    first: transfer.first,
                    last: transfer.last,
                    after: transfer.cursor.clone(),
                },
            ));
        }
        sends
    }

    /// Whether a leave's batch `batch` waits for its acknowledgement.
    pub(super) fn holds_leave_batch(&self, batch: u64) -> bool {
        self.leave_batches_held().any(|b| b == batch)
    }

    /// The leave's batches that wait for their acknowledgement.
    pub(super) fn leave_batches_held(&self) -> impl Iterator<Item = u64> + '_ {
        self.leave.iter().flat_map(|plan| {
            plan.transfers
                .iter()
                .filter_map(|t| t.in_flight.as_ref().map(|f| f.id))
        })
    }

    pub(super) fn poll_timeout(&self) -> Option<Time> {
        self.next_check
    }

    fn wake(&mut self, at: Time) {
        self.next_check = Some(self.next_check.map_or(at, |t| t.min(at)));
    }

    /// Asks to be driven as soon as the node runs (the ring changed).
    pub(super) fn wake_now(&mut self) {
        self.wake(Time::ZERO);
    }
}

/// Adds a range to a plan, merged with the previous one if adjacent and
/// moved between the same nodes.
fn push_range(transfers: &mut Vec<Transfer>, first: u64, last: u64, peers: Vec<NodeId>) {
    match transfers.last_mut() {
        Some(t) if t.last.checked_add(1) == Some(first) && t.peers == peers => t.last = last,
        _ => transfers.push(Transfer {
            first,
            last,
            peers,
            peer: 0,
            cursor: None,
            done: false,
            in_flight: None,
        }),
    }
}

impl<S: Store> Node<S> {
    /// This node's ring status (normal without membership).
    pub fn status(&self) -> NodeStatus {
        self.view
            .membership
            .as_ref()
            .and_then(|m| m.state(self.id()))
            .map_or(NodeStatus::Normal, |s| s.status)
    }

    /// The status to start in: as before a restart (a leave in progress is
    /// abandoned); joining for a node that never owned ranges (or left) and
    /// has seeds to join through.
    pub(super) fn starting_status(persisted: Option<NodeStatus>, has_seeds: bool) -> NodeStatus {
        match persisted {
            Some(NodeStatus::Normal | NodeStatus::Leaving) => NodeStatus::Normal,
            Some(NodeStatus::Joining | NodeStatus::Left) if has_seeds => NodeStatus::Joining,
            None if has_seeds => NodeStatus::Joining,
            _ => NodeStatus::Normal,
        }
    }

    /// Drops every key a node that left still holds, at its next start.
    ///
    /// It handed each of them off before it turned `left`, so what remains
    /// is an old copy: joining again with it, a value deleted meanwhile
    /// whose tombstone was collected would come back through this node
    /// (its reads, anti-entropy and cleanup's pushes), and the disk it
    /// takes is wasted. Runs before the node gossips; a crash part way
    /// leaves the status `left`, so the next start goes on. A corrupt
    /// record met on the way is dropped by the scan. A failed removal is
    /// noted as a storage failure (the node turns read-only); on it, or on
    /// a failed scan, the node starts with what is left.
    pub(super) fn drop_copy_left_behind(&mut self) {
        let mut from = Vec::new();
        let mut corrupt_in_a_row = 0;
        loop {
            let scanned = match self.local.scan_with_digest(&from, BATCH_KEYS, BATCH_BYTES) {
                Ok(scanned) => scanned,
                // Dropped by the scan: scan again (a record that cannot
                // even be dropped ends it).
                Err(StoreError::Corrupt { .. }) if corrupt_in_a_row < 64 => {
                    corrupt_in_a_row += 1;
                    continue;
                }
                Err(_) => return,
            };
            corrupt_in_a_row = 0;
            for state in &scanned.states {
                if let Err(e) = self.local.remove(&state.key, state.digest) {
                    self.local.note_error(&e);
                    return;
                }
            }
            match scanned.states.last() {
                Some(last) if scanned.more => from = after(&last.key),
                _ => return,
            }
        }
    }

    /// Loads a saved join's progress (joining nodes, at start).
    pub(super) fn resume_join(&mut self) {
        let saved: Option<Plan> = self
            .local
            .load_state(JOIN_STATE)
            .ok()
            .flatten()
            .filter(|bytes| !bytes.is_empty())
            .and_then(|bytes| rmp_serde::from_slice(&bytes).ok());
        self.topology.join = saved;
        self.topology.wake_now();
    }

    /// The join or leave in progress, for status.
    pub(super) fn streaming(&self) -> Option<StreamProgress> {
        match (&self.topology.join, &self.topology.leave) {
            (_, Some(plan)) => Some(plan.progress(true, self.topology.unconfirmed)),
            (Some(plan), None) if self.status() == NodeStatus::Joining => {
                Some(plan.progress(false, self.topology.unconfirmed))
            }
            _ => None,
        }
    }

    /// A peer's view of this node says it owns ranges while this node is
    /// joining: it restarted on an empty disk under its old id. It takes its
    /// place back at once.
    pub(super) fn check_replacement(&mut self, states: &[super::membership::MemberState]) {
        let me = self.id();
        if self.status() != NodeStatus::Joining || !states.iter().any(|s| s.node == me && s.owns_ranges()) {
            return;
        }
        self.topology.join = None;
        let _ = self.local.save_state(JOIN_STATE, &[]);
        self.set_own_status(NodeStatus::Normal);
    }

    /// Sets this node's status and tells every live member.
    fn set_own_status(&mut self, status: NodeStatus) {
        let me = self.id();
        let Some(membership) = &mut self.view.membership else {
            return;
        };
        membership.set_status(me, status);
        self.announce_states();
    }

    /// Moves the join or leave on: plans, sends batches, finishes.
    pub(super) fn drive_topology(&mut self, now: Time) {
        self.topology.next_check = None;
        match self.status() {
            NodeStatus::Joining => self.drive_join(now),
            NodeStatus::Leaving if self.topology.leave.is_some() => self.drive_leave(now),
            NodeStatus::Left if self.topology.departure.is_some() => self.drive_departure(now),
            _ => {}
        }
        if self.topology.unsaved && self.topology.join.is_some() {
            self.topology.unsaved = false;
            self.save_join();
        }
    }

    fn save_join(&mut self) {
        if let Some(plan) = &self.topology.join {
            let bytes = rmp_serde::to_vec(plan).expect("a plan encodes");
            // Best effort: a lost save only means streaming some keys again.
            let _ = self.local.save_state(JOIN_STATE, &bytes);
        }
    }

    /// The ranges this node will own, and whom to stream each from.
    fn plan_join(&self) -> Plan {
        let me = self.id();
        let n = self.config.replication;
        let owners = self.view.ring.nodes().to_vec();
        let mut transfers = Vec::new();
        if !owners.is_empty() {
            let future = Ring::with_nodes(self.config.vnodes, owners.iter().copied().chain([me]));
            for (first, last, future_owners) in future.ranges(n) {
                if !future_owners.contains(&me) {
                    continue;
                }
                let current: Vec<NodeId> = self.view.ring.walk_from(last).take(n).collect();
                let (losing, keeping): (Vec<NodeId>, Vec<NodeId>) =
                    current.iter().partition(|o| !future_owners.contains(o));
                push_range(&mut transfers, first, last, [losing, keeping].concat());
            }
        }
        Plan {
            owners,
            transfers,
            keys: 0,
            bytes: 0,
        }
    }

    /// Moves a join on: plans it (again, if the ring changed), waits until
    /// every source knows of it, then keeps a few stream requests in
    /// flight until every range is streamed.
    fn drive_join(&mut self, now: Time) {
        if !self.is_ready() {
            self.topology.wake(now + CHECK_INTERVAL);
            return;
        }
        self.plan_join_if_stale();
        let plan = self.topology.join.as_ref().expect("planned");
        // Each range's current replicas (its sources) must know of the
        // join before any range moves.
        let groups: Vec<Vec<NodeId>> = plan.transfers.iter().map(|t| t.peers.clone()).collect();
        if !self.change_is_known(now, groups) {
            self.topology.wake(now + CHECK_INTERVAL);
            return;
        }
        let plan = self.topology.join.as_ref().expect("planned");
        if plan.is_done() {
            self.finish_join();
            return;
        }
        let up: Vec<Vec<bool>> = plan
            .transfers
            .iter()
            .map(|t| t.peers.iter().map(|&p| self.is_up(p)).collect())
            .collect();
        for (to, message) in self.topology.stream_requests(now, &up) {
            self.send(to, message);
        }
        self.topology.wake(now + CHECK_INTERVAL);
    }

    /// Plans the join if it has no plan or the ring changed under it
    /// (keys already streamed are merged again, which changes nothing).
    fn plan_join_if_stale(&mut self) {
        let stale = self
            .topology
            .join
            .as_ref()
            .is_none_or(|plan| plan.owners != self.view.ring.nodes());
        if stale {
            let (keys, bytes) = self.topology.join.as_ref().map_or((0, 0), |p| (p.keys, p.bytes));
            let plan = Plan {
                keys,
                bytes,
                ..self.plan_join()
            };
            self.topology.join = Some(plan);
            self.topology.unsaved = true;
        }
    }

    fn finish_join(&mut self) {
        self.topology.join = None;
        let _ = self.local.save_state(JOIN_STATE, &[]);
        self.set_own_status(NodeStatus::Normal);
    }

    /// Up to a batch of this node's keys in `first..=last` after `after`:
    /// their states, the cursor after them, and whether the range ends
    /// there.
    fn read_batch(
        &mut self,
        first: u64,
        last: u64,
        after: Option<&StreamCursor>,
    ) -> Result<(Vec<KeyState>, u64, Option<StreamCursor>, bool), StoreError> {
        let start = after.map_or(first, |c| c.position);
        let limit = BATCH_KEYS + 8;
        let entries = self.local.digests(start, last, limit)?;
        let listed_all = entries.len() < limit;
        let mut states = Vec::new();
        let mut bytes = 0u64;
        let mut cursor = after.cloned();
        let mut stopped_early = false;
        for entry in entries {
            let here = StreamCursor {
                position: entry.position,
                key: entry.key,
            };
            if after.is_some_and(|a| &here <= a) {
                continue;
            }
            if states.len() >= BATCH_KEYS {
                stopped_early = true;
                break;
            }
            if let Some(object) = self.local.get(&here.key)? {
                let size = state_bytes(&here.key, &object);
                if !states.is_empty() && bytes + size > BATCH_BYTES {
                    stopped_early = true;
                    break;
                }
                bytes += size;
                states.push(KeyState {
                    key: here.key.clone(),
                    object,
                });
            }
            cursor = Some(here);
        }
        let ends = listed_all && !stopped_early;
        Ok((states, bytes, cursor, ends))
    }

    /// A joining node asks for a range's next batch.
    pub(super) fn on_stream_request(
        &mut self,
        from: NodeId,
        stream: u64,
        first: u64,
        last: u64,
        after: Option<StreamCursor>,
    ) {
        // A store that cannot be read sends nothing: the joining node asks
        // again, or asks another replica.
        if let Ok((states, _, cursor, ends)) = self.read_batch(first, last, after.as_ref()) {
            let next = if ends { None } else { cursor };
            self.send(from, PeerMessage::StreamBatch { stream, states, next });
        }
    }

    /// A batch of a range this node is joining for.
    pub(super) fn on_stream_batch(
        &mut self,
        now: Time,
        from: NodeId,
        stream: u64,
        states: Vec<KeyState>,
        next: Option<StreamCursor>,
    ) {
        let Some(plan) = &self.topology.join else {
            return;
        };
        let Some(index) = plan
            .transfers
            .iter()
            .position(|t| t.in_flight.as_ref().is_some_and(|f| f.id == stream) && t.peers[t.peer] == from)
        else {
            return; // Late, or for an older plan.
        };
        let bytes = states.iter().map(|s| state_bytes(&s.key, &s.object)).sum::<u64>();
        if self.merge_many(&states).is_err() {
            return; // Storage trouble: the batch is asked for again later.
        }
        self.stats.keys_streamed_in += states.len() as u64;
        self.stats.bytes_streamed_in += bytes;
        let plan = self.topology.join.as_mut().expect("checked");
        plan.keys += states.len() as u64;
        plan.bytes += bytes;
        let transfer = &mut plan.transfers[index];
        transfer.in_flight = None;
        match next {
            Some(cursor) => transfer.cursor = Some(cursor),
            None => transfer.done = true,
        }
        // Saved after every batch that carried keys, so a restart resumes
        // from here; ranges found empty are saved with the next check.
        if states.is_empty() {
            self.topology.unsaved = true;
        } else {
            self.save_join();
        }
        self.drive_join(now);
    }

    /// The operator asked this node to leave: hand every range off, then
    /// leave. The answer comes once the node has left.
    pub(super) fn start_leave(&mut self, now: Time, client: ClientId) -> Option<AdminResponse> {
        let me = self.id();
        if self.view.membership.is_none() {
            return Some(refused(AdminError::NoMembership));
        }
        match self.status() {
            NodeStatus::Joining => return Some(refused(AdminError::StillJoining)),
            NodeStatus::Leaving if self.topology.leave.is_some() => {
                // Asked again: answer this request too once done.
                self.topology.leave_waiters.push(client);
                return None;
            }
            _ => {}
        }
        if self.view.ring.nodes() == [me] {
            return Some(refused(AdminError::LastNode));
        }
        self.set_own_status(NodeStatus::Leaving);
        let n = self.config.replication;
        let future = Ring::with_nodes(
            self.config.vnodes,
            self.view.ring.nodes().iter().copied().filter(|&x| x != me),
        );
        let mut transfers = Vec::new();
        for (first, last, owners) in self.view.ring.ranges(n) {
            if !owners.contains(&me) {
                continue;
            }
            let next: Vec<NodeId> = future.walk_from(last).take(n).collect();
            let gaining: Vec<NodeId> = next.iter().copied().filter(|x| !owners.contains(x)).collect();
            let targets = if gaining.is_empty() {
                next.into_iter().take(1).collect()
            } else {
                gaining
            };
            for target in targets {
                push_range(&mut transfers, first, last, vec![target]);
            }
        }
        transfers.sort_by_key(|t| (t.first, t.peers[0]));
        self.topology.leave = Some(Plan {
            owners: self.view.ring.nodes().to_vec(),
            transfers,
            keys: 0,
            bytes: 0,
        });
        self.topology.leave_waiters = vec![client];
        self.drive_leave(now);
        None
    }

    fn drive_leave(&mut self, now: Time) {
        let Some(plan) = &self.topology.leave else {
            return;
        };
        let n = self.config.replication;
        let groups: Vec<Vec<NodeId>> = plan
            .transfers
            .iter()
            .map(|t| self.view.ring.walk_from(t.last).take(n).collect())
            .collect();
        if !self.change_is_known(now, groups) {
            self.topology.wake(now + CHECK_INTERVAL);
            return;
        }
        let Some(plan) = &self.topology.leave else {
            return;
        };
        if plan.is_done() {
            self.finish_leave_when_hints_are_out(now);
            return;
        }
        let mut busy = plan
            .transfers
            .iter()
            .filter(|t| t.in_flight.as_ref().is_some_and(|f| f.expires > now))
            .count();
        let candidates: Vec<usize> = plan
            .transfers
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.done && t.in_flight.as_ref().is_none_or(|f| f.expires <= now))
            .map(|(i, _)| i)
            .collect();
        for i in candidates {
            if busy >= IN_FLIGHT {
                break;
            }
            if self.push_leave_batch(now, i) {
                busy += 1;
            }
        }
        let done = self.topology.leave.as_ref().is_some_and(Plan::is_done);
        if done {
            self.finish_leave_when_hints_are_out(now);
        } else {
            self.topology.wake(now + CHECK_INTERVAL);
        }
    }

    /// Sends the next batch of a leave's range `i` to its new owner, if
    /// it is up; a range with nothing left is marked done. True if a batch
    /// left.
    fn push_leave_batch(&mut self, now: Time, i: usize) -> bool {
        let Some(plan) = self.topology.leave.as_mut() else {
            return false;
        };
        let transfer = &mut plan.transfers[i];
        transfer.in_flight = None;
        let (to, first, last, cursor) = (
            transfer.peers[0],
            transfer.first,
            transfer.last,
            transfer.cursor.clone(),
        );
        if !self.is_up(to) {
            return false; // Waits until the new owner is back.
        }
        let Ok((states, bytes, next, ends)) = self.read_batch(first, last, cursor.as_ref()) else {
            return false; // Storage trouble: try again later.
        };
        if states.is_empty() {
            let plan = self.topology.leave.as_mut().expect("checked");
            let transfer = &mut plan.transfers[i];
            transfer.cursor = next;
            transfer.done = ends;
            return false;
        }
        let batch = self.issue_batch(BatchOwner::Leave);
        let plan = self.topology.leave.as_mut().expect("checked");
        let transfer = &mut plan.transfers[i];
        transfer.in_flight = Some(InFlight {
            id: batch,
            expires: now + BATCH_TIMEOUT,
            keys: states.len() as u64,
            bytes,
            next,
            ends,
        });
        self.send(to, PeerMessage::Push { batch, states });
        true
    }

    /// A new owner acknowledged a batch of a leave; false if `batch` is
    /// not one.
    pub(super) fn on_handoff_ack(&mut self, now: Time, from: NodeId, batch: u64, ok: bool) -> bool {
        let Some(plan) = &mut self.topology.leave else {
            return false;
        };
        let Some(transfer) = plan
            .transfers
            .iter_mut()
            .find(|t| t.peers[0] == from && t.in_flight.as_ref().is_some_and(|f| f.id == batch))
        else {
            return false;
        };
        let in_flight = transfer.in_flight.take().expect("matched");
        if ok {
            transfer.cursor = in_flight.next;
            transfer.done = in_flight.ends;
            plan.keys += in_flight.keys;
            plan.bytes += in_flight.bytes;
            self.stats.keys_handed_off += in_flight.keys;
            self.drive_leave(now);
        } else {
            self.topology.wake(now + CHECK_INTERVAL);
        }
        true
    }

    /// Every range is handed off; the node leaves once no hints are left
    /// (replay delivers them, or hands them to a remaining node).
    fn finish_leave_when_hints_are_out(&mut self, now: Time) {
        if self.hints.total() == 0 {
            self.finish_leave(now);
        } else {
            self.topology.wake(now + CHECK_INTERVAL);
        }
    }

    fn finish_leave(&mut self, now: Time) {
        self.topology.leave = None;
        self.set_own_status(NodeStatus::Left);
        self.topology.departure = Some(Departure { since: now });
        self.topology.wake(now + CHECK_INTERVAL);
    }

    /// Tells the members that have not confirmed the departure again, or
    /// goes once enough did.
    fn drive_departure(&mut self, now: Time) {
        let me = self.id();
        let (Some(departure), Some(membership)) = (&self.topology.departure, &self.view.membership) else {
            return;
        };
        let waiting: Vec<NodeId> = membership
            .up_members()
            .map(|p| p.node)
            .filter(|&n| n != me && !self.knows_my_state(n))
            .collect();
        let others: Vec<NodeId> = self
            .view
            .ring
            .nodes()
            .iter()
            .copied()
            .filter(|&n| n != me)
            .collect();
        let confirmed = others.iter().filter(|&&n| self.knows_my_state(n)).count();
        let heard = confirmed > others.len() / 2;
        if heard && (waiting.is_empty() || now.saturating_since(departure.since) >= DEPART_WAIT) {
            self.depart(now);
            return;
        }
        for node in waiting {
            self.sync_states_to(node);
        }
        self.topology.wake(now + CHECK_INTERVAL);
    }

    /// `from` sent its member states: it knows this node's state as they
    /// hold it. A join, leave or departure waiting for it moves on.
    pub(super) fn note_known_by(&mut self, from: NodeId, states: &[super::membership::MemberState]) {
        let me = self.id();
        let Some(shown) = states.iter().find(|s| s.node == me) else {
            return;
        };
        let shown = (shown.generation, shown.version);
        let known = self.topology.known_by.entry(from).or_insert(shown);
        *known = (*known).max(shown);
        let waiting = self.topology.join.is_some()
            || self.topology.leave.is_some()
            || self.topology.departure.is_some();
        if waiting && self.knows_my_state(from) {
            self.topology.wake_now();
        }
    }

    /// Whether `node` has shown this node's current state.
    fn knows_my_state(&self, node: NodeId) -> bool {
        let Some(mine) = self.view.membership.as_ref().and_then(|m| m.state(self.id())) else {
            return false;
        };
        self.topology
            .known_by
            .get(&node)
            .is_some_and(|&known| known >= (mine.generation, mine.version))
    }

    /// Whether enough of each range's current replicas know this node's
    /// status (joining or leaving) for the ranges to move: a majority of
    /// every group, and each member of it that is up. A replica that knows
    /// refuses requests from a coordinator that does not (see
    /// [`Placement`](super::message::Placement)), so once ranges move no
    /// quorum of old replicas alone acknowledges a write any more, even
    /// from a coordinator a partition kept from hearing of the change.
    /// Asks the live members that have not confirmed, at most every
    /// [`CHECK_INTERVAL`].
    fn change_is_known(&mut self, now: Time, groups: Vec<Vec<NodeId>>) -> bool {
        let me = self.id();
        let mut known = true;
        let mut ask = BTreeSet::new();
        let mut unconfirmed = BTreeSet::new();
        for group in groups {
            let confirmed = group
                .iter()
                .filter(|&&n| n == me || self.knows_my_state(n))
                .count();
            let waiting: Vec<NodeId> = group
                .into_iter()
                .filter(|&n| n != me && !self.knows_my_state(n))
                .collect();
            let live: Vec<NodeId> = waiting.iter().copied().filter(|&n| self.is_up(n)).collect();
            known &= live.is_empty() && confirmed > (confirmed + waiting.len()) / 2;
            ask.extend(live);
            unconfirmed.extend(waiting);
        }
        self.topology.unconfirmed = if known { 0 } else { unconfirmed.len() as u64 };
        if !known && self.topology.next_ask.is_none_or(|at| at <= now) {
            self.topology.next_ask = Some(now + CHECK_INTERVAL);
            for node in ask {
                self.sync_states_to(node);
            }
        }
        known
    }

    /// Leaves the gossip and answers the operator.
    fn depart(&mut self, now: Time) {
        self.topology.departure = None;
        let mut effects = Vec::new();
        if let Some(membership) = &mut self.view.membership {
            membership.leave(now, &mut effects);
        }
        self.apply_effects(effects);
        for client in std::mem::take(&mut self.topology.leave_waiters) {
            self.outputs.push_back(Output::AdminReply {
                client,
                response: AdminResponse::Done,
            });
        }
    }
}
