//! Tombstone garbage collection on the virtual-time cluster: removed only
//! once every home replica holds the tombstone, never before the grace, and
//! a write after the removal is never covered by the old tombstone.

use shoal::proto::harness::Cluster;
use shoal::proto::{ClientResponse, Config, Consistency, Context, NodeId, Store};
use std::time::Duration;

const KEY: &[u8] = b"user:deleted";

fn config() -> Config {
    let mut cfg = Config::default();
    cfg.hint_window = Duration::from_secs(1);
    cfg.tombstone_grace = Duration::from_secs(2);
    cfg
}

fn context(response: &ClientResponse) -> Context {
    match response {
        ClientResponse::Found { context, .. } | ClientResponse::Written { context, .. } => context.clone(),
        other => panic!("expected success, got {other:?}"),
    }
}

/// A 3-node cluster with `KEY` written and then deleted at ALL.
fn with_tombstone() -> (Cluster, Vec<NodeId>) {
    let mut c = Cluster::new(3, config(), 5);
    c.enable_anti_entropy();
    let replicas = c.replicas(KEY);
    let put = c.put(replicas[0], KEY, b"v", Context::empty(), Consistency::All);
    let deleted = c.delete(replicas[0], KEY, context(&put), Consistency::All);
    assert!(matches!(deleted, ClientResponse::Written { .. }));
    (c, replicas)
}

fn holds(c: &Cluster, node: NodeId) -> bool {
    c.node(node).store().get(KEY).unwrap().is_some()
}

#[test]
fn a_tombstone_is_removed_everywhere_once_every_replica_holds_it() {
    let (mut c, replicas) = with_tombstone();
    c.run_for(Duration::from_secs(1));
    assert!(replicas.iter().all(|&r| holds(&c, r)), "not before the grace");
    c.run_for(Duration::from_secs(5));
    for &r in &replicas {
        assert!(!holds(&c, r), "{r} still holds the tombstone");
    }
    let removed: u64 = c.nodes().map(|n| n.stats().tombstones_removed).sum();
    assert_eq!(removed, 3);
    // The digest trees agree with the stores: nothing left to repair.
    c.run_for(Duration::from_secs(30));
    let repaired: u64 = c.nodes().map(|n| n.stats().ae_keys_repaired).sum();
    assert_eq!(repaired, 0, "anti-entropy found nothing to bring back");
}

#[test]
fn a_tombstone_stays_while_a_replica_cannot_confirm_it() {
    let (mut c, replicas) = with_tombstone();
    c.cut_off(replicas[2]);
    c.run_for(Duration::from_secs(30));
    assert!(
        holds(&c, replicas[0]) && holds(&c, replicas[1]),
        "time alone removes nothing"
    );
    c.reconnect(replicas[2]);
    c.run_for(Duration::from_secs(30));
    assert!(replicas.iter().all(|&r| !holds(&c, r)));
}

#[test]
fn a_write_after_the_removal_is_never_covered_by_the_old_tombstone() {
    let (mut c, replicas) = with_tombstone();
    let old = c.node(replicas[0]).store().get(KEY).unwrap().unwrap();
    c.run_for(Duration::from_secs(10));
    assert!(!holds(&c, replicas[0]));
    let put = c.put(replicas[0], KEY, b"new", Context::empty(), Consistency::All);
    assert!(matches!(put, ClientResponse::Written { .. }));
    let new = c.node(replicas[0]).store().get(KEY).unwrap().unwrap();
    // A lagging replica may still send the old tombstone: merged with it,
    // the new value survives.
    let merged = old.merge(&new);
    let values: Vec<&[u8]> = merged.values().map(|s| s.value.as_deref().unwrap()).collect();
    assert_eq!(values, vec![&b"new"[..]]);
}

#[test]
fn a_grace_not_longer_than_the_hint_window_is_refused() {
    let config = {
        let mut cfg = Config::default();
        cfg.hint_window = Duration::from_secs(60);
        cfg.tombstone_grace = Duration::from_secs(60);
        cfg
    };
    assert_eq!(config.validate().unwrap_err().setting, "tombstone_grace");
}
