//! Every tunable of the core in one place, with defaults and validation.
//!
//! A limit on everything: key and value sizes, siblings per key, requests in
//! flight. `Config::validate` refuses values that would make the node unsafe
//! or unable to work, naming the setting.

use super::types::NodeId;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The largest replication factor (N) a node accepts.
pub const MAX_REPLICATION: usize = 16;

/// Settings of one node's core. Cluster-wide settings (replication, vnodes)
/// must be equal on every node.
///
/// In a config file every field is a setting of the same name; durations
/// are written like `2s`, `500ms` or `3h`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// N: how many distinct nodes hold each key.
    pub replication: usize,
    /// Virtual nodes (ring tokens) per node.
    pub vnodes: u32,
    /// Deadline of a client request that does not carry its own.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest key accepted, in bytes.
    pub max_key_bytes: usize,
    /// Largest value accepted, in bytes.
    pub max_value_bytes: usize,
    /// The consistency level of a request that asks for `default`
    /// (`one`, `two`, `quorum`, `all` or `R,W`).
    #[serde(with = "consistency_text")]
    pub default_consistency: super::Consistency,
    /// Most siblings a key may hold; a put that would exceed it fails.
    pub max_siblings: usize,
    /// Shortest time to live a put may carry; shorter ones are refused.
    #[serde(with = "humantime_serde")]
    pub min_ttl: Duration,
    /// Longest time to live a put may carry; longer ones are refused.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// Largest state one key may hold, all its siblings together, in bytes
    /// (roughly as sent); a put that would exceed it fails, so every state
    /// fits in one message.
    pub max_state_bytes: usize,
    /// Most operations this node coordinates at once; more get `Busy`.
    pub max_requests_in_flight: usize,
    /// Most watches this node holds at once, as the node a client watches
    /// through and, apart, as a replica told to report changes of a key;
    /// past it a watch is refused with `Busy`. Watches do not count
    /// toward `max_requests_in_flight`.
    pub max_watches: usize,
    /// Longest a watch may wait for a change; longer ones are refused.
    #[serde(with = "humantime_serde")]
    pub max_watch_timeout: Duration,
    /// How often a node starts an anti-entropy exchange with a random peer.
    #[serde(with = "humantime_serde")]
    pub anti_entropy_interval: Duration,
    /// Most states one anti-entropy message carries (bounds bandwidth).
    pub anti_entropy_max_states: usize,
    /// Whether reads write merged states back to stale replicas.
    pub read_repair: bool,
    /// Whether a read waits for its repairs to be acknowledged before it
    /// answers (slower reads; a following read at any level finds the
    /// replicas that answered repaired). Off: repairs go out after the
    /// answer.
    pub read_repair_blocking: bool,
    /// Whether a coordinator keeps hints for replicas that missed a write
    /// (down, or silent until the deadline) and replays them later.
    pub hinted_handoff: bool,
    /// Longest a hint is kept, and longest a replica may be down and still
    /// get new hints; past it, anti-entropy repairs instead.
    #[serde(with = "humantime_serde")]
    pub hint_window: Duration,
    /// Most bytes of hints kept for one replica; past it, new hints for it
    /// are dropped (anti-entropy repairs them).
    pub max_hint_bytes_per_replica: u64,
    /// Hints per replay message.
    pub hint_batch: usize,
    /// Replay messages one holder keeps unacknowledged per replica: replay
    /// slows down by itself when the replica acknowledges more slowly.
    pub hint_batches_in_flight: usize,
    /// Most hints one holder replays per second to one replica.
    pub hint_replay_rate: u32,
    /// Most pushed states this node takes in per second from all senders
    /// together (hints replayed or re-homed to it, hints and keys a
    /// leaving node hands it, keys a cleanup pushes): past it, it holds
    /// its acknowledgements back and the senders slow down. So however
    /// many nodes hold hints for a node that comes back, replay cannot
    /// swamp it (see BENCH.md for the measured effect on its latency).
    pub intake_rate: u32,
    /// How old a tombstone must be before it may be removed (once every
    /// home replica is confirmed to hold it). Longer than the hint window,
    /// so no hint of an older value can arrive after it is gone.
    #[serde(with = "humantime_serde")]
    pub tombstone_grace: Duration,
    /// How long the ring must stay unchanged before a node cleans up the
    /// keys of ranges it no longer owns (after a join or leave), so every
    /// node has heard of the change.
    #[serde(with = "humantime_serde")]
    pub cleanup_delay: Duration,
    /// The node's id when its store holds none yet (fresh or wiped disk).
    /// `None` draws one from the node's RNG.
    #[serde(skip)]
    pub node_id: Option<NodeId>,
    /// Bug injection for the simulator: never bump the dot epoch, so a node
    /// that restarts or loses its disk reissues dots. Never set in production.
    #[serde(skip)]
    pub debug_skip_epoch_bump: bool,
    /// Bug injection for the simulator: a replica answers a watch only
    /// when it starts, never on a later change. Never set in production.
    #[serde(skip)]
    pub debug_deaf_watches: bool,
    /// Bug injection for the simulator: reads, listings and watches serve
    /// values whose time to live has passed. Never set in production.
    #[serde(skip)]
    pub debug_ignore_expiry: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            replication: 3,
            vnodes: 256,
            request_timeout: Duration::from_secs(2),
            max_key_bytes: 4 * 1024,
            max_value_bytes: 1024 * 1024,
            default_consistency: super::Consistency::Quorum,
            max_siblings: 64,
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(365 * 86_400),
            max_state_bytes: 3 * 1024 * 1024,
            max_requests_in_flight: 10_000,
            max_watches: 10_000,
            max_watch_timeout: Duration::from_secs(600),
            anti_entropy_interval: Duration::from_secs(10),
            anti_entropy_max_states: 256,
            read_repair: true,
            read_repair_blocking: false,
            hinted_handoff: true,
            hint_window: Duration::from_secs(3 * 3600),
            max_hint_bytes_per_replica: 256 * 1024 * 1024,
            hint_batch: 32,
            hint_batches_in_flight: 4,
            hint_replay_rate: 20_000,
            intake_rate: 22_000,
            tombstone_grace: Duration::from_secs(4 * 3600),
            cleanup_delay: Duration::from_secs(60),
            node_id: None,
            debug_skip_epoch_bump: false,
            debug_deaf_watches: false,
            debug_ignore_expiry: false,
        }
    }
}

/// A setting that cannot be used. Nothing was started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    /// The setting's name, as in the config file.
    pub setting: &'static str,
    /// Why it was refused.
    pub reason: &'static str,
}

impl Config {
    /// Checks every setting; the first bad one is named in the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut checks = self.request_checks().into_iter().chain(self.repair_checks());
        match checks.find(|(ok, _, _)| !ok) {
            Some((_, setting, reason)) => Err(ConfigError { setting, reason }),
            None => Ok(()),
        }
    }

    /// Whether each setting of replication, placement and requests is
    /// sane: (ok, setting, what it must be).
    fn request_checks(&self) -> [(bool, &'static str, &'static str); 11] {
        [
            (
                (1..=MAX_REPLICATION).contains(&self.replication),
                "replication",
                "must be between 1 and 16",
            ),
            (
                (1..=4096).contains(&self.vnodes),
                "vnodes",
                "must be between 1 and 4096",
            ),
            (
                !self.request_timeout.is_zero(),
                "request_timeout",
                "must be greater than zero",
            ),
            (
                (1..=super::store::MAX_STORE_KEY).contains(&self.max_key_bytes),
                "max_key_bytes",
                "must be between 1 and 65000",
            ),
            (
                (1..=64 * 1024 * 1024).contains(&self.max_value_bytes),
                "max_value_bytes",
                "must be between 1 and 64 MiB",
            ),
            (
                (1..=1024).contains(&self.max_siblings),
                "max_siblings",
                "must be between 1 and 1024",
            ),
            (
                self.min_ttl >= Duration::from_millis(1) && self.min_ttl <= self.max_ttl,
                "min_ttl",
                "must be at least 1 ms and at most max_ttl",
            ),
            (
                self.max_ttl <= Duration::from_secs(100 * 365 * 86_400),
                "max_ttl",
                "must be at most 100 years",
            ),
            (
                self.max_state_bytes >= self.max_value_bytes + self.max_key_bytes + 48,
                "max_state_bytes",
                "must leave room for one value of max_value_bytes and its key",
            ),
            (
                self.anti_entropy_interval >= Duration::from_millis(100),
                "anti_entropy_interval",
                "must be at least 100 ms",
            ),
            (
                (1..=65_536).contains(&self.anti_entropy_max_states),
                "anti_entropy_max_states",
                "must be between 1 and 65536",
            ),
        ]
    }

    /// Whether each setting of repair (anti-entropy aside), flow control
    /// and consistency is sane: (ok, setting, what it must be).
    fn repair_checks(&self) -> [(bool, &'static str, &'static str); 10] {
        let default_ok = self.default_consistency != super::Consistency::Default
            && [super::quorum::Access::Read, super::quorum::Access::Write]
                .into_iter()
                .all(|a| self.default_consistency.required(a, self.replication).is_ok());
        [
            (
                self.max_requests_in_flight >= 1,
                "max_requests_in_flight",
                "must be at least 1",
            ),
            (self.max_watches >= 1, "max_watches", "must be at least 1"),
            (
                self.max_watch_timeout >= Duration::from_secs(1)
                    && self.max_watch_timeout <= Duration::from_secs(86_400),
                "max_watch_timeout",
                "must be between 1 s and 24 h",
            ),
            (
                self.hint_window >= Duration::from_secs(1),
                "hint_window",
                "must be at least 1 s",
            ),
            (
                (1..=65_536).contains(&self.hint_batch),
                "hint_batch",
                "must be between 1 and 65536",
            ),
            (
                (1..=1024).contains(&self.hint_batches_in_flight),
                "hint_batches_in_flight",
                "must be between 1 and 1024",
            ),
            (
                self.hint_replay_rate >= 1,
                "hint_replay_rate",
                "must be at least 1 hint per second",
            ),
            (
                self.intake_rate >= 1,
                "intake_rate",
                "must be at least 1 state per second",
            ),
            (
                self.tombstone_grace > self.hint_window,
                "tombstone_grace",
                "must be longer than hint_window (or a late hint could bring a deleted value back)",
            ),
            (
                default_ok,
                "default_consistency",
                "must be one, two, quorum, all or R,W, each at most replication",
            ),
        ]
    }
}

/// A consistency level in a config file: its text form (`quorum`, `2,1`).
mod consistency_text {
    use super::super::Consistency;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(level: &Consistency, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(level)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Consistency, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn zero_replication_is_refused_by_name() {
        let config = Config {
            replication: 0,
            ..Config::default()
        };
        assert_eq!(config.validate().unwrap_err().setting, "replication");
    }
}
