//! A node's disk in memory: writes land in a pending layer and become
//! durable on `sync`; a crash (power loss) drops what was pending.

use shoal::proto::store::{DigestEntry, decode_record, digests_of, encode_record};
use shoal::proto::{NodeMeta, Store, StoreError, Versioned};
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
}

impl SimStore {
    /// Whether writes await a sync.
    pub fn is_dirty(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Power loss: everything not synced is gone.
    pub fn crash(&mut self) {
        self.pending.clear();
    }

    /// Every key and its state, as the node would read them.
    pub fn all(&self) -> BTreeMap<Vec<u8>, Versioned> {
        let mut keys: Vec<&Vec<u8>> = self.durable.keys().chain(self.pending.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| self.get(k).ok().flatten().map(|v| (k.clone(), v)))
            .collect()
    }
}

impl Store for SimStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        let record = match self.pending.get(key) {
            Some(pending) => pending.as_ref(),
            None => self.durable.get(key),
        };
        record.map(|r| decode_record(key, r)).transpose()
    }

    fn put(&mut self, key: &[u8], object: &Versioned) -> Result<(), StoreError> {
        self.pending.insert(key.to_vec(), Some(encode_record(object)));
        Ok(())
    }

    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.pending.insert(key.to_vec(), None);
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

    fn load_meta(&self) -> Result<Option<NodeMeta>, StoreError> {
        Ok(self.meta)
    }

    fn save_meta(&mut self, meta: &NodeMeta) -> Result<(), StoreError> {
        self.meta = Some(*meta);
        Ok(())
    }

    fn digests(&self, first: u64, last: u64, limit: usize) -> Result<Vec<DigestEntry>, StoreError> {
        let all = self.all();
        Ok(digests_of(
            all.iter().map(|(k, v)| (k.as_slice(), v.clone())),
            first,
            last,
            limit,
        ))
    }

    fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.states.get(name).cloned())
    }

    fn save_state(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
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
        Ok(())
    }
}
