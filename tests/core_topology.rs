//! Join and leave on the virtual-time cluster: ranges move before their
//! owners change, writes made meanwhile are not missed, and nothing
//! acknowledged is lost.

use shoal::proto::harness::Cluster;
use shoal::proto::membership::NodeStatus;
use shoal::proto::message::RequestError;
use shoal::proto::message::{AdminError, AdminRequest, AdminResponse};
use shoal::proto::ring::Ring;
use shoal::proto::{ClientRequest, ClientResponse, Config, Consistency, Context, NodeId, Store};
use std::time::Duration;

fn key(i: usize) -> Vec<u8> {
    format!("user:{i}").into_bytes()
}

fn converged(size: usize, seed: u64) -> Cluster {
    converged_with(size, seed, Config::default())
}

fn converged_with(size: usize, seed: u64, config: Config) -> Cluster {
    let mut c = Cluster::with_membership(size, config, seed);
    c.run_for(Duration::from_secs(5));
    c
}

fn write(c: &mut Cluster, keys: std::ops::Range<usize>) {
    write_at(c, keys, Consistency::All);
}

fn write_at(c: &mut Cluster, keys: std::ops::Range<usize>, consistency: Consistency) {
    let at = c.node_ids()[0];
    for i in keys {
        let response = c.put(at, &key(i), b"v", Context::empty(), consistency);
        assert!(matches!(response, ClientResponse::Written { .. }), "{response:?}");
    }
}

/// `read` found `value` among the key's values.
fn assert_sees(read: &ClientResponse, value: &[u8]) {
    assert!(
        matches!(read, ClientResponse::Found { values, .. } if values.iter().any(|v| v.value == value)),
        "{read:?}"
    );
}

/// A strict write of `value` to `k` at QUORUM, coordinated by `at`.
fn quorum_put(c: &mut Cluster, at: NodeId, k: &[u8], value: &[u8]) -> ClientResponse {
    let put = ClientRequest::Put {
        key: k.to_vec(),
        value: value.to_vec(),
        context: Context::empty(),
        consistency: Consistency::Quorum,
        timeout_ms: None,
        sloppy_quorum: false,
        ttl_ms: None,
    };
    c.request(at, put)
}

/// Runs until `node` reaches `status`, for at most a virtual minute.
fn run_until_status(c: &mut Cluster, node: NodeId, status: NodeStatus) {
    for _ in 0..600 {
        if c.node(node).status() == status {
            return;
        }
        c.run_for(Duration::from_millis(100));
    }
    panic!("{node} did not become {status}");
}

/// Every key in `keys` is stored on every replica the ring of `view` names.
fn assert_on_every_replica(c: &Cluster, view: NodeId, keys: std::ops::Range<usize>) {
    for i in keys {
        let replicas = c
            .node(view)
            .ring()
            .preference_list(&key(i), c.node(view).config().replication);
        for replica in replicas {
            assert!(
                c.node(replica).store().get(&key(i)).unwrap().is_some(),
                "key {i} missing on replica {replica}"
            );
        }
    }
}

#[test]
fn a_joining_node_streams_its_ranges_then_owns_them() {
    let mut c = converged(3, 41);
    write(&mut c, 0..600);
    let new = c.add_node(Config::default(), 99);
    // It is a member at once but owns nothing while it streams.
    c.run_for(Duration::from_millis(10));
    assert_eq!(c.node(new).status(), NodeStatus::Joining);
    assert!(!c.node(c.node_ids()[0]).ring().contains(new));
    let progress = c
        .node(new)
        .status_report()
        .streaming
        .expect("status shows the join");
    assert!(!progress.leaving && progress.ranges > 0 && progress.ranges_done < progress.ranges);
    run_until_status(&mut c, new, NodeStatus::Normal);
    c.run_for(Duration::from_secs(3));
    for node in c.nodes() {
        assert!(
            node.ring().contains(new),
            "{} has not taken the new node in",
            node.id()
        );
    }
    assert_on_every_replica(&c, new, 0..600);
    let streamed = c.node(new).stats().keys_streamed_in;
    let owned = (0..600)
        .filter(|&i| c.node(new).ring().preference_list(&key(i), 3).contains(&new))
        .count() as u64;
    assert!(owned > 300, "a 4th node of N=3 replicates about 3/4 of the keys");
    assert!(
        streamed >= owned && streamed < owned + 50,
        "streamed {streamed} keys for {owned} owned"
    );
}

#[test]
fn writes_made_while_a_node_joins_reach_it() {
    let mut c = converged(3, 42);
    write(&mut c, 0..300);
    let new = c.add_node(Config::default(), 98);
    c.run_for(Duration::from_millis(10));
    assert_eq!(c.node(new).status(), NodeStatus::Joining);
    // Keys written during the join, before and after their range streamed.
    write(&mut c, 300..600);
    run_until_status(&mut c, new, NodeStatus::Normal);
    c.run_for(Duration::from_secs(3));
    assert_on_every_replica(&c, new, 0..600);
}

/// While a node joins, a read or strict write needs its quorum among the key's
/// current replicas and among its future ones. Otherwise a coordinator
/// cut off before it learned that the join completed could acknowledge a
/// write on replicas that a read on the other side, which already uses
/// the new ring, does not ask.
#[test]
fn during_a_join_reads_and_strict_writes_need_a_quorum_of_the_future_replicas_too() {
    let mut c = converged(4, 43);
    let old_nodes = c.node_ids();
    let new = c.add_node(Config::default(), 97);
    let now = c.node(old_nodes[0]).ring().clone();
    // A key whose range moves from `loser` to the new node.
    let (key, loser, stays) = (0..)
        .find_map(|i| key_moving_to(&c, old_nodes[0], new, key(i)))
        .unwrap();
    let joining = |c: &Cluster| {
        c.node(loser)
            .membership()
            .and_then(|m| m.state(new))
            .is_some_and(|s| s.status == NodeStatus::Joining)
    };
    for _ in 0..5000 {
        if joining(&c) {
            break;
        }
        c.run_for(Duration::from_millis(1));
    }
    assert!(joining(&c), "the loser knows of the join");
    // Its confirmation reaches the new node, which may move ranges now.
    c.run_for(Duration::from_millis(3));
    assert_eq!(c.node(new).status(), NodeStatus::Joining);
    let (with_loser, with_new) = (stays[0], stays[1]);
    let other = *old_nodes
        .iter()
        .find(|n| !now.preference_list(&key, 3).contains(n))
        .unwrap();
    // The loser and one replica are cut off from the rest while the join
    // completes: they never learn of it.
    c.partition(&[loser, with_loser]);
    run_until_status(&mut c, new, NodeStatus::Normal);
    c.run_for(Duration::from_secs(5));
    assert!(c.node(with_new).ring().contains(new) && c.node(other).ring().contains(new));
    assert!(!c.node(loser).ring().contains(new));

    // The loser still sees the key's current replicas as {loser, with_loser,
    // with_new} and could reach two of them; but only one of its future
    // replicas {new, with_loser, with_new}.
    let response = quorum_put(&mut c, loser, &key, b"v");
    assert!(
        matches!(
            response,
            ClientResponse::Failed(RequestError::QuorumNotMet { .. })
        ),
        "{response:?}"
    );
    // Had it been acknowledged, this read (on the new ring, from the new
    // node and the replica on its side) would have missed it.
    let read = c.get(other, &key, Consistency::Quorum);
    assert!(
        matches!(&read, ClientResponse::Found { values, .. } if values.is_empty()),
        "{read:?}"
    );

    // The other way round: a write on the new ring's side reaches the new
    // node and `with_new`. A read by the loser, which could reach two of
    // the current replicas but one future one, must not answer without it.
    let written = quorum_put(&mut c, other, &key, b"new side");
    assert!(matches!(written, ClientResponse::Written { .. }), "{written:?}");
    let read = c.get(loser, &key, Consistency::Quorum);
    assert!(
        matches!(read, ClientResponse::Failed(RequestError::QuorumNotMet { .. })),
        "{read:?}"
    );
    // Healed, the loser learns of the join and reads the write (beside
    // the failed one, which is not rolled back).
    c.heal();
    c.run_for(Duration::from_secs(10));
    assert!(c.node(loser).ring().contains(new));
    let read = c.get(loser, &key, Consistency::Quorum);
    assert_sees(&read, b"new side");
}

/// If `k`'s range moves from a current replica (the loser) to `new`: the
/// key, the loser, and the two replicas that keep it.
fn key_moving_to(
    c: &Cluster,
    seen_by: NodeId,
    new: NodeId,
    k: Vec<u8>,
) -> Option<(Vec<u8>, NodeId, Vec<NodeId>)> {
    let ring = c.node(seen_by).ring();
    let future = Ring::with_nodes(
        Config::default().vnodes,
        ring.nodes().iter().copied().chain([new]),
    );
    let now = ring.preference_list(&k, 3);
    let then = future.preference_list(&k, 3);
    let loser = *now.iter().find(|n| !then.contains(n))?;
    let stays: Vec<NodeId> = now.iter().copied().filter(|&n| n != loser).collect();
    Some((k, loser, stays))
}

/// Two replicas of a range are cut off from the moment a node starts
/// joining: they never hear of it, and acknowledge a quorum write on the
/// old replicas. The join must not move the range before they know of it
/// (once they do, they refuse such writes); it completes after the
/// partition heals, and a read on the new ring sees the write.
#[test]
fn a_join_waits_until_the_replicas_of_its_ranges_know_of_it() {
    let mut c = converged(4, 43);
    let old_nodes = c.node_ids();
    let new = c.add_node(Config::default(), 97);
    // The new node learns the ring from its seed; nobody else has heard of
    // it yet.
    assert!(c.run_until(Duration::from_secs(1), |c| c.node(new).is_ready()));
    let seed = c
        .node(new)
        .membership()
        .unwrap()
        .up_members()
        .next()
        .unwrap()
        .node;
    let (key, loser, with_loser) = (0..)
        .map(key)
        .find_map(|k| {
            let (k, loser, stays) = key_moving_to(&c, old_nodes[0], new, k)?;
            let with_loser = *stays.iter().find(|&&n| n != seed)?;
            (loser != seed).then_some((k, loser, with_loser))
        })
        .unwrap();
    let other = *old_nodes
        .iter()
        .find(|n| !c.node(old_nodes[0]).ring().preference_list(&key, 3).contains(n))
        .unwrap();
    c.partition(&[loser, with_loser]);
    c.run_for(Duration::from_secs(30));
    assert_eq!(c.node(new).status(), NodeStatus::Joining, "the join waits");
    let progress = c.node(new).status_report().streaming.unwrap();
    assert!(progress.unconfirmed >= 2, "{progress:?}");
    assert_eq!(progress.keys, 0, "{progress:?}");
    assert!(c.node(new).membership().unwrap().state(new).is_some());
    assert!(c.node(loser).membership().unwrap().state(new).is_none());
    let written = quorum_put(&mut c, loser, &key, b"v");
    assert!(matches!(written, ClientResponse::Written { .. }), "{written:?}");

    c.heal();
    run_until_status(&mut c, new, NodeStatus::Normal);
    let normal =
        |c: &Cluster| c.node(other).membership().unwrap().state(new).unwrap().status == NodeStatus::Normal;
    assert!(c.run_until(Duration::from_secs(1), normal));
    // The new ring's side alone: the new node and `with_new`.
    c.partition(&[loser, with_loser]);
    let read = c.get(other, &key, Consistency::Quorum);
    assert_sees(&read, b"v");
}

/// Five nodes, the first of which will leave, and a key it holds whose
/// other replicas are cut off: a leave waits for them (they never hear of
/// it). The cluster, its nodes, the leaving node, the key, the cut-off.
fn leave_held_back() -> (Cluster, Vec<NodeId>, NodeId, Vec<u8>, Vec<NodeId>) {
    let mut c = converged(5, 46);
    let nodes = c.node_ids();
    let leaving = nodes[0];
    let k = (0..).map(key).find(|k| c.replicas(k).contains(&leaving)).unwrap();
    let cut: Vec<NodeId> = c.replicas(&k).into_iter().filter(|&n| n != leaving).collect();
    c.partition(&cut);
    (c, nodes, leaving, k, cut)
}

/// A leave waits, like a join, until the replicas of the ranges it hands
/// off know of it; once they do, it completes and loses nothing written
/// meanwhile.
#[test]
fn a_leave_waits_until_the_replicas_of_its_ranges_know_of_it() {
    let (mut c, nodes, leaving, k, cut) = leave_held_back();
    let client = c.submit_admin(leaving, AdminRequest::Leave);
    c.run_for(Duration::from_secs(30));
    assert_eq!(c.node(leaving).status(), NodeStatus::Leaving, "the leave waits");
    assert_eq!(c.admin_reply(client), None);
    let progress = c.node(leaving).status_report().streaming.unwrap();
    assert!(progress.leaving && progress.unconfirmed >= 2, "{progress:?}");
    // The cut-off replicas, which never heard of the leave, take a write.
    let written = quorum_put(&mut c, cut[0], &k, b"v");
    assert!(matches!(written, ClientResponse::Written { .. }), "{written:?}");

    c.heal();
    assert!(c.run_until(Duration::from_secs(30), |c| c.node(leaving).status()
        == NodeStatus::Left));
    c.run_for(Duration::from_secs(10));
    assert_eq!(c.admin_reply(client), Some(AdminResponse::Done));
    let remaining: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != leaving).collect();
    for &n in &remaining {
        assert!(
            !c.node(n).ring().contains(leaving),
            "{n} still sees the leaving node"
        );
    }
    let read = c.get(remaining[0], &k, Consistency::All);
    assert_sees(&read, b"v");
}

/// Asking a leaving node to leave again (an operator whose first `leave`
/// timed out, say) answers both requests once the leave is done: neither
/// is told it is done before (the node process exits on that answer).
#[test]
fn a_leave_asked_twice_answers_both_only_once_it_is_done() {
    let (mut c, _, leaving, _, _) = leave_held_back();
    let first = c.submit_admin(leaving, AdminRequest::Leave);
    c.run_for(Duration::from_secs(10));
    let second = c.submit_admin(leaving, AdminRequest::Leave);
    c.run_for(Duration::from_secs(10));
    assert_eq!(c.node(leaving).status(), NodeStatus::Leaving, "the leave waits");
    assert_eq!(c.admin_reply(first), None, "told done while still leaving");
    assert_eq!(c.admin_reply(second), None, "told done while still leaving");

    c.heal();
    assert!(c.run_until(Duration::from_secs(30), |c| c.node(leaving).status()
        == NodeStatus::Left));
    c.run_for(Duration::from_secs(10));
    assert_eq!(c.admin_reply(first), Some(AdminResponse::Done));
    assert_eq!(c.admin_reply(second), Some(AdminResponse::Done));
}

/// A replica that knows of a join refuses a replica write whose
/// coordinator's view of the key's replicas lacks the join, and takes one
/// that has it.
#[test]
fn a_replica_refuses_a_write_from_a_coordinator_that_has_not_heard_of_a_join() {
    use shoal::proto::message::{PeerMessage, Placement};
    let mut c = converged(4, 43);
    let old_nodes = c.node_ids();
    let new = c.add_node(Config::default(), 97);
    let (key, loser, stays) = (0..)
        .find_map(|i| key_moving_to(&c, old_nodes[0], new, key(i)))
        .unwrap();
    // Some state to send: another key's.
    let written = c.put(old_nodes[0], b"payload", b"v", Context::empty(), Consistency::All);
    assert!(matches!(written, ClientResponse::Written { .. }), "{written:?}");
    let holder = c.replicas(b"payload")[0];
    let object = c.node(holder).store().get(b"payload").unwrap().unwrap();
    let replica = stays[0];
    let knows = |c: &Cluster| {
        c.node(replica)
            .membership()
            .unwrap()
            .state(new)
            .is_some_and(|s| s.status == NodeStatus::Joining)
    };
    assert!(
        c.run_until(Duration::from_secs(5), knows),
        "the replica knows of the join"
    );
    let current = c.node(old_nodes[0]).ring().preference_list(&key, 3);
    let stale = Placement {
        current: current.clone(),
        future: None,
    };
    let put = |placement| PeerMessage::ReplicaPut {
        request: 1,
        key: key.clone(),
        object: object.clone().into(),
        placement: Some(placement),
    };
    c.send_as(loser, replica, put(stale));
    c.run_for(Duration::from_millis(5));
    assert_eq!(c.node(replica).stats().placement_refusals, 1);
    assert!(
        c.node(replica).store().get(&key).unwrap().is_none(),
        "nothing stored"
    );

    let future: Vec<NodeId> = stays.iter().copied().chain([new]).collect();
    let aware = Placement {
        current,
        future: Some(future),
    };
    c.send_as(loser, replica, put(aware));
    c.run_for(Duration::from_millis(5));
    assert_eq!(c.node(replica).stats().placement_refusals, 1);
    assert!(c.node(replica).store().get(&key).unwrap().is_some(), "stored");
}

#[test]
fn an_interrupted_join_resumes_where_it_stopped() {
    // One node and N=3: the newcomer replicates everything, streamed as one
    // range in batches of 1024 keys.
    let mut c = converged(1, 43);
    write_at(&mut c, 0..5000, Consistency::One);
    let new = c.add_node(Config::default(), 97);
    let mut before = 0;
    for _ in 0..1000 {
        c.run_for(Duration::from_millis(1));
        before = c.node(new).stats().keys_streamed_in;
        if before >= 2048 {
            break;
        }
    }
    assert!(
        (2048..5000).contains(&before),
        "restart at {before} keys streamed"
    );
    c.restart(new, Config::default(), 96);
    assert_eq!(
        c.node(new).status(),
        NodeStatus::Joining,
        "still joining after the restart"
    );
    run_until_status(&mut c, new, NodeStatus::Normal);
    c.run_for(Duration::from_secs(3));
    assert_on_every_replica(&c, new, 0..5000);
    let after = c.node(new).stats().keys_streamed_in;
    assert!(
        after <= 5000 - before + 1024,
        "{before} keys streamed before the restart, {after} after: it started over"
    );
}

#[test]
fn a_leaving_node_hands_every_range_off_before_it_leaves() {
    let mut c = converged(4, 44);
    write(&mut c, 0..600);
    let leaving = c.node_ids()[3];
    let stay = c.node_ids()[0];
    assert_eq!(c.admin(leaving, AdminRequest::Leave), AdminResponse::Done);
    assert_eq!(c.node(leaving).status(), NodeStatus::Left);
    c.run_for(Duration::from_secs(3));
    assert!(!c.node(stay).ring().contains(leaving));
    assert!(c.node(leaving).stats().keys_handed_off > 0);
    // Every key is on each of its new replicas: nothing was lost.
    assert_on_every_replica(&c, stay, 0..600);
}

#[test]
fn a_key_only_the_leaving_node_holds_is_not_lost() {
    // No hints: only the handoff can save the key.
    let config = {
        let mut cfg = Config::default();
        cfg.hinted_handoff = false;
        cfg
    };
    let mut c = converged_with(4, 45, config);
    let leaving = c.node_ids()[3];
    // Written at ONE by the leaving node while the others cannot hear it.
    let others: Vec<NodeId> = c.node_ids().into_iter().filter(|&n| n != leaving).collect();
    let lonely = (0..).map(key).find(|k| c.replicas(k)[0] == leaving).unwrap();
    for &n in &others {
        c.cut_off(n);
    }
    let response = c.put(leaving, &lonely, b"only here", Context::empty(), Consistency::One);
    assert!(matches!(response, ClientResponse::Written { .. }), "{response:?}");
    for &n in &others {
        c.reconnect(n);
    }
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.admin(leaving, AdminRequest::Leave), AdminResponse::Done);
    c.run_for(Duration::from_secs(3));
    let response = c.get(others[0], &lonely, Consistency::All);
    match response {
        ClientResponse::Found { values, .. } => assert_eq!(values[0].value, &b"only here"[..]),
        other => panic!("{other:?}"),
    }
}

/// A node that left tells the members until one confirms: had it gone at
/// once, a lost announcement would leave it a member in every view, its
/// ranges short of a replica, forever.
#[test]
fn a_node_that_left_goes_only_once_a_member_confirmed_it() {
    let mut c = converged(4, 44);
    let leaving = c.node_ids()[1];
    let others: Vec<NodeId> = c.node_ids().into_iter().filter(|&n| n != leaving).collect();
    // With no data and no hints, the leave ends as soon as the members
    // confirmed it is leaving; its announcement that it left is lost.
    let client = c.submit_admin(leaving, AdminRequest::Leave);
    assert!(c.run_until(Duration::from_secs(1), |c| c.node(leaving).status()
        == NodeStatus::Left));
    c.cut_off(leaving);
    c.run_for(Duration::from_secs(3));
    assert_eq!(c.admin_reply(client), None, "it waits for a confirmation");
    let status_seen =
        |c: &Cluster, by: NodeId| c.node(by).membership().unwrap().state(leaving).unwrap().status;
    assert!(others.iter().all(|&n| status_seen(&c, n) != NodeStatus::Left));

    c.reconnect(leaving);
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.admin_reply(client), Some(AdminResponse::Done));
    c.run_for(Duration::from_secs(3));
    for &n in &others {
        assert_eq!(status_seen(&c, n), NodeStatus::Left, "{n}");
        assert!(!c.node(n).ring().contains(leaving));
    }
}

#[test]
fn the_last_node_may_not_leave_and_a_joining_node_must_join_first() {
    let mut c = converged(1, 46);
    let only = c.node_ids()[0];
    assert_eq!(
        c.admin(only, AdminRequest::Leave),
        AdminResponse::Refused {
            reason: AdminError::LastNode
        }
    );
    write_at(&mut c, 0..2000, Consistency::One);
    let new = c.add_node(Config::default(), 95);
    c.run_for(Duration::from_millis(3));
    // Its only source goes silent: the join cannot finish.
    c.cut_off(only);
    c.run_for(Duration::from_millis(10));
    assert_eq!(c.node(new).status(), NodeStatus::Joining);
    assert_eq!(
        c.admin(new, AdminRequest::Leave),
        AdminResponse::Refused {
            reason: AdminError::StillJoining
        }
    );
}

#[test]
fn the_ranges_of_a_removed_node_are_re_replicated_by_anti_entropy() {
    let mut c = converged(4, 47);
    write(&mut c, 0..400);
    let dead = c.node_ids()[3];
    let stay = c.node_ids()[0];
    c.cut_off(dead);
    c.run_for(Duration::from_secs(8));
    assert_eq!(
        c.admin(stay, AdminRequest::RemoveNode { node: dead }),
        AdminResponse::Done
    );
    c.run_for(Duration::from_secs(3));
    assert!(!c.node(stay).ring().contains(dead));
    // The dead node's ranges now have a replica that never got their keys.
    let missing = (0..400)
        .filter(|&i| {
            c.node(stay)
                .ring()
                .preference_list(&key(i), 3)
                .iter()
                .any(|&r| c.node(r).store().get(&key(i)).unwrap().is_none())
        })
        .count();
    assert!(missing > 100, "only {missing} keys lack a replica");
    // Anti-entropy rounds (every 10 s, round robin) fill them in.
    c.run_for(Duration::from_secs(60));
    assert_on_every_replica(&c, stay, 0..400);
}

/// Every node holds exactly the keys its ring says it owns.
fn assert_only_owned_keys_held(c: &Cluster, keys: std::ops::Range<usize>) {
    for id in c.node_ids() {
        let node = c.node(id);
        for i in keys.clone() {
            let owns = node.ring().preference_list(&key(i), 3).contains(&id);
            let holds = node.store().get(&key(i)).unwrap().is_some();
            assert_eq!(holds, owns, "node {id} key {i}: holds {holds}, owns {owns}");
        }
    }
}

#[test]
fn after_a_join_old_owners_drop_the_ranges_they_gave_up() {
    let config = {
        let mut cfg = Config::default();
        cfg.cleanup_delay = Duration::from_secs(2);
        cfg
    };
    let mut c = converged_with(3, 48, config.clone());
    write(&mut c, 0..600);
    let new = c.add_node(config, 94);
    run_until_status(&mut c, new, NodeStatus::Normal);
    // Gossip spreads the change; the delay passes; every node walks its keys.
    c.run_for(Duration::from_secs(8));
    for id in c.node_ids() {
        assert!(c.node(id).ring().contains(new), "{id} has not heard of the join");
    }
    assert_only_owned_keys_held(&c, 0..600);
    // Three nodes held every key; each key the new node took left exactly
    // one of them.
    let taken = (0..600)
        .filter(|&i| c.node(new).ring().preference_list(&key(i), 3).contains(&new))
        .count();
    let cleaned: u64 = c.nodes().map(|n| n.stats().keys_cleaned_up).sum();
    assert_eq!(cleaned, taken as u64);
    assert_on_every_replica(&c, new, 0..600);
    for i in 0..600 {
        let response = c.get(new, &key(i), Consistency::All);
        assert!(
            matches!(response, ClientResponse::Found { .. }),
            "key {i}: {response:?}"
        );
    }
}

#[test]
fn a_write_only_an_old_owner_took_is_handed_to_the_new_owners_before_it_is_dropped() {
    // No hints and no anti-entropy rounds: only the cleanup's push can
    // carry the write over.
    let config = {
        let mut cfg = Config::default();
        cfg.cleanup_delay = Duration::from_secs(2);
        cfg.hinted_handoff = false;
        cfg.anti_entropy_interval = Duration::from_secs(3600);
        cfg
    };
    let mut c = converged_with(3, 49, config.clone());
    write(&mut c, 0..300);
    let old = c.node_ids()[0];
    let new = c.add_node(config, 93);
    c.run_for(Duration::from_millis(5));
    // `old` misses the end of the join: it still sees the old ring.
    c.cut_off(old);
    run_until_status(&mut c, new, NodeStatus::Normal);
    c.run_for(Duration::from_secs(2));
    assert!(!c.node(old).ring().contains(new));
    let future = c.node(new).ring().clone();
    let lost_owner: Vec<usize> = (1000..)
        .filter(|&i| !future.preference_list(&key(i), 3).contains(&old))
        .take(20)
        .collect();
    for &i in &lost_owner {
        let response = c.put(old, &key(i), b"only on old", Context::empty(), Consistency::One);
        assert!(matches!(response, ClientResponse::Written { .. }), "{response:?}");
    }
    c.reconnect(old);
    c.run_for(Duration::from_secs(10));
    assert!(c.node(old).ring().contains(new));
    for &i in &lost_owner {
        assert!(
            c.node(old).store().get(&key(i)).unwrap().is_none(),
            "key {i} still on the old owner"
        );
        match c.get(new, &key(i), Consistency::All) {
            ClientResponse::Found { values, .. } => assert_eq!(
                values.first().map(|v| &v.value[..]),
                Some(&b"only on old"[..]),
                "key {i} lost"
            ),
            other => panic!("key {i} lost: {other:?}"),
        }
    }
    assert!(c.node(old).stats().keys_cleaned_up >= 20);
}

/// A sloppy write made while a node joins, with a home replica down, does
/// not count the joining node (a future replica) toward W; it still sends
/// it the write, and if the joining node does not acknowledge it, the
/// coordinator keeps a hint for it, like for any replica that missed it.
#[test]
fn a_future_replica_that_misses_an_uncounted_sloppy_write_gets_a_hint() {
    let mut c = converged(4, 43);
    let old_nodes = c.node_ids();
    let new = c.add_node(Config::default(), 97);
    let (k, loser, stays) = (0..)
        .find_map(|i| key_moving_to(&c, old_nodes[0], new, key(i)))
        .unwrap();
    let coordinator = stays[0];
    let joining = |c: &Cluster| {
        c.node(coordinator)
            .membership()
            .and_then(|m| m.state(new))
            .is_some_and(|s| s.status == NodeStatus::Joining)
    };
    assert!(c.run_until(Duration::from_secs(5), joining));
    // The join cannot finish: the joining node is cut off, and so is a
    // current replica of the key, which a fallback stands in for.
    c.cut_off(new);
    c.cut_off(loser);
    c.run_for(Duration::from_secs(10));
    assert!(joining(&c) && !c.node(coordinator).is_up(loser));
    let written = c.put(coordinator, &k, b"v", Context::empty(), Consistency::Quorum);
    assert!(matches!(written, ClientResponse::Written { .. }), "{written:?}");
    c.run_for(Duration::from_secs(3));
    let hinted: Vec<NodeId> = c
        .node(coordinator)
        .hints_pending()
        .iter()
        .map(|h| h.target)
        .collect();
    assert!(hinted.contains(&new), "hints held for {hinted:?}");
    // (The fallback holds the one for the current replica.)
    // Back, the joining node gets the write from the hint.
    c.reconnect(new);
    c.reconnect(loser);
    assert!(c.run_until(Duration::from_secs(30), |c| {
        c.nodes().all(|n| n.hints_held() == 0)
    }));
    assert!(c.node(new).store().get(&k).unwrap().is_some());
}

/// A node that left goes only once a majority of the other members
/// confirmed it: a single member may crash before it passes the news on,
/// and then nobody running knows the node left.
#[test]
fn a_node_that_left_waits_for_a_majority_of_the_members_to_confirm_it() {
    let mut c = converged(5, 44);
    let nodes = c.node_ids();
    let leaving = nodes[1];
    let friend = nodes[2];
    let client = c.submit_admin(leaving, AdminRequest::Leave);
    assert!(c.run_until(Duration::from_secs(1), |c| c.node(leaving).status()
        == NodeStatus::Left));
    // Only one member hears of the departure.
    c.partition(&[leaving, friend]);
    c.run_for(Duration::from_secs(10));
    let status_seen =
        |c: &Cluster, by: NodeId| c.node(by).membership().unwrap().state(leaving).unwrap().status;
    assert_eq!(status_seen(&c, friend), NodeStatus::Left);
    assert_eq!(c.admin_reply(client), None, "one confirmation is not enough");

    c.heal();
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.admin_reply(client), Some(AdminResponse::Done));
    for n in nodes.into_iter().filter(|&n| n != leaving) {
        assert_eq!(status_seen(&c, n), NodeStatus::Left, "{n}");
    }
}

/// A node that left and is started again on its old data directory (an
/// operator reusing the machine) comes back empty and joins like a new
/// node: its old copy of a key deleted meanwhile, whose tombstone every
/// replica has since collected, does not bring the key back.
#[test]
fn a_node_that_left_rejoins_without_its_old_copy() {
    // More keys than one scan step holds (1024), so dropping the copy
    // walks on past the first step.
    const KEYS: usize = 1500;
    let mut cfg = Config::default();
    cfg.hint_window = Duration::from_secs(1);
    cfg.tombstone_grace = Duration::from_secs(2);
    let mut c = converged_with(4, 47, cfg.clone());
    c.enable_anti_entropy();
    write(&mut c, 0..KEYS);
    let leaving = c.node_ids()[3];
    let stay = c.node_ids()[0];
    assert_eq!(c.admin(leaving, AdminRequest::Leave), AdminResponse::Done);
    c.run_for(Duration::from_secs(3));
    assert!(
        c.node(leaving).store().get(&key(7)).unwrap().is_some(),
        "an old copy is left"
    );

    // Every key is deleted, and its tombstones are collected everywhere.
    for i in 0..KEYS {
        let context = match c.get(stay, &key(i), Consistency::All) {
            ClientResponse::Found { context, .. } => context,
            other => panic!("{other:?}"),
        };
        let deleted = c.delete(stay, &key(i), context, Consistency::All);
        assert!(matches!(deleted, ClientResponse::Written { .. }), "{deleted:?}");
    }
    c.run_for(Duration::from_secs(20));
    for n in c.node_ids().into_iter().filter(|&n| n != leaving) {
        assert!(
            c.node(n).store().scan(b"", 1).unwrap().is_empty(),
            "{n} still holds a tombstone"
        );
    }

    c.restart(leaving, cfg, 98);
    assert!(
        c.node(leaving).store().scan(b"", 1).unwrap().is_empty(),
        "the old copy is dropped at start"
    );
    run_until_status(&mut c, leaving, NodeStatus::Normal);
    c.run_for(Duration::from_secs(10));
    assert!(c.node(stay).ring().contains(leaving), "it is a member again");
    for i in 0..KEYS {
        match c.get(stay, &key(i), Consistency::All) {
            ClientResponse::Found { values, .. } => {
                assert!(values.is_empty(), "key {i} came back: {values:?}")
            }
            other => panic!("{other:?}"),
        }
    }
    for n in c.node_ids() {
        assert!(
            c.node(n).store().scan(b"", 1).unwrap().is_empty(),
            "{n} holds a key"
        );
    }
}
