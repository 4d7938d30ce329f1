//! A node's settings: built-in defaults, then a TOML config file, then
//! `SHOAL_*` environment variables, then command-line flags, each layer
//! overriding the one before.
//!
//! The file is flat: every setting is a top-level key, named as
//! `shoal node start --print-config` prints it. The process settings
//! (data directory, addresses, limits of the network layer, logs, metrics)
//! and the core's settings ([`Config`]) share one namespace. Durations are
//! written like `2s`, `500ms` or `3h`. The variable for a setting is its
//! name in upper case after `SHOAL_` (`SHOAL_HINT_WINDOW=1h`;
//! `SHOAL_SEEDS` takes a comma-separated list). An unknown key in the file
//! or a value of the wrong type is refused, naming the setting, and so is
//! a value [`Settings::validate`] finds unsafe.

use super::{DiskFailurePolicy, Durability, NodeOptions, Storage};
use crate::net::frame::DEFAULT_MAX_FRAME;
use crate::proto::{Config, NodeId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Room in a frame for a request's key, context and encoding, beyond its
/// value.
const FRAME_OVERHEAD: usize = 64 * 1024;

/// How the node writes its logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where a node keeps its data, as a setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// On disk, in the data directory.
    #[default]
    Disk,
    /// In memory only (a cache node), bounded by `max_memory_bytes`.
    Memory,
}

/// The settings of the node process, around its core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessSettings {
    /// The data directory (created if missing). Required.
    pub data: Option<PathBuf>,
    /// The UDP address to listen on, for peers and clients.
    pub listen: SocketAddr,
    /// The cluster directory (from `shoal cluster init`). Required.
    pub cluster_dir: Option<PathBuf>,
    /// Nodes of the cluster to join through; none starts a new cluster.
    pub seeds: Vec<SocketAddr>,
    /// When writes are acknowledged: `buffer` or `fsync`.
    pub durability: Durability,
    /// Where the data lives: `disk`, or `memory` for a cache node (the
    /// data directory then keeps only the node's identity; a restarted
    /// node comes back empty and is refilled from its replicas).
    pub storage: StorageKind,
    /// With `storage = "memory"`: most bytes of keys, values and hints
    /// held; past it, writes that would grow the store are refused with
    /// `out_of_memory` (deletes are still taken).
    pub max_memory_bytes: u64,
    /// When storage fails (a full or failing disk): `read_only` (serve
    /// reads, refuse writes, recover by itself once the disk has room) or
    /// `stop` (exit non-zero for a supervisor to act on).
    pub disk_failure_policy: DiskFailurePolicy,
    /// The id to start an empty data directory under (16 hex digits).
    pub node_id: Option<String>,
    /// Where to serve Prometheus metrics over HTTP; none: not served.
    pub metrics: Option<SocketAddr>,
    /// Where to serve the HTTP API (TCP); none: not served.
    pub http: Option<SocketAddr>,
    /// Serve the HTTP API as plain HTTP instead of HTTPS: only on a
    /// loopback address, and only bearer tokens authenticate.
    pub http_plain: bool,
    /// Where to serve the S3 gateway (TCP); none: not served.
    pub s3: Option<SocketAddr>,
    /// Serve the S3 gateway as plain HTTP instead of HTTPS: only on a
    /// loopback address.
    pub s3_plain: bool,
    /// The region S3 clients sign requests for.
    pub s3_region: String,
    /// A root domain for virtual-host-style bucket addresses
    /// (`<bucket>.<domain>`); path style always works.
    pub s3_domain: Option<String>,
    /// How long object data no object refers to any more is kept before it
    /// is deleted; an upload must finish within half of it.
    #[serde(with = "humantime_serde")]
    pub s3_grace: std::time::Duration,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// Most connections (clients and peers) open at once; more are refused.
    pub max_connections: usize,
    /// Most requests in flight on one client connection; more wait for one
    /// to finish (QUIC stream credit), they are never queued without bound.
    pub max_requests_per_connection: u32,
    /// Largest message accepted, in bytes.
    pub max_frame_bytes: usize,
}

impl Default for ProcessSettings {
    fn default() -> Self {
        ProcessSettings {
            data: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 7101)),
            cluster_dir: None,
            seeds: Vec::new(),
            durability: Durability::default(),
            storage: StorageKind::default(),
            max_memory_bytes: 1 << 30,
            disk_failure_policy: DiskFailurePolicy::default(),
            node_id: None,
            metrics: None,
            http: None,
            http_plain: false,
            s3: None,
            s3_plain: false,
            s3_region: "us-east-1".to_string(),
            s3_domain: None,
            s3_grace: std::time::Duration::from_secs(3600),
            log_format: LogFormat::default(),
            max_connections: 1024,
            max_requests_per_connection: 1024,
            max_frame_bytes: DEFAULT_MAX_FRAME,
        }
    }
}

/// Every setting of a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// The process's settings.
    pub process: ProcessSettings,
    /// The core's settings.
    pub core: Config,
}

/// Settings that cannot be used. Nothing was started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The config file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not TOML.
    #[error("config file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key no setting has.
    #[error("unknown setting `{setting}` (from {origin}); `shoal node start --print-config` lists them all")]
    Unknown {
        /// The key.
        setting: String,
        /// Where it came from.
        origin: String,
    },
    /// A value of the wrong type or form, or out of range.
    #[error("invalid setting `{setting}`: {reason}")]
    Invalid {
        /// The setting.
        setting: String,
        /// Why.
        reason: String,
    },
}

fn invalid(setting: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        setting: setting.to_string(),
        reason: reason.into(),
    }
}

/// The names of every setting, with the table each belongs to.
fn known() -> (toml::Table, toml::Table) {
    let process = toml::Table::try_from(ProcessSettings::default()).expect("defaults encode");
    let core = toml::Table::try_from(Config::default()).expect("defaults encode");
    (process, core)
}

/// Whether `name` is a process setting (an optional one has no default
/// value, so it is listed here).
fn is_process_setting(name: &str, process: &toml::Table) -> bool {
    process.contains_key(name)
        || matches!(
            name,
            "data" | "cluster_dir" | "node_id" | "metrics" | "http" | "s3" | "s3_domain"
        )
}

/// A value given as text (an environment variable or a `--set`): TOML if
/// it parses as a value (`3`, `true`, `[..]`, `"..."`), otherwise the text
/// itself.
fn text_value(name: &str, text: &str, known: &toml::Table) -> toml::Value {
    let textual = matches!(
        name,
        "data" | "cluster_dir" | "node_id" | "metrics" | "http" | "s3" | "s3_domain"
    ) || matches!(known.get(name), Some(toml::Value::String(_)));
    if textual {
        return toml::Value::String(text.to_string());
    }
    if name == "seeds" {
        let seeds = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| toml::Value::String(s.to_string()));
        return toml::Value::Array(seeds.collect());
    }
    match toml::from_str::<toml::Table>(&format!("v = {text}")) {
        Ok(mut table) => table.remove("v").expect("parsed"),
        Err(_) => toml::Value::String(text.to_string()),
    }
}

impl Settings {
    /// Layers the settings: defaults, then `file`, then the `SHOAL_*`
    /// variables among `env` (unknown ones are ignored: other tools use
    /// the prefix too), then `overrides` (setting, value as text), later
    /// ones winning. Validated.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(String, String)],
    ) -> Result<Settings, SettingsError> {
        let (process_known, core_known) = known();
        let mut all_known = process_known.clone();
        all_known.extend(core_known.clone());
        let is_known = |name: &str| is_process_setting(name, &process_known) || core_known.contains_key(name);
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            table = toml::from_str(&text).map_err(|e| SettingsError::Syntax {
                path: path.to_path_buf(),
                message: e.message().to_string(),
            })?;
            if let Some(name) = table.keys().find(|k| !is_known(k)) {
                return Err(SettingsError::Unknown {
                    setting: name.clone(),
                    origin: path.display().to_string(),
                });
            }
        }
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("SHOAL_")?.to_ascii_lowercase(), v)))
            .filter(|(k, _)| is_known(k))
            .collect();
        env.sort();
        for (name, text) in env {
            let value = text_value(&name, &text, &all_known);
            table.insert(name, value);
        }
        for (name, text) in overrides {
            if !is_known(name) {
                return Err(SettingsError::Unknown {
                    setting: name.clone(),
                    origin: "the command line".to_string(),
                });
            }
            table.insert(name.clone(), text_value(name, text, &all_known));
        }
        let (process, core): (toml::Table, toml::Table) = table
            .into_iter()
            .partition(|(name, _)| is_process_setting(name, &process_known));
        let process = decode::<ProcessSettings>(process)?;
        let core = decode::<Config>(core)?;
        let settings = Settings { process, core };
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses the settings if a required one is missing (`data`,
    /// `cluster_dir`); `--print-config` works without them.
    pub fn require_paths(&self) -> Result<(), SettingsError> {
        if self.process.data.is_none() {
            return Err(invalid("data", "is required: the data directory (--data)"));
        }
        if self.process.cluster_dir.is_none() {
            return Err(invalid(
                "cluster_dir",
                "is required: the cluster directory (--cluster-dir, SHOAL_CLUSTER_DIR)",
            ));
        }
        Ok(())
    }

    /// Refuses settings that would make the node unsafe or unable to work,
    /// naming the setting.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.core.validate().map_err(|e| invalid(e.setting, e.reason))?;
        let p = &self.process;
        if let Some(id) = &p.node_id {
            id.parse::<NodeId>().map_err(|_| {
                invalid(
                    "node_id",
                    format!("`{id}` is not a node id: expected up to 16 hex digits"),
                )
            })?;
        }
        if !(1..=1_000_000).contains(&p.max_connections) {
            return Err(invalid("max_connections", "must be between 1 and 1000000"));
        }
        if !(1..=100_000).contains(&p.max_requests_per_connection) {
            return Err(invalid(
                "max_requests_per_connection",
                "must be between 1 and 100000",
            ));
        }
        if !(64 * 1024..=256 * 1024 * 1024).contains(&p.max_frame_bytes) {
            return Err(invalid("max_frame_bytes", "must be between 64 KiB and 256 MiB"));
        }
        let largest_put = self.core.max_value_bytes + self.core.max_key_bytes + FRAME_OVERHEAD;
        if largest_put > p.max_frame_bytes {
            return Err(invalid(
                "max_value_bytes",
                format!(
                    "a put of the largest value and key would not fit in a message: \
                     max_value_bytes + max_key_bytes + 64 KiB must be at most max_frame_bytes ({})",
                    p.max_frame_bytes
                ),
            ));
        }
        if self.core.max_state_bytes + FRAME_OVERHEAD > p.max_frame_bytes {
            return Err(invalid(
                "max_state_bytes",
                format!(
                    "a key's largest state would not fit in a message: \
                     max_state_bytes + 64 KiB must be at most max_frame_bytes ({})",
                    p.max_frame_bytes
                ),
            ));
        }
        if !(1 << 20..=1 << 50).contains(&p.max_memory_bytes) {
            return Err(invalid("max_memory_bytes", "must be between 1 MiB and 1 PiB"));
        }
        if p.metrics.is_some_and(|m| m == p.listen) {
            return Err(invalid("metrics", "must differ from listen"));
        }
        if p.http.is_some_and(|h| Some(h) == p.metrics) {
            return Err(invalid("http", "must differ from metrics"));
        }
        if p.s3.is_some_and(|s| Some(s) == p.metrics || Some(s) == p.http) {
            return Err(invalid("s3", "must differ from metrics and http"));
        }
        if p.s3_plain && p.s3.is_some_and(|s| !s.ip().is_loopback()) {
            return Err(invalid(
                "s3_plain",
                "plain HTTP is only served on a loopback address; serve HTTPS elsewhere",
            ));
        }
        if p.s3_grace < std::time::Duration::from_secs(60) {
            return Err(invalid("s3_grace", "at least 1m"));
        }
        if p.http_plain && p.http.is_some_and(|h| !h.ip().is_loopback()) {
            return Err(invalid(
                "http_plain",
                "plain HTTP is only served on a loopback address; serve HTTPS elsewhere",
            ));
        }
        Ok(())
    }

    /// The effective settings as a config file.
    pub fn to_toml(&self) -> String {
        let mut table = toml::Table::try_from(&self.process).expect("settings encode");
        table.extend(toml::Table::try_from(&self.core).expect("settings encode"));
        toml::to_string(&table).expect("settings encode")
    }

    /// What [`super::start`] needs. Call on validated settings with their
    /// paths ([`Settings::require_paths`]).
    pub fn node_options(&self) -> NodeOptions {
        let p = &self.process;
        let mut config = self.core.clone();
        config.node_id = p.node_id.as_deref().and_then(|id| id.parse().ok());
        let mut options = NodeOptions::new(
            p.data.clone().unwrap_or_default(),
            p.listen,
            p.cluster_dir.clone().unwrap_or_default(),
        );
        options.seeds = p.seeds.clone();
        options.durability = p.durability;
        options.storage = match p.storage {
            StorageKind::Disk => Storage::Disk,
            StorageKind::Memory => Storage::Memory {
                max_bytes: p.max_memory_bytes,
            },
        };
        options.disk_failure_policy = p.disk_failure_policy;
        options.config = config;
        options.limits = super::Limits {
            max_connections: p.max_connections,
            max_requests_per_connection: p.max_requests_per_connection,
            max_frame_bytes: p.max_frame_bytes,
        };
        options.http = p.http.map(|listen| super::HttpOptions {
            listen,
            plain: p.http_plain,
        });
        options.s3 = p.s3.map(|listen| {
            let mut s3 = super::S3Options::new(listen);
            s3.plain = p.s3_plain;
            s3.region = p.s3_region.clone();
            s3.domain = p.s3_domain.clone();
            s3.grace = p.s3_grace;
            s3
        });
        options
    }
}

/// Decodes a table of settings; an error names the setting at fault.
fn decode<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, SettingsError> {
    T::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        // The setting at fault is the one that fails alone (the others
        // take their defaults).
        let setting = table
            .iter()
            .find(|(name, value)| {
                let alone = toml::Table::from_iter([((*name).clone(), (*value).clone())]);
                T::deserialize(toml::Value::Table(alone)).is_err()
            })
            .map_or_else(|| "?".to_string(), |(name, _)| name.clone());
        invalid(&setting, e.message().trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn required() -> Vec<(String, String)> {
        vec![
            ("SHOAL_DATA".into(), "/tmp/shoal-test-data".into()),
            ("SHOAL_CLUSTER_DIR".into(), "/tmp/shoal-test-cluster".into()),
        ]
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn file_then_environment_then_flags_each_override_the_one_before() {
        let f = file(
            "replication = 5\nhint_window = \"1h\"\ntombstone_grace = \"2h\"\nlisten = \"127.0.0.1:7200\"\n\
             default_consistency = \"2,1\"\n",
        );
        let mut env = required();
        env.push(("SHOAL_HINT_WINDOW".into(), "30m".into()));
        env.push(("SHOAL_SEEDS".into(), "127.0.0.1:7301, 127.0.0.1:7302".into()));
        env.push(("SHOAL_SOMETHING_ELSE".into(), "ignored".into()));
        let flags = vec![("replication".to_string(), "4".to_string())];
        let s = Settings::load(Some(f.path()), env, &flags).unwrap();
        assert_eq!(s.core.replication, 4, "the flag beats the file");
        assert_eq!(
            s.core.hint_window,
            Duration::from_secs(1800),
            "the variable beats the file"
        );
        assert_eq!(
            s.core.tombstone_grace,
            Duration::from_secs(7200),
            "the file beats the default"
        );
        assert_eq!(s.core.vnodes, Config::default().vnodes, "the default stays");
        assert_eq!(s.process.listen, "127.0.0.1:7200".parse().unwrap());
        assert_eq!(s.process.seeds.len(), 2);
        assert_eq!(
            s.core.default_consistency,
            crate::proto::Consistency::Custom { r: 2, w: 1 }
        );
    }

    #[test]
    fn printed_settings_load_back_the_same() {
        let s = Settings::load(None, required(), &[("max_siblings".into(), "8".into())]).unwrap();
        let f = file(&s.to_toml());
        let back = Settings::load(Some(f.path()), Vec::new(), &[]).unwrap();
        assert_eq!(back, s);
        assert!(s.to_toml().contains("hint_window = \"3h\""), "{}", s.to_toml());
        assert!(
            s.to_toml().contains("disk_failure_policy = \"read_only\""),
            "{}",
            s.to_toml()
        );
    }

    #[test]
    fn the_disk_failure_policy_is_read_only_unless_set_to_stop() {
        let s = Settings::load(None, required(), &[]).unwrap();
        assert_eq!(s.node_options().disk_failure_policy, DiskFailurePolicy::ReadOnly);
        let flags = [("disk_failure_policy".to_string(), "stop".to_string())];
        let s = Settings::load(None, required(), &flags).unwrap();
        assert_eq!(s.node_options().disk_failure_policy, DiskFailurePolicy::Stop);
        assert!(refused("", &[("disk_failure_policy", "panic")]).contains("`disk_failure_policy`"));
    }

    #[test]
    fn storage_is_on_disk_unless_set_to_memory_with_a_sane_limit() {
        let s = Settings::load(None, required(), &[]).unwrap();
        assert_eq!(s.node_options().storage, Storage::Disk);
        let f = file("storage = \"memory\"\nmax_memory_bytes = 268435456\n");
        let s = Settings::load(Some(f.path()), required(), &[]).unwrap();
        assert_eq!(s.node_options().storage, Storage::Memory { max_bytes: 256 << 20 });
        assert!(refused("", &[("storage", "tape")]).contains("`storage`"));
        assert!(
            refused("storage = \"memory\"\nmax_memory_bytes = 1000\n", &[]).contains("`max_memory_bytes`")
        );
    }

    fn refused(file_text: &str, flags: &[(&str, &str)]) -> String {
        let f = file(file_text);
        let flags: Vec<(String, String)> = flags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load(Some(f.path()), required(), &flags)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_settings_are_refused_naming_the_setting() {
        assert!(refused("replicaton = 3\n", &[]).contains("unknown setting `replicaton`"));
        assert!(refused("", &[("no_such", "1")]).contains("unknown setting `no_such`"));
        let wrong_type = refused("replication = \"three\"\n", &[]);
        assert!(wrong_type.contains("`replication`"), "{wrong_type}");
        let bad_duration = refused("hint_window = \"soon\"\n", &[]);
        assert!(bad_duration.contains("`hint_window`"), "{bad_duration}");
        assert!(refused("replication = 0\n", &[]).contains("invalid setting `replication`"));
        assert!(refused("tombstone_grace = \"1h\"\n", &[]).contains("`tombstone_grace`"));
        let too_big = [("max_value_bytes", "8388608"), ("max_state_bytes", "9000000")];
        assert!(refused("", &too_big).contains("`max_value_bytes`"));
        assert!(refused("", &[("max_state_bytes", "4194304")]).contains("`max_state_bytes`"));
        assert!(refused("", &[("node_id", "xyz")]).contains("`node_id`"));
        assert!(refused("", &[("durability", "sometimes")]).contains("`durability`"));
        assert!(refused("", &[("default_consistency", "most")]).contains("`default_consistency`"));
        assert!(refused("", &[("default_consistency", "default")]).contains("`default_consistency`"));
        assert!(refused("", &[("default_consistency", "5,1")]).contains("`default_consistency`"));
        assert!(refused("this is not toml", &[]).contains("config file"));
        let missing = Settings::load(None, Vec::new(), &[])
            .unwrap()
            .require_paths()
            .unwrap_err()
            .to_string();
        assert!(missing.contains("`data`"), "{missing}");
    }
}
