//! Causality: dots, version vectors and the sibling set of a key.
//!
//! Every write is tagged with a **dot** `(node, epoch, counter)` issued by the
//! coordinating replica. The pair `(node, epoch)` is an **actor**; an actor's
//! dots for one key are issued in order 1, 2, 3.., so a version vector
//! (actor -> highest counter) names exactly the set of dots it covers.
//!
//! A key's state is a [`Versioned`]: a causal context (`clock`, everything this
//! state has seen) and the **siblings** not superseded, each with its dot.
//! This is the dotted-version-vector object of Riak 2.0 / Almeida et al.:
//!
//! * a write with context C replaces exactly the siblings whose dots C covers
//!   and adds one sibling with a fresh dot; siblings C has not seen stay;
//! * two writes without each other's context become siblings;
//! * [`Versioned::merge`] keeps a sibling if the other side holds it too or
//!   has not seen its dot. Merge is **commutative, associative and
//!   idempotent** (checked by property tests), so replicas may exchange state
//!   in any order, any number of times. Siblings are identified by dot, so a
//!   sibling met twice is kept once.
//!
//! The epoch is bumped and persisted on every start of a node (and drawn at
//! random for a fresh or wiped disk), so a node that lost writes never issues
//! a dot again with a counter it used before (Riak's kv679).

use super::types::NodeId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One incarnation of a node: it issues dots under this name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The issuing node.
    pub node: NodeId,
    /// The node's start epoch.
    pub epoch: u64,
}

/// The unique name of one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The issuing node.
    pub node: NodeId,
    /// The node's start epoch when it issued the dot.
    pub epoch: u64,
    /// The actor's counter for this key.
    pub counter: u64,
}

impl Dot {
    /// The actor that issued this dot.
    pub fn actor(&self) -> Actor {
        Actor {
            node: self.node,
            epoch: self.epoch,
        }
    }
}

/// Actor -> highest counter seen; covers every dot up to that counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<Actor, u64>);

impl VersionVector {
    /// The empty vector: has seen nothing.
    pub fn new() -> VersionVector {
        VersionVector::default()
    }

    /// Whether `dot` is covered, i.e. the holder has seen it.
    pub fn covers(&self, dot: &Dot) -> bool {
        self.counter(dot.actor()) >= dot.counter
    }

    /// The highest counter seen from `actor` (0 if none).
    pub fn counter(&self, actor: Actor) -> u64 {
        self.0.get(&actor).copied().unwrap_or(0)
    }

    /// Records `dot` as seen.
    pub fn add(&mut self, dot: &Dot) {
        let entry = self.0.entry(dot.actor()).or_insert(0);
        *entry = (*entry).max(dot.counter);
    }

    /// Pointwise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (&actor, &counter) in &other.0 {
            let entry = self.0.entry(actor).or_insert(0);
            *entry = (*entry).max(counter);
        }
    }

    /// Whether this vector has seen everything `other` has.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(&a, &c)| self.counter(a) >= c)
    }

    /// Whether nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many actors are tracked.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// One value of a key (or a tombstone) and the dot of the write that made it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    /// The write's unique name.
    pub dot: Dot,
    /// The coordinator's wall clock when it accepted the write, in
    /// milliseconds since the Unix epoch: for a client's "newest wins".
    pub timestamp_ms: u64,
    /// The value; `None` is a tombstone left by a delete. Shared, not
    /// copied, by the states and answers that carry it (encoded as a
    /// MessagePack binary, as a `Vec<u8>` under `serde_bytes` was). A
    /// large one decoded from a frame shares the frame's memory
    /// ([`super::shared_bytes`]).
    #[serde(deserialize_with = "super::shared_bytes::deserialize_option")]
    pub value: Option<Bytes>,
    /// When the value expires (a write with a time to live), in the
    /// coordinator's milliseconds since the Unix epoch: from then on it
    /// reads as absent. Set once, by the coordinator, and carried with the
    /// sibling by every copy, so all replicas agree on it. Left out of the
    /// encoding when `None`, so a sibling without one encodes (and hashes
    /// into digests) as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

/// The value's bytes as a list of numbers, as for a `Vec<u8>` (the
/// simulator's traces hash this form).
impl std::fmt::Debug for Sibling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sibling")
            .field("dot", &self.dot)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("value", &self.value.as_deref())
            .field("expires_ms", &self.expires_ms)
            .finish()
    }
}

impl Sibling {
    /// Whether this sibling holds a value that has not expired at `now_ms`.
    pub fn is_live_at(&self, now_ms: u64) -> bool {
        self.value.is_some() && self.expires_ms.is_none_or(|at| now_ms < at)
    }
}

/// Everything a replica knows of one key: its causal context and siblings.
///
/// Invariants: siblings are sorted by dot, their dots are distinct, and every
/// sibling's dot is covered by `clock`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    clock: VersionVector,
    siblings: Vec<Sibling>,
}

/// A write would leave more siblings than allowed. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the write would leave {count} siblings, more than the limit of {max}")]
pub struct TooManySiblings {
    /// Siblings the write would have left.
    pub count: usize,
    /// The configured limit.
    pub max: usize,
}

/// The highest dot counter a well-formed state or context may hold (2^62).
/// A node issuing a billion writes a second would take over a century to
/// reach it; anything above is junk from the wire, and a counter near
/// `u64::MAX` would overflow the next write's dot.
pub const MAX_COUNTER: u64 = 1 << 62;

/// A state or context from the wire breaks the invariants [`Versioned`]
/// keeps. Nothing was merged; the sender's bytes are junk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedState {
    /// A counter above [`MAX_COUNTER`], or a dot with counter 0.
    #[error("a counter of {counter} is outside 1..={MAX_COUNTER}")]
    Counter {
        /// The counter found.
        counter: u64,
    },
    /// Siblings are not in strictly increasing dot order.
    #[error("siblings are not sorted by distinct dots")]
    Unsorted,
    /// A sibling's dot is not covered by the state's clock.
    #[error("a sibling's dot is not covered by the state's clock")]
    Uncovered,
}

impl VersionVector {
    /// Checks a vector from the wire: every counter at most
    /// [`MAX_COUNTER`].
    pub fn check(&self) -> Result<(), MalformedState> {
        match self.0.values().find(|&&c| c > MAX_COUNTER) {
            Some(&counter) => Err(MalformedState::Counter { counter }),
            None => Ok(()),
        }
    }
}

impl Versioned {
    /// The state of a key nobody wrote.
    pub fn new() -> Versioned {
        Versioned::default()
    }

    /// Everything this state has seen; the context a client gets on read.
    pub fn clock(&self) -> &VersionVector {
        &self.clock
    }

    /// The siblings not superseded, sorted by dot (tombstones included).
    pub fn siblings(&self) -> &[Sibling] {
        &self.siblings
    }

    /// The live values (not tombstones).
    pub fn values(&self) -> impl Iterator<Item = &Sibling> {
        self.siblings.iter().filter(|s| s.value.is_some())
    }

    /// The values live at `now_ms`: not tombstones, and not expired. An
    /// expired value stays in the state (its dot is in the clock) until a
    /// write with a context that covers it replaces it, as a tombstone does,
    /// so its expiry never brings back what it superseded.
    pub fn values_at(&self, now_ms: u64) -> impl Iterator<Item = &Sibling> {
        self.siblings.iter().filter(move |s| s.is_live_at(now_ms))
    }

    /// Sets the expiry of the sibling `dot` (the write just made by this
    /// coordinator). No effect if there is no such sibling.
    pub fn set_expiry(&mut self, dot: &Dot, expires_ms: u64) {
        if let Some(sibling) = self.siblings.iter_mut().find(|s| s.dot == *dot) {
            sibling.expires_ms = Some(expires_ms);
        }
    }

    /// Takes the value out of sibling `dot`, leaving a tombstone in its
    /// place: for a write whose state could not be stored, to hand the
    /// value back to its request. `None` if there is no such sibling.
    pub fn take_value(&mut self, dot: &Dot) -> Option<Vec<u8>> {
        let value = self.siblings.iter_mut().find(|s| s.dot == *dot)?.value.take()?;
        // No copy: the value was made from the request's vector and is
        // not shared.
        Some(Vec::from(value))
    }

    /// Whether no sibling holds a value (never written, or deleted).
    pub fn is_deleted(&self) -> bool {
        self.values().next().is_none()
    }

    /// Whether no sibling holds a value live at `now_ms` (deleted, or
    /// every value expired): the background sweep collects such a state as
    /// it does a tombstone.
    pub fn is_deleted_at(&self, now_ms: u64) -> bool {
        self.values_at(now_ms).next().is_none()
    }

    /// Applies a client write coordinated by `actor`: removes the siblings
    /// `context` covers, adds `value` (or a tombstone) under a fresh dot and
    /// returns that dot. The caller must be a replica holding this key's
    /// latest local state, so the counter is fresh for `actor`.
    pub fn write(
        &mut self,
        actor: Actor,
        context: &VersionVector,
        value: Option<Vec<u8>>,
        timestamp_ms: u64,
        max_siblings: usize,
    ) -> Result<Dot, TooManySiblings> {
        self.write_above(actor, 0, context, value, timestamp_ms, max_siblings)
    }

    /// [`Versioned::write`] with a counter above `floor` as well: a node
    /// passes the last counter it issued for any key, so its dots never
    /// repeat even for a key whose state was removed (tombstone garbage
    /// collection), and an old tombstone can never cover a new write.
    pub fn write_above(
        &mut self,
        actor: Actor,
        floor: u64,
        context: &VersionVector,
        value: Option<Vec<u8>>,
        timestamp_ms: u64,
        max_siblings: usize,
    ) -> Result<Dot, TooManySiblings> {
        let kept = self.siblings.iter().filter(|s| !context.covers(&s.dot)).count();
        if kept + 1 > max_siblings {
            return Err(TooManySiblings {
                count: kept + 1,
                max: max_siblings,
            });
        }
        let dot = Dot {
            node: actor.node,
            epoch: actor.epoch,
            counter: self.clock.counter(actor).max(floor) + 1,
        };
        self.siblings.retain(|s| !context.covers(&s.dot));
        self.clock.merge(context);
        self.clock.add(&dot);
        let sibling = Sibling {
            dot,
            timestamp_ms,
            value: value.map(Bytes::from),
            expires_ms: None,
        };
        let at = self.siblings.partition_point(|s| s.dot < dot);
        self.siblings.insert(at, sibling);
        Ok(dot)
    }

    /// Checks a state from the wire against the invariants every state
    /// this build makes keeps: siblings sorted by distinct dots, each
    /// covered by the clock, counters in 1..=[`MAX_COUNTER`]. Merging a
    /// state that fails would break the merge laws.
    pub fn check(&self) -> Result<(), MalformedState> {
        self.clock.check()?;
        if let Some(s) = self.siblings.iter().find(|s| s.dot.counter == 0) {
            return Err(MalformedState::Counter {
                counter: s.dot.counter,
            });
        }
        if self.siblings.windows(2).any(|w| w[0].dot >= w[1].dot) {
            return Err(MalformedState::Unsorted);
        }
        if self.siblings.iter().any(|s| !self.clock.covers(&s.dot)) {
            return Err(MalformedState::Uncovered);
        }
        Ok(())
    }

    /// The join of two states; see the module doc for the laws it obeys.
    pub fn merge(&self, other: &Versioned) -> Versioned {
        let mut siblings: Vec<Sibling> = Vec::with_capacity(self.siblings.len());
        let (mut a, mut b) = (self.siblings.iter().peekable(), other.siblings.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(x), Some(y)) if x.dot == y.dot => {
                    b.next();
                    a.next().cloned()
                }
                (Some(x), Some(y)) if x.dot < y.dot => {
                    a.next().filter(|s| !other.clock.covers(&s.dot)).cloned()
                }
                (Some(_), None) => a.next().filter(|s| !other.clock.covers(&s.dot)).cloned(),
                _ => b.next().filter(|s| !self.clock.covers(&s.dot)).cloned(),
            };
            siblings.extend(next);
        }
        let mut clock = self.clock.clone();
        clock.merge(&other.clock);
        Versioned { clock, siblings }
    }

    /// Merges `other` into `self`; returns whether `self` changed.
    pub fn merge_from(&mut self, other: &Versioned) -> bool {
        let merged = self.merge(other);
        let changed = merged != *self;
        *self = merged;
        changed
    }

    /// [`Versioned::merge_from`] taking `other`: its siblings move in
    /// rather than being copied (a replica's write of a 1 MiB block copies
    /// nothing), and whether the state changed is known from what was
    /// dropped and added, without comparing values.
    pub fn merge_owned(&mut self, other: Versioned) -> bool {
        let Versioned {
            clock: their_clock,
            siblings: theirs,
        } = other;
        let mine = std::mem::take(&mut self.siblings);
        let mut siblings: Vec<Sibling> = Vec::with_capacity(mine.len());
        let mut changed = false;
        let (mut a, mut b) = (mine.into_iter().peekable(), theirs.into_iter().peekable());
        loop {
            // Each sibling with whether it is ours, theirs or both.
            let (next, ours, theirs) = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(x), Some(y)) if x.dot == y.dot => {
                    b.next();
                    (a.next(), true, true)
                }
                (Some(x), Some(y)) if x.dot < y.dot => (a.next(), true, false),
                (Some(_), None) => (a.next(), true, false),
                _ => (b.next(), false, true),
            };
            let Some(sibling) = next else { break };
            let kept = match (ours, theirs) {
                (true, true) => true,
                (true, false) => !their_clock.covers(&sibling.dot),
                _ => !self.clock.covers(&sibling.dot),
            };
            // A sibling of ours dropped, or one only theirs added.
            changed |= kept != ours;
            if kept {
                siblings.push(sibling);
            }
        }
        self.siblings = siblings;
        let clock_before = self.clock.clone();
        self.clock.merge(&their_clock);
        changed || self.clock != clock_before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 64;

    fn actor(n: u64) -> Actor {
        Actor {
            node: NodeId(n),
            epoch: 1,
        }
    }

    fn values(v: &Versioned) -> Vec<&[u8]> {
        v.values().map(|s| s.value.as_deref().unwrap()).collect()
    }

    #[test]
    fn a_sibling_without_an_expiry_encodes_as_before_one_with_it_round_trips() {
        let mut v = Versioned::new();
        let dot = v
            .write(actor(1), &VersionVector::new(), Some(b"v".to_vec()), 5, MAX)
            .unwrap();
        // The shape stored and sent before expiry existed.
        let before = rmp_serde::to_vec(&(dot, 5u64, Some(serde_bytes::Bytes::new(b"v")))).unwrap();
        assert_eq!(rmp_serde::to_vec(&v.siblings()[0]).unwrap(), before);
        let old: Sibling = rmp_serde::from_slice(&before).unwrap();
        assert_eq!(old.expires_ms, None);

        v.set_expiry(&dot, 1_000);
        let bytes = rmp_serde::to_vec(&v).unwrap();
        let back: Versioned = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.siblings()[0].expires_ms, Some(1_000));
        assert_eq!(back.values_at(999).count(), 1);
        assert_eq!(back.values_at(1_000).count(), 0);
    }

    #[test]
    fn a_write_above_a_floor_gets_a_counter_above_it() {
        let mut v = Versioned::new();
        let dot = v
            .write_above(actor(1), 10, &VersionVector::new(), Some(b"a".to_vec()), 1, MAX)
            .unwrap();
        assert_eq!(dot.counter, 11);
        let dot = v
            .write_above(actor(1), 3, &VersionVector::new(), Some(b"b".to_vec()), 2, MAX)
            .unwrap();
        assert_eq!(dot.counter, 12, "the key's own clock is still respected");
    }

    #[test]
    fn concurrent_writes_without_context_become_siblings() {
        let mut v = Versioned::new();
        let empty = VersionVector::new();
        v.write(actor(1), &empty, Some(b"a".to_vec()), 1, MAX).unwrap();
        v.write(actor(1), &empty, Some(b"b".to_vec()), 2, MAX).unwrap();
        assert_eq!(values(&v), vec![&b"a"[..], b"b"]);
    }

    #[test]
    fn write_with_context_replaces_exactly_the_siblings_it_saw() {
        let mut v = Versioned::new();
        let empty = VersionVector::new();
        v.write(actor(1), &empty, Some(b"a".to_vec()), 1, MAX).unwrap();
        v.write(actor(1), &empty, Some(b"b".to_vec()), 2, MAX).unwrap();
        let seen = v.clock().clone();
        // A write the reader did not see arrives before the reader's write.
        v.write(actor(1), &empty, Some(b"c".to_vec()), 3, MAX).unwrap();
        v.write(actor(1), &seen, Some(b"d".to_vec()), 4, MAX).unwrap();
        assert_eq!(values(&v), vec![&b"c"[..], b"d"]);
    }

    #[test]
    fn writes_at_different_replicas_merge_as_siblings() {
        let empty = VersionVector::new();
        let mut x = Versioned::new();
        let mut y = Versioned::new();
        x.write(actor(1), &empty, Some(b"x".to_vec()), 1, MAX).unwrap();
        y.write(actor(2), &empty, Some(b"y".to_vec()), 1, MAX).unwrap();
        let merged = x.merge(&y);
        assert_eq!(values(&merged), vec![&b"x"[..], b"y"]);
        // A write at actor 2 with the merged context supersedes both.
        let mut z = y.merge(&x);
        z.write(actor(2), merged.clock(), Some(b"z".to_vec()), 2, MAX)
            .unwrap();
        assert_eq!(values(&z.merge(&x).merge(&y)), vec![&b"z"[..]]);
    }

    #[test]
    fn identical_siblings_are_kept_once() {
        let mut v = Versioned::new();
        v.write(actor(1), &VersionVector::new(), Some(b"a".to_vec()), 1, MAX)
            .unwrap();
        let twice = v.merge(&v.clone());
        assert_eq!(twice.siblings().len(), 1);
        assert_eq!(twice, v);
    }

    #[test]
    fn a_delete_leaves_a_tombstone_that_supersedes_what_it_saw() {
        let mut v = Versioned::new();
        v.write(actor(1), &VersionVector::new(), Some(b"a".to_vec()), 1, MAX)
            .unwrap();
        let old = v.clone();
        v.write(actor(1), &old.clock().clone(), None, 2, MAX).unwrap();
        assert!(v.is_deleted());
        assert_eq!(v.siblings().len(), 1, "the tombstone");
        assert!(v.merge(&old).is_deleted(), "the old value does not come back");
    }

    #[test]
    fn sibling_limit_refuses_the_write_and_changes_nothing() {
        let mut v = Versioned::new();
        let empty = VersionVector::new();
        v.write(actor(1), &empty, Some(b"a".to_vec()), 1, 2).unwrap();
        v.write(actor(1), &empty, Some(b"b".to_vec()), 1, 2).unwrap();
        let before = v.clone();
        let err = v.write(actor(1), &empty, Some(b"c".to_vec()), 1, 2).unwrap_err();
        assert_eq!(err, TooManySiblings { count: 3, max: 2 });
        assert_eq!(v, before);
        // Superseding them is still allowed.
        let ctx = v.clock().clone();
        v.write(actor(1), &ctx, Some(b"d".to_vec()), 1, 2).unwrap();
    }

    /// A random history: writes at random replicas with contexts taken from
    /// random earlier states, and merges between replicas. Returns the
    /// replicas' states, which are all reachable (so satisfy the invariants).
    fn history(ops: &[(u8, u8, u8, bool)]) -> Vec<Versioned> {
        let mut replicas = vec![Versioned::new(); 3];
        let mut seen: Vec<VersionVector> = vec![VersionVector::new()];
        for (i, &(at, ctx, other, merge)) in ops.iter().enumerate() {
            let at = usize::from(at) % 3;
            if merge {
                let other = replicas[usize::from(other) % 3].clone();
                replicas[at].merge_from(&other);
            } else {
                let context = seen[usize::from(ctx) % seen.len()].clone();
                let value = if i % 7 == 0 { None } else { Some(vec![i as u8]) };
                replicas[at]
                    .write(actor(at as u64), &context, value, i as u64, 1024)
                    .unwrap();
            }
            seen.push(replicas[at].clock().clone());
        }
        replicas
    }

    fn ops() -> impl Strategy<Value = Vec<(u8, u8, u8, bool)>> {
        proptest::collection::vec(any::<(u8, u8, u8, bool)>(), 0..40)
    }

    proptest! {
        #[test]
        fn merge_is_commutative(ops in ops()) {
            let r = history(&ops);
            prop_assert_eq!(r[0].merge(&r[1]), r[1].merge(&r[0]));
        }

        #[test]
        fn merge_is_associative(ops in ops()) {
            let r = history(&ops);
            prop_assert_eq!(r[0].merge(&r[1]).merge(&r[2]), r[0].merge(&r[1].merge(&r[2])));
        }

        #[test]
        fn merge_is_idempotent(ops in ops()) {
            let r = history(&ops);
            prop_assert_eq!(r[0].merge(&r[0]), r[0].clone());
            let m = r[0].merge(&r[1]);
            prop_assert_eq!(m.merge(&r[1]), m);
        }

        #[test]
        fn merge_owned_is_merge_from(ops in ops(), i in 0usize..4, j in 0usize..4) {
            let mut r = history(&ops);
            r.push(Versioned::new());
            let (mut by_ref, mut owned) = (r[i].clone(), r[i].clone());
            let changed = by_ref.merge_from(&r[j]);
            prop_assert_eq!(owned.merge_owned(r[j].clone()), changed);
            prop_assert_eq!(owned, by_ref);
        }

        #[test]
        fn merge_never_invents_a_sibling(ops in ops()) {
            let r = history(&ops);
            let m = r[0].merge(&r[1]);
            for s in m.siblings() {
                prop_assert!(r[0].siblings().contains(s) || r[1].siblings().contains(s));
            }
            prop_assert!(m.clock().descends(r[0].clock()) && m.clock().descends(r[1].clock()));
        }
    }
}
