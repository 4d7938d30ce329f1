//! Bearer tokens for the HTTP API, kept in the cluster itself.
//!
//! A token is `shoal.<id>.<secret>`: `id` names the record
//! `\0shoal/tokens/<id>` (a system key, admin only), which holds the
//! token's name, role and the SHA-256 of its secret, never the secret
//! itself. `shoal token create` writes the record at QUORUM and prints the
//! token once; `shoal token revoke` deletes it. Every node checks a token
//! by reading its record at QUORUM (cached for [`TOKEN_CACHE`]), so a
//! revoked token is refused within seconds everywhere.

use crate::net::tls::Role;
use crate::proto::{SYSTEM_KEY_PREFIX, Value};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where token records live.
pub const TOKEN_PREFIX: &[u8] = b"\0shoal/tokens/";
/// How long a node trusts what it read of a token.
pub const TOKEN_CACHE: Duration = Duration::from_secs(2);

const _: () = assert!(TOKEN_PREFIX.len() > SYSTEM_KEY_PREFIX.len());

/// A token's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Who it is for.
    pub name: String,
    /// What its holder may do (`admin`, `readwrite`, `readonly`).
    pub role: String,
    /// SHA-256 of the secret, lowercase hex.
    pub secret_sha256: String,
    /// When it was made, seconds since the Unix epoch.
    pub created: u64,
}

impl TokenRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("strings and integers always encode")
    }

    /// The record in a read's values: the one readable value if there is
    /// exactly one (concurrent writes of one id are refused: the token is
    /// ambiguous), else none.
    pub fn from_values(values: &[Value]) -> Option<TokenRecord> {
        let mut records = values
            .iter()
            .filter_map(|v| rmp_serde::from_slice::<TokenRecord>(&v.value).ok());
        let record = records.next()?;
        records.next().is_none().then_some(record)
    }

    /// The role it grants; none for a record that names no client role.
    pub fn role(&self) -> Option<Role> {
        self.role.parse().ok().filter(|r| *r != Role::Node)
    }

    /// Whether `secret` is this token's secret.
    pub fn admits(&self, secret: &str) -> bool {
        let given = sha256_hex(secret.as_bytes());
        // Compare every byte whatever the first difference.
        given.len() == self.secret_sha256.len()
            && given
                .bytes()
                .zip(self.secret_sha256.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// The record key of token `id`.
pub fn record_key(id: &str) -> Vec<u8> {
    let mut key = TOKEN_PREFIX.to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

/// A new token: its id, its secret, and the whole token string.
pub fn generate() -> (String, String, String) {
    let id = format!("{:016x}", rand::random::<u64>());
    let secret: String = (0..4)
        .map(|_| format!("{:016x}", rand::random::<u64>()))
        .collect();
    let token = format!("shoal.{id}.{secret}");
    (id, secret, token)
}

/// The id and secret of a token string; none if it is not one.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("shoal.")?;
    let (id, secret) = rest.split_once('.')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_and_only_its_secret_is_admitted() {
        let (id, secret, token) = generate();
        assert_eq!(parse(&token), Some((id.as_str(), secret.as_str())));
        let record = TokenRecord {
            name: "app".into(),
            role: "readonly".into(),
            secret_sha256: sha256_hex(secret.as_bytes()),
            created: 1,
        };
        assert!(record.admits(&secret));
        assert!(!record.admits(&secret.replace('a', "b").replace('1', "2")));
        assert_eq!(record.role(), Some(Role::ReadOnly));
        assert_eq!(parse("shoal.zz.00"), None);
        assert_eq!(parse("Bearer x"), None);
        let value = |r: &TokenRecord| Value {
            value: r.encode().into(),
            timestamp_ms: 0,
        };
        assert_eq!(TokenRecord::from_values(&[value(&record)]), Some(record.clone()));
        assert_eq!(TokenRecord::from_values(&[value(&record), value(&record)]), None);
    }
}
