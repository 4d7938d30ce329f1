//! Listings: a page of keys in byte order.
//!
//! Keys are placed by hash, so the coordinator asks every node that
//! replicates some range of the ring (and, while a join or leave is under
//! way, of the future ring) for its first states from the page's start.
//! Each replica scans its store in key order and answers with at most
//! `limit` states, tombstones included, and whether that was all it has up
//! to the end. The page is complete once every range has R answers from
//! its replicas. Only keys up to the smallest point every answer covers
//! are certain (a replica that stopped early knows nothing past its last
//! key), so the page merges the answered states of keys up to there,
//! leaves out deleted keys and the cluster's own records, and returns the
//! first `limit`; `next` says where to go on from.
//!
//! With R + W > N and strict quorums, a listing that starts after a write
//! was acknowledged shows its key (R replicas of the key's range include
//! one that has the write), and does not show a key whose delete was
//! acknowledged (that replica's tombstone is merged in).

use super::{Coordinated, Kind, Requester};
use crate::proto::Node;
use crate::proto::message::{
    ClientResponse, Context, KeyState, ListRequest, ListedKey, ListedStates, MAX_LIST_LIMIT, Operation,
    PeerMessage, ReplicaError, RequestError, SYSTEM_KEY_PREFIX, Value, is_system_key,
};
use crate::proto::quorum::{Access, QuorumTracker};
use crate::proto::store::{Store, StoreError};
use crate::proto::types::{NodeId, Time};
use crate::proto::version::Versioned;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Most bytes of states a replica puts in one listing answer (more than
/// this only when its first state alone is larger): far below any frame
/// limit, so an answer is never too large to send.
const ANSWER_BUDGET: usize = 512 * 1024;

/// Most states a replica scans for one answer, in units of its limit: a
/// run of tombstones makes an answer stop early rather than scan on.
pub const SCAN_FACTOR: usize = 4;

/// A listing being gathered.
#[derive(Debug)]
pub(super) struct Listing {
    request: ListRequest,
    /// One per distinct replica set of the ring's ranges.
    trackers: Vec<QuorumTracker>,
    /// What each replica answered.
    answers: BTreeMap<NodeId, ListedStates>,
}

impl Listing {
    /// Every node asked.
    fn nodes(&self) -> BTreeSet<NodeId> {
        self.trackers
            .iter()
            .flat_map(|t| t.replicas().iter().copied())
            .collect()
    }

    fn record(&mut self, from: NodeId, answer: Result<ListedStates, ()>) {
        match answer {
            Ok(states) => {
                self.answers.insert(from, states);
                self.trackers.iter_mut().for_each(|t| t.succeed(from));
            }
            Err(()) => self.trackers.iter_mut().for_each(|t| t.fail(from)),
        }
    }

    fn is_met(&self) -> bool {
        self.trackers.iter().all(QuorumTracker::is_met)
    }

    /// Lost on some range, and every node asked has answered.
    fn is_lost(&self) -> bool {
        self.trackers.iter().any(QuorumTracker::is_lost)
            && self.trackers.iter().all(QuorumTracker::is_complete)
    }

    /// The failure: the range with the fewest answers.
    fn quorum_not_met(&self) -> ClientResponse {
        let worst = self
            .trackers
            .iter()
            .min_by_key(|t| (t.succeeded() as i64 - t.required() as i64, t.replicas().len()));
        ClientResponse::Failed(RequestError::QuorumNotMet {
            operation: Operation::List,
            consistency: self.request.consistency,
            succeeded: worst.map_or(0, QuorumTracker::succeeded),
            required: worst.map_or(0, QuorumTracker::required),
            replicas: worst.map_or(0, |t| t.replicas().len()),
        })
    }
}

impl<S: Store> Node<S> {
    /// Starts a listing for `requester`.
    pub(in crate::proto) fn start_list(&mut self, now: Time, requester: Requester, request: ListRequest) {
        self.stats.requests += 1;
        let trackers = match self.admit_list(&request) {
            Ok(trackers) => trackers,
            Err(error) => return self.respond(requester, ClientResponse::Failed(error)),
        };
        let timeout = request
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms)))
            .unwrap_or(self.config.request_timeout);
        let mut listing = Listing {
            request,
            trackers,
            answers: BTreeMap::new(),
        };
        let me = self.id();
        let nodes = listing.nodes();
        if nodes.contains(&me) {
            let request = &listing.request;
            let local = self.list_local(&request.start, request.end.as_deref(), request.limit);
            listing.record(me, local.map_err(|_| ()));
        }
        let id = self.requests.fresh_id();
        let peers: Vec<NodeId> = nodes.into_iter().filter(|&n| n != me && self.is_up(n)).collect();
        for node in peers {
            let request = &listing.request;
            let message = PeerMessage::ReplicaList {
                request: id,
                start: request.start.clone(),
                end: request.end.clone(),
                limit: request.limit,
            };
            self.send(node, message);
        }
        let operation = Coordinated {
            requester,
            deadline: now + timeout,
            kind: Kind::List(Box::new(listing)),
        };
        self.requests.insert(id, operation);
        self.check_list_done(now, id);
    }

    /// Checks a listing's limit and bounds and finds the replica sets of
    /// the ring's ranges; nothing changes on error.
    fn admit_list(&self, request: &ListRequest) -> Result<Vec<QuorumTracker>, RequestError> {
        if !self.is_ready() {
            return Err(RequestError::NotReady { node: self.id() });
        }
        let invalid = |reason: String| Err(RequestError::InvalidListing { reason });
        if request.limit == 0 || request.limit > MAX_LIST_LIMIT {
            return invalid(format!(
                "a limit of {} is outside 1..={MAX_LIST_LIMIT}",
                request.limit
            ));
        }
        // A bound may be one byte longer than a key: the key after one.
        let max = self.config.max_key_bytes + 1;
        for bound in std::iter::once(&request.start).chain(&request.end) {
            if bound.len() > max {
                return invalid(format!("a bound of {} bytes is longer than {max}", bound.len()));
            }
        }
        if request.end.as_ref().is_some_and(|end| *end <= request.start) {
            return invalid("the end is not after the start".to_string());
        }
        if self.requests.unanswered() >= self.config.max_requests_in_flight {
            return Err(RequestError::Busy {
                max: self.config.max_requests_in_flight,
            });
        }
        let consistency = request.consistency.or(self.config.default_consistency);
        let required = consistency
            .required(Access::Read, self.config.replication)
            .map_err(|e| RequestError::ImpossibleConsistency {
                consistency,
                required: e.required,
                replication: e.replication,
            })?;
        let n = self.config.replication;
        let mut sets: BTreeSet<Vec<NodeId>> = BTreeSet::new();
        for ring in std::iter::once(&self.view.ring).chain(self.view.future_ring.as_ref()) {
            for (_, _, mut replicas) in ring.ranges(n) {
                replicas.sort_unstable();
                sets.insert(replicas);
            }
        }
        if sets.is_empty() {
            return Err(RequestError::NoReplicas);
        }
        Ok(sets
            .into_iter()
            .map(|replicas| {
                let mut tracker = QuorumTracker::new(required, replicas);
                for node in tracker.replicas().to_vec() {
                    if !self.is_up(node) {
                        tracker.fail(node);
                    }
                }
                tracker
            })
            .collect())
    }

    /// This node's first states in `start..end`, enough to hold `limit`
    /// live keys (its tombstones come along but do not count), and fewer
    /// past [`ANSWER_BUDGET`] bytes or [`SCAN_FACTOR`] times `limit`
    /// states scanned.
    fn list_local(
        &mut self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: u32,
    ) -> Result<ListedStates, StoreError> {
        let limit = limit.clamp(1, MAX_LIST_LIMIT) as usize;
        let mut states: Vec<KeyState> = Vec::new();
        let (mut live, mut bytes) = (0, 0);
        let mut from = start.to_vec();
        loop {
            let scanned = self.local.scan(&from, limit)?;
            let exhausted = scanned.len() < limit;
            for (key, object) in scanned {
                if end.is_some_and(|end| key.as_slice() >= end) {
                    return Ok(ListedStates {
                        states,
                        complete: true,
                    });
                }
                let size = crate::proto::store::state_bytes(&key, &object) as usize;
                let full = live == limit || states.len() == SCAN_FACTOR * limit;
                if full || !states.is_empty() && bytes + size > ANSWER_BUDGET {
                    return Ok(ListedStates {
                        states,
                        complete: false,
                    });
                }
                bytes += size;
                live += usize::from(!object.is_deleted());
                states.push(KeyState { key, object });
            }
            match states.last() {
                Some(last) if !exhausted => from = crate::proto::message::after(&last.key),
                _ => {
                    return Ok(ListedStates {
                        states,
                        complete: exhausted,
                    });
                }
            }
        }
    }

    /// A coordinator asks for this replica's first states of a listing.
    pub(in crate::proto) fn on_replica_list(
        &mut self,
        from: NodeId,
        request: u64,
        start: &[u8],
        end: Option<&[u8]>,
        limit: u32,
    ) {
        self.stats.replica_ops += 1;
        let result = self
            .list_local(start, end, limit)
            .map_err(super::replica::replica_error);
        self.send(from, PeerMessage::ReplicaListReply { request, result });
    }

    /// A replica answered a listing. An answer with keys outside the
    /// listing's range counts as a failure.
    pub(in crate::proto) fn on_replica_list_reply(
        &mut self,
        now: Time,
        from: NodeId,
        request: u64,
        result: Result<ListedStates, ReplicaError>,
    ) {
        let Some(Coordinated {
            kind: Kind::List(listing),
            ..
        }) = self.requests.get_mut(&request)
        else {
            return;
        };
        if !listing.nodes().contains(&from) || listing.answers.contains_key(&from) {
            return;
        }
        let answer = result
            .ok()
            .filter(|states| within(&listing.request, states))
            .ok_or(());
        listing.record(from, answer);
        self.check_list_done(now, request);
    }

    /// Answers a listing whose every range is met, or fails one that is
    /// lost with every node heard.
    pub(super) fn check_list_done(&mut self, now: Time, id: u64) {
        let response = match self.requests.get(&id).map(|o| &o.kind) {
            Some(Kind::List(listing)) if listing.is_met() => {
                page(listing, self.expiry_clock(now).as_millis())
            }
            Some(Kind::List(listing)) if listing.is_lost() => listing.quorum_not_met(),
            _ => return,
        };
        self.finish(id, response);
    }

    /// A listing's deadline passed unanswered.
    pub(super) fn list_timed_out(&mut self, id: u64) {
        if let Some(Coordinated {
            kind: Kind::List(listing),
            ..
        }) = self.requests.get(&id)
        {
            let response = listing.quorum_not_met();
            self.finish(id, response);
        }
    }
}

/// Whether a replica's answer keeps to the listing: keys in its range.
fn within(request: &ListRequest, answer: &ListedStates) -> bool {
    let (Some(first), Some(last)) = (answer.states.first(), answer.states.last()) else {
        return true;
    };
    first.key >= request.start && request.end.as_ref().is_none_or(|end| last.key < *end)
}

/// The page the answers make at `now_ms`: keys with a live value (expired
/// values count as absent, as a read's do).
fn page(listing: &Listing, now_ms: u64) -> ClientResponse {
    let request = &listing.request;
    // Past the last key of an answer that stopped early, nothing is known.
    let bound: Option<&[u8]> = listing
        .answers
        .values()
        .filter(|a| !a.complete)
        .filter_map(|a| a.states.last().map(|s| s.key.as_slice()))
        .min();
    let mut merged: BTreeMap<&[u8], Versioned> = BTreeMap::new();
    for answer in listing.answers.values() {
        for state in &answer.states {
            if bound.is_some_and(|bound| state.key.as_slice() > bound) {
                break;
            }
            merged.entry(&state.key).or_default().merge_from(&state.object);
        }
    }
    // The cluster's own records only for a listing of them.
    let system = request.start.starts_with(SYSTEM_KEY_PREFIX);
    let mut live = merged
        .into_iter()
        .filter(|(key, object)| !object.is_deleted_at(now_ms) && (system || !is_system_key(key)))
        .peekable();
    let mut keys = Vec::new();
    while keys.len() < request.limit as usize {
        let Some((key, object)) = live.next() else {
            break;
        };
        keys.push(listed(key, &object, request.values, now_ms));
    }
    let next = match (keys.last(), live.peek().is_some() || bound.is_some()) {
        // Full, and more may follow.
        (Some(last), true) if keys.len() == request.limit as usize => Some(last.key.clone()),
        // Short of the limit: everything up to the bound was seen.
        _ => bound.map(<[u8]>::to_vec),
    };
    ClientResponse::Listed { keys, next }
}

fn listed(key: &[u8], object: &Versioned, with_values: bool, now_ms: u64) -> ListedKey {
    let values = if with_values {
        object
            .values_at(now_ms)
            .map(|s| Value {
                value: s.value.clone().unwrap_or_default(),
                timestamp_ms: s.timestamp_ms,
            })
            .collect()
    } else {
        Vec::new()
    };
    ListedKey {
        key: key.to_vec(),
        values,
        context: Context(object.clock().clone()),
    }
}
