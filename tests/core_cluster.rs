//! The core's distributed behaviour on a virtual-time cluster of 3-5 nodes.

use shoal::proto::harness::Cluster;
use shoal::proto::message::Operation;
use shoal::proto::{
    ClientRequest, ClientResponse, Config, Consistency, Context, Fanout, NodeId, RequestError, Store, Value,
};

const KEY: &[u8] = b"user:42";

fn cluster(size: usize) -> Cluster {
    Cluster::new(size, Config::default(), 7)
}

fn values(response: &ClientResponse) -> Vec<Vec<u8>> {
    match response {
        ClientResponse::Found { values, .. } => values.iter().map(|v: &Value| v.value.to_vec()).collect(),
        other => panic!("expected a read result, got {other:?}"),
    }
}

fn context(response: &ClientResponse) -> Context {
    match response {
        ClientResponse::Found { context, .. } | ClientResponse::Written { context, .. } => context.clone(),
        other => panic!("expected success, got {other:?}"),
    }
}

fn assert_written(response: &ClientResponse) {
    assert!(
        matches!(response, ClientResponse::Written { .. }),
        "write failed: {response:?}"
    );
}

fn first_replica(c: &Cluster) -> NodeId {
    c.replicas(KEY)[0]
}

#[test]
fn put_with_w2_then_get_with_r2_returns_the_value() {
    let mut c = cluster(3);
    let two = Consistency::Custom { r: 2, w: 2 };
    let at = first_replica(&c);
    assert_written(&c.put(at, KEY, b"hello", Context::empty(), two));
    for node in c.node_ids() {
        assert_eq!(values(&c.get(node, KEY, two)), vec![b"hello".to_vec()]);
    }
}

#[test]
fn quorum_writes_and_reads_survive_one_replica_unreachable_and_all_fails() {
    let mut c = cluster(3);
    let replicas = c.replicas(KEY);
    c.cut_off(replicas[2]);
    let at = replicas[0];
    assert_written(&c.put(at, KEY, b"v1", Context::empty(), Consistency::Quorum));
    assert_eq!(
        values(&c.get(replicas[1], KEY, Consistency::Quorum)),
        vec![b"v1".to_vec()]
    );

    let error = c.put(at, KEY, b"v2", Context::empty(), Consistency::All);
    assert_eq!(
        error,
        ClientResponse::Failed(RequestError::QuorumNotMet {
            operation: Operation::Put,
            consistency: Consistency::All,
            succeeded: 2,
            required: 3,
            replicas: 3,
        })
    );
    let read = c.get(at, KEY, Consistency::All);
    let ClientResponse::Failed(error) = read else {
        panic!("ALL read succeeded with a replica cut off: {read:?}")
    };
    assert_eq!(
        error.to_string(),
        "get failed: 2 of 3 replicas answered, 3 needed (all)"
    );
}

#[test]
fn quorum_failure_is_reported_at_the_deadline_not_before() {
    let mut c = cluster(3);
    let replicas = c.replicas(KEY);
    let start = c.now();
    c.cut_off(replicas[1]);
    c.cut_off(replicas[2]);
    let response = c.get(replicas[0], KEY, Consistency::Quorum);
    assert!(matches!(
        response,
        ClientResponse::Failed(RequestError::QuorumNotMet { succeeded: 1, .. })
    ));
    let waited = c.now().saturating_since(start);
    assert_eq!(waited, Config::default().request_timeout);
}

#[test]
fn concurrent_puts_without_context_come_back_as_two_siblings() {
    let mut c = cluster(3);
    let replicas = c.replicas(KEY);
    assert_written(&c.put(replicas[0], KEY, b"from-a", Context::empty(), Consistency::Quorum));
    assert_written(&c.put(replicas[1], KEY, b"from-b", Context::empty(), Consistency::Quorum));
    let mut got = values(&c.get(replicas[2], KEY, Consistency::All));
    got.sort();
    assert_eq!(got, vec![b"from-a".to_vec(), b"from-b".to_vec()]);
}

#[test]
fn a_put_with_the_context_of_a_get_replaces_both_siblings() {
    let mut c = cluster(3);
    let replicas = c.replicas(KEY);
    c.put(replicas[0], KEY, b"from-a", Context::empty(), Consistency::All);
    c.put(replicas[1], KEY, b"from-b", Context::empty(), Consistency::All);
    let read = c.get(replicas[2], KEY, Consistency::Quorum);
    assert_eq!(values(&read).len(), 2);
    assert_written(&c.put(replicas[2], KEY, b"resolved", context(&read), Consistency::Quorum));
    assert_eq!(
        values(&c.get(replicas[0], KEY, Consistency::All)),
        vec![b"resolved".to_vec()]
    );
}

#[test]
fn a_write_that_missed_a_sibling_keeps_it() {
    let mut c = cluster(3);
    let replicas = c.replicas(KEY);
    c.put(replicas[0], KEY, b"first", Context::empty(), Consistency::All);
    let read = c.get(replicas[0], KEY, Consistency::All);
    c.put(replicas[1], KEY, b"unseen", Context::empty(), Consistency::All);
    c.put(replicas[2], KEY, b"second", context(&read), Consistency::All);
    let mut got = values(&c.get(replicas[0], KEY, Consistency::All));
    got.sort();
    assert_eq!(got, vec![b"second".to_vec(), b"unseen".to_vec()]);
}

#[test]
fn a_non_replica_forwards_writes_to_a_replica() {
    let mut c = cluster(5);
    let outsider = c.non_replica(KEY).expect("5 nodes, 3 replicas");
    assert_written(&c.put(outsider, KEY, b"forwarded", Context::empty(), Consistency::Quorum));
    assert_eq!(c.node(outsider).stats().forwards, 1);
    assert!(c.node(outsider).store().is_empty(), "the outsider stored nothing");
    assert_eq!(
        values(&c.get(outsider, KEY, Consistency::All)),
        vec![b"forwarded".to_vec()]
    );
}

#[test]
fn a_forwarded_write_is_not_sent_to_a_second_replica_just_because_the_first_is_slow() {
    // The first replica may have applied the write and lost its answer:
    // trying another would apply it twice. Without a failure detector
    // (static cluster) nothing is down, so the write waits and fails.
    let mut c = cluster(5);
    let outsider = c.non_replica(KEY).unwrap();
    let replicas = c.replicas(KEY);
    c.cut_off(replicas[0]);
    let response = c.put(outsider, KEY, b"v", Context::empty(), Consistency::Quorum);
    assert_eq!(
        response,
        ClientResponse::Failed(RequestError::ForwardFailed { tried: 1 })
    );
    for &replica in &replicas[1..] {
        assert!(
            c.node(replica).store().is_empty(),
            "no second coordinator applied it"
        );
    }
}

#[test]
fn delete_hides_the_value_and_a_later_put_with_its_context_brings_a_new_one() {
    let mut c = cluster(3);
    let at = first_replica(&c);
    c.put(at, KEY, b"v", Context::empty(), Consistency::Quorum);
    let read = c.get(at, KEY, Consistency::Quorum);
    assert_written(&c.delete(at, KEY, context(&read), Consistency::Quorum));
    let after = c.get(at, KEY, Consistency::All);
    assert!(values(&after).is_empty(), "deleted key still readable");
    assert!(!context(&after).is_empty(), "the tombstone's context is returned");
    assert_written(&c.put(at, KEY, b"again", context(&after), Consistency::Quorum));
    assert_eq!(values(&c.get(at, KEY, Consistency::All)), vec![b"again".to_vec()]);
}

#[test]
fn impossible_consistency_and_oversized_input_are_refused_without_storing() {
    let mut c = cluster(3);
    let at = first_replica(&c);
    let response = c.put(
        at,
        KEY,
        b"v",
        Context::empty(),
        Consistency::Custom { r: 1, w: 4 },
    );
    assert!(matches!(
        response,
        ClientResponse::Failed(RequestError::ImpossibleConsistency {
            required: 4,
            replication: 3,
            ..
        })
    ));
    let big = vec![0u8; Config::default().max_value_bytes + 1];
    let response = c.put(at, KEY, &big, Context::empty(), Consistency::One);
    assert!(matches!(
        response,
        ClientResponse::Failed(RequestError::ValueTooLarge { .. })
    ));
    let response = c.get(at, b"", Consistency::One);
    assert!(matches!(
        response,
        ClientResponse::Failed(RequestError::BadKeySize { size: 0, .. })
    ));
    assert!(c.node(at).store().is_empty());
}

#[test]
fn too_many_siblings_fails_the_put_and_stores_nothing_new() {
    let config = {
        let mut cfg = Config::default();
        cfg.max_siblings = 2;
        cfg
    };
    let mut c = Cluster::new(3, config, 1);
    let at = first_replica(&c);
    c.put(at, KEY, b"a", Context::empty(), Consistency::All);
    c.put(at, KEY, b"b", Context::empty(), Consistency::All);
    let response = c.put(at, KEY, b"c", Context::empty(), Consistency::All);
    assert_eq!(
        response,
        ClientResponse::Failed(RequestError::TooManySiblings { count: 3, max: 2 })
    );
    assert_eq!(values(&c.get(at, KEY, Consistency::All)).len(), 2);
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed| {
        let mut c = Cluster::new(4, Config::default(), seed);
        let ids = c.node_ids();
        for (i, &node) in ids.iter().enumerate() {
            c.put(
                node,
                format!("k{i}").as_bytes(),
                b"v",
                Context::empty(),
                Consistency::Quorum,
            );
        }
        (ids, c.now(), c.delivered())
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3).0, run(4).0);
}

#[test]
fn every_start_bumps_the_epoch() {
    use shoal::proto::{MemStore, Node};
    let first = Node::new(Config::default(), MemStore::new(), 1).unwrap();
    let store = first.store().clone();
    let second = Node::new(Config::default(), store, 2).unwrap();
    assert_eq!(first.id(), second.id());
    assert_eq!(second.epoch(), first.epoch() + 1);
    let wiped = Node::new(Config::default(), MemStore::new(), 1).unwrap();
    let wiped_other_seed = Node::new(Config::default(), MemStore::new(), 3).unwrap();
    assert_ne!(
        wiped.epoch() >> 32,
        wiped_other_seed.epoch() >> 32,
        "fresh disks draw fresh epoch ranges"
    );
}

#[test]
fn a_read_repairs_a_replica_that_missed_a_write() {
    use shoal::proto::Store;
    let mut c = cluster(3);
    let replicas = c.replicas(KEY);
    c.cut_off(replicas[2]);
    assert_written(&c.put(replicas[0], KEY, b"v", Context::empty(), Consistency::Quorum));
    c.settle();
    c.reconnect(replicas[2]);
    assert!(
        c.node(replicas[2]).store().get(KEY).unwrap().is_none(),
        "it missed the write"
    );

    // A read at ONE answers from the coordinator, then repairs in the background.
    assert_eq!(
        values(&c.get(replicas[0], KEY, Consistency::One)),
        vec![b"v".to_vec()]
    );
    c.settle();
    let repaired = c.node(replicas[2]).store().get(KEY).unwrap().expect("repaired");
    let source = c.node(replicas[0]).store().get(KEY).unwrap().unwrap();
    assert_eq!(
        repaired, source,
        "the stale replica now holds exactly the merged state"
    );
    assert_eq!(c.node(replicas[0]).stats().read_repairs, 1);

    // Replicas in agreement are left alone.
    c.get(replicas[1], KEY, Consistency::All);
    c.settle();
    assert_eq!(c.node(replicas[1]).stats().read_repairs, 0);
}

#[test]
fn a_duplicated_forward_is_applied_once() {
    use shoal::proto::message::PeerMessage;
    use shoal::proto::{ClientRequest, MemStore, Node, Output, Store, Time};
    let mut node = Node::new(Config::default(), MemStore::new(), 1).unwrap();
    let me = node.id();
    node.set_members([me]);
    let forwarder = shoal::proto::NodeId(99);
    let write = ClientRequest::Put {
        key: KEY.to_vec(),
        value: b"once".to_vec(),
        context: Context::empty(),
        consistency: Consistency::One,
        timeout_ms: Some(1000),
        sloppy_quorum: true,
        ttl_ms: None,
    };
    let message = PeerMessage::Forward {
        request: 7,
        client: write,
    };
    let now = Time::from_micros(1_000_000);
    node.handle_peer_message(now, forwarder, message.clone())
        .expect("a valid message");
    node.handle_peer_message(now, forwarder, message.clone())
        .expect("a valid message");
    // A copy the network delayed past the write's deadline (1 s) too.
    let later = Time::from_micros(6_000_000);
    node.handle_peer_message(later, forwarder, message)
        .expect("a valid message");
    let replies = std::iter::from_fn(|| node.poll_output())
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    message: PeerMessage::ForwardReply { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(replies, 1, "one answer for one write");
    assert_eq!(node.store().get(KEY).unwrap().unwrap().siblings().len(), 1);
}

#[test]
fn blocking_read_repair_answers_only_once_stale_replicas_are_repaired() {
    for blocking in [false, true] {
        let config = {
            let mut cfg = Config::default();
            cfg.read_repair_blocking = blocking;
            cfg.hinted_handoff = false;
            cfg
        };
        let mut c = Cluster::new(3, config, 7);
        let replicas = c.replicas(KEY);
        c.cut_off(replicas[2]);
        assert_written(&c.put(replicas[0], KEY, b"v", Context::empty(), Consistency::Quorum));
        c.run_for(std::time::Duration::from_secs(3));
        c.reconnect(replicas[2]);
        let stale = |c: &Cluster| c.node(replicas[2]).store().get(KEY).unwrap().is_none();
        assert!(stale(&c));
        // The harness stops as soon as the answer is out.
        let read = c.get(replicas[0], KEY, Consistency::All);
        assert_eq!(values(&read), vec![b"v".to_vec()]);
        assert_eq!(
            stale(&c),
            !blocking,
            "blocking {blocking}: the stale replica is repaired before the answer only when blocking"
        );
        c.settle();
        assert!(!stale(&c), "repaired in the end either way");
    }
}

#[test]
fn requests_past_the_in_flight_limit_get_busy_and_change_nothing() {
    let config = {
        let mut cfg = Config::default();
        cfg.max_requests_in_flight = 2;
        cfg
    };
    let mut c = Cluster::new(3, config, 9);
    let at = first_replica(&c);
    let put = |value: &[u8]| ClientRequest::Put {
        key: KEY.to_vec(),
        value: value.to_vec(),
        context: Context::empty(),
        consistency: Consistency::All,
        timeout_ms: None,
        sloppy_quorum: true,
        ttl_ms: None,
    };
    // Two writes wait for their replicas; a third finds no room.
    let first = c.submit(at, put(b"a"));
    let second = c.submit(at, put(b"b"));
    let third = c.submit(at, put(b"c"));
    assert_eq!(
        c.wait(third),
        ClientResponse::Failed(RequestError::Busy { max: 2 })
    );
    assert!(matches!(c.wait(first), ClientResponse::Written { .. }));
    assert!(matches!(c.wait(second), ClientResponse::Written { .. }));
    let mut stored = values(&c.get(at, KEY, Consistency::All));
    stored.sort();
    assert_eq!(
        stored,
        vec![b"a".to_vec(), b"b".to_vec()],
        "the busy write was applied"
    );
    // Room again once they finished.
    assert!(matches!(c.request(at, put(b"d")), ClientResponse::Written { .. }));
}

#[test]
fn a_put_that_would_grow_the_state_past_its_limit_fails_and_stores_nothing_new() {
    let config = {
        let mut cfg = Config::default();
        cfg.max_value_bytes = 4 * 1024;
        cfg.max_key_bytes = 64;
        cfg.max_state_bytes = 10 * 1024;
        cfg
    };
    let mut c = Cluster::new(3, config, 2);
    let at = first_replica(&c);
    let value = |b: u8| vec![b; 4 * 1024];
    for b in [1, 2] {
        let response = c.put(at, KEY, &value(b), Context::empty(), Consistency::All);
        assert!(matches!(response, ClientResponse::Written { .. }), "{response:?}");
    }
    // A third concurrent sibling of 4 KiB would make 12 KiB.
    let response = c.put(at, KEY, &value(3), Context::empty(), Consistency::All);
    assert!(
        matches!(
            response,
            ClientResponse::Failed(RequestError::StateTooLarge { max: 10240, .. })
        ),
        "{response:?}"
    );
    assert_eq!(values(&c.get(at, KEY, Consistency::All)).len(), 2);
    // Resolving with the context replaces the siblings and fits again.
    let context = match c.get(at, KEY, Consistency::All) {
        ClientResponse::Found { context, .. } => context,
        other => panic!("{other:?}"),
    };
    let response = c.put(at, KEY, &value(3), context, Consistency::All);
    assert!(matches!(response, ClientResponse::Written { .. }), "{response:?}");
}

#[test]
fn a_request_asking_for_the_default_gets_the_nodes_default_consistency() {
    let config = {
        let mut cfg = Config::default();
        cfg.default_consistency = Consistency::All;
        cfg
    };
    let mut c = Cluster::new(3, config, 5);
    let at = first_replica(&c);
    let down = c.replicas(KEY).into_iter().find(|&n| n != at).unwrap();
    c.cut_off(down);
    // QUORUM would succeed with one replica silent; the default here is ALL.
    let response = c.request(
        at,
        ClientRequest::Put {
            key: KEY.to_vec(),
            value: b"v".to_vec(),
            context: Context::empty(),
            consistency: Consistency::Default,
            timeout_ms: None,
            sloppy_quorum: false,
            ttl_ms: None,
        },
    );
    assert!(
        matches!(
            response,
            ClientResponse::Failed(RequestError::QuorumNotMet { required: 3, .. })
        ),
        "{response:?}"
    );
    let response = c.put(at, KEY, b"v", Context::empty(), Consistency::Quorum);
    assert!(matches!(response, ClientResponse::Written { .. }), "{response:?}");
}

fn get_needed(c: &mut Cluster, at: NodeId, consistency: Consistency) -> ClientResponse {
    let request = ClientRequest::Get {
        key: KEY.to_vec(),
        consistency,
        timeout_ms: None,
        fanout: Fanout::Needed,
    };
    c.request(at, request)
}

#[test]
fn a_needed_read_at_one_on_a_replica_answers_from_its_own_copy_and_repairs_nothing() {
    let mut c = cluster(3);
    let replicas = c.replicas(KEY);
    c.cut_off(replicas[2]);
    assert_written(&c.put(replicas[0], KEY, b"v", Context::empty(), Consistency::Quorum));
    c.settle();
    c.reconnect(replicas[2]);

    let before = c.delivered();
    assert_eq!(
        values(&get_needed(&mut c, replicas[0], Consistency::One)),
        vec![b"v".to_vec()]
    );
    c.settle();
    assert_eq!(c.delivered(), before, "no replica was asked");
    assert_eq!(c.node(replicas[0]).stats().read_repairs, 0);
    assert!(
        c.node(replicas[2]).store().get(KEY).unwrap().is_none(),
        "nothing repaired"
    );

    // Its own copy is empty: the stale replica answers what it has.
    assert_eq!(
        values(&get_needed(&mut c, replicas[2], Consistency::One)),
        Vec::<Vec<u8>>::new()
    );
    // At QUORUM, R + W > N: one of the two asked has the value.
    for at in replicas.iter().copied() {
        assert_eq!(
            values(&get_needed(&mut c, at, Consistency::Quorum)),
            vec![b"v".to_vec()]
        );
    }
}

#[test]
fn a_needed_read_asks_only_r_replicas_and_the_next_one_when_one_fails() {
    let mut c = cluster(5);
    let replicas = c.replicas(KEY);
    let outside = c.non_replica(KEY).expect("5 nodes, 3 replicas");
    assert_written(&c.put(replicas[0], KEY, b"v", Context::empty(), Consistency::All));
    c.settle();

    let before = c.delivered();
    assert_eq!(
        values(&get_needed(&mut c, outside, Consistency::Quorum)),
        vec![b"v".to_vec()]
    );
    c.settle();
    assert_eq!(c.delivered() - before, 4, "two replicas asked, two answers");

    // The first replica fails to read its copy (it cannot drop the
    // damaged record from its full disk): the next one is asked.
    c.corrupt_record(replicas[0], KEY);
    c.set_disk_full(replicas[0], true);
    let before = c.delivered();
    assert_eq!(
        values(&get_needed(&mut c, outside, Consistency::One)),
        vec![b"v".to_vec()]
    );
    c.settle();
    assert_eq!(c.delivered() - before, 4, "two replicas asked in turn");

    // Two of three fail: a quorum is lost as soon as the third answers.
    c.corrupt_record(replicas[1], KEY);
    c.set_disk_full(replicas[1], true);
    let start = c.now();
    let failed = get_needed(&mut c, outside, Consistency::Quorum);
    assert!(
        matches!(
            failed,
            ClientResponse::Failed(RequestError::QuorumNotMet {
                succeeded: 1,
                required: 2,
                ..
            })
        ),
        "{failed:?}"
    );
    assert!(c.now().saturating_since(start) < Config::default().request_timeout);
}

#[test]
fn a_needed_read_of_a_replica_that_never_answers_fails_at_the_deadline() {
    let mut c = cluster(5);
    let replicas = c.replicas(KEY);
    let outside = c.non_replica(KEY).expect("5 nodes, 3 replicas");
    assert_written(&c.put(replicas[0], KEY, b"v", Context::empty(), Consistency::All));
    c.settle();
    c.cut_off(replicas[0]);
    let start = c.now();
    let failed = get_needed(&mut c, outside, Consistency::One);
    assert!(
        matches!(failed, ClientResponse::Failed(RequestError::QuorumNotMet { .. })),
        "{failed:?}"
    );
    assert_eq!(c.now().saturating_since(start), Config::default().request_timeout);
    // Every replica asked: the others answer.
    assert_eq!(
        values(&c.get(outside, KEY, Consistency::One)),
        vec![b"v".to_vec()]
    );
}
