//! Forwarding: a node that cannot coordinate a write (not a replica of the
//! key, or its storage failed) forwards it to one replica at a time, and to
//! the next only after an explicit refusal; a replica remembers forwarded
//! requests so that a repeated message is not applied twice.

use super::{Coordinated, Kind, Requester};
use crate::proto::Node;
use crate::proto::message::{ClientRequest, ClientResponse, PeerMessage, RequestError};
use crate::proto::store::Store;
use crate::proto::types::{NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};
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

/// Forwarded writes seen, by (forwarder, its request id), until their
/// expiry: a repeat must not be applied twice.
#[derive(Default)]
pub(super) struct Forwards {
    seen: BTreeMap<(NodeId, u64), Time>,
    expiry: BTreeSet<(Time, NodeId, u64)>,
}

impl Forwards {
    /// Whether `from`'s forwarded request `request` is new, remembering it
    /// for [`FORWARD_MEMORY`] (at most [`MAX_FORWARDS_REMEMBERED`]: the
    /// oldest are forgotten first).
    fn first_time(&mut self, now: Time, from: NodeId, request: u64) -> bool {
        while let Some(&(at, node, id)) = self.expiry.first()
            && at <= now
        {
            self.expiry.remove(&(at, node, id));
            self.seen.remove(&(node, id));
        }
        if self.seen.contains_key(&(from, request)) {
            return false;
        }
        while self.seen.len() >= MAX_FORWARDS_REMEMBERED
            && let Some((_, node, id)) = self.expiry.pop_first()
        {
            self.seen.remove(&(node, id));
        }
        let expires = now + FORWARD_MEMORY;
        self.seen.insert((from, request), expires);
        self.expiry.insert((expires, from, request));
        true
    }
}

impl<S: Store> Node<S> {
    /// A write this node does not coordinate: forwarded to the key's other
    /// replicas, unless it was forwarded here (the forwarder tries the
    /// next one) or there are none.
    pub(super) fn forward_elsewhere(
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
    pub(super) fn cannot_coordinate(&self) -> RequestError {
        match self.local.failure() {
            Some(reason) => RequestError::StorageFailed {
                node: self.id(),
                reason: reason.to_owned(),
            },
            None => RequestError::NotReplica { node: self.id() },
        }
    }

    pub(super) fn start_forward(
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

    /// Sends a forwarded write to the next candidate, with the time left.
    pub(super) fn forward_attempt(&mut self, id: u64) {
        let Some(Coordinated {
            kind:
                Kind::Forward {
                    request,
                    candidates,
                    tried,
                    ..
                },
            ..
        }) = self.requests.get(&id)
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

    /// Moves a forwarded write on to the next replica after an explicit
    /// refusal (nothing was applied there), if any replica is left.
    pub(super) fn next_forward_candidate(&mut self, now: Time, id: u64, deadline: Time) {
        let Some(Coordinated {
            kind:
                Kind::Forward {
                    request,
                    candidates,
                    tried,
                },
            ..
        }) = self.requests.get_mut(&id)
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

    /// A peer forwards a client's write for this node to coordinate.
    pub(in crate::proto) fn on_forward(
        &mut self,
        now: Time,
        from: NodeId,
        request: u64,
        client: ClientRequest,
    ) {
        if self.first_time_forwarded(now, from, request) {
            self.start(now, Requester::Peer { node: from, request }, client);
        }
    }

    /// Whether this forwarded write is new; a duplicate (the network
    /// repeated it) is dropped, since applying it again would make a second
    /// version of one client write. Entries live [`FORWARD_MEMORY`].
    pub(super) fn first_time_forwarded(&mut self, now: Time, from: NodeId, request: u64) -> bool {
        self.requests.forwards.first_time(now, from, request)
    }

    pub(in crate::proto) fn on_forward_reply(
        &mut self,
        now: Time,
        from: NodeId,
        id: u64,
        response: ClientResponse,
    ) {
        let Some(Coordinated {
            kind: Kind::Forward {
                candidates, tried, ..
            },
            deadline,
            ..
        }) = self.requests.get(&id)
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
}
