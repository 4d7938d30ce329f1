//! The background sweep: it walks every key slowly, checks the key's
//! digest index entry against its state (a damaged entry is rewritten, so
//! anti-entropy compares what is really stored), and collects tombstones.
//!
//! Tombstone garbage collection (a state whose values all expired counts as
//! a tombstone from its expiry on): a deleted key's state is removed only once
//! every home replica is confirmed to hold exactly that tombstone state,
//! never on a timer alone.
//!
//! A slow sweep ([`SWEEP_KEYS`] keys every [`SWEEP_INTERVAL`]) walks the
//! node's keys. For a key whose state holds no live value and has not
//! changed for [`Config::tombstone_grace`](super::Config) by this node's
//! own clock (it remembers when the sweep first saw each tombstone, so
//! clock skew between nodes cannot shorten the grace), whose first home
//! replica is this node, whose replicas are all up, and while no
//! join or leave moves ranges, the node asks the other home replicas
//! whether they hold the same state (same digest: [`PeerMessage::GcCheck`]).
//! Once every one confirmed, it removes the key and tells them to remove it
//! too ([`PeerMessage::GcRemove`]); each removes it only if its state is
//! still that one. A replica that missed the removal gets the tombstone
//! back by anti-entropy, and it is collected again later.
//!
//! Two rules keep deleted data from coming back and new data from being
//! lost: the grace is longer than the hint window, so no hint of an older
//! value arrives after the tombstone is gone; and a node's dots never
//! repeat across keys ([`Versioned::write_above`](super::version::Versioned::write_above)),
//! so a write made after the removal is never covered by a copy of the old
//! tombstone that a lagging replica may still send.

use super::Node;
use super::message::{KeyDigest, PeerMessage};
use super::store::{ScannedState, Store, StoreError};
use super::types::{NodeId, Time};
use std::collections::BTreeMap;
use std::time::Duration;

/// How often the sweep reads its next keys.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(125);
/// Keys the sweep reads each time: 256 a second in all, in small steps,
/// because requests wait while a step runs (256 keys at once took 1-2 ms).
pub const SWEEP_KEYS: usize = 32;
/// Most bytes of states a sweep step reads (past one key): a node of
/// 1 MiB object blocks sweeps a few keys a second, not 256 MiB a second.
pub const SWEEP_BYTES: u64 = 256 * 1024;
/// Most tombstones waiting for confirmations at once.
const MAX_PENDING: usize = 4096;
/// How long confirmations are waited for.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// Most tombstones remembered as seen; past it, new ones wait for a later
/// sweep (memory stays bounded).
const MAX_SEEN: usize = 100_000;

/// The sweep's position and the checks in flight.
#[derive(Debug, Default)]
pub(super) struct Gc {
    /// The sweep continues at this key.
    cursor: Vec<u8>,
    next_sweep: Option<Time>,
    /// Keys asked about: their digest, the replicas yet to confirm, and
    /// when to give up.
    pending: BTreeMap<Vec<u8>, (u64, Vec<NodeId>, Time)>,
    /// Tombstones the sweep met: their digest and when first met (lost on
    /// restart, which only delays their collection).
    seen: BTreeMap<Vec<u8>, (u64, Time)>,
}

impl Gc {
    /// When the sweep runs next.
    pub(super) fn poll_timeout(&self) -> Option<Time> {
        self.next_sweep
    }

    /// Starts sweeping (with anti-entropy).
    pub(super) fn start(&mut self, now: Time) {
        self.next_sweep = Some(now + SWEEP_INTERVAL);
    }
}

impl<S: Store> Node<S> {
    /// Reads the sweep's next keys and asks about the old tombstones among
    /// them.
    pub(super) fn sweep_tombstones(&mut self, now: Time) {
        self.gc.next_sweep = Some(now + SWEEP_INTERVAL);
        self.gc.pending.retain(|_, (_, _, expires)| *expires > now);
        if self.view.future_ring.is_some() || !self.is_ready() || self.gc.pending.len() >= MAX_PENDING {
            return; // Ranges are moving: replicas are about to change.
        }
        let cursor = self.gc.cursor.clone();
        // A corrupt record is dropped (replicas repair it); the next sweep
        // goes on past it. Other storage trouble: the next sweep retries.
        let Ok(scanned) = self.local.scan_with_digest(&cursor, SWEEP_KEYS, SWEEP_BYTES) else {
            return;
        };
        self.gc.cursor = match scanned.states.last() {
            Some(last) if scanned.more => [last.key.as_slice(), &[0]].concat(),
            _ => Vec::new(), // The end: start over.
        };
        let me = self.id();
        let mut asks: BTreeMap<NodeId, Vec<KeyDigest>> = BTreeMap::new();
        for ScannedState {
            key,
            state,
            digest: d,
        } in scanned.states
        {
            self.local.verify_digest(&key, &state, d);
            if !state.is_deleted_at(now.as_millis()) {
                self.gc.seen.remove(&key);
                continue;
            }
            let old = match self.gc.seen.get(&key) {
                Some(&(seen, since)) if seen == d => {
                    now.saturating_since(since) > self.config.tombstone_grace
                }
                _ => {
                    if self.gc.seen.len() < MAX_SEEN || self.gc.seen.contains_key(&key) {
                        self.gc.seen.insert(key.clone(), (d, now));
                    }
                    false
                }
            };
            if !old || self.gc.pending.contains_key(&key) {
                continue;
            }
            let replicas = self.view.ring.preference_list(&key, self.config.replication);
            if replicas.first() != Some(&me) || !replicas.iter().all(|&r| self.is_up(r)) {
                continue;
            }
            let others: Vec<NodeId> = replicas.into_iter().filter(|&r| r != me).collect();
            if others.is_empty() {
                let _ = self.remove_tombstone(now, &key, d);
                continue;
            }
            for &other in &others {
                asks.entry(other).or_default().push(KeyDigest {
                    key: key.clone(),
                    digest: d,
                });
            }
            self.gc.pending.insert(key, (d, others, now + CONFIRM_TIMEOUT));
        }
        for (to, keys) in asks {
            self.send(to, PeerMessage::GcCheck { keys });
        }
    }

    /// Removes `key` if its state is still the tombstone of digest
    /// `expected` (no value live at `now`).
    fn remove_tombstone(&mut self, now: Time, key: &[u8], expected: u64) -> Result<bool, StoreError> {
        let removed = self.remove_if_unchanged(key, expected, Some(now))?;
        if removed {
            self.stats.tombstones_removed += 1;
        }
        Ok(removed)
    }

    /// Removes `key` (and its digest) if its state still has digest
    /// `expected` (and, with `deleted_at`, holds no value live then).
    pub(super) fn remove_if_unchanged(
        &mut self,
        key: &[u8],
        expected: u64,
        deleted_at: Option<Time>,
    ) -> Result<bool, StoreError> {
        let Some((state, current)) = self.local.get_with_digest(key)? else {
            return Ok(false);
        };
        if current != expected || deleted_at.is_some_and(|now| !state.is_deleted_at(now.as_millis())) {
            return Ok(false); // Written since: not the state checked.
        }
        self.local.remove(key, current)?;
        self.gc.seen.remove(key);
        Ok(true)
    }

    /// A first replica asks which of these tombstones this node holds.
    pub(super) fn on_gc_check(&mut self, now: Time, from: NodeId, keys: Vec<KeyDigest>) {
        let mut confirmed: Vec<Vec<u8>> = Vec::new();
        for entry in keys {
            if matches!(self.local.get_with_digest(&entry.key), Ok(Some((state, d)))
                    if state.is_deleted_at(now.as_millis()) && d == entry.digest)
            {
                confirmed.push(entry.key);
            }
        }
        if !confirmed.is_empty() {
            self.send(from, PeerMessage::GcConfirm { keys: confirmed });
        }
    }

    /// A replica holds these tombstones; once every one does, remove them.
    pub(super) fn on_gc_confirm(&mut self, now: Time, from: NodeId, keys: Vec<Vec<u8>>) {
        let mut removable = Vec::new();
        for key in keys {
            if let Some((d, waiting, _)) = self.gc.pending.get_mut(&key) {
                waiting.retain(|&n| n != from);
                if waiting.is_empty() {
                    removable.push((key, *d));
                }
            }
        }
        let replication = self.config.replication;
        let mut removals: BTreeMap<NodeId, Vec<KeyDigest>> = BTreeMap::new();
        for (key, d) in removable {
            self.gc.pending.remove(&key);
            if !matches!(self.remove_tombstone(now, &key, d), Ok(true)) {
                continue;
            }
            for replica in self.view.ring.preference_list(&key, replication) {
                if replica != self.id() {
                    removals.entry(replica).or_default().push(KeyDigest {
                        key: key.clone(),
                        digest: d,
                    });
                }
            }
        }
        for (to, keys) in removals {
            self.send(to, PeerMessage::GcRemove { keys });
        }
    }

    /// Every home replica held these tombstones: remove the ones unchanged.
    pub(super) fn on_gc_remove(&mut self, now: Time, keys: Vec<KeyDigest>) {
        for entry in keys {
            // A failure leaves the tombstone; it is collected again later.
            let _ = self.remove_tombstone(now, &entry.key, entry.digest);
        }
    }
}
