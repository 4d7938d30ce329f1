//! A replica that does not serve a coordinator's request says why in a
//! type the coordinator (and an operator reading logs) can tell apart.

use shoal::proto::message::{Placement, ReplicaError};
use shoal::proto::version::{Actor, VersionVector};
use shoal::proto::{Config, MemStore, Node, NodeId, Output, PeerMessage, Time, Versioned};

fn node(config: Config) -> Node<MemStore> {
    let mut node = Node::new(
        {
            let mut cfg = config;
            cfg.node_id = Some(NodeId(1));
            cfg
        },
        MemStore::new(),
        3,
    )
    .unwrap();
    node.set_members([NodeId(1), NodeId(2), NodeId(3)]);
    node
}

fn state() -> Versioned {
    let mut state = Versioned::new();
    let actor = Actor {
        node: NodeId(2),
        epoch: 1,
    };
    state
        .write(actor, &VersionVector::new(), Some(b"v".to_vec()), 1, 8)
        .unwrap();
    state
}

/// The answer to the one request sent to `node`.
fn reply(node: &mut Node<MemStore>, message: PeerMessage) -> Result<(), ReplicaError> {
    node.handle_peer_message(Time::from_micros(1), NodeId(2), message)
        .unwrap();
    while let Some(output) = node.poll_output() {
        if let Output::Send {
            message: PeerMessage::ReplicaPutReply { result, .. },
            ..
        } = output
        {
            return result;
        }
    }
    panic!("no ReplicaPutReply");
}

#[test]
fn a_coordinator_with_a_stale_ring_is_told_both_placements() {
    let mut node = node(Config::default());
    let theirs = Placement {
        current: vec![NodeId(2), NodeId(3)],
        future: None,
    };
    let put = PeerMessage::ReplicaPut {
        request: 1,
        key: b"k".to_vec(),
        object: state().into(),
        placement: Some(theirs.clone()),
    };
    match reply(&mut node, put) {
        Err(ReplicaError::PlacementMismatch { ours, theirs: seen }) => {
            assert_eq!(seen, theirs);
            assert_eq!(ours.current.len(), 3);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hint_over_the_limits_is_refused_as_such() {
    let mut node = node({
        let mut cfg = Config::default();
        cfg.hinted_handoff = false;
        cfg
    });
    let hinted = PeerMessage::HintedPut {
        request: 1,
        key: b"k".to_vec(),
        object: state().into(),
        target: NodeId(3),
        placement: None,
        written_to: vec![NodeId(1), NodeId(2), NodeId(3)],
    };
    assert_eq!(
        reply(&mut node, hinted),
        Err(ReplicaError::HintLimits { target: NodeId(3) })
    );
}

#[test]
fn a_replica_whose_storage_failed_says_so() {
    let mut node = node(Config::default());
    node.store_mut().set_full(true);
    let put = |request| PeerMessage::ReplicaPut {
        request,
        key: b"k".to_vec(),
        object: state().into(),
        placement: None,
    };
    assert!(matches!(
        reply(&mut node, put(1)),
        Err(ReplicaError::Storage { .. })
    ));
    // Refused at once from then on, still as a storage failure.
    assert!(matches!(
        reply(&mut node, put(2)),
        Err(ReplicaError::Storage { .. })
    ));
}

#[test]
fn a_hint_for_a_node_that_is_not_a_member_is_refused_and_not_kept() {
    let mut node = node(Config::default());
    let hinted = |target| PeerMessage::HintedPut {
        request: 1,
        key: b"k".to_vec(),
        object: state().into(),
        target,
        placement: None,
        written_to: vec![NodeId(1), NodeId(2)],
    };
    assert_eq!(
        reply(&mut node, hinted(NodeId(42))),
        Err(ReplicaError::UnknownNode { node: NodeId(42) })
    );
    assert_eq!(node.hints_held(), 0);
    assert_eq!(reply(&mut node, hinted(NodeId(3))), Ok(()));
    assert_eq!(node.hints_held(), 1);
}
