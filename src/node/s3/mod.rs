//! The S3 gateway (`--s3 ADDR`): an S3-compatible object API on every
//! node, for aws, boto3, rclone, s3cmd and the minio clients. The `s3s`
//! crate does the routing, the XML and the signatures (SigV4, in headers
//! and presigned); this module keeps buckets, objects and their data in
//! the cluster, handing every read and write to this node's core
//! in-process.
//!
//! - Access keys and buckets are system records (`net::s3`), read at
//!   QUORUM: every node checks every request's signature with the key's
//!   secret, and the key's rights on the bucket (read, write, owner).
//!   Anonymous requests are refused; secrets are never logged.
//! - An object is one record (`store::ObjectRecord`) under
//!   `\0shoal/s3/objects/<bucket>/<key>`: metadata and the list of its
//!   data blocks (at most 1 MiB each, ordinary replicated keys), or the
//!   data itself when small. A PUT writes the blocks, then the record,
//!   superseding the versions its QUORUM read saw; concurrent PUTs are
//!   settled by the later timestamp, then the greater version id, the same
//!   way on every node.
//! - Blocks no object refers to any more are swept after a grace period
//!   (`data`).

mod acl;
mod buckets;
mod data;
mod host;
mod listing;
mod multipart;
mod service;
mod store;

use super::Event;
use super::http::Door;
use crate::net::s3::{BucketRecord, KeyRecord, Rights, bucket_record, key_record};
use crate::net::tls::Credentials;
use crate::proto::Consistency;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

pub use data::Layout;

/// How long a key or bucket record read is trusted before it is read
/// again (so that a revoked key or right stops working within this).
const RECORD_CACHE: Duration = Duration::from_secs(2);
/// Most records remembered.
const RECORD_CACHE_ENTRIES: usize = 10_000;

/// How a node serves S3.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Options {
    /// Where to listen (TCP).
    pub listen: SocketAddr,
    /// Plain HTTP instead of HTTPS: only on a loopback address.
    pub plain: bool,
    /// The region clients sign for.
    pub region: String,
    /// A root domain for virtual-host-style buckets
    /// (`<bucket>.<domain>`); path style always works.
    pub domain: Option<String>,
    /// How long blocks no object refers to are kept before they are
    /// deleted; an upload must finish within half of it.
    pub grace: Duration,
    /// How often this node sweeps garbage that has fallen due.
    pub sweep_every: Duration,
}

impl S3Options {
    /// HTTPS on `listen`, region `us-east-1`, path style, a grace of an
    /// hour swept every minute.
    pub fn new(listen: SocketAddr) -> S3Options {
        S3Options {
            listen,
            plain: false,
            region: "us-east-1".to_string(),
            domain: None,
            grace: Duration::from_secs(3600),
            sweep_every: Duration::from_secs(60),
        }
    }
}

/// The gateway: the S3 operations, and the key and bucket records they
/// check.
#[derive(Clone)]
pub(super) struct Gateway {
    cluster: store::Cluster,
    layout: Layout,
    region: String,
    keys: Arc<RecordCache<KeyRecord>>,
    buckets: Arc<RecordCache<BucketRecord>>,
}

/// Records read lately, by name.
struct RecordCache<T> {
    entries: Mutex<HashMap<String, (Instant, T)>>,
}

impl<T: Clone> RecordCache<T> {
    fn new() -> RecordCache<T> {
        RecordCache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, name: &str) -> Option<T> {
        let entries = self.entries.lock().expect("not poisoned");
        entries
            .get(name)
            .filter(|(at, _)| at.elapsed() < RECORD_CACHE)
            .map(|(_, record)| record.clone())
    }

    fn put(&self, name: &str, record: T) {
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= RECORD_CACHE_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < RECORD_CACHE);
        }
        if entries.len() < RECORD_CACHE_ENTRIES {
            entries.insert(name.to_string(), (Instant::now(), record));
        }
    }

    fn forget(&self, name: &str) {
        self.entries.lock().expect("not poisoned").remove(name);
    }
}

impl Gateway {
    /// Access key `id`'s record, if there is one (absent ones are not
    /// remembered, so that a new key works at once).
    async fn key(&self, id: &str) -> S3Result<Option<KeyRecord>> {
        if let Some(record) = self.keys.get(id) {
            return Ok(Some(record));
        }
        let (values, _) = self.cluster.get(key_record(id), Consistency::Quorum).await?;
        let record = KeyRecord::from_values(&values);
        if let Some(record) = &record {
            self.keys.put(id, record.clone());
        }
        Ok(record)
    }

    /// Bucket `name`'s record, if there is one.
    async fn bucket(&self, name: &str) -> S3Result<Option<BucketRecord>> {
        if let Some(record) = self.buckets.get(name) {
            return Ok(Some(record));
        }
        let (values, _) = self.cluster.get(bucket_record(name), Consistency::Quorum).await?;
        let record = BucketRecord::from_values(&values);
        if let Some(record) = &record {
            self.buckets.put(name, record.clone());
        }
        Ok(record)
    }

    /// Refuses unless key `id` has `needed` on bucket `name` (which must
    /// exist).
    async fn authorize(&self, id: &str, name: &str, needed: Needed) -> S3Result<()> {
        let Some(bucket) = self.bucket(name).await? else {
            return Err(s3_error!(NoSuchBucket, "no such bucket"));
        };
        let rights = bucket.rights.get(id).copied().unwrap_or_default();
        if needed.allowed(rights) {
            Ok(())
        } else {
            Err(s3_error!(
                AccessDenied,
                "this access key may not {} this bucket",
                needed.verb()
            ))
        }
    }
}

/// The right an operation needs on its bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needed {
    Read,
    Write,
    Owner,
}

impl Needed {
    fn of(operation: &str) -> Needed {
        match operation {
            "GetObject"
            | "HeadObject"
            | "ListObjects"
            | "ListObjectsV2"
            | "ListObjectVersions"
            | "HeadBucket"
            | "GetBucketLocation"
            | "ListParts"
            | "ListMultipartUploads" => Needed::Read,
            "PutObject"
            | "DeleteObject"
            | "DeleteObjects"
            | "CopyObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload"
            | "AbortMultipartUpload" => Needed::Write,
            _ => Needed::Owner,
        }
    }

    fn allowed(self, rights: Rights) -> bool {
        match self {
            Needed::Read => rights.read || rights.owner,
            Needed::Write => rights.write || rights.owner,
            Needed::Owner => rights.owner,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Needed::Read => "read",
            Needed::Write => "write to",
            Needed::Owner => "administer",
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for Gateway {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.key(access_key).await? {
            Some(record) => Ok(SecretKey::from(record.secret)),
            None => Err(s3_error!(InvalidAccessKeyId, "no such access key")),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for Gateway {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(
                AccessDenied,
                "anonymous requests are refused: sign with an access key"
            ));
        };
        let operation = cx.s3_op().name();
        let bucket = match cx.s3_path() {
            S3Path::Root => return Ok(()),
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => bucket,
        };
        if operation == "CreateBucket" {
            // Checked by the operation: the key's own permission.
            return Ok(());
        }
        self.authorize(&credentials.access_key, bucket, Needed::of(operation))
            .await
    }
}

/// Everything the gateway needs from the node.
pub(super) struct Parts {
    pub options: S3Options,
    pub credentials: Credentials,
    pub events: mpsc::Sender<Event>,
    pub max_connections: usize,
    /// The largest value the cluster takes: blocks are no larger.
    pub max_value_bytes: usize,
}

/// Binds the S3 port and serves it and the sweep until `shutdown` flips;
/// the port's address.
pub(super) async fn start(
    parts: Parts,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, super::NodeError> {
    let options = parts.options;
    let bind_error = |source| super::NodeError::Bind {
        addr: options.listen,
        source,
    };
    let listener = super::http::bind_tcp(options.listen, options.plain)
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let tls = if options.plain {
        None
    } else {
        Some(super::http::tls_config(&parts.credentials)?)
    };
    let gateway = Gateway {
        cluster: store::Cluster::new(parts.events),
        layout: Layout {
            block_size: (1 << 20).min(parts.max_value_bytes),
            inline_max: 16 * 1024,
            grace: options.grace,
        },
        region: options.region.clone(),
        keys: Arc::new(RecordCache::new()),
        buckets: Arc::new(RecordCache::new()),
    };
    let service = build_service(gateway.clone(), &options).map_err(|reason| super::NodeError::Setting {
        name: "s3_domain",
        reason,
    })?;
    let door = Door {
        name: "S3",
        listener,
        tls,
        max_connections: parts.max_connections,
    };
    tokio::spawn(door.serve(shutdown.clone(), move |_certificate| {
        hyper_util::service::TowerToHyperService::new(service.clone())
    }));
    tokio::spawn(sweep_loop(gateway.cluster.clone(), options.sweep_every, shutdown));
    let scheme = if options.plain { "http" } else { "https" };
    tracing::info!(url = %format!("{scheme}://{addr}/"), region = %options.region, "S3 gateway served");
    Ok(addr)
}

fn build_service(gateway: Gateway, options: &S3Options) -> Result<s3s::service::S3Service, String> {
    let mut builder = s3s::service::S3ServiceBuilder::new(gateway.clone());
    builder.set_auth(gateway.clone());
    builder.set_access(gateway);
    if let Some(domain) = &options.domain {
        builder.set_host(host::RootDomain::new(domain)?);
    }
    Ok(builder.build())
}

/// Sweeps due garbage every `every` (with jitter, so that the nodes do not
/// all sweep at once).
async fn sweep_loop(cluster: store::Cluster, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        let jitter = every.mul_f64(rand::random_range(0.5..1.5));
        tokio::select! {
            _ = tokio::time::sleep(jitter) => {}
            _ = shutdown.changed() => return,
        }
        match data::sweep(&cluster, 100).await {
            Ok(swept) if swept.records > 0 => {
                tracing::debug!(records = swept.records, blocks = swept.blocks, "S3 garbage swept");
                metrics::counter!("shoal_s3_blocks_swept_total").increment(swept.blocks as u64);
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "S3 garbage sweep failed; trying again later"),
        }
    }
}
