//! The object gateway's keys, buckets and rights, kept in the cluster
//! itself as system records (admin only), written and read at QUORUM.
//!
//! - A key is `\0shoal/s3/keys/<access key id>`: its name and secret. The
//!   secret is stored as it is, because S3 signatures (SigV4) are computed
//!   from it; only admins and the nodes read these records, and it is
//!   never logged.
//! - A bucket is `\0shoal/s3/buckets/<name>`: when it was made and which
//!   keys may read, write or own it.
//!
//! `shoal s3 key|bucket|allow` manage them (`Admin` methods in the client).

use crate::proto::{SYSTEM_KEY_PREFIX, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where key records live.
pub const KEY_PREFIX: &[u8] = b"\0shoal/s3/keys/";
/// Where bucket records live.
pub const BUCKET_PREFIX: &[u8] = b"\0shoal/s3/buckets/";
/// Where a bucket's object records live: this, the bucket name, `/`.
pub const OBJECT_PREFIX: &[u8] = b"\0shoal/s3/objects/";

const _: () = assert!(KEY_PREFIX.len() > SYSTEM_KEY_PREFIX.len());

/// An access key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Who it is for.
    pub name: String,
    /// The secret access key.
    pub secret: String,
    /// When it was made, seconds since the Unix epoch.
    pub created: u64,
    /// Whether it may make buckets through the gateway (it then owns
    /// them).
    #[serde(default)]
    pub create_buckets: bool,
}

/// What one key may do with one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rights {
    /// List and get objects.
    pub read: bool,
    /// Put and delete objects.
    pub write: bool,
    /// Delete the bucket and change its rights.
    pub owner: bool,
}

impl Rights {
    /// Rights that include both `self`'s and `other`'s.
    pub fn union(self, other: Rights) -> Rights {
        Rights {
            read: self.read || other.read,
            write: self.write || other.write,
            owner: self.owner || other.owner,
        }
    }
}

/// A bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// When it was made, seconds since the Unix epoch.
    pub created: u64,
    /// Rights by access key id.
    pub rights: BTreeMap<String, Rights>,
    /// The location constraint it was made with through the gateway, if
    /// any.
    #[serde(default)]
    pub location: Option<String>,
}

/// One record of type `T` from a read's siblings: the only one, or, for
/// concurrent writes, the one `merge` makes of them all.
fn single<T: for<'de> Deserialize<'de>>(values: &[Value], merge: impl Fn(T, T) -> T) -> Option<T> {
    values
        .iter()
        .filter_map(|v| rmp_serde::from_slice::<T>(&v.value).ok())
        .reduce(merge)
}

impl KeyRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("strings and integers always encode")
    }

    /// The key in a read's values; of concurrent writes (two `key create`
    /// runs drawing the same id, which 72 random bits make unlikely), none:
    /// the key is ambiguous and refused.
    pub fn from_values(values: &[Value]) -> Option<KeyRecord> {
        let records: Vec<KeyRecord> = values
            .iter()
            .filter_map(|v| rmp_serde::from_slice(&v.value).ok())
            .collect();
        match records.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }
}

impl BucketRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("maps of strings and flags always encode")
    }

    /// The bucket in a read's values; concurrent writes (two `allow` runs)
    /// are united: every right either gave, the earliest creation.
    pub fn from_values(values: &[Value]) -> Option<BucketRecord> {
        single(values, |mut a: BucketRecord, b: BucketRecord| {
            a.created = a.created.min(b.created);
            for (key, rights) in b.rights {
                let entry = a.rights.entry(key).or_default();
                *entry = entry.union(rights);
            }
            a
        })
    }
}

/// The record key of access key `id`.
pub fn key_record(id: &str) -> Vec<u8> {
    [KEY_PREFIX, id.as_bytes()].concat()
}

/// The record key of bucket `name`.
pub fn bucket_record(name: &str) -> Vec<u8> {
    [BUCKET_PREFIX, name.as_bytes()].concat()
}

/// The prefix of bucket `name`'s object records.
pub fn object_prefix(bucket: &str) -> Vec<u8> {
    [OBJECT_PREFIX, bucket.as_bytes(), b"/"].concat()
}

/// The record key of object `key` in bucket `bucket`.
pub fn object_record(bucket: &str, key: &str) -> Vec<u8> {
    [OBJECT_PREFIX, bucket.as_bytes(), b"/", key.as_bytes()].concat()
}

/// A new access key id (`SH` and 18 uppercase hex digits, 20 characters as
/// AWS's are) and secret (40 characters).
pub fn generate_key() -> (String, String) {
    let id = format!("SH{:018X}", rand::random::<u128>() & ((1u128 << 72) - 1));
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let secret = (0..40)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    (id, secret)
}

/// Why `name` is not a bucket name S3 clients accept: 3 to 63 characters,
/// lowercase letters, digits, hyphens and dots, starting and ending with a
/// letter or digit, no two dots in a row, not an IP address.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !(3..=63).contains(&bytes.len()) {
        return Err(format!("`{name}`: a bucket name has 3 to 63 characters"));
    }
    if !bytes.iter().all(|&b| alnum(b) || b == b'-' || b == b'.') {
        return Err(format!(
            "`{name}`: only lowercase letters, digits, hyphens and dots"
        ));
    }
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(format!("`{name}`: starts and ends with a letter or a digit"));
    }
    if name.contains("..") || name.contains("-.") || name.contains(".-") {
        return Err(format!(
            "`{name}`: no two dots in a row, nor a dot next to a hyphen"
        ));
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!("`{name}`: not an IP address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(bytes: Vec<u8>) -> Value {
        Value {
            value: bytes.into(),
            timestamp_ms: 0,
        }
    }

    #[test]
    fn generated_keys_look_like_s3_keys() {
        let (id, secret) = generate_key();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("SH") && id[2..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(secret.len(), 40);
        assert_ne!(generate_key().1, secret);
    }

    #[test]
    fn concurrent_grants_are_united_and_ambiguous_keys_refused() {
        let read = |key: &str| BucketRecord {
            location: None,
            created: 5,
            rights: BTreeMap::from([(
                key.to_string(),
                Rights {
                    read: true,
                    ..Rights::default()
                },
            )]),
        };
        let mut write = read("b");
        write.created = 3;
        write.rights.get_mut("b").unwrap().write = true;
        let merged = BucketRecord::from_values(&[value(read("a").encode()), value(write.encode())]).unwrap();
        assert_eq!(merged.created, 3);
        assert!(merged.rights["a"].read && !merged.rights["a"].write);
        assert!(merged.rights["b"].read && merged.rights["b"].write);
        let key = KeyRecord {
            name: "x".into(),
            secret: "s".into(),
            created: 1,
            create_buckets: false,
        };
        assert_eq!(KeyRecord::from_values(&[value(key.encode())]), Some(key.clone()));
        assert_eq!(
            KeyRecord::from_values(&[value(key.encode()), value(key.encode())]),
            None
        );
    }

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in ["abc", "my-bucket.logs", "0day", &"a".repeat(63)] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "Upper",
            "-start",
            "end-",
            "a..b",
            "foo-.bar",
            "foo.-bar",
            "192.168.1.1",
            "under_score",
            &"a".repeat(64),
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
