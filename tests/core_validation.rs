//! The core's boundary: a peer message that breaks what the code behind it
//! relies on is dropped whole, counted by kind, and nothing in it reaches
//! the store. Each of these messages panicked a node, or stored what no
//! honest node stores, before the boundary checked it.

use shoal::proto::digest_tree::Summary;
use shoal::proto::membership::{MemberState, NodeStatus};
use shoal::proto::message::{AeInterval, KeyDigest, KeyState, Placement, StreamCursor};
use shoal::proto::store::Hint;
use shoal::proto::validate::Invalid;
use shoal::proto::version::{Actor, Dot, MalformedState, Sibling, VersionVector};
use shoal::proto::{
    ClientId, ClientRequest, ClientResponse, Config, Consistency, Context, MemStore, Node, NodeId, Output,
    PeerMessage, RequestError, Store, Time, Versioned,
};
use std::collections::BTreeMap;

const PEER: NodeId = NodeId(2);

/// A node whose ring is itself and one peer (N=2), so it replicates
/// every key and serves every message.
fn node() -> Node<MemStore> {
    let config = {
        let mut cfg = Config::default();
        cfg.replication = 2;
        cfg
    };
    let mut node = Node::new(config, MemStore::default(), 1).unwrap();
    let me = node.id();
    node.set_members([me, PEER]);
    node
}

fn state(value: &[u8]) -> Versioned {
    let mut object = Versioned::new();
    let actor = Actor { node: PEER, epoch: 1 };
    object
        .write(actor, &VersionVector::new(), Some(value.to_vec()), 1, 8)
        .unwrap();
    object
}

/// A state with the given clock and siblings, as a peer could encode it
/// (the type's own methods never make a malformed one).
fn raw_state(clock: &[(u64, u64)], dots: &[u64]) -> Versioned {
    let clock: BTreeMap<Actor, u64> = clock
        .iter()
        .map(|&(epoch, counter)| (Actor { node: PEER, epoch }, counter))
        .collect();
    let siblings: Vec<Sibling> = dots
        .iter()
        .map(|&counter| Sibling {
            dot: Dot {
                node: PEER,
                epoch: 1,
                counter,
            },
            timestamp_ms: 1,
            value: Some(b"v".to_vec().into()),
            expires_ms: None,
        })
        .collect();
    let bytes = rmp_serde::to_vec(&(clock, siblings)).unwrap();
    rmp_serde::from_slice(&bytes).unwrap()
}

fn ae_state(key: &[u8], object: Versioned) -> KeyState {
    KeyState {
        key: key.to_vec(),
        object,
    }
}

/// Feeds `message` from the peer; the fault, and whether the node sent
/// anything in answer.
fn refused(node: &mut Node<MemStore>, message: PeerMessage) -> Invalid {
    let kind = message.kind();
    let before = node.invalid_messages().get(kind).copied().unwrap_or(0);
    let fault = node
        .handle_peer_message(Time::from_micros(1_000_000), PEER, message)
        .expect_err("the message is refused");
    assert_eq!(node.invalid_messages()[kind], before + 1, "counted under {kind}");
    assert!(node.poll_output().is_none(), "a refused message is not answered");
    fault
}

fn too_long() -> Vec<u8> {
    vec![b'k'; Config::default().max_key_bytes + 1]
}

#[test]
fn summaries_of_a_reversed_interval_are_refused_instead_of_panicking() {
    let mut node = node();
    let interval = AeInterval {
        first: 10,
        last: 5,
        summary: Summary { digest: 1, count: 1 },
    };
    let fault = refused(
        &mut node,
        PeerMessage::AeSummaries {
            intervals: vec![interval],
        },
    );
    assert_eq!(fault, Invalid::ReversedInterval { first: 10, last: 5 });
    let keys = PeerMessage::AeKeys {
        first: u64::MAX,
        last: 0,
        entries: Vec::new(),
    };
    assert!(matches!(
        refused(&mut node, keys),
        Invalid::ReversedInterval { .. }
    ));
    let stream = PeerMessage::StreamRequest {
        stream: 1,
        first: 7,
        last: 6,
        after: None,
    };
    assert!(matches!(
        refused(&mut node, stream),
        Invalid::ReversedInterval { .. }
    ));
    assert_eq!(node.stats().invalid_messages, 3);
}

#[test]
fn keys_empty_or_over_the_limit_never_reach_the_store() {
    let mut node = node();
    for key in [Vec::new(), too_long()] {
        let messages = vec![
            PeerMessage::ReplicaPut {
                request: 1,
                key: key.clone(),
                object: state(b"v").into(),
                placement: None,
            },
            PeerMessage::HintedPut {
                request: 2,
                key: key.clone(),
                object: state(b"v").into(),
                target: NodeId(3),
                placement: None,
                written_to: Vec::new(),
            },
            PeerMessage::Push {
                batch: 3,
                states: vec![ae_state(b"fine", state(b"v")), ae_state(&key, state(b"v"))],
            },
            PeerMessage::AeStates {
                states: vec![ae_state(&key, state(b"v"))],
                want: Vec::new(),
            },
            PeerMessage::AeStates {
                states: Vec::new(),
                want: vec![key.clone()],
            },
            PeerMessage::StreamBatch {
                stream: 4,
                states: vec![ae_state(&key, state(b"v"))],
                next: None,
            },
            PeerMessage::HandOffHints {
                batch: 5,
                target: NodeId(3),
                hints: vec![Hint {
                    key: key.clone(),
                    object: state(b"v"),
                    created_ms: 1,
                    written_to: Vec::new(),
                }],
                sent_ms: None,
            },
            PeerMessage::ReplicaGet {
                request: 6,
                key: key.clone(),
                placement: None,
            },
            PeerMessage::GcCheck {
                keys: vec![KeyDigest {
                    key: key.clone(),
                    digest: 1,
                }],
            },
            PeerMessage::GcConfirm {
                keys: vec![key.clone()],
            },
            PeerMessage::StreamRequest {
                stream: 7,
                first: 0,
                last: u64::MAX,
                after: Some(StreamCursor {
                    position: 1,
                    key: key.clone(),
                }),
            },
        ];
        for message in messages {
            let kind = message.kind();
            let fault = refused(&mut node, message);
            assert!(
                matches!(fault, Invalid::KeySize { size, .. } if size == key.len()),
                "{kind}: {fault}"
            );
        }
    }
    // Nothing of a refused batch was stored, not even its good keys.
    assert_eq!(node.store().scan(b"", 10).unwrap(), Vec::new());
    assert_eq!(node.hints_held(), 0);
}

#[test]
fn states_that_break_their_invariants_are_refused() {
    let mut node = node();
    let cases = [
        // Siblings out of dot order.
        (raw_state(&[(1, 5)], &[3, 2]), MalformedState::Unsorted),
        // The same dot twice.
        (raw_state(&[(1, 5)], &[2, 2]), MalformedState::Unsorted),
        // A sibling the clock has not seen.
        (raw_state(&[(1, 1)], &[4]), MalformedState::Uncovered),
        // A counter the next write's dot would overflow.
        (
            raw_state(&[(1, u64::MAX)], &[1]),
            MalformedState::Counter { counter: u64::MAX },
        ),
        // A dot with counter 0, which every clock covers.
        (raw_state(&[(1, 1)], &[0]), MalformedState::Counter { counter: 0 }),
    ];
    for (object, expected) in cases {
        let message = PeerMessage::ReplicaPut {
            request: 1,
            key: b"k".to_vec(),
            object: object.clone().into(),
            placement: None,
        };
        assert_eq!(refused(&mut node, message), Invalid::State(expected));
        let reply = PeerMessage::ReplicaGetReply {
            request: 1,
            result: Ok(object),
        };
        assert_eq!(refused(&mut node, reply), Invalid::State(expected));
    }
    assert_eq!(node.store().get(b"k").unwrap(), None);
    // A well-formed state still goes in.
    let good = PeerMessage::ReplicaPut {
        request: 2,
        key: b"k".to_vec(),
        object: raw_state(&[(1, 5)], &[2, 5]).into(),
        placement: None,
    };
    node.handle_peer_message(Time::ZERO, PEER, good).unwrap();
    assert_eq!(node.store().get(b"k").unwrap().unwrap().siblings().len(), 2);
}

#[test]
fn lists_longer_than_any_honest_peer_sends_are_refused() {
    let mut node = node();
    let placement = Placement {
        current: (0..100_000).map(NodeId).collect(),
        future: None,
    };
    let get = PeerMessage::ReplicaGet {
        request: 1,
        key: b"k".to_vec(),
        placement: Some(placement),
    };
    assert!(matches!(refused(&mut node, get), Invalid::TooMany { .. }));
    let interval = AeInterval {
        first: 0,
        last: 1,
        summary: Summary::default(),
    };
    let summaries = PeerMessage::AeSummaries {
        intervals: vec![interval; 3000],
    };
    assert!(matches!(refused(&mut node, summaries), Invalid::TooMany { .. }));
    let member = MemberState {
        node: NodeId(9),
        addr: "127.0.0.1:1".parse().unwrap(),
        generation: u64::MAX,
        status: NodeStatus::Normal,
        version: 1,
        storage_failed: false,
    };
    let states = PeerMessage::MemberStates {
        states: vec![member],
        ready: true,
        answer: false,
    };
    assert!(matches!(
        refused(&mut node, states),
        Invalid::MemberCounter { .. }
    ));
}

/// A context whose counter for the coordinator is `u64::MAX` made the
/// write after the next one overflow its dot counter (a panic in a debug
/// build; in a release build the dot wrapped to 0 and the write vanished).
#[test]
fn a_client_context_with_a_counter_out_of_range_is_refused_and_the_key_stays_writable() {
    let mut node = node();
    let me = Actor {
        node: node.id(),
        epoch: node.epoch(),
    };
    let mut clock = VersionVector::new();
    clock.add(&Dot {
        node: me.node,
        epoch: me.epoch,
        counter: u64::MAX,
    });
    let put = |context: Context| ClientRequest::Put {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        context,
        consistency: Consistency::One,
        timeout_ms: None,
        sloppy_quorum: false,
        ttl_ms: None,
    };
    let mut answers = Vec::new();
    for (i, context) in [Context::from(clock), Context::empty(), Context::empty()]
        .into_iter()
        .enumerate()
    {
        node.handle_client_request(Time::ZERO, ClientId(i as u64), put(context));
        answers.extend(std::iter::from_fn(|| node.poll_output()).filter_map(|o| match o {
            Output::Reply { response, .. } => Some(response),
            _ => None,
        }));
    }
    assert!(matches!(
        answers[0],
        ClientResponse::Failed(RequestError::MalformedContext {
            reason: MalformedState::Counter { counter: u64::MAX }
        })
    ));
    assert!(
        answers[1..]
            .iter()
            .all(|a| matches!(a, ClientResponse::Written { .. }))
    );
    assert_eq!(node.store().get(b"k").unwrap().unwrap().values().count(), 2);
}

#[test]
fn listing_messages_out_of_bounds_or_order_are_refused() {
    use shoal::proto::message::{ListedStates, MAX_LIST_LIMIT};
    let mut node = node();
    let mut bound_too_long = too_long();
    bound_too_long.push(b'k');
    for message in [
        PeerMessage::ReplicaList {
            request: 1,
            start: bound_too_long.clone(),
            end: None,
            limit: 10,
        },
        PeerMessage::ReplicaList {
            request: 1,
            start: Vec::new(),
            end: Some(bound_too_long),
            limit: 10,
        },
    ] {
        assert!(matches!(refused(&mut node, message), Invalid::KeySize { .. }));
    }
    let greedy = PeerMessage::ReplicaList {
        request: 1,
        start: Vec::new(),
        end: None,
        limit: MAX_LIST_LIMIT + 1,
    };
    assert!(matches!(refused(&mut node, greedy), Invalid::TooMany { .. }));
    let unordered = PeerMessage::ReplicaListReply {
        request: 1,
        result: Ok(ListedStates {
            states: vec![ae_state(b"b", state(b"v")), ae_state(b"a", state(b"v"))],
            complete: true,
        }),
    };
    assert!(matches!(refused(&mut node, unordered), Invalid::Unordered { .. }));
    let empty_key = PeerMessage::ReplicaListReply {
        request: 1,
        result: Ok(ListedStates {
            states: vec![ae_state(b"", state(b"v"))],
            complete: true,
        }),
    };
    assert!(matches!(refused(&mut node, empty_key), Invalid::KeySize { .. }));
    // An honest one passes: an empty start, one byte past the key limit.
    let mut after_longest = too_long();
    after_longest.truncate(Config::default().max_key_bytes);
    after_longest.push(0);
    let honest = PeerMessage::ReplicaList {
        request: 1,
        start: after_longest,
        end: None,
        limit: MAX_LIST_LIMIT,
    };
    node.handle_peer_message(Time::from_micros(1_000_000), PEER, honest)
        .expect("a listing from just after the longest key is valid");
}
