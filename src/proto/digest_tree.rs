//! The digest tree of one node's keys, kept up to date on every write.
//!
//! Every stored key contributes its digest (a hash of key and state) at its
//! ring position. The digest of a set of keys is the XOR of theirs, so an
//! update is O(1) to describe (`xor old ^ new`) and any two nodes holding
//! the same states of the same keys in an interval agree on its digest.
//!
//! The ring positions are cut into [`BUCKETS`] equal buckets; a Fenwick
//! tree over the buckets keeps XOR digests and key counts, so the digest
//! and count of any run of whole buckets costs O(log buckets) and an update
//! the same. An interval that cuts a bucket reads the keys of the cut part
//! from the store's digest index (a bucket holds few keys). Intervals are
//! therefore arbitrary: anti-entropy compares exactly the ring ranges two
//! nodes share, and a ring change needs no rebuild.
//!
//! The tree lives in memory (16 bytes a bucket: 1 MiB) and is built at
//! start from the store's digest index, which is persisted with the data.

use super::store::{DigestEntry, Store, StoreError};

/// Buckets of the ring (2^16).
pub const BUCKETS: usize = 1 << 16;
const BUCKET_SHIFT: u32 = 64 - 16;

/// The digest and key count of an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// XOR of the keys' digests.
    pub digest: u64,
    /// How many keys.
    pub count: u64,
}

impl Summary {
    fn add(&mut self, other: Summary) {
        self.digest ^= other.digest;
        self.count = self.count.wrapping_add(other.count);
    }

    fn sub(&mut self, other: Summary) {
        self.digest ^= other.digest;
        self.count = self.count.wrapping_sub(other.count);
    }
}

/// See the module doc.
pub struct DigestTree {
    /// 1-based Fenwick tree over buckets.
    tree: Vec<Summary>,
}

fn bucket_of(position: u64) -> usize {
    (position >> BUCKET_SHIFT) as usize
}

fn bucket_first(bucket: usize) -> u64 {
    (bucket as u64) << BUCKET_SHIFT
}

fn bucket_last(bucket: usize) -> u64 {
    bucket_first(bucket) | ((1u64 << BUCKET_SHIFT) - 1)
}

impl DigestTree {
    /// An empty tree.
    pub fn new() -> DigestTree {
        DigestTree {
            tree: vec![Summary::default(); BUCKETS + 1],
        }
    }

    /// The tree as bytes (crc32, then MessagePack), to save at a clean
    /// stop.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = rmp_serde::to_vec(&self.tree).expect("summaries encode");
        [crc32fast::hash(&body).to_le_bytes().as_slice(), &body].concat()
    }

    /// A tree saved by [`DigestTree::to_bytes`]; `None` if damaged.
    pub fn from_bytes(bytes: &[u8]) -> Option<DigestTree> {
        let (crc, body) = (bytes.get(..4)?, bytes.get(4..)?);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let tree: Vec<Summary> = rmp_serde::from_slice(body).ok()?;
        (tree.len() == BUCKETS + 1).then_some(DigestTree { tree })
    }

    /// The tree of everything in `store` (read from its digest index).
    pub fn build<S: Store>(store: &S) -> Result<DigestTree, StoreError> {
        let mut tree = DigestTree::new();
        each_indexed(store, |entry| tree.apply(entry.position, 0, entry.digest, 1))?;
        Ok(tree)
    }

    /// Records a key's change at `position`: `old` digest out (0 if new),
    /// `new` in (0 if removed); `count` is +1, 0 or -1.
    pub fn apply(&mut self, position: u64, old: u64, new: u64, count: i64) {
        let delta = Summary {
            digest: old ^ new,
            count: count as u64,
        };
        let mut i = bucket_of(position) + 1;
        while i <= BUCKETS {
            self.tree[i].add(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// Summary of buckets `0..end`.
    fn prefix(&self, end: usize) -> Summary {
        let mut sum = Summary::default();
        let mut i = end;
        while i > 0 {
            sum.add(self.tree[i]);
            i -= i & i.wrapping_neg();
        }
        sum
    }

    /// Summary of whole buckets `first..=last`.
    fn buckets(&self, first: usize, last: usize) -> Summary {
        let mut sum = self.prefix(last + 1);
        sum.sub(self.prefix(first));
        sum
    }

    /// Summary of every key with position in `first..=last`.
    pub fn summary<S: Store>(&self, store: &S, first: u64, last: u64) -> Result<Summary, StoreError> {
        assert!(first <= last, "an interval is first..=last");
        let (b0, b1) = (bucket_of(first), bucket_of(last));
        let scan = |a: u64, b: u64| -> Result<Summary, StoreError> {
            let mut sum = Summary::default();
            for entry in store.digests(a, b, usize::MAX)? {
                sum.add(Summary {
                    digest: entry.digest,
                    count: 1,
                });
            }
            Ok(sum)
        };
        if b0 == b1 {
            return if first == bucket_first(b0) && last == bucket_last(b0) {
                Ok(self.buckets(b0, b0))
            } else {
                scan(first, last)
            };
        }
        let mut sum = Summary::default();
        let mut inner = (b0, b1);
        if first == bucket_first(b0) {
            // b0 is whole.
        } else {
            sum.add(scan(first, bucket_last(b0))?);
            inner.0 = b0 + 1;
        }
        if last == bucket_last(b1) {
            // b1 is whole.
        } else {
            sum.add(scan(bucket_first(b1), last)?);
            inner.1 = b1 - 1;
        }
        if inner.0 <= inner.1 {
            sum.add(self.buckets(inner.0, inner.1));
        }
        Ok(sum)
    }
}

impl Default for DigestTree {
    fn default() -> Self {
        DigestTree::new()
    }
}

/// Calls `f` on every entry of `store`'s digest index, in position order,
/// a page at a time.
pub(super) fn each_indexed<S: Store>(store: &S, mut f: impl FnMut(&DigestEntry)) -> Result<(), StoreError> {
    let mut first = 0u64;
    loop {
        let batch = store.digests(first, u64::MAX, 4096)?;
        batch.iter().for_each(&mut f);
        match batch.last() {
            Some(last) if batch.len() == 4096 => {
                // Continue after the last position read; keys at the same
                // position as the last are re-read, so skip them.
                let position = last.position;
                let seen = batch.iter().filter(|e| e.position == position).count();
                let again = store.digests(position, position, usize::MAX)?;
                again.iter().skip(seen).for_each(&mut f);
                match position.checked_add(1) {
                    Some(next) => first = next,
                    None => return Ok(()),
                }
            }
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::NodeId;
    use crate::proto::ring::key_position;
    use crate::proto::store::{MemStore, digest};
    use crate::proto::version::{Actor, VersionVector, Versioned};
    use proptest::prelude::*;

    fn object(v: u32) -> Versioned {
        let mut o = Versioned::new();
        let actor = Actor {
            node: NodeId(1),
            epoch: 1,
        };
        o.write(actor, &VersionVector::new(), Some(v.to_le_bytes().to_vec()), 1, 4)
            .unwrap();
        o
    }

    fn naive(store: &MemStore, first: u64, last: u64) -> Summary {
        let mut sum = Summary::default();
        for e in store.digests(first, last, usize::MAX).unwrap() {
            sum.digest ^= e.digest;
            sum.count += 1;
        }
        sum
    }

    /// A store and its tree kept in step the way the node does it.
    fn filled(keys: u32) -> (MemStore, DigestTree) {
        let mut store = MemStore::new();
        let mut tree = DigestTree::new();
        for i in 0..keys {
            let key = format!("k{i}").into_bytes();
            store.put(&key, &object(i)).unwrap();
            tree.apply(key_position(&key), 0, digest(&key, &object(i)), 1);
        }
        (store, tree)
    }

    proptest! {
        #[test]
        fn any_interval_summary_equals_the_naive_one(a in any::<u64>(), b in any::<u64>()) {
            let (store, tree) = filled(300);
            let (first, last) = (a.min(b), a.max(b));
            prop_assert_eq!(tree.summary(&store, first, last).unwrap(), naive(&store, first, last));
        }
    }

    #[test]
    fn whole_ring_and_bucket_aligned_intervals_match() {
        let (store, tree) = filled(1000);
        assert_eq!(
            tree.summary(&store, 0, u64::MAX).unwrap(),
            naive(&store, 0, u64::MAX)
        );
        assert_eq!(tree.summary(&store, 0, u64::MAX).unwrap().count, 1000);
        let (f, l) = (bucket_first(100), bucket_last(40_000));
        assert_eq!(tree.summary(&store, f, l).unwrap(), naive(&store, f, l));
    }

    #[test]
    fn updates_and_removals_keep_the_tree_in_step() {
        let (mut store, mut tree) = filled(200);
        let key = b"k7".to_vec();
        let position = key_position(&key);
        store.put(&key, &object(999)).unwrap();
        tree.apply(position, digest(&key, &object(7)), digest(&key, &object(999)), 0);
        store.remove(b"k8").unwrap();
        tree.apply(key_position(b"k8"), digest(b"k8", &object(8)), 0, -1);
        assert_eq!(
            tree.summary(&store, 0, u64::MAX).unwrap(),
            naive(&store, 0, u64::MAX)
        );
        let rebuilt = DigestTree::build(&store).unwrap();
        assert_eq!(
            rebuilt.summary(&store, 0, u64::MAX).unwrap(),
            naive(&store, 0, u64::MAX)
        );
    }

    #[test]
    fn equal_states_give_equal_summaries_on_two_nodes() {
        let (a, ma) = filled(100);
        let (mut b, mut mb) = filled(100);
        assert_eq!(
            ma.summary(&a, 0, u64::MAX).unwrap(),
            mb.summary(&b, 0, u64::MAX).unwrap()
        );
        b.put(b"k3", &object(33)).unwrap();
        mb.apply(
            key_position(b"k3"),
            digest(b"k3", &object(3)),
            digest(b"k3", &object(33)),
            0,
        );
        assert_ne!(
            ma.summary(&a, 0, u64::MAX).unwrap(),
            mb.summary(&b, 0, u64::MAX).unwrap()
        );
    }
}
