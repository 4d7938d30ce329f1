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
//!
//! This module starts requests, tracks them to their answer and deadline,
//! and sends their replica requests; `read`, `write` and `forward`
//! hold what is particular to each kind, and `replica` the side a node
//! serves for a peer's request.

use super::message::{ClientRequest, ClientResponse, Operation, PeerMessage, Placement, RequestError};
use super::quorum::{Access, QuorumTracker};
use super::store::Store;
use super::types::{NodeId, Time};
use super::version::{Dot, Versioned};
use super::{ClientId, Node, Output};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

mod forward;
pub(super) mod list;
mod read;
pub(super) use read::found;
mod replica;
mod write;

/// The client requests this node coordinates or forwards, each until it
/// is done, with their deadlines.
pub(super) struct Requests {
    next_id: u64,
    operations: BTreeMap<u64, Coordinated>,
    deadlines: BTreeSet<(Time, u64)>,
    /// Operations whose requester has its answer; they stay to repair
    /// (reads) or to hint replicas that have not acknowledged (writes) and
    /// do not count toward the in-flight limit.
    answered: usize,
    forwards: forward::Forwards,
}

impl Requests {
    /// No requests; ids are issued from `first_id` on (a random start, so
    /// a restarted node's ids do not repeat ones peers may still remember
    /// for forward deduplication).
    pub(super) fn new(first_id: u64) -> Requests {
        Requests {
            next_id: first_id,
            operations: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            answered: 0,
            forwards: forward::Forwards::default(),
        }
    }

    /// Requests in flight, answered ones included.
    pub(super) fn len(&self) -> usize {
        self.operations.len()
    }

    /// Requests in flight whose requester waits for its answer.
    fn unanswered(&self) -> usize {
        self.operations.len() - self.answered
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn insert(&mut self, id: u64, operation: Coordinated) {
        self.deadlines.insert((operation.deadline, id));
        self.operations.insert(id, operation);
    }

    fn get(&self, id: &u64) -> Option<&Coordinated> {
        self.operations.get(id)
    }

    fn get_mut(&mut self, id: &u64) -> Option<&mut Coordinated> {
        self.operations.get_mut(id)
    }

    /// One more operation's requester has its answer.
    fn note_answered(&mut self) {
        self.answered += 1;
    }

    /// Removes an operation and its deadline.
    fn remove(&mut self, id: u64) -> Option<Coordinated> {
        let operation = self.operations.remove(&id)?;
        self.deadlines.remove(&(operation.deadline, id));
        if operation.is_answered() {
            self.answered -= 1;
        }
        Some(operation)
    }

    /// Every operation has its deadline listed and no other deadline is;
    /// the answered count is the operations answered.
    pub(super) fn check(&self) -> Result<(), String> {
        let listed: BTreeSet<(Time, u64)> = self.operations.iter().map(|(&id, o)| (o.deadline, id)).collect();
        if listed != self.deadlines {
            return Err(format!(
                "deadlines {:?} differ from the operations' {listed:?}",
                self.deadlines
            ));
        }
        let answered = self.operations.values().filter(|o| o.is_answered()).count();
        if answered != self.answered {
            return Err(format!(
                "{answered} operations answered, {} counted",
                self.answered
            ));
        }
        Ok(())
    }

    /// The earliest deadline.
    pub(super) fn poll_timeout(&self) -> Option<Time> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// An operation whose deadline has come at `now`, taken off the
    /// deadline list (it stays in flight until it is removed).
    pub(super) fn take_due(&mut self, now: Time) -> Option<u64> {
        let &(at, id) = self.deadlines.first()?;
        if at > now {
            return None;
        }
        self.deadlines.remove(&(at, id));
        Some(id)
    }
}

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

impl Coordinated {
    /// Whether its requester has the answer (a read that stays to repair,
    /// a write that stays to hint).
    fn is_answered(&self) -> bool {
        matches!(
            self.kind,
            Kind::Read { answered: true, .. } | Kind::Write { answered: true, .. }
        )
    }
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
        /// [`Fanout::Needed`]: the other replicas asked so far (`None`:
        /// every replica that is up was asked).
        asked: Option<BTreeSet<NodeId>>,
    },
    Write {
        request: ClientRequest,
        tracker: QuorumTracker,
        /// The coordinator's state after the write: sent to the replicas
        /// (one copy shared by their messages).
        object: std::sync::Arc<Versioned>,
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
        /// A replica that refused the write for want of memory (a memory
        /// node at its limit), and its limit: if the quorum is lost, the
        /// client is told so rather than only that it was not met.
        out_of_memory: Option<(NodeId, u64)>,
    },
    Forward {
        request: ClientRequest,
        candidates: Vec<NodeId>,
        tried: usize,
    },
    List(Box<list::Listing>),
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
                let id = self.requests.fresh_id();
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
                                let replicas = self
                                    .view
                                    .ring
                                    .preference_list(request.key(), self.config.replication);
                                self.forward_elsewhere(now, deadline, requester, request, replicas)
                            }
                            Err(error) => Err(error),
                        }
                    }
                    _ => self.forward_elsewhere(now, deadline, requester, request, replicas),
                };
                match outcome {
                    Ok(kind) => {
                        self.requests.insert(
                            id,
                            Coordinated {
                                requester,
                                deadline,
                                kind,
                            },
                        );
                        self.send_requests(id);
                        self.check_done(now, id);
                    }
                    Err(error) => self.respond(requester, ClientResponse::Failed(error)),
                }
            }
            Err(error) => self.respond(requester, ClientResponse::Failed(error)),
        }
    }

    /// The time against which values' expiry is judged when serving them:
    /// `now`, or the epoch (nothing expired) under `debug_ignore_expiry`.
    pub(in crate::proto) fn expiry_clock(&self, now: Time) -> Time {
        if self.config.debug_ignore_expiry {
            Time::ZERO
        } else {
            now
        }
    }

    /// The first checks of a request for `key`: this node knows the ring,
    /// and the key's size is within the limit.
    pub(in crate::proto) fn admit_key(&self, key: &[u8]) -> Result<(), RequestError> {
        if !self.is_ready() {
            return Err(RequestError::NotReady { node: self.id() });
        }
        if key.is_empty() || key.len() > self.config.max_key_bytes {
            return Err(RequestError::BadKeySize {
                size: key.len(),
                max: self.config.max_key_bytes,
            });
        }
        Ok(())
    }

    /// Checks limits and finds the key's replicas; nothing changes on error.
    fn admit(&self, request: &ClientRequest) -> Result<Vec<NodeId>, RequestError> {
        let key = request.key();
        self.admit_key(key)?;
        if let ClientRequest::Put { value, .. } = request
            && value.len() > self.config.max_value_bytes
        {
            return Err(RequestError::ValueTooLarge {
                size: value.len(),
                max: self.config.max_value_bytes,
            });
        }
        if let ClientRequest::Put {
            ttl_ms: Some(ttl_ms), ..
        } = *request
        {
            let millis = crate::proto::types::millis;
            let (min_ms, max_ms) = (millis(self.config.min_ttl), millis(self.config.max_ttl));
            if !(min_ms..=max_ms).contains(&ttl_ms) {
                return Err(RequestError::BadTtl {
                    ttl_ms,
                    min_ms,
                    max_ms,
                });
            }
        }
        if let ClientRequest::Put { context, .. } | ClientRequest::Delete { context, .. } = request
            && let Err(reason) = context.version_vector().check()
        {
            return Err(RequestError::MalformedContext { reason });
        }
        if self.requests.unanswered() >= self.config.max_requests_in_flight {
            return Err(RequestError::Busy {
                max: self.config.max_requests_in_flight,
            });
        }
        self.required(request)?;
        let replicas = self.view.ring.preference_list(key, self.config.replication);
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
            .view
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

    /// Sends an operation's first round of peer messages.
    fn send_requests(&mut self, id: u64) {
        let Some(operation) = self.requests.get(&id) else {
            return;
        };
        let messages = match &operation.kind {
            Kind::Read { asked: Some(_), .. } => {
                self.ask_needed(id);
                return;
            }
            Kind::Read {
                request,
                tracker,
                placement,
                ..
            } => self.read_requests(id, request, tracker, placement),
            Kind::Write { .. } => self.write_requests(id),
            Kind::Forward { .. } => {
                self.forward_attempt(id);
                return;
            }
            // Sent when it starts.
            Kind::List(_) => return,
        };
        for (to, message) in messages {
            self.send(to, message);
        }
    }

    /// Answers and ends the operation if its quorum is met or lost.
    fn check_done(&mut self, now: Time, id: u64) {
        match self.requests.get(&id).map(|o| &o.kind) {
            Some(Kind::Read { .. }) => self.check_read_done(now, id),
            Some(Kind::Write { .. }) => self.check_write_done(now, id),
            Some(Kind::List(_)) => self.check_list_done(now, id),
            Some(Kind::Forward { .. }) | None => {}
        }
    }

    /// Removes an operation and its deadline timer.
    fn take_operation(&mut self, id: u64) -> Option<Coordinated> {
        self.requests.remove(id)
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
        let Some(operation) = self.requests.get(&id) else {
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
            Kind::Write {
                request,
                tracker,
                out_of_memory,
                ..
            } => {
                let response = write_failed(request, tracker, *out_of_memory);
                self.answer_write(now, id, response);
                self.end_write(now, id);
                return;
            }
            Kind::Read { tracker, .. } if tracker.is_met() => {
                // Blocking repairs unanswered by the deadline: answer now.
                if let Some(Coordinated {
                    kind: Kind::Read { repairing, .. },
                    ..
                }) = self.requests.get_mut(&id)
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
            Kind::List(_) => {
                self.list_timed_out(id);
                return;
            }
        };
        self.finish(id, response);
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

/// Why a write's quorum was lost: a replica out of memory, if one said
/// so, or the quorum not met.
fn write_failed(
    request: &ClientRequest,
    tracker: &QuorumTracker,
    out_of_memory: Option<(NodeId, u64)>,
) -> ClientResponse {
    match out_of_memory {
        Some((node, max)) => ClientResponse::Failed(RequestError::OutOfMemory { node, max }),
        None => quorum_not_met(request, tracker),
    }
}

/// What a [`PeerMessage::HintedPut`] carries besides its request id.
pub(super) struct HintedPut {
    pub key: Vec<u8>,
    pub object: Versioned,
    pub target: NodeId,
    pub placement: Option<Placement>,
    pub written_to: Vec<NodeId>,
}
