//! Micro-benchmarks of the core's hot paths: version merge, ring lookup,
//! frame encode/decode, the DigestTree tree update on every write, and a
//! replica's storage write (read, merge, write) one at a time and 64 to a
//! fjall batch.
//!
//! `cargo bench --bench core`; figures are in BENCH.md.

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use shoal::net::frame::{DEFAULT_MAX_FRAME, decode_exact, encode};
use shoal::proto::digest_tree::DigestTree;
use shoal::proto::message::{PeerMessage, Placement};
use shoal::proto::ring::{Ring, key_position};
use shoal::proto::version::{Actor, VersionVector};
use shoal::proto::{NodeId, Store, Versioned};
use shoal::storage::FjallStore;
use std::hint::black_box;

fn actor(node: u64) -> Actor {
    Actor {
        node: NodeId(node),
        epoch: 1 << 32,
    }
}

/// A key's state written `writes` times by each of `actors` replicas,
/// each write replacing what that replica had seen.
fn object(actors: u64, writes: u64, value_size: usize) -> Versioned {
    let mut object = Versioned::new();
    for round in 0..writes {
        for a in 0..actors {
            let context = object.clock().clone();
            let value = vec![round as u8; value_size];
            object
                .write(actor(a + 1), &context, Some(value), round, 64)
                .expect("within the sibling limit");
        }
    }
    object
}

fn version_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("version_merge");
    // Replicas in step (the common read path) and two concurrent siblings.
    let base = object(3, 4, 100);
    let mut ahead = base.clone();
    ahead
        .write(actor(1), &base.clock().clone(), Some(vec![7; 100]), 99, 64)
        .unwrap();
    let mut concurrent = base.clone();
    concurrent
        .write(actor(2), &VersionVector::new(), Some(vec![8; 100]), 99, 64)
        .unwrap();
    group.bench_function("equal", |b| b.iter(|| black_box(&base).merge(black_box(&base))));
    group.bench_function("one_ahead", |b| {
        b.iter(|| black_box(&base).merge(black_box(&ahead)))
    });
    group.bench_function("siblings", |b| {
        b.iter(|| black_box(&ahead).merge(black_box(&concurrent)))
    });
    group.finish();
}

fn ring_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_preference_list");
    for nodes in [3u64, 12, 48] {
        let ring = Ring::with_nodes(256, (1..=nodes).map(NodeId));
        let keys: Vec<Vec<u8>> = (0..1024).map(|i| format!("user{i:012}").into_bytes()).collect();
        let mut i = 0;
        group.bench_with_input(BenchmarkId::from_parameter(nodes), &ring, |b, ring| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                ring.preference_list(black_box(&keys[i]), 3)
            })
        });
    }
    group.finish();
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    let message = PeerMessage::ReplicaPut {
        request: 12345,
        key: b"user000000000042".to_vec(),
        object: object(3, 1, 100).into(),
        // As sent during a join: current and future replicas.
        placement: Some(Placement {
            current: vec![NodeId(1), NodeId(2), NodeId(3)],
            future: Some(vec![NodeId(4), NodeId(2), NodeId(3)]),
        }),
    };
    let bytes = encode(&message);
    group.bench_function("encode_replica_put", |b| b.iter(|| encode(black_box(&message))));
    group.bench_function("decode_replica_put", |b| {
        b.iter(|| decode_exact::<PeerMessage>(black_box(&bytes), DEFAULT_MAX_FRAME).unwrap())
    });
    group.finish();
}

fn digest_tree_update(c: &mut Criterion) {
    let mut tree = DigestTree::new();
    let positions: Vec<u64> = (0..4096u32)
        .map(|i| key_position(format!("user{i:012}").as_bytes()))
        .collect();
    let mut i = 0;
    c.bench_function("digest_tree_apply", |b| {
        b.iter(|| {
            i = (i + 1) % positions.len();
            tree.apply(black_box(positions[i]), i as u64, (i as u64).wrapping_mul(31), 0);
        })
    });
}

/// A replica's write of a 100-byte value to a store of 100,000 keys: read
/// the stored state, merge, write the state and its digest index entry.
/// `single` commits each write alone (as a replica does now); `read` is
/// its read alone; `batch_64` reads 64 and commits them in one batch (per
/// write: divide by 64).
fn replica_write(c: &mut Criterion) {
    const KEYS: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let mut store = FjallStore::open(dir.path()).unwrap();
    let key = |i: u64| format!("user{:012}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % KEYS).into_bytes();
    let value = object(1, 1, 100);
    for i in 0..KEYS {
        store.put(&key(i), &value).unwrap();
    }
    let incoming = object(2, 1, 100);
    // A replica's read and merge of `k`'s state.
    let merged = |store: &FjallStore, k: &[u8]| {
        let mut state = store.get(k).unwrap().unwrap_or_default();
        state.merge_from(&incoming);
        state
    };
    let mut group = c.benchmark_group("replica_write");
    let mut i = 0u64;
    group.bench_function("single", |b| {
        b.iter(|| {
            i += 1;
            let k = key(i);
            let state = merged(&store, &k);
            store.put(&k, &state).unwrap();
        })
    });
    // The read alone: single minus this is the write.
    group.bench_function("read", |b| {
        b.iter(|| {
            i += 1;
            black_box(store.get(&key(i)).unwrap())
        })
    });
    group.bench_function("batch_64", |b| {
        b.iter(|| {
            let states: Vec<(Vec<u8>, Versioned)> = (0..64)
                .map(|_| {
                    i += 1;
                    let k = key(i);
                    let state = merged(&store, &k);
                    (k, state)
                })
                .collect();
            let refs: Vec<(&[u8], &Versioned)> = states.iter().map(|(k, s)| (k.as_slice(), s)).collect();
            store.put_many(&refs).unwrap();
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    version_merge,
    ring_lookup,
    frames,
    digest_tree_update,
    replica_write
);
criterion_main!(benches);
