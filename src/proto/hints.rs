//! Hinted handoff: writes a replica missed are kept as durable hints by
//! another node and delivered when the replica is back.
//!
//! A hint is stored in two cases:
//!
//! * **Sloppy quorum.** A write whose home replica is known to be down is
//!   sent to the next live node on the ring after the preference list (a
//!   fallback) as [`PeerMessage::HintedPut`]; the fallback stores a hint
//!   tagged with the home replica's id and its acknowledgement counts
//!   toward W.
//! * **Missed acknowledgement.** When a write ends, its coordinator stores
//!   a hint for every home replica that did not acknowledge it (down,
//!   silent until the deadline, failed, or a fallback that failed).
//!
//! Each holder replays its hints per replica, in the order stored, in
//! batches of [`Config::hint_batch`](super::Config), with at most
//! [`Config::hint_batches_in_flight`](super::Config) batches unacknowledged
//! and at most [`Config::hint_replay_rate`](super::Config) hints a second,
//! so a replica that comes back is not swamped: small batches keep each
//! piece of merge work on the replica short (its reads and writes wait
//! less behind one), and the window of batches keeps the rate up while
//! making replay slow down by itself when the replica acknowledges more
//! slowly (and the replica holds its acknowledgements back past its
//! [`Config::intake_rate`](super::Config), from all holders together:
//! see [`intake`](super::intake)). A hint is deleted once the replica
//! acknowledged its batch (the states are merged and durable there); a
//! batch refused or unanswered sends every unacknowledged batch again
//! (merging twice is harmless). Hints are bounded per replica: none are
//! stored for a replica down for longer than the hint window or holding
//! more than [`Config::max_hint_bytes_per_replica`](super::Config); hints
//! for a removed node are dropped. Anti-entropy repairs whatever a dropped
//! hint held.
//!
//! A hint that outlives the hint window is not simply dropped when its
//! holder is not a home replica of the key (a sloppy-quorum fallback, or
//! a node hints were handed to): it may be the only copy of an
//! acknowledged write besides one replica, whose disk may be lost next.
//! So it is *re-homed*: its state is pushed to every live home replica
//! (the target too, if it is up) and the hint is deleted once all of them
//! acknowledged. When the holder has become a home replica itself (hints
//! handed to it, or a fallback that ranges moved to), it merges the
//! hint's state into its own copy instead: holding a hint is not holding
//! the write. A hint is re-homed or kept only while younger than the
//! midpoint of the hint window and the tombstone grace, so a value older
//! than a collected tombstone never comes back; past that age an old hint
//! is dropped and anti-entropy repairs instead.
//!
//! A leaving node does not leave with hints undelivered: hints for a
//! replica that is down are handed to a remaining node
//! ([`PeerMessage::HandOffHints`], paced like replay), which keeps them,
//! with their original age, and delivers them in turn. That node must not
//! hold the write already (a home replica of the key, or a node the write
//! was sent to): the leave would otherwise take one of the write's copies
//! with it. While no such node is up, the hint waits for its replica or
//! for the hint window to pass, and the leave waits with it.

use super::Node;
use super::batches::BatchOwner;
use super::membership::NodeStatus;
use super::message::{HintsPending, KeyState, PeerMessage, ReplicaError};
use super::store::{Hint, Store, StoreError, StoredHint};
use super::types::{NodeId, Time, millis};
use super::version::Versioned;
use std::collections::BTreeMap;
use std::time::Duration;

/// How often held hints are looked at while some wait for a replica that
/// is down.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Hints read per step when counting them at start or dropping them.
const SCAN_STEP: usize = 4096;
/// How far replay may catch up at once after falling behind its rate
/// (timers wake late by up to a millisecond or so): a short burst.
const PACING_SLACK: Duration = Duration::from_millis(10);

/// The hints a node holds, by replica.
#[derive(Debug, Default)]
pub(super) struct Hints {
    next_seq: u64,
    queues: BTreeMap<NodeId, Queue>,
    /// When to look at the queues next; `None` while there are no hints.
    next_check: Option<Time>,
}

#[derive(Debug, Default)]
struct Queue {
    count: u64,
    bytes: u64,
    /// The replay cursor: hints before it were delivered, dropped, or are
    /// in flight.
    from: u64,
    /// Batches sent and not yet acknowledged, oldest first.
    in_flight: Vec<InFlight>,
    /// Pacing: the next batch leaves no earlier.
    not_before: Time,
    /// While the replica is down: no hint at the cursor passes the hint
    /// window before this time (ms by this node's clock), so there is
    /// nothing to re-home until then. `None`: unknown, look.
    rehome_from_ms: Option<u64>,
}

#[derive(Debug)]
struct InFlight {
    batch: u64,
    /// Nodes yet to acknowledge the batch: the replica itself, the node
    /// the hints were handed to, or the home replicas old hints were
    /// re-homed to.
    awaiting: Vec<NodeId>,
    /// The hints were re-homed rather than delivered.
    rehomed: bool,
    /// Sequence numbers and sizes of the hints sent.
    hints: Vec<(u64, u64)>,
    /// The replay cursor when the batch was read: where replay starts
    /// again if the batch is not acknowledged.
    start: u64,
    expires: Time,
}

impl Queue {
    /// Forgets the batches in flight; replay starts again at the oldest.
    fn resend_in_flight(&mut self) {
        if let Some(oldest) = self.in_flight.first() {
            self.from = oldest.start;
        }
        self.in_flight.clear();
    }

    /// Paces the next batch after one of `hints` hints left at `now`.
    fn pace(&mut self, now: Time, hints: usize, rate: u32) {
        let behind = now.saturating_since(self.not_before);
        let base = if behind > PACING_SLACK {
            now.earlier_by(PACING_SLACK)
        } else {
            self.not_before
        };
        self.not_before = base + Duration::from_secs_f64(hints as f64 / f64::from(rate));
    }
}

/// What becomes of one held hint.
/// The hints of one batch, as [`Node::pick_hints`] chose them.
#[derive(Default)]
struct Picked {
    /// Hints delivered to `dest` (the target or a custodian).
    delivered: Vec<Hint>,
    dest: Option<NodeId>,
    /// Or states re-homed, by home replica.
    rehomed: BTreeMap<NodeId, Vec<KeyState>>,
    /// (sequence, bytes) of every hint in the batch.
    sent: Vec<(u64, u64)>,
    /// Where the next batch starts reading.
    next_from: u64,
    /// The replica is down and the first hint kept waits until then (ms).
    waits_until: Option<u64>,
}

impl Picked {
    /// The nodes the batch waits for and the messages that carry it.
    fn messages(
        &mut self,
        now: Time,
        batch: u64,
        target: NodeId,
    ) -> (Vec<NodeId>, Vec<(NodeId, PeerMessage)>) {
        if !self.rehomed.is_empty() {
            let rehomed = std::mem::take(&mut self.rehomed);
            let awaiting = rehomed.keys().copied().collect();
            let messages = rehomed
                .into_iter()
                .map(|(home, states)| (home, PeerMessage::Push { batch, states }))
                .collect();
            return (awaiting, messages);
        }
        let to = self.dest.expect("hints are delivered only to a node");
        let hints = std::mem::take(&mut self.delivered);
        let message = if to == target {
            let states = hints
                .into_iter()
                .map(|h| KeyState {
                    key: h.key,
                    object: h.object,
                })
                .collect();
            PeerMessage::Push { batch, states }
        } else {
            PeerMessage::HandOffHints {
                batch,
                target,
                hints,
                sent_ms: Some(now.as_millis()),
            }
        };
        (vec![to], vec![(to, message)])
    }
}

#[derive(Debug)]
enum Fate {
    /// Sent to the replica, or to the node taking this one's hints.
    Deliver,
    /// Past the window: its state goes to these home replicas.
    Rehome(Vec<NodeId>),
    /// Past the window, and this node is a home replica of the key: its
    /// state is merged into this node's own copy.
    Keep,
    /// Deleted unsent.
    Drop,
    /// Kept for now: the replica is down and the hint is within the
    /// window until this time (ms by this node's clock), or no home
    /// replica is up to re-home it to.
    Wait(u64),
}

impl Hints {
    /// Counts the hints a store holds.
    pub(super) fn load(store: &impl Store) -> Result<Hints, StoreError> {
        let mut hints = Hints::default();
        let mut from = (NodeId(0), 0);
        loop {
            let step = store.hints(from, SCAN_STEP)?;
            let Some(last) = step.last() else { break };
            from = match last.seq.checked_add(1) {
                Some(seq) => (last.target, seq),
                None => (NodeId(last.target.0.saturating_add(1)), 0),
            };
            for stored in &step {
                let queue = hints.queues.entry(stored.target).or_default();
                queue.count += 1;
                queue.bytes += stored.bytes;
                hints.next_seq = hints.next_seq.max(stored.seq.saturating_add(1));
            }
            if step.len() < SCAN_STEP || last.target.0 == u64::MAX && last.seq == u64::MAX {
                break;
            }
        }
        hints.queues.retain(|_, q| q.count > 0);
        if !hints.queues.is_empty() {
            hints.next_check = Some(Time::ZERO); // Replay as soon as driven.
        }
        Ok(hints)
    }

    /// Hints waiting, by replica.
    pub(super) fn pending(&self) -> Vec<HintsPending> {
        self.queues
            .iter()
            .filter(|(_, q)| q.count > 0)
            .map(|(&target, q)| HintsPending {
                target,
                count: q.count,
                bytes: q.bytes,
            })
            .collect()
    }

    /// Total hints held.
    pub(super) fn total(&self) -> u64 {
        self.queues.values().map(|q| q.count).sum()
    }

    /// When replay next needs the node's attention.
    pub(super) fn poll_timeout(&self) -> Option<Time> {
        self.next_check
    }

    /// A new id for a [`PeerMessage::Push`] (hint replay and leave handoff
    /// share them, so acknowledgements cannot be confused).
    /// Whether a batch `batch` waits for its acknowledgement.
    pub(super) fn holds_batch(&self, batch: u64) -> bool {
        self.batches_held().any(|b| b == batch)
    }

    /// The batches that wait for their acknowledgement.
    pub(super) fn batches_held(&self) -> impl Iterator<Item = u64> + '_ {
        self.queues
            .values()
            .flat_map(|q| q.in_flight.iter().map(|f| f.batch))
    }

    fn wake(&mut self, at: Time) {
        self.next_check = Some(self.next_check.map_or(at, |t| t.min(at)));
    }
}

impl<S: Store> Node<S> {
    /// Stores a hint of `object` for `target` (the write went to
    /// `written_to`); false if the bounds say no (hinted handoff off,
    /// `target` down too long, or too many bytes held for it).
    pub(super) fn store_hint(
        &mut self,
        now: Time,
        target: NodeId,
        key: &[u8],
        object: &Versioned,
        written_to: &[NodeId],
    ) -> Result<bool, StoreError> {
        let hint = Hint {
            key: key.to_vec(),
            object: object.clone(),
            created_ms: now.as_millis(),
            written_to: written_to.to_vec(),
        };
        self.keep_hint(now, target, &hint)
    }

    /// Stores `hint` for `target` unless the bounds say no.
    fn keep_hint(&mut self, now: Time, target: NodeId, hint: &Hint) -> Result<bool, StoreError> {
        if !self.config.hinted_handoff || target == self.id() {
            return Ok(false);
        }
        let window_ms = millis(self.config.hint_window);
        let too_old = hint.created_ms.saturating_add(window_ms) < now.as_millis();
        let down_too_long = self
            .view
            .membership
            .as_ref()
            .and_then(|m| m.down_since(target))
            .is_some_and(|since| now.saturating_since(since) > self.config.hint_window);
        let held = self.hints.queues.entry(target).or_default().bytes;
        let record = super::store::encode_hint(hint);
        let size = record.len() as u64;
        if too_old || down_too_long || held + size > self.config.max_hint_bytes_per_replica {
            self.stats.hints_dropped += 1;
            return Ok(false);
        }
        let seq = self.hints.next_seq;
        self.local.put_hint(target, seq, &record)?;
        self.hints.next_seq += 1;
        let queue = self.hints.queues.entry(target).or_default();
        queue.count += 1;
        queue.bytes += size;
        let expires_ms = hint.created_ms.saturating_add(window_ms);
        queue.rehome_from_ms = queue.rehome_from_ms.map(|at| at.min(expires_ms));
        self.stats.hints_stored += 1;
        self.hints.wake(now);
        Ok(true)
    }

    /// Hints waiting for their replica, by replica.
    pub fn hints_pending(&self) -> Vec<HintsPending> {
        self.hints.pending()
    }

    /// How many hints this node holds.
    pub fn hints_held(&self) -> u64 {
        self.hints.total()
    }

    /// Whether `node` was removed from the cluster (its hints are void).
    fn removed(&self, node: NodeId) -> bool {
        match &self.view.membership {
            Some(m) => m.state(node).is_none_or(|s| s.status == NodeStatus::Left),
            None => !self.view.ring.contains(node),
        }
    }

    /// A node to hand `hint` (for `target`) to while this node leaves: a
    /// live, normal ring member, the first after `target` on the ring,
    /// that cannot hold the write already. So not this node or `target`,
    /// not a home replica of the key (now or once ranges move: hints and
    /// repairs bring the write there) and not a node the write was sent to.
    /// Handing it to one of those would leave one copy fewer than the
    /// write was acknowledged with. `None` while there is no such node:
    /// the hint then waits for `target`, or for the hint window to pass.
    fn hint_custodian(&self, target: NodeId, hint: &Hint) -> Option<NodeId> {
        let me = self.id();
        let membership = self.view.membership.as_ref()?;
        let n = self.config.replication;
        let mut holders = self.view.ring.preference_list(&hint.key, n);
        holders.extend(
            self.view
                .future_ring
                .iter()
                .flat_map(|r| r.preference_list(&hint.key, n)),
        );
        holders.extend(&hint.written_to);
        let nodes = self.view.ring.nodes();
        let start = nodes.iter().position(|&n| n >= target).unwrap_or(0);
        nodes[start..].iter().chain(&nodes[..start]).copied().find(|&n| {
            n != me
                && n != target
                && !holders.contains(&n)
                && self.writable(n)
                && membership
                    .state(n)
                    .is_some_and(|s| s.status == NodeStatus::Normal)
        })
    }

    /// Sends the next batch to every replica that is up and not busy with
    /// one (a leaving node hands hints for a replica that is down to
    /// another node); drops void hints.
    pub(super) fn replay_hints(&mut self, now: Time) {
        self.hints.next_check = None;
        let targets: Vec<NodeId> = self.hints.queues.keys().copied().collect();
        for target in targets {
            if self.removed(target) {
                self.drop_hints_of(now, target);
                continue;
            }
            let queue = self.hints.queues.get_mut(&target).expect("listed");
            if queue.in_flight.iter().any(|f| f.expires <= now) {
                queue.resend_in_flight(); // Unanswered: send again.
            }
            if let Some(at) = queue.in_flight.iter().map(|f| f.expires).min() {
                self.hints.wake(at);
            }
            let up = self.writable(target);
            let leaving = self.status() == NodeStatus::Leaving;
            loop {
                let queue = &self.hints.queues[&target];
                if queue.in_flight.len() >= self.config.hint_batches_in_flight {
                    break; // An acknowledgement wakes replay.
                }
                let (not_before, rehome_from_ms) = (queue.not_before, queue.rehome_from_ms);
                if not_before > now {
                    self.hints.wake(not_before);
                    break;
                }
                if !up && !leaving {
                    // The replica is down: only hints past the window move.
                    self.hints.wake(now + CHECK_INTERVAL);
                    if rehome_from_ms.is_some_and(|at| now.as_millis() <= at) {
                        break;
                    }
                }
                if !self.send_hint_batch(now, target, up) {
                    break;
                }
            }
        }
        self.hints
            .queues
            .retain(|_, q| q.count > 0 || !q.in_flight.is_empty());
    }

    /// What becomes of a held hint for `target` now, when its next batch
    /// goes to `to` (`None`: nowhere, the replica is down).
    fn hint_fate(&self, now: Time, target: NodeId, hint: Option<&Hint>, to: Option<NodeId>) -> Fate {
        let Some(hint) = hint else {
            return Fate::Drop; // Damaged: anti-entropy repairs instead.
        };
        let window_ms = millis(self.config.hint_window);
        let age_ms = now.as_millis().saturating_sub(hint.created_ms);
        if age_ms <= window_ms {
            return match to {
                Some(_) => Fate::Deliver,
                None => Fate::Wait(hint.created_ms.saturating_add(window_ms)),
            };
        }
        let me = self.id();
        let homes = self.view.ring.preference_list(&hint.key, self.config.replication);
        if age_ms >= millis(self.rehome_limit()) {
            return Fate::Drop; // Too old to bring back.
        }
        if homes.contains(&me) && self.status() != NodeStatus::Leaving {
            return Fate::Keep;
        }
        let live: Vec<NodeId> = homes
            .into_iter()
            .filter(|&n| n != me && self.writable(n) && !self.is_leaving(n))
            .collect();
        match (live.is_empty(), to) {
            (false, _) => Fate::Rehome(live),
            // Leaving, and no home replica to take it: the node taking
            // this one's hints would refuse it as too old.
            (true, Some(to)) if to != target => Fate::Drop,
            (true, _) => Fate::Wait(now.as_millis()),
        }
    }

    /// How old a hint may grow and still be re-homed: halfway from the
    /// hint window to the tombstone grace, so that it cannot arrive after
    /// a tombstone of its key was collected, even with clocks apart.
    fn rehome_limit(&self) -> Duration {
        (self.config.hint_window + self.config.tombstone_grace) / 2
    }

    /// Sends the next hints for `target`: to `target` itself if it is
    /// `up`, or, while this node leaves, to a node that keeps them (each
    /// hint's custodian; a batch goes to one), or, for hints past the
    /// window, to the key's live home replicas. Drops void hints. True if
    /// a batch left.
    fn send_hint_batch(&mut self, now: Time, target: NodeId, up: bool) -> bool {
        let from = self.hints.queues[&target].from;
        let Ok(stored) = self.local.hints((target, from), self.config.hint_batch) else {
            self.hints.wake(now + CHECK_INTERVAL);
            return false; // Storage trouble: try again later.
        };
        let stored: Vec<StoredHint> = stored.into_iter().filter(|s| s.target == target).collect();
        let read_any = !stored.is_empty();
        let mut picked = self.pick_hints(now, target, up, from, stored);
        let batch = self.issue_batch(BatchOwner::Hints);
        let queue = self.hints.queues.get_mut(&target).expect("listed");
        queue.rehome_from_ms = picked.waits_until.filter(|_| !up);
        if picked.sent.is_empty() {
            self.batches.release(batch);
            queue.from = picked.next_from;
            if !read_any {
                if queue.in_flight.is_empty() {
                    // Nothing readable is left: the counts were ahead of the store.
                    queue.count = 0;
                    queue.bytes = 0;
                }
            } else if picked.waits_until.is_some() {
                self.hints.wake(now + CHECK_INTERVAL);
            } else {
                self.hints.wake(now);
            }
            return false;
        }
        let expires = now + self.config.request_timeout * 2;
        let is_rehome = !picked.rehomed.is_empty();
        let (awaiting, messages) = picked.messages(now, batch, target);
        queue.pace(now, picked.sent.len(), self.config.hint_replay_rate);
        queue.in_flight.push(InFlight {
            batch,
            awaiting,
            rehomed: is_rehome,
            hints: picked.sent,
            start: from,
            expires,
        });
        queue.from = picked.next_from;
        self.hints.wake(expires);
        for (node, message) in messages {
            self.send(node, message);
        }
        true
    }

    /// Decides the fate of `target`'s stored hints, in order, up to what
    /// one batch carries: delivered to one node, or re-homed, not both.
    /// Void hints are deleted on the way.
    fn pick_hints(
        &mut self,
        now: Time,
        target: NodeId,
        up: bool,
        from: u64,
        stored: Vec<StoredHint>,
    ) -> Picked {
        let leaving = self.status() == NodeStatus::Leaving;
        let mut picked = Picked {
            next_from: from,
            ..Picked::default()
        };
        let mut bytes = 0;
        for stored in stored {
            if !picked.sent.is_empty() && bytes + stored.bytes > super::BATCH_BYTES {
                break; // The rest goes in the next batch.
            }
            let to = match &stored.hint {
                _ if up => Some(target),
                Some(hint) if leaving => self.hint_custodian(target, hint),
                _ => None,
            };
            let fate = self.hint_fate(now, target, stored.hint.as_ref(), to);
            // A batch is delivered (to one node) or re-homed, not both.
            let stop = match &fate {
                Fate::Wait(at) => {
                    picked.waits_until = Some(*at);
                    true
                }
                Fate::Deliver => !picked.rehomed.is_empty() || picked.dest.is_some_and(|d| Some(d) != to),
                Fate::Rehome(_) => !picked.delivered.is_empty(),
                Fate::Keep | Fate::Drop => false,
            };
            if stop {
                break;
            }
            picked.next_from = stored.seq.saturating_add(1);
            match (fate, stored.hint) {
                (Fate::Deliver, Some(hint)) => {
                    picked.dest = to;
                    picked.delivered.push(hint);
                }
                (Fate::Rehome(homes), Some(hint)) => {
                    for home in homes {
                        picked.rehomed.entry(home).or_default().push(KeyState {
                            key: hint.key.clone(),
                            object: hint.object.clone(),
                        });
                    }
                }
                (Fate::Keep, Some(hint)) => {
                    let Ok(changed) = self.merge_local(&hint.key, hint.object) else {
                        // Storage trouble: keep the hint and try again later.
                        picked.next_from = stored.seq;
                        picked.waits_until = Some(now.as_millis().saturating_add(millis(CHECK_INTERVAL)));
                        break;
                    };
                    if self.delete_hint(target, stored.seq, stored.bytes) {
                        // Unchanged: this node held the write already, and
                        // the target is left to anti-entropy.
                        if changed {
                            self.stats.hints_rehomed += 1;
                        } else {
                            self.stats.hints_dropped += 1;
                        }
                    }
                    continue;
                }
                _ => {
                    if self.delete_hint(target, stored.seq, stored.bytes) {
                        self.stats.hints_dropped += 1;
                    }
                    continue;
                }
            }
            bytes += stored.bytes;
            picked.sent.push((stored.seq, stored.bytes));
        }
        picked
    }

    /// Deletes hint `seq` (of `bytes`) for `target` from the store and
    /// from its queue's counts; false if the store refused (the hint stays
    /// and is met again).
    fn delete_hint(&mut self, target: NodeId, seq: u64, bytes: u64) -> bool {
        let deleted = self.local.remove_hint(target, seq).is_ok();
        if deleted {
            self.forget_hint(target, bytes);
        }
        deleted
    }

    fn forget_hint(&mut self, target: NodeId, bytes: u64) {
        if let Some(queue) = self.hints.queues.get_mut(&target) {
            queue.count = queue.count.saturating_sub(1);
            queue.bytes = queue.bytes.saturating_sub(bytes);
            if queue.count == 0 {
                queue.bytes = 0;
            }
        }
    }

    /// Deletes a step of the hints for a removed node; the next check
    /// deletes more.
    fn drop_hints_of(&mut self, now: Time, target: NodeId) {
        let Ok(stored) = self.local.hints((target, 0), SCAN_STEP) else {
            return;
        };
        let mine: Vec<_> = stored.into_iter().filter(|s| s.target == target).collect();
        if mine.is_empty() {
            self.hints.queues.remove(&target);
            return;
        }
        for stored in mine {
            if !self.delete_hint(target, stored.seq, stored.bytes) {
                return;
            }
            self.stats.hints_dropped += 1;
        }
        if let Some(queue) = self.hints.queues.get_mut(&target) {
            queue.in_flight.clear();
            queue.from = 0;
        }
        self.hints.wake(now);
    }

    /// Pushed states (hints, or a leaving node's keys): merge every state,
    /// then acknowledge (when the intake rate allows).
    pub(super) fn on_push(&mut self, now: Time, from: NodeId, batch: u64, states: Vec<KeyState>) {
        self.stats.replica_ops += states.len() as u64;
        let result = self.merge_many(&states).map(|_| ()).map_err(ReplicaError::from);
        self.acknowledge_intake(now, from, states.len(), PeerMessage::PushAck { batch, result });
    }

    /// A leaving node handed over its hints for `target`: keep them (within
    /// the bounds; what they exclude is left to anti-entropy), then
    /// acknowledge. Each keeps the age its sender gave it (`sent_ms`, the
    /// sender's clock when it sent them), so clocks that disagree neither
    /// drop young hints nor keep old ones past the window.
    pub(super) fn on_hand_off_hints(
        &mut self,
        now: Time,
        from: NodeId,
        batch: u64,
        target: NodeId,
        hints: Vec<Hint>,
        sent_ms: Option<u64>,
    ) {
        let mut result = Ok(());
        let count = hints.len();
        for mut hint in hints {
            if let Some(sent_ms) = sent_ms {
                let age_ms = sent_ms.saturating_sub(hint.created_ms);
                hint.created_ms = now.as_millis().saturating_sub(age_ms);
            }
            self.stats.replica_ops += 1;
            let kept = if target == self.id() {
                self.merge_local(&hint.key, hint.object).map(|_| ())
            } else {
                self.keep_hint(now, target, &hint).map(|_| ())
            };
            if let Err(error) = kept {
                result = Err(ReplicaError::from(error));
                break;
            }
        }
        self.acknowledge_intake(now, from, count, PeerMessage::PushAck { batch, result });
    }

    /// A replica (or the node hints were handed to, or a home replica old
    /// hints were re-homed to) acknowledged a batch of hints: once every
    /// node it went to did, delete them and pace the next. False if the batch was not
    /// one of hints.
    pub(super) fn on_hints_ack(
        &mut self,
        now: Time,
        from: NodeId,
        batch: u64,
        result: Result<(), ReplicaError>,
    ) -> bool {
        let found = self.hints.queues.iter_mut().find_map(|(&target, q)| {
            let at = q
                .in_flight
                .iter()
                .position(|f| f.batch == batch && f.awaiting.contains(&from))?;
            Some((target, q, at))
        });
        let Some((target, queue, at)) = found else {
            return false; // Not ours, or a late answer to a batch sent again.
        };
        if result.is_err() {
            // The batch and those after it go again later, whole (merging
            // twice is harmless).
            queue.resend_in_flight();
            queue.not_before = now + CHECK_INTERVAL;
            self.hints.wake(now + CHECK_INTERVAL);
            return true;
        }
        let in_flight = &mut queue.in_flight[at];
        in_flight.awaiting.retain(|&n| n != from);
        if !in_flight.awaiting.is_empty() {
            return true; // Other home replicas are still to acknowledge.
        }
        let in_flight = queue.in_flight.remove(at);
        let wake = queue.not_before.max(now);
        let seqs: Vec<u64> = in_flight.hints.iter().map(|&(seq, _)| seq).collect();
        // A failed delete only means the hints are sent again later.
        if self.local.remove_hints(target, &seqs).is_ok() {
            for (_, bytes) in in_flight.hints {
                self.forget_hint(target, bytes);
                if in_flight.rehomed {
                    self.stats.hints_rehomed += 1;
                } else {
                    self.stats.hints_replayed += 1;
                }
            }
        }
        self.hints.wake(wake);
        true
    }
}
