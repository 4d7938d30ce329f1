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
//! batches of [`Config::hint_batch`](super::Config) with one batch in flight
//! at a time and at most [`Config::hint_replay_rate`](super::Config) hints a
//! second, so a replica that comes back is not swamped. A hint is deleted
//! once the replica acknowledged the batch (the states are merged and
//! durable there). Hints are bounded per replica: none are stored for a
//! replica down for longer than the hint window or holding more than
//! [`Config::max_hint_bytes_per_replica`](super::Config); hints older than
//! the window are dropped unsent; hints for a removed node are dropped.
//! Anti-entropy repairs whatever a dropped hint held.
//!
//! A leaving node does not leave with hints undelivered: hints for a
//! replica that is down are handed to a remaining node
//! ([`PeerMessage::HandOffHints`], paced like replay), which keeps them,
//! with their original age, and delivers them in turn.

use super::Node;
use super::membership::NodeStatus;
use super::message::{AeState, HintsPending, PeerMessage, ReplicaError};
use super::store::{Hint, Store, StoreError};
use super::types::{NodeId, Time};
use super::version::Versioned;
use std::collections::BTreeMap;
use std::time::Duration;

/// How often held hints are looked at while some wait for a replica that
/// is down.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Hints read per step when counting them at start or dropping them.
const SCAN_STEP: usize = 4096;

/// The hints a node holds, by replica.
#[derive(Debug, Default)]
pub(super) struct Hints {
    next_seq: u64,
    next_batch: u64,
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
    in_flight: Option<InFlight>,
    /// Pacing: the next batch leaves no earlier.
    not_before: Time,
}

#[derive(Debug)]
struct InFlight {
    batch: u64,
    /// The replica itself, or the node the hints were handed to.
    to: NodeId,
    /// Sequence numbers and sizes of the hints sent.
    hints: Vec<(u64, u64)>,
    /// Sequence number after the last hint read, sent or dropped.
    next_from: u64,
    sent: Time,
    expires: Time,
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
    pub(super) fn fresh_batch(&mut self) -> u64 {
        self.next_batch += 1;
        self.next_batch
    }

    fn wake(&mut self, at: Time) {
        self.next_check = Some(self.next_check.map_or(at, |t| t.min(at)));
    }
}

impl<S: Store> Node<S> {
    /// Stores a hint of `object` for `target`; false if the bounds say no
    /// (hinted handoff off, `target` down too long, or too many bytes held
    /// for it).
    pub(super) fn store_hint(
        &mut self,
        now: Time,
        target: NodeId,
        key: &[u8],
        object: &Versioned,
    ) -> Result<bool, StoreError> {
        let hint = Hint {
            key: key.to_vec(),
            object: object.clone(),
            created_ms: now.as_millis(),
        };
        self.keep_hint(now, target, &hint)
    }

    /// Stores `hint` for `target` unless the bounds say no.
    fn keep_hint(&mut self, now: Time, target: NodeId, hint: &Hint) -> Result<bool, StoreError> {
        if !self.config.hinted_handoff || target == self.id() {
            return Ok(false);
        }
        let window_ms = u64::try_from(self.config.hint_window.as_millis()).unwrap_or(u64::MAX);
        let too_old = hint.created_ms.saturating_add(window_ms) < now.as_millis();
        let down_too_long = self
            .membership
            .as_ref()
            .and_then(|m| m.down_since(target))
            .is_some_and(|since| now.saturating_since(since) > self.config.hint_window);
        let queue = self.hints.queues.entry(target).or_default();
        let record = super::store::encode_hint(hint);
        let size = record.len() as u64;
        if too_old || down_too_long || queue.bytes + size > self.config.max_hint_bytes_per_replica {
            self.stats.hints_dropped += 1;
            return Ok(false);
        }
        let seq = self.hints.next_seq;
        self.store.put_hint(target, seq, &record)?;
        self.hints.next_seq += 1;
        queue.count += 1;
        queue.bytes += size;
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
        match &self.membership {
            Some(m) => m.state(node).is_none_or(|s| s.status == NodeStatus::Left),
            None => !self.ring.contains(node),
        }
    }

    /// A node to hand the hints for `target` to while this node leaves:
    /// a live, normal ring member other than this node and `target`, the
    /// first after `target` on the ring.
    fn hint_custodian(&self, target: NodeId) -> Option<NodeId> {
        let me = self.id();
        let membership = self.membership.as_ref()?;
        let nodes = self.ring.nodes();
        let start = nodes.iter().position(|&n| n >= target).unwrap_or(0);
        nodes[start..].iter().chain(&nodes[..start]).copied().find(|&n| {
            n != me
                && n != target
                && self.is_up(n)
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
            if let Some(in_flight) = &queue.in_flight {
                if in_flight.expires > now {
                    let at = in_flight.expires;
                    self.hints.wake(at);
                    continue;
                }
                queue.in_flight = None; // Unanswered: send again.
            }
            let not_before = queue.not_before;
            let to = if self.is_up(target) {
                Some(target)
            } else if self.status() == NodeStatus::Leaving {
                self.hint_custodian(target)
            } else {
                None
            };
            let Some(to) = to else {
                self.hints.wake(now + CHECK_INTERVAL);
                continue;
            };
            if not_before > now {
                self.hints.wake(not_before);
                continue;
            }
            self.send_hint_batch(now, target, to);
        }
        self.hints
            .queues
            .retain(|_, q| q.count > 0 || q.in_flight.is_some());
    }

    /// Sends the next hints for `target` to `to`: `target` itself, or the
    /// node that keeps them while this one leaves.
    fn send_hint_batch(&mut self, now: Time, target: NodeId, to: NodeId) {
        let from = self.hints.queues[&target].from;
        let Ok(stored) = self.store.hints((target, from), self.config.hint_batch) else {
            self.hints.wake(now + CHECK_INTERVAL);
            return; // Storage trouble: try again later.
        };
        let window_ms = u64::try_from(self.config.hint_window.as_millis()).unwrap_or(u64::MAX);
        let mut hints = Vec::new();
        let mut sent = Vec::new();
        let mut next_from = from;
        let mut bytes = 0;
        for stored in stored.into_iter().filter(|s| s.target == target) {
            if !hints.is_empty() && bytes + stored.bytes > super::BATCH_BYTES {
                break; // The rest goes in the next batch.
            }
            next_from = stored.seq.saturating_add(1);
            match stored.hint {
                Some(hint) if hint.created_ms.saturating_add(window_ms) >= now.as_millis() => {
                    bytes += stored.bytes;
                    sent.push((stored.seq, stored.bytes));
                    hints.push(hint);
                }
                // Too old, or damaged: anti-entropy repairs instead.
                _ => {
                    if self.store.remove_hint(target, stored.seq).is_ok() {
                        self.forget_hint(target, stored.bytes);
                        self.stats.hints_dropped += 1;
                    }
                }
            }
        }
        let batch = self.hints.fresh_batch();
        let queue = self.hints.queues.get_mut(&target).expect("listed");
        if hints.is_empty() {
            queue.from = next_from;
            if next_from == from {
                // Nothing readable is left: the counts were ahead of the store.
                queue.count = 0;
                queue.bytes = 0;
            } else {
                self.hints.wake(now);
            }
            return;
        }
        let expires = now + self.config.request_timeout * 2;
        queue.in_flight = Some(InFlight {
            batch,
            to,
            hints: sent,
            next_from,
            sent: now,
            expires,
        });
        self.hints.wake(expires);
        let message = if to == target {
            let states = hints
                .into_iter()
                .map(|h| AeState {
                    key: h.key,
                    object: h.object,
                })
                .collect();
            PeerMessage::Push { batch, states }
        } else {
            PeerMessage::HandOffHints { batch, target, hints }
        };
        self.send(to, message);
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
        let Ok(stored) = self.store.hints((target, 0), SCAN_STEP) else {
            return;
        };
        let mine: Vec<_> = stored.into_iter().filter(|s| s.target == target).collect();
        if mine.is_empty() {
            self.hints.queues.remove(&target);
            return;
        }
        for stored in mine {
            if self.store.remove_hint(target, stored.seq).is_err() {
                return;
            }
            self.forget_hint(target, stored.bytes);
            self.stats.hints_dropped += 1;
        }
        if let Some(queue) = self.hints.queues.get_mut(&target) {
            queue.in_flight = None;
            queue.from = 0;
        }
        self.hints.wake(now);
    }

    /// Pushed states (hints, or a leaving node's keys): merge every state,
    /// then acknowledge.
    pub(super) fn on_push(&mut self, from: NodeId, batch: u64, states: Vec<AeState>) {
        self.stats.replica_ops += states.len() as u64;
        let result = self
            .merge_many(&states)
            .map(|_| ())
            .map_err(|error| ReplicaError {
                reason: error.to_string(),
            });
        self.send(from, PeerMessage::PushAck { batch, result });
    }

    /// A leaving node handed over its hints for `target`: keep them (within
    /// the bounds; what they exclude is left to anti-entropy), then
    /// acknowledge.
    pub(super) fn on_hand_off_hints(
        &mut self,
        now: Time,
        from: NodeId,
        batch: u64,
        target: NodeId,
        hints: Vec<Hint>,
    ) {
        let mut result = Ok(());
        for hint in hints {
            self.stats.replica_ops += 1;
            let kept = if target == self.id() {
                self.merge_local(&hint.key, &hint.object).map(|_| ())
            } else {
                self.keep_hint(now, target, &hint).map(|_| ())
            };
            if let Err(error) = kept {
                result = Err(ReplicaError {
                    reason: error.to_string(),
                });
                break;
            }
        }
        self.send(from, PeerMessage::PushAck { batch, result });
    }

    /// A replica (or the node hints were handed to) acknowledged a batch
    /// of hints: delete them and pace the next. False if the batch was not
    /// one of hints.
    pub(super) fn on_hints_ack(
        &mut self,
        now: Time,
        from: NodeId,
        batch: u64,
        result: Result<(), ReplicaError>,
    ) -> bool {
        let Some((&target, queue)) = self.hints.queues.iter_mut().find(|(_, q)| {
            q.in_flight
                .as_ref()
                .is_some_and(|f| f.batch == batch && f.to == from)
        }) else {
            return false; // Not ours, or a late answer to a batch sent again.
        };
        let in_flight = queue.in_flight.take().expect("matched");
        if result.is_err() {
            queue.not_before = now + CHECK_INTERVAL;
            self.hints.wake(now + CHECK_INTERVAL);
            return true;
        }
        let rate = f64::from(self.config.hint_replay_rate);
        let spacing = Duration::from_secs_f64(in_flight.hints.len() as f64 / rate);
        queue.not_before = in_flight.sent + spacing;
        queue.from = in_flight.next_from;
        let wake = queue.not_before.max(now);
        let seqs: Vec<u64> = in_flight.hints.iter().map(|&(seq, _)| seq).collect();
        // A failed delete only means the hints are sent again later.
        if self.store.remove_hints(target, &seqs).is_ok() {
            for (_, bytes) in in_flight.hints {
                self.forget_hint(target, bytes);
                self.stats.hints_replayed += 1;
            }
        }
        self.hints.wake(wake);
        true
    }
}
