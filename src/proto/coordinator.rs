//! Client operations in flight: quorum reads and writes coordinated by this
//! node, writes it forwards to a replica, and the replica side of the
//! protocol it serves for peers.
//!
//! A **get** asks every replica in the key's preference list (this node
//! answers itself at once if it is one), merges the states that come back
//! and answers after R successes. A **put** or **delete** must be coordinated
//! by a replica, because the dot it issues is derived from the replica's own
//! state of the key: the coordinator applies the write locally, sends its new
//! state to the other replicas and answers after W acknowledgements
//! (itself included). A node outside the preference list forwards the write
//! to one live replica, and to another only if that one refuses it: a
//! replica that stays silent may have applied the write, and a second
//! coordinator would apply it again as a second version.
//! Every operation has a deadline; past it, the client hears how many
//! replicas answered of how many were needed.

use super::message::{
    ClientRequest, ClientResponse, Context, KeyState, Operation, PeerMessage, Placement, ReplicaError,
    RequestError, Value,
};
use super::quorum::{Access, QuorumTracker};
use super::store::{Store, StoreError};
use super::types::{NodeId, Time};
use super::version::{Dot, Versioned};
use super::{ClientId, Node, Output};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a forwarded request is remembered, so that a copy of it (a
/// message delivered twice, the copy late) is not applied a second time:
/// longer than any request's deadline and any delay a message survives.
/// Applied twice, a write would come back under a second dot after a
/// delete that covered the first.
const FORWARD_MEMORY: Duration = Duration::from_secs(60);
/// Most forwarded requests remembered; past it the oldest are forgotten
/// (memory stays bounded under any load).
const MAX_FORWARDS_REMEMBERED: usize = 100_000;

/// Who is waiting for an operation's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester {
    /// A client connected to this node.
    Client(ClientId),
    /// A peer that forwarded a client's write here.
    Peer {
        /// The forwarding node.
        node: NodeId,
        /// Its request id, echoed in the `ForwardReply`.
        request: u64,
    },
}

/// A client request this node is coordinating (a read, a write, or a write
/// forwarded to a replica), until it is answered and done.
#[derive(Debug)]
pub struct Coordinated {
    requester: Requester,
    deadline: Time,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Read {
        request: ClientRequest,
        tracker: QuorumTracker,
        merged: Versioned,
        /// What each replica answered, for read repair.
        states: BTreeMap<NodeId, Versioned>,
        /// The client has its answer; the operation stays to repair.
        answered: bool,
        /// Blocking read repair: the stale replicas written back to that
        /// have not acknowledged yet (`None` until the quorum is met).
        repairing: Option<Vec<NodeId>>,
        /// The key's replicas as this node sees them, sent along.
        placement: Placement,
    },
    Write {
        request: ClientRequest,
        tracker: QuorumTracker,
        /// The coordinator's state after the write: sent to the replicas.
        object: Versioned,
        /// The write's dot.
        dot: Dot,
        /// Fallback nodes standing in for home replicas that are down
        /// (sloppy quorum): fallback -> home replica.
        stand_ins: BTreeMap<NodeId, NodeId>,
        /// The client has its answer; the operation stays until every
        /// replica acknowledged or the deadline, then hints the rest.
        answered: bool,
        /// Nodes that will be replicas once a join or leave completes, for
        /// a sloppy write that does not count them: they get the write too,
        /// and a hint unless they acknowledge it. Each one's answer so far
        /// (`Some(true)`: acknowledged).
        pending: BTreeMap<NodeId, Option<bool>>,
        /// The key's home replicas as this node sees them, sent along.
        placement: Placement,
    },
    Forward {
        request: ClientRequest,
        candidates: Vec<NodeId>,
        tried: usize,
    },
}

impl<S: Store> Node<S> {
    /// Starts coordinating `request` for `requester`.
    pub(super) fn start(&mut self, now: Time, requester: Requester, request: ClientRequest) {
        self.stats.requests += 1;
        match self.admit(&request) {
            Ok(replicas) => {
                let timeout = request
                    .timeout_ms()
                    .map(|ms| Duration::from_millis(u64::from(ms)))
                    .unwrap_or(self.config.request_timeout);
                let id = self.fresh_request_id();
                let deadline = now + timeout;
                // A write always has a copy on its coordinator (see
                // `start_write`): a replica whose storage failed cannot
                // store one, so it forwards writes like a node that is not
                // a replica.
                let me = self.id();
                let failed = self.local.failure().is_some();
                let outcome = match request {
                    ClientRequest::Get { .. } => self.start_read(request, replicas),
                    _ if replicas.contains(&me) && !failed => {
                        match self.start_write(now, request, replicas) {
                            Ok(Ok(kind)) => Ok(kind),
                            // Its own copy failed just now: another replica
                            // coordinates the write instead.
                            Ok(Err(request)) => {
                                let replicas =
                                    self.ring.preference_list(request.key(), self.config.replication);
                                self.forward_elsewhere(now, deadline, requester, request, replicas)
                            }
                            Err(error) => Err(error),
                        }
                    }
                    _ => self.forward_elsewhere(now, deadline, requester, request, replicas),
                };
                match outcome {
                    Ok(kind) => {
                        self.operations.insert(
                            id,
                            Coordinated {
                                requester,
                                deadline,
                                kind,
                            },
                        );
                        self.set_timer(deadline, id);
                        self.send_requests(id);
                        self.check_done(now, id);
                    }
                    Err(error) => self.respond(requester, ClientResponse::Failed(error)),
                }
            }
            Err(error) => self.respond(requester, ClientResponse::Failed(error)),
        }
    }

    /// A write this node does not coordinate: forwarded to the key's other
    /// replicas, unless it was forwarded here (the forwarder tries the
    /// next one) or there are none.
    fn forward_elsewhere(
        &mut self,
        now: Time,
        deadline: Time,
        requester: Requester,
        request: ClientRequest,
        replicas: Vec<NodeId>,
    ) -> Result<Kind, RequestError> {
        let me = self.id();
        let others: Vec<NodeId> = replicas.into_iter().filter(|&n| n != me).collect();
        if matches!(requester, Requester::Peer { .. }) || others.is_empty() {
            return Err(self.cannot_coordinate());
        }
        Ok(self.start_forward(now, deadline, request, others))
    }

    /// Why this node does not coordinate a write: it is not a replica of
    /// the key, or its storage failed.
    fn cannot_coordinate(&self) -> RequestError {
        match self.local.failure() {
            Some(reason) => RequestError::StorageFailed {
                node: self.id(),
                reason: reason.to_owned(),
            },
            None => RequestError::NotReplica { node: self.id() },
        }
    }

    /// Checks limits and finds the key's replicas; nothing changes on error.
    fn admit(&self, request: &ClientRequest) -> Result<Vec<NodeId>, RequestError> {
        if !self.is_ready() {
            return Err(RequestError::NotReady { node: self.id() });
        }
        let key = request.key();
        if key.is_empty() || key.len() > self.config.max_key_bytes {
            return Err(RequestError::BadKeySize {
                size: key.len(),
                max: self.config.max_key_bytes,
            });
        }
        if let ClientRequest::Put { value, .. } = request
            && value.len() > self.config.max_value_bytes
        {
            return Err(RequestError::ValueTooLarge {
                size: value.len(),
                max: self.config.max_value_bytes,
            });
        }
        if let ClientRequest::Put { context, .. } | ClientRequest::Delete { context, .. } = request
            && let Err(reason) = context.version_vector().check()
        {
            return Err(RequestError::MalformedContext { reason });
        }
        if self.operations.len() - self.answered_ops >= self.config.max_requests_in_flight {
            return Err(RequestError::Busy {
                max: self.config.max_requests_in_flight,
            });
        }
        self.required(request)?;
        let replicas = self.ring.preference_list(key, self.config.replication);
        if replicas.is_empty() {
            return Err(RequestError::NoReplicas);
        }
        Ok(replicas)
    }

    fn required(&self, request: &ClientRequest) -> Result<usize, RequestError> {
        let access = match request {
            ClientRequest::Get { .. } => Access::Read,
            _ => Access::Write,
        };
        let consistency = request.consistency().or(self.config.default_consistency);
        consistency
            .required(access, self.config.replication)
            .map_err(|e| RequestError::ImpossibleConsistency {
                consistency,
                required: e.required,
                replication: e.replication,
            })
    }

    /// The replicas `key` will have once the join or leave under way
    /// completes, if they differ from its current `replicas`.
    fn future_replicas(&self, key: &[u8], replicas: &[NodeId]) -> Option<Vec<NodeId>> {
        let future = self
            .future_ring
            .as_ref()?
            .preference_list(key, self.config.replication);
        let same = future.len() == replicas.len() && future.iter().all(|n| replicas.contains(n));
        (!same).then_some(future)
    }

    /// A tracker for `replicas` (and, while ranges move, for `future`
    /// replicas too: see [`QuorumTracker::joint`]) in which those believed
    /// down (for a write: or whose storage failed) have already failed:
    /// the request neither waits for nor sends to them.
    fn tracker(
        &self,
        request: &ClientRequest,
        replicas: Vec<NodeId>,
        future: Option<Vec<NodeId>>,
    ) -> Result<QuorumTracker, RequestError> {
        let required = self.required(request)?;
        let mut tracker = match future {
            Some(future) => QuorumTracker::joint(required, replicas, future),
            None => QuorumTracker::new(required, replicas),
        };
        let write = !matches!(request, ClientRequest::Get { .. });
        for &node in &tracker.replicas().to_vec() {
            if !self.is_up(node) || write && !self.writable(node) {
                tracker.fail(node);
            }
        }
        Ok(tracker)
    }

    /// The key's replicas as this node sees them, given its `current`
    /// ones: sent with replica requests, checked by the replicas.
    fn placement(&self, key: &[u8], current: Vec<NodeId>) -> Placement {
        let future = self.future_replicas(key, &current);
        Placement { current, future }
    }

    /// Refuses a replica request whose coordinator's view of the key's
    /// replicas (`theirs`) lacks a join or leave this node knows of, and
    /// sends the coordinator this node's member states. No check for
    /// read repair (nothing to count) or before this node knows the ring.
    fn check_placement(
        &mut self,
        from: NodeId,
        key: &[u8],
        theirs: Option<&Placement>,
    ) -> Result<(), ReplicaError> {
        let Some(theirs) = theirs.filter(|_| self.is_ready()) else {
            return Ok(());
        };
        let ours = self.placement(key, self.ring.preference_list(key, self.config.replication));
        if ours.admits(theirs) {
            return Ok(());
        }
        self.stats.placement_refusals += 1;
        self.sync_states_to(from);
        Err(ReplicaError {
            reason: format!(
                "ring views differ: this replica sees replicas {:?} (future {:?}) for the key, the coordinator \
                 {:?} (future {:?})",
                ours.current, ours.future, theirs.current, theirs.future
            ),
        })
    }

    fn start_read(&mut self, request: ClientRequest, replicas: Vec<NodeId>) -> Result<Kind, RequestError> {
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
        Ok(Kind::Read {
            request,
            tracker,
            merged,
            states,
            answered: false,
            repairing: None,
            placement,
        })
    }

    fn start_write(
        &mut self,
        now: Time,
        request: ClientRequest,
        mut replicas: Vec<NodeId>,
    ) -> Result<Result<Kind, ClientRequest>, RequestError> {
        let placement = self.placement(request.key(), replicas.clone());
        let mut stand_ins = BTreeMap::new();
        if request.sloppy_quorum() && replicas.iter().any(|&n| !self.writable(n)) {
            let mut fallbacks = self
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
        let Some((object, dot)) = self.apply_local_write(now, &request)? else {
            return Ok(Err(request));
        };
        tracker.succeed(self.id());
        Ok(Ok(Kind::Write {
            request,
            tracker,
            object,
            dot,
            stand_ins,
            answered: false,
            pending,
            placement,
        }))
    }

    /// Applies a client write to the local state of its key and stores
    /// it: the new state and its dot, or `None` if the state could not be
    /// read or stored (storage failed; the caller has the write
    /// coordinated elsewhere). The error is a refused write; nothing was
    /// stored.
    fn apply_local_write(
        &mut self,
        now: Time,
        request: &ClientRequest,
    ) -> Result<Option<(Versioned, Dot)>, RequestError> {
        let (context, value) = match request {
            ClientRequest::Put { value, context, .. } => (context, Some(value.clone())),
            ClientRequest::Delete { context, .. } => (context, None),
            ClientRequest::Get { .. } => unreachable!("a get is not a write"),
        };
        let stored = match self.local.get(request.key()) {
            Ok(stored) => stored,
            Err(error) => {
                self.local.note_error(&error);
                return Ok(None);
            }
        };
        let mut object = stored.clone().unwrap_or_default();
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
                dot
            }
            Err(e) => {
                return Err(RequestError::TooManySiblings {
                    count: e.count,
                    max: e.max,
                });
            }
        };
        let size = super::topology::state_bytes(request.key(), &object) as usize;
        if size > self.config.max_state_bytes {
            return Err(RequestError::StateTooLarge {
                size,
                max: self.config.max_state_bytes,
            });
        }
        match self.local.put(request.key(), stored.as_ref(), &object) {
            Ok(()) => Ok(Some((object, dot))),
            Err(_) => Ok(None),
        }
    }

    fn start_forward(
        &mut self,
        now: Time,
        deadline: Time,
        request: ClientRequest,
        mut candidates: Vec<NodeId>,
    ) -> Kind {
        self.stats.forwards += 1;
        // Live replicas first, in preference order: the write goes to one.
        candidates.sort_by_key(|&n| !self.writable(n));
        let remaining = u32::try_from(deadline.saturating_since(now).as_millis()).unwrap_or(u32::MAX);
        Kind::Forward {
            request: request.with_timeout_ms(remaining),
            candidates,
            tried: 0,
        }
    }

    /// Sends an operation's first round of peer messages.
    fn send_requests(&mut self, id: u64) {
        let me = self.id();
        let Some(operation) = self.operations.get(&id) else {
            return;
        };
        let messages: Vec<(NodeId, PeerMessage)> = match &operation.kind {
            Kind::Read {
                request,
                tracker,
                placement,
                ..
            } => tracker
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
                .collect(),
            Kind::Write {
                request,
                tracker,
                object,
                stand_ins,
                pending,
                placement,
                ..
            } => tracker
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
                .collect(),
            Kind::Forward { .. } => {
                self.forward_attempt(id);
                return;
            }
        };
        for (to, message) in messages {
            self.send(to, message);
        }
    }

    /// Sends a forwarded write to the next candidate, with the time left.
    fn forward_attempt(&mut self, id: u64) {
        let Some(Coordinated {
            kind:
                Kind::Forward {
                    request,
                    candidates,
                    tried,
                    ..
                },
            ..
        }) = self.operations.get(&id)
        else {
            return;
        };
        let Some(&to) = candidates.get(*tried) else {
            return;
        };
        let message = PeerMessage::Forward {
            request: id,
            client: request.clone(),
        };
        self.send(to, message);
    }

    /// Answers and ends the operation if its quorum is met or lost.
    fn check_done(&mut self, now: Time, id: u64) {
        let Some(operation) = self.operations.get(&id) else {
            return;
        };
        let met_read = matches!(
            &operation.kind,
            Kind::Read { answered: false, tracker, .. } if tracker.is_met()
        );
        if met_read && self.repair_before_answering(id) {
            return; // Answered once the repairs are acknowledged.
        }
        let Some(operation) = self.operations.get(&id) else {
            return;
        };
        let response = match &operation.kind {
            Kind::Read {
                answered: true,
                tracker,
                ..
            } => {
                if tracker.is_complete() {
                    self.read_repair(id);
                }
                return;
            }
            Kind::Read { tracker, merged, .. } if tracker.is_met() => {
                let response = found(merged);
                let requester = operation.requester;
                if let Some(Coordinated {
                    kind: Kind::Read {
                        answered, tracker, ..
                    },
                    ..
                }) = self.operations.get_mut(&id)
                {
                    *answered = true;
                    self.answered_ops += 1;
                    let complete = tracker.is_complete();
                    self.respond(requester, response);
                    if complete {
                        self.read_repair(id);
                    }
                }
                return;
            }
            Kind::Write {
                answered: true,
                tracker,
                pending,
                ..
            } => {
                if all_answered(tracker, pending) {
                    self.end_write(now, id);
                }
                return;
            }
            Kind::Write {
                tracker, object, dot, ..
            } if tracker.is_met() => {
                let response = ClientResponse::Written {
                    context: Context(object.clock().clone()),
                    dot: *dot,
                };
                self.answer_write(now, id, response);
                return;
            }
            Kind::Write { request, tracker, .. } if tracker.is_lost() && tracker.is_complete() => {
                let response = quorum_not_met(request, tracker);
                self.answer_write(now, id, response);
                return;
            }
            // Lost, and every live replica has answered: fail now, with a
            // true count, instead of waiting for the deadline.
            Kind::Read { request, tracker, .. } if tracker.is_lost() && tracker.is_complete() => {
                Some(quorum_not_met(request, tracker))
            }
            _ => None,
        };
        if let Some(response) = response {
            self.finish(id, response);
        }
    }

    /// Blocking read repair (`read_repair_blocking`): once a read's quorum
    /// is met, writes the merged state back to the replicas that answered
    /// differently and holds the answer until they acknowledge (or the
    /// deadline). True while it waits.
    fn repair_before_answering(&mut self, id: u64) -> bool {
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
                    ..
                },
            ..
        }) = self.operations.get_mut(&id)
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
    fn write_back(&mut self, request: u64, node: NodeId, key: &[u8], merged: &Versioned) {
        self.stats.read_repairs += 1;
        if node == self.id() {
            // A failed local repair is retried by the next read.
            let _ = self.merge_local(key, merged);
        } else {
            let message = PeerMessage::ReplicaPut {
                request,
                key: key.to_vec(),
                object: merged.clone(),
                placement: None,
            };
            self.send(node, message);
        }
    }

    /// Answers a write's requester; the write stays until every replica
    /// acknowledged or its deadline, to hint those that did not.
    fn answer_write(&mut self, now: Time, id: u64, response: ClientResponse) {
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
        }) = self.operations.get_mut(&id)
        else {
            return;
        };
        *answered = true;
        self.answered_ops += 1;
        let (requester, complete) = (*requester, all_answered(tracker, pending));
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
    fn end_write(&mut self, now: Time, id: u64) {
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

    /// Removes an operation and its deadline timer.
    fn take_operation(&mut self, id: u64) -> Option<Coordinated> {
        let operation = self.operations.remove(&id)?;
        self.timers.remove(&(operation.deadline, id));
        if matches!(
            operation.kind,
            Kind::Read { answered: true, .. } | Kind::Write { answered: true, .. }
        ) {
            self.answered_ops -= 1;
        }
        Some(operation)
    }

    /// Ends an answered read: writes the merged state back to every
    /// replica that answered with something else. The merged state holds
    /// only siblings some replica had, so nothing is invented.
    fn read_repair(&mut self, id: u64) {
        let Some(operation) = self.take_operation(id) else {
            return;
        };
        let Kind::Read {
            request,
            merged,
            states,
            ..
        } = operation.kind
        else {
            unreachable!("only reads are repaired")
        };
        if !self.config.read_repair {
            return;
        }
        for (node, state) in states {
            if state != merged {
                self.write_back(0, node, request.key(), &merged);
            }
        }
    }

    /// Removes the operation and sends its answer.
    fn finish(&mut self, id: u64, response: ClientResponse) {
        if let Some(operation) = self.take_operation(id) {
            if matches!(
                response,
                ClientResponse::Failed(RequestError::QuorumNotMet { .. })
            ) {
                self.stats.quorum_failures += 1;
            }
            self.respond(operation.requester, response);
        }
    }

    fn respond(&mut self, requester: Requester, response: ClientResponse) {
        match requester {
            Requester::Client(client) => self.outputs.push_back(Output::Reply { client, response }),
            Requester::Peer { node, request } => {
                self.send(node, PeerMessage::ForwardReply { request, response })
            }
        }
    }

    /// An operation's deadline: an unanswered one fails with what it got;
    /// an answered read repairs with the replies it has.
    pub(super) fn on_timer(&mut self, now: Time, id: u64) {
        let Some(operation) = self.operations.get(&id) else {
            return;
        };
        if now < operation.deadline {
            return;
        }
        let response = match &operation.kind {
            Kind::Read { answered: true, .. } => {
                self.read_repair(id);
                return;
            }
            Kind::Write { answered: true, .. } => {
                self.end_write(now, id);
                return;
            }
            Kind::Write { request, tracker, .. } => {
                let response = quorum_not_met(request, tracker);
                self.answer_write(now, id, response);
                self.end_write(now, id);
                return;
            }
            Kind::Read { tracker, .. } if tracker.is_met() => {
                // Blocking repairs unanswered by the deadline: answer now.
                if let Some(Coordinated {
                    kind: Kind::Read { repairing, .. },
                    ..
                }) = self.operations.get_mut(&id)
                {
                    *repairing = Some(Vec::new());
                }
                self.check_done(now, id);
                // The deadline: repair the rest with what came in.
                self.read_repair(id);
                return;
            }
            Kind::Read { request, tracker, .. } => quorum_not_met(request, tracker),
            Kind::Forward { tried, .. } => {
                ClientResponse::Failed(RequestError::ForwardFailed { tried: tried + 1 })
            }
        };
        self.finish(id, response);
    }

    /// Moves a forwarded write on to the next replica after an explicit
    /// refusal (nothing was applied there), if any replica is left.
    fn next_forward_candidate(&mut self, now: Time, id: u64, deadline: Time) {
        let Some(Coordinated {
            kind:
                Kind::Forward {
                    request,
                    candidates,
                    tried,
                },
            ..
        }) = self.operations.get_mut(&id)
        else {
            return;
        };
        if *tried + 1 >= candidates.len() {
            return; // Nobody else to try: the deadline will answer.
        }
        *tried += 1;
        let remaining = deadline.saturating_since(now).as_millis();
        *request = request
            .clone()
            .with_timeout_ms(u32::try_from(remaining).unwrap_or(u32::MAX));
        self.forward_attempt(id);
    }

    /// A coordinator asks for this replica's state of `key`.
    pub(super) fn on_replica_get(
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
    pub(super) fn on_replica_put(
        &mut self,
        from: NodeId,
        request: u64,
        key: &[u8],
        object: &Versioned,
        placement: Option<&Placement>,
    ) {
        self.stats.replica_ops += 1;
        let result = self
            .check_placement(from, key, placement)
            .and_then(|()| self.merge_local(key, object).map(|_| ()).map_err(replica_error));
        self.send(from, PeerMessage::ReplicaPutReply { request, result });
    }

    /// A replica's state for a read this node coordinates.
    pub(super) fn on_replica_get_reply(
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
        }) = self.operations.get_mut(&request)
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
            self.check_done(now, request);
        }
    }

    /// A replica stored a write (or a read repair) this node coordinates,
    /// or could not.
    pub(super) fn on_replica_put_reply(
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
        }) = self.operations.get_mut(&request)
        {
            waiting.retain(|&n| n != from);
            self.check_done(now, request);
        } else if let Some(Coordinated {
            kind: Kind::Write { tracker, pending, .. },
            ..
        }) = self.operations.get_mut(&request)
        {
            match (pending.get_mut(&from), result) {
                (Some(answer), result) => *answer = Some(result.is_ok()),
                (None, Ok(())) => tracker.succeed(from),
                (None, Err(_)) => tracker.fail(from),
            }
            self.check_done(now, request);
        }
    }

    /// A peer forwards a client's write for this node to coordinate.
    pub(super) fn on_forward(&mut self, now: Time, from: NodeId, request: u64, client: ClientRequest) {
        if self.first_time_forwarded(now, from, request) {
            self.start(now, Requester::Peer { node: from, request }, client);
        }
    }

    /// A coordinator asks this node to keep a hint for `target` (or to
    /// store the write, if `target` is this node).
    pub(super) fn on_hinted_put(&mut self, now: Time, from: NodeId, request: u64, put: HintedPut) {
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
                    return self.merge_local(&key, &object).map(|_| ()).map_err(replica_error);
                }
                match self.store_hint(now, target, &key, &object, &written_to) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(ReplicaError {
                        reason: format!("no hint stored for {target}: over the hint limits"),
                    }),
                    Err(error) => Err(replica_error(error)),
                }
            });
        self.send(from, PeerMessage::ReplicaPutReply { request, result });
    }

    /// Whether this forwarded write is new; a duplicate (the network
    /// repeated it) is dropped, since applying it again would make a second
    /// version of one client write. Entries live [`FORWARD_MEMORY`].
    fn first_time_forwarded(&mut self, now: Time, from: NodeId, request: u64) -> bool {
        while let Some(&(at, node, id)) = self.forwards_expiry.first()
            && at <= now
        {
            self.forwards_expiry.remove(&(at, node, id));
            self.forwards_seen.remove(&(node, id));
        }
        if self.forwards_seen.contains_key(&(from, request)) {
            return false;
        }
        while self.forwards_seen.len() >= MAX_FORWARDS_REMEMBERED
            && let Some((_, node, id)) = self.forwards_expiry.pop_first()
        {
            self.forwards_seen.remove(&(node, id));
        }
        let expires = now + FORWARD_MEMORY;
        self.forwards_seen.insert((from, request), expires);
        self.forwards_expiry.insert((expires, from, request));
        true
    }

    pub(super) fn on_forward_reply(&mut self, now: Time, from: NodeId, id: u64, response: ClientResponse) {
        let Some(Coordinated {
            kind: Kind::Forward {
                candidates, tried, ..
            },
            deadline,
            ..
        }) = self.operations.get(&id)
        else {
            return;
        };
        if candidates.get(*tried) != Some(&from) && !candidates[..*tried].contains(&from) {
            return; // Not from a node this write was sent to.
        }
        let deadline = *deadline;
        let refused = matches!(
            response,
            ClientResponse::Failed(
                RequestError::NotReplica { .. }
                    | RequestError::NotReady { .. }
                    | RequestError::StorageFailed { .. }
            )
        );
        if refused && *tried + 1 < candidates.len() {
            self.next_forward_candidate(now, id, deadline);
            return;
        }
        self.finish(id, response);
    }

    /// Merges many states into the local ones, writing the changed ones in
    /// one batch; how many keys changed. A key may come more than once.
    pub(super) fn merge_many(&mut self, states: &[KeyState]) -> Result<usize, StoreError> {
        // Key -> (state before, merged state, changed).
        let mut merged: BTreeMap<&[u8], (Option<Versioned>, Versioned, bool)> = BTreeMap::new();
        for KeyState { key, object } in states {
            let entry = match merged.entry(key.as_slice()) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => {
                    let stored = self.local.get(key)?;
                    let local = stored.clone().unwrap_or_default();
                    entry.insert((stored, local, false))
                }
            };
            entry.2 |= entry.1.merge_from(object);
        }
        merged.retain(|_, (_, _, changed)| *changed);
        let writes: Vec<super::local::Write<'_>> = merged
            .iter()
            .map(|(k, (old, new, _))| (*k, old.as_ref(), new))
            .collect();
        self.local.put_many(&writes)?;
        Ok(merged.len())
    }

    /// Merges a peer's state of `key` into ours; true if ours changed.
    pub(super) fn merge_local(&mut self, key: &[u8], object: &Versioned) -> Result<bool, StoreError> {
        let stored = self.local.get(key)?;
        let mut local = stored.clone().unwrap_or_default();
        let changed = local.merge_from(object);
        if changed {
            self.local.put(key, stored.as_ref(), &local)?;
        }
        Ok(changed)
    }
}

/// Whether every node a write went to has answered.
fn all_answered(tracker: &QuorumTracker, pending: &BTreeMap<NodeId, Option<bool>>) -> bool {
    tracker.is_complete() && pending.values().all(Option::is_some)
}

/// Every node a write goes to (its replicas, their stand-ins and the
/// future replicas it does not count), sorted: what its hints record as
/// [`written_to`](super::store::Hint::written_to).
fn written_to(tracker: &QuorumTracker, pending: &BTreeMap<NodeId, Option<bool>>) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = tracker.replicas().iter().chain(pending.keys()).copied().collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

fn replica_error(error: StoreError) -> super::message::ReplicaError {
    super::message::ReplicaError {
        reason: error.to_string(),
    }
}

fn found(merged: &Versioned) -> ClientResponse {
    ClientResponse::Found {
        values: merged
            .values()
            .map(|s| Value {
                value: s.value.clone().expect("values() yields live siblings"),
                timestamp_ms: s.timestamp_ms,
            })
            .collect(),
        context: Context(merged.clock().clone()),
    }
}

fn quorum_not_met(request: &ClientRequest, tracker: &QuorumTracker) -> ClientResponse {
    let operation: Operation = request.operation();
    ClientResponse::Failed(RequestError::QuorumNotMet {
        operation,
        consistency: request.consistency(),
        succeeded: tracker.succeeded(),
        required: tracker.required(),
        replicas: tracker.replicas().len(),
    })
}

/// What a [`PeerMessage::HintedPut`] carries besides its request id.
pub(super) struct HintedPut {
    pub key: Vec<u8>,
    pub object: Versioned,
    pub target: NodeId,
    pub placement: Option<Placement>,
    pub written_to: Vec<NodeId>,
}
