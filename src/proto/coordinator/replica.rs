//! The replica side: what this node does for a peer coordinating a request
//! (read its state, merge a state in, keep a hint), after checking that
//! the coordinator's view of the key's replicas is not stale.

use super::HintedPut;
use crate::proto::Node;
use crate::proto::message::{KeyState, PeerMessage, Placement, ReplicaError};
use crate::proto::store::{Store, StoreError};
use crate::proto::types::{NodeId, Time};
use crate::proto::version::Versioned;
use std::collections::BTreeMap;

impl<S: Store> Node<S> {
    /// Refuses a replica request whose coordinator's view of the key's
    /// replicas (`theirs`) lacks a join or leave this node knows of, and
    /// sends the coordinator this node's member states. No check for
    /// read repair (nothing to count) or before this node knows the ring.
    pub(super) fn check_placement(
        &mut self,
        from: NodeId,
        key: &[u8],
        theirs: Option<&Placement>,
    ) -> Result<(), ReplicaError> {
        let Some(theirs) = theirs.filter(|_| self.is_ready()) else {
            return Ok(());
        };
        let ours = self.placement(key, self.view.ring.preference_list(key, self.config.replication));
        if ours.admits(theirs) {
            return Ok(());
        }
        self.stats.placement_refusals += 1;
        self.sync_states_to(from);
        Err(ReplicaError::PlacementMismatch {
            ours,
            theirs: theirs.clone(),
        })
    }

    /// A coordinator asks for this replica's state of `key`.
    pub(in crate::proto) fn on_replica_get(
        &mut self,
        from: NodeId,
        request: u64,
        key: &[u8],
        placement: Option<&Placement>,
    ) {
        self.stats.replica_ops += 1;
        let result = self.check_placement(from, key, placement).and_then(|()| {
            self.local
                .get(key)
                .map(Option::unwrap_or_default)
                .map_err(replica_error)
        });
        self.send(from, PeerMessage::ReplicaGetReply { request, result });
    }

    /// A coordinator asks this replica to merge its state of `key`.
    pub(in crate::proto) fn on_replica_put(
        &mut self,
        from: NodeId,
        request: u64,
        key: &[u8],
        object: Versioned,
        placement: Option<&Placement>,
    ) {
        self.stats.replica_ops += 1;
        let result = self
            .check_placement(from, key, placement)
            .and_then(|()| self.merge_local(key, object).map(|_| ()).map_err(replica_error));
        self.send(from, PeerMessage::ReplicaPutReply { request, result });
    }

    /// A coordinator asks this node to keep a hint for `target` (or to
    /// store the write, if `target` is this node).
    pub(in crate::proto) fn on_hinted_put(&mut self, now: Time, from: NodeId, request: u64, put: HintedPut) {
        self.stats.replica_ops += 1;
        let HintedPut {
            key,
            object,
            target,
            placement,
            written_to,
        } = put;
        let result = self
            .check_placement(from, &key, placement.as_ref())
            .and_then(|()| {
                if target == self.id() {
                    return self.merge_local(&key, object).map(|_| ()).map_err(replica_error);
                }
                if !self.knows_member(target) {
                    // A hint for a node no ring here has would wait in vain.
                    return Err(ReplicaError::UnknownNode { node: target });
                }
                match self.store_hint(now, target, &key, &object, &written_to) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(ReplicaError::HintLimits { target }),
                    Err(error) => Err(replica_error(error)),
                }
            });
        self.send(from, PeerMessage::ReplicaPutReply { request, result });
    }

    /// Merges many states into the local ones, writing the changed ones in
    /// one batch; how many keys changed. A key may come more than once.
    pub(in crate::proto) fn merge_many(&mut self, states: &[KeyState]) -> Result<usize, StoreError> {
        // Key -> (digest of the state before, merged state, changed).
        let mut merged: BTreeMap<&[u8], (Option<u64>, Versioned, bool)> = BTreeMap::new();
        for KeyState { key, object } in states {
            let entry = match merged.entry(key.as_slice()) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    let (old, local) = self.local.read_for_write(key)?;
                    entry.insert((old, local, false))
                }
            };
            entry.2 |= entry.1.merge_from(object);
        }
        merged.retain(|_, (_, _, changed)| *changed);
        let writes: Vec<crate::proto::local::Write<'_>> =
            merged.iter().map(|(k, (old, new, _))| (*k, *old, new)).collect();
        self.local.put_many(&writes)?;
        Ok(merged.len())
    }

    /// Merges a peer's state of `key` into ours; true if ours changed.
    pub(in crate::proto) fn merge_local(
        &mut self,
        key: &[u8],
        object: Versioned,
    ) -> Result<bool, StoreError> {
        let (old, mut local) = self.local.read_for_write(key)?;
        let changed = local.merge_owned(object);
        if changed {
            self.local.put(key, old, &local)?;
        }
        Ok(changed)
    }
}

pub(super) fn replica_error(error: StoreError) -> ReplicaError {
    ReplicaError::from(error)
}
