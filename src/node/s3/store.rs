//! The gateway's view of the cluster: reads, writes, deletes and listings
//! handed to this node's core in-process, with their failures as S3
//! errors; and the records it keeps there (objects, blocks, garbage).

use super::super::Event;
use crate::proto::message::{ListRequest, ListedKey};
use crate::proto::{
    ClientRequest, ClientResponse, Consistency, Context, Fanout, Request, RequestError, Response, Value,
};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// Where data blocks live: this, the version id, `/`, the block index as 8
/// hex digits.
pub const BLOCK_PREFIX: &[u8] = b"\0shoal/s3/blocks/";
/// Where garbage records live: this, the time they fall due (ms, 16 hex
/// digits), `/`, the version id.
pub const GARBAGE_PREFIX: &[u8] = b"\0shoal/s3/garbage/";

/// The deadline of the gateway's requests: longer than the node's default
/// for reads and writes of small values, since a block is up to 1 MiB and
/// an upload keeps several in flight.
const TIMEOUT_MS: Option<u32> = Some(10_000);

/// The cluster, as the gateway uses it.
#[derive(Clone)]
pub struct Cluster {
    events: mpsc::Sender<Event>,
}

/// A request failed in the cluster: what an S3 client is told.
pub fn cluster_error(error: RequestError) -> S3Error {
    let code = match &error {
        RequestError::Busy { .. } => S3ErrorCode::SlowDown,
        RequestError::ValueTooLarge { .. } | RequestError::StateTooLarge { .. } => {
            S3ErrorCode::EntityTooLarge
        }
        RequestError::BadKeySize { .. } => S3ErrorCode::KeyTooLongError,
        RequestError::QuorumNotMet { .. }
        | RequestError::NotReady { .. }
        | RequestError::StorageFailed { .. }
        | RequestError::OutOfMemory { .. }
        | RequestError::NoReplicas
        | RequestError::NotReplica { .. }
        | RequestError::ForwardFailed { .. } => S3ErrorCode::ServiceUnavailable,
        _ => S3ErrorCode::InternalError,
    };
    S3Error::with_message(code, error.to_string())
}

impl Cluster {
    pub fn new(events: mpsc::Sender<Event>) -> Cluster {
        Cluster { events }
    }

    /// Hands `request` to the core; a failure as an S3 error.
    async fn call(&self, request: Request) -> S3Result<ClientResponse> {
        let answer = super::super::submit(&self.events, request).await;
        match answer.map_err(|super::super::Stopped| s3_error!(ServiceUnavailable, "the node is stopping"))? {
            Response::Data(ClientResponse::Failed(error)) => Err(cluster_error(error)),
            Response::Data(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    async fn ask(&self, request: ClientRequest) -> S3Result<ClientResponse> {
        self.call(Request::Data(request)).await
    }

    /// Every sibling of `key` and the context to supersede them.
    pub async fn get(&self, key: Vec<u8>, consistency: Consistency) -> S3Result<(Vec<Value>, Context)> {
        self.get_from(key, consistency, Fanout::All, TIMEOUT_MS).await
    }

    /// [`Cluster::get`] asking `fanout` replicas, with a deadline.
    pub async fn get_from(
        &self,
        key: Vec<u8>,
        consistency: Consistency,
        fanout: Fanout,
        timeout_ms: Option<u32>,
    ) -> S3Result<(Vec<Value>, Context)> {
        let request = ClientRequest::Get {
            key,
            consistency,
            timeout_ms,
            fanout,
        };
        match self.ask(request).await? {
            ClientResponse::Found { values, context } => Ok((values, context)),
            other => Err(unexpected(other)),
        }
    }

    /// Writes `value` at QUORUM, superseding what `context` saw.
    pub async fn put(&self, key: Vec<u8>, value: Vec<u8>, context: Context) -> S3Result<()> {
        let request = ClientRequest::Put {
            key,
            value,
            context,
            consistency: Consistency::Quorum,
            timeout_ms: TIMEOUT_MS,
            sloppy_quorum: true,
            ttl_ms: None,
        };
        self.ask(request).await.map(drop)
    }

    /// Deletes at QUORUM what `context` saw.
    pub async fn delete(&self, key: Vec<u8>, context: Context) -> S3Result<()> {
        let request = ClientRequest::Delete {
            key,
            context,
            consistency: Consistency::Quorum,
            timeout_ms: TIMEOUT_MS,
            sloppy_quorum: true,
        };
        self.ask(request).await.map(drop)
    }

    /// One page of live keys in `[start, end)` at QUORUM, with values if
    /// asked; and the key to list on after, if there may be more.
    pub async fn list(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: u32,
        values: bool,
    ) -> S3Result<(Vec<ListedKey>, Option<Vec<u8>>)> {
        let request = Request::List(ListRequest {
            start,
            end,
            limit,
            values,
            consistency: Consistency::Quorum,
            timeout_ms: TIMEOUT_MS,
        });
        match self.call(request).await? {
            ClientResponse::Listed { keys, next } => Ok((keys, next)),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(answer: impl std::fmt::Debug) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InternalError,
        format!("unexpected answer {answer:?}"),
    )
}

/// A run of blocks written by one upload (a PUT, a copy, or one part of a
/// multipart upload): `blocks` keys under `BLOCK_PREFIX/<id>/`, each of
/// the record's block size but the last, `size` bytes in all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub id: String,
    pub blocks: u32,
    pub size: u64,
}

/// One object: its metadata and where its data is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// This version's id (random); of two concurrent writes the later
    /// `modified_ms` wins, then the greater `version`.
    pub version: String,
    /// When it was written, ms since the Unix epoch (Last-Modified).
    pub modified_ms: u64,
    pub size: u64,
    /// The ETag's value, without quotes.
    pub etag: String,
    pub content_type: Option<String>,
    /// Cache-Control, Content-Disposition, Content-Encoding,
    /// Content-Language and Expires, as given.
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*`, without the prefix.
    pub metadata: BTreeMap<String, String>,
    /// The data itself, for small objects (no blocks then).
    #[serde(with = "serde_bytes")]
    pub inline: Vec<u8>,
    /// Bytes per block.
    pub block_size: u32,
    /// The blocks, in order.
    pub extents: Vec<Extent>,
    /// Parts of a multipart upload (0 for a simple PUT); each is one
    /// extent, in order.
    pub parts: u32,
    /// The access key that wrote it.
    #[serde(default)]
    pub owner: String,
}

impl ObjectRecord {
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("strings, integers and maps always encode")
    }

    /// Every record among a read's siblings, each decodable one.
    pub fn all(values: &[Value]) -> Vec<ObjectRecord> {
        values
            .iter()
            .filter_map(|v| rmp_serde::from_slice::<ObjectRecord>(&v.value).ok())
            .collect()
    }

    /// The object a read's siblings show: the last writer's.
    pub fn winner(values: &[Value]) -> Option<ObjectRecord> {
        ObjectRecord::all(values)
            .into_iter()
            .max_by(|a, b| (a.modified_ms, &a.version).cmp(&(b.modified_ms, &b.version)))
    }

    /// Whether the data of upload `id` is part of this object.
    pub fn refers_to(&self, id: &str) -> bool {
        self.extents.iter().any(|extent| extent.id == id)
    }
}

/// A run of blocks that may be garbage once it falls due: the upload that
/// wrote it, and the object it was for (or the multipart upload and part).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarbageRecord {
    pub bucket: String,
    pub key: String,
    /// The extent's id.
    pub id: String,
    /// The multipart upload it was a part of, if any.
    pub upload: Option<String>,
    /// A record to delete along with the blocks (a completed upload's).
    #[serde(default)]
    pub record: Option<Vec<u8>>,
}

impl GarbageRecord {
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("strings always encode")
    }
}

/// The key of block `index` of extent `id`.
pub fn block_key(id: &str, index: u32) -> Vec<u8> {
    let mut key = block_prefix(id);
    key.extend_from_slice(format!("{index:08x}").as_bytes());
    key
}

/// The prefix of extent `id`'s blocks.
pub fn block_prefix(id: &str) -> Vec<u8> {
    [BLOCK_PREFIX, id.as_bytes(), b"/"].concat()
}

/// The garbage record of extent `id`, due at `due_ms`.
pub fn garbage_key(due_ms: u64, id: &str) -> Vec<u8> {
    [
        GARBAGE_PREFIX,
        format!("{due_ms:016x}/").as_bytes(),
        id.as_bytes(),
    ]
    .concat()
}

/// A new version or extent id: 32 hex digits.
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Now, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
