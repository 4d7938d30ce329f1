//! Anti-entropy: replicas find and repair what they disagree on by
//! comparing digest-tree summaries, descending only into differing
//! intervals and exchanging only differing keys.
//!
//! Every [`Config::anti_entropy_interval`](super::Config) a node picks the
//! next live peer with a higher id (round robin) and sends it [`PeerMessage::AeSummaries`] for the ring ranges
//! both replicate. Either side, given the other's summaries of some
//! intervals, compares them with its own: equal intervals are done; a
//! differing interval with few keys on both sides is answered with the
//! keys and digests in it ([`PeerMessage::AeKeys`]); a larger one is cut
//! in 16 and answered with summaries of the parts. Given keys, a node sends
//! the states the peer lacks or holds differently and asks for the ones it
//! lacks ([`PeerMessage::AeStates`]); states received are merged (so
//! nothing is invented: a merge only keeps what some replica wrote).
//!
//! Bandwidth is bounded per message ([`MAX_INTERVALS`], the configured
//! states per message); whatever is cut off is found again next round.

use super::Node;
use super::message::{AeInterval, KeyDigest, KeyState, PeerMessage};
use super::ring::Ring;
use super::store::Store;
use super::types::{NodeId, Time};
use std::collections::BTreeMap;

/// An interval with at most this many keys (on the larger side) is
/// reconciled key by key instead of being cut further.
pub const KEYS_THRESHOLD: u64 = 32;
/// Most intervals in one summaries message.
pub const MAX_INTERVALS: usize = 2048;
/// Parts an interval is cut into when descending.
const FANOUT: u128 = 16;

/// The ring ranges both `a` and `b` replicate, adjacent ones merged.
pub fn shared_ranges(ring: &Ring, n: usize, a: NodeId, b: NodeId) -> Vec<(u64, u64)> {
    let mut shared: Vec<(u64, u64)> = Vec::new();
    for (first, last, owners) in ring.ranges(n) {
        if !(owners.contains(&a) && owners.contains(&b)) {
            continue;
        }
        match shared.last_mut() {
            Some(previous) if previous.1.checked_add(1) == Some(first) => previous.1 = last,
            _ => shared.push((first, last)),
        }
    }
    shared
}

/// `first..=last` cut into up to 16 equal parts.
fn split(first: u64, last: u64) -> Vec<(u64, u64)> {
    let width = u128::from(last) - u128::from(first) + 1;
    let parts = width.min(FANOUT);
    (0..parts)
        .map(|i| {
            let a = u128::from(first) + width * i / parts;
            let b = u128::from(first) + width * (i + 1) / parts - 1;
            (a as u64, b as u64)
        })
        .collect()
}

/// Anti-entropy's own state: when the next exchange starts and with whom
/// the last one was.
pub(super) struct AntiEntropy {
    /// `None` until rounds are started.
    next: Option<Time>,
    last_peer: NodeId,
}

impl Default for AntiEntropy {
    fn default() -> AntiEntropy {
        AntiEntropy {
            next: None,
            last_peer: NodeId(0),
        }
    }
}

impl AntiEntropy {
    /// Schedules the next exchange at `at`.
    pub(super) fn schedule(&mut self, at: Time) {
        self.next = Some(at);
    }

    /// When the next exchange starts, if rounds are started.
    pub(super) fn poll_timeout(&self) -> Option<Time> {
        self.next
    }

    /// The first of `peers` (ascending) after the one last asked, wrapping.
    fn next_peer(&mut self, peers: &[NodeId]) -> NodeId {
        let peer = peers
            .iter()
            .copied()
            .find(|&p| p > self.last_peer)
            .unwrap_or(peers[0]);
        self.last_peer = peer;
        peer
    }
}

impl<S: Store> Node<S> {
    /// Starts one exchange with the next live peer, round robin. Only the
    /// lower id of a pair starts exchanges with the other (the two sides
    /// would otherwise do the same work twice), so every pair compares at
    /// least once per (peers x interval).
    pub(super) fn start_anti_entropy(&mut self, now: Time) {
        self.anti_entropy
            .schedule(now + self.config.anti_entropy_interval);
        let me = self.id();
        let peers: Vec<NodeId> = self
            .view
            .ring
            .nodes()
            .iter()
            .copied()
            .filter(|&n| n > me && self.is_up(n))
            .collect();
        if peers.is_empty() || !self.is_ready() {
            return;
        }
        // The first peer after the last one asked, in id order.
        let peer = self.anti_entropy.next_peer(&peers);
        let ranges = shared_ranges(&self.view.ring, self.config.replication, me, peer);
        let intervals: Vec<(u64, u64)> = ranges.into_iter().take(MAX_INTERVALS).collect();
        if intervals.is_empty() {
            return;
        }
        self.stats.ae_exchanges += 1;
        self.send_summaries(peer, &intervals);
    }

    /// Sends our summaries of `intervals` to `peer`.
    fn send_summaries(&mut self, peer: NodeId, intervals: &[(u64, u64)]) {
        let mut out = Vec::with_capacity(intervals.len());
        for &(first, last) in intervals {
            // An unreadable store skips this round; the next one retries.
            let Ok(summary) = self.local.summary(first, last) else {
                return;
            };
            out.push(AeInterval { first, last, summary });
        }
        for chunk in out.chunks(MAX_INTERVALS) {
            self.stats.ae_bytes_sent += 28 * chunk.len() as u64;
            self.send(
                peer,
                PeerMessage::AeSummaries {
                    intervals: chunk.to_vec(),
                },
            );
        }
    }

    /// A peer's summaries: descend into what differs.
    pub(super) fn on_ae_summaries(&mut self, from: NodeId, intervals: Vec<AeInterval>) {
        let mut finer = Vec::new();
        for theirs in intervals.into_iter().take(MAX_INTERVALS) {
            let Ok(mine) = self.local.summary(theirs.first, theirs.last) else {
                return;
            };
            if mine == theirs.summary {
                continue;
            }
            let small = mine.count.max(theirs.summary.count) <= KEYS_THRESHOLD;
            if small || theirs.first == theirs.last {
                self.send_keys(from, theirs.first, theirs.last);
            } else {
                finer.extend(split(theirs.first, theirs.last));
            }
        }
        if !finer.is_empty() {
            self.send_summaries(from, &finer);
        }
    }

    fn send_keys(&mut self, to: NodeId, first: u64, last: u64) {
        let Ok(entries) = self.local.digests(first, last, 4 * KEYS_THRESHOLD as usize) else {
            return;
        };
        let entries: Vec<KeyDigest> = entries
            .into_iter()
            .map(|e| KeyDigest {
                key: e.key,
                digest: e.digest,
            })
            .collect();
        self.stats.ae_bytes_sent += entries.iter().map(|e| e.key.len() as u64 + 10).sum::<u64>() + 20;
        self.send(to, PeerMessage::AeKeys { first, last, entries });
    }

    /// A peer's keys in an interval: send what it lacks, ask for what we lack.
    pub(super) fn on_ae_keys(&mut self, from: NodeId, first: u64, last: u64, entries: Vec<KeyDigest>) {
        let Ok(mine) = self.local.digests(first, last, 4 * KEYS_THRESHOLD as usize) else {
            return;
        };
        let mine: BTreeMap<Vec<u8>, u64> = mine.into_iter().map(|e| (e.key, e.digest)).collect();
        let theirs: BTreeMap<Vec<u8>, u64> = entries.into_iter().map(|e| (e.key, e.digest)).collect();
        let send: Vec<Vec<u8>> = mine
            .iter()
            .filter(|(k, d)| theirs.get(*k) != Some(d))
            .map(|(k, _)| k.clone())
            .collect();
        let want: Vec<Vec<u8>> = theirs
            .iter()
            .filter(|(k, d)| mine.get(*k) != Some(d))
            .map(|(k, _)| k.clone())
            .collect();
        self.send_states(from, &send, want);
    }

    fn send_states(&mut self, to: NodeId, keys: &[Vec<u8>], want: Vec<Vec<u8>>) {
        let mut states = Vec::new();
        let mut bytes = 0;
        for key in keys.iter().take(self.config.anti_entropy_max_states) {
            if let Ok(Some(object)) = self.local.get(key) {
                let size = key.len() as u64 + rmp_serde::to_vec(&object).map_or(0, |b| b.len() as u64);
                if !states.is_empty() && bytes + size > super::BATCH_BYTES {
                    break; // Found again by the next round.
                }
                bytes += size;
                self.stats.ae_bytes_sent += size;
                states.push(KeyState {
                    key: key.clone(),
                    object,
                });
            }
        }
        let want: Vec<Vec<u8>> = want
            .into_iter()
            .take(self.config.anti_entropy_max_states)
            .collect();
        if states.is_empty() && want.is_empty() {
            return;
        }
        self.send(to, PeerMessage::AeStates { states, want });
    }

    /// States from a peer: merge them; send the ones it asked for.
    pub(super) fn on_ae_states(&mut self, from: NodeId, states: Vec<KeyState>, want: Vec<Vec<u8>>) {
        match self.merge_many(&states) {
            Ok(changed) => self.stats.ae_keys_repaired += changed as u64,
            Err(_) => return, // Storage trouble: the next round retries.
        }
        if !want.is_empty() {
            self.send_states(from, &want, Vec::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_interval_exactly() {
        for (first, last) in [
            (0u64, u64::MAX),
            (10, 25),
            (5, 5),
            (0, 15),
            (u64::MAX - 3, u64::MAX),
        ] {
            let parts = split(first, last);
            assert_eq!(parts[0].0, first);
            assert_eq!(parts.last().unwrap().1, last);
            assert!(parts.windows(2).all(|w| w[0].1 + 1 == w[1].0));
            assert!(parts.len() <= 16);
        }
    }
}
