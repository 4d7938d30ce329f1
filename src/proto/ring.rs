//! Consistent hashing with virtual nodes.
//!
//! Each node owns `vnodes` tokens on a 64-bit ring, derived from its stable
//! [`NodeId`] alone, so every node computes the same ring from the same set
//! of members with no coordination. A key hashes to a point on the ring; its
//! **preference list** is the first N *distinct* nodes met walking clockwise
//! from that point, and the nodes met after them are its **fallbacks**.
//!
//! Adding a node only takes over the arcs in front of its own tokens, so about
//! 1/n of the keys move, all of them to the new node; removing a node hands
//! its arcs to the next tokens, and no other key moves.

use super::types::NodeId;
use std::collections::BTreeMap;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of the key hash. Changing it moves every key: it is part of the format.
const KEY_HASH_SEED: u64 = 0x5348_4f41_4c4b_4559; // "SHOALKEY"
/// Seed of the token hash. Changing it moves every token.
const TOKEN_HASH_SEED: u64 = 0x5348_4f41_4c54_4f4b; // "SHOALTOK"

/// The position of a key on the ring.
pub fn key_position(key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, KEY_HASH_SEED)
}

/// The position of a node's `index`-th virtual node.
pub fn token(node: NodeId, index: u32) -> u64 {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&node.0.to_le_bytes());
    bytes[8..].copy_from_slice(&index.to_le_bytes());
    xxh3_64_with_seed(&bytes, TOKEN_HASH_SEED)
}

/// The ring of the nodes that own data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    vnodes: u32,
    /// Sorted by (token, node): ties, vanishingly rare, break by node id.
    tokens: Vec<(u64, NodeId)>,
    nodes: Vec<NodeId>,
}

impl Ring {
    /// An empty ring whose nodes each get `vnodes` tokens.
    pub fn new(vnodes: u32) -> Ring {
        assert!(vnodes > 0, "a ring needs at least one token per node");
        Ring {
            vnodes,
            tokens: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// A ring holding `nodes`.
    pub fn with_nodes(vnodes: u32, nodes: impl IntoIterator<Item = NodeId>) -> Ring {
        let mut ring = Ring::new(vnodes);
        ring.set_nodes(nodes);
        ring
    }

    /// Replaces the members; duplicates are ignored.
    pub fn set_nodes(&mut self, nodes: impl IntoIterator<Item = NodeId>) {
        let mut nodes: Vec<NodeId> = nodes.into_iter().collect();
        nodes.sort();
        nodes.dedup();
        if nodes == self.nodes {
            return;
        }
        self.tokens = nodes
            .iter()
            .flat_map(|&node| (0..self.vnodes).map(move |i| (token(node, i), node)))
            .collect();
        self.tokens.sort_unstable();
        self.nodes = nodes;
    }

    /// Adds one node (no-op if present).
    pub fn add(&mut self, node: NodeId) {
        let mut nodes = self.nodes.clone();
        nodes.push(node);
        self.set_nodes(nodes);
    }

    /// Removes one node (no-op if absent).
    pub fn remove(&mut self, node: NodeId) {
        let nodes: Vec<NodeId> = self.nodes.iter().copied().filter(|&n| n != node).collect();
        self.set_nodes(nodes);
    }

    /// The members, sorted by id.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Whether `node` is a member.
    pub fn contains(&self, node: NodeId) -> bool {
        self.nodes.binary_search(&node).is_ok()
    }

    /// Every member once, in the order a key meets them walking clockwise:
    /// the first N are its preference list, the rest its fallbacks.
    pub fn walk(&self, key: &[u8]) -> Walk<'_> {
        self.walk_from(key_position(key))
    }

    /// [`Ring::walk`] for a ring position.
    pub fn walk_from(&self, position: u64) -> Walk<'_> {
        let start = self.tokens.partition_point(|&(t, _)| t < position);
        Walk {
            ring: self,
            next: start,
            steps: 0,
            seen: Vec::with_capacity(4),
        }
    }

    /// The first `n` distinct nodes for `key` (fewer if the ring is smaller).
    pub fn preference_list(&self, key: &[u8], n: usize) -> Vec<NodeId> {
        self.walk(key).take(n).collect()
    }

    /// The nodes after the preference list, in the order to try them.
    pub fn fallbacks(&self, key: &[u8], n: usize) -> Vec<NodeId> {
        self.walk(key).skip(n).collect()
    }

    /// The ring cut into ranges `first..=last` of positions that share a
    /// preference list of `n` nodes, in position order. Together they cover
    /// the whole ring once (the range that wraps past the top comes as two).
    pub fn ranges(&self, n: usize) -> Vec<(u64, u64, Vec<NodeId>)> {
        let Some(&(last_token, _)) = self.tokens.last() else {
            return Vec::new();
        };
        let mut ranges = Vec::with_capacity(self.tokens.len() + 1);
        let owners = |token: u64| self.walk_from(token).take(n).collect::<Vec<NodeId>>();
        let wrap = owners(self.tokens[0].0);
        ranges.push((0, self.tokens[0].0, wrap.clone()));
        for pair in self.tokens.windows(2) {
            let (previous, token) = (pair[0].0, pair[1].0);
            if token > previous {
                ranges.push((previous + 1, token, owners(token)));
            }
        }
        if last_token < u64::MAX {
            ranges.push((last_token + 1, u64::MAX, wrap));
        }
        ranges
    }

    /// The share of the hash space for which each node is first in the
    /// preference list. Shares sum to 1 on a non-empty ring.
    pub fn ownership(&self) -> BTreeMap<NodeId, f64> {
        let mut shares: BTreeMap<NodeId, f64> = self.nodes.iter().map(|&n| (n, 0.0)).collect();
        let Some(&(last, _)) = self.tokens.last() else {
            return shares;
        };
        let mut previous = last;
        for &(token, node) in &self.tokens {
            // The arc (previous, token] belongs to the node at `token`.
            let arc = token.wrapping_sub(previous);
            *shares.get_mut(&node).expect("token of a member") += arc as f64 / 2f64.powi(64);
            previous = token;
        }
        if self.nodes.len() == 1 {
            shares.insert(self.nodes[0], 1.0);
        }
        shares
    }
}

/// Distinct nodes clockwise from a key; see [`Ring::walk`].
pub struct Walk<'a> {
    ring: &'a Ring,
    next: usize,
    steps: usize,
    seen: Vec<NodeId>,
}

impl Iterator for Walk<'_> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        let tokens = &self.ring.tokens;
        while self.seen.len() < self.ring.nodes.len() && self.steps < tokens.len() {
            let (_, node) = tokens[self.next % tokens.len()];
            self.next += 1;
            self.steps += 1;
            if !self.seen.contains(&node) {
                self.seen.push(node);
                return Some(node);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_VNODES: u32 = 256;
    const KEYS: u32 = 100_000;

    fn ids(range: std::ops::Range<u64>) -> Vec<NodeId> {
        range
            .map(|i| NodeId(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            .collect()
    }

    fn key(i: u32) -> Vec<u8> {
        format!("user:{i}").into_bytes()
    }

    fn primary_owners(ring: &Ring) -> Vec<NodeId> {
        (0..KEYS).map(|i| ring.walk(&key(i)).next().unwrap()).collect()
    }

    fn assert_balanced(n: u64) {
        let ring = Ring::with_nodes(DEFAULT_VNODES, ids(0..n));
        let mut counts: BTreeMap<NodeId, u32> = BTreeMap::new();
        for owner in primary_owners(&ring) {
            *counts.entry(owner).or_default() += 1;
        }
        let mean = f64::from(KEYS) / n as f64;
        let max = f64::from(*counts.values().max().unwrap());
        assert_eq!(counts.len() as u64, n, "every node owns some keys");
        assert!(
            max <= 1.25 * mean,
            "{n} nodes: largest share {max} keys vs mean {mean:.0} ({:.3}x)",
            max / mean
        );
    }

    #[test]
    fn five_nodes_share_keys_within_1_25x_of_mean() {
        assert_balanced(5);
    }

    #[test]
    fn ten_nodes_share_keys_within_1_25x_of_mean() {
        assert_balanced(10);
    }

    #[test]
    fn fifty_nodes_share_keys_within_1_25x_of_mean() {
        assert_balanced(50);
    }

    #[test]
    fn adding_a_node_moves_about_one_nth_of_keys_all_to_it() {
        for n in [5u64, 10, 50] {
            let mut ring = Ring::with_nodes(DEFAULT_VNODES, ids(0..n));
            let before = primary_owners(&ring);
            let newcomer = ids(n..n + 1)[0];
            ring.add(newcomer);
            let after = primary_owners(&ring);
            let moved: Vec<_> = before.iter().zip(&after).filter(|(b, a)| b != a).collect();
            assert!(
                moved.iter().all(|(_, a)| **a == newcomer),
                "a key moved between old nodes"
            );
            let expected = f64::from(KEYS) / (n + 1) as f64;
            let got = moved.len() as f64;
            assert!(
                (0.75 * expected..=1.25 * expected).contains(&got),
                "{n}+1 nodes: {got} keys moved, expected about {expected:.0}"
            );
        }
    }

    #[test]
    fn removing_a_node_moves_only_its_keys() {
        for n in [5u64, 10, 50] {
            let mut ring = Ring::with_nodes(DEFAULT_VNODES, ids(0..n));
            let before = primary_owners(&ring);
            let leaving = ids(0..n)[2];
            ring.remove(leaving);
            let after = primary_owners(&ring);
            for (b, a) in before.iter().zip(&after) {
                if *b == leaving {
                    assert_ne!(*a, leaving);
                } else {
                    assert_eq!(b, a, "a key not owned by the leaving node moved");
                }
            }
            let moved = before.iter().filter(|&&b| b == leaving).count() as f64;
            let expected = f64::from(KEYS) / n as f64;
            assert!((0.75 * expected..=1.25 * expected).contains(&moved));
        }
    }

    #[test]
    fn preference_list_holds_n_distinct_nodes_and_fallbacks_the_rest() {
        let ring = Ring::with_nodes(DEFAULT_VNODES, ids(0..5));
        for i in 0..1000 {
            let prefs = ring.preference_list(&key(i), 3);
            let fallbacks = ring.fallbacks(&key(i), 3);
            let mut all: Vec<NodeId> = prefs.iter().chain(&fallbacks).copied().collect();
            assert_eq!(prefs.len(), 3);
            assert_eq!(fallbacks.len(), 2);
            all.sort();
            all.dedup();
            assert_eq!(all.len(), 5, "preference list and fallbacks are distinct");
        }
    }

    #[test]
    fn preference_list_is_shorter_on_a_small_ring() {
        let ring = Ring::with_nodes(8, ids(0..2));
        assert_eq!(ring.preference_list(b"k", 3).len(), 2);
        assert!(Ring::new(8).preference_list(b"k", 3).is_empty());
    }

    #[test]
    fn tokens_depend_only_on_node_id() {
        let a = Ring::with_nodes(DEFAULT_VNODES, ids(0..5));
        let b = Ring::with_nodes(DEFAULT_VNODES, ids(0..5).into_iter().rev());
        assert_eq!(a, b);
    }

    #[test]
    fn ranges_cover_the_ring_once_with_each_keys_preference_list() {
        let ring = Ring::with_nodes(16, ids(0..5));
        let ranges = ring.ranges(3);
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges.last().unwrap().1, u64::MAX);
        assert!(
            ranges.windows(2).all(|w| w[0].1 + 1 == w[1].0),
            "contiguous, no overlap"
        );
        for i in 0..2000 {
            let k = key(i);
            let position = key_position(&k);
            let (_, _, owners) = ranges
                .iter()
                .find(|(f, l, _)| (*f..=*l).contains(&position))
                .unwrap();
            assert_eq!(*owners, ring.preference_list(&k, 3));
        }
    }

    #[test]
    fn ownership_shares_sum_to_one() {
        let ring = Ring::with_nodes(DEFAULT_VNODES, ids(0..10));
        let total: f64 = ring.ownership().values().sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
    }
}
