//! The deny list of revoked certificates, as it is stored in the cluster.
//!
//! The list is one record, [`REVOKED_KEY`] (a system key: only admin
//! certificates may touch it directly), holding every revoked serial with
//! the time it was revoked. `shoal cluster revoke` (`Admin::revoke`) reads
//! it at QUORUM, adds a serial and writes it back at QUORUM with the
//! read's context; so it replicates, repairs and survives like any record.
//! Concurrent revocations leave siblings, which readers unite. Every node
//! enforces it (see the node's `revocation` module).

use crate::proto::{SYSTEM_KEY_PREFIX, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The record holding the deny list.
pub const REVOKED_KEY: &[u8] = b"\0shoal/revoked-certificates";
/// How often every node reads the list.
pub const REFRESH: Duration = Duration::from_secs(1);
/// The QUIC close code of a connection closed because its certificate was
/// revoked or expired (the reason says which).
pub const CLOSE_CERTIFICATE: u32 = 0x5e1;

const _: () = assert!(REVOKED_KEY.len() > SYSTEM_KEY_PREFIX.len());

/// Revoked certificates by serial (lowercase hex, as
/// [`crate::net::tls::PeerCertificate::serial`]), each with when it was revoked (seconds
/// since the Unix epoch).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// Serial -> revoked at.
    pub revoked: BTreeMap<String, u64>,
}

impl RevocationList {
    /// Whether `serial` is revoked.
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.revoked.contains_key(serial)
    }

    /// The union of the lists in a read's siblings (concurrent revocations
    /// each wrote one), and how many siblings could not be read.
    pub fn from_values(values: &[Value]) -> (RevocationList, usize) {
        let mut list = RevocationList::default();
        let mut unreadable = 0;
        for value in values {
            match rmp_serde::from_slice::<RevocationList>(&value.value) {
                Ok(other) => {
                    list.absorb(&other);
                }
                Err(_) => unreadable += 1,
            }
        }
        (list, unreadable)
    }

    /// Adds every entry of `other` (keeping the earliest time of each);
    /// whether anything was new.
    pub fn absorb(&mut self, other: &RevocationList) -> bool {
        let mut grew = false;
        for (serial, at) in &other.revoked {
            let entry = self.revoked.entry(serial.clone()).or_insert_with(|| {
                grew = true;
                *at
            });
            *entry = (*entry).min(*at);
        }
        grew
    }

    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("a map of strings to integers always encodes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[(&str, u64)]) -> RevocationList {
        RevocationList {
            revoked: entries.iter().map(|(s, t)| (s.to_string(), *t)).collect(),
        }
    }

    fn value(bytes: Vec<u8>) -> Value {
        Value {
            value: bytes.into(),
            timestamp_ms: 0,
        }
    }

    #[test]
    fn concurrent_revocations_are_united_and_junk_is_counted_not_trusted() {
        let values = [
            value(list(&[("aa", 5), ("bb", 7)]).encode()),
            value(list(&[("bb", 3), ("cc", 9)]).encode()),
            value(b"not a list".to_vec()),
        ];
        let (merged, unreadable) = RevocationList::from_values(&values);
        assert_eq!(merged, list(&[("aa", 5), ("bb", 3), ("cc", 9)]));
        assert_eq!(unreadable, 1);
    }

    #[test]
    fn a_node_never_forgets_a_revocation() {
        let mut known = list(&[("aa", 5)]);
        assert!(!known.absorb(&RevocationList::default()));
        assert!(known.is_revoked("aa"));
        assert!(known.absorb(&list(&[("bb", 1)])));
        assert!(!known.absorb(&list(&[("bb", 1)])));
    }
}
