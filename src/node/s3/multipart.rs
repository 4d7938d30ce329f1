//! Multipart uploads: an upload record, one record per part (its blocks
//! written like a PUT's), and Complete, which writes the object's record
//! listing the chosen parts' blocks in order; parts left out, replaced or
//! aborted become garbage.
//!
//! - An upload is `\0shoal/s3/uploads/<bucket>/<key>\0<upload id>`, so
//!   that ListMultipartUploads lists by key, then id.
//! - Part `n` is `\0shoal/s3/parts/<upload id>/<n as 5 digits>`.

use super::Gateway;
use super::buckets::owner;
use super::data;
use super::store::{Cluster, Extent, GarbageRecord, ObjectRecord, hex, new_id, now_ms};
use crate::proto::message::{MAX_LIST_LIMIT, after, prefix_end};
use crate::proto::{Consistency, Context};
use md5::Digest;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

const UPLOAD_PREFIX: &[u8] = b"\0shoal/s3/uploads/";
const PART_PREFIX: &[u8] = b"\0shoal/s3/parts/";
/// S3's limits: part numbers, the smallest part but the last, the largest
/// part.
const MAX_PARTS: i32 = 10_000;
const MIN_PART_BYTES: u64 = 5 << 20;
const MAX_PART_BYTES: u64 = 5 << 30;

/// An upload under way.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct UploadRecord {
    initiated_ms: u64,
    initiator: String,
    content_type: Option<String>,
    headers: BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
    /// Set once completed, to the object's ETag: completing again answers
    /// the same (as S3 does); the record is swept after the grace period.
    #[serde(default)]
    completed: Option<String>,
}

/// One uploaded part.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PartRecord {
    etag: String,
    size: u64,
    modified_ms: u64,
    /// When its upload began: of two uploads of one part number, the one
    /// that began later wins, whichever finished last.
    #[serde(default)]
    started_ms: u64,
    extent: Option<Extent>,
}

impl PartRecord {
    /// The part a read's siblings show.
    fn winner(values: &[crate::proto::Value]) -> Option<PartRecord> {
        values
            .iter()
            .filter_map(|v| rmp_serde::from_slice::<PartRecord>(&v.value).ok())
            .max_by(|a, b| (a.started_ms, &a.etag).cmp(&(b.started_ms, &b.etag)))
    }

    /// Every extent the siblings name.
    fn extents(values: &[crate::proto::Value]) -> Vec<Extent> {
        values
            .iter()
            .filter_map(|v| rmp_serde::from_slice::<PartRecord>(&v.value).ok())
            .filter_map(|p| p.extent)
            .collect()
    }
}

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(record).expect("strings, integers and maps always encode")
}

fn decode<T: for<'de> Deserialize<'de>>(values: &[crate::proto::Value]) -> Option<T> {
    values.iter().find_map(|v| rmp_serde::from_slice(&v.value).ok())
}

/// Where bucket `bucket`'s uploads are recorded.
pub fn uploads_prefix(bucket: &str) -> Vec<u8> {
    [UPLOAD_PREFIX, bucket.as_bytes(), b"/"].concat()
}

fn upload_key(bucket: &str, key: &str, upload: &str) -> Vec<u8> {
    [
        uploads_prefix(bucket).as_slice(),
        key.as_bytes(),
        b"\0",
        upload.as_bytes(),
    ]
    .concat()
}

/// The object key and upload id of an upload record's key, after the
/// bucket's prefix (the inverse of `upload_key`).
fn split_upload_key(rest: &[u8]) -> Option<(&str, &str)> {
    let split = rest.iter().rposition(|&b| b == 0)?;
    Some((
        std::str::from_utf8(&rest[..split]).ok()?,
        std::str::from_utf8(&rest[split + 1..]).ok()?,
    ))
}

fn parts_prefix(upload: &str) -> Vec<u8> {
    [PART_PREFIX, upload.as_bytes(), b"/"].concat()
}

fn part_key(upload: &str, number: i32) -> Vec<u8> {
    [parts_prefix(upload).as_slice(), format!("{number:05}").as_bytes()].concat()
}

/// Whether a part of `upload` is made of extent `id`, read at QUORUM.
pub async fn part_refers_to(cluster: &Cluster, upload: &str, id: &str) -> S3Result<bool> {
    let parts = all_parts(cluster, upload).await?;
    Ok(parts
        .iter()
        .any(|(_, _, extents, _)| extents.iter().any(|e| e.id == id)))
}

/// Every part of `upload`: number, record, every extent its siblings
/// name, record key.
async fn all_parts(
    cluster: &Cluster,
    upload: &str,
) -> S3Result<Vec<(i32, PartRecord, Vec<Extent>, Vec<u8>)>> {
    let prefix = parts_prefix(upload);
    let end = prefix_end(&prefix);
    let mut start = prefix.clone();
    let mut parts = Vec::new();
    loop {
        let (keys, next) = cluster.list(start, end.clone(), MAX_LIST_LIMIT, true).await?;
        for listed in keys {
            let number = std::str::from_utf8(&listed.key[prefix.len()..])
                .ok()
                .and_then(|n| n.parse().ok());
            if let (Some(number), Some(part)) = (number, PartRecord::winner(&listed.values)) {
                parts.push((number, part, PartRecord::extents(&listed.values), listed.key));
            }
        }
        match next {
            Some(next) => start = after(&next),
            None => return Ok(parts),
        }
    }
}

fn timestamp_ms(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

impl Gateway {
    /// Upload `upload`'s record, completed or not.
    async fn any_upload(&self, bucket: &str, key: &str, upload: &str) -> S3Result<(UploadRecord, Context)> {
        let (values, context) = self
            .cluster
            .get(upload_key(bucket, key, upload), Consistency::Quorum)
            .await?;
        let record = decode(&values).ok_or_else(|| s3_error!(NoSuchUpload, "no such upload"))?;
        Ok((record, context))
    }

    /// Upload `upload`'s record, if it is under way.
    async fn upload(&self, bucket: &str, key: &str, upload: &str) -> S3Result<(UploadRecord, Context)> {
        let (record, context) = self.any_upload(bucket, key, upload).await?;
        if record.completed.is_some() {
            return Err(s3_error!(NoSuchUpload, "the upload is completed"));
        }
        Ok((record, context))
    }

    /// Marks parts' blocks as garbage and deletes their records.
    async fn drop_parts(
        &self,
        bucket: &str,
        key: &str,
        parts: impl IntoIterator<Item = (Vec<Extent>, Vec<u8>)>,
    ) -> S3Result<()> {
        let parts: Vec<_> = parts.into_iter().collect();
        let records: Vec<ObjectRecord> = parts
            .iter()
            .flat_map(|(extents, _)| extents.iter().cloned())
            .map(|extent| ObjectRecord {
                extents: vec![extent],
                ..empty_record()
            })
            .collect();
        data::discard(&self.cluster, &self.layout, bucket, key, &records).await?;
        for (_, record_key) in parts {
            let (_, context) = self.cluster.get(record_key.clone(), Consistency::Quorum).await?;
            self.cluster.delete(record_key, context).await?;
        }
        Ok(())
    }

    /// Aborts every upload under way in `bucket` (as deleting the bucket
    /// does).
    pub(super) async fn abort_all_uploads(&self, bucket: &str) -> S3Result<()> {
        let base = uploads_prefix(bucket);
        let end = prefix_end(&base);
        loop {
            let (keys, _) = self.cluster.list(base.clone(), end.clone(), 100, false).await?;
            if keys.is_empty() {
                return Ok(());
            }
            for listed in keys {
                let Some((key, upload)) = split_upload_key(&listed.key[base.len()..]) else {
                    self.cluster.delete(listed.key, listed.context).await?;
                    continue;
                };
                let (key, upload) = (key.to_string(), upload.to_string());
                let parts = all_parts(&self.cluster, &upload).await?;
                self.drop_parts(bucket, &key, parts.into_iter().map(|(_, _, e, k)| (e, k)))
                    .await?;
                self.cluster.delete(listed.key, listed.context).await?;
            }
        }
    }

    pub(super) async fn create_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let initiator = super::buckets::signer(&req)?.to_string();
        let input = req.input;
        super::service::check_key(&input.key)?;
        let upload = new_id();
        let attributes = super::service::Attributes::new(input.content_type, &req.headers, input.metadata);
        let record = UploadRecord {
            initiated_ms: now_ms(),
            initiator,
            content_type: attributes.content_type,
            headers: attributes.headers,
            metadata: attributes.metadata,
            completed: None,
        };
        self.cluster
            .put(
                upload_key(&input.bucket, &input.key, &upload),
                encode(&record),
                Context::empty(),
            )
            .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload),
            ..Default::default()
        }))
    }

    pub(super) async fn put_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        let body = input.body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
        });
        let part = (input.upload_id.as_str(), input.part_number);
        let etag = self
            .write_part(
                (&input.bucket, &input.key),
                part,
                body,
                MAX_PART_BYTES,
                |written| {
                    if input
                        .content_length
                        .is_some_and(|length| length as u64 != written.size)
                    {
                        return Err(s3_error!(
                            IncompleteBody,
                            "the body is shorter than Content-Length"
                        ));
                    }
                    super::service::check_md5(input.content_md5.as_deref(), &written.md5)
                },
            )
            .await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    /// Writes part `number` of `upload` from `body` (at most `max_size`
    /// bytes), once `check` accepts what was written; its ETag.
    async fn write_part(
        &self,
        (bucket, key): (&str, &str),
        (upload, number): (&str, i32),
        body: StreamingBlob,
        max_size: u64,
        check: impl FnOnce(&data::Written) -> S3Result<()>,
    ) -> S3Result<String> {
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(s3_error!(InvalidArgument, "part numbers are 1 to 10000"));
        }
        self.upload(bucket, key, upload).await?;
        // Read before the body is written: of two uploads of this part, the
        // one that began later supersedes what it read and wins.
        let record_key = part_key(upload, number);
        let (values, context) = self.cluster.get(record_key.clone(), Consistency::Quorum).await?;
        let garbage = GarbageRecord {
            bucket: bucket.to_string(),
            key: key.to_string(),
            id: String::new(),
            upload: Some(upload.to_string()),
            record: None,
        };
        let layout = data::Layout {
            inline_max: 0,
            ..self.layout
        };
        let written = data::write_body(&self.cluster, &layout, body, max_size, garbage).await?;
        check(&written)?;
        self.store_part(bucket, key, (record_key, values, context), written)
            .await
    }

    /// Writes a part's record for `written` over what `read` saw; the
    /// extents it replaced become garbage. Its ETag.
    async fn store_part(
        &self,
        bucket: &str,
        key: &str,
        (record_key, values, context): (Vec<u8>, Vec<crate::proto::Value>, Context),
        written: data::Written,
    ) -> S3Result<String> {
        written.check_in_time(&self.layout)?;
        let part = PartRecord {
            etag: hex(&written.md5),
            size: written.size,
            modified_ms: now_ms(),
            started_ms: written.started_ms,
            // An empty part still has its place among the object's parts.
            extent: Some(written.extent.unwrap_or_else(|| Extent {
                id: new_id(),
                blocks: 0,
                size: 0,
            })),
        };
        self.cluster.put(record_key, encode(&part), context).await?;
        let replaced: Vec<ObjectRecord> = PartRecord::extents(&values)
            .into_iter()
            .map(|extent| ObjectRecord {
                extents: vec![extent],
                ..empty_record()
            })
            .collect();
        data::discard(&self.cluster, &self.layout, bucket, key, &replaced).await?;
        Ok(part.etag)
    }

    pub(super) async fn copy_part(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let id = super::buckets::signer(&req)?.to_string();
        let input = req.input;
        let source = self
            .copy_source(
                &id,
                &input.copy_source,
                super::service::Conditions {
                    if_match: input.copy_source_if_match.as_ref(),
                    if_none_match: input.copy_source_if_none_match.as_ref(),
                    if_modified_since: input.copy_source_if_modified_since.as_ref(),
                    if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
                },
            )
            .await?;
        let range = match &input.copy_source_range {
            None => 0..source.size,
            Some(text) => copy_range(text, source.size)?,
        };
        let length = range.end - range.start;
        let body = data::read_body(&self.cluster, &source, range);
        let part = (input.upload_id.as_str(), input.part_number);
        let etag = self
            .write_part((&input.bucket, &input.key), part, body, length, |_| Ok(()))
            .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(timestamp_ms(now_ms())),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    pub(super) async fn complete_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let owner_id = super::buckets::signer(&req)?.to_string();
        let input = req.input;
        let (bucket, key) = (input.bucket.as_str(), input.key.as_str());
        let (upload, upload_context) = self.any_upload(bucket, key, &input.upload_id).await?;
        if let Some(etag) = &upload.completed {
            // Completed already: the same answer again.
            return Ok(S3Response::new(CompleteMultipartUploadOutput {
                bucket: Some(input.bucket.clone()),
                key: Some(input.key.clone()),
                e_tag: Some(ETag::Strong(etag.clone())),
                location: Some(format!("/{}/{}", input.bucket, input.key)),
                ..Default::default()
            }));
        }
        let chosen = input
            .multipart_upload
            .and_then(|m| m.parts)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| s3_error!(MalformedXML, "name at least one part"))?;
        let mut parts: BTreeMap<i32, (PartRecord, Vec<Extent>, Vec<u8>)> =
            all_parts(&self.cluster, &input.upload_id)
                .await?
                .into_iter()
                .map(|(n, part, extents, record_key)| (n, (part, extents, record_key)))
                .collect();
        let mut previous = 0;
        let mut used = Vec::new();
        for (i, wanted) in chosen.iter().enumerate() {
            let number = wanted.part_number.unwrap_or(0);
            if number <= previous {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "parts must be listed in ascending order"
                ));
            }
            previous = number;
            let Some((part, _, _)) = parts.get(&number) else {
                return Err(s3_error!(InvalidPart, "part {number} was not uploaded"));
            };
            if wanted
                .e_tag
                .as_ref()
                .is_some_and(|e| e.value().trim_matches('"') != part.etag)
            {
                return Err(s3_error!(InvalidPart, "part {number}'s ETag does not match"));
            }
            if i + 1 < chosen.len() && part.size < MIN_PART_BYTES {
                return Err(s3_error!(
                    EntityTooSmall,
                    "every part but the last has at least 5 MiB"
                ));
            }
            used.push(number);
        }
        let mut md5 = md5::Md5::new();
        let mut size = 0;
        let mut extents = Vec::new();
        let mut losers = Vec::new();
        for number in &used {
            let (part, siblings, record_key) = parts.remove(number).expect("checked above");
            md5.update(hex_bytes(&part.etag));
            size += part.size;
            let chosen = part.extent.clone();
            // Extents of part uploads that lost to this one go.
            let lost: Vec<Extent> = siblings
                .into_iter()
                .filter(|e| Some(e) != chosen.as_ref())
                .collect();
            losers.push((lost, record_key));
            extents.extend(chosen);
        }
        let (current, replaced, context) = self.object(bucket, key).await?;
        super::service::check_write_conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            current.as_ref(),
        )?;
        let record = ObjectRecord {
            version: new_id(),
            modified_ms: now_ms(),
            size,
            etag: format!("{}-{}", hex(&md5.finalize()), used.len()),
            content_type: upload.content_type.clone(),
            headers: upload.headers.clone(),
            metadata: upload.metadata.clone(),
            inline: Vec::new(),
            block_size: self.layout.block_size as u32,
            extents,
            parts: used.len() as u32,
            owner: owner_id,
        };
        self.put_record(bucket, key, &record, replaced, context).await?;
        // Parts left out go, as do part uploads that lost a race; the parts
        // used are now the object's, and their records go too.
        self.drop_parts(bucket, key, parts.into_values().map(|(_, e, k)| (e, k)))
            .await?;
        self.drop_parts(bucket, key, losers).await?;
        // The upload is kept as completed for the grace period, then swept.
        let upload_record = upload_key(bucket, key, &input.upload_id);
        let completed = UploadRecord {
            completed: Some(record.etag.clone()),
            ..upload
        };
        self.cluster
            .put(upload_record.clone(), encode(&completed), upload_context)
            .await?;
        let garbage = GarbageRecord {
            bucket: bucket.to_string(),
            key: key.to_string(),
            id: new_id(),
            upload: Some(input.upload_id.clone()),
            record: Some(upload_record),
        };
        let due = now_ms() + self.layout.grace.as_millis() as u64;
        self.cluster
            .put(
                super::store::garbage_key(due, &garbage.id),
                garbage.encode(),
                Context::empty(),
            )
            .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(record.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    pub(super) async fn abort_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let (_, context) = self.upload(&input.bucket, &input.key, &input.upload_id).await?;
        let parts = all_parts(&self.cluster, &input.upload_id).await?;
        self.drop_parts(
            &input.bucket,
            &input.key,
            parts.into_iter().map(|(_, _, e, k)| (e, k)),
        )
        .await?;
        self.cluster
            .delete(upload_key(&input.bucket, &input.key, &input.upload_id), context)
            .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    pub(super) async fn parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let (upload, _) = self.upload(&input.bucket, &input.key, &input.upload_id).await?;
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let marker = input.part_number_marker.unwrap_or(0);
        let listed: Vec<_> = all_parts(&self.cluster, &input.upload_id)
            .await?
            .into_iter()
            .filter(|(n, _, _, _)| *n > marker)
            .collect();
        let truncated = listed.len() > max;
        let shown: Vec<Part> = listed
            .iter()
            .take(max)
            .map(|(n, part, _, _)| Part {
                part_number: Some(*n),
                e_tag: Some(ETag::Strong(part.etag.clone())),
                size: Some(part.size as i64),
                last_modified: Some(timestamp_ms(part.modified_ms)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: shown.last().and_then(|p| p.part_number),
            is_truncated: Some(truncated),
            owner: Some(owner(&upload.initiator)),
            initiator: Some(initiator(&upload.initiator)),
            parts: Some(shown),
            ..Default::default()
        }))
    }

    pub(super) async fn uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let base = uploads_prefix(&input.bucket);
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
        let start = [base.as_slice(), prefix.as_bytes()].concat();
        let end = prefix_end(&start);
        let mut from = start.clone();
        if let Some(marker) = input.key_marker.as_deref().filter(|m| !m.is_empty()) {
            let past = match input.upload_id_marker.as_deref() {
                Some(id) => after(&upload_key(&input.bucket, marker, id)),
                None => [base.as_slice(), marker.as_bytes(), b"\x01"].concat(),
            };
            from = from.max(past);
        }
        let (keys, _) = self
            .cluster
            .list(from, end, (max + 1).min(MAX_LIST_LIMIT as usize) as u32, true)
            .await?;
        let mut uploads = Vec::new();
        for listed in &keys {
            let Some((key, id)) = split_upload_key(&listed.key[base.len()..]) else {
                continue;
            };
            let Some(record) = decode::<UploadRecord>(&listed.values).filter(|r| r.completed.is_none())
            else {
                continue;
            };
            uploads.push(MultipartUpload {
                key: Some(key.to_string()),
                upload_id: Some(id.to_string()),
                initiated: Some(timestamp_ms(record.initiated_ms)),
                owner: Some(owner(&record.initiator)),
                initiator: Some(initiator(&record.initiator)),
                ..Default::default()
            });
        }
        let truncated = uploads.len() > max;
        uploads.truncate(max);
        let last = uploads.last().cloned();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: truncated
                .then(|| last.as_ref().and_then(|u| u.key.clone()))
                .flatten(),
            next_upload_id_marker: truncated.then(|| last.and_then(|u| u.upload_id)).flatten(),
            uploads: Some(uploads),
            delimiter: input.delimiter,
            ..Default::default()
        }))
    }
}

/// Who began an upload: its access key.
fn initiator(id: &str) -> Initiator {
    Initiator {
        id: Some(id.to_string()),
        display_name: Some(id.to_string()),
    }
}

/// A record with nothing in it but what a caller sets.
fn empty_record() -> ObjectRecord {
    ObjectRecord {
        version: String::new(),
        modified_ms: 0,
        size: 0,
        etag: String::new(),
        content_type: None,
        headers: BTreeMap::new(),
        metadata: BTreeMap::new(),
        inline: Vec::new(),
        block_size: 0,
        extents: Vec::new(),
        parts: 0,
        owner: String::new(),
    }
}

/// The byte range `bytes=FIRST-LAST` of a source of `size` bytes.
fn copy_range(text: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range is bytes=FIRST-LAST within the source"
        )
    };
    let (first, last) = text
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let (first, last): (u64, u64) = (
        first.parse().map_err(|_| invalid())?,
        last.parse().map_err(|_| invalid())?,
    );
    if first > last || last >= size {
        return Err(s3_error!(InvalidRange, "the copy range is not within the source"));
    }
    Ok(first..last + 1)
}

/// The bytes of a hex string (an MD5's), for the multipart ETag.
fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}
