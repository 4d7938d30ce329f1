//! The core's behaviour, not only its decoders: a small `Node<MemStore>`
//! (three members, static or gossiped) is fed a sequence of client
//! requests, peer messages, gossip packets, admin requests and timer
//! ticks built from the input, honest and wild alike. Peer messages are
//! built with the ids the node itself sent (request ids, batches,
//! streams) and replies are drawn from what it sent, so the fuzzer reaches
//! deep into coordination, repair and hand-off, not only the boundary's
//! refusals.
//!
//! After every step: nothing panicked, and `Node::check_invariants`
//! holds. A crash found here becomes a regression test beside the core's
//! other tests (`tests/core_*.rs`), with the input spelled out.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shoal::proto::membership::{MemberState, NodeStatus};
use shoal::proto::message::{
    AdminRequest, AeInterval, KeyDigest, KeyState, ListRequest, ListedStates, Placement, ReplicaError,
    StreamCursor,
};
use shoal::proto::store::Hint;
use shoal::proto::version::{Actor, VersionVector};
use shoal::proto::{
    ClientId, ClientRequest, ClientResponse, Config, Consistency, Context, Fanout, MemStore, Node, NodeId, Output,
    PeerMessage, RequestError, Time, Versioned,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

const ME: NodeId = NodeId(1);
/// Peers a message may claim to come from: the two other members, a
/// stranger, and the node itself.
const FROM: [NodeId; 4] = [NodeId(2), NodeId(3), NodeId(99), ME];
/// Outputs remembered for replies and ids.
const REMEMBERED: usize = 64;

#[derive(Arbitrary, Debug)]
struct Input {
    gossip: bool,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    Client {
        op: u8,
        key: Key,
        value: Vec<u8>,
        consistency: u8,
        context: Ctx,
        timeout_ms: Option<u16>,
        sloppy: bool,
    },
    /// A reply to one of the messages the node sent, from its addressee.
    Answer {
        pick: u8,
        ok: bool,
        state: State,
    },
    Peer {
        from: u8,
        message: Message,
    },
    Gossip {
        data: Vec<u8>,
    },
    Admin {
        op: u8,
        node: u8,
    },
    Tick {
        ms: u16,
    },
    List {
        start: Key,
        end: Option<Key>,
        limit: u16,
        values: bool,
        consistency: u8,
        timeout_ms: Option<u16>,
    },
}

#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Ctx {
    Empty,
    /// One the node answered with.
    Seen(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum State {
    /// Written by these (actor, value) writes in turn, each over the state
    /// so far (`true`) or concurrently (`false`).
    Writes(Vec<(u8, Option<u8>, bool)>),
    /// One the node sent.
    Seen(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Id {
    Seen(u8),
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum Message {
    ReplicaList {
        request: Id,
        start: Key,
        end: Option<Key>,
        limit: u16,
    },
    ReplicaListReply {
        request: Id,
        ok: bool,
        states: Vec<(Key, State)>,
        complete: bool,
    },
    ReplicaGet {
        request: Id,
        key: Key,
        placed: bool,
    },
    ReplicaPut {
        request: Id,
        key: Key,
        state: State,
        placed: bool,
    },
    HintedPut {
        request: Id,
        key: Key,
        state: State,
        target: u8,
        written_to: Vec<u8>,
    },
    ReplicaGetReply {
        request: Id,
        ok: bool,
        state: State,
    },
    ReplicaPutReply {
        request: Id,
        ok: bool,
    },
    Forward {
        request: Id,
        op: u8,
        key: Key,
        consistency: u8,
    },
    ForwardReply {
        request: Id,
        written: bool,
    },
    AeSummaries {
        intervals: Vec<(u64, u64, u64, u16)>,
    },
    AeKeys {
        first: u64,
        last: u64,
        entries: Vec<(Key, u64)>,
    },
    AeStates {
        states: Vec<(Key, State)>,
        want: Vec<Key>,
    },
    Push {
        batch: Id,
        states: Vec<(Key, State)>,
    },
    PushAck {
        batch: Id,
        ok: bool,
    },
    HandOffHints {
        batch: Id,
        target: u8,
        hints: Vec<(Key, State, u64)>,
        sent_ms: Option<u64>,
    },
    StreamRequest {
        stream: Id,
        first: u64,
        last: u64,
        after: Option<(u64, Key)>,
    },
    StreamBatch {
        stream: Id,
        states: Vec<(Key, State)>,
        next: Option<(u64, Key)>,
    },
    GcCheck {
        keys: Vec<(Key, u64)>,
    },
    GcConfirm {
        keys: Vec<Key>,
    },
    GcRemove {
        keys: Vec<(Key, u64)>,
    },
    MemberStates {
        states: Vec<(u8, u64, u8, u64, bool)>,
        ready: bool,
        answer: bool,
    },
}

/// The node under test and what it said.
struct Harness {
    node: Node<MemStore>,
    now: Time,
    next_client: u64,
    sent: VecDeque<(NodeId, PeerMessage)>,
    contexts: VecDeque<Context>,
}

fn addr(node: NodeId) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + (node.0 % 1000) as u16))
}

fn node_of(i: u8) -> NodeId {
    [NodeId(1), NodeId(2), NodeId(3), NodeId(99)][usize::from(i) % 4]
}

fn consistency(c: u8) -> Consistency {
    match c % 7 {
        0 => Consistency::One,
        1 => Consistency::Two,
        2 => Consistency::Quorum,
        3 => Consistency::All,
        4 => Consistency::Default,
        _ => Consistency::Custom {
            r: c / 7 % 5,
            w: c / 35 % 5,
        },
    }
}

impl Harness {
    fn new(gossip: bool) -> Harness {
        let config = {
            let mut cfg = Config::default();
            cfg.node_id = Some(ME);
            cfg.replication = 3;
            cfg.vnodes = 8;
            cfg
        };
        let mut node = Node::new(config, MemStore::new(), 7).expect("a valid config");
        let now = Time::from_micros(1_000_000);
        if gossip {
            node.start_membership(now, addr(ME), &[addr(NodeId(2))]);
        } else {
            node.set_members([ME, NodeId(2), NodeId(3)]);
            node.enable_anti_entropy(now);
        }
        let mut harness = Harness {
            node,
            now,
            next_client: 0,
            sent: VecDeque::new(),
            contexts: VecDeque::new(),
        };
        harness.drain();
        harness
    }

    fn drain(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Send { to, message } => {
                    if self.sent.len() == REMEMBERED {
                        self.sent.pop_front();
                    }
                    self.sent.push_back((to, message));
                }
                Output::Reply { response, .. } => {
                    let context = match response {
                        ClientResponse::Found { context, .. } | ClientResponse::Written { context, .. } => {
                            context
                        }
                        _ => continue,
                    };
                    if self.contexts.len() == REMEMBERED {
                        self.contexts.pop_front();
                    }
                    self.contexts.push_back(context);
                }
                Output::AdminReply { .. } | Output::Gossip { .. } => {}
            }
        }
    }

    fn key(&self, key: &Key) -> Vec<u8> {
        match key {
            Key::Known(k) => format!("k{}", k % 6).into_bytes(),
            Key::Raw(bytes) => bytes.clone(),
        }
    }

    fn keys(&self, keys: &[Key]) -> Vec<Vec<u8>> {
        keys.iter().map(|k| self.key(k)).collect()
    }

    fn context(&self, context: &Ctx) -> Context {
        match context {
            Ctx::Empty => Context::empty(),
            Ctx::Seen(i) if !self.contexts.is_empty() => {
                self.contexts[usize::from(*i) % self.contexts.len()].clone()
            }
            Ctx::Seen(_) => Context::empty(),
            Ctx::Raw(bytes) => rmp_serde::from_slice(bytes).unwrap_or_default(),
        }
    }

    /// States the node sent, for `State::Seen`.
    fn sent_states(&self) -> impl Iterator<Item = &Versioned> {
        self.sent.iter().flat_map(|(_, message)| {
            let states: Vec<&Versioned> = match message {
                PeerMessage::ReplicaPut { object, .. } | PeerMessage::HintedPut { object, .. } => {
                    vec![&**object]
                }
                PeerMessage::ReplicaGetReply {
                    result: Ok(object), ..
                } => vec![object],
                PeerMessage::Push { states, .. }
                | PeerMessage::AeStates { states, .. }
                | PeerMessage::StreamBatch { states, .. } => states.iter().map(|s| &s.object).collect(),
                _ => Vec::new(),
            };
            states
        })
    }

    fn state(&self, state: &State) -> Versioned {
        match state {
            State::Writes(writes) => {
                let mut object = Versioned::new();
                for &(actor, value, over) in writes.iter().take(16) {
                    let actor = Actor {
                        node: node_of(actor),
                        epoch: u64::from(actor / 4 % 3),
                    };
                    let context = if over {
                        object.clock().clone()
                    } else {
                        VersionVector::new()
                    };
                    let value = value.map(|v| vec![v]);
                    let _ = object.write(actor, &context, value, 1_000, 64);
                }
                object
            }
            State::Seen(i) => {
                let seen: Vec<&Versioned> = self.sent_states().collect();
                match seen.len() {
                    0 => Versioned::new(),
                    n => seen[usize::from(*i) % n].clone(),
                }
            }
            State::Raw(bytes) => rmp_serde::from_slice(bytes).unwrap_or_default(),
        }
    }

    fn states(&self, states: &[(Key, State)]) -> Vec<KeyState> {
        states
            .iter()
            .map(|(key, state)| KeyState {
                key: self.key(key),
                object: self.state(state),
            })
            .collect()
    }

    fn digests(&self, entries: &[(Key, u64)]) -> Vec<KeyDigest> {
        entries
            .iter()
            .map(|(key, digest)| KeyDigest {
                key: self.key(key),
                digest: *digest,
            })
            .collect()
    }

    /// An id the node used in a message it sent, or a raw one.
    fn id(&self, id: &Id) -> u64 {
        let seen: Vec<u64> = self
            .sent
            .iter()
            .filter_map(|(_, message)| match message {
                PeerMessage::ReplicaGet { request, .. }
                | PeerMessage::ReplicaPut { request, .. }
                | PeerMessage::HintedPut { request, .. }
                | PeerMessage::Forward { request, .. }
                | PeerMessage::ReplicaList { request, .. } => Some(*request),
                PeerMessage::Push { batch, .. } | PeerMessage::HandOffHints { batch, .. } => Some(*batch),
                PeerMessage::StreamRequest { stream, .. } => Some(*stream),
                _ => None,
            })
            .collect();
        match id {
            Id::Seen(i) if !seen.is_empty() => seen[usize::from(*i) % seen.len()],
            Id::Seen(i) => u64::from(*i),
            Id::Raw(raw) => *raw,
        }
    }

    fn cursor(&self, cursor: &Option<(u64, Key)>) -> Option<StreamCursor> {
        cursor.as_ref().map(|(position, key)| StreamCursor {
            position: *position,
            key: self.key(key),
        })
    }

    fn client_request(
        &self,
        op: u8,
        key: Vec<u8>,
        value: Vec<u8>,
        consistency: Consistency,
        context: Context,
        timeout_ms: Option<u32>,
        sloppy: bool,
    ) -> ClientRequest {
        match op % 3 {
            0 => ClientRequest::Get {
                key,
                consistency,
                timeout_ms,
                fanout: if sloppy { Fanout::Needed } else { Fanout::All },
            },
            1 => ClientRequest::Put {
                key,
                value,
                context,
                consistency,
                timeout_ms,
                sloppy_quorum: sloppy,
                // Some puts expire (a time to live taken from the timeout,
                // in and out of the limits).
                ttl_ms: timeout_ms.filter(|_| op % 2 == 0).map(u64::from),
            },
            _ => ClientRequest::Delete {
                key,
                context,
                consistency,
                timeout_ms,
                sloppy_quorum: sloppy,
            },
        }
    }

    fn message(&self, message: &Message) -> PeerMessage {
        let placement = |placed: bool| {
            placed.then(|| Placement {
                current: vec![ME, NodeId(2), NodeId(3)],
                future: None,
            })
        };
        match message {
            Message::ReplicaList {
                request,
                start,
                end,
                limit,
            } => PeerMessage::ReplicaList {
                request: self.id(request),
                start: self.key(start),
                end: end.as_ref().map(|k| self.key(k)),
                limit: u32::from(*limit),
            },
            Message::ReplicaListReply {
                request,
                ok,
                states,
                complete,
            } => PeerMessage::ReplicaListReply {
                request: self.id(request),
                result: if *ok {
                    Ok(ListedStates {
                        states: self.states(states),
                        complete: *complete,
                    })
                } else {
                    Err(refusal())
                },
            },
            Message::ReplicaGet { request, key, placed } => PeerMessage::ReplicaGet {
                request: self.id(request),
                key: self.key(key),
                placement: placement(*placed),
            },
            Message::ReplicaPut {
                request,
                key,
                state,
                placed,
            } => PeerMessage::ReplicaPut {
                request: self.id(request),
                key: self.key(key),
                object: self.state(state).into(),
                placement: placement(*placed),
            },
            Message::HintedPut {
                request,
                key,
                state,
                target,
                written_to,
            } => PeerMessage::HintedPut {
                request: self.id(request),
                key: self.key(key),
                object: self.state(state).into(),
                target: node_of(*target),
                placement: None,
                written_to: written_to.iter().map(|&n| node_of(n)).collect(),
            },
            Message::ReplicaGetReply { request, ok, state } => PeerMessage::ReplicaGetReply {
                request: self.id(request),
                result: if *ok {
                    Ok(self.state(state))
                } else {
                    Err(refusal())
                },
            },
            Message::ReplicaPutReply { request, ok } => PeerMessage::ReplicaPutReply {
                request: self.id(request),
                result: if *ok { Ok(()) } else { Err(refusal()) },
            },
            Message::Forward {
                request,
                op,
                key,
                consistency: c,
            } => PeerMessage::Forward {
                request: self.id(request),
                client: self.client_request(
                    *op,
                    self.key(key),
                    b"v".to_vec(),
                    consistency(*c),
                    Context::empty(),
                    None,
                    false,
                ),
            },
            Message::ForwardReply { request, written } => PeerMessage::ForwardReply {
                request: self.id(request),
                response: forward_reply(*written, self.contexts.back().cloned()),
            },
            Message::AeSummaries { intervals } => PeerMessage::AeSummaries {
                intervals: intervals
                    .iter()
                    .map(|&(first, last, digest, count)| AeInterval {
                        first,
                        last,
                        summary: shoal::proto::digest_tree::Summary {
                            digest,
                            count: u64::from(count),
                        },
                    })
                    .collect(),
            },
            Message::AeKeys { first, last, entries } => PeerMessage::AeKeys {
                first: *first,
                last: *last,
                entries: self.digests(entries),
            },
            Message::AeStates { states, want } => PeerMessage::AeStates {
                states: self.states(states),
                want: self.keys(want),
            },
            Message::Push { batch, states } => PeerMessage::Push {
                batch: self.id(batch),
                states: self.states(states),
            },
            Message::PushAck { batch, ok } => PeerMessage::PushAck {
                batch: self.id(batch),
                result: if *ok { Ok(()) } else { Err(refusal()) },
            },
            Message::HandOffHints {
                batch,
                target,
                hints,
                sent_ms,
            } => PeerMessage::HandOffHints {
                batch: self.id(batch),
                target: node_of(*target),
                hints: hints
                    .iter()
                    .map(|(key, state, created_ms)| Hint {
                        key: self.key(key),
                        object: self.state(state),
                        created_ms: *created_ms,
                        written_to: Vec::new(),
                    })
                    .collect(),
                sent_ms: *sent_ms,
            },
            Message::StreamRequest {
                stream,
                first,
                last,
                after,
            } => PeerMessage::StreamRequest {
                stream: self.id(stream),
                first: *first,
                last: *last,
                after: self.cursor(after),
            },
            Message::StreamBatch { stream, states, next } => PeerMessage::StreamBatch {
                stream: self.id(stream),
                states: self.states(states),
                next: self.cursor(next),
            },
            Message::GcCheck { keys } => PeerMessage::GcCheck {
                keys: self.digests(keys),
            },
            Message::GcConfirm { keys } => PeerMessage::GcConfirm {
                keys: self.keys(keys),
            },
            Message::GcRemove { keys } => PeerMessage::GcRemove {
                keys: self.digests(keys),
            },
            Message::MemberStates {
                states,
                ready,
                answer,
            } => PeerMessage::MemberStates {
                states: states
                    .iter()
                    .map(
                        |&(node, generation, status, version, storage_failed)| MemberState {
                            node: node_of(node),
                            addr: addr(node_of(node)),
                            generation,
                            status: [
                                NodeStatus::Joining,
                                NodeStatus::Normal,
                                NodeStatus::Leaving,
                                NodeStatus::Left,
                            ][usize::from(status) % 4],
                            version,
                            storage_failed,
                        },
                    )
                    .collect(),
                ready: *ready,
                answer: *answer,
            },
        }
    }

    /// What the addressee of one of the node's messages answers.
    fn answer(&self, pick: u8, ok: bool, state: &State) -> Option<(NodeId, PeerMessage)> {
        if self.sent.is_empty() {
            return None;
        }
        let (to, message) = &self.sent[usize::from(pick) % self.sent.len()];
        let result = |ok: bool| if ok { Ok(()) } else { Err(refusal()) };
        let reply = match message {
            // One state just past the start, in range unless the range is
            // a single key.
            PeerMessage::ReplicaList { request, start, .. } => PeerMessage::ReplicaListReply {
                request: *request,
                result: if ok {
                    let mut key = start.clone();
                    key.push(b'k');
                    let object = self.state(state);
                    Ok(ListedStates {
                        states: vec![KeyState { key, object }],
                        complete: pick % 2 == 0,
                    })
                } else {
                    Err(refusal())
                },
            },
            PeerMessage::ReplicaGet { request, .. } => PeerMessage::ReplicaGetReply {
                request: *request,
                result: if ok { Ok(self.state(state)) } else { Err(refusal()) },
            },
            PeerMessage::ReplicaPut { request, .. } | PeerMessage::HintedPut { request, .. } => {
                PeerMessage::ReplicaPutReply {
                    request: *request,
                    result: result(ok),
                }
            }
            PeerMessage::Forward { request, .. } => PeerMessage::ForwardReply {
                request: *request,
                response: forward_reply(ok, self.contexts.back().cloned()),
            },
            PeerMessage::Push { batch, .. } | PeerMessage::HandOffHints { batch, .. } => {
                PeerMessage::PushAck {
                    batch: *batch,
                    result: result(ok),
                }
            }
            PeerMessage::StreamRequest { stream, first, .. } => PeerMessage::StreamBatch {
                stream: *stream,
                states: if ok {
                    vec![KeyState {
                        key: b"k0".to_vec(),
                        object: self.state(state),
                    }]
                } else {
                    Vec::new()
                },
                next: (!ok).then(|| StreamCursor {
                    position: *first,
                    key: b"k0".to_vec(),
                }),
            },
            PeerMessage::AeSummaries { intervals } => PeerMessage::AeKeys {
                first: intervals.first()?.first,
                last: intervals.first()?.last,
                entries: Vec::new(),
            },
            PeerMessage::AeKeys { entries, .. } => PeerMessage::AeStates {
                states: Vec::new(),
                want: entries.iter().map(|e| e.key.clone()).collect(),
            },
            PeerMessage::GcCheck { keys } => PeerMessage::GcConfirm {
                keys: keys.iter().filter(|_| ok).map(|k| k.key.clone()).collect(),
            },
            PeerMessage::MemberStates { states, .. } => PeerMessage::MemberStates {
                states: states.clone(),
                ready: true,
                answer: true,
            },
            _ => return None,
        };
        Some((*to, reply))
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Client {
                op,
                key,
                value,
                consistency: c,
                context,
                timeout_ms,
                sloppy,
            } => {
                let request = self.client_request(
                    *op,
                    self.key(key),
                    value.clone(),
                    consistency(*c),
                    self.context(context),
                    timeout_ms.map(u32::from),
                    *sloppy,
                );
                self.next_client += 1;
                self.node
                    .handle_client_request(self.now, ClientId(self.next_client), request);
            }
            Step::Answer { pick, ok, state } => {
                if let Some((from, reply)) = self.answer(*pick, *ok, state) {
                    let _ = self.node.handle_peer_message(self.now, from, reply);
                }
            }
            Step::Peer { from, message } => {
                let from = FROM[usize::from(*from) % FROM.len()];
                let message = self.message(message);
                let _ = self.node.handle_peer_message(self.now, from, message);
            }
            Step::Gossip { data } => self.node.handle_gossip(self.now, data),
            Step::Admin { op, node } => {
                let request = match op % 3 {
                    0 => AdminRequest::Status,
                    1 => AdminRequest::RemoveNode { node: node_of(*node) },
                    _ => AdminRequest::Leave,
                };
                self.next_client += 1;
                self.node
                    .handle_admin_request(self.now, ClientId(self.next_client), request);
            }
            Step::List {
                start,
                end,
                limit,
                values,
                consistency: c,
                timeout_ms,
            } => {
                let request = ListRequest {
                    start: self.key(start),
                    end: end.as_ref().map(|k| self.key(k)),
                    limit: u32::from(*limit),
                    values: *values,
                    consistency: consistency(*c),
                    timeout_ms: timeout_ms.map(u32::from),
                };
                self.next_client += 1;
                self.node
                    .handle_list_request(self.now, ClientId(self.next_client), request);
            }
            Step::Tick { ms } => {
                self.now = self.now + Duration::from_millis(u64::from(*ms));
                if self.node.poll_timeout().is_some_and(|at| at <= self.now) {
                    self.node.handle_timeout(self.now);
                }
            }
        }
        self.drain();
        if let Err(broken) = self.node.check_invariants() {
            panic!("after {step:?}: {broken}");
        }
    }
}

fn refusal() -> ReplicaError {
    ReplicaError::Storage {
        reason: "refused".to_owned(),
    }
}

fn forward_reply(written: bool, context: Option<Context>) -> ClientResponse {
    match (written, context) {
        (true, Some(context)) => ClientResponse::Written {
            context,
            dot: shoal::proto::version::Dot {
                node: NodeId(2),
                epoch: 1,
                counter: 1,
            },
        },
        _ => ClientResponse::Failed(RequestError::NotReplica { node: NodeId(2) }),
    }
}

fuzz_target!(|input: Input| {
    let mut harness = Harness::new(input.gossip);
    for step in input.steps.iter().take(64) {
        harness.step(step);
    }
});
