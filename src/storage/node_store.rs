//! The store a node process runs on: on disk (fjall) or, for a cache
//! node, in memory.

use super::{FjallStore, MemoryStore};
use crate::proto::store::{DigestEntry, Scanned, StoredHint};
use crate::proto::{NodeId, NodeMeta, Store, StoreError, Versioned};

/// Where a node keeps its data.
pub enum NodeStore {
    /// In a fjall data directory.
    Disk(FjallStore),
    /// In memory, bounded, with only the node's identity on disk.
    Memory(MemoryStore),
}

/// Calls the same method on whichever store it is.
macro_rules! either {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            NodeStore::Disk($store) => $call,
            NodeStore::Memory($store) => $call,
        }
    };
}

impl NodeStore {
    /// The fjall store, if the node keeps its data on disk.
    pub fn disk(&self) -> Option<&FjallStore> {
        match self {
            NodeStore::Disk(store) => Some(store),
            NodeStore::Memory(_) => None,
        }
    }

    /// Bytes of keys, states and hints held in memory, if the node keeps
    /// its data in memory.
    pub fn memory_bytes(&self) -> Option<u64> {
        match self {
            NodeStore::Disk(_) => None,
            NodeStore::Memory(store) => Some(store.bytes()),
        }
    }
}

impl Store for NodeStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        either!(self, s => s.get(key))
    }
    fn get_with_digest(&self, key: &[u8]) -> Result<Option<(Versioned, u64)>, StoreError> {
        either!(self, s => s.get_with_digest(key))
    }
    fn put(&mut self, key: &[u8], object: &Versioned) -> Result<u64, StoreError> {
        either!(self, s => s.put(key, object))
    }
    fn put_many(&mut self, states: &[(&[u8], &Versioned)]) -> Result<Vec<u64>, StoreError> {
        either!(self, s => s.put_many(states))
    }
    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        either!(self, s => s.remove(key))
    }
    fn scan(&self, from: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Versioned)>, StoreError> {
        either!(self, s => s.scan(from, limit))
    }
    fn scan_with_digest(&self, from: &[u8], limit: usize, max_bytes: u64) -> Result<Scanned, StoreError> {
        either!(self, s => s.scan_with_digest(from, limit, max_bytes))
    }
    fn load_meta(&self) -> Result<Option<NodeMeta>, StoreError> {
        either!(self, s => s.load_meta())
    }
    fn save_meta(&mut self, meta: &NodeMeta) -> Result<(), StoreError> {
        either!(self, s => s.save_meta(meta))
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        either!(self, s => s.sync())
    }
    fn digests(&self, first: u64, last: u64, limit: usize) -> Result<Vec<DigestEntry>, StoreError> {
        either!(self, s => s.digests(first, last, limit))
    }
    fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        either!(self, s => s.load_state(name))
    }
    fn save_state(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        either!(self, s => s.save_state(name, bytes))
    }
    fn put_hint(&mut self, target: NodeId, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        either!(self, s => s.put_hint(target, seq, record))
    }
    fn hints(&self, from: (NodeId, u64), limit: usize) -> Result<Vec<StoredHint>, StoreError> {
        either!(self, s => s.hints(from, limit))
    }
    fn remove_hint(&mut self, target: NodeId, seq: u64) -> Result<(), StoreError> {
        either!(self, s => s.remove_hint(target, seq))
    }
    fn recover(&mut self) -> Result<(), StoreError> {
        either!(self, s => s.recover())
    }
    fn remove_hints(&mut self, target: NodeId, seqs: &[u64]) -> Result<(), StoreError> {
        either!(self, s => s.remove_hints(target, seqs))
    }
}
