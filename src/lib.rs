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
    Watched, WriteOptions,
};
pub use proto::{Consistency, Context, ListedKey};

/// mimalloc for every program built on shoal (the node, benchmarks, tests,
/// the simulator): glibc's malloc took 13% of a loaded node's CPU (see
/// BENCH.md) and about a fifth of a join's, with its arena locks.
#[cfg(not(feature = "count-allocations"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc with a count of allocations, for `benches/allocations.rs`
/// (feature `count-allocations`; off in every build users run).
#[cfg(feature = "count-allocations")]
#[allow(unsafe_code)]
pub mod allocations {
    use std::alloc::{GlobalAlloc, Layout};
    use std::sync::atomic::{AtomicU64, Ordering};

    static COUNT: AtomicU64 = AtomicU64::new(0);
    static BYTES: AtomicU64 = AtomicU64::new(0);

    /// Allocations and bytes allocated by the whole process so far
    /// (reallocations count as allocations).
    pub fn counted() -> (u64, u64) {
        (COUNT.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed))
    }

    fn count(bytes: usize) {
        COUNT.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    struct Counting;

    // SAFETY: every call is passed on to mimalloc unchanged.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count(layout.size());
            // SAFETY: the caller's contract, passed on.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract, passed on.
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count(layout.size());
            // SAFETY: the caller's contract, passed on.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count(new_size);
            // SAFETY: the caller's contract, passed on.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;
}
