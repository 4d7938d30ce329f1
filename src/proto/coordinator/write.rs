//! Writes: the coordinator applies a put or delete to its own copy (the
//! dot comes from its state of the key), sends the new state to the other
//! replicas (or hinted to stand-ins), answers after W acknowledgements, and
//! hints the replicas that did not acknowledge.

use super::{Coordinated, Kind, write_failed};
use crate::proto::Node;
use crate::proto::message::{
    ClientRequest, ClientResponse, Context, PeerMessage, ReplicaError, RequestError,
};
use crate::proto::quorum::QuorumTracker;
use crate::proto::store::{Store, StoreError};
use crate::proto::types::{NodeId, Time};
use crate::proto::version::{Dot, Versioned};
use std::collections::BTreeMap;

impl<S: Store> Node<S> {
    /// A write's requests: its new state to every replica but this one
    /// (hinted to stand-ins) and to the future replicas it does not count.
    pub(super) fn write_requests(&self, id: u64) -> Vec<(NodeId, PeerMessage)> {
        let me = self.id();
        let Some(Coordinated {
            kind:
                Kind::Write {
                    request,
                    tracker,
                    object,
                    stand_ins,
                    pending,
                    placement,
                    ..
                },
            ..
        }) = self.requests.get(&id)
        else {
            return Vec::new();
        };
        tracker
            .replicas()
            .iter()
            .chain(pending.keys())
            .filter(|&&n| n != me)
            .map(|&n| {
                let key = request.key().to_vec();
                let object = object.clone();
                let placement = Some(placement.clone());
                let message = match stand_ins.get(&n) {
                    Some(&target) => PeerMessage::HintedPut {
                        request: id,
                        key,
                        object,
                        target,
                        placement,
                        written_to: written_to(tracker, pending),
                    },
                    None => PeerMessage::ReplicaPut {
                        request: id,
                        key,
                        object,
                        placement,
                    },
                };
                (n, message)
            })
            .collect()
    }

    /// Answers a write whose quorum is met or lost with every live replica
    /// heard; ends an answered write once every node it went to answered.
    pub(super) fn check_write_done(&mut self, now: Time, id: u64) {
        let Some(operation) = self.requests.get(&id) else {
            return;
        };
        match &operation.kind {
            Kind::Write {
                answered: true,
                tracker,
                pending,
                ..
            } if all_answered(tracker, pending) => self.end_write(now, id),
            Kind::Write { answered: true, .. } => {}
            Kind::Write {
                tracker, object, dot, ..
            } if tracker.is_met() => {
                let response = ClientResponse::Written {
                    context: Context(object.clock().clone()),
                    dot: *dot,
                };
                self.answer_write(now, id, response);
            }
            Kind::Write {
                request,
                tracker,
                out_of_memory,
                ..
            } if tracker.is_lost() && tracker.is_complete() => {
                let response = write_failed(request, tracker, *out_of_memory);
                self.answer_write(now, id, response);
            }
            _ => {}
        }
    }

    pub(super) fn start_write(
        &mut self,
        now: Time,
        mut request: ClientRequest,
        mut replicas: Vec<NodeId>,
    ) -> Result<Result<Kind, ClientRequest>, RequestError> {
        let placement = self.placement(request.key(), replicas.clone());
        let mut stand_ins = BTreeMap::new();
        if request.sloppy_quorum() && replicas.iter().any(|&n| !self.writable(n)) {
            let mut fallbacks = self
                .view
                .ring
                .walk(request.key())
                .skip(replicas.len())
                // A leaving node would only hand the hint on again.
                .filter(|&n| self.writable(n) && !self.is_leaving(n))
                .collect::<Vec<_>>()
                .into_iter();
            for slot in replicas.iter_mut() {
                if !self.writable(*slot)
                    && let Some(fallback) = fallbacks.next()
                {
                    stand_ins.insert(fallback, *slot);
                    *slot = fallback;
                }
            }
        }
        // While ranges move, a strict write needs W acknowledgements among
        // the key's current replicas and W among its future ones. A sloppy
        // write promises durability, not that every read sees it: it does
        // the same only when every node involved is up, and otherwise just
        // sends the write to the future replicas, not counting them.
        let mut future = self.future_replicas(request.key(), &replicas);
        let joint = future.as_ref().is_some_and(|future| {
            !request.sloppy_quorum() || stand_ins.is_empty() && future.iter().all(|&n| self.writable(n))
        });
        // (A future replica that is also a current one is written, or
        // hinted through its stand-in, as a current replica.)
        let pending = match future.take_if(|_| !joint) {
            Some(future) => future
                .into_iter()
                .filter(|n| !placement.current.contains(n) && !replicas.contains(n) && *n != self.id())
                .map(|n| (n, None))
                .collect(),
            None => BTreeMap::new(),
        };
        let mut tracker = self.tracker(&request, replicas, future)?;
        // A write always has a copy on its coordinator: sloppy stand-ins
        // keep only hints, which may be dropped (past the hint window)
        // because the coordinator's copy repairs what they held. If this
        // node's own copy fails, the request goes back to the caller to be
        // coordinated elsewhere.
        let Some((object, dot)) = self.apply_local_write(now, &mut request)? else {
            return Ok(Err(request));
        };
        tracker.succeed(self.id());
        Ok(Ok(Kind::Write {
            request,
            tracker,
            object: object.into(),
            dot,
            stand_ins,
            answered: false,
            pending,
            placement,
            out_of_memory: None,
        }))
    }

    /// Applies a client write to the local state of its key and stores
    /// it: the new state and its dot, or `None` if the state could not be
    /// read or stored (storage failed; the caller has the write
    /// coordinated elsewhere, so its value is handed back to it). The
    /// error is a refused write; nothing was stored. The value moves from
    /// the request into the state without a copy: the write keeps the
    /// request only for its key and its terms.
    pub(super) fn apply_local_write(
        &mut self,
        now: Time,
        request: &mut ClientRequest,
    ) -> Result<Option<(Versioned, Dot)>, RequestError> {
        let (old, mut object) = match self.local.read_for_write(request.key()) {
            Ok(stored) => stored,
            Err(error) => {
                self.local.note_error(&error);
                return Ok(None);
            }
        };
        let (value, context) = match request {
            ClientRequest::Put { value, context, .. } => (Some(std::mem::take(value)), &*context),
            ClientRequest::Delete { context, .. } => (None, &*context),
            ClientRequest::Get { .. } => unreachable!("a get is not a write"),
        };
        let written = object.write_above(
            self.actor,
            self.last_counter,
            context.version_vector(),
            value,
            now.as_millis(),
            self.config.max_siblings,
        );
        let dot = match written {
            Ok(dot) => {
                self.last_counter = dot.counter;
                if let ClientRequest::Put {
                    ttl_ms: Some(ttl_ms), ..
                } = request
                {
                    object.set_expiry(&dot, now.as_millis().saturating_add(*ttl_ms));
                }
                dot
            }
            Err(e) => {
                return Err(RequestError::TooManySiblings {
                    count: e.count,
                    max: e.max,
                });
            }
        };
        let size = crate::proto::store::state_bytes(request.key(), &object) as usize;
        if size > self.config.max_state_bytes {
            return Err(RequestError::StateTooLarge {
                size,
                max: self.config.max_state_bytes,
            });
        }
        match self.local.put(request.key(), old, &object) {
            Ok(()) => Ok(Some((object, dot))),
            Err(StoreError::OutOfMemory { max, .. }) => {
                Err(RequestError::OutOfMemory { node: self.id(), max })
            }
            Err(_) => {
                give_back(request, object.take_value(&dot));
                Ok(None)
            }
        }
    }

    /// Answers a write's requester; the write stays until every replica
    /// acknowledged or its deadline, to hint those that did not.
    pub(super) fn answer_write(&mut self, now: Time, id: u64, response: ClientResponse) {
        let Some(Coordinated {
            requester,
            kind:
                Kind::Write {
                    answered,
                    tracker,
                    pending,
                    ..
                },
            ..
        }) = self.requests.get_mut(&id)
        else {
            return;
        };
        *answered = true;
        let (requester, complete) = (*requester, all_answered(tracker, pending));
        self.requests.note_answered();
        if matches!(
            response,
            ClientResponse::Failed(RequestError::QuorumNotMet { .. })
        ) {
            self.stats.quorum_failures += 1;
        }
        self.respond(requester, response);
        if complete {
            self.end_write(now, id);
        }
    }

    /// Ends an answered write: stores a hint for every home replica that
    /// did not acknowledge it (itself, or through its stand-in), and for
    /// every future replica it went to uncounted that did not.
    pub(super) fn end_write(&mut self, now: Time, id: u64) {
        let Some(operation) = self.take_operation(id) else {
            return;
        };
        let Kind::Write {
            request,
            tracker,
            object,
            stand_ins,
            pending,
            ..
        } = operation.kind
        else {
            unreachable!("only writes are ended here")
        };
        let missed = tracker
            .replicas()
            .iter()
            .filter(|&&node| !tracker.has_succeeded(node))
            .map(|node| stand_ins.get(node).unwrap_or(node))
            .chain(
                pending
                    .iter()
                    .filter(|(_, a)| **a != Some(true))
                    .map(|(node, _)| node),
            );
        let written_to = written_to(&tracker, &pending);
        for &target in missed {
            // A hint that cannot be stored leaves the repair to
            // anti-entropy.
            let _ = self.store_hint(now, target, request.key(), &object, &written_to);
        }
    }

    /// A replica stored a write (or a read repair) this node coordinates,
    /// or could not.
    pub(in crate::proto) fn on_replica_put_reply(
        &mut self,
        now: Time,
        from: NodeId,
        request: u64,
        result: Result<(), ReplicaError>,
    ) {
        if let Some(Coordinated {
            kind: Kind::Read {
                repairing: Some(waiting),
                ..
            },
            ..
        }) = self.requests.get_mut(&request)
        {
            waiting.retain(|&n| n != from);
            self.check_done(now, request);
        } else if let Some(Coordinated {
            kind:
                Kind::Write {
                    tracker,
                    pending,
                    out_of_memory,
                    ..
                },
            ..
        }) = self.requests.get_mut(&request)
        {
            match (pending.get_mut(&from), result) {
                (Some(answer), result) => *answer = Some(result.is_ok()),
                (None, Ok(())) => tracker.succeed(from),
                (None, Err(error)) => {
                    if let ReplicaError::OutOfMemory { max } = error {
                        *out_of_memory = Some((from, max));
                    }
                    tracker.fail(from)
                }
            }
            self.check_done(now, request);
        }
    }
}

/// Whether every node a write went to has answered.
pub(super) fn all_answered(tracker: &QuorumTracker, pending: &BTreeMap<NodeId, Option<bool>>) -> bool {
    tracker.is_complete() && pending.values().all(Option::is_some)
}

/// Every node a write goes to (its replicas, their stand-ins and the
/// future replicas it does not count), sorted: what its hints record as
/// [`written_to`](super::store::Hint::written_to).
pub(super) fn written_to(tracker: &QuorumTracker, pending: &BTreeMap<NodeId, Option<bool>>) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = tracker.replicas().iter().chain(pending.keys()).copied().collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// Puts a write's value back into its request (taken by
/// `apply_local_write`), for the request to be coordinated elsewhere.
fn give_back(request: &mut ClientRequest, taken: Option<Vec<u8>>) {
    if let (ClientRequest::Put { value, .. }, Some(taken)) = (request, taken) {
        *value = taken;
    }
}
