//! The on-disk [`Store`]: fjall, with one keyspace for key states and one
//! for node metadata.
//!
//! Every write reaches the operating system before it returns (it survives
//! a crash of the process); [`Store::sync`] makes everything written so far
//! survive power loss. Node metadata is synced on every save, so a new dot
//! epoch is durable before the node serves a request. Records carry a
//! format byte and a crc32 (see `proto::store::encode_record`): a damaged
//! record is reported, never served.
//!
//! The digest index (ring position and key -> digest, what anti-entropy
//! compares) of a small record is not written with the record: entries
//! gather in memory, [`INDEX_HELD`] of them, and are written in sorted
//! runs of neighbours on the ring, [`INDEX_CHUNK`] at a time. A random
//! insert into the index's large memtable cost about 12% of a write's
//! CPU; sorted runs cost far less (BENCH.md, request path step 12). A
//! marker written at a clean close says the index on disk is complete; a
//! directory opened without it (after a crash or a power loss) has its
//! index rebuilt from the records before it serves.

use crate::proto::ring::key_position;
use crate::proto::store::{
    DigestEntry, FORMAT_VERSION, Scanned, StoredHint, collect_scanned, decode_hint, decode_meta,
    decode_record, decode_record_with_digest, encode_meta, encode_record_with_digest, record_digest,
};
use crate::proto::{NodeId, NodeMeta, Store, StoreError, Versioned};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};
use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included, Unbounded};
use std::path::{Path, PathBuf};

pub mod memory;
mod node_store;

pub use memory::MemoryStore;
pub use node_store::NodeStore;

const META_KEY: &[u8] = b"node";
/// The record a recovery check writes and syncs.
const PROBE_KEY: &[u8] = b"probe";
const FORMAT_FILE: &str = "SHOAL_FORMAT";
/// Present in the meta keyspace only while the digest index on disk holds
/// every record's entry: written at a clean close, removed at open.
const INDEX_COMPLETE_KEY: &[u8] = b"index-complete";
/// Index entries held in memory: past this many, writes take runs of
/// them to disk. The more are held, the closer neighbours on the ring a
/// run's entries are (BENCH.md, request path step 12) ...
const INDEX_HELD: usize = 4096;
/// ... or fewer if their keys take this many bytes.
const INDEX_HELD_BYTES: usize = 1 << 20;
/// Entries per run: the next ones in ring order after the last run (a
/// sweep round the ring). A run is one batch, and the node's other calls
/// wait for it: writing all 4,096 at once stalled it for milliseconds
/// (the p99 of gets during a hint replay rose 4-6x), and runs of 256
/// still let that p99 pass twice its level in 4 of 20 replays. Runs of 32
/// cost no more CPU per write: consecutive runs are neighbours on the
/// ring whatever their size (BENCH.md, request path step 12).
const INDEX_CHUNK: usize = 32;
/// Entries rebuilt in memory, then written sorted, per batch of a rebuild.
const REBUILD_BATCH: usize = 1 << 16;

/// A data directory opened with fjall.
pub struct FjallStore {
    path: PathBuf,
    /// `None` only while a reopen after a storage failure has not
    /// succeeded yet (every call then fails until it does).
    open: Option<Handles>,
    /// Index entries (index key -> digest) of records written but not yet
    /// indexed on disk. They replace the disk's entries of the same keys.
    unindexed: BTreeMap<Vec<u8>, u64>,
    /// Bytes of the keys in `unindexed`.
    unindexed_bytes: usize,
    /// The last index key of the last run written (see [`INDEX_CHUNK`]).
    sweep: Vec<u8>,
    /// Whether the open found the index incomplete and rebuilt it.
    index_rebuilt: bool,
}

/// The open database and its keyspaces.
struct Handles {
    db: Database,
    data: Keyspace,
    meta: Keyspace,
    /// The digest index: position (8 bytes, big-endian) ++ key -> digest.
    digests: Keyspace,
    /// Hints: target node id ++ sequence number (big-endian) -> record.
    hints: Keyspace,
}

fn engine(error: fjall::Error) -> StoreError {
    StoreError::Engine {
        source: Box::new(error),
    }
}

/// Block cache shared by the keyspaces.
const CACHE_BYTES: u64 = 32 << 20;
/// Memtable size of the data keyspace (fjall's default). Every flush
/// briefly blocks the node's reads and writes (fjall fsyncs its journal and
/// installs the new table under locks the store's calls wait for: 5-15 ms
/// measured), so memtables are kept large enough that a burst of writes,
/// such as a hint replay, causes few of them; memory stays within the
/// target (see BENCH.md).
const DATA_MEMTABLE_BYTES: u64 = 64 << 20;
/// Records at least this large (the object gateway's data blocks) are
/// kept in blob files beside the tree, not in its tables: compactions
/// move only their keys and pointers instead of rewriting megabytes at
/// every level (PUT of 64 MiB objects 31.6 -> 54.6 MB/s, see BENCH.md).
/// Smaller records stay in the tree, where a read is one lookup. fjall
/// takes a keyspace's options when it creates it: a data directory made
/// before keeps its own.
const SEPARATED_VALUE_BYTES: u32 = 16 << 10;
/// Memtable size of the digest index and of the hints (small entries).
const INDEX_MEMTABLE_BYTES: u64 = 16 << 20;

impl FjallStore {
    /// Opens (or creates) the data directory at `path`. Fails if another
    /// process holds it or it was written by an incompatible format.
    pub fn open(path: &Path) -> Result<FjallStore, StoreError> {
        check_format_marker(path)?;
        let handles = Handles::open(path)?;
        let complete = handles.meta.get(INDEX_COMPLETE_KEY).map_err(engine)?.is_some();
        if complete {
            handles.meta.remove(INDEX_COMPLETE_KEY).map_err(engine)?;
        } else {
            let started = std::time::Instant::now();
            let records = handles.rebuild_index()?;
            // A new directory has nothing to say.
            if records > 0 {
                tracing::info!(
                    path = %path.display(),
                    records,
                    ms = started.elapsed().as_millis() as u64,
                    "digest index rebuilt (the directory was not closed cleanly)"
                );
            }
        }
        // Durable before any write: a crash from now on leaves no marker.
        handles.db.persist(PersistMode::SyncAll).map_err(engine)?;
        Ok(FjallStore {
            path: path.to_path_buf(),
            open: Some(handles),
            unindexed: BTreeMap::new(),
            unindexed_bytes: 0,
            sweep: Vec::new(),
            index_rebuilt: !complete,
        })
    }

    /// Bytes the database takes on disk.
    pub fn disk_space(&self) -> u64 {
        self.open.as_ref().map_or(0, |h| h.db.disk_space().unwrap_or(0))
    }

    /// Bytes held in memtables (the active ones and those sealed and
    /// waiting to be flushed), over all keyspaces.
    pub fn memtable_bytes(&self) -> u64 {
        self.open.as_ref().map_or(0, |h| h.db.write_buffer_size())
    }

    /// Whether this open rebuilt the digest index (the directory was new,
    /// or was not closed cleanly).
    pub fn index_rebuilt(&self) -> bool {
        self.index_rebuilt
    }

    fn handles(&self) -> Result<&Handles, StoreError> {
        self.open.as_ref().ok_or_else(closed)
    }

    /// Writes `records` (key, record, digest) in one batch. Index entries
    /// of small records are held back (see the module's documentation);
    /// those of large ones, which are few and costly to rebuild, go in the
    /// batch.
    fn write(&mut self, records: Vec<(&[u8], Vec<u8>, u64)>) -> Result<(), StoreError> {
        while !self.unindexed.is_empty()
            && (self.unindexed.len() + records.len() > INDEX_HELD || self.unindexed_bytes > INDEX_HELD_BYTES)
        {
            self.write_index_run()?;
        }
        let handles = self.open.as_ref().ok_or_else(closed)?;
        let mut entries = Vec::with_capacity(records.len());
        if let [(key, record, digest)] = records.as_slice()
            && record.len() < SEPARATED_VALUE_BYTES as usize
        {
            // One small record: no batch needed.
            handles.data.insert(*key, record.as_slice()).map_err(engine)?;
            entries.push((index_key(key), *digest, true));
        } else {
            let mut batch = handles.db.batch();
            for (key, record, digest) in records {
                let deferred = record.len() < SEPARATED_VALUE_BYTES as usize;
                let index = index_key(key);
                if !deferred {
                    batch.insert(&handles.digests, index.as_slice(), digest.to_le_bytes());
                }
                batch.insert(&handles.data, key, record);
                entries.push((index, digest, deferred));
            }
            batch.commit().map_err(engine)?;
        }
        for (index, digest, deferred) in entries {
            if deferred {
                let len = index.len();
                if self.unindexed.insert(index, digest).is_none() {
                    self.unindexed_bytes += len;
                }
            } else {
                self.forget_unindexed(&index);
            }
        }
        Ok(())
    }

    fn forget_unindexed(&mut self, index: &[u8]) {
        if self.unindexed.remove(index).is_some() {
            self.unindexed_bytes -= index.len();
        }
    }

    /// Writes the next [`INDEX_CHUNK`] held-back index entries after the
    /// last run's, wrapping round the ring, in one batch.
    fn write_index_run(&mut self) -> Result<(), StoreError> {
        let handles = self.open.as_ref().ok_or_else(closed)?;
        let after = (Excluded(self.sweep.as_slice()), Unbounded);
        let run: Vec<(Vec<u8>, u64)> = self
            .unindexed
            .range::<[u8], _>(after)
            .chain(self.unindexed.iter())
            .take(INDEX_CHUNK.min(self.unindexed.len()))
            .map(|(index, digest)| (index.clone(), *digest))
            .collect();
        handles.write_index(run.iter().map(|(index, digest)| (index.as_slice(), *digest)))?;
        for (index, _) in &run {
            self.forget_unindexed(index);
        }
        if let Some((last, _)) = run.into_iter().last() {
            self.sweep = last;
        }
        Ok(())
    }

    /// Writes the index entries held back and marks the index complete.
    fn close(&mut self) -> Result<(), StoreError> {
        if self.open.is_none() {
            return Ok(());
        }
        while !self.unindexed.is_empty() {
            self.write_index_run()?;
        }
        let handles = self.handles()?;
        handles.meta.insert(INDEX_COMPLETE_KEY, []).map_err(engine)?;
        handles.db.persist(PersistMode::SyncAll).map_err(engine)
    }

    /// Closes the store as a crash would: the index entries held back are
    /// lost and the index is not marked complete.
    #[cfg(test)]
    fn crash(mut self) {
        self.unindexed.clear();
        self.open = None;
    }
}

impl Drop for FjallStore {
    fn drop(&mut self) {
        if let Err(error) = self.close() {
            tracing::warn!(path = %self.path.display(), %error, "closing the store failed; its digest index will be rebuilt at the next open");
        }
    }
}

fn closed() -> StoreError {
    StoreError::Engine {
        source: "the store is closed: reopening it after a storage failure has not succeeded yet".into(),
    }
}

impl Handles {
    /// Writes and syncs a small record: whether the disk takes writes.
    fn probe(&self) -> Result<(), fjall::Error> {
        self.meta.insert(PROBE_KEY, [0u8; 64])?;
        self.db.persist(PersistMode::SyncAll)
    }

    /// Writes digest index entries (index key, digest) in one batch.
    fn write_index<'a>(&self, entries: impl Iterator<Item = (&'a [u8], u64)>) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        for (index, digest) in entries {
            batch.insert(&self.digests, index, digest.to_le_bytes());
        }
        batch.commit().map_err(engine)
    }

    /// Rebuilds the digest index from the records; returns their count. A
    /// damaged record gets no entry (a read of it drops it).
    fn rebuild_index(&self) -> Result<u64, StoreError> {
        self.digests.clear().map_err(engine)?;
        let mut entries = Vec::with_capacity(REBUILD_BATCH);
        let mut records = 0;
        let write = |entries: &mut Vec<(Vec<u8>, u64)>| {
            entries.sort_unstable();
            self.write_index(entries.iter().map(|(index, digest)| (index.as_slice(), *digest)))?;
            entries.clear();
            Ok::<_, StoreError>(())
        };
        for guard in self.data.iter() {
            let (key, record) = guard.into_inner().map_err(engine)?;
            records += 1;
            match record_digest(&key, &record) {
                Ok(digest) => entries.push((index_key(&key), digest)),
                Err(error) => tracing::warn!(%error, "damaged record left out of the digest index"),
            }
            if entries.len() == REBUILD_BATCH {
                write(&mut entries)?;
            }
        }
        write(&mut entries)?;
        Ok(records)
    }

    fn open(path: &Path) -> Result<Handles, StoreError> {
        let db = Database::builder(path)
            .cache_size(CACHE_BYTES)
            // The journal is a short-lived log of what the memtables hold:
            // compressing its large values (fjall's default, LZ4 from 4
            // KiB) cost about 2% of the nodes' CPU under S3 PUTs of 1 MiB
            // (mostly incompressible files) to save disk writes that are
            // soon dropped. The tables and blob files keep their own
            // compression settings.
            .journal_compression(CompressionType::None)
            .open()
            .map_err(engine)?;
        let data = db
            .keyspace("data", || {
                KeyspaceCreateOptions::default()
                    .max_memtable_size(DATA_MEMTABLE_BYTES)
                    .with_kv_separation(Some(
                        KvSeparationOptions::default()
                            .separation_threshold(SEPARATED_VALUE_BYTES)
                            .compression(CompressionType::None),
                    ))
            })
            .map_err(engine)?;
        let meta = db
            .keyspace("meta", KeyspaceCreateOptions::default)
            .map_err(engine)?;
        let digests = db
            .keyspace("digests", || {
                KeyspaceCreateOptions::default().max_memtable_size(INDEX_MEMTABLE_BYTES)
            })
            .map_err(engine)?;
        let hints = db
            .keyspace("hints", || {
                KeyspaceCreateOptions::default().max_memtable_size(INDEX_MEMTABLE_BYTES)
            })
            .map_err(engine)?;
        Ok(Handles {
            db,
            data,
            meta,
            digests,
            hints,
        })
    }
}

/// Refuses a directory written by another on-disk format before fjall
/// touches it, and marks a new directory with ours.
fn check_format_marker(path: &Path) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Engine { source: Box::new(e) };
    std::fs::create_dir_all(path).map_err(io)?;
    if memory::holds_memory_node(path) {
        return Err(StoreError::Engine {
            source: format!(
                "{} belongs to a memory node; an on-disk store needs a directory of its own",
                path.display()
            )
            .into(),
        });
    }
    let marker = path.join(FORMAT_FILE);
    match std::fs::read_to_string(&marker) {
        Ok(text) => {
            let found = text.trim().parse::<u32>().map_err(|_| StoreError::Corrupt {
                key: FORMAT_FILE.as_bytes().to_vec(),
                reason: "format marker is not a number",
            })?;
            if found != FORMAT_VERSION {
                return Err(StoreError::UnsupportedFormat {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&marker, format!("{FORMAT_VERSION}\n")).map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

impl Store for FjallStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        match self.handles()?.data.get(key).map_err(engine)? {
            Some(record) => decode_record(key, &record).map(Some),
            None => Ok(None),
        }
    }

    fn get_with_digest(&self, key: &[u8]) -> Result<Option<(Versioned, u64)>, StoreError> {
        match self.handles()?.data.get(key).map_err(engine)? {
            Some(record) => decode_record_with_digest(key, &record).map(Some),
            None => Ok(None),
        }
    }

    fn put(&mut self, key: &[u8], object: &Versioned) -> Result<u64, StoreError> {
        let (record, digest) = encode_record_with_digest(key, object);
        self.write(vec![(key, record, digest)])?;
        Ok(digest)
    }

    fn put_many(&mut self, states: &[(&[u8], &Versioned)]) -> Result<Vec<u64>, StoreError> {
        let records: Vec<(&[u8], Vec<u8>, u64)> = states
            .iter()
            .map(|&(key, object)| {
                let (record, digest) = encode_record_with_digest(key, object);
                (key, record, digest)
            })
            .collect();
        let digests = records.iter().map(|r| r.2).collect();
        self.write(records)?;
        Ok(digests)
    }

    /// Removes the record and its index entry in one atomic batch.
    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let handles = self.handles()?;
        let index = index_key(key);
        let mut batch = handles.db.batch();
        batch.remove(&handles.data, key);
        batch.remove(&handles.digests, index.as_slice());
        batch.commit().map_err(engine)?;
        self.forget_unindexed(&index);
        Ok(())
    }

    fn scan_with_digest(&self, from: &[u8], limit: usize, max_bytes: u64) -> Result<Scanned, StoreError> {
        let records = self
            .handles()?
            .data
            .range(from..)
            .map(|guard| guard.into_inner().map_err(engine));
        collect_scanned(records, limit, max_bytes)
    }

    fn scan(&self, from: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Versioned)>, StoreError> {
        self.handles()?
            .data
            .range(from..)
            .take(limit)
            .map(|guard| {
                let (key, record) = guard.into_inner().map_err(engine)?;
                let object = decode_record(&key, &record)?;
                Ok((key.to_vec(), object))
            })
            .collect()
    }

    fn load_meta(&self) -> Result<Option<NodeMeta>, StoreError> {
        match self.handles()?.meta.get(META_KEY).map_err(engine)? {
            Some(bytes) => decode_meta(&bytes).map(Some),
            None => Ok(None),
        }
    }

    fn save_meta(&mut self, meta: &NodeMeta) -> Result<(), StoreError> {
        self.handles()?
            .meta
            .insert(META_KEY, encode_meta(meta))
            .map_err(engine)?;
        self.sync()
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.handles()?.db.persist(PersistMode::SyncAll).map_err(engine)
    }

    /// The index on disk merged with the entries held back (which replace
    /// the disk's entries of the same keys).
    fn digests(&self, first: u64, last: u64, limit: usize) -> Result<Vec<DigestEntry>, StoreError> {
        let start = first.to_be_bytes().to_vec();
        // Every index key of position `last` starts with its 8 bytes, so the
        // range ends before the first key of position `last + 1`.
        let end = last.checked_add(1).map(|end| end.to_be_bytes().to_vec());
        let bounds = (Included(start), end.map_or(Unbounded, Excluded));
        let held = self.unindexed.range(bounds.clone());
        let mut stored = self.handles()?.digests.range(bounds).map(|guard| {
            let (index, value) = guard.into_inner().map_err(engine)?;
            let digest = u64::from_le_bytes(value.as_ref().try_into().map_err(|_| malformed_index(&index))?);
            Ok::<_, StoreError>((index, digest))
        });
        let mut held = held.peekable();
        let mut next_stored = stored.next().transpose()?;
        let mut entries = Vec::new();
        while entries.len() < limit {
            let from_held = match (&next_stored, held.peek()) {
                (None, None) => break,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some((on_disk, _)), Some((index, _))) => index.as_slice() <= on_disk.as_ref(),
            };
            if from_held {
                let (index, &digest) = held.next().expect("peeked");
                if next_stored
                    .as_ref()
                    .is_some_and(|(on_disk, _)| on_disk.as_ref() == index.as_slice())
                {
                    next_stored = stored.next().transpose()?;
                }
                entries.push(digest_entry(index, digest)?);
            } else {
                let (index, digest) = next_stored.take().expect("matched Some");
                next_stored = stored.next().transpose()?;
                entries.push(digest_entry(&index, digest)?);
            }
        }
        Ok(entries)
    }

    fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.handles()?.meta.get(state_key(name)).map_err(engine)?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn save_state(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.handles()?
            .meta
            .insert(state_key(name), bytes)
            .map_err(engine)
    }

    fn put_hint(&mut self, target: NodeId, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        self.handles()?
            .hints
            .insert(hint_key(target, seq), record)
            .map_err(engine)
    }

    fn hints(&self, from: (NodeId, u64), limit: usize) -> Result<Vec<StoredHint>, StoreError> {
        self.handles()?
            .hints
            .range(hint_key(from.0, from.1)..)
            .take(limit)
            .map(|guard| {
                let (index, record) = guard.into_inner().map_err(engine)?;
                let part = |range: std::ops::Range<usize>| {
                    let bytes = index.get(range).ok_or_else(|| StoreError::Corrupt {
                        key: index.to_vec(),
                        reason: "malformed hint index key",
                    })?;
                    Ok::<u64, StoreError>(u64::from_be_bytes(bytes.try_into().expect("8 bytes")))
                };
                Ok(StoredHint {
                    target: NodeId(part(0..8)?),
                    seq: part(8..16)?,
                    bytes: record.len() as u64,
                    hint: decode_hint(&record),
                })
            })
            .collect()
    }

    fn remove_hint(&mut self, target: NodeId, seq: u64) -> Result<(), StoreError> {
        self.handles()?
            .hints
            .remove(hint_key(target, seq))
            .map_err(engine)
    }

    fn recover(&mut self) -> Result<(), StoreError> {
        room_to_write(&self.path)?;
        if let Some(handles) = &self.open {
            match handles.probe() {
                Ok(()) => return Ok(()),
                // After a failed write fjall refuses every write until the
                // database is opened again.
                Err(fjall::Error::Poisoned) => {}
                Err(error) => return Err(engine(error)),
            }
        }
        // Drop the old handles first: they hold the directory's lock.
        self.open = None;
        let handles = self.open.insert(Handles::open(&self.path)?);
        handles.probe().map_err(engine)
    }

    fn remove_hints(&mut self, target: NodeId, seqs: &[u64]) -> Result<(), StoreError> {
        let mut batch = self.handles()?.db.batch();
        for &seq in seqs {
            batch.remove(&self.handles()?.hints, hint_key(target, seq));
        }
        batch.commit().map_err(engine)
    }
}

/// Free space a store needs before it takes writes again after a failure:
/// a data memtable's worth (a flush writes about that much at once), or a
/// quarter of a smaller disk. A disk with a few pages free would take a
/// probe and fail again at the next write.
const RECOVERY_FREE_BYTES: u64 = DATA_MEMTABLE_BYTES;

impl FjallStore {
    /// The data directory's disk: bytes in all and bytes available to
    /// unprivileged writers; `None` where that cannot be read.
    pub fn disk_usage(&self) -> Option<(u64, u64)> {
        #[cfg(target_os = "linux")]
        {
            let fs = nix::sys::statvfs::statvfs(&self.path).ok()?;
            let block = fs.fragment_size() as u64;
            Some((fs.blocks() as u64 * block, fs.blocks_available() as u64 * block))
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }
}

/// Whether the file system holding `path` has room to take writes again.
#[cfg(target_os = "linux")]
fn room_to_write(path: &Path) -> Result<(), StoreError> {
    let io = |e: nix::Error| StoreError::Engine {
        source: Box::new(std::io::Error::from(e)),
    };
    let fs = nix::sys::statvfs::statvfs(path).map_err(io)?;
    let block = fs.fragment_size() as u64;
    let (total, free) = (fs.blocks() as u64 * block, fs.blocks_available() as u64 * block);
    let needed = RECOVERY_FREE_BYTES.min(total / 4);
    if free < needed {
        return Err(StoreError::Engine {
            source: format!(
                "{free} bytes free on the data directory's disk; {needed} needed to take writes again"
            )
            .into(),
        });
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn room_to_write(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// A hint's key: target then sequence number, both big-endian, so hints
/// sort by target and then in the order they were stored.
fn hint_key(target: NodeId, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&target.0.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The index key of `key`: its ring position, then the key itself.
fn index_key(key: &[u8]) -> Vec<u8> {
    [key_position(key).to_be_bytes().as_slice(), key].concat()
}

fn malformed_index(index: &[u8]) -> StoreError {
    StoreError::Corrupt {
        key: index.to_vec(),
        reason: "malformed digest index entry",
    }
}

/// The entry of an index key (position ++ key) and its digest.
fn digest_entry(index: &[u8], digest: u64) -> Result<DigestEntry, StoreError> {
    let (position, key) = index
        .split_first_chunk::<8>()
        .ok_or_else(|| malformed_index(index))?;
    Ok(DigestEntry {
        position: u64::from_be_bytes(*position),
        key: key.to_vec(),
        digest,
    })
}

/// Named states live beside the node record in the meta keyspace.
fn state_key(name: &str) -> Vec<u8> {
    [b"state/".as_slice(), name.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::store::{MemStore, contract};
    use crate::proto::{Config, Node, NodeId};

    #[test]
    fn fjall_store_passes_the_store_contract() {
        let dirs: std::cell::RefCell<Vec<tempfile::TempDir>> = Default::default();
        contract::run(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = FjallStore::open(dir.path()).unwrap();
            dirs.borrow_mut().push(dir);
            store
        });
    }

    #[test]
    fn reopening_returns_everything_written_before_a_clean_close() {
        let dir = tempfile::tempdir().unwrap();
        let meta = NodeMeta {
            node_id: NodeId(9),
            epoch: 4,
            format_version: FORMAT_VERSION,
        };
        {
            let mut store = FjallStore::open(dir.path()).unwrap();
            for i in 0..500u32 {
                store
                    .put(&i.to_be_bytes(), &contract::object(&i.to_le_bytes()))
                    .unwrap();
            }
            store.remove(&7u32.to_be_bytes()).unwrap();
            store.save_meta(&meta).unwrap();
        }
        let store = FjallStore::open(dir.path()).unwrap();
        assert_eq!(store.load_meta().unwrap(), Some(meta));
        assert!(store.get(&7u32.to_be_bytes()).unwrap().is_none());
        let all = store.scan(b"", 1000).unwrap();
        assert_eq!(all.len(), 499);
        for (key, object) in all {
            let i = u32::from_be_bytes(key.try_into().unwrap());
            assert_eq!(object, contract::object(&i.to_le_bytes()));
        }
    }

    /// Puts, overwrites and removes of `keys` keys (a few large records
    /// among them) on `store` and on a reference store.
    fn mixed_writes(store: &mut FjallStore, reference: &mut MemStore, keys: u32) {
        let mut apply = |op: &dyn Fn(&mut dyn Store)| {
            op(store);
            op(reference);
        };
        for i in 0..keys {
            let value = if i % 1000 == 3 {
                vec![i as u8; 20 << 10]
            } else {
                i.to_le_bytes().to_vec()
            };
            apply(&|s| {
                let _ = s.put(&i.to_be_bytes(), &contract::object(&value)).unwrap();
            });
        }
        for i in (0..keys).step_by(7) {
            apply(&|s| {
                let _ = s.put(&i.to_be_bytes(), &contract::object(b"again")).unwrap();
            });
        }
        for i in (0..keys).step_by(11) {
            apply(&|s| s.remove(&i.to_be_bytes()).unwrap());
        }
        let many: Vec<(Vec<u8>, Versioned)> = (keys..keys + 50)
            .map(|i| (i.to_be_bytes().to_vec(), contract::object(b"many")))
            .collect();
        let many: Vec<(&[u8], &Versioned)> = many.iter().map(|(k, v)| (k.as_slice(), v)).collect();
        apply(&|s| {
            let _ = s.put_many(&many).unwrap();
        });
    }

    #[test]
    fn the_digest_index_held_back_in_memory_reads_as_if_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FjallStore::open(dir.path()).unwrap();
        let mut reference = MemStore::new();
        // Past one batch, so that entries are both on disk and held back.
        mixed_writes(&mut store, &mut reference, INDEX_HELD as u32 + 1500);
        assert!(!store.unindexed.is_empty(), "some entries are still held back");
        let all = reference.digests(0, u64::MAX, usize::MAX).unwrap();
        assert_eq!(store.digests(0, u64::MAX, usize::MAX).unwrap(), all);
        assert_eq!(store.digests(0, u64::MAX, 100).unwrap(), all[..100]);
        let (first, last) = (all[1000].position, all[2000].position);
        assert_eq!(
            store.digests(first, last, usize::MAX).unwrap(),
            reference.digests(first, last, usize::MAX).unwrap()
        );
        assert_eq!(store.digests(first, first, 10).unwrap(), all[1000..1001]);
    }

    #[test]
    fn a_crash_loses_no_digest_index_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut reference = MemStore::new();
        let mut store = FjallStore::open(dir.path()).unwrap();
        assert!(store.index_rebuilt(), "a new directory has no complete index");
        mixed_writes(&mut store, &mut reference, INDEX_HELD as u32 + 1500);
        store.crash();
        let store = FjallStore::open(dir.path()).unwrap();
        assert!(store.index_rebuilt());
        let all = reference.digests(0, u64::MAX, usize::MAX).unwrap();
        assert_eq!(store.digests(0, u64::MAX, usize::MAX).unwrap(), all);
        drop(store);
        // Closed cleanly: opened without a rebuild, and the same.
        let store = FjallStore::open(dir.path()).unwrap();
        assert!(!store.index_rebuilt());
        assert_eq!(store.digests(0, u64::MAX, usize::MAX).unwrap(), all);
        // The marker is taken at open: a crash now still means a rebuild.
        store.crash();
        assert!(FjallStore::open(dir.path()).unwrap().index_rebuilt());
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = FjallStore::open(dir.path()).unwrap();
        assert!(matches!(
            FjallStore::open(dir.path()),
            Err(StoreError::Engine { .. })
        ));
    }

    #[test]
    fn a_directory_of_another_format_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FORMAT_FILE), "99\n").unwrap();
        assert!(matches!(
            FjallStore::open(dir.path()),
            Err(StoreError::UnsupportedFormat { found: 99, .. })
        ));
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 1, "nothing else was created");
    }

    #[test]
    fn a_digest_tree_saved_at_a_clean_stop_is_loaded_once() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Node::new(Config::default(), FjallStore::open(dir.path()).unwrap(), 1).unwrap();
        let expected = {
            let mut node = open();
            for i in 0..300u32 {
                node.store_mut()
                    .put(&i.to_be_bytes(), &contract::object(b"v"))
                    .unwrap();
            }
            drop(node);
            let mut node = open(); // Rebuilt from the index: it sees the keys.
            assert!(!node.digest_tree_restored());
            let summary = node.summary(0, u64::MAX).unwrap();
            assert_eq!(summary.count, 300);
            node.save_digest_tree().unwrap();
            summary
        };
        let node = open();
        assert!(node.digest_tree_restored(), "saved at a clean stop: loaded");
        assert_eq!(node.summary(0, u64::MAX).unwrap(), expected);
        drop(node);
        // Not saved again (as after a crash): rebuilt, and still right.
        let node = open();
        assert!(!node.digest_tree_restored());
        assert_eq!(node.summary(0, u64::MAX).unwrap(), expected);
    }

    #[test]
    fn a_node_restarted_on_the_same_directory_keeps_its_id_and_bumps_its_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let (id, epoch) = {
            let node = Node::new(Config::default(), FjallStore::open(dir.path()).unwrap(), 1).unwrap();
            (node.id(), node.epoch())
        };
        let node = Node::new(Config::default(), FjallStore::open(dir.path()).unwrap(), 2).unwrap();
        assert_eq!((node.id(), node.epoch()), (id, epoch + 1));
    }
}
