//! The node's local storage: the only owner of the [`Store`] and of the
//! digest tree that summarises it, so that the two never drift. Every
//! write of a key's state goes through here and updates the tree with it;
//! reads drop corrupt records (and their digests) on the way; and the
//! storage's health (a full or failing disk) is tracked here.

use super::digest_tree::{DigestTree, Summary};
use super::ring::key_position;
use super::store::{DigestEntry, NodeMeta, Scanned, Store, StoreError, StoredHint};
use super::types::{NodeId, Time};
use super::version::Versioned;
use super::{STORAGE_CHECK_INTERVAL, Stats};

/// The store record holding the digest tree saved at a clean stop; emptied
/// at start, so a tree is only ever loaded over the very data it was saved
/// with (after a crash the tree is rebuilt from the digest index).
const DIGEST_TREE_STATE: &str = "digest-tree";

/// One key's write in a batch: the key, the digest of its state before
/// (as read; `None` if it had none) and the state to store.
pub(super) type Write<'a> = (&'a [u8], Option<u64>, &'a Versioned);

/// The store and its digest tree, kept in step, and the storage's health.
pub(super) struct LocalStore<S: Store> {
    store: S,
    /// Digests of every stored key, kept in step with the store.
    tree: DigestTree,
    /// Whether the tree was loaded as saved at the last clean stop (rather
    /// than rebuilt from the digest index).
    tree_restored: bool,
    /// Why storage failed, while it has not recovered: reads are served,
    /// writes refused.
    failure: Option<String>,
    /// When to check next whether storage recovered (set at the first
    /// timeout after it failed).
    check: Option<Time>,
    /// The node's member state does not yet say what `failure` says.
    announce: bool,
    corrupt_records_dropped: u64,
    digests_repaired: u64,
    storage_failures: u64,
    /// Whether watches want the keys whose states change.
    tracking: bool,
    /// Keys whose states changed since the watches last looked.
    changed: Vec<Vec<u8>>,
}

impl<S: Store> LocalStore<S> {
    /// Opens `store` for a run under `meta`: takes the digest tree saved at
    /// the last clean stop (once: the record is emptied before anything is
    /// written) or rebuilds it, and durably saves `meta`.
    pub(super) fn open(mut store: S, meta: &NodeMeta) -> Result<LocalStore<S>, StoreError> {
        let saved_tree = store
            .load_state(DIGEST_TREE_STATE)?
            .filter(|bytes| !bytes.is_empty())
            .and_then(|bytes| DigestTree::from_bytes(&bytes));
        if saved_tree.is_some() {
            store.save_state(DIGEST_TREE_STATE, &[])?;
        }
        store.save_meta(meta)?;
        let tree_restored = saved_tree.is_some();
        let tree = match saved_tree {
            Some(tree) => tree,
            None => DigestTree::build(&store)?,
        };
        Ok(LocalStore {
            store,
            tree,
            tree_restored,
            failure: None,
            check: None,
            announce: false,
            corrupt_records_dropped: 0,
            digests_repaired: 0,
            storage_failures: 0,
            tracking: false,
            changed: Vec::new(),
        })
    }

    /// The store, for inspection.
    pub(super) fn store(&self) -> &S {
        &self.store
    }

    /// The store, for the driver's sync and for injected faults; states of
    /// keys are written only through [`LocalStore::put`] and its kin.
    pub(super) fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Hands the store back (a stop or the simulator's crash).
    pub(super) fn into_store(self) -> S {
        self.store
    }

    /// Adds this storage's counters to `stats`.
    pub(super) fn add_stats(&self, stats: &mut Stats) {
        stats.corrupt_records_dropped += self.corrupt_records_dropped;
        stats.digests_repaired += self.digests_repaired;
        stats.storage_failures += self.storage_failures;
    }

    /// Reads `key`'s state. A record that fails its checksum or cannot be
    /// decoded is never served: it is dropped (counted in
    /// `Stats::corrupt_records_dropped`) and the key reads as absent here,
    /// so read repair, anti-entropy and the next write bring it back from
    /// the other replicas.
    pub(super) fn get(&mut self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        let read = self.store.get(key);
        self.dropping_corrupt(read)
    }

    /// [`LocalStore::get`] with the state's digest, for a write that will
    /// replace it (see [`LocalStore::put`]).
    pub(super) fn get_with_digest(&mut self, key: &[u8]) -> Result<Option<(Versioned, u64)>, StoreError> {
        let read = self.store.get_with_digest(key);
        self.dropping_corrupt(read)
    }

    /// `key`'s state to write over, read with [`LocalStore::get_with_digest`]:
    /// the stored state's digest (`None` if there is none) and the state
    /// (empty if there is none), for [`LocalStore::put`].
    pub(super) fn read_for_write(&mut self, key: &[u8]) -> Result<(Option<u64>, Versioned), StoreError> {
        Ok(match self.get_with_digest(key)? {
            Some((state, digest)) => (Some(digest), state),
            None => (None, Versioned::default()),
        })
    }

    /// A read's result, with a corrupt record dropped and read as absent.
    fn dropping_corrupt<T>(&mut self, read: Result<Option<T>, StoreError>) -> Result<Option<T>, StoreError> {
        match read {
            Err(StoreError::Corrupt { key: damaged, .. }) => {
                self.drop_corrupt(&damaged)?;
                Ok(None)
            }
            other => other,
        }
    }

    /// Up to `limit` stored states from key `from` on, as
    /// [`Store::scan`]. A corrupt record met on the way is dropped as by
    /// [`LocalStore::get`] and the scan fails with it; the caller scans
    /// again later and goes past it.
    pub(super) fn scan(
        &mut self,
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Versioned)>, StoreError> {
        let scanned = self.store.scan(from, limit);
        self.dropping_corrupt_scanned(scanned)
    }

    /// As [`Store::scan_with_digest`], dropping a corrupt record met on
    /// the way as [`LocalStore::scan`] does.
    pub(super) fn scan_with_digest(
        &mut self,
        from: &[u8],
        limit: usize,
        max_bytes: u64,
    ) -> Result<Scanned, StoreError> {
        let scanned = self.store.scan_with_digest(from, limit, max_bytes);
        self.dropping_corrupt_scanned(scanned)
    }

    /// A scan's result, with the corrupt record that failed it dropped.
    fn dropping_corrupt_scanned<T>(&mut self, scanned: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Corrupt { key, .. }) = &scanned {
            let _ = self.drop_corrupt(&key.clone());
        }
        scanned
    }

    /// Up to `limit` digest index entries of ring positions
    /// `first..=last`, as [`Store::digests`].
    pub(super) fn digests(
        &self,
        first: u64,
        last: u64,
        limit: usize,
    ) -> Result<Vec<DigestEntry>, StoreError> {
        self.store.digests(first, last, limit)
    }

    /// The digest and key count of ring positions `first..=last`.
    pub(super) fn summary(&self, first: u64, last: u64) -> Result<Summary, StoreError> {
        self.tree.summary(&self.store, first, last)
    }

    /// Stores `object` as `key`'s state in place of the state of digest
    /// `old` (as [`LocalStore::get_with_digest`] read it; `None` if there
    /// was none).
    pub(super) fn put(&mut self, key: &[u8], old: Option<u64>, object: &Versioned) -> Result<(), StoreError> {
        self.writable()?;
        let written = self.store.put(key, object);
        let new = self.noting_failure(written)?;
        self.note_put(key, old, new, object);
        Ok(())
    }

    /// Stores many states in one batch, each in place of its old one.
    pub(super) fn put_many(&mut self, writes: &[Write<'_>]) -> Result<(), StoreError> {
        let states: Vec<(&[u8], &Versioned)> = writes.iter().map(|&(key, _, object)| (key, object)).collect();
        self.writable()?;
        let written = self.store.put_many(&states);
        let digests = self.noting_failure(written)?;
        for (&(key, old, object), new) in writes.iter().zip(digests) {
            self.note_put(key, old, new, object);
        }
        Ok(())
    }

    /// Removes `key`, whose state has digest `current`.
    pub(super) fn remove(&mut self, key: &[u8], current: u64) -> Result<(), StoreError> {
        self.store.remove(key)?;
        self.tree.apply(key_position(key), current, 0, -1);
        Ok(())
    }

    /// Checks `key`'s digest index entry against its state `state` (of
    /// digest `d`): a missing or wrong entry (a damaged disk) is rewritten
    /// and the tree corrected, so anti-entropy compares what is really
    /// stored. True if it was repaired.
    pub(super) fn verify_digest(&mut self, key: &[u8], state: &Versioned, d: u64) -> bool {
        let position = key_position(key);
        let Ok(entries) = self.store.digests(position, position, 64) else {
            return false;
        };
        let indexed = entries.iter().find(|e| e.key == key).map(|e| e.digest);
        if indexed == Some(d) || self.store.put(key, state).is_err() {
            return false;
        }
        let count = if indexed.is_some() { 0 } else { 1 };
        self.tree.apply(position, indexed.unwrap_or(0), d, count);
        self.digests_repaired += 1;
        true
    }

    /// Removes a corrupt record and its digest (as indexed) from the tree.
    fn drop_corrupt(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let position = key_position(key);
        let indexed = self
            .store
            .digests(position, position, 64)?
            .into_iter()
            .find(|e| e.key == key)
            .map(|e| e.digest);
        self.store.remove(key)?;
        if let Some(d) = indexed {
            self.tree.apply(position, d, 0, -1);
        }
        self.corrupt_records_dropped += 1;
        Ok(())
    }

    /// Whether to note the keys whose states change, for watches (see
    /// [`LocalStore::take_changed`]); off while no watch is held.
    pub(super) fn track_changes(&mut self, on: bool) {
        self.tracking = on;
        if !on {
            self.changed.clear();
        }
    }

    /// The keys whose stored states changed since the last call, while
    /// tracking.
    pub(super) fn take_changed(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.changed)
    }

    /// Keeps the tree in step with a put of `object` (of digest `new`)
    /// over a state of digest `old`, and notes the key for watches while
    /// tracking.
    fn note_put(&mut self, key: &[u8], old: Option<u64>, new: u64, object: &Versioned) {
        if self.tracking {
            self.changed.push(key.to_vec());
        }
        // States from the wire were checked at the boundary, and merges
        // and writes of well-formed states keep them so.
        if let Err(fault) = object.check() {
            panic!("a state about to be stored breaks its invariants: {fault}");
        }
        let count = if old.is_some() { 0 } else { 1 };
        self.tree.apply(key_position(key), old.unwrap_or(0), new, count);
    }

    /// Saves the tree for the next start, which then skips rebuilding it.
    pub(super) fn save_tree(&mut self) -> Result<(), StoreError> {
        self.store.save_state(DIGEST_TREE_STATE, &self.tree.to_bytes())
    }

    /// Whether the tree was loaded as saved at the last clean stop.
    pub(super) fn tree_restored(&self) -> bool {
        self.tree_restored
    }

    /// A named record apart from the data (member states, a join plan).
    pub(super) fn load_state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.load_state(name)
    }

    /// Saves a named record apart from the data.
    pub(super) fn save_state(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.store.save_state(name, bytes)
    }

    /// Stores a hint record for `target`, refused while storage has
    /// failed.
    pub(super) fn put_hint(&mut self, target: NodeId, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        let written = self.store.put_hint(target, seq, record);
        self.noting_failure(written)
    }

    /// Stored hints from `from` on, as [`Store::hints`].
    pub(super) fn hints(&self, from: (NodeId, u64), limit: usize) -> Result<Vec<StoredHint>, StoreError> {
        self.store.hints(from, limit)
    }

    /// Removes one stored hint.
    pub(super) fn remove_hint(&mut self, target: NodeId, seq: u64) -> Result<(), StoreError> {
        self.store.remove_hint(target, seq)
    }

    /// Removes stored hints of `target`.
    pub(super) fn remove_hints(&mut self, target: NodeId, seqs: &[u64]) -> Result<(), StoreError> {
        self.store.remove_hints(target, seqs)
    }

    /// Why storage failed, while it has not recovered.
    pub(super) fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Refuses a write at once while storage has failed.
    fn writable(&self) -> Result<(), StoreError> {
        match self.failure {
            Some(_) => Err(StoreError::ReadOnly),
            None => Ok(()),
        }
    }

    /// Passes a store write's result on, noting a failure of the engine.
    fn noting_failure<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(error) = &result {
            self.note_error(error);
        }
        result
    }

    /// The storage engine failed (a full or failing disk): from now on no
    /// writes are taken, and at the next timeout the node tells the others
    /// and starts checking for recovery. (A corrupt record is not a
    /// storage failure: it is dropped and repaired.)
    pub(super) fn note_error(&mut self, error: &StoreError) {
        if matches!(error, StoreError::Engine { .. }) && self.failure.is_none() {
            self.failure = Some(error.to_string());
            self.check = None;
            self.announce = true;
            self.storage_failures += 1;
        }
    }

    /// Whether it is time to ask the store whether it recovered; the first
    /// timeout after a failure only schedules the first check.
    pub(super) fn recovery_due(&mut self, now: Time) -> bool {
        if self.failure.is_none() {
            return false;
        }
        match self.check {
            None => {
                self.check = Some(now + STORAGE_CHECK_INTERVAL);
                false
            }
            Some(at) => at <= now,
        }
    }

    /// Asks the store to recover and, if it did, saves `meta` (the node's
    /// new epoch) before taking writes again; true if storage is back.
    pub(super) fn recover(&mut self, now: Time, meta: &NodeMeta) -> bool {
        match self.store.recover().and_then(|()| self.store.save_meta(meta)) {
            Ok(()) => {
                self.failure = None;
                self.check = None;
                self.announce = true;
                true
            }
            Err(_) => {
                self.check = Some(now + STORAGE_CHECK_INTERVAL);
                false
            }
        }
    }

    /// Whether storage failed, if the other nodes have not been told of a
    /// change yet (once).
    pub(super) fn take_announcement(&mut self) -> Option<bool> {
        std::mem::take(&mut self.announce).then_some(self.failure.is_some())
    }

    /// Whether storage health needs a timeout check.
    pub(super) fn needs_check(&self) -> bool {
        self.failure.is_some() || self.announce
    }

    /// When storage health next needs a timeout: at once to announce a
    /// change or to start checking, then at each check.
    pub(super) fn poll_timeout(&self) -> Option<Time> {
        if self.announce || self.failure.is_some() && self.check.is_none() {
            return Some(Time::ZERO);
        }
        self.check.filter(|_| self.failure.is_some())
    }
}
