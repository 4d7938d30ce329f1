//! shoal: a leaderless, Dynamo-style replicated key-value store.
//!
//! # Map
//!
//! * [`proto`] — the core, with no I/O: ring, versions, messages, quorums,
//!   the coordinator, the `Store` trait. Driven by `now` and inputs; yields
//!   outputs. Everything distributed lives here so the simulator can run it.
//!   A peer message enters through the boundary's checks (`validate`),
//!   then the one dispatcher (`dispatch`) hands it to the subsystem that
//!   owns it: the coordinator (client requests and the replica side),
//!   hints, topology (join and leave), cleanup, tombstone collection,
//!   anti-entropy (over the `digest_tree`) and membership.
//! * [`storage`] — the on-disk `Store` (fjall): data and node metadata.
//! * [`net`] — wire framing (length, crc32, MessagePack body, size limits),
//!   frames on QUIC streams, and mutual TLS from the cluster CA.
//! * [`node`] — the production driver: the core on QUIC and fjall.
//! * [`client`] — the client library, with a consistency level per request.
//! * [`bench`](mod@bench) — YCSB-style workloads through the client (`shoal bench`).
//!
//! The simulator (`sim/`) drives the same core on virtual time.

pub mod bench;
pub mod client;
pub mod net;
pub mod node;
pub mod proto;
pub mod storage;

pub use client::{
    Admin, Client, ClientBuilder, ClientError, Credentials, ListOptions, Page, ReadOptions, ReadResult,
    WriteOptions,
};
pub use proto::{Consistency, Context, ListedKey};

/// mimalloc for every program built on shoal (the node, benchmarks, tests,
/// the simulator): glibc's malloc took 13% of a loaded node's CPU (see
/// BENCH.md) and about a fifth of a join's, with its arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
