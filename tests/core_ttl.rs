//! Keys that expire, on the core in virtual time: a put with a time to
//! live reads as absent once it has passed, on every replica; its expiry
//! never brings back what it replaced; a write with the context of a read
//! replaces it; a time to live outside the limits is refused.

use shoal::proto::harness::Cluster;
use shoal::proto::message::ListRequest;
use shoal::proto::{
    ClientRequest, ClientResponse, Config, Consistency, Context, NodeId, RequestError, Store,
};
use std::time::Duration;

const KEY: &[u8] = b"session:1";

fn put(value: &[u8], context: Context, ttl: Option<Duration>) -> ClientRequest {
    put_to(KEY, value, context, ttl)
}

fn put_to(key: &[u8], value: &[u8], context: Context, ttl: Option<Duration>) -> ClientRequest {
    ClientRequest::Put {
        key: key.to_vec(),
        value: value.to_vec(),
        context,
        consistency: Consistency::All,
        timeout_ms: None,
        sloppy_quorum: true,
        ttl_ms: ttl.map(|t| t.as_millis() as u64),
    }
}

/// A listing of every key, with values, at QUORUM.
fn listing() -> ListRequest {
    ListRequest {
        start: Vec::new(),
        end: None,
        limit: 100,
        values: true,
        consistency: Consistency::Quorum,
        timeout_ms: None,
    }
}

/// The values and context a read at ONE from `at` gets.
fn read(c: &mut Cluster, at: NodeId) -> (Vec<Vec<u8>>, Context) {
    match c.get(at, KEY, Consistency::One) {
        ClientResponse::Found { values, context } => {
            (values.into_iter().map(|v| v.value.to_vec()).collect(), context)
        }
        other => panic!("{other:?}"),
    }
}

fn written(response: ClientResponse) -> Context {
    match response {
        ClientResponse::Written { context, .. } => context,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_value_with_a_time_to_live_reads_as_absent_on_every_replica_once_it_passed() {
    let mut c = Cluster::new(3, Config::default(), 1);
    let replicas = c.replicas(KEY);
    written(c.request(
        replicas[0],
        put(b"token", Context::empty(), Some(Duration::from_secs(30))),
    ));
    c.run_for(Duration::from_secs(29));
    for &at in &replicas {
        assert_eq!(
            read(&mut c, at).0,
            vec![b"token".to_vec()],
            "before expiry, at {at}"
        );
    }
    let listed = |c: &mut Cluster| match c.list(replicas[0], listing()) {
        ClientResponse::Listed { keys, .. } => keys.into_iter().map(|k| k.key).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(listed(&mut c), vec![KEY.to_vec()], "listed before expiry");
    c.run_for(Duration::from_secs(2));
    for &at in &replicas {
        assert!(read(&mut c, at).0.is_empty(), "after expiry, at {at}");
    }
    assert!(listed(&mut c).is_empty(), "a listing leaves the expired key out");
    // Read at ALL too: the merged state still holds no live value.
    match c.get(replicas[1], KEY, Consistency::All) {
        ClientResponse::Found { values, .. } => assert!(values.is_empty(), "{values:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_expiry_never_brings_back_what_the_expired_value_replaced() {
    let mut c = Cluster::new(3, Config::default(), 2);
    let at = c.replicas(KEY)[0];
    let first = written(c.request(at, put(b"v1", Context::empty(), None)));
    // v2 replaces v1 and expires in 5 s.
    written(c.request(at, put(b"v2", first, Some(Duration::from_secs(5)))));
    assert_eq!(read(&mut c, at).0, vec![b"v2".to_vec()]);
    c.run_for(Duration::from_secs(6));
    let (values, context) = read(&mut c, at);
    assert!(values.is_empty(), "v1 came back: {values:?}");
    // A write with the read's context replaces the expired value: one value.
    written(c.request(at, put(b"v3", context, None)));
    c.run_for(Duration::from_secs(60));
    assert_eq!(read(&mut c, at).0, vec![b"v3".to_vec()]);
    let stored = c.node(at).store().get(KEY).unwrap().unwrap();
    assert_eq!(stored.siblings().len(), 1, "the expired sibling was replaced");
}

#[test]
fn a_write_without_a_time_to_live_beside_an_expired_one_stays() {
    let mut c = Cluster::new(3, Config::default(), 3);
    let at = c.replicas(KEY)[0];
    // Two concurrent writes: siblings, one of which expires.
    written(c.request(at, put(b"short", Context::empty(), Some(Duration::from_secs(2)))));
    written(c.request(at, put(b"long", Context::empty(), None)));
    let mut values = read(&mut c, at).0;
    values.sort();
    assert_eq!(values, vec![b"long".to_vec(), b"short".to_vec()]);
    c.run_for(Duration::from_secs(3));
    assert_eq!(read(&mut c, at).0, vec![b"long".to_vec()]);
}

#[test]
fn a_time_to_live_outside_the_limits_is_refused_and_stores_nothing() {
    let config = {
        let mut cfg = Config::default();
        cfg.min_ttl = Duration::from_secs(1);
        cfg.max_ttl = Duration::from_secs(3600);
        cfg
    };
    let mut c = Cluster::new(3, config, 4);
    let at = c.replicas(KEY)[0];
    for ttl in [Duration::from_millis(500), Duration::from_secs(3601)] {
        let response = c.request(at, put(b"x", Context::empty(), Some(ttl)));
        assert_eq!(
            response,
            ClientResponse::Failed(RequestError::BadTtl {
                ttl_ms: ttl.as_millis() as u64,
                min_ms: 1000,
                max_ms: 3_600_000,
            })
        );
    }
    assert!(read(&mut c, at).0.is_empty());
    written(c.request(at, put(b"x", Context::empty(), Some(Duration::from_secs(3600)))));
}

/// A key whose every value expired is collected like a tombstone: on every
/// home replica, not before its expiry plus the grace; a key with a live
/// value beside an expired one stays.
#[test]
fn a_key_whose_values_all_expired_is_collected_after_the_grace() {
    let config = {
        let mut cfg = Config::default();
        cfg.hint_window = Duration::from_secs(1);
        cfg.tombstone_grace = Duration::from_secs(2);
        cfg
    };
    let mut c = Cluster::new(3, config, 5);
    c.enable_anti_entropy();
    let replicas = c.replicas(KEY);
    let other: &[u8] = b"session:2";
    written(c.request(
        replicas[0],
        put(b"a", Context::empty(), Some(Duration::from_secs(5))),
    ));
    let mixed = |value: &[u8], ttl| ClientRequest::Put {
        key: other.to_vec(),
        value: value.to_vec(),
        context: Context::empty(),
        consistency: Consistency::All,
        timeout_ms: None,
        sloppy_quorum: true,
        ttl_ms: ttl,
    };
    let at = c.replicas(other)[0];
    written(c.request(at, mixed(b"brief", Some(5_000))));
    written(c.request(at, mixed(b"lasting", None)));
    let holds = |c: &Cluster, node: NodeId, key: &[u8]| c.node(node).store().get(key).unwrap().is_some();
    // Expired at 5 s; the grace runs from when the sweep sees it expired.
    c.run_for(Duration::from_secs(6));
    assert!(
        replicas.iter().all(|&r| holds(&c, r, KEY)),
        "not before the grace"
    );
    c.run_for(Duration::from_secs(30));
    for &r in &replicas {
        assert!(!holds(&c, r, KEY), "{r} still holds the expired key");
    }
    for r in c.replicas(other) {
        assert!(holds(&c, r, other), "{r} lost a key with a live value");
    }
    match c.get(at, other, Consistency::All) {
        ClientResponse::Found { values, .. } => {
            let values: Vec<Vec<u8>> = values.into_iter().map(|v| v.value.to_vec()).collect();
            assert_eq!(values, vec![b"lasting".to_vec()]);
        }
        response => panic!("{response:?}"),
    }
}
