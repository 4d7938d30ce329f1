//! Hinted handoff and sloppy quorum on the virtual-time cluster.

use shoal::proto::harness::Cluster;
use shoal::proto::message::{AdminRequest, AdminResponse, HintsPending, PeerMessage};
use shoal::proto::store::{Hint, encode_hint};
use shoal::proto::version::Actor;
use shoal::proto::{
    ClientRequest, ClientResponse, Config, Consistency, Context, MemStore, Node, NodeId, Store, Versioned,
};
use std::time::Duration;

const KEY: &[u8] = b"user:hinted";

fn assert_written(response: &ClientResponse) {
    assert!(
        matches!(response, ClientResponse::Written { .. }),
        "write failed: {response:?}"
    );
}

fn stored(c: &Cluster, node: NodeId, key: &[u8]) -> bool {
    c.node(node)
        .store()
        .get(key)
        .unwrap()
        .is_some_and(|state| state.values().count() > 0)
}

fn held(c: &Cluster) -> u64 {
    c.nodes().map(|n| n.hints_held()).sum()
}

fn strict_put(key: &[u8], value: &[u8], consistency: Consistency) -> ClientRequest {
    ClientRequest::Put {
        key: key.to_vec(),
        value: value.to_vec(),
        context: Context::empty(),
        consistency,
        timeout_ms: None,
        sloppy_quorum: false,
        ttl_ms: None,
    }
}

/// Keys whose first replica is `coordinator` and that `absent` replicates.
fn keys_for(c: &Cluster, coordinator: NodeId, absent: NodeId, count: usize) -> Vec<Vec<u8>> {
    (0..)
        .map(|i| format!("key{i}").into_bytes())
        .filter(|k| {
            let replicas = c.replicas(k);
            replicas[0] == coordinator && replicas.contains(&absent)
        })
        .take(count)
        .collect()
}

#[test]
fn a_replica_that_missed_a_write_gets_it_from_the_coordinators_hint() {
    let mut c = Cluster::new(3, Config::default(), 3);
    let replicas = c.replicas(KEY);
    let (coordinator, absent) = (replicas[0], replicas[2]);
    c.cut_off(absent);
    assert_written(&c.put(coordinator, KEY, b"v", Context::empty(), Consistency::Quorum));
    // The write lingers until its deadline for the silent replica, then
    // leaves a hint for it.
    c.run_for(Duration::from_secs(3));
    assert_eq!(
        c.node(coordinator).hints_pending(),
        vec![HintsPending {
            target: absent,
            count: 1,
            bytes: c.node(coordinator).hints_pending()[0].bytes,
        }]
    );
    assert!(!stored(&c, absent, KEY));

    c.reconnect(absent);
    c.run_for(Duration::from_secs(10));
    assert!(stored(&c, absent, KEY), "the hint was delivered");
    assert_eq!(held(&c), 0, "and deleted once acknowledged");
    assert_eq!(c.node(coordinator).stats().hints_replayed, 1);
}

#[test]
fn sloppy_quorum_counts_a_fallback_toward_w_and_the_fallback_hands_the_write_over() {
    let mut c = Cluster::with_membership(5, Config::default(), 21);
    c.run_for(Duration::from_secs(5));
    let replicas = c.replicas(KEY);
    let (coordinator, down) = (replicas[0], replicas[2]);
    c.cut_off(down);
    c.run_for(Duration::from_secs(8));
    assert!(!c.node(coordinator).is_up(down));

    // A strict write at ALL cannot succeed with a home replica down...
    let strict = c.request(coordinator, strict_put(KEY, b"strict", Consistency::All));
    assert!(matches!(strict, ClientResponse::Failed(_)), "{strict:?}");
    // ...a sloppy one counts the next live node on the ring instead.
    assert_written(&c.put(coordinator, KEY, b"sloppy", Context::empty(), Consistency::All));
    let fallback = c
        .node_ids()
        .into_iter()
        .find(|&n| !replicas.contains(&n) && c.node(n).hints_held() > 0)
        .expect("a fallback holds a hint");
    assert_eq!(c.node(fallback).hints_pending()[0].target, down);
    assert!(!stored(&c, fallback, KEY), "a hint is not data");

    c.reconnect(down);
    c.run_for(Duration::from_secs(15));
    let state = c.node(down).store().get(KEY).unwrap().expect("delivered");
    let mut values: Vec<Vec<u8>> = state
        .values()
        .map(|s| s.value.as_deref().unwrap().to_vec())
        .collect();
    values.sort();
    // The failed strict write is not rolled back: its coordinator's hint
    // delivers it too, as a sibling.
    assert_eq!(values, vec![b"sloppy".to_vec(), b"strict".to_vec()]);
    assert_eq!(held(&c), 0);
}

#[test]
fn hints_older_than_the_window_are_dropped_not_delivered() {
    let config = {
        let mut cfg = Config::default();
        cfg.hint_window = Duration::from_secs(1);
        cfg
    };
    let mut c = Cluster::new(3, config, 5);
    let replicas = c.replicas(KEY);
    c.cut_off(replicas[2]);
    assert_written(&c.put(replicas[0], KEY, b"v", Context::empty(), Consistency::Quorum));
    c.run_for(Duration::from_secs(10));
    c.reconnect(replicas[2]);
    c.run_for(Duration::from_secs(10));
    assert!(!stored(&c, replicas[2], KEY), "left to anti-entropy");
    assert_eq!(held(&c), 0);
    assert_eq!(c.node(replicas[0]).stats().hints_dropped, 1);
    assert_eq!(c.node(replicas[0]).stats().hints_replayed, 0);
}

/// A short hint window, as in the simulator: hints re-home up to 17 s.
fn short_window() -> Config {
    let mut cfg = Config::default();
    cfg.hint_window = Duration::from_secs(4);
    cfg.tombstone_grace = Duration::from_secs(30);
    cfg
}

/// A five-node cluster where `KEY`'s third home replica has been down
/// long enough for the others to know: (cluster, first, second, down).
fn third_replica_down(seed: u64) -> (Cluster, NodeId, NodeId, NodeId) {
    let mut c = Cluster::with_membership(5, short_window(), seed);
    c.run_for(Duration::from_secs(5));
    let replicas = c.replicas(KEY);
    c.cut_off(replicas[2]);
    c.run_for(Duration::from_secs(8));
    assert!(!c.node(replicas[0]).is_up(replicas[2]));
    (c, replicas[0], replicas[1], replicas[2])
}

fn fallback_holding_hint(c: &Cluster) -> NodeId {
    let replicas = c.replicas(KEY);
    c.node_ids()
        .into_iter()
        .find(|&n| !replicas.contains(&n) && c.node(n).hints_held() > 0)
        .expect("a fallback holds a hint")
}

#[test]
fn a_fallbacks_hint_past_the_window_is_re_homed_to_the_live_home_replicas() {
    let (mut c, first, second, down) = third_replica_down(47);
    // The second home replica misses the write (not yet known down), so
    // the write is acknowledged by the first and a fallback's hint only.
    c.cut_off(second);
    assert_written(&c.put(first, KEY, b"v", Context::empty(), Consistency::Quorum));
    let fallback = fallback_holding_hint(&c);
    // Then the first loses its disk, and with it the write.
    c.wipe(first, short_window(), 99);
    c.reconnect(second);
    assert!(!stored(&c, first, KEY) && !stored(&c, second, KEY));

    // The third replica stays down past the hint window: the fallback
    // pushes the write to the home replicas that are up.
    c.run_for(Duration::from_secs(12));
    assert!(stored(&c, second, KEY), "re-homed to the second replica");
    assert!(stored(&c, first, KEY), "and to the wiped first one");
    assert!(!stored(&c, down, KEY));
    assert_eq!(c.node(fallback).hints_held(), 0, "deleted once acknowledged");
    assert_eq!(c.node(fallback).stats().hints_rehomed, 1);
    assert_eq!(c.node(fallback).stats().hints_dropped, 0);
}

#[test]
fn a_hint_no_home_replica_can_take_is_kept_then_dropped_at_the_re_home_limit() {
    let (mut c, first, second, down) = third_replica_down(48);
    assert_written(&c.put(first, KEY, b"v", Context::empty(), Consistency::Quorum));
    let fallback = fallback_holding_hint(&c);
    c.cut_off(first);
    c.cut_off(second);
    // Past the window (4 s) but within the re-home limit (17 s), it waits
    // for a home replica to come up.
    c.run_for(Duration::from_secs(10));
    assert_eq!(c.node(fallback).hints_held(), 1);
    // Past the limit it is dropped: a value that old could outlive a
    // collected tombstone.
    c.run_for(Duration::from_secs(9));
    assert_eq!(c.node(fallback).hints_held(), 0);
    assert_eq!(c.node(fallback).stats().hints_dropped, 1);
    assert_eq!(c.node(fallback).stats().hints_rehomed, 0);
    c.reconnect(down);
    c.run_for(Duration::from_secs(10));
    assert!(!stored(&c, down, KEY), "left to anti-entropy");
}

#[test]
fn no_hint_is_stored_past_the_byte_limit_per_replica() {
    let config = {
        let mut cfg = Config::default();
        cfg.max_hint_bytes_per_replica = 1000;
        cfg
    };
    let mut c = Cluster::new(3, config, 5);
    let coordinator = c.replicas(KEY)[0];
    let absent = c.replicas(KEY)[2];
    c.cut_off(absent);
    for key in keys_for(&c, coordinator, absent, 20) {
        let value = vec![7u8; 100];
        assert_written(&c.put(coordinator, &key, &value, Context::empty(), Consistency::Quorum));
    }
    c.run_for(Duration::from_secs(3));
    let pending = c.node(coordinator).hints_pending();
    assert!(pending[0].bytes <= 1000, "{pending:?}");
    assert!(pending[0].count < 20);
    let stats = c.node(coordinator).stats();
    assert_eq!(stats.hints_stored + stats.hints_dropped, 20);
}

/// A cluster where `coordinator` holds a hint for each of `count` keys,
/// for `absent`, which is still cut off.
fn hints_held_for_a_cut_off_replica(config: Config, count: usize) -> (Cluster, NodeId, NodeId, Vec<Vec<u8>>) {
    let mut c = Cluster::new(3, config, 9);
    let coordinator = c.replicas(KEY)[0];
    let absent = c.replicas(KEY)[2];
    c.cut_off(absent);
    let keys = keys_for(&c, coordinator, absent, count);
    for key in &keys {
        assert_written(&c.put(coordinator, key, b"v", Context::empty(), Consistency::Quorum));
    }
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.node(coordinator).hints_held(), count as u64);
    (c, coordinator, absent, keys)
}

/// Brings `absent` back and steps in tenths of a second: in how many
/// tenths from the first acknowledged batch were all `count` hints
/// replayed? Checks they all arrived.
fn replay_tenths(c: &mut Cluster, coordinator: NodeId, absent: NodeId, keys: &[Vec<u8>]) -> u32 {
    c.reconnect(absent);
    let count = keys.len() as u64;
    let (mut started, mut ended) = (None, None);
    for tenth in 0..150u32 {
        c.run_for(Duration::from_millis(100));
        let replayed = c.node(coordinator).stats().hints_replayed;
        if replayed > 0 && started.is_none() {
            started = Some(tenth);
        }
        if replayed == count && ended.is_none() {
            ended = Some(tenth);
        }
    }
    let (started, ended) = (started.expect("replay started"), ended.expect("replay ended"));
    assert_eq!(c.node(coordinator).hints_held(), 0);
    assert!(keys.iter().all(|key| stored(c, absent, key)));
    ended - started
}

#[test]
fn replay_keeps_to_the_rate_limit() {
    let config = {
        let mut cfg = Config::default();
        cfg.hint_batch = 10;
        cfg.hint_replay_rate = 100;
        cfg
    };
    let (mut c, coordinator, absent, keys) = hints_held_for_a_cut_off_replica(config, 300);
    // 300 hints at 100 a second: about 3 s, never much faster.
    let tenths = replay_tenths(&mut c, coordinator, absent, &keys);
    assert!(
        (27..=33).contains(&tenths),
        "300 hints replayed in {tenths} tenths of a second"
    );
}

#[test]
fn a_replica_takes_replay_in_at_its_intake_rate_however_many_nodes_hold_hints() {
    // Four holders, each free to replay as fast as it likes: the replica
    // that comes back still takes in 1,000 hints a second, all together.
    let config = {
        let mut cfg = Config::default();
        cfg.hint_batch = 10;
        cfg.hint_replay_rate = 1_000_000;
        cfg.intake_rate = 1_000;
        cfg
    };
    let mut c = Cluster::with_membership(5, config, 9);
    c.run_for(Duration::from_secs(5));
    let absent = c.node_ids()[0];
    let holders = c.node_ids()[1..].to_vec();
    c.cut_off(absent);
    c.run_for(Duration::from_secs(8));
    // Strict writes: each coordinator keeps the hint for `absent` itself.
    for &holder in &holders {
        for key in keys_for(&c, holder, absent, 500) {
            assert_written(&c.request(holder, strict_put(&key, b"v", Consistency::Quorum)));
        }
    }
    for &holder in &holders {
        assert_eq!(c.node(holder).hints_held(), 500);
    }

    c.reconnect(absent);
    let mut tenths = Vec::new();
    // (The holders see it up again about 9 s later.)
    for _ in 0..150 {
        c.run_for(Duration::from_millis(100));
        tenths.push(held(&c));
    }
    // 2,000 hints at 1,000 a second: about 2 s from the first delivered.
    let started = tenths.iter().position(|&h| h < 2_000).expect("replay started");
    let ended = tenths.iter().position(|&h| h == 0).expect("replay ended");
    assert!(
        (19..=22).contains(&(ended - started)),
        "held per tenth of a second: {tenths:?}"
    );
    let first_second = 2_000 - tenths[started + 9];
    assert!(
        (900..=1_100).contains(&first_second),
        "{first_second} replayed in the first second: {tenths:?}"
    );
}

#[test]
fn a_held_back_acknowledgement_leaves_within_half_the_request_timeout() {
    use shoal::proto::Time;
    use shoal::proto::message::KeyState;
    let config = {
        let mut cfg = Config::default();
        cfg.intake_rate = 10;
        cfg
    };
    let mut node = Node::new(config, MemStore::new(), 5).unwrap();
    let states: Vec<KeyState> = (0..100)
        .map(|i| KeyState {
            key: format!("key{i}").into_bytes(),
            object: Versioned::new(),
        })
        .collect();
    let push = |node: &mut Node<MemStore>, batch: u64| {
        let message = PeerMessage::Push {
            batch,
            states: states.clone(),
        };
        node.handle_peer_message(Time::ZERO, NodeId(9), message)
            .expect("a valid message");
    };
    // The first 100 states are taken in at once; the next would be due
    // 10 s later at 10 a second, but a sender gives up on a batch after
    // twice the request timeout: its acknowledgement leaves after 1 s.
    push(&mut node, 1);
    assert_eq!(push_acks(&mut node), vec![(1, true)]);
    push(&mut node, 2);
    assert_eq!(push_acks(&mut node), vec![]);
    let due = node.poll_timeout().expect("an acknowledgement held back");
    assert_eq!(due, Time::ZERO + Duration::from_secs(1));
    node.handle_timeout(due);
    assert_eq!(push_acks(&mut node), vec![(2, true)]);
}

#[test]
fn replay_is_clocked_by_acknowledgements_within_a_window_of_batches() {
    // No rate limit to speak of: only the window of unacknowledged batches
    // and the 100 ms round trip bound the replay of 30 batches of 10.
    let tenths_with = |window: usize| {
        let config = {
            let mut cfg = Config::default();
            cfg.hint_batch = 10;
            cfg.hint_batches_in_flight = window;
            cfg.hint_replay_rate = 1_000_000;
            cfg
        };
        let (mut c, coordinator, absent, keys) = hints_held_for_a_cut_off_replica(config, 300);
        c.set_latency(Duration::from_millis(50));
        replay_tenths(&mut c, coordinator, absent, &keys)
    };
    // One batch at a time: a round trip each, about 3 s.
    let one = tenths_with(1);
    assert!((28..=31).contains(&one), "one batch in flight: {one} tenths");
    // Four at a time: a quarter of that, and never more than four per round trip.
    let four = tenths_with(4);
    assert!((6..=8).contains(&four), "four batches in flight: {four} tenths");
}

#[test]
fn batches_lost_in_flight_are_sent_again_with_those_after_them() {
    let config = {
        let mut cfg = Config::default();
        cfg.hint_batch = 10;
        cfg.hint_batches_in_flight = 4;
        cfg.hint_replay_rate = 1_000_000;
        cfg
    };
    let (mut c, coordinator, absent, keys) = hints_held_for_a_cut_off_replica(config, 300);
    c.set_latency(Duration::from_millis(50));
    c.reconnect(absent);
    let replayed = |c: &Cluster| c.node(coordinator).stats().hints_replayed;
    assert!(c.run_until(Duration::from_secs(5), |c| replayed(c) >= 100));
    // A blink: the batches on their way, and their acknowledgements, are lost.
    c.cut_off(absent);
    c.run_for(Duration::from_millis(60));
    c.reconnect(absent);
    let at_cut = replayed(&c);
    assert!(at_cut < 300);
    c.run_for(Duration::from_secs(1));
    assert_eq!(
        replayed(&c),
        at_cut,
        "nothing is acknowledged until the lost batches time out"
    );
    assert!(c.run_until(Duration::from_secs(20), |c| c.node(coordinator).hints_held() == 0));
    assert_eq!(replayed(&c), 300, "each hint is counted once");
    assert!(keys.iter().all(|key| stored(&c, absent, key)));
}

#[test]
fn hints_for_a_removed_node_are_dropped() {
    let mut c = Cluster::with_membership(4, Config::default(), 33);
    c.run_for(Duration::from_secs(5));
    let replicas = c.replicas(KEY);
    let (coordinator, gone) = (replicas[0], replicas[2]);
    c.cut_off(gone);
    c.run_for(Duration::from_secs(8));
    let strict = c.request(coordinator, strict_put(KEY, b"v", Consistency::Quorum));
    assert_written(&strict);
    assert_eq!(c.node(coordinator).hints_held(), 1);
    assert_eq!(
        c.admin(coordinator, AdminRequest::RemoveNode { node: gone }),
        AdminResponse::Done
    );
    c.run_for(Duration::from_secs(3));
    assert_eq!(held(&c), 0);
    assert_eq!(c.node(coordinator).stats().hints_dropped, 1);
}

#[test]
fn hints_survive_a_restart_and_are_counted_again() {
    let mut store = MemStore::new();
    let mut object = Versioned::new();
    let actor = Actor {
        node: NodeId(1),
        epoch: 1,
    };
    object
        .write(actor, &Default::default(), Some(b"v".to_vec()), 1, 8)
        .unwrap();
    for seq in [4, 9] {
        let hint = Hint {
            key: KEY.to_vec(),
            object: object.clone(),
            created_ms: 1,
            written_to: Vec::new(),
        };
        store.put_hint(NodeId(77), seq, &encode_hint(&hint)).unwrap();
    }
    let node = Node::new(Config::default(), store, 1).unwrap();
    let pending = node.hints_pending();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].target, pending[0].count), (NodeId(77), 2));
    assert!(pending[0].bytes > 0);
}

#[test]
fn a_leaving_node_hands_the_hints_it_holds_to_a_remaining_node() {
    let (mut c, nodes, ring) = one_token_cluster(23);
    // A replica that gains no range when `leaving` leaves: the leave does
    // not wait for it, so it can stay down throughout.
    let gains = |leaving, node| gains_range(&ring, &nodes, leaving, node);
    let (leaving, down) = nodes
        .iter()
        .flat_map(|&l| nodes.iter().map(move |&d| (l, d)))
        .find(|&(l, d)| l != d && !gains(l, d))
        .expect("some pair");
    c.cut_off(down);
    c.run_for(Duration::from_secs(8));

    // Sloppy writes while `down` is down: fallbacks hold hints for it.
    let coordinator = *nodes.iter().find(|&&n| n != down && n != leaving).unwrap();
    let keys: Vec<Vec<u8>> = (0..)
        .map(|i| format!("key{i}").into_bytes())
        .filter(|k| c.replicas(k).contains(&down))
        .take(120)
        .collect();
    for k in &keys {
        assert_written(&c.put(coordinator, k, b"v", Context::empty(), Consistency::Quorum));
    }
    let held_by_leaving = c.node(leaving).hints_held();
    assert!(
        held_by_leaving > 0,
        "the leaving node holds no hints to hand over"
    );
    let total = held(&c);

    assert_eq!(c.admin(leaving, AdminRequest::Leave), AdminResponse::Done);
    assert_eq!(c.node(leaving).hints_held(), 0, "left with hints undelivered");
    // The others now hold them all, for `down`.
    assert_eq!(held(&c), total);
    for n in c.node_ids().into_iter().filter(|&n| n != leaving) {
        assert!(c.node(n).hints_pending().iter().all(|p| p.target == down));
    }

    // `down` comes back (anti-entropy is off): every write reaches it.
    c.reconnect(down);
    c.run_for(Duration::from_secs(20));
    for k in &keys {
        assert!(
            stored(&c, down, k),
            "{} never delivered",
            String::from_utf8_lossy(k)
        );
    }
    assert_eq!(held(&c), 0);
}

/// The push acknowledgements `node` sent since last asked: each batch,
/// and whether it was a success.
fn push_acks(node: &mut Node<MemStore>) -> Vec<(u64, bool)> {
    std::iter::from_fn(|| node.poll_output())
        .filter_map(|o| match o {
            shoal::proto::Output::Send {
                message: PeerMessage::PushAck { batch, result },
                ..
            } => Some((batch, result.is_ok())),
            _ => None,
        })
        .collect()
}

/// The nodes that hold `key`'s write: as data, or as a hint.
fn copies(c: &Cluster, key: &[u8]) -> Vec<NodeId> {
    c.node_ids()
        .into_iter()
        .filter(|&n| stored(c, n, key) || c.node(n).hints_held() > 0)
        .collect()
}

#[test]
fn a_leaving_node_hands_a_hint_to_no_node_that_may_hold_the_write_already() {
    let (mut c, nodes, ring) = one_token_cluster_of(7, 1);
    // Two home replicas of KEY are cut off; the third coordinates a
    // QUORUM write, which fallbacks complete, holding hints for the two.
    let homes = c.replicas(KEY);
    let (down, coordinator) = (&homes[..2], homes[2]);
    for &node in down {
        c.cut_off(node);
    }
    c.run_for(Duration::from_secs(8));
    assert_written(&c.put(coordinator, KEY, b"v", Context::empty(), Consistency::Quorum));
    let before = copies(&c, KEY);
    let fallbacks: Vec<NodeId> = before.iter().copied().filter(|n| !homes.contains(n)).collect();
    assert!(!fallbacks.is_empty(), "no fallback holds a hint");
    // A fallback whose leave moves no range to a node that is down (the
    // leave would wait for it).
    let leaving = *fallbacks
        .iter()
        .find(|&&l| !down.iter().any(|&d| gains_range(&ring, &nodes, l, d)))
        .expect("a fallback that can leave");

    assert_eq!(c.admin(leaving, AdminRequest::Leave), AdminResponse::Done);
    assert_eq!(c.node(leaving).hints_held(), 0, "left with hints undelivered");
    // The hint went to a node that held no copy: the write has as many
    // copies as before, on other nodes.
    let after = copies(&c, KEY);
    let custodians: Vec<NodeId> = after.iter().copied().filter(|n| !before.contains(n)).collect();
    assert_eq!(custodians.len(), 1, "before {before:?}, after {after:?}");
    assert!(!homes.contains(&custodians[0]));
    assert_eq!(after.len(), before.len(), "the leave took a copy of the write");

    // The cut-off replicas come back and get the write from the hints.
    for &node in down {
        c.reconnect(node);
    }
    c.run_for(Duration::from_secs(20));
    for &node in down {
        assert!(stored(&c, node, KEY), "{node} never got the write");
    }
    assert_eq!(held(&c), 0);
}

#[test]
fn a_pushed_batch_holding_one_key_twice_keeps_both_states() {
    use shoal::proto::message::KeyState;
    let mut node = Node::new(Config::default(), MemStore::new(), 5).unwrap();
    // Two holders' concurrent versions of one key, in one batch (as hints
    // handed over by a leaving node can be).
    let version = |writer: u64, value: &[u8]| {
        let mut object = Versioned::new();
        let actor = Actor {
            node: NodeId(writer),
            epoch: 1,
        };
        object
            .write(actor, &Default::default(), Some(value.to_vec()), 1, 8)
            .unwrap();
        KeyState {
            key: KEY.to_vec(),
            object,
        }
    };
    let states = vec![version(1, b"one"), version(2, b"two")];
    node.handle_peer_message(
        shoal::proto::Time::ZERO,
        NodeId(9),
        PeerMessage::Push { batch: 1, states },
    )
    .expect("a valid message");
    assert_eq!(push_acks(&mut node), vec![(1, true)]);
    let state = node.store().get(KEY).unwrap().unwrap();
    let mut values: Vec<Vec<u8>> = state
        .values()
        .map(|s| s.value.as_deref().unwrap().to_vec())
        .collect();
    values.sort();
    assert_eq!(
        values,
        vec![b"one".to_vec(), b"two".to_vec()],
        "one state overwrote the other"
    );
}

#[test]
fn sloppy_quorum_passes_over_a_leaving_node_for_its_fallback() {
    use shoal::proto::membership::NodeStatus;
    let (mut c, nodes, ring) = one_token_cluster(29);
    // The leave waits for a node taking over one of its ranges while that
    // node is down, so `leaving` stays leaving.
    let gains = |leaving, node| gains_range(&ring, &nodes, leaving, node);
    // A key whose first fallback is `leaving` and one of whose replicas,
    // `down`, takes over a range of `leaving`.
    let (key, down, leaving) = (0..)
        .map(|i| format!("key{i}").into_bytes())
        .take(1000)
        .find_map(|k| {
            let walk: Vec<NodeId> = ring.walk(&k).take(4).collect();
            let (replicas, fallback) = (&walk[..3], walk[3]);
            let down = replicas[1..].iter().copied().find(|&d| gains(fallback, d))?;
            Some((k, down, fallback))
        })
        .expect("some key");
    let coordinator = c.replicas(&key)[0];
    c.cut_off(down);
    c.run_for(Duration::from_secs(8));
    c.submit_admin(leaving, AdminRequest::Leave);
    c.run_for(Duration::from_secs(2));
    let status = c
        .node(coordinator)
        .membership()
        .and_then(|m| m.state(leaving))
        .map(|s| s.status);
    assert_eq!(status, Some(NodeStatus::Leaving));

    assert_written(&c.put(coordinator, &key, b"v", Context::empty(), Consistency::All));
    assert_eq!(
        c.node(leaving).hints_held(),
        0,
        "the leaving node was picked as a fallback"
    );
    let replicas = c.replicas(&key);
    let fallback = c
        .node_ids()
        .into_iter()
        .find(|&n| !replicas.contains(&n) && c.node(n).hints_held() > 0)
        .expect("another fallback holds the hint");
    assert_ne!(fallback, leaving);
}

/// Whether `node` takes over a range of `leaving` when it leaves a ring of
/// `nodes` with one token each and N = 3.
/// Five nodes with one token each, so a leave moves ranges to known
/// nodes: the converged cluster, its node ids and its ring.
fn one_token_cluster(seed: u64) -> (Cluster, Vec<NodeId>, shoal::proto::ring::Ring) {
    one_token_cluster_of(5, seed)
}

fn one_token_cluster_of(size: usize, seed: u64) -> (Cluster, Vec<NodeId>, shoal::proto::ring::Ring) {
    let config = {
        let mut cfg = Config::default();
        cfg.vnodes = 1;
        cfg
    };
    let mut c = Cluster::with_membership(size, config, seed);
    c.run_for(Duration::from_secs(5));
    let nodes = c.node_ids();
    let ring = c.node(nodes[0]).ring().clone();
    (c, nodes, ring)
}

fn gains_range(ring: &shoal::proto::ring::Ring, nodes: &[NodeId], leaving: NodeId, node: NodeId) -> bool {
    let future = shoal::proto::ring::Ring::with_nodes(1, nodes.iter().copied().filter(|&n| n != leaving));
    ring.ranges(3).iter().any(|(_, last, owners)| {
        owners.contains(&leaving)
            && !owners.contains(&node)
            && future.walk_from(*last).take(3).any(|n| n == node)
    })
}

/// Hints handed over by a leaving node whose clock is `skew` ahead of the
/// receiver's (behind if negative), each `age` old by the sender's clock.
fn hand_off_with_skew(c: &mut Cluster, from: NodeId, to: NodeId, target: NodeId, skew: i64, age: Duration) {
    let mut object = Versioned::new();
    let actor = Actor { node: from, epoch: 1 };
    object
        .write(actor, &Default::default(), Some(b"v".to_vec()), 1, 8)
        .unwrap();
    let sent_ms = c.now().as_millis().saturating_add_signed(skew);
    let hint = Hint {
        key: KEY.to_vec(),
        object,
        created_ms: sent_ms - age.as_millis() as u64,
        written_to: Vec::new(),
    };
    let message = PeerMessage::HandOffHints {
        batch: 1,
        target,
        hints: vec![hint],
        sent_ms: Some(sent_ms),
    };
    c.send_as(from, to, message);
}

#[test]
fn handed_off_hints_keep_the_age_the_sender_gave_them_whatever_the_clocks_read() {
    let config = {
        let mut cfg = Config::default();
        cfg.hint_window = Duration::from_secs(60);
        cfg.tombstone_grace = Duration::from_secs(120);
        cfg
    };
    let mut c = Cluster::with_membership(4, config, 21);
    c.run_for(Duration::from_secs(5));
    let replicas = c.replicas(KEY);
    let target = replicas[0];
    let holder = replicas[1];
    let sender = *c.node_ids().iter().find(|n| !replicas.contains(n)).unwrap();
    c.cut_off(target);
    c.run_for(Duration::from_secs(8));
    assert!(!c.node(holder).is_up(target));
    let held_by = |c: &Cluster| c.node(holder).hints_held();

    // A sender an hour ahead: its 50 s old hint passes the 60 s window
    // about 10 s later, not an hour later. The holder is a home replica of
    // the key but was never sent the write: holding a hint is not holding
    // the write, so past the window it merges the hint into its own copy.
    hand_off_with_skew(&mut c, sender, holder, target, 3_600_000, Duration::from_secs(50));
    c.run_for(Duration::from_millis(10));
    assert_eq!(held_by(&c), 1);
    assert!(!stored(&c, holder, KEY), "only the hint is held");
    c.run_for(Duration::from_secs(15));
    assert_eq!(held_by(&c), 0, "the hint is past the window");
    assert!(
        stored(&c, holder, KEY),
        "the hinted write is kept by its home replica"
    );
    assert_eq!(c.node(holder).stats().hints_rehomed, 1);
    assert_eq!(c.node(holder).stats().hints_dropped, 0);

    // A sender an hour behind: its 5 s old hint is not taken as an hour old.
    hand_off_with_skew(&mut c, sender, holder, target, -3_600_000, Duration::from_secs(5));
    c.run_for(Duration::from_millis(10));
    assert_eq!(held_by(&c), 1, "a young hint is kept");
    assert_eq!(c.node(holder).stats().hints_dropped, 0);
}
