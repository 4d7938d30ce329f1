//! Large records in files of their own, beside fjall.
//!
//! A record of [`FILE_RECORD_BYTES`] or more (the object gateway's data
//! blocks) is written once, to a file in `records/` under the data
//! directory, and fjall holds a small pointer to it in its place. Kept in
//! fjall, such a record was written twice on every replica (to the journal,
//! then to a blob file when its memtable was flushed) and hashed twice more
//! by fjall's own checksums: under S3 PUTs of 1 MiB objects the disk took
//! six writes of every block (BENCH.md, S3 gateway).
//!
//! Durability follows fjall's: a file is written to the operating system
//! before its pointer is committed, so a record whose pointer is visible
//! survives a crash of the process; [`RecordFiles::sync`] makes the files
//! written so far survive power loss, before the store syncs fjall. A file
//! whose record was replaced or removed is deleted only once the pointer
//! that replaced it is durable (at a sync, a clean close, or past
//! [`DOOMED_MAX`] of them, after syncing fjall's journal), so a power loss
//! never brings back a pointer to a deleted file. Files left behind by a crash (written but
//! never pointed to, or replaced but not yet deleted) are deleted at the
//! next open, which after a crash reads every pointer anyway to rebuild
//! the digest index.

use crate::proto::StoreError;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Records at least this large are kept in files.
pub(super) const FILE_RECORD_BYTES: usize = 64 << 10;
/// Files of replaced records held before fjall's journal is synced to
/// delete them.
pub(super) const DOOMED_MAX: usize = 64;
/// Files written and not yet synced that are listed: past this many (a
/// node whose durability never syncs), a sync syncs every file instead.
const UNSYNCED_MAX: usize = 1 << 16;
/// The first byte of a pointer (a record's first byte is its format, 1).
const POINTER_FORMAT: u8 = 0xF1;
/// Format byte, file id, record length, digest, crc32 of the three.
const POINTER_BYTES: usize = 1 + 8 + 8 + 8 + 4;
/// The directory of the files, under the data directory.
const DIRECTORY: &str = "records";

/// Where a record kept in a file is: what fjall holds in its place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Pointer {
    pub(super) id: u64,
    pub(super) len: u64,
    /// The record's digest (see `proto::store::digest`), so that
    /// rebuilding the digest index does not read the file.
    pub(super) digest: u64,
}

impl Pointer {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(POINTER_BYTES);
        bytes.push(POINTER_FORMAT);
        bytes.extend_from_slice(&self.id.to_le_bytes());
        bytes.extend_from_slice(&self.len.to_le_bytes());
        bytes.extend_from_slice(&self.digest.to_le_bytes());
        let crc = crc32fast::hash(&bytes[1..]);
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// The pointer a stored value holds, if it is one; an error if it is
    /// one but damaged.
    pub(super) fn decode(key: &[u8], stored: &[u8]) -> Result<Option<Pointer>, StoreError> {
        if stored.first() != Some(&POINTER_FORMAT) {
            return Ok(None);
        }
        let corrupt = |reason| StoreError::Corrupt {
            key: key.to_vec(),
            reason,
        };
        if stored.len() != POINTER_BYTES {
            return Err(corrupt("record file pointer of the wrong length"));
        }
        let word = |at: usize| u64::from_le_bytes(stored[at..at + 8].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(stored[25..29].try_into().expect("4 bytes"));
        if crc32fast::hash(&stored[1..25]) != crc {
            return Err(corrupt("record file pointer checksum mismatch"));
        }
        Ok(Some(Pointer {
            id: word(1),
            len: word(9),
            digest: word(17),
        }))
    }
}

/// The files of a data directory.
pub(super) struct RecordFiles {
    dir: PathBuf,
    /// The directory, held open to sync it.
    handle: std::fs::File,
    /// The id of the next file written.
    next: u64,
    /// Whether any file may exist: if not, a write need not look for the
    /// file of the record it replaces.
    present: bool,
    /// Files written since the last sync ...
    unsynced: Vec<u64>,
    /// ... unless there were more than [`UNSYNCED_MAX`].
    unsynced_overflow: bool,
    /// Files of replaced or removed records, deleted at the next sync.
    doomed: Vec<u64>,
    /// Bytes in the files.
    bytes: u64,
}

fn io(error: std::io::Error) -> StoreError {
    StoreError::Engine {
        source: Box::new(error),
    }
}

fn file_id(name: &std::ffi::OsStr) -> Option<u64> {
    let name = name.to_str()?;
    (name.len() == 16).then(|| u64::from_str_radix(name, 16).ok())?
}

impl RecordFiles {
    /// Opens (creates) the files' directory under `data`.
    pub(super) fn open(data: &Path) -> Result<RecordFiles, StoreError> {
        let dir = data.join(DIRECTORY);
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut files = RecordFiles {
            handle: std::fs::File::open(&dir).map_err(io)?,
            dir,
            next: 0,
            present: false,
            unsynced: Vec::new(),
            unsynced_overflow: false,
            doomed: Vec::new(),
            bytes: 0,
        };
        for (id, len) in files.list()? {
            files.next = files.next.max(id + 1);
            files.present = true;
            files.bytes += len;
        }
        Ok(files)
    }

    /// The files in the directory: id and length.
    fn list(&self) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            if let Some(id) = file_id(&entry.file_name()) {
                found.push((id, entry.metadata().map_err(io)?.len()));
            }
        }
        Ok(found)
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016x}"))
    }

    /// Whether a write must look for the file of the record it replaces.
    pub(super) fn present(&self) -> bool {
        self.present
    }

    /// Bytes in the files.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Writes `record` to a new file; returns the pointer to store in its
    /// place. The file is not yet referenced: [`RecordFiles::discard`] it
    /// if the pointer is not committed.
    pub(super) fn write(&mut self, record: &[u8], digest: u64) -> Result<(Pointer, Vec<u8>), StoreError> {
        let id = self.next;
        self.next += 1;
        self.present = true;
        let path = self.path(id);
        let written = std::fs::File::create(&path).and_then(|mut file| file.write_all(record));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&path);
            return Err(io(error));
        }
        self.bytes += record.len() as u64;
        if self.unsynced.len() < UNSYNCED_MAX {
            self.unsynced.push(id);
        } else {
            self.unsynced_overflow = true;
        }
        let pointer = Pointer {
            id,
            len: record.len() as u64,
            digest,
        };
        Ok((pointer, pointer.encode()))
    }

    /// Deletes a file just written whose pointer was not committed.
    pub(super) fn discard(&mut self, pointer: &Pointer) {
        self.unsynced.retain(|&id| id != pointer.id);
        if std::fs::remove_file(self.path(pointer.id)).is_ok() {
            self.bytes = self.bytes.saturating_sub(pointer.len);
        }
    }

    /// Reads the record a pointer of `key` points to (its format and
    /// checksum are checked when it is decoded).
    pub(super) fn read(&self, key: &[u8], pointer: &Pointer) -> Result<Vec<u8>, StoreError> {
        let record = match std::fs::read(self.path(pointer.id)) {
            Ok(record) => record,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Corrupt {
                    key: key.to_vec(),
                    reason: "record file missing",
                });
            }
            Err(error) => return Err(io(error)),
        };
        if record.len() as u64 != pointer.len {
            return Err(StoreError::Corrupt {
                key: key.to_vec(),
                reason: "record file of the wrong length",
            });
        }
        Ok(record)
    }

    /// Marks the file of a replaced or removed record for deletion once
    /// its replacement is durable.
    pub(super) fn doom(&mut self, pointer: &Pointer) {
        self.doomed.push(pointer.id);
    }

    /// Whether enough files wait for deletion that the store should sync
    /// fjall's journal and delete them.
    pub(super) fn deletion_due(&self) -> bool {
        self.doomed.len() >= DOOMED_MAX
    }

    /// Makes the files written so far durable: called before the store
    /// syncs fjall.
    pub(super) fn sync(&mut self) -> Result<(), StoreError> {
        if self.unsynced.is_empty() && !self.unsynced_overflow {
            return Ok(());
        }
        let ids = if self.unsynced_overflow {
            self.list()?.into_iter().map(|(id, _)| id).collect()
        } else {
            std::mem::take(&mut self.unsynced)
        };
        for id in ids {
            match std::fs::File::open(self.path(id)) {
                Ok(file) => file.sync_data().map_err(io)?,
                // Replaced and deleted meanwhile: nothing to keep.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io(error)),
            }
        }
        self.handle.sync_all().map_err(io)?;
        self.unsynced.clear();
        self.unsynced_overflow = false;
        Ok(())
    }

    /// Deletes the doomed files: called once fjall is synced, so that the
    /// pointers that replaced theirs are durable.
    pub(super) fn delete_doomed(&mut self) {
        for id in std::mem::take(&mut self.doomed) {
            let path = self.path(id);
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            match std::fs::remove_file(&path) {
                Ok(()) => self.bytes = self.bytes.saturating_sub(len),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                // Left for the next open after a crash to find.
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "deleting a replaced record file failed")
                }
            }
        }
    }

    /// Forgets the doomed files without deleting them, as a crash would.
    #[cfg(test)]
    pub(super) fn forget_doomed(&mut self) {
        self.doomed.clear();
    }

    /// Deletes every file no pointer refers to (after a crash: written but
    /// never committed, or replaced but not yet deleted); returns how many.
    pub(super) fn delete_unreferenced(&mut self, referenced: &BTreeSet<u64>) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for (id, len) in self.list()? {
            if !referenced.contains(&id) {
                std::fs::remove_file(self.path(id)).map_err(io)?;
                self.bytes = self.bytes.saturating_sub(len);
                deleted += 1;
            }
        }
        self.present = !referenced.is_empty();
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_round_trips_and_detects_damage() {
        let pointer = Pointer {
            id: 0x0102_0304_0506_0708,
            len: 1 << 20,
            digest: 0xdead_beef_0bad_cafe,
        };
        let bytes = pointer.encode();
        assert_eq!(bytes.len(), POINTER_BYTES);
        assert_eq!(Pointer::decode(b"k", &bytes).unwrap(), Some(pointer));
        for byte in 1..bytes.len() {
            let mut bad = bytes.clone();
            bad[byte] ^= 0x10;
            assert!(
                Pointer::decode(b"k", &bad).is_err(),
                "damage in byte {byte} unnoticed"
            );
        }
        assert!(Pointer::decode(b"k", &bytes[..20]).is_err());
        // A record (format 1) is not a pointer.
        assert_eq!(Pointer::decode(b"k", &[1, 0, 0, 0, 0]).unwrap(), None);
    }
}
