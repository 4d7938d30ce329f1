//! Watching a key: a client asks any node to tell it when a key's state
//! goes past a context it holds.
//!
//! The node the client asks (the watching node) registers the watch with
//! every replica of the key (`WatchStart`). A replica answers at once if
//! its state is already past the context; otherwise it keeps the watch and
//! answers (`WatchReply`) the first time a state it stores is: a write it
//! coordinates or takes as a replica, a hint replayed to it, read repair or
//! anti-entropy. Every acknowledged write reaches every replica that is up,
//! so while the key's replicas are up any acknowledged write reaches the
//! watcher, at any consistency, whichever node took it. The watching node
//! answers the client with the first state past the context, then tells
//! the other replicas to forget the watch (`WatchCancel`); at the timeout
//! it answers `Unchanged` and does the same.
//!
//! Both sides are bounded by `max_watches`; a watch costs a key, a context
//! and a few map entries, and nothing while idle (its only timer is its
//! deadline). A replica forgets a watch by itself a little after its
//! timeout, should the cancel be lost. A watching node or replica that
//! restarts forgets its watches: the client re-arms (the watch's context
//! makes that exact).

use super::message::{ClientResponse, Context, PeerMessage, ReplicaError, RequestError, WatchRequest};
use super::store::Store;
use super::types::{NodeId, Time};
use super::version::{VersionVector, Versioned};
use super::{ClientId, Node, Output};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long after its timeout a replica keeps a watch whose cancel has not
/// come (the watching node's cancel may be lost, or the node gone).
const REPLICA_GRACE: Duration = Duration::from_secs(5);

/// A watch this node serves for a client.
#[derive(Debug)]
struct Watching {
    client: ClientId,
    context: VersionVector,
    deadline: Time,
    /// Replicas asked that have not answered.
    waiting: BTreeSet<NodeId>,
    /// Replicas that refused (over their limit).
    refused: usize,
}

/// A watch a replica holds for a watching node.
#[derive(Debug)]
struct Registration {
    context: VersionVector,
    expires: Time,
}

/// The watches of one node: those it serves for clients, and those it
/// holds as a replica.
#[derive(Debug, Default)]
pub(super) struct Watches {
    next_id: u64,
    /// Watches served for clients, by id.
    serving: BTreeMap<u64, Watching>,
    /// Their deadlines.
    deadlines: BTreeSet<(Time, u64)>,
    /// Watches held as a replica: key -> (watching node, watch id) ->
    /// registration.
    held: BTreeMap<Vec<u8>, BTreeMap<(NodeId, u64), Registration>>,
    /// The key of every held watch.
    held_keys: BTreeMap<(NodeId, u64), Vec<u8>>,
    /// When each held watch is forgotten.
    expiries: BTreeSet<(Time, NodeId, u64)>,
}

impl Watches {
    /// Watches served for clients now.
    pub(super) fn serving(&self) -> usize {
        self.serving.len()
    }

    /// Watches held as a replica now.
    pub(super) fn held(&self) -> usize {
        self.held_keys.len()
    }

    /// When the next deadline or expiry is due.
    pub(super) fn poll_timeout(&self) -> Option<Time> {
        let deadline = self.deadlines.first().map(|&(at, _)| at);
        let expiry = self.expiries.first().map(|&(at, _, _)| at);
        deadline.into_iter().chain(expiry).min()
    }

    fn forget_held(&mut self, from: NodeId, watch: u64) -> Option<Registration> {
        let key = self.held_keys.remove(&(from, watch))?;
        let registrations = self.held.get_mut(&key)?;
        let registration = registrations.remove(&(from, watch))?;
        if registrations.is_empty() {
            self.held.remove(&key);
        }
        self.expiries.remove(&(registration.expires, from, watch));
        Some(registration)
    }

    fn end_serving(&mut self, id: u64) -> Option<Watching> {
        let watching = self.serving.remove(&id)?;
        self.deadlines.remove(&(watching.deadline, id));
        Some(watching)
    }
}

/// Whether `state` holds anything `context` has not seen.
fn is_past(state: &Versioned, context: &VersionVector) -> bool {
    !context.descends(state.clock())
}

impl<S: Store> Node<S> {
    /// Watches this node serves for clients, and watches it holds as a
    /// replica for watching nodes.
    pub fn watch_counts(&self) -> (usize, usize) {
        (self.watches.serving(), self.watches.held())
    }

    /// A client's watch: see [`WatchRequest`]. The answer comes out as
    /// [`Output::Reply`] for `client`, by the watch's timeout.
    pub fn handle_watch_request(&mut self, now: Time, client: ClientId, request: WatchRequest) {
        self.stats.requests += 1;
        let refuse = |node: &mut Self, error| {
            node.outputs.push_back(Output::Reply {
                client,
                response: ClientResponse::Failed(error),
            })
        };
        if let Err(error) = self.admit_watch(&request) {
            return refuse(self, error);
        }
        let replicas = self
            .view
            .ring
            .preference_list(&request.key, self.config.replication);
        if replicas.is_empty() {
            return refuse(self, RequestError::NoReplicas);
        }
        let watches = &mut self.watches;
        let id = watches.next_id;
        watches.next_id += 1;
        let deadline = now + Duration::from_millis(u64::from(request.timeout_ms));
        watches.deadlines.insert((deadline, id));
        watches.serving.insert(
            id,
            Watching {
                client,
                context: request.context.version_vector().clone(),
                deadline,
                waiting: replicas.iter().copied().collect(),
                refused: 0,
            },
        );
        let me = self.id();
        for replica in replicas {
            if replica == me {
                self.on_watch_start(now, me, id, &request.key, &request.context, request.timeout_ms);
            } else {
                self.send(
                    replica,
                    PeerMessage::WatchStart {
                        watch: id,
                        key: request.key.clone(),
                        context: request.context.clone(),
                        timeout_ms: request.timeout_ms,
                    },
                );
            }
        }
    }

    /// Checks a watch's limits; nothing changes on error.
    fn admit_watch(&self, request: &WatchRequest) -> Result<(), RequestError> {
        self.admit_key(&request.key)?;
        if let Err(reason) = request.context.version_vector().check() {
            return Err(RequestError::MalformedContext { reason });
        }
        let max_ms = super::types::millis(self.config.max_watch_timeout);
        if request.timeout_ms == 0 || u64::from(request.timeout_ms) > max_ms {
            return Err(RequestError::BadWatchTimeout {
                timeout_ms: request.timeout_ms,
                max_ms,
            });
        }
        if self.watches.serving() >= self.config.max_watches {
            return Err(RequestError::Busy {
                max: self.config.max_watches,
            });
        }
        Ok(())
    }

    /// As a replica: hold a watch for `from`, or answer it at once if this
    /// replica's state is already past its context.
    pub(super) fn on_watch_start(
        &mut self,
        now: Time,
        from: NodeId,
        watch: u64,
        key: &[u8],
        context: &Context,
        timeout_ms: u32,
    ) {
        let state = match self.local.get(key) {
            Ok(state) => state.unwrap_or_default(),
            Err(error) => return self.watch_reply(now, from, watch, Err(ReplicaError::from(error))),
        };
        let context = context.version_vector();
        if is_past(&state, context) {
            return self.watch_reply(now, from, watch, Ok(state));
        }
        let watches = &mut self.watches;
        if watches.held() >= self.config.max_watches && !watches.held_keys.contains_key(&(from, watch)) {
            let max = self.config.max_watches;
            return self.watch_reply(now, from, watch, Err(ReplicaError::TooManyWatches { max }));
        }
        watches.forget_held(from, watch);
        let expires = now + Duration::from_millis(u64::from(timeout_ms)) + REPLICA_GRACE;
        watches.expiries.insert((expires, from, watch));
        watches.held_keys.insert((from, watch), key.to_vec());
        watches.held.entry(key.to_vec()).or_default().insert(
            (from, watch),
            Registration {
                context: context.clone(),
                expires,
            },
        );
        self.local.track_changes(true);
    }

    /// As a replica: the watching node no longer needs the watch.
    pub(super) fn on_watch_cancel(&mut self, from: NodeId, watch: u64) {
        self.watches.forget_held(from, watch);
        self.local.track_changes(!self.watches.held.is_empty());
    }

    /// Sends a replica's answer to the watching node (or takes it, if that
    /// is this node).
    fn watch_reply(&mut self, now: Time, to: NodeId, watch: u64, result: Result<Versioned, ReplicaError>) {
        if to == self.id() {
            self.on_watch_reply(now, to, watch, result);
        } else {
            self.send(to, PeerMessage::WatchReply { watch, result });
        }
    }

    /// As the watching node: a replica's answer.
    pub(super) fn on_watch_reply(
        &mut self,
        now: Time,
        from: NodeId,
        watch: u64,
        result: Result<Versioned, ReplicaError>,
    ) {
        let Some(watching) = self.watches.serving.get_mut(&watch) else {
            return; // Answered already, or timed out.
        };
        if !watching.waiting.remove(&from) {
            return; // Not a replica asked, or one that answered before.
        }
        match result {
            Ok(state) if is_past(&state, &watching.context) => {
                let response = super::coordinator::found(&state, self.expiry_clock(now));
                self.end_watch(watch, response);
            }
            // A replica does not answer with a state its watch's context
            // covers; should one, it only drops out.
            Ok(_) => {}
            Err(_) => {
                watching.refused += 1;
                if watching.waiting.is_empty() {
                    let max = self.config.max_watches;
                    self.end_watch(watch, ClientResponse::Failed(RequestError::Busy { max }));
                }
            }
        }
    }

    /// Answers a served watch and tells the replicas still holding it to
    /// forget it.
    fn end_watch(&mut self, watch: u64, response: ClientResponse) {
        let Some(watching) = self.watches.end_serving(watch) else {
            return;
        };
        let me = self.id();
        for replica in watching.waiting {
            if replica == me {
                self.on_watch_cancel(me, watch);
            } else {
                self.send(replica, PeerMessage::WatchCancel { watch });
            }
        }
        self.outputs.push_back(Output::Reply {
            client: watching.client,
            response,
        });
    }

    /// After handling an event: answers the watches held for keys whose
    /// stored state changed and is now past their context.
    pub(super) fn notify_watches(&mut self, now: Time) {
        let changed = self.local.take_changed();
        if self.config.debug_deaf_watches {
            return;
        }
        for key in changed {
            let Some(registrations) = self.watches.held.get(&key) else {
                continue;
            };
            let Ok(Some(state)) = self.local.get(&key) else {
                continue;
            };
            let due: Vec<(NodeId, u64)> = registrations
                .iter()
                .filter(|(_, r)| is_past(&state, &r.context))
                .map(|(&k, _)| k)
                .collect();
            for (to, watch) in due {
                self.watches.forget_held(to, watch);
                self.watch_reply(now, to, watch, Ok(state.clone()));
            }
        }
        self.local.track_changes(!self.watches.held.is_empty());
    }

    /// Watches whose timeout passed: served ones are answered `Unchanged`,
    /// held ones past their grace forgotten.
    pub(super) fn expire_watches(&mut self, now: Time) {
        while let Some(&(at, watch)) = self.watches.deadlines.first()
            && at <= now
        {
            self.end_watch(watch, ClientResponse::Unchanged);
        }
        while let Some(&(at, from, watch)) = self.watches.expiries.first()
            && at <= now
        {
            self.watches.forget_held(from, watch);
        }
        self.local.track_changes(!self.watches.held.is_empty());
    }
}
