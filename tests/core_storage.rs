//! A full or failing disk, on the virtual-time cluster: a storage error on
//! one replica is that replica failing the request, never the request
//! failing while other replicas could make W. The node knows its storage
//! failed, says so in its status, tells the others (they write to
//! stand-ins and keep hints for it), and takes writes again by itself once
//! the store does.

use shoal::proto::harness::Cluster;
use shoal::proto::{ClientResponse, Config, Consistency, Context, NodeId, Store};
use std::time::Duration;

fn converged(size: usize) -> Cluster {
    let mut c = Cluster::with_membership(size, Config::default(), 5);
    c.run_for(Duration::from_secs(5));
    c
}

fn written(response: &ClientResponse) -> bool {
    matches!(response, ClientResponse::Written { .. })
}

fn holds(c: &Cluster, node: NodeId, key: &[u8]) -> bool {
    c.node(node).store().get(key).unwrap().is_some()
}

/// Keys whose replicas include `node`.
fn keys_on(c: &Cluster, node: NodeId, count: usize) -> Vec<Vec<u8>> {
    (0..)
        .map(|i| format!("key{i}").into_bytes())
        .filter(|k| c.replicas(k).contains(&node))
        .take(count)
        .collect()
}

#[test]
fn a_coordinator_whose_disk_is_full_still_gathers_its_quorum_from_the_other_replicas() {
    let mut c = converged(3);
    let full = c.node_ids()[0];
    c.set_disk_full(full, true);
    for key in keys_on(&c, full, 20) {
        let response = c.put(full, &key, b"v", Context::empty(), Consistency::Quorum);
        assert!(
            written(&response),
            "a QUORUM write through the full node failed: {response:?}"
        );
        let others = c.replicas(&key).into_iter().filter(|&n| n != full);
        assert_eq!(others.filter(|&n| holds(&c, n, &key)).count(), 2);
        assert!(!holds(&c, full, &key));
    }
    assert!(c.node(full).storage_failure().is_some());
}

#[test]
fn a_full_node_says_so_serves_reads_and_is_treated_as_down_for_writes_until_it_has_room() {
    let mut c = converged(4);
    let full = c.node_ids()[1];
    let keys = keys_on(&c, full, 10);
    let before = keys[0].clone();
    let coordinator = |c: &Cluster, key: &[u8]| c.replicas(key).into_iter().find(|&n| n != full).unwrap();
    let at = coordinator(&c, &before);
    assert!(written(&c.put(
        at,
        &before,
        b"old",
        Context::empty(),
        Consistency::All
    )));

    c.set_disk_full(full, true);
    // The first write it is sent fails there; from then on it refuses
    // writes at once and tells the others.
    let at = coordinator(&c, &keys[1]);
    c.put(at, &keys[1], b"v", Context::empty(), Consistency::One);
    c.run_for(Duration::from_secs(2));
    let status = c.node(full).status_report();
    assert!(status.storage_failure.is_some());
    for node in c.node_ids() {
        let report = c.node(node).status_report();
        let row = report.members.iter().find(|m| m.node == full).unwrap();
        assert!(row.storage_failed, "{node} does not know {full}'s storage failed");
        assert!(row.up, "a full node is still up");
    }
    // Reads are still served from it.
    let found = c.get(full, &before, Consistency::One);
    assert!(
        matches!(&found, ClientResponse::Found { values, .. } if values.len() == 1),
        "{found:?}"
    );

    // Sloppy writes at ALL succeed: a stand-in takes its share, with a hint.
    for key in &keys[2..] {
        let at = coordinator(&c, key);
        let response = c.put(at, key, b"new", Context::empty(), Consistency::All);
        assert!(written(&response), "{response:?}");
        assert!(!holds(&c, full, key));
    }
    let hints: u64 = c.nodes().map(|n| n.hints_held()).sum();
    assert!(hints >= 8, "stand-ins keep hints for the full node ({hints})");

    // Room again: it recovers by itself, the others see it, hints arrive.
    c.set_disk_full(full, false);
    c.run_for(Duration::from_secs(10));
    assert_eq!(c.node(full).storage_failure(), None);
    for node in c.node_ids() {
        let report = c.node(node).status_report();
        assert!(
            !report
                .members
                .iter()
                .find(|m| m.node == full)
                .unwrap()
                .storage_failed
        );
    }
    for key in &keys[2..] {
        assert!(
            holds(&c, full, key),
            "a hint for the full node was never delivered"
        );
    }
    assert_eq!(c.nodes().map(|n| n.hints_held()).sum::<u64>(), 0);
    assert_eq!(c.node(full).stats().storage_failures, 1);
}

/// A write always has a copy on its coordinator (sloppy stand-ins keep
/// only hints, which may be dropped once the coordinator's copy can repair
/// what they held). A replica whose own copy of a write fails (its disk has
/// just filled) hands the write to another replica to coordinate, and
/// forwards writes while its storage has failed; a write whose only copies
/// were a failed coordinator's hints was lost in the simulator (seed 308,
/// partition, crash and diskfull). Once it recovers, a blind write it
/// coordinates makes a sibling of the earlier one, never supersedes it.
#[test]
fn a_write_whose_coordinator_cannot_store_it_is_coordinated_by_another_replica() {
    let mut c = converged(3);
    let me = c.node_ids()[0];
    let key = keys_on(&c, me, 1).remove(0);
    c.set_disk_full(me, true);
    let first = c.put(me, &key, b"first", Context::empty(), Consistency::Two);
    let ClientResponse::Written { dot, .. } = first else {
        panic!("{first:?}");
    };
    assert_ne!(dot.node, me, "the full node issued the write's dot");
    assert!(!holds(&c, me, &key));
    let others = c.replicas(&key).into_iter().filter(|&n| n != me);
    assert_eq!(others.filter(|&n| holds(&c, n, &key)).count(), 2);
    let other = keys_on(&c, me, 2).remove(1);
    assert!(written(&c.put(
        me,
        &other,
        b"forwarded",
        Context::empty(),
        Consistency::Two
    )));
    assert!(!holds(&c, me, &other));

    c.set_disk_full(me, false);
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.node(me).storage_failure(), None);
    let second = c.put(me, &key, b"second", Context::empty(), Consistency::One);
    let ClientResponse::Written { dot, .. } = second else {
        panic!("{second:?}");
    };
    assert_eq!(dot.node, me, "it coordinates writes again");
    c.run_for(Duration::from_secs(1));
    let found = c.get(me, &key, Consistency::All);
    let ClientResponse::Found { values, .. } = found else {
        panic!("{found:?}");
    };
    let mut values: Vec<&[u8]> = values.iter().map(|v| &v.value[..]).collect();
    values.sort();
    assert_eq!(
        values,
        vec![&b"first"[..], b"second"],
        "two blind writes are siblings"
    );
}
