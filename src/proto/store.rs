//! The one dependency the core calls directly: a synchronous key -> state
//! store, plus the node's metadata (id, epoch, format version).
//!
//! Implementations: [`MemStore`] here (tests, simulator) and the on-disk
//! store in `crate::storage`. Both pass the same contract suite. Records
//! are encoded with [`encode_record`]: a format byte, a crc32 of the body and
//! the MessagePack body, so a corrupted record is detected, never served.

use super::types::NodeId;
use super::version::Versioned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The first byte of every stored record.
const RECORD_FORMAT: u8 = 1;

/// Who this node is; persisted durably before the node serves anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    /// The node's stable id.
    pub node_id: NodeId,
    /// The dot epoch of the current (or last) run.
    pub epoch: u64,
    /// The on-disk format of the data.
    pub format_version: u32,
}

/// A storage failure. Each variant says what happened to state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The storage engine failed (I/O, full disk, lock). The operation may
    /// not have been applied.
    #[error("storage engine failed: {source}")]
    Engine {
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored record failed its checksum or could not be decoded. It was
    /// not served.
    #[error("corrupt record for key {key:?}: {reason}")]
    Corrupt {
        /// The key whose record is damaged.
        key: Vec<u8>,
        /// What was wrong.
        reason: &'static str,
    },
    /// The node's storage failed earlier (a full or failing disk) and has
    /// not recovered: the node takes no writes until it has. Nothing was
    /// written.
    #[error("storage failed earlier and has not recovered: this node takes no writes until it has")]
    ReadOnly,
    /// A memory-only store holds as much as it may (`max_memory_bytes`).
    /// Nothing was written; writes that free memory (deletes, smaller
    /// values) are still taken.
    #[error("memory limit reached: {used} of at most {max} bytes held; the write was refused")]
    OutOfMemory {
        /// Bytes held.
        used: u64,
        /// The limit.
        max: u64,
    },
    /// The data directory was written by an incompatible build. Nothing was
    /// read or written.
    #[error("data has format version {found}, this build reads version {supported}")]
    UnsupportedFormat {
        /// The version found.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
}

/// Longest key a store must accept; `Config::max_key_bytes` may not exceed
/// it. (Below the engine's 65,535 bytes: index keys prefix 8 bytes.)
pub const MAX_STORE_KEY: usize = 65_000;

/// Keys and their states, plus node metadata. Writes are visible to reads at
/// once; `sync` makes everything written so far survive power loss.
///
/// Keys are 1..=[`MAX_STORE_KEY`] bytes: the coordinator refuses others
/// before they reach a store, so a store may treat them as a bug.
pub trait Store {
    /// The state of `key`, if stored.
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError>;
    /// The state of `key` and its [`digest`], if stored, hashed from the
    /// stored bytes rather than by encoding the state again (see
    /// [`decode_record_with_digest`]).
    fn get_with_digest(&self, key: &[u8]) -> Result<Option<(Versioned, u64)>, StoreError>;
    /// Stores `object` as the state of `key`, replacing what was there;
    /// returns the stored state's [`digest`].
    fn put(&mut self, key: &[u8], object: &Versioned) -> Result<u64, StoreError>;
    /// Stores several states at once, as `put` would one by one (a store
    /// may write them in one batch); returns their digests in order.
    fn put_many(&mut self, states: &[(&[u8], &Versioned)]) -> Result<Vec<u64>, StoreError> {
        states.iter().map(|(key, object)| self.put(key, object)).collect()
    }
    /// Forgets `key` entirely (tombstone garbage collection).
    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError>;
    /// Up to `limit` entries with key >= `from`, in key order.
    fn scan(&self, from: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Versioned)>, StoreError>;
    /// As `scan`, each state with its [`digest`] (hashed from the stored
    /// bytes), and stopping early once the states read reach `max_bytes`
    /// ([`state_bytes`]): for background walks, which must not read a
    /// store of large values (1 MiB object blocks) as fast as one of small
    /// ones. See [`collect_scanned`].
    fn scan_with_digest(&self, from: &[u8], limit: usize, max_bytes: u64) -> Result<Scanned, StoreError>;
    /// The node's metadata, if any was saved.
    fn load_meta(&self) -> Result<Option<NodeMeta>, StoreError>;
    /// Saves the node's metadata durably before returning.
    fn save_meta(&mut self, meta: &NodeMeta) -> Result<(), StoreError>;
    /// Makes every write so far durable.
    fn sync(&mut self) -> Result<(), StoreError>;
    /// Index entries `(ring position, key, digest)` with position in
    /// `first..=last`, by position then key, at most `limit` of them. Every
    /// stored key has exactly one entry, kept in step by `put` and
    /// `remove`; the digest is [`digest`] of the stored state.
    fn digests(&self, first: u64, last: u64, limit: usize) -> Result<Vec<DigestEntry>, StoreError>;
    /// A small named record of node state (such as the ring's members).
    fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Saves a named record of node state, replacing the previous one.
    fn save_state(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Stores a hint for replica `target` as number `seq`: `record` is made
    /// by [`encode_hint`] (the caller needs its size for the hint bounds,
    /// so it is encoded once). Durable with the next `sync`, like data.
    fn put_hint(&mut self, target: NodeId, seq: u64, record: &[u8]) -> Result<(), StoreError>;
    /// Up to `limit` hints at or after `from`, in (target, seq) order.
    fn hints(&self, from: (NodeId, u64), limit: usize) -> Result<Vec<StoredHint>, StoreError>;
    /// Deletes one hint (nothing happens if it is absent).
    fn remove_hint(&mut self, target: NodeId, seq: u64) -> Result<(), StoreError>;
    /// After a failure: checks that the store takes writes again (it
    /// writes and syncs a small record), reopening the engine first if a
    /// failure left it unable to write. An error: not yet; try again
    /// later. A store that cannot fail this way keeps the default.
    fn recover(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Deletes several hints of one replica at once.
    fn remove_hints(&mut self, target: NodeId, seqs: &[u64]) -> Result<(), StoreError> {
        for &seq in seqs {
            self.remove_hint(target, seq)?;
        }
        Ok(())
    }
}

/// A write kept for a replica that missed it, until it is delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The state to merge into the replica's.
    pub object: Versioned,
    /// When the hint was stored: the holder's clock, ms since the Unix epoch.
    pub created_ms: u64,
    /// Every node the write's coordinator sent it to (the key's replicas,
    /// their stand-ins and future replicas): any may hold the write
    /// already, so a leaving node hands the hint to none of them (nor to
    /// a home replica of the key). Empty in hints stored before shoal
    /// recorded it.
    #[serde(default)]
    pub written_to: Vec<NodeId>,
}

/// A hint as read back from a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredHint {
    /// The replica it is for.
    pub target: NodeId,
    /// Its number among that replica's hints.
    pub seq: u64,
    /// Its size on disk.
    pub bytes: u64,
    /// The hint; `None` if its record is corrupt (it cannot be delivered
    /// and should be deleted; anti-entropy repairs what it held).
    pub hint: Option<Hint>,
}

/// Encodes a hint for storage, framed like a data record.
pub fn encode_hint(hint: &Hint) -> Vec<u8> {
    frame(hint)
}

/// Decodes a stored hint; `None` if it is damaged.
pub fn decode_hint(record: &[u8]) -> Option<Hint> {
    let body = unframe(b"hint", record).ok()?;
    rmp_serde::from_slice(body).ok()
}

/// One entry of the digest index: a key, its ring position and the digest
/// of its state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DigestEntry {
    /// The key's ring position.
    pub position: u64,
    /// The key.
    pub key: Vec<u8>,
    /// [`digest`] of its state.
    pub digest: u64,
}

/// A key's state as [`Store::scan_with_digest`] read it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScannedState {
    /// The key.
    pub key: Vec<u8>,
    /// Its state.
    pub state: Versioned,
    /// [`digest`] of the state.
    pub digest: u64,
}

/// What [`Store::scan_with_digest`] read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scanned {
    /// The states, in key order.
    pub states: Vec<ScannedState>,
    /// The scan stopped at its limit of keys or bytes, so more keys may
    /// follow the last one.
    pub more: bool,
}

/// [`Store::scan_with_digest`] over a store's `(key, record)` pairs from
/// the scan's first key on, in key order: reads them only as far as
/// needed.
pub fn collect_scanned<K: AsRef<[u8]>, R: AsRef<[u8]>>(
    records: impl Iterator<Item = Result<(K, R), StoreError>>,
    limit: usize,
    max_bytes: u64,
) -> Result<Scanned, StoreError> {
    let mut scanned = Scanned::default();
    let mut bytes = 0;
    if limit == 0 {
        scanned.more = true;
        return Ok(scanned);
    }
    for record in records {
        let (key, record) = record?;
        let key = key.as_ref();
        let (state, digest) = decode_record_with_digest(key, record.as_ref())?;
        bytes += state_bytes(key, &state);
        scanned.states.push(ScannedState {
            key: key.to_vec(),
            state,
            digest,
        });
        if scanned.states.len() >= limit || bytes >= max_bytes {
            scanned.more = true;
            break;
        }
    }
    Ok(scanned)
}

/// A state's size on the wire, roughly: its key, values and a fixed
/// allowance per sibling for its version.
pub fn state_bytes(key: &[u8], object: &Versioned) -> u64 {
    let values: usize = object
        .siblings()
        .iter()
        .map(|s| s.value.as_ref().map_or(0, bytes::Bytes::len) + 48)
        .sum();
    (key.len() + values) as u64
}

/// The digest of a key's state: equal states of a key on two replicas
/// have equal digests (the encoding is canonical: sorted maps and siblings).
pub fn digest(key: &[u8], object: &Versioned) -> u64 {
    digest_of_body(
        key,
        &rmp_serde::to_vec(object).expect("a Versioned always encodes"),
    )
}

/// [`digest`] of a state given its encoding (a record's body).
fn digest_of_body(key: &[u8], body: &[u8]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&(key.len() as u64).to_le_bytes());
    hasher.update(key);
    hasher.update(body);
    hasher.digest()
}

/// [`encode_record`] and [`digest`] of one state, encoding it once (a
/// store's write needs both).
pub fn encode_record_with_digest(key: &[u8], object: &Versioned) -> (Vec<u8>, u64) {
    let record = encode_record(object);
    let digest = digest_of_body(key, &record[RECORD_HEADER..]);
    (record, digest)
}

/// Entries of an in-memory digest index ((position, key) -> digest) with
/// position in `first..=last`, in order, at most `limit`.
pub fn index_range(
    index: &BTreeMap<(u64, Vec<u8>), u64>,
    first: u64,
    last: u64,
    limit: usize,
) -> Vec<DigestEntry> {
    index
        .range((first, Vec::new())..)
        .take_while(|((position, _), _)| *position <= last)
        .take(limit)
        .map(|((position, key), digest)| DigestEntry {
            position: *position,
            key: key.clone(),
            digest: *digest,
        })
        .collect()
}

/// Decodes up to `limit` hint records of an ordered map range.
pub fn stored_hints<'a>(
    records: impl Iterator<Item = (&'a (NodeId, u64), &'a Vec<u8>)>,
    limit: usize,
) -> Vec<StoredHint> {
    records
        .take(limit)
        .map(|(&(target, seq), record)| StoredHint {
            target,
            seq,
            bytes: record.len() as u64,
            hint: decode_hint(record),
        })
        .collect()
}

/// Encodes a key's state for storage: format byte, crc32 (little-endian) of
/// the body, MessagePack body.
pub fn encode_record(object: &Versioned) -> Vec<u8> {
    frame(object)
}

/// A record's format byte and crc32 before its body.
const RECORD_HEADER: usize = 5;

/// A stored record of `value`: format byte, crc32 (little-endian) of the
/// body, MessagePack body. The body is encoded in place behind the header,
/// which is then filled in, so the record needs no second buffer.
fn frame<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut record = Vec::with_capacity(128);
    record.extend_from_slice(&[RECORD_FORMAT; RECORD_HEADER]);
    rmp_serde::encode::write(&mut record, value).expect("a stored value always encodes");
    let crc = crc32fast::hash(&record[RECORD_HEADER..]);
    record[1..RECORD_HEADER].copy_from_slice(&crc.to_le_bytes());
    record
}

/// Decodes a stored record of `key`, checking its format and checksum.
pub fn decode_record(key: &[u8], record: &[u8]) -> Result<Versioned, StoreError> {
    decode_body(key, unframe(key, record)?)
}

/// [`decode_record`] and the [`digest`] of the state, hashed from the
/// stored bytes (the encoding is canonical, so they are the bytes the
/// state encodes to).
pub fn decode_record_with_digest(key: &[u8], record: &[u8]) -> Result<(Versioned, u64), StoreError> {
    let body = unframe(key, record)?;
    Ok((decode_body(key, body)?, digest_of_body(key, body)))
}

/// The [`digest`] of a stored record of `key`, its format and checksum
/// checked but its body not decoded.
pub fn record_digest(key: &[u8], record: &[u8]) -> Result<u64, StoreError> {
    Ok(digest_of_body(key, unframe(key, record)?))
}

fn decode_body(key: &[u8], body: &[u8]) -> Result<Versioned, StoreError> {
    rmp_serde::from_slice(body).map_err(|_| StoreError::Corrupt {
        key: key.to_vec(),
        reason: "undecodable body",
    })
}

/// The body of a framed record, its format and checksum checked.
fn unframe<'a>(key: &[u8], record: &'a [u8]) -> Result<&'a [u8], StoreError> {
    let corrupt = |reason| StoreError::Corrupt {
        key: key.to_vec(),
        reason,
    };
    let (&format, rest) = record.split_first().ok_or_else(|| corrupt("empty record"))?;
    if format != RECORD_FORMAT {
        return Err(corrupt("unknown record format"));
    }
    if rest.len() < 4 {
        return Err(corrupt("record shorter than its header"));
    }
    let (crc, body) = rest.split_at(4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(body)
}

/// Encodes node metadata (named fields, so later builds can add some).
pub fn encode_meta(meta: &NodeMeta) -> Vec<u8> {
    rmp_serde::to_vec_named(meta).expect("NodeMeta always encodes")
}

/// Decodes node metadata and checks its format version.
pub fn decode_meta(bytes: &[u8]) -> Result<NodeMeta, StoreError> {
    let meta: NodeMeta = rmp_serde::from_slice(bytes).map_err(|_| StoreError::Corrupt {
        key: b"meta".to_vec(),
        reason: "undecodable node metadata",
    })?;
    if meta.format_version != FORMAT_VERSION {
        return Err(StoreError::UnsupportedFormat {
            found: meta.format_version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(meta)
}

/// What a store in memory answers a write while its simulated disk is
/// `full`: the engine error a full disk gives.
pub fn simulated_full_disk(full: bool) -> Result<(), StoreError> {
    if full {
        return Err(StoreError::Engine {
            source: "No space left on device (os error 28), simulated".into(),
        });
    }
    Ok(())
}

/// What an entry of a [`MemStore`] map costs beyond its key and record:
/// its share of the map's nodes and its vectors' headers. An estimate: the
/// store's limit holds to within it per entry.
const ENTRY_OVERHEAD: u64 = 64;

/// What a key's state costs a [`MemStore`]: the data entry and the digest
/// index entry (position and digest beside a second copy of the key).
fn data_cost(key: &[u8], record: &[u8]) -> u64 {
    2 * key.len() as u64 + record.len() as u64 + 16 + 2 * ENTRY_OVERHEAD
}

/// What a hint costs a [`MemStore`].
fn hint_cost(record: &[u8]) -> u64 {
    record.len() as u64 + 16 + ENTRY_OVERHEAD
}

/// An in-memory store: the simulator's and tests' store, and the store of
/// a memory-only node (`storage = "memory"`), where it may hold at most a
/// given number of bytes. Everything is "durable" until the simulator
/// models otherwise; clones share nothing.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    meta: Option<NodeMeta>,
    states: BTreeMap<String, Vec<u8>>,
    /// The digest index: (position, key) -> digest.
    index: BTreeMap<(u64, Vec<u8>), u64>,
    hints: BTreeMap<(NodeId, u64), Vec<u8>>,
    /// Set: every write fails as on a full disk (reads still work).
    full: bool,
    /// Bytes held by data, index and hints, as estimated by [`data_cost`]
    /// and [`hint_cost`].
    bytes: u64,
    /// Most bytes held: a write that would grow past it is refused with
    /// [`StoreError::OutOfMemory`]. `None`: no limit.
    limit: Option<u64>,
}

impl MemStore {
    /// Makes every write fail as on a full disk (`true`), or succeed again
    /// (`false`); reads work either way. For tests of a full disk.
    pub fn set_full(&mut self, full: bool) {
        self.full = full;
    }

    fn writable(&self) -> Result<(), StoreError> {
        simulated_full_disk(self.full)
    }

    /// An empty store, as on a fresh disk.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// An empty store that holds at most `max_bytes` of keys, states and
    /// hints (estimated with a fixed overhead per entry).
    pub fn with_limit(max_bytes: u64) -> MemStore {
        MemStore {
            limit: Some(max_bytes),
            ..MemStore::default()
        }
    }

    /// Bytes held by keys, states and hints (an estimate, see
    /// [`MemStore::with_limit`]).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether growing from `freed` to `added` bytes stays within the
    /// limit. A write that does not grow the store is always taken.
    fn charge(&self, freed: u64, added: u64) -> Result<(), StoreError> {
        match self.limit {
            Some(max) if added > freed && self.bytes - freed + added > max => Err(StoreError::OutOfMemory {
                used: self.bytes,
                max,
            }),
            _ => Ok(()),
        }
    }

    /// What `key`'s stored state costs now (0 if absent).
    fn stored_cost(&self, key: &[u8]) -> u64 {
        self.data.get(key).map_or(0, |record| data_cost(key, record))
    }

    /// Stores an encoded state already charged for.
    fn insert(&mut self, key: &[u8], record: Vec<u8>, digest: u64) {
        let added = data_cost(key, &record);
        if let Some(old) = self.data.insert(key.to_vec(), record) {
            self.bytes -= data_cost(key, &old);
        }
        self.bytes += added;
        self.index
            .insert((super::ring::key_position(key), key.to_vec()), digest);
    }

    /// How many keys are stored.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Fault injection for tests: damages `key`'s stored record so it fails
    /// its checksum, as a bad disk might.
    pub fn debug_corrupt_record(&mut self, key: &[u8]) {
        if let Some(record) = self.data.get_mut(key)
            && let Some(last) = record.last_mut()
        {
            *last ^= 0xff; // The checksum no longer matches.
        }
    }

    /// Fault injection for tests: sets (or, with `None`, drops) the digest
    /// index entry of `key`, as a damaged disk might.
    pub fn debug_damage_index(&mut self, key: &[u8], digest: Option<u64>) {
        let entry = (super::ring::key_position(key), key.to_vec());
        match digest {
            Some(d) => self.index.insert(entry, d),
            None => self.index.remove(&entry),
        };
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.data
            .get(key)
            .map(|record| decode_record(key, record))
            .transpose()
    }

    fn get_with_digest(&self, key: &[u8]) -> Result<Option<(Versioned, u64)>, StoreError> {
        self.data
            .get(key)
            .map(|record| decode_record_with_digest(key, record))
            .transpose()
    }

    fn put(&mut self, key: &[u8], object: &Versioned) -> Result<u64, StoreError> {
        self.writable()?;
        let (record, digest) = encode_record_with_digest(key, object);
        self.charge(self.stored_cost(key), data_cost(key, &record))?;
        self.insert(key, record, digest);
        Ok(digest)
    }

    /// All or nothing: past the limit, none of the states is stored.
    fn put_many(&mut self, states: &[(&[u8], &Versioned)]) -> Result<Vec<u64>, StoreError> {
        self.writable()?;
        let records: Vec<(Vec<u8>, u64)> = states
            .iter()
            .map(|(key, object)| encode_record_with_digest(key, object))
            .collect();
        // What each key costs now and after the batch (its last state wins).
        let mut costs: BTreeMap<&[u8], (u64, u64)> = BTreeMap::new();
        for ((key, _), (record, _)) in states.iter().zip(&records) {
            let old = self.stored_cost(key);
            costs.entry(key).or_insert((old, 0)).1 = data_cost(key, record);
        }
        let (freed, added) = costs
            .values()
            .fold((0, 0), |(f, a), (old, new)| (f + old, a + new));
        self.charge(freed, added)?;
        let mut digests = Vec::with_capacity(states.len());
        for ((key, _), (record, digest)) in states.iter().zip(records) {
            self.insert(key, record, digest);
            digests.push(digest);
        }
        Ok(digests)
    }

    fn remove(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        if let Some(old) = self.data.remove(key) {
            self.bytes -= data_cost(key, &old);
        }
        self.index.remove(&(super::ring::key_position(key), key.to_vec()));
        Ok(())
    }

    fn scan_with_digest(&self, from: &[u8], limit: usize, max_bytes: u64) -> Result<Scanned, StoreError> {
        let records = self.data.range(from.to_vec()..).map(Ok);
        collect_scanned(records, limit, max_bytes)
    }

    fn scan(&self, from: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Versioned)>, StoreError> {
        self.data
            .range(from.to_vec()..)
            .take(limit)
            .map(|(k, r)| Ok((k.clone(), decode_record(k, r)?)))
            .collect()
    }

    fn load_meta(&self) -> Result<Option<NodeMeta>, StoreError> {
        Ok(self.meta)
    }

    fn save_meta(&mut self, meta: &NodeMeta) -> Result<(), StoreError> {
        self.meta = Some(*meta);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.states.get(name).cloned())
    }

    fn save_state(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        self.states.insert(name.to_string(), bytes.to_vec());
        Ok(())
    }

    fn put_hint(&mut self, target: NodeId, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        let old = self.hints.get(&(target, seq)).map_or(0, |r| hint_cost(r));
        self.charge(old, hint_cost(record))?;
        self.bytes = self.bytes - old + hint_cost(record);
        self.hints.insert((target, seq), record.to_vec());
        Ok(())
    }

    fn hints(&self, from: (NodeId, u64), limit: usize) -> Result<Vec<StoredHint>, StoreError> {
        Ok(stored_hints(self.hints.range(from..), limit))
    }

    fn remove_hint(&mut self, target: NodeId, seq: u64) -> Result<(), StoreError> {
        self.writable()?;
        if let Some(old) = self.hints.remove(&(target, seq)) {
            self.bytes -= hint_cost(&old);
        }
        Ok(())
    }

    fn digests(&self, first: u64, last: u64, limit: usize) -> Result<Vec<DigestEntry>, StoreError> {
        Ok(index_range(&self.index, first, last, limit))
    }

    fn recover(&mut self) -> Result<(), StoreError> {
        self.writable()
    }
}

/// The contract every [`Store`] passes; run against each implementation.
#[cfg(test)]
pub(crate) mod contract {
    use super::*;
    use crate::proto::version::{Actor, VersionVector};

    pub(crate) fn object(value: &[u8]) -> Versioned {
        let mut v = Versioned::new();
        let actor = Actor {
            node: NodeId(1),
            epoch: 1,
        };
        v.write(actor, &VersionVector::new(), Some(value.to_vec()), 5, 8)
            .unwrap();
        v
    }

    /// Runs every contract check on stores made by `fresh`.
    pub(crate) fn run<S: Store>(mut fresh: impl FnMut() -> S) {
        absent_key_reads_as_none(&mut fresh());
        put_then_get_returns_it_and_replaces(&mut fresh());
        put_many_stores_each_state(&mut fresh());
        remove_forgets_the_key(&mut fresh());
        scan_is_ordered_bounded_and_starts_at_from(&mut fresh());
        meta_round_trips(&mut fresh());
        binary_and_longest_keys_are_kept_apart(&mut fresh());
        named_states_round_trip_apart_from_data(&mut fresh());
        the_digest_index_follows_puts_and_removes(&mut fresh());
        writes_and_reads_give_the_states_digests(&mut fresh());
        a_scan_with_digests_stops_at_its_keys_or_bytes(&mut fresh());
        hints_are_kept_per_replica_in_order_apart_from_data(&mut fresh());
    }

    fn put_many_stores_each_state(s: &mut impl Store) {
        s.put(b"a", &object(b"old")).unwrap();
        let (a, b) = (object(b"new a"), object(b"new b"));
        s.put_many(&[(b"a", &a), (b"b", &b)]).unwrap();
        assert_eq!(s.get(b"a").unwrap(), Some(a.clone()));
        assert_eq!(s.get(b"b").unwrap(), Some(b.clone()));
        let indexed: Vec<(Vec<u8>, u64)> = s
            .digests(0, u64::MAX, 10)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.digest))
            .collect();
        let mut expected = vec![
            (b"a".to_vec(), digest(b"a", &a)),
            (b"b".to_vec(), digest(b"b", &b)),
        ];
        expected.sort_by_key(|(k, _)| crate::proto::ring::key_position(k));
        assert_eq!(indexed, expected, "the digest index follows");
    }

    fn hints_are_kept_per_replica_in_order_apart_from_data(s: &mut impl Store) {
        let hint = |v: &[u8], at| Hint {
            key: b"k".to_vec(),
            object: object(v),
            created_ms: at,
            written_to: vec![NodeId(3)],
        };
        let (a, b) = (NodeId(1), NodeId(u64::MAX));
        s.put_hint(b, 0, &encode_hint(&hint(b"b0", 5))).unwrap();
        s.put_hint(a, 2, &encode_hint(&hint(b"a2", 4))).unwrap();
        s.put_hint(a, 1, &encode_hint(&hint(b"a1", 3))).unwrap();
        s.put_hint(a, u64::MAX, &encode_hint(&hint(b"alast", 6))).unwrap();
        let all = s.hints((NodeId(0), 0), 10).unwrap();
        let order: Vec<(NodeId, u64)> = all.iter().map(|h| (h.target, h.seq)).collect();
        assert_eq!(order, vec![(a, 1), (a, 2), (a, u64::MAX), (b, 0)]);
        assert_eq!(all[0].hint, Some(hint(b"a1", 3)));
        assert!(all.iter().all(|h| h.bytes > 0));
        assert_eq!(s.hints((a, 2), 2).unwrap().len(), 2, "from and limit");
        assert_eq!(s.hints((b, 0), 10).unwrap()[0].hint, Some(hint(b"b0", 5)));
        s.remove_hint(a, 2).unwrap();
        s.remove_hint(a, 99).unwrap();
        assert_eq!(
            s.hints((a, 0), 10)
                .unwrap()
                .iter()
                .filter(|h| h.target == a)
                .count(),
            2
        );
        assert!(s.get(b"k").unwrap().is_none(), "hints are not data");
        assert!(s.digests(0, u64::MAX, 10).unwrap().is_empty());
        // Several at once; only the replica named loses them.
        s.remove_hints(a, &[1, u64::MAX, 7]).unwrap();
        let left: Vec<(NodeId, u64)> = s
            .hints((NodeId(0), 0), 10)
            .unwrap()
            .iter()
            .map(|h| (h.target, h.seq))
            .collect();
        assert_eq!(left, vec![(b, 0)]);
    }

    fn the_digest_index_follows_puts_and_removes(s: &mut impl Store) {
        let all = |s: &dyn Fn() -> Vec<DigestEntry>| s();
        let _ = all;
        s.put(b"a", &object(b"1")).unwrap();
        s.put(b"b", &object(b"2")).unwrap();
        let entries = s.digests(0, u64::MAX, 10).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(
            entries.windows(2).all(|w| w[0].position <= w[1].position),
            "by position"
        );
        let a = entries.iter().find(|e| e.key == b"a").unwrap().clone();
        assert_eq!(a.digest, digest(b"a", &object(b"1")));
        assert_eq!(a.position, crate::proto::ring::key_position(b"a"));
        s.put(b"a", &object(b"changed")).unwrap();
        let a2 = s.digests(a.position, a.position, 10).unwrap();
        assert_eq!(a2.len(), 1, "one entry per key, even after an overwrite");
        assert_eq!(a2[0].digest, digest(b"a", &object(b"changed")));
        s.remove(b"a").unwrap();
        assert!(s.digests(a.position, a.position, 10).unwrap().is_empty());
        assert_eq!(s.digests(0, u64::MAX, 10).unwrap().len(), 1);
        assert_eq!(s.digests(0, u64::MAX, 0).unwrap().len(), 0, "limit");
    }

    /// The local store keeps its digest tree in step from these digests,
    /// so they must be those of the states stored.
    fn writes_and_reads_give_the_states_digests(s: &mut impl Store) {
        assert_eq!(s.get_with_digest(b"a").unwrap(), None);
        let (one, two, three) = (object(b"1"), object(b"2"), object(b"3"));
        assert_eq!(s.put(b"a", &one).unwrap(), digest(b"a", &one));
        assert_eq!(
            s.get_with_digest(b"a").unwrap(),
            Some((one, digest(b"a", &object(b"1"))))
        );
        assert_eq!(
            s.put_many(&[(b"a", &two), (b"b", &three)]).unwrap(),
            vec![digest(b"a", &two), digest(b"b", &three)]
        );
        assert_eq!(
            s.get_with_digest(b"a").unwrap(),
            Some((two.clone(), digest(b"a", &two)))
        );
        assert_eq!(
            s.get_with_digest(b"b").unwrap(),
            Some((three.clone(), digest(b"b", &three)))
        );
    }

    fn a_scan_with_digests_stops_at_its_keys_or_bytes(s: &mut impl Store) {
        let big = object(&[7; 1000]);
        for key in [b"a", b"b", b"c", b"d"] {
            s.put(key, &big).unwrap();
        }
        let keys =
            |scanned: &Scanned| -> Vec<Vec<u8>> { scanned.states.iter().map(|s| s.key.clone()).collect() };
        let all = s.scan_with_digest(b"", 10, u64::MAX).unwrap();
        assert_eq!(
            keys(&all),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
        assert!(!all.more, "the end of the keys");
        assert!(
            all.states
                .iter()
                .all(|x| x.state == big && x.digest == digest(&x.key, &big))
        );
        let two = s.scan_with_digest(b"b", 2, u64::MAX).unwrap();
        assert_eq!(keys(&two), vec![b"b".to_vec(), b"c".to_vec()]);
        assert!(two.more, "stopped at the keys");
        let size = state_bytes(b"a", &big);
        let bytes = s.scan_with_digest(b"", 10, size + 1).unwrap();
        assert_eq!(
            keys(&bytes),
            vec![b"a".to_vec(), b"b".to_vec()],
            "up to the first past the bytes"
        );
        assert!(bytes.more, "stopped at the bytes");
        assert_eq!(
            s.scan_with_digest(b"", 10, 1).unwrap().states.len(),
            1,
            "one key at least"
        );
        let last = s.scan_with_digest(b"d", 10, size).unwrap();
        assert_eq!(keys(&last), vec![b"d".to_vec()]);
        assert!(last.more, "the bytes were reached: more may follow");
    }

    fn named_states_round_trip_apart_from_data(s: &mut impl Store) {
        assert!(s.load_state("members").unwrap().is_none());
        s.save_state("members", b"one").unwrap();
        s.save_state("members", b"two").unwrap();
        s.save_state("other", b"x").unwrap();
        assert_eq!(s.load_state("members").unwrap().as_deref(), Some(&b"two"[..]));
        assert!(s.scan(b"", 10).unwrap().is_empty(), "states are not data");
    }

    fn absent_key_reads_as_none(s: &mut impl Store) {
        assert!(s.get(b"nope").unwrap().is_none());
        assert!(s.load_meta().unwrap().is_none());
    }

    fn put_then_get_returns_it_and_replaces(s: &mut impl Store) {
        s.put(b"k", &object(b"one")).unwrap();
        assert_eq!(s.get(b"k").unwrap(), Some(object(b"one")));
        s.put(b"k", &object(b"two")).unwrap();
        assert_eq!(s.get(b"k").unwrap(), Some(object(b"two")));
        s.sync().unwrap();
    }

    fn remove_forgets_the_key(s: &mut impl Store) {
        s.put(b"k", &object(b"one")).unwrap();
        s.remove(b"k").unwrap();
        assert!(s.get(b"k").unwrap().is_none());
        s.remove(b"never-there").unwrap();
    }

    fn scan_is_ordered_bounded_and_starts_at_from(s: &mut impl Store) {
        for k in [&b"c"[..], b"a", b"b", b"d"] {
            s.put(k, &object(k)).unwrap();
        }
        let keys = |v: Vec<(Vec<u8>, Versioned)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(s.scan(b"", 10).unwrap()),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
        assert_eq!(keys(s.scan(b"b", 2).unwrap()), vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(s.scan(b"e", 10).unwrap().len(), 0);
        let (_, first) = &s.scan(b"a", 1).unwrap()[0];
        assert_eq!(*first, object(b"a"));
    }

    fn meta_round_trips(s: &mut impl Store) {
        let meta = NodeMeta {
            node_id: NodeId(42),
            epoch: 7,
            format_version: FORMAT_VERSION,
        };
        s.save_meta(&meta).unwrap();
        assert_eq!(s.load_meta().unwrap(), Some(meta));
        let bumped = NodeMeta { epoch: 8, ..meta };
        s.save_meta(&bumped).unwrap();
        assert_eq!(s.load_meta().unwrap(), Some(bumped));
    }

    fn binary_and_longest_keys_are_kept_apart(s: &mut impl Store) {
        let longest = vec![7u8; MAX_STORE_KEY];
        s.put(&longest, &object(b"longest")).unwrap();
        s.put(&[0], &object(b"zero")).unwrap();
        s.put(&[0, 255, 0], &object(b"binary")).unwrap();
        assert_eq!(s.get(&longest).unwrap(), Some(object(b"longest")));
        assert_eq!(s.get(&[0]).unwrap(), Some(object(b"zero")));
        assert_eq!(s.get(&[0, 255, 0]).unwrap(), Some(object(b"binary")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_store_passes_the_store_contract() {
        contract::run(MemStore::new);
    }

    #[test]
    fn record_round_trips_and_detects_every_single_bit_flip() {
        let object = contract::object(b"payload");
        let record = encode_record(&object);
        assert_eq!(decode_record(b"k", &record).unwrap(), object);
        for byte in 0..record.len() {
            for bit in 0..8 {
                let mut bad = record.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    matches!(decode_record(b"k", &bad), Err(StoreError::Corrupt { .. })),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
        assert!(decode_record(b"k", &record[..3]).is_err());
        assert!(decode_record(b"k", &[]).is_err());
    }

    #[test]
    fn meta_of_another_format_is_refused() {
        let meta = NodeMeta {
            node_id: NodeId(1),
            epoch: 1,
            format_version: FORMAT_VERSION + 1,
        };
        assert!(matches!(
            decode_meta(&encode_meta(&meta)),
            Err(StoreError::UnsupportedFormat { .. })
        ));
    }

    #[test]
    fn a_hint_stored_before_written_to_was_recorded_still_reads() {
        #[derive(Serialize)]
        struct EarlierHint {
            #[serde(with = "serde_bytes")]
            key: Vec<u8>,
            object: Versioned,
            created_ms: u64,
        }
        let earlier = EarlierHint {
            key: b"k".to_vec(),
            object: contract::object(b"v"),
            created_ms: 7,
        };
        let record = frame(&earlier);
        let hint = decode_hint(&record).expect("an earlier hint reads");
        assert_eq!((hint.key, hint.created_ms), (b"k".to_vec(), 7));
        assert_eq!(hint.object, contract::object(b"v"));
        assert!(hint.written_to.is_empty());
    }

    #[test]
    fn a_record_encoded_in_place_and_its_digest_match_the_separate_encodings() {
        for value in [b"".as_slice(), b"v", &[7; 300]] {
            let object = contract::object(value);
            let (record, d) = encode_record_with_digest(b"key", &object);
            let body = rmp_serde::to_vec(&object).unwrap();
            let separate = [
                [RECORD_FORMAT].as_slice(),
                &crc32fast::hash(&body).to_le_bytes(),
                &body,
            ]
            .concat();
            assert_eq!(record, separate);
            assert_eq!(record, encode_record(&object));
            assert_eq!(d, digest(b"key", &object));
            assert_eq!(decode_record(b"key", &record).unwrap(), object);
        }
    }

    /// Bytes written by format 1: later builds must keep reading them.
    const FORMAT_1_FIXTURE: &str = "012cf99cb392819201010191939301010105c40766697874757265";

    #[test]
    fn reads_a_format_1_record_fixture() {
        let bytes: Vec<u8> = (0..FORMAT_1_FIXTURE.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&FORMAT_1_FIXTURE[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(decode_record(b"k", &bytes).unwrap(), contract::object(b"fixture"));
        assert_eq!(
            encode_record(&contract::object(b"fixture")),
            bytes,
            "format 1 changed: bump RECORD_FORMAT"
        );
    }
}
