//! Reads: a get gathers R replicas' states, merges them and answers;
//! read repair writes the merged state back to replicas that differed
//! (before answering, with `read_repair_blocking`). A read with
//! [`Fanout::Needed`] asks only R replicas, more as some fail, and repairs
//! nothing.

use super::{Coordinated, Kind, quorum_not_met};
use crate::proto::Node;
use crate::proto::message::{
    ClientRequest, ClientResponse, Context, Fanout, PeerMessage, Placement, ReplicaError, RequestError, Value,
};
use crate::proto::quorum::QuorumTracker;
use crate::proto::store::Store;
use crate::proto::types::{NodeId, Time};
use crate::proto::version::Versioned;
use std::collections::{BTreeMap, BTreeSet};

impl<S: Store> Node<S> {
    /// A read's requests to the key's other live replicas.
    pub(super) fn read_requests(
        &self,
        id: u64,
        request: &ClientRequest,
        tracker: &QuorumTracker,
        placement: &Placement,
    ) -> Vec<(NodeId, PeerMessage)> {
        let me = self.id();
        tracker
            .replicas()
            .iter()
            .filter(|&&n| n != me && self.is_up(n))
            .map(|&n| {
                let key = request.key().to_vec();
                let placement = Some(placement.clone());
                (
                    n,
                    PeerMessage::ReplicaGet {
                        request: id,
                        key,
                        placement,
                    },
                )
            })
            .collect()
    }

    /// A [`Fanout::Needed`] read: asks the next replicas in the key's
    /// order (the down ones count as failed) while those that succeeded
    /// and those still awaited fall short of R.
    pub(super) fn ask_needed(&mut self, id: u64) {
        let me = self.id();
        let Some(Coordinated {
            kind:
                Kind::Read {
                    request,
                    tracker,
                    placement,
                    asked: Some(asked),
                    ..
                },
            ..
        }) = self.requests.get_mut(&id)
        else {
            return;
        };
        let awaited = asked.iter().filter(|&&n| !tracker.has_answered(n)).count();
        let short = tracker.required().saturating_sub(tracker.succeeded() + awaited);
        let next: Vec<NodeId> = tracker
            .replicas()
            .iter()
            .copied()
            .filter(|&n| n != me && !asked.contains(&n) && !tracker.has_answered(n))
            .take(short)
            .collect();
        asked.extend(&next);
        let (key, placement) = (request.key().to_vec(), placement.clone());
        for node in next {
            let message = PeerMessage::ReplicaGet {
                request: id,
                key: key.clone(),
                placement: Some(placement.clone()),
            };
            self.send(node, message);
        }
    }

    /// Answers a read whose quorum is met (after blocking repairs, if
    /// any) or lost with every live replica heard; repairs an answered
    /// read once every replica answered.
    pub(super) fn check_read_done(&mut self, now: Time, id: u64) {
        let Some(operation) = self.requests.get(&id) else {
            return;
        };
        let met_read = matches!(
            &operation.kind,
            Kind::Read { answered: false, tracker, .. } if tracker.is_met()
        );
        if met_read && self.repair_before_answering(id) {
            return; // Answered once the repairs are acknowledged.
        }
        let Some(operation) = self.requests.get(&id) else {
            return;
        };
        match &operation.kind {
            Kind::Read {
                answered: true,
                tracker,
                ..
            } if tracker.is_complete() => self.read_repair(id),
            Kind::Read { answered: true, .. } => {}
            Kind::Read { tracker, merged, .. } if tracker.is_met() => {
                let response = found(merged, self.expiry_clock(now));
                let requester = operation.requester;
                if let Some(Coordinated {
                    kind:
                        Kind::Read {
                            answered,
                            tracker,
                            asked,
                            ..
                        },
                    ..
                }) = self.requests.get_mut(&id)
                {
                    *answered = true;
                    let complete = tracker.is_complete() || asked.is_some();
                    self.requests.note_answered();
                    self.respond(requester, response);
                    if complete {
                        self.read_repair(id);
                    }
                }
            }
            // Lost, and every live replica has answered (every one asked,
            // with none left to ask): fail now, with a true count, instead
            // of waiting for the deadline.
            Kind::Read {
                request,
                tracker,
                asked: None,
                ..
            } if tracker.is_lost() && tracker.is_complete() => {
                let response = quorum_not_met(request, tracker);
                self.finish(id, response);
            }
            Kind::Read {
                request,
                tracker,
                asked: Some(asked),
                ..
            } if asked.iter().all(|&n| tracker.has_answered(n)) => {
                let response = quorum_not_met(request, tracker);
                self.finish(id, response);
            }
            _ => {}
        }
    }

    pub(super) fn start_read(
        &mut self,
        request: ClientRequest,
        replicas: Vec<NodeId>,
    ) -> Result<Kind, RequestError> {
        let placement = self.placement(request.key(), replicas.clone());
        let mut tracker = self.tracker(&request, replicas, placement.future.clone())?;
        let mut merged = Versioned::new();
        let mut states = BTreeMap::new();
        if tracker.replicas().contains(&self.id()) {
            match self.local.get(request.key()) {
                Ok(local) => {
                    merged = local.unwrap_or_default();
                    states.insert(self.id(), merged.clone());
                    tracker.succeed(self.id());
                }
                Err(_) => tracker.fail(self.id()),
            }
        }
        let needed = matches!(
            request,
            ClientRequest::Get {
                fanout: Fanout::Needed,
                ..
            }
        );
        // While ranges move, a read needs a quorum in two replica sets:
        // it asks every replica then.
        let asked = (needed && placement.future.is_none()).then(BTreeSet::new);
        Ok(Kind::Read {
            request,
            tracker,
            merged,
            states,
            answered: false,
            repairing: None,
            placement,
            asked,
        })
    }

    /// Blocking read repair (`read_repair_blocking`): once a read's quorum
    /// is met, writes the merged state back to the replicas that answered
    /// differently and holds the answer until they acknowledge (or the
    /// deadline). True while it waits.
    pub(super) fn repair_before_answering(&mut self, id: u64) -> bool {
        if !(self.config.read_repair && self.config.read_repair_blocking) {
            return false;
        }
        let me = self.id();
        let Some(Coordinated {
            kind:
                Kind::Read {
                    request,
                    merged,
                    states,
                    repairing,
                    asked: None,
                    ..
                },
            ..
        }) = self.requests.get_mut(&id)
        else {
            return false;
        };
        if let Some(waiting) = repairing {
            return !waiting.is_empty();
        }
        let stale: Vec<NodeId> = states
            .iter()
            .filter(|(_, state)| *state != merged)
            .map(|(&node, _)| node)
            .collect();
        for node in &stale {
            // Repaired now: the background repair leaves it alone.
            states.insert(*node, merged.clone());
        }
        let (key, merged) = (request.key().to_vec(), merged.clone());
        let remote: Vec<NodeId> = stale.iter().copied().filter(|&n| n != me).collect();
        *repairing = Some(remote.clone());
        for node in stale {
            self.write_back(id, node, &key, &merged);
        }
        !remote.is_empty()
    }

    /// Read repair of one stale replica: merges `merged` into this node's
    /// state, or sends it to `node` with request id `request` (0, never an
    /// operation's, when nobody waits for the acknowledgement).
    pub(super) fn write_back(&mut self, request: u64, node: NodeId, key: &[u8], merged: &Versioned) {
        self.stats.read_repairs += 1;
        if node == self.id() {
            // A failed local repair is retried by the next read.
            let _ = self.merge_local(key, merged.clone());
        } else {
            let message = PeerMessage::ReplicaPut {
                request,
                key: key.to_vec(),
                object: merged.clone().into(),
                placement: None,
            };
            self.send(node, message);
        }
    }

    /// Ends an answered read: writes the merged state back to every
    /// replica that answered with something else. The merged state holds
    /// only siblings some replica had, so nothing is invented.
    pub(super) fn read_repair(&mut self, id: u64) {
        let Some(operation) = self.take_operation(id) else {
            return;
        };
        let Kind::Read {
            request,
            merged,
            states,
            asked,
            ..
        } = operation.kind
        else {
            unreachable!("only reads are repaired")
        };
        if !self.config.read_repair || asked.is_some() {
            return;
        }
        for (node, state) in states {
            if state != merged {
                self.write_back(0, node, request.key(), &merged);
            }
        }
    }

    /// A replica's state for a read this node coordinates.
    pub(in crate::proto) fn on_replica_get_reply(
        &mut self,
        now: Time,
        from: NodeId,
        request: u64,
        result: Result<Versioned, ReplicaError>,
    ) {
        if let Some(Coordinated {
            kind:
                Kind::Read {
                    tracker,
                    merged,
                    states,
                    ..
                },
            ..
        }) = self.requests.get_mut(&request)
        {
            match result {
                Ok(object) if tracker.replicas().contains(&from) && !states.contains_key(&from) => {
                    merged.merge_from(&object);
                    states.insert(from, object);
                    tracker.succeed(from);
                }
                Ok(_) => {}
                Err(_) => tracker.fail(from),
            }
            self.ask_needed(request);
            self.check_done(now, request);
        }
    }
}

/// The answer to a read of `merged` at `now`: its live values (expired
/// ones read as absent) and its whole clock as the context, so a write
/// with it replaces the expired values too.
pub(in crate::proto) fn found(merged: &Versioned, now: Time) -> ClientResponse {
    ClientResponse::Found {
        values: merged
            .values_at(now.as_millis())
            .map(|s| Value {
                value: s.value.clone().expect("values() yields live siblings"),
                timestamp_ms: s.timestamp_ms,
            })
            .collect(),
        context: Context(merged.clock().clone()),
    }
}
