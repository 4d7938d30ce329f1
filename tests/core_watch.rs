//! Watching a key, on the core in virtual time: a watch through any node
//! ends with any acknowledged write, at any consistency, through any
//! other node; a change already there ends it at once; at the timeout it
//! reports no change and every replica forgets it; watches are bounded.

use shoal::proto::harness::Cluster;
use shoal::proto::{
    ClientRequest, ClientResponse, Config, Consistency, Context, NodeId, RequestError, WatchRequest,
};
use std::time::Duration;

const KEY: &[u8] = b"config";

fn watch(context: Context, timeout: Duration) -> WatchRequest {
    WatchRequest {
        key: KEY.to_vec(),
        context,
        timeout_ms: timeout.as_millis() as u32,
    }
}

fn put(value: &[u8], consistency: Consistency) -> ClientRequest {
    ClientRequest::Put {
        key: KEY.to_vec(),
        value: value.to_vec(),
        context: Context::empty(),
        consistency,
        timeout_ms: None,
        sloppy_quorum: false,
        ttl_ms: None,
    }
}

fn written(response: ClientResponse) -> Context {
    match response {
        ClientResponse::Written { context, .. } => context,
        other => panic!("{other:?}"),
    }
}

/// A cluster of five, N=3, and a node that is not a replica of KEY.
fn cluster() -> (Cluster, Vec<NodeId>, NodeId) {
    let c = Cluster::new(5, Config::default(), 7);
    let replicas = c.replicas(KEY);
    let outsider = c.non_replica(KEY).unwrap();
    (c, replicas, outsider)
}

#[test]
fn a_write_at_one_through_another_replica_ends_a_watch_held_by_a_node_that_is_no_replica() {
    let (mut c, replicas, outsider) = cluster();
    let watcher = c.submit_watch(outsider, watch(Context::empty(), Duration::from_secs(30)));
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.reply(watcher), None, "nothing changed yet");
    assert_eq!(c.node(outsider).watch_counts().0, 1);
    for &r in &replicas {
        assert_eq!(c.node(r).watch_counts().1, 1, "replica {r} holds the watch");
    }
    let context = written(c.request(replicas[2], put(b"v1", Consistency::One)));
    c.run_for(Duration::from_millis(100));
    match c.reply(watcher) {
        Some(ClientResponse::Found {
            values,
            context: seen,
        }) => {
            assert_eq!(values.len(), 1);
            assert_eq!(values[0].value, &b"v1"[..]);
            assert_eq!(seen, context, "the context of the new state");
        }
        other => panic!("the watch saw {other:?}"),
    }
    // Every node forgets the watch once it ended.
    c.run_for(Duration::from_secs(1));
    for n in c.node_ids() {
        assert_eq!(c.node(n).watch_counts(), (0, 0), "node {n}");
    }
}

#[test]
fn a_change_the_context_has_not_seen_ends_a_watch_at_once_and_one_it_has_does_not() {
    let (mut c, replicas, outsider) = cluster();
    let first = written(c.request(replicas[0], put(b"v1", Consistency::All)));
    // An empty context has not seen v1.
    let w = c.submit_watch(outsider, watch(Context::empty(), Duration::from_secs(30)));
    c.run_for(Duration::from_millis(100));
    assert!(matches!(c.reply(w), Some(ClientResponse::Found { .. })));
    // The write's own context has seen it: nothing to report until the next write.
    let w = c.submit_watch(outsider, watch(first.clone(), Duration::from_secs(30)));
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.reply(w), None);
    // A delete is a change too: the watch reports the key gone.
    let delete = ClientRequest::Delete {
        key: KEY.to_vec(),
        context: first,
        consistency: Consistency::Quorum,
        timeout_ms: None,
        sloppy_quorum: false,
    };
    written(c.request(replicas[1], delete));
    c.run_for(Duration::from_millis(100));
    match c.reply(w) {
        Some(ClientResponse::Found { values, .. }) => assert!(values.is_empty(), "{values:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn at_its_timeout_a_watch_reports_no_change_and_the_replicas_forget_it() {
    let (mut c, _, outsider) = cluster();
    let w = c.submit_watch(outsider, watch(Context::empty(), Duration::from_secs(3)));
    c.run_for(Duration::from_millis(2900));
    assert_eq!(c.reply(w), None);
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.reply(w), Some(ClientResponse::Unchanged));
    c.run_for(Duration::from_millis(100));
    for n in c.node_ids() {
        assert_eq!(c.node(n).watch_counts(), (0, 0), "node {n}");
    }
}

#[test]
fn a_replica_whose_cancel_was_lost_forgets_the_watch_by_itself() {
    let (mut c, replicas, outsider) = cluster();
    let w = c.submit_watch(outsider, watch(Context::empty(), Duration::from_secs(3)));
    c.run_for(Duration::from_millis(100));
    c.cut_off(replicas[0]);
    c.run_for(Duration::from_secs(4));
    assert_eq!(c.reply(w), Some(ClientResponse::Unchanged));
    assert_eq!(
        c.node(replicas[0]).watch_counts().1,
        1,
        "the cancel did not reach it"
    );
    c.run_for(Duration::from_secs(6));
    assert_eq!(c.node(replicas[0]).watch_counts().1, 0, "gone after its grace");
}

#[test]
fn watches_past_max_watches_or_with_a_bad_timeout_are_refused() {
    let mut config = Config::default();
    config.max_watches = 2;
    let mut c = Cluster::new(5, config, 7);
    let outsider = c.non_replica(KEY).unwrap();
    let a = c.submit_watch(outsider, watch(Context::empty(), Duration::from_secs(30)));
    let b = c.submit_watch(outsider, watch(Context::empty(), Duration::from_secs(30)));
    let refused = c.submit_watch(outsider, watch(Context::empty(), Duration::from_secs(30)));
    c.run_for(Duration::from_millis(100));
    assert_eq!(
        c.reply(refused),
        Some(ClientResponse::Failed(RequestError::Busy { max: 2 }))
    );
    assert_eq!((c.reply(a), c.reply(b)), (None, None), "the first two wait");
    let too_long = c.submit_watch(outsider, watch(Context::empty(), Duration::from_secs(3600)));
    assert!(matches!(
        c.reply(too_long),
        Some(ClientResponse::Failed(RequestError::BadWatchTimeout { .. }))
    ));
}

#[test]
fn thousands_of_idle_watches_send_nothing_until_their_timeout() {
    let (mut c, replicas, outsider) = cluster();
    for _ in 0..2_000 {
        c.submit_watch(outsider, watch(Context::empty(), Duration::from_secs(60)));
    }
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.node(outsider).watch_counts().0, 2_000);
    for &r in &replicas {
        assert_eq!(c.node(r).watch_counts().1, 2_000);
    }
    // Idle: no message and no timer until the first deadline.
    let delivered = c.delivered();
    c.run_for(Duration::from_secs(50));
    assert_eq!(c.delivered(), delivered, "idle watches sent messages");
    assert!(c.node(outsider).poll_timeout().is_some());
    c.run_for(Duration::from_secs(20));
    for n in c.node_ids() {
        assert_eq!(c.node(n).watch_counts(), (0, 0), "node {n}");
    }
}
