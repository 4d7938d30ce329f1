//! The store of a memory-only node (`storage = "memory"`): keys, states
//! and hints in memory, bounded by `max_memory_bytes`, and only the node's
//! identity on disk.
//!
//! A restarted memory node comes back empty under its old id with a new
//! dot epoch, exactly like a node whose disk was wiped and that was
//! started with `--node-id`: anti-entropy, hints and read repair refill it
//! from the other replicas. Its identity file is what lets it keep its
//! ranges instead of joining as a new member.

use crate::proto::store::{DigestEntry, MemStore, Scanned, StoredHint, decode_meta, encode_meta};
use crate::proto::{NodeId, NodeMeta, Store, StoreError, Versioned};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The file holding a memory node's identity (id, epoch, format).
pub const IDENTITY_FILE: &str = "MEMORY_NODE";

/// A memory-only store whose node identity is kept in a data directory.
pub struct MemoryStore {
    data: MemStore,
    dir: PathBuf,
    /// Held for the store's life: a second process on the directory is
    /// refused (it would share the node's id and epochs).
    _lock: DirLock,
}

#[cfg(target_os = "linux")]
type DirLock = nix::fcntl::Flock<File>;
#[cfg(not(target_os = "linux"))]
type DirLock = File;

/// Locks `file` for this process, or fails if another holds it.
#[cfg(target_os = "linux")]
fn lock(file: File) -> Result<DirLock, ()> {
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| ())
}
#[cfg(not(target_os = "linux"))]
fn lock(file: File) -> Result<DirLock, ()> {
    Ok(file)
}

fn io(error: std::io::Error) -> StoreError {
    StoreError::Engine {
        source: Box::new(error),
    }
}

impl MemoryStore {
    /// Opens a memory store of at most `max_bytes` whose identity lives in
    /// `dir` (created if missing). Refuses a directory holding an on-disk
    /// store, or one another process uses.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<MemoryStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(io)?;
        if dir.join(super::FORMAT_FILE).exists() {
            return Err(StoreError::Engine {
                source: format!(
                    "{} holds an on-disk store; a memory node needs a directory of its own",
                    dir.display()
                )
                .into(),
            });
        }
        let file = File::create(dir.join("MEMORY_NODE.lock")).map_err(io)?;
        let lock = lock(file).map_err(|()| StoreError::Engine {
            source: format!("{} is in use by another node process", dir.display()).into(),
        })?;
        Ok(MemoryStore {
            data: MemStore::with_limit(max_bytes),
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// Bytes held (keys, states and hints, estimated).
    pub fn bytes(&self) -> u64 {
        self.data.bytes()
    }
}

/// Whether `dir` holds a memory node's identity (an on-disk store must
/// not be opened there).
pub fn holds_memory_node(dir: &Path) -> bool {
    dir.join(IDENTITY_FILE).exists()
}

impl Store for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.data.get(key)
    }

    fn get_with_digest(&self, key: &[u8]) -> Result<Option<(Versioned, u64)>, StoreError> {
        self.data.get_with_digest(key)
    }

    fn put(&mut self, key: &[u8], object: &Versioned) -> Result<u64, StoreError> {
        self.data.put(key, object)
    }

    fn put_many(&mut self, states: &[(&[u8], &Versioned)]) -> Result<Vec<u64>, StoreError> {
        self.data.put_many(states)
    }

    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.data.remove(key)
    }

    fn scan(&self, from: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Versioned)>, StoreError> {
        self.data.scan(from, limit)
    }

    fn scan_with_digest(&self, from: &[u8], limit: usize, max_bytes: u64) -> Result<Scanned, StoreError> {
        self.data.scan_with_digest(from, limit, max_bytes)
    }

    fn load_meta(&self) -> Result<Option<NodeMeta>, StoreError> {
        match std::fs::read(self.dir.join(IDENTITY_FILE)) {
            Ok(bytes) => decode_meta(&bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Written to a new file, synced, then renamed over the old one, so a
    /// crash leaves the old identity or the new one.
    fn save_meta(&mut self, meta: &NodeMeta) -> Result<(), StoreError> {
        let new = self.dir.join(format!("{IDENTITY_FILE}.new"));
        let mut file = File::create(&new).map_err(io)?;
        file.write_all(&encode_meta(meta)).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&new, self.dir.join(IDENTITY_FILE)).map_err(io)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn digests(&self, first: u64, last: u64, limit: usize) -> Result<Vec<DigestEntry>, StoreError> {
        self.data.digests(first, last, limit)
    }

    fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.data.load_state(name)
    }

    fn save_state(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.data.save_state(name, bytes)
    }

    fn put_hint(&mut self, target: NodeId, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        self.data.put_hint(target, seq, record)
    }

    fn hints(&self, from: (NodeId, u64), limit: usize) -> Result<Vec<StoredHint>, StoreError> {
        self.data.hints(from, limit)
    }

    fn remove_hint(&mut self, target: NodeId, seq: u64) -> Result<(), StoreError> {
        self.data.remove_hint(target, seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::store::contract;

    #[test]
    fn passes_the_store_contract() {
        let dirs: Vec<tempfile::TempDir> = (0..12).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut next = dirs.iter();
        contract::run(|| MemoryStore::open(next.next().unwrap().path(), u64::MAX).unwrap());
    }

    #[test]
    fn the_identity_survives_a_restart_and_the_data_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let meta = NodeMeta {
            node_id: NodeId(7),
            epoch: 3 << 32,
            format_version: crate::proto::store::FORMAT_VERSION,
        };
        {
            let mut store = MemoryStore::open(dir.path(), 1 << 20).unwrap();
            assert_eq!(store.load_meta().unwrap(), None);
            store.save_meta(&meta).unwrap();
            store.put(b"k", &contract::object(b"v")).unwrap();
            assert!(
                MemoryStore::open(dir.path(), 1 << 20).is_err(),
                "a second process on the directory is refused"
            );
        }
        let store = MemoryStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.load_meta().unwrap(), Some(meta));
        assert_eq!(store.get(b"k").unwrap(), None);
        assert!(holds_memory_node(dir.path()));
    }

    #[test]
    fn past_the_limit_writes_are_refused_whole_and_deletes_still_taken() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = MemoryStore::open(dir.path(), 4096).unwrap();
        let value = contract::object(&[7u8; 1000]);
        let mut stored = 0;
        while store.put(format!("k{stored}").as_bytes(), &value).is_ok() {
            stored += 1;
        }
        assert!(stored >= 2, "{stored} values of 1000 bytes fit in 4096");
        assert!(store.bytes() <= 4096, "{} bytes held", store.bytes());
        let full = store.bytes();
        let err = store.put(b"other", &value).unwrap_err();
        assert!(matches!(err, StoreError::OutOfMemory { max: 4096, .. }), "{err}");
        assert_eq!(store.get(b"other").unwrap(), None, "nothing of it stored");
        let (a, b) = (contract::object(&[8u8; 1000]), value.clone());
        let err = store.put_many(&[(b"k0", &a), (b"new", &b)]).unwrap_err();
        assert!(matches!(err, StoreError::OutOfMemory { .. }));
        assert_eq!(
            store.get(b"k0").unwrap(),
            Some(value.clone()),
            "a batch is all or nothing"
        );
        assert_eq!(store.bytes(), full);
        // A smaller state in place of a larger one, and a removal, free memory.
        store.put(b"k0", &contract::object(b"small")).unwrap();
        assert!(store.bytes() < full);
        store.remove(b"k1").unwrap();
        store.put(b"other", &value).unwrap();
        assert_eq!(store.digests(0, u64::MAX, 100).unwrap().len(), stored);
    }
}
