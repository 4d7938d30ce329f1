//! The core's cross-subsystem invariants (`Node::check_invariants`): they
//! hold while a node works hard, and the check does catch them broken.

use shoal::proto::harness::Cluster;
use shoal::proto::version::{Actor, VersionVector};
use shoal::proto::{ClientResponse, Config, Consistency, Context, MemStore, Node, NodeId, Store, Versioned};
use std::time::Duration;

fn assert_invariants(c: &Cluster) {
    for node in c.nodes() {
        if let Err(broken) = node.check_invariants() {
            panic!("node {}: {broken}", node.id());
        }
    }
}

/// Many more hint batches than the batch-id allocator keeps tags for
/// before it prunes: each acknowledgement still reaches hint replay (the
/// sender), every hint is delivered once, and the invariants hold at
/// every step.
#[test]
fn every_hint_batch_is_acknowledged_to_its_sender_across_prunings() {
    let config = {
        let mut cfg = Config::default();
        cfg.hint_batch = 1;
        cfg.hint_replay_rate = 1_000;
        cfg
    };
    let mut c = Cluster::new(3, config, 5);
    let ids = c.node_ids();
    let (coordinator, absent) = (ids[0], ids[1]);
    c.cut_off(absent);
    let keys: Vec<Vec<u8>> = (0..)
        .map(|i| format!("key{i}").into_bytes())
        .filter(|k| {
            let replicas = c.replicas(k);
            replicas[0] == coordinator && replicas.contains(&absent)
        })
        .take(200)
        .collect();
    for key in &keys {
        let written = c.put(coordinator, key, b"v", Context::empty(), Consistency::Quorum);
        assert!(matches!(written, ClientResponse::Written { .. }), "{written:?}");
    }
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.node(coordinator).hints_held(), 200);
    c.reconnect(absent);
    for _ in 0..100 {
        c.run_for(Duration::from_millis(100));
        assert_invariants(&c);
    }
    let stats = c.node(coordinator).stats();
    assert_eq!(c.node(coordinator).hints_held(), 0, "every hint acknowledged");
    assert_eq!(stats.hints_replayed, 200, "each replayed once, in its own batch");
    for key in &keys {
        let state = c.node(absent).store().get(key).unwrap();
        assert!(
            state.is_some_and(|s| s.values().count() == 1),
            "{key:?} delivered"
        );
    }
}

/// A digest index changed behind the node's back (a damaged disk) leaves
/// the digest tree out of step with it, and the check says so.
#[test]
fn the_check_finds_a_digest_tree_out_of_step_with_the_index() {
    let mut store = MemStore::new();
    let mut state = Versioned::new();
    let writer = Actor {
        node: NodeId(9),
        epoch: 1,
    };
    state
        .write(writer, &VersionVector::new(), Some(b"v".to_vec()), 1, 8)
        .unwrap();
    for i in 0..20 {
        store.put(format!("k{i}").as_bytes(), &state).unwrap();
    }
    let mut node = Node::new(Config::default(), store, 1).unwrap();
    assert_eq!(node.check_invariants(), Ok(()));
    node.store_mut().debug_damage_index(b"k3", Some(12345));
    let broken = node.check_invariants().unwrap_err();
    assert!(broken.contains("digest tree"), "{broken}");
}
