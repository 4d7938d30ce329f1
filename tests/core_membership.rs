//! SWIM membership and ring metadata on the virtual-time cluster.

use shoal::proto::harness::Cluster;
use shoal::proto::message::Operation;
use shoal::proto::{ClientResponse, Config, Consistency, Context, RequestError};
use std::time::Duration;

const KEY: &[u8] = b"user:7";

fn converged(size: usize) -> Cluster {
    let mut c = Cluster::with_membership(size, Config::default(), 11);
    c.run_for(Duration::from_secs(5));
    c
}

#[test]
fn five_nodes_find_each_other_from_one_seed_and_agree_on_the_ring() {
    let c = converged(5);
    let ids = c.node_ids();
    for node in c.nodes() {
        assert_eq!(
            node.ring().nodes(),
            &ids[..],
            "{} sees a different ring",
            node.id()
        );
        assert!(
            ids.iter().all(|&id| node.is_up(id)),
            "{} misses a live member",
            node.id()
        );
    }
}

#[test]
fn a_cut_off_replica_is_marked_down_within_the_failure_detector_time() {
    let mut c = converged(3);
    let replicas = c.replicas(KEY);
    c.cut_off(replicas[2]);
    c.run_for(Duration::from_secs(8));
    assert!(!c.node(replicas[0]).is_up(replicas[2]));
    assert!(!c.node(replicas[1]).is_up(replicas[2]));
    // Down members stay in the ring: a failure is not a topology change.
    assert_eq!(c.node(replicas[0]).ring().nodes().len(), 3);

    // ALL now fails at once rather than at the deadline, naming the count.
    let start = c.now();
    let response = c.get(replicas[0], KEY, Consistency::All);
    assert_eq!(
        response,
        ClientResponse::Failed(RequestError::QuorumNotMet {
            operation: Operation::Get,
            consistency: Consistency::All,
            succeeded: 2,
            required: 3,
            replicas: 3,
        })
    );
    assert!(c.now().saturating_since(start) < Duration::from_millis(100));
    let put = c.put(replicas[1], KEY, b"v", Context::empty(), Consistency::Quorum);
    assert!(matches!(put, ClientResponse::Written { .. }));
}

#[test]
fn a_reconnected_node_is_marked_up_again() {
    let mut c = converged(3);
    let ids = c.node_ids();
    c.cut_off(ids[1]);
    c.run_for(Duration::from_secs(10));
    assert!(!c.node(ids[0]).is_up(ids[1]));
    c.reconnect(ids[1]);
    c.run_for(Duration::from_secs(40));
    assert!(c.node(ids[0]).is_up(ids[1]), "node did not come back");
    assert!(c.node(ids[1]).is_up(ids[0]));
}

#[test]
fn a_forwarded_write_moves_on_from_a_replica_marked_down() {
    let mut c = converged(5);
    let outsider = c.non_replica(KEY).unwrap();
    let replicas = c.replicas(KEY);
    c.cut_off(replicas[0]);
    c.run_for(Duration::from_secs(8));
    assert!(!c.node(outsider).is_up(replicas[0]));
    let put = c.put(outsider, KEY, b"v", Context::empty(), Consistency::Quorum);
    assert!(matches!(put, ClientResponse::Written { .. }), "{put:?}");
}

#[test]
fn a_node_that_does_not_know_the_ring_yet_refuses_clients() {
    // Right after start, before any peer sent the ring: refuse rather than
    // act as the only replica of every key.
    let c = Cluster::with_membership(3, Config::default(), 5);
    let late = c.node_ids()[2];
    assert!(!c.node(late).is_ready());
    let mut c = c;
    let response = c.get(late, KEY, Consistency::One);
    assert!(
        matches!(response, ClientResponse::Failed(RequestError::NotReady { .. })),
        "{response:?}"
    );
    c.run_for(Duration::from_secs(3));
    assert!(c.node(late).is_ready());
}

/// Nodes that each believed every other down (each cut off alone long
/// enough) find each other again once the network heals, although the
/// seed they joined through is gone: SWIM no longer probes members it
/// believes down, so each announces itself to every member it knows.
#[test]
fn nodes_isolated_from_all_find_each_other_again_without_their_seed() {
    let mut c = converged(4);
    let ids = c.node_ids();
    let (seed, rest) = (ids[0], &ids[1..]);
    c.cut_off(seed); // Gone for good.
    for &node in rest {
        c.cut_off(node);
    }
    c.run_for(Duration::from_secs(30));
    for &node in rest {
        assert!(
            rest.iter()
                .all(|&other| other == node || !c.node(node).is_up(other))
        );
        c.reconnect(node);
    }
    c.run_for(Duration::from_secs(20));
    for &node in rest {
        for &other in rest {
            assert!(c.node(node).is_up(other), "{node} does not see {other} up");
        }
    }
}
