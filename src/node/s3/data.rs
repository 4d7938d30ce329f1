//! Object data: a body written as blocks (or kept inline when small),
//! blocks streamed back for a GET, and the collection of blocks no object
//! refers to any more.
//!
//! An upload first writes a garbage record for its extent, due when the
//! grace period has passed, then its blocks, then the object's record.
//! When the record falls due, the sweep checks whether the object (or the
//! multipart upload) still refers to the extent: if so it keeps the
//! blocks and drops the record, else it deletes the blocks, then the
//! record. An overwrite or a delete writes a garbage record for the
//! versions it replaced. So blocks of lost races, aborted uploads and old
//! versions go, and blocks a live object refers to stay; an upload that
//! takes longer than half the grace period is refused before its record is
//! written, so that its blocks cannot be swept under it.

use super::store::{
    BLOCK_PREFIX, Cluster, Extent, GARBAGE_PREFIX, GarbageRecord, ObjectRecord, block_key, block_prefix,
    garbage_key, now_ms,
};
use crate::proto::message::{after, prefix_end};
use crate::proto::{Consistency, Fanout};
use bytes::Bytes;
use futures::StreamExt;
use md5::Digest;
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use std::ops::Range;
use std::time::Duration;
use tokio::sync::mpsc;

/// Block writes in flight for one upload.
const WRITES_IN_FLIGHT: usize = 3;
/// Blocks read ahead for one GET.
const READ_AHEAD: usize = 2;

/// How the gateway stores data.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Bytes per block.
    pub block_size: usize,
    /// Objects up to this size are kept in their record.
    pub inline_max: usize,
    /// How long blocks no object refers to are kept.
    pub grace: Duration,
}

/// A body as stored.
pub struct Written {
    pub size: u64,
    pub md5: [u8; 16],
    /// The data, if small enough to keep in the record.
    pub inline: Vec<u8>,
    /// Its blocks, if not.
    pub extent: Option<Extent>,
    /// When the upload began, ms since the Unix epoch.
    pub started_ms: u64,
}

impl Written {
    /// Refuses to commit an upload that took so long that its blocks may
    /// be swept.
    pub fn check_in_time(&self, layout: &Layout) -> S3Result<()> {
        let limit = layout.grace.as_millis() as u64 / 2;
        if self.extent.is_some() && now_ms().saturating_sub(self.started_ms) > limit {
            return Err(s3_error!(
                RequestTimeout,
                "the upload took longer than the gateway allows"
            ));
        }
        Ok(())
    }
}

/// Writes `body` (at most `max_size` bytes) as blocks of a new extent, or
/// keeps it inline if it fits; `garbage` names the object it is for.
pub async fn write_body(
    cluster: &Cluster,
    layout: &Layout,
    mut body: StreamingBlob,
    max_size: u64,
    mut garbage: GarbageRecord,
) -> S3Result<Written> {
    let started_ms = now_ms();
    let mut md5 = md5::Md5::new();
    let mut buffer: Vec<u8> = Vec::with_capacity(layout.block_size.min(64 * 1024));
    let mut size = 0u64;
    let mut blocks = 0u32;
    let mut writes = tokio::task::JoinSet::new();
    let mut extent_id = None;
    loop {
        let chunk = match body.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(error)) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::IncompleteBody,
                    format!("reading the body: {error}"),
                ));
            }
            None => break,
        };
        size += chunk.len() as u64;
        if size > max_size {
            return Err(s3_error!(EntityTooLarge, "the body is larger than allowed"));
        }
        md5.update(&chunk);
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = rest.len().min(layout.block_size - buffer.len());
            buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if buffer.len() == layout.block_size {
                let id = match &extent_id {
                    Some(id) => id,
                    None => extent_id.insert(begin_extent(cluster, layout, &mut garbage, started_ms).await?),
                };
                if writes.len() >= WRITES_IN_FLIGHT {
                    joined(writes.join_next().await)?;
                }
                let block = std::mem::replace(&mut buffer, Vec::with_capacity(layout.block_size));
                let (cluster, key) = (cluster.clone(), block_key(id, blocks));
                writes.spawn(async move { cluster.put(key, block, Default::default()).await });
                blocks += 1;
            }
        }
    }
    let md5: [u8; 16] = md5.finalize().into();
    if extent_id.is_none() && buffer.len() <= layout.inline_max {
        return Ok(Written {
            size,
            md5,
            inline: buffer,
            extent: None,
            started_ms,
        });
    }
    let id = match extent_id {
        Some(id) => id,
        None => begin_extent(cluster, layout, &mut garbage, started_ms).await?,
    };
    if !buffer.is_empty() {
        cluster
            .put(block_key(&id, blocks), buffer, Default::default())
            .await?;
        blocks += 1;
    }
    while let Some(done) = writes.join_next().await {
        joined(Some(done))?;
    }
    Ok(Written {
        size,
        md5,
        inline: Vec::new(),
        extent: Some(Extent { id, blocks, size }),
        started_ms,
    })
}

fn joined(done: Option<Result<S3Result<()>, tokio::task::JoinError>>) -> S3Result<()> {
    match done {
        Some(Ok(result)) => result,
        Some(Err(error)) => Err(S3Error::with_message(
            S3ErrorCode::InternalError,
            format!("a block write failed: {error}"),
        )),
        None => Ok(()),
    }
}

/// A new extent: its garbage record first, so that its blocks are swept
/// if the upload never completes.
async fn begin_extent(
    cluster: &Cluster,
    layout: &Layout,
    garbage: &mut GarbageRecord,
    started_ms: u64,
) -> S3Result<String> {
    let id = super::store::new_id();
    garbage.id = id.clone();
    let due = started_ms + layout.grace.as_millis() as u64;
    cluster
        .put(garbage_key(due, &id), garbage.encode(), Default::default())
        .await?;
    Ok(id)
}

/// Marks the extents of `records` (versions an overwrite or delete
/// replaced) as garbage once the grace period has passed.
pub async fn discard(
    cluster: &Cluster,
    layout: &Layout,
    bucket: &str,
    key: &str,
    records: &[ObjectRecord],
) -> S3Result<()> {
    let due = now_ms() + layout.grace.as_millis() as u64;
    for extent in records.iter().flat_map(|r| &r.extents) {
        let garbage = GarbageRecord {
            bucket: bucket.to_string(),
            key: key.to_string(),
            id: extent.id.clone(),
            upload: None,
            record: None,
        };
        cluster
            .put(garbage_key(due, &extent.id), garbage.encode(), Default::default())
            .await?;
    }
    Ok(())
}

/// The bytes `range` of `record`'s data, streamed block by block.
pub fn read_body(cluster: &Cluster, record: &ObjectRecord, range: Range<u64>) -> StreamingBlob {
    if record.extents.is_empty() {
        let start = range.start.min(record.inline.len() as u64) as usize;
        let end = range.end.min(record.inline.len() as u64) as usize;
        let data = Bytes::copy_from_slice(&record.inline[start..end]);
        return StreamingBlob::wrap(futures::stream::once(
            async move { Ok::<_, std::io::Error>(data) },
        ));
    }
    let (sender, mut receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(READ_AHEAD);
    let (cluster, record) = (cluster.clone(), record.clone());
    tokio::spawn(async move {
        let block_size = u64::from(record.block_size.max(1));
        let mut offset = 0u64;
        for extent in &record.extents {
            let extent_range = offset..offset + extent.size;
            offset += extent.size;
            if extent_range.end <= range.start || extent_range.start >= range.end {
                continue;
            }
            for index in 0..extent.blocks {
                let block_start = extent_range.start + u64::from(index) * block_size;
                let block_end = (block_start + block_size).min(extent_range.end);
                if block_end <= range.start || block_start >= range.end {
                    continue;
                }
                let data = match read_block(&cluster, &block_key(&extent.id, index)).await {
                    Ok(data) => data,
                    Err(error) => {
                        let _ = sender.send(Err(std::io::Error::other(error))).await;
                        return;
                    }
                };
                let from = range.start.saturating_sub(block_start) as usize;
                let to = (range.end.min(block_end) - block_start) as usize;
                if to > data.len() || from > to {
                    let error = std::io::Error::other(format!("block {index} of {} is short", extent.id));
                    let _ = sender.send(Err(error)).await;
                    return;
                }
                if sender.send(Ok(data.slice(from..to))).await.is_err() {
                    return;
                }
            }
        }
    });
    StreamingBlob::wrap(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)))
}

/// One block. Blocks never change once written, so it is first read from
/// one replica alone (this node's own copy when it has one) with no read
/// repair; if that replica does not have it yet, or does not answer
/// within [`ONE_REPLICA_MS`] (a node that just died and is not known to
/// be down yet), from every replica at QUORUM.
async fn read_block(cluster: &Cluster, key: &[u8]) -> Result<Bytes, String> {
    let one = cluster
        .get_from(
            key.to_vec(),
            Consistency::One,
            Fanout::Needed,
            Some(ONE_REPLICA_MS),
        )
        .await;
    if let Ok((values, _)) = one
        && let Some(value) = values.into_iter().next()
    {
        return Ok(value.value);
    }
    let (values, _) = cluster
        .get(key.to_vec(), Consistency::Quorum)
        .await
        .map_err(|e| format!("reading a block: {e}"))?;
    match values.into_iter().next() {
        Some(value) => Ok(value.value),
        None => Err("a block of this object is missing".to_string()),
    }
}

/// How long a block read from one replica waits before asking them all.
const ONE_REPLICA_MS: u32 = 2_000;

/// Copies `record`'s data into a new extent (or inline), for CopyObject.
pub async fn copy_data(
    cluster: &Cluster,
    layout: &Layout,
    record: &ObjectRecord,
    garbage: GarbageRecord,
) -> S3Result<Written> {
    let body = read_body(cluster, record, 0..record.size);
    write_body(cluster, layout, body, record.size, garbage).await
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Garbage records looked at.
    pub records: usize,
    /// Blocks deleted.
    pub blocks: usize,
}

/// Sweeps the garbage records due by now: blocks no object refers to are
/// deleted. At most `max_records` records a sweep.
pub async fn sweep(cluster: &Cluster, max_records: u32) -> S3Result<Swept> {
    let mut swept = Swept::default();
    let end = garbage_key(now_ms(), "");
    let (records, _) = cluster
        .list(GARBAGE_PREFIX.to_vec(), Some(end), max_records, true)
        .await?;
    for listed in records {
        let Some(garbage) = listed
            .values
            .iter()
            .find_map(|v| rmp_serde::from_slice::<GarbageRecord>(&v.value).ok())
        else {
            cluster.delete(listed.key, listed.context).await?;
            continue;
        };
        swept.records += 1;
        if !still_referred(cluster, &garbage).await? {
            swept.blocks += delete_blocks(cluster, &garbage.id).await?;
        }
        if let Some(record) = garbage.record {
            let (values, context) = cluster.get(record.clone(), Consistency::Quorum).await?;
            if !values.is_empty() {
                cluster.delete(record, context).await?;
            }
        }
        cluster.delete(listed.key, listed.context).await?;
    }
    Ok(swept)
}

/// Whether the object (or the multipart upload) still refers to the
/// extent, read at QUORUM.
async fn still_referred(cluster: &Cluster, garbage: &GarbageRecord) -> S3Result<bool> {
    let object = crate::net::s3::object_record(&garbage.bucket, &garbage.key);
    let (values, _) = cluster.get(object, Consistency::Quorum).await?;
    // Only the version readers see: a concurrent write that lost stays a
    // sibling until the next write supersedes it, but nobody reads it.
    if ObjectRecord::winner(&values).is_some_and(|r| r.refers_to(&garbage.id)) {
        return Ok(true);
    }
    match &garbage.upload {
        Some(upload) => super::multipart::part_refers_to(cluster, upload, &garbage.id).await,
        None => Ok(false),
    }
}

/// Deletes every block of extent `id`; how many.
async fn delete_blocks(cluster: &Cluster, id: &str) -> S3Result<usize> {
    let prefix = block_prefix(id);
    let end = prefix_end(&prefix);
    let mut start = prefix.clone();
    let mut deleted = 0;
    loop {
        let (keys, next) = cluster.list(start, end.clone(), 100, false).await?;
        for listed in keys {
            debug_assert!(listed.key.starts_with(BLOCK_PREFIX));
            cluster.delete(listed.key, listed.context).await?;
            deleted += 1;
        }
        match next {
            Some(next) => start = after(&next),
            None => return Ok(deleted),
        }
    }
}
