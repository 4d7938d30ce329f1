//! Listings on a virtual-time cluster: pages in key order across the
//! whole ring, prefixes and ranges, deleted keys left out, quorums per
//! range, and replicas whose answers stop early.

use shoal::proto::harness::Cluster;
use shoal::proto::message::{ListRequest, MAX_LIST_LIMIT, after, prefix_end};
use shoal::proto::{ClientResponse, Config, Consistency, Context, ListedKey, NodeId, RequestError};

fn request(start: &[u8], end: Option<&[u8]>, limit: u32, consistency: Consistency) -> ListRequest {
    ListRequest {
        start: start.to_vec(),
        end: end.map(<[u8]>::to_vec),
        limit,
        values: true,
        consistency,
        timeout_ms: None,
    }
}

fn page(response: ClientResponse) -> (Vec<ListedKey>, Option<Vec<u8>>) {
    match response {
        ClientResponse::Listed { keys, next } => (keys, next),
        other => panic!("expected a page, got {other:?}"),
    }
}

/// Every key of a listing, page by page; also how many pages it took.
fn list_all(c: &mut Cluster, at: NodeId, mut listing: ListRequest) -> (Vec<Vec<u8>>, usize) {
    let mut keys = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 10_000, "the listing never ends");
        let (listed, next) = page(c.list(at, listing.clone()));
        assert!(listed.len() <= listing.limit as usize);
        keys.extend(listed.into_iter().map(|k| k.key));
        match next {
            Some(next) => listing.start = after(&next),
            None => return (keys, pages),
        }
    }
}

fn write(c: &mut Cluster, key: &[u8], value: &[u8]) {
    let at = c.replicas(key)[0];
    let written = c.put(at, key, value, Context::empty(), Consistency::All);
    assert!(matches!(written, ClientResponse::Written { .. }), "{written:?}");
}

fn key(i: usize) -> Vec<u8> {
    format!("user:{i:04}").into_bytes()
}

#[test]
fn pages_list_every_key_once_in_byte_order_across_the_ring() {
    let mut c = Cluster::new(5, Config::default(), 3);
    for i in 0..250 {
        write(&mut c, &key(i), b"v");
    }
    write(&mut c, b"other", b"v");
    let at = c.node_ids()[0];
    let (keys, pages) = list_all(
        &mut c,
        at,
        request(b"user:", prefix_end(b"user:").as_deref(), 40, Consistency::Quorum),
    );
    let expected: Vec<Vec<u8>> = (0..250).map(key).collect();
    assert_eq!(keys, expected);
    assert!((7..=8).contains(&pages), "{pages} pages of 40 for 250 keys");
    // A range: from 0100 up to (not including) 0110.
    let (listed, next) = page(c.list(at, request(&key(100), Some(&key(110)), 100, Consistency::One)));
    assert_eq!(
        listed.iter().map(|k| k.key.clone()).collect::<Vec<_>>(),
        (100..110).map(key).collect::<Vec<_>>()
    );
    assert_eq!(next, None);
    assert_eq!(listed[0].values[0].value, &b"v"[..]);
    // Everything: the other key too, first in byte order.
    let (all, _) = list_all(&mut c, at, request(b"", None, MAX_LIST_LIMIT, Consistency::All));
    assert_eq!(all.len(), 251);
    assert_eq!(all[0], b"other");
}

#[test]
fn deleted_keys_are_left_out_and_a_rewritten_key_comes_back() {
    let mut c = Cluster::new(3, Config::default(), 5);
    for i in 0..20 {
        write(&mut c, &key(i), b"v");
    }
    let at = c.node_ids()[1];
    for i in (0..20).step_by(2) {
        let read = c.get(at, &key(i), Consistency::All);
        let ClientResponse::Found { context, .. } = read else {
            panic!()
        };
        let deleted = c.delete(c.replicas(&key(i))[0], &key(i), context, Consistency::Quorum);
        assert!(matches!(deleted, ClientResponse::Written { .. }));
    }
    write(&mut c, &key(4), b"again");
    let (keys, _) = list_all(&mut c, at, request(b"user:", None, 3, Consistency::Quorum));
    let mut expected: Vec<Vec<u8>> = (1..20).step_by(2).map(key).collect();
    expected.push(key(4));
    expected.sort();
    assert_eq!(keys, expected);
}

#[test]
fn a_listing_needs_r_replicas_of_every_range() {
    let mut c = Cluster::new(3, Config::default(), 9);
    for i in 0..30 {
        write(&mut c, &key(i), b"v");
    }
    let ids = c.node_ids();
    c.cut_off(ids[2]);
    // QUORUM (2 of 3) still holds for every range with one node away.
    let (keys, _) = list_all(&mut c, ids[0], request(b"", None, 100, Consistency::Quorum));
    assert_eq!(keys.len(), 30);
    // ALL cannot: every range has the missing node among its replicas.
    let failed = c.list(ids[0], request(b"", None, 100, Consistency::All));
    assert!(
        matches!(
            failed,
            ClientResponse::Failed(RequestError::QuorumNotMet { required: 3, .. })
        ),
        "{failed:?}"
    );
}

#[test]
fn replicas_that_stop_early_still_give_complete_pages() {
    // Values of 200 KiB: a replica's answer stops after about three of
    // them (its byte budget), far below the page's limit.
    let mut config = Config::default();
    config.max_value_bytes = 256 * 1024;
    let mut c = Cluster::new(3, config, 11);
    let big = vec![7u8; 200 * 1024];
    for i in 0..12 {
        write(&mut c, &key(i), &big);
    }
    let at = c.node_ids()[0];
    let (keys, pages) = list_all(&mut c, at, request(b"", None, 100, Consistency::Quorum));
    assert_eq!(keys, (0..12).map(key).collect::<Vec<_>>());
    assert!(pages > 2, "answers should have stopped early ({pages} pages)");
}

#[test]
fn bad_limits_and_bounds_are_refused() {
    let mut c = Cluster::new(3, Config::default(), 13);
    let at = c.node_ids()[0];
    for bad in [
        request(b"", None, 0, Consistency::One),
        request(b"", None, MAX_LIST_LIMIT + 1, Consistency::One),
        request(b"b", Some(b"a"), 10, Consistency::One),
        request(b"a", Some(b"a"), 10, Consistency::One),
        request(
            &vec![b'k'; Config::default().max_key_bytes + 2],
            None,
            10,
            Consistency::One,
        ),
    ] {
        let refused = c.list(at, bad.clone());
        assert!(
            matches!(
                refused,
                ClientResponse::Failed(RequestError::InvalidListing { .. })
            ),
            "limit {}, bounds of {} and {:?} bytes: {refused:?}",
            bad.limit,
            bad.start.len(),
            bad.end.as_ref().map(Vec::len)
        );
    }
}

#[test]
fn prefix_bounds() {
    assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
    assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
    assert_eq!(prefix_end(b"\xff\xff"), None);
    assert_eq!(prefix_end(b""), None);
    assert_eq!(after(b"ab"), b"ab\0".to_vec());
}
