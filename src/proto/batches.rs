//! Batch ids: every batch of states a node pushes (hints replayed or
//! handed off, keys cleaned up, ranges handed off by a leaving node) gets
//! a number from one allocator, tagged with the subsystem that sent it. A
//! `PushAck` goes to that subsystem alone.
//!
//! The tags are kept while their batches may still be answered: when the
//! list has grown to twice its size after the last pruning, the tags of
//! batches no subsystem holds any more are dropped. An acknowledgement of
//! an untagged batch is for a batch nobody waits for, and is ignored.

use super::Node;
use super::message::ReplicaError;
use super::store::Store;
use super::types::{NodeId, Time};
use std::collections::BTreeMap;

/// Tags kept before the first pruning.
const MIN_TAGS: usize = 64;

/// Who sent a batch, and so receives its acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BatchOwner {
    /// Hint replay, re-homing and hand-off ([`super::hints`]).
    Hints,
    /// Pushes of keys this node no longer owns ([`super::cleanup`]).
    Cleanup,
    /// A leaving node's ranges ([`super::topology`]).
    Leave,
}

/// The batch id allocator.
#[derive(Debug)]
pub(super) struct BatchIds {
    last: u64,
    owners: BTreeMap<u64, BatchOwner>,
    /// Prune when this many tags are kept.
    prune_at: usize,
}

impl Default for BatchIds {
    fn default() -> BatchIds {
        BatchIds {
            last: 0,
            owners: BTreeMap::new(),
            prune_at: MIN_TAGS,
        }
    }
}

impl BatchIds {
    /// A new batch id, tagged with its sender.
    pub(super) fn issue(&mut self, owner: BatchOwner) -> u64 {
        self.last += 1;
        self.owners.insert(self.last, owner);
        self.last
    }

    /// Forgets a batch id that was issued but not used.
    pub(super) fn release(&mut self, batch: u64) {
        self.owners.remove(&batch);
    }

    /// Who sent `batch`, if anyone may still wait for its answer.
    pub(super) fn owner(&self, batch: u64) -> Option<BatchOwner> {
        self.owners.get(&batch).copied()
    }
}

impl<S: Store> Node<S> {
    /// Issues a batch id for `owner`, pruning the tags of batches no
    /// subsystem holds any more from time to time. The caller holds each
    /// batch (where `holds_batch` looks) before issuing the next: a tag
    /// issued but not held yet may be pruned by the next issue.
    pub(super) fn issue_batch(&mut self, owner: BatchOwner) -> u64 {
        if self.batches.owners.len() >= self.batches.prune_at {
            let mut owners = std::mem::take(&mut self.batches.owners);
            owners.retain(|&batch, &mut owner| self.holds_batch(owner, batch));
            self.batches.prune_at = (2 * owners.len()).max(MIN_TAGS);
            self.batches.owners = owners;
        }
        self.batches.issue(owner)
    }

    /// Whether `owner` still waits for an answer to `batch`.
    pub(super) fn holds_batch(&self, owner: BatchOwner, batch: u64) -> bool {
        match owner {
            BatchOwner::Hints => self.hints.holds_batch(batch),
            BatchOwner::Cleanup => self.cleanup.holds_batch(batch),
            BatchOwner::Leave => self.topology.holds_leave_batch(batch),
        }
    }

    /// A node acknowledged a pushed batch: the subsystem that sent it
    /// takes the answer.
    pub(super) fn on_push_ack(
        &mut self,
        now: Time,
        from: NodeId,
        batch: u64,
        result: Result<(), ReplicaError>,
    ) {
        let ok = result.is_ok();
        match self.batches.owner(batch) {
            Some(BatchOwner::Hints) => {
                self.on_hints_ack(now, from, batch, result);
            }
            Some(BatchOwner::Cleanup) => {
                self.on_cleanup_ack(now, from, batch, ok);
            }
            Some(BatchOwner::Leave) => {
                self.on_handoff_ack(now, from, batch, ok);
            }
            None => {}
        }
    }
}
