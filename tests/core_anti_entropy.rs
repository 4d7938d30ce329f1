//! Anti-entropy on the virtual-time cluster: replicas that missed writes
//! converge without any read, and in-sync replicas exchange only roots.

use shoal::proto::harness::Cluster;
use shoal::proto::version::{Actor, VersionVector};
use shoal::proto::{ClientResponse, Config, Consistency, Context, MemStore, NodeId, Store, Versioned};
use std::time::Duration;

fn no_read_repair() -> Config {
    let mut cfg = Config::default();
    cfg.read_repair = false;
    cfg
}

fn states(c: &Cluster, key: &[u8]) -> Vec<Option<shoal::proto::Versioned>> {
    c.replicas(key)
        .iter()
        .map(|&n| c.node(n).store().get(key).unwrap())
        .collect()
}

#[test]
fn replicas_that_missed_writes_converge_without_reads() {
    let mut c = Cluster::new(4, no_read_repair(), 3);
    let lagging = c.node_ids()[1];
    c.cut_off(lagging);
    let keys: Vec<Vec<u8>> = (0..200).map(|i| format!("key{i}").into_bytes()).collect();
    let mut written = 0;
    for key in &keys {
        let at = *c.replicas(key).iter().find(|&&n| n != lagging).unwrap();
        if let ClientResponse::Written { .. } = c.put(at, key, b"v", Context::empty(), Consistency::Two) {
            written += 1;
        }
    }
    assert_eq!(written, 200);
    c.settle();
    c.reconnect(lagging);
    let behind = keys
        .iter()
        .filter(|k| states(&c, k).iter().any(Option::is_none))
        .count();
    assert!(behind > 100, "the lagging node missed its share: {behind}");

    c.enable_anti_entropy();
    c.run_for(Duration::from_secs(120));
    for key in &keys {
        let s = states(&c, key);
        assert!(
            s.iter().all(|x| x.is_some() && *x == s[0]),
            "{} did not converge",
            String::from_utf8_lossy(key)
        );
    }
    let repaired: u64 = c
        .node_ids()
        .iter()
        .map(|&n| c.node(n).stats().ae_keys_repaired)
        .sum();
    assert_eq!(repaired as usize, behind, "each missing copy repaired once");
}

#[test]
fn concurrent_divergent_writes_become_siblings_everywhere() {
    let mut c = Cluster::new(3, no_read_repair(), 4);
    let key = b"k";
    let replicas = c.replicas(key);
    c.cut_off(replicas[0]);
    c.put(replicas[1], key, b"b", Context::empty(), Consistency::One);
    c.settle();
    c.reconnect(replicas[0]);
    c.cut_off(replicas[1]);
    c.cut_off(replicas[2]);
    c.put(replicas[0], key, b"a", Context::empty(), Consistency::One);
    c.settle();
    c.reconnect(replicas[1]);
    c.reconnect(replicas[2]);
    c.enable_anti_entropy();
    c.run_for(Duration::from_secs(60));
    for state in states(&c, key) {
        let values: Vec<&[u8]> = state
            .as_ref()
            .unwrap()
            .values()
            .map(|s| s.value.as_deref().unwrap())
            .collect();
        assert_eq!(values.len(), 2, "both writes kept as siblings: {values:?}");
    }
}

#[test]
fn replicas_in_sync_exchange_summaries_only() {
    let mut c = Cluster::new(3, no_read_repair(), 5);
    for i in 0..100 {
        let key = format!("k{i}").into_bytes();
        let at = c.replicas(&key)[0];
        c.put(at, &key, b"v", Context::empty(), Consistency::All);
    }
    c.settle();
    c.enable_anti_entropy();
    c.run_for(Duration::from_secs(60));
    let ids = c.node_ids();
    for (i, &id) in ids.iter().enumerate() {
        let stats = c.node(id).stats();
        // The lower id of each pair starts its exchanges: the highest id
        // starts none, the others do.
        assert_eq!(stats.ae_exchanges > 0, i + 1 < ids.len(), "{stats:?}");
        assert_eq!(stats.ae_keys_repaired, 0);
        // One interval summary (28 bytes) per shared range, no keys, and
        // no answer from a peer in sync.
        assert!(
            stats.ae_bytes_sent <= 28 * 2 * 1024 * stats.ae_exchanges,
            "{stats:?}"
        );
    }
}

#[test]
fn a_damaged_digest_index_entry_is_found_by_the_sweep_and_rewritten() {
    let config = {
        let mut cfg = no_read_repair();
        cfg.replication = 2;
        cfg
    };
    let (mut a, mut b) = (MemStore::new(), MemStore::new());
    let mut writer = Versioned::new();
    writer
        .write(
            Actor {
                node: NodeId(9),
                epoch: 1,
            },
            &VersionVector::new(),
            Some(b"v".to_vec()),
            1,
            8,
        )
        .unwrap();
    for i in 0..50 {
        let key = format!("k{i}").into_bytes();
        a.put(&key, &writer).unwrap();
        b.put(&key, &writer).unwrap();
    }
    // Same data on both, but one index entry of `a` is wrong and one lost.
    a.debug_damage_index(b"k7", Some(12345));
    a.debug_damage_index(b"k8", None);
    let mut c = Cluster::with_stores(config, 3, vec![a, b]);
    let ids = c.node_ids();
    let summary = |c: &Cluster, i: usize| c.node(ids[i]).summary(0, u64::MAX).unwrap();
    assert_ne!(
        summary(&c, 0),
        summary(&c, 1),
        "the damage shows in the digest tree"
    );
    c.enable_anti_entropy();
    c.run_for(Duration::from_secs(30));
    assert_eq!(summary(&c, 0), summary(&c, 1));
    let repaired: u64 = c.nodes().map(|n| n.stats().digests_repaired).sum();
    assert_eq!(repaired, 2);
}

/// Three stores holding `k0..k20` alike, the first with `damaged` records
/// that fail their checksum.
fn stores_with_corrupt_records(damaged: &[&[u8]]) -> Vec<MemStore> {
    let mut writer = Versioned::new();
    let actor = Actor {
        node: NodeId(9),
        epoch: 1,
    };
    writer
        .write(actor, &VersionVector::new(), Some(b"v".to_vec()), 1, 8)
        .unwrap();
    let mut stores: Vec<MemStore> = (0..3).map(|_| MemStore::new()).collect();
    for store in &mut stores {
        for i in 0..20 {
            store.put(format!("k{i}").as_bytes(), &writer).unwrap();
        }
    }
    for key in damaged {
        stores[0].debug_corrupt_record(key);
    }
    stores
}

/// The node whose record of `key` fails its checksum.
fn damaged_node(c: &Cluster, key: &[u8]) -> NodeId {
    c.node_ids()
        .into_iter()
        .find(|&n| c.node(n).store().get(key).is_err())
        .expect("the damage is there")
}

#[test]
fn a_corrupt_record_is_not_served_and_a_read_repairs_it_from_the_replicas() {
    let mut c = Cluster::with_stores(Config::default(), 4, stores_with_corrupt_records(&[b"k7"]));
    let damaged = damaged_node(&c, b"k7");
    // Served from the good replicas, even through the damaged node at ALL.
    match c.get(damaged, b"k7", Consistency::All) {
        ClientResponse::Found { values, .. } => assert_eq!(values[0].value, &b"v"[..]),
        other => panic!("{other:?}"),
    }
    c.settle();
    assert_eq!(c.node(damaged).stats().corrupt_records_dropped, 1, "reported");
    let repaired = c.node(damaged).store().get(b"k7").unwrap().expect("written back");
    assert_eq!(
        repaired.values().next().unwrap().value.as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn a_corrupt_record_nobody_reads_is_repaired_by_the_sweep_and_anti_entropy() {
    let mut c = Cluster::with_stores(no_read_repair(), 5, stores_with_corrupt_records(&[b"k3", b"k11"]));
    let damaged = damaged_node(&c, b"k3");
    let healthy = c.node_ids().into_iter().find(|&n| n != damaged).unwrap();
    c.enable_anti_entropy();
    c.run_for(Duration::from_secs(40));
    for key in [&b"k3"[..], b"k11"] {
        let state = c.node(damaged).store().get(key).unwrap().expect("repaired");
        assert_eq!(state.values().next().unwrap().value.as_deref(), Some(&b"v"[..]));
    }
    assert_eq!(c.node(damaged).stats().corrupt_records_dropped, 2);
    let summary = |n: NodeId| c.node(n).summary(0, u64::MAX).unwrap();
    assert_eq!(summary(damaged), summary(healthy));
}
