//! A node's disk in memory: writes land in a pending layer and become
//! durable on `sync`; a crash (power loss) drops what was pending.

use shoal::proto::ring::key_position;
use shoal::proto::store::{
    DigestEntry, Scanned, StoredHint, collect_scanned, decode_record, decode_record_with_digest, digest,
    encode_record_with_digest, index_range, stored_hints,
};
use shoal::proto::{NodeId, NodeMeta, Store, StoreError, Versioned};
use std::collections::BTreeMap;

/// See the module doc.
#[derive(Clone, Debug, Default)]
pub struct SimStore {
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `None` is a pending removal.
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    meta: Option<NodeMeta>,
    /// Node state records, written through at once (they are rare).
    states: BTreeMap<String, Vec<u8>>,
    /// The digest index of what the node reads (durable and pending):
    /// (position, key) -> digest.
    index: BTreeMap<(u64, Vec<u8>), u64>,
    hints: BTreeMap<(NodeId, u64), Vec<u8>>,
    /// `None` is a pending removal.
    pending_hints: BTreeMap<(NodeId, u64), Option<Vec<u8>>>,
    /// The disk is full: every write fails (reads still work). The node's
    /// metadata record, written at start, always fits: a node that could
    /// not save its new epoch would not start at all.
    full: bool,
}

impl SimStore {
    /// Fills the disk (`true`: every write fails) or gives it room again.
    pub fn set_full(&mut self, full: bool) {
        self.full = full;
    }

    fn writable(&self) -> Result<(), StoreError> {
        shoal::proto::store::simulated_full_disk(self.full)
    }

    /// Whether writes await a sync.
    pub fn is_dirty(&self) -> bool {
        !self.pending.is_empty() || !self.pending_hints.is_empty()
    }

    /// Power loss: everything not synced is gone.
    pub fn crash(&mut self) {
        self.pending.clear();
        self.pending_hints.clear();
        self.index = self
            .durable
            .iter()
            .map(|(key, record)| {
                let object = decode_record(key, record).expect("the simulated disk holds valid records");
                ((key_position(key), key.clone()), digest(key, &object))
            })
            .collect();
    }

    /// Hints as the node would read them.
    fn visible_hints(&self) -> BTreeMap<(NodeId, u64), Vec<u8>> {
        let mut hints = self.hints.clone();
        for (id, record) in &self.pending_hints {
            match record {
                Some(record) => hints.insert(*id, record.clone()),
                None => hints.remove(id),
            };
        }
        hints
    }

    /// `key`'s record as the node would read it.
    fn record(&self, key: &[u8]) -> Option<&Vec<u8>> {
        match self.pending.get(key) {
            Some(pending) => pending.as_ref(),
            None => self.durable.get(key),
        }
    }

    /// Keys from `from` on that have a record or a pending change, in
    /// order (a pending removal's key included: [`SimStore::record`]
    /// reads it as absent).
    fn keys_from(&self, from: &[u8]) -> Vec<&Vec<u8>> {
        let mut keys: Vec<&Vec<u8>> = self
            .durable
            .range(from.to_vec()..)
            .map(|(key, _)| key)
            .chain(self.pending.range(from.to_vec()..).map(|(key, _)| key))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Every key and its state, as the node would read them.
    pub fn all(&self) -> BTreeMap<Vec<u8>, Versioned> {
        self.keys_from(&[])
            .into_iter()
            .filter_map(|k| self.get(k).ok().flatten().map(|v| (k.clone(), v)))
            .collect()
    }
}

impl Store for SimStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.record(key).map(|r| decode_record(key, r)).transpose()
    }

    fn get_with_digest(&self, key: &[u8]) -> Result<Option<(Versioned, u64)>, StoreError> {
        self.record(key)
            .map(|r| decode_record_with_digest(key, r))
            .transpose()
    }

    fn put(&mut self, key: &[u8], object: &Versioned) -> Result<u64, StoreError> {
        self.writable()?;
        let (record, digest) = encode_record_with_digest(key, object);
        self.pending.insert(key.to_vec(), Some(record));
        self.index.insert((key_position(key), key.to_vec()), digest);
        Ok(digest)
    }

    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        self.pending.insert(key.to_vec(), None);
        self.index.remove(&(key_position(key), key.to_vec()));
        Ok(())
    }

    fn scan(&self, from: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Versioned)>, StoreError> {
        Ok(self
            .all()
            .into_iter()
            .filter(|(k, _)| k.as_slice() >= from)
            .take(limit)
            .collect())
    }

    fn scan_with_digest(&self, from: &[u8], limit: usize, max_bytes: u64) -> Result<Scanned, StoreError> {
        let records = self
            .keys_from(from)
            .into_iter()
            .filter_map(|key| self.record(key).map(|record| Ok((key, record))));
        collect_scanned(records, limit, max_bytes)
    }

    fn load_meta(&self) -> Result<Option<NodeMeta>, StoreError> {
        Ok(self.meta)
    }

    fn save_meta(&mut self, meta: &NodeMeta) -> Result<(), StoreError> {
        self.meta = Some(*meta);
        Ok(())
    }

    fn digests(&self, first: u64, last: u64, limit: usize) -> Result<Vec<DigestEntry>, StoreError> {
        Ok(index_range(&self.index, first, last, limit))
    }

    fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.states.get(name).cloned())
    }

    fn save_state(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        self.states.insert(name.to_string(), bytes.to_vec());
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        for (key, record) in std::mem::take(&mut self.pending) {
            match record {
                Some(record) => self.durable.insert(key, record),
                None => self.durable.remove(&key),
            };
        }
        self.hints = self.visible_hints();
        self.pending_hints.clear();
        Ok(())
    }

    fn put_hint(&mut self, target: NodeId, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        self.pending_hints.insert((target, seq), Some(record.to_vec()));
        Ok(())
    }

    fn hints(&self, from: (NodeId, u64), limit: usize) -> Result<Vec<StoredHint>, StoreError> {
        let hints = self.visible_hints();
        Ok(stored_hints(hints.range(from..), limit))
    }

    fn remove_hint(&mut self, target: NodeId, seq: u64) -> Result<(), StoreError> {
        self.writable()?;
        self.pending_hints.insert((target, seq), None);
        Ok(())
    }

    fn recover(&mut self) -> Result<(), StoreError> {
        self.writable()
    }
}
