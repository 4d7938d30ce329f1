//! shoal: a leaderless, Dynamo-style replicated key-value store.
//!
//! # Map
//!
//! * [`proto`] — the core, with no I/O: ring, versions, messages, quorums,
//!   the coordinator, the `Store` trait. Driven by `now` and inputs; yields
//!   outputs. Everything distributed lives here so the simulator can run it.
//! * [`storage`] — the on-disk `Store` (fjall): data and node metadata.
//! * [`net`] — wire framing: length, crc32, MessagePack body, size limits.
//!
//! The production driver (QUIC, gossip), the client library and the
//! simulator (`sim/`) are built on these.

pub mod net;
pub mod proto;
pub mod storage;

pub use proto::{Consistency, Context};
