//! Cleanup: a node drops the keys of ranges it no longer owns, once their
//! owners are known to hold them.
//!
//! After a join or a leave, some nodes stop owning ranges whose keys they
//! still hold. Left there, those keys cost disk, and a copy of an old
//! value could come back after the key's tombstone was collected
//! elsewhere. So once the node's ring has been stable for
//! [`Config::cleanup_delay`](super::Config) (gossip has spread the change)
//! and nothing is moving, the node walks its keys. For every key it does
//! not own it pushes its state to the key's owners ([`PeerMessage::Push`],
//! merged and acknowledged once durable: nothing only this node held is
//! lost, whichever way the range moved) and removes the key once every
//! owner acknowledged, if its state has not changed meanwhile. A key whose
//! owners are not all up, or that changed, is left for another pass after
//! the delay.
//!
//! A pushed state is like a hint: it must not arrive after its key's
//! tombstone may have been collected. So states are pushed only within the
//! hint window of the ring change (the tombstone grace is longer); past it,
//! unowned keys are removed without a push, as the owners have had the
//! whole window to get them by the join or leave that moved the range.

use super::Node;
use super::batches::BatchOwner;
use super::membership::NodeStatus;
use super::message::{KeyState, PeerMessage};
use super::store::{ScannedState, Store, state_bytes};
use super::types::{NodeId, Time};
use std::collections::BTreeMap;
use std::time::Duration;

/// Keys read per step of a pass (steps follow each other, and requests
/// wait while one runs: the sweep took 1-2 ms for 256 keys).
const STEP_KEYS: usize = 256;
/// Most bytes of states read per step (past one key); a step pushes at
/// most [`super::BATCH_BYTES`] of them.
const STEP_BYTES: u64 = 4 * super::BATCH_BYTES;
/// How often the node checks whether a pass is due.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a push waits for its acknowledgements.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The cleanup pass in progress, if any.
#[derive(Debug, Default)]
pub(super) struct Cleanup {
    /// The ring members the pass is for, and since when the node has seen
    /// exactly these.
    ring: Vec<NodeId>,
    ring_since: Time,
    /// The next pass waits until then (the delay after the ring change, or
    /// after an incomplete pass). Unlike `ring_since`, which bounds how
    /// long states may be pushed, it moves with retries.
    pass_after: Time,
    /// Where the pass continues; `None` when no pass is due.
    cursor: Option<Vec<u8>>,
    /// A key was left behind in this pass: run another after the delay.
    incomplete: bool,
    in_flight: Option<Pushed>,
    next_step: Option<Time>,
}

/// States pushed to their owners, waiting for acknowledgements.
#[derive(Debug)]
struct Pushed {
    /// Batch id -> the owner it went to.
    batches: BTreeMap<u64, NodeId>,
    /// Key -> (digest of the state pushed, owners yet to acknowledge).
    keys: BTreeMap<Vec<u8>, (u64, Vec<NodeId>)>,
    expires: Time,
    /// The pass ends once these are answered.
    ends_pass: bool,
}

/// One step's unowned keys, as sorted by [`Node::sort_unowned`].
#[derive(Default)]
struct Step {
    /// States to push, by owner.
    outgoing: BTreeMap<NodeId, Vec<KeyState>>,
    /// Each pushed key's digest and owners.
    keys: BTreeMap<Vec<u8>, (u64, Vec<NodeId>)>,
    /// Where the next step scans from.
    resume: Option<Vec<u8>>,
    /// The step stopped before the end of its batch.
    stopped: bool,
}

impl Cleanup {
    /// Whether a push of batch `batch` waits for its acknowledgement.
    pub(super) fn holds_batch(&self, batch: u64) -> bool {
        self.batches_held().any(|b| b == batch)
    }

    /// The pushes that wait for their acknowledgement.
    pub(super) fn batches_held(&self) -> impl Iterator<Item = u64> + '_ {
        self.in_flight.iter().flat_map(|p| p.batches.keys().copied())
    }

    /// When the node next needs to check on cleanup.
    pub(super) fn poll_timeout(&self) -> Option<Time> {
        self.next_step
    }

    /// Starts checking (with the other background work).
    pub(super) fn start(&mut self, now: Time) {
        self.next_step = Some(now);
    }
}

impl<S: Store> Node<S> {
    /// Runs the next step of a cleanup pass, if one is due and allowed.
    pub(super) fn drive_cleanup(&mut self, now: Time) {
        self.cleanup.next_step = Some(now + CHECK_INTERVAL);
        if self.view.membership.is_none() {
            return; // A ring set by hand: nothing moves.
        }
        if self.cleanup_waits(now) {
            return;
        }
        let cleanup = &mut self.cleanup;
        let Some(cursor) = cleanup.cursor.clone() else {
            return;
        };
        if now < cleanup.pass_after
            || self.view.future_ring.is_some()
            || !self.is_ready()
            || self.status() != NodeStatus::Normal
        {
            return;
        }
        let push = now.saturating_since(self.cleanup.ring_since) <= self.config.hint_window;
        let scanned = match self.local.scan_with_digest(&cursor, STEP_KEYS, STEP_BYTES) {
            Ok(scanned) => scanned,
            Err(super::store::StoreError::Corrupt { .. }) => {
                self.cleanup.next_step = Some(now); // Dropped: go on past it.
                return;
            }
            Err(_) => return, // Storage trouble: the next check retries.
        };
        let more = scanned.more;
        let step = self.sort_unowned(scanned.states, push);
        let ends_pass = !more && !step.stopped;
        self.cleanup.cursor = Some(step.resume.unwrap_or_default());
        if step.outgoing.is_empty() {
            if ends_pass {
                self.end_cleanup_pass(now);
            } else {
                self.cleanup.next_step = Some(now); // Keep walking.
            }
            return;
        }
        let expires = now + PUSH_TIMEOUT;
        self.cleanup.in_flight = Some(Pushed {
            batches: BTreeMap::new(),
            keys: step.keys,
            expires,
            ends_pass,
        });
        for (owner, states) in step.outgoing {
            // Each batch is held as soon as it is issued: issuing the next
            // one may prune the tags of batches nobody holds.
            let batch = self.issue_batch(BatchOwner::Cleanup);
            let pushed = self.cleanup.in_flight.as_mut().expect("set above");
            pushed.batches.insert(batch, owner);
            self.send(owner, PeerMessage::Push { batch, states });
        }
        self.cleanup.next_step = Some(expires);
    }

    /// Starts a new pass once the ring changed, and deals with the pushes
    /// of the last step: true while they may still be answered (or the
    /// pass just ended with them), and nothing else is to be done now.
    fn cleanup_waits(&mut self, now: Time) -> bool {
        let cleanup = &mut self.cleanup;
        if cleanup.ring != self.view.ring.nodes() {
            cleanup.ring = self.view.ring.nodes().to_vec();
            cleanup.ring_since = now;
            cleanup.pass_after = now + self.config.cleanup_delay;
            cleanup.cursor = Some(Vec::new());
            cleanup.incomplete = false;
            cleanup.in_flight = None;
        }
        let Some(pushed) = &cleanup.in_flight else {
            return false;
        };
        if pushed.expires > now {
            cleanup.next_step = Some(pushed.expires);
            return true;
        }
        // Unanswered: the keys stay for now.
        let ends_pass = pushed.ends_pass;
        cleanup.in_flight = None;
        cleanup.incomplete = true;
        if ends_pass {
            self.end_cleanup_pass(now);
        }
        ends_pass
    }

    /// Goes through a scanned batch: keys this node does not own are
    /// pushed to their owners (`push`, within the hint window of the ring
    /// change) or removed at once.
    fn sort_unowned(&mut self, batch: Vec<ScannedState>, push: bool) -> Step {
        let me = self.id();
        let n = self.config.replication;
        let mut step = Step {
            resume: batch.last().map(|s| [s.key.as_slice(), &[0]].concat()),
            ..Step::default()
        };
        let mut bytes = 0;
        for ScannedState {
            key,
            state,
            digest: d,
        } in batch
        {
            let owners = self.view.ring.preference_list(&key, n);
            if owners.contains(&me) {
                continue;
            }
            if !push {
                self.clean_up_key(&key, d);
                continue;
            }
            if !owners.iter().all(|&o| self.is_up(o)) {
                self.cleanup.incomplete = true;
                continue;
            }
            if bytes >= super::BATCH_BYTES {
                step.resume = Some(key); // The rest goes in the next step.
                step.stopped = true;
                break;
            }
            bytes += state_bytes(&key, &state);
            for &owner in &owners {
                step.outgoing.entry(owner).or_default().push(KeyState {
                    key: key.clone(),
                    object: state.clone(),
                });
            }
            step.keys.insert(key, (d, owners));
        }
        step
    }

    /// Removes an unowned key if its state still has digest `d`; otherwise
    /// (written since, or storage trouble) leaves it for another pass.
    fn clean_up_key(&mut self, key: &[u8], d: u64) {
        if matches!(self.remove_if_unchanged(key, d, None), Ok(true)) {
            self.stats.keys_cleaned_up += 1;
        } else {
            self.cleanup.incomplete = true;
        }
    }

    /// The walk reached the end of the keys.
    fn end_cleanup_pass(&mut self, now: Time) {
        let cleanup = &mut self.cleanup;
        if cleanup.incomplete {
            // Another pass once the delay has passed again; the push
            // window still runs from the ring change.
            cleanup.incomplete = false;
            cleanup.pass_after = now + self.config.cleanup_delay;
            cleanup.cursor = Some(Vec::new());
        } else {
            cleanup.cursor = None;
        }
    }

    /// An owner acknowledged pushed states; false if `batch` was not a
    /// cleanup push.
    pub(super) fn on_cleanup_ack(&mut self, now: Time, from: NodeId, batch: u64, ok: bool) -> bool {
        let Some(pushed) = &mut self.cleanup.in_flight else {
            return false;
        };
        if pushed.batches.get(&batch) != Some(&from) {
            return false;
        }
        pushed.batches.remove(&batch);
        let mut removable = Vec::new();
        if ok {
            for (key, (d, waiting)) in &mut pushed.keys {
                if let Some(at) = waiting.iter().position(|&o| o == from) {
                    waiting.remove(at);
                    if waiting.is_empty() {
                        removable.push((key.clone(), *d));
                    }
                }
            }
        } else {
            self.cleanup.incomplete = true;
        }
        let answered = pushed.batches.is_empty();
        let ends_pass = pushed.ends_pass;
        for (key, d) in removable {
            self.clean_up_key(&key, d);
        }
        if answered {
            self.cleanup.in_flight = None;
            if ends_pass {
                self.end_cleanup_pass(now);
            }
            self.cleanup.next_step = Some(now);
        }
        true
    }
}
