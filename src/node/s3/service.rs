//! The S3 operations: routing from `s3s` to buckets, objects, listings and
//! multipart uploads. Anything not named here answers 501 NotImplemented
//! (the `S3` trait's default).

use super::Gateway;
use super::buckets::{empty, owner, signer};
use super::data::{self, Written};
use super::listing::{self, url_encode};
use super::store::{GarbageRecord, ObjectRecord, hex, new_id, now_ms};
use crate::net::s3::object_record;
use crate::proto::{Consistency, Context};
use base64::Engine;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

/// The largest object a single PUT may write (S3's limit).
const MAX_PUT_BYTES: u64 = 5 << 30;
/// The longest object key (S3's limit).
const MAX_KEY_BYTES: usize = 1024;

/// The standard headers an object keeps.
const KEPT_HEADERS: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

pub(super) fn check_key(key: &str) -> S3Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(s3_error!(KeyTooLongError, "an object key has 1 to 1024 bytes"));
    }
    Ok(())
}

fn last_modified(record: &ObjectRecord) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(record.modified_ms))
}

/// Seconds since the Unix epoch of an S3 timestamp.
fn seconds(timestamp: &Timestamp) -> i64 {
    time::OffsetDateTime::from(timestamp.clone()).unix_timestamp()
}

fn etag_of(record: &ObjectRecord) -> ETag {
    ETag::Strong(record.etag.clone())
}

pub(super) fn matches(condition: &ETagCondition, record: &ObjectRecord) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(etag) => etag.value() == record.etag,
    }
}

/// The conditions of a GET, HEAD or copy source, in RFC 9110's order.
pub(super) struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// Refuses a write whose If-Match or If-None-Match does not hold for the
/// object a QUORUM read found.
pub(super) fn check_write_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    current: Option<&ObjectRecord>,
) -> S3Result<()> {
    match (if_match, current) {
        (Some(condition), Some(record)) if !matches(condition, record) => {
            return Err(s3_error!(PreconditionFailed, "If-Match does not hold"));
        }
        (Some(_), None) => return Err(s3_error!(NoSuchKey, "If-Match: no such key")),
        _ => {}
    }
    if let (Some(condition), Some(record)) = (if_none_match, current)
        && matches(condition, record)
    {
        return Err(s3_error!(PreconditionFailed, "If-None-Match does not hold"));
    }
    Ok(())
}

impl Conditions<'_> {
    /// Refuses with 412 or answers 304 (`not_modified`) as the headers say.
    fn check(&self, record: &ObjectRecord, not_modified: S3ErrorCode) -> S3Result<()> {
        let modified = (record.modified_ms / 1000) as i64;
        let failed = || s3_error!(PreconditionFailed, "a precondition does not hold");
        match self.if_match {
            Some(condition) if !matches(condition, record) => return Err(failed()),
            None if self.if_unmodified_since.is_some_and(|t| modified > seconds(t)) => return Err(failed()),
            _ => {}
        }
        let unchanged = || {
            let mut error = S3Error::with_message(not_modified.clone(), "Not Modified");
            let mut headers = hyper::HeaderMap::new();
            if let Ok(etag) = hyper::header::HeaderValue::from_str(&format!("\"{}\"", record.etag)) {
                headers.insert(hyper::header::ETAG, etag);
            }
            error.set_headers(headers);
            error
        };
        match self.if_none_match {
            Some(condition) if matches(condition, record) => Err(unchanged()),
            None if self.if_modified_since.is_some_and(|t| modified <= seconds(t)) => Err(unchanged()),
            _ => Ok(()),
        }
    }
}

/// Headers and metadata an object is written with.
pub(super) struct Attributes {
    pub content_type: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
}

impl Attributes {
    pub(super) fn new(
        content_type: Option<String>,
        headers: &hyper::HeaderMap,
        metadata: Option<Metadata>,
    ) -> Attributes {
        let mut headers: BTreeMap<String, String> = KEPT_HEADERS
            .iter()
            .filter_map(|name| Some((name.to_string(), headers.get(*name)?.to_str().ok()?.to_string())))
            .collect();
        // `aws-chunked` describes how this request's body was sent, not
        // the object.
        if let Some(encoding) = headers.get("content-encoding") {
            let kept: Vec<&str> = encoding
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
                .collect();
            if kept.is_empty() {
                headers.remove("content-encoding");
            } else {
                headers.insert("content-encoding".to_string(), kept.join(", "));
            }
        }
        Attributes {
            content_type,
            headers,
            metadata: metadata.unwrap_or_default().into_iter().collect(),
        }
    }

    fn of(record: &ObjectRecord) -> Attributes {
        Attributes {
            content_type: record.content_type.clone(),
            headers: record.headers.clone(),
            metadata: record.metadata.clone(),
        }
    }
}

impl Gateway {
    /// Object `key`'s record (the last writer's) and what the read saw.
    pub(super) async fn object(
        &self,
        bucket: &str,
        key: &str,
    ) -> S3Result<(Option<ObjectRecord>, Vec<ObjectRecord>, Context)> {
        let (values, context) = self
            .cluster
            .get(object_record(bucket, key), Consistency::Quorum)
            .await?;
        Ok((ObjectRecord::winner(&values), ObjectRecord::all(&values), context))
    }

    fn garbage(bucket: &str, key: &str, upload: Option<String>) -> GarbageRecord {
        GarbageRecord {
            bucket: bucket.to_string(),
            key: key.to_string(),
            id: String::new(),
            upload,
            record: None,
        }
    }

    /// Writes object `key`'s record for `written`, superseding what the
    /// read (`context`, `replaced`) saw; the replaced versions' blocks
    /// become garbage.
    async fn commit(
        &self,
        owner: &str,
        (bucket, key): (&str, &str),
        written: Written,
        attributes: Attributes,
        (replaced, context): (Vec<ObjectRecord>, Context),
    ) -> S3Result<ObjectRecord> {
        written.check_in_time(&self.layout)?;
        let record = ObjectRecord {
            version: new_id(),
            modified_ms: now_ms(),
            size: written.size,
            etag: hex(&written.md5),
            content_type: attributes.content_type,
            headers: attributes.headers,
            metadata: attributes.metadata,
            inline: written.inline,
            block_size: self.layout.block_size as u32,
            extents: written.extent.into_iter().collect(),
            parts: 0,
            owner: owner.to_string(),
        };
        self.put_record(bucket, key, &record, replaced, context).await?;
        Ok(record)
    }

    pub(super) async fn put_record(
        &self,
        bucket: &str,
        key: &str,
        record: &ObjectRecord,
        replaced: Vec<ObjectRecord>,
        context: Context,
    ) -> S3Result<()> {
        self.cluster
            .put(object_record(bucket, key), record.encode(), context)
            .await?;
        data::discard(&self.cluster, &self.layout, bucket, key, &replaced).await
    }

    /// The object a copy reads, once the signer's right to read it and
    /// the copy's conditions are checked.
    pub(super) async fn copy_source(
        &self,
        id: &str,
        source: &CopySource,
        conditions: Conditions<'_>,
    ) -> S3Result<ObjectRecord> {
        let CopySource::Bucket { bucket, key, .. } = source else {
            return Err(s3_error!(NotImplemented, "copy sources are bucket/key"));
        };
        self.authorize(id, bucket, super::Needed::Read).await?;
        let (record, _, _) = self.object(bucket, key).await?;
        let record = record.ok_or_else(|| s3_error!(NoSuchKey, "no such source key"))?;
        conditions.check(&record, S3ErrorCode::PreconditionFailed)?;
        Ok(record)
    }

    async fn delete_one(&self, bucket: &str, key: &str) -> S3Result<()> {
        let (_, replaced, context) = self.object(bucket, key).await?;
        if replaced.is_empty() {
            return Ok(());
        }
        self.cluster.delete(object_record(bucket, key), context).await?;
        data::discard(&self.cluster, &self.layout, bucket, key, &replaced).await
    }
}

/// The bytes of part `number` of an object (a simple object is one part).
fn part_range(record: &ObjectRecord, number: i32) -> S3Result<std::ops::Range<u64>> {
    let invalid = || s3_error!(InvalidPart, "the object has no part {number}");
    if record.parts == 0 {
        return if number == 1 {
            Ok(0..record.size)
        } else {
            Err(invalid())
        };
    }
    let index = usize::try_from(number)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .ok_or_else(invalid)?;
    let extent = record.extents.get(index).ok_or_else(invalid)?;
    let start: u64 = record.extents[..index].iter().map(|e| e.size).sum();
    Ok(start..start + extent.size)
}

/// Refuses a body that does not match its Content-MD5.
pub(super) fn check_md5(given: Option<&str>, md5: &[u8; 16]) -> S3Result<()> {
    let Some(given) = given else {
        return Ok(());
    };
    let given = base64::engine::general_purpose::STANDARD
        .decode(given.trim())
        .map_err(|_| s3_error!(InvalidDigest, "Content-MD5 is not base64"))?;
    if given != md5 {
        return Err(s3_error!(BadDigest, "the body does not match Content-MD5"));
    }
    Ok(())
}

fn head_output(record: &ObjectRecord) -> HeadObjectOutput {
    let header = |name: &str| record.headers.get(name).cloned();
    HeadObjectOutput {
        accept_ranges: Some("bytes".to_string()),
        content_length: Some(record.size as i64),
        content_type: record.content_type.clone(),
        e_tag: Some(etag_of(record)),
        last_modified: Some(last_modified(record)),
        metadata: (!record.metadata.is_empty()).then(|| record.metadata.clone().into_iter().collect()),
        cache_control: header("cache-control"),
        content_disposition: header("content-disposition"),
        content_encoding: header("content-encoding"),
        content_language: header("content-language"),
        expires: header("expires").and_then(|e| Timestamp::parse(TimestampFormat::HttpDate, &e).ok()),
        parts_count: (record.parts > 0).then_some(record.parts as i32),
        ..Default::default()
    }
}

fn list_entry(name: &str, record: &ObjectRecord, encode: bool) -> Object {
    Object {
        key: Some(if encode {
            url_encode(name)
        } else {
            name.to_string()
        }),
        e_tag: Some(etag_of(record)),
        last_modified: Some(last_modified(record)),
        size: Some(record.size as i64),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        owner: None,
        ..Default::default()
    }
}

fn prefixes(page: &listing::Page, encode: bool) -> Option<Vec<CommonPrefix>> {
    Some(
        page.prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(if encode { url_encode(p) } else { p.clone() }),
            })
            .collect(),
    )
}

fn max_keys(given: Option<i32>) -> S3Result<usize> {
    match given {
        None => Ok(listing::MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys may not be negative")),
        Some(n) => Ok(n as usize),
    }
}

fn wants_url(encoding: &Option<EncodingType>) -> S3Result<bool> {
    match encoding {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => Err(s3_error!(InvalidArgument, "encoding-type may only be url")),
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let max = match req.input.max_buckets {
            Some(n) if !(1..=10_000).contains(&n) => {
                return Err(s3_error!(InvalidArgument, "max-buckets is 1 to 10000"));
            }
            Some(n) => n as usize,
            None => 10_000,
        };
        let token = req.input.continuation_token.as_deref();
        Ok(S3Response::new(
            self.list_buckets_of(signer(&req)?, token, max).await?,
        ))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let location = req
            .input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            .map(|l| l.as_str().to_string())
            .filter(|l| !l.is_empty());
        let output = self
            .create_bucket_for(signer(&req)?, &req.input.bucket, location)
            .await?;
        Ok(S3Response::new(output))
    }

    async fn head_bucket(&self, _req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        // The access check found the bucket and the right to read it.
        empty()
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        Ok(S3Response::new(self.location(&req.input.bucket).await?))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.delete_bucket_named(&req.input.bucket).await?;
        empty()
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let owner = signer(&req)?.to_string();
        let input = req.input;
        let (bucket, key) = (input.bucket.as_str(), input.key.as_str());
        check_key(key)?;
        let (current, replaced, context) = self.object(bucket, key).await?;
        check_write_conditions(
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            current.as_ref(),
        )?;
        let body = input.body.unwrap_or_else(|| {
            StreamingBlob::wrap(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>())
        });
        let written = data::write_body(
            &self.cluster,
            &self.layout,
            body,
            MAX_PUT_BYTES,
            Self::garbage(bucket, key, None),
        )
        .await?;
        if let Some(length) = input.content_length
            && length as u64 != written.size
        {
            return Err(s3_error!(
                IncompleteBody,
                "the body is shorter than Content-Length"
            ));
        }
        check_md5(input.content_md5.as_deref(), &written.md5)?;
        let attributes = Attributes::new(input.content_type, &req.headers, input.metadata);
        let record = self
            .commit(&owner, (bucket, key), written, attributes, (replaced, context))
            .await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag_of(&record)),
            ..Default::default()
        }))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let (record, _, _) = self.object(&input.bucket, &input.key).await?;
        let record = record.ok_or_else(|| s3_error!(NoSuchKey, "no such key"))?;
        Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        }
        .check(&record, S3ErrorCode::NotModified)?;
        let (range, partial) = match (&input.range, input.part_number) {
            (Some(_), Some(_)) => {
                return Err(s3_error!(
                    InvalidRequest,
                    "ask for a range or a part number, not both"
                ));
            }
            (Some(range), None) => (
                range
                    .check(record.size)
                    .map_err(|_| s3_error!(InvalidRange, "the range is not satisfiable"))?,
                true,
            ),
            (None, Some(number)) => (part_range(&record, number)?, true),
            (None, None) => (0..record.size, false),
        };
        let head = head_output(&record);
        let body = data::read_body(&self.cluster, &record, range.clone());
        let output = GetObjectOutput {
            body: Some(body),
            accept_ranges: head.accept_ranges,
            content_length: Some((range.end - range.start) as i64),
            content_range: partial
                .then(|| format!("bytes {}-{}/{}", range.start, range.end.max(1) - 1, record.size)),
            content_type: input.response_content_type.or(head.content_type),
            e_tag: head.e_tag,
            last_modified: head.last_modified,
            metadata: head.metadata,
            cache_control: input.response_cache_control.or(head.cache_control),
            content_disposition: input.response_content_disposition.or(head.content_disposition),
            content_encoding: input.response_content_encoding.or(head.content_encoding),
            content_language: input.response_content_language.or(head.content_language),
            expires: head.expires,
            parts_count: input
                .part_number
                .map(|_| record.parts.max(1) as i32)
                .or(head.parts_count),
            ..Default::default()
        };
        let mut response = S3Response::new(output);
        if partial {
            response.status = Some(hyper::http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(response)
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let (record, _, _) = self.object(&input.bucket, &input.key).await?;
        let record = record.ok_or_else(|| s3_error!(NoSuchKey, "no such key"))?;
        Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        }
        .check(&record, S3ErrorCode::NotModified)?;
        let mut head = head_output(&record);
        if let Some(number) = input.part_number {
            let range = part_range(&record, number)?;
            head.content_length = Some((range.end - range.start) as i64);
            head.parts_count = Some(record.parts.max(1) as i32);
        }
        Ok(S3Response::new(head))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.delete_one(&req.input.bucket, &req.input.key).await?;
        empty()
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 objects per request"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for object in input.delete.objects {
            match self.delete_one(&input.bucket, &object.key).await {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(object.key),
                    ..Default::default()
                }),
                Err(error) => errors.push(Error {
                    code: Some(error.code().as_str().to_string()),
                    key: Some(object.key),
                    message: error.message().map(str::to_string),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let id = signer(&req)?.to_string();
        let input = req.input;
        let CopySource::Bucket {
            bucket: source_bucket,
            key: source_key,
            ..
        } = &input.copy_source
        else {
            return Err(s3_error!(NotImplemented, "copy sources are bucket/key"));
        };
        check_key(&input.key)?;
        let source = self
            .copy_source(
                &id,
                &input.copy_source,
                Conditions {
                    if_match: input.copy_source_if_match.as_ref(),
                    if_none_match: input.copy_source_if_none_match.as_ref(),
                    if_modified_since: input.copy_source_if_modified_since.as_ref(),
                    if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
                },
            )
            .await?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && **source_bucket == *input.bucket && **source_key == *input.key {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let attributes = if replace {
            Attributes::new(input.content_type, &req.headers, input.metadata)
        } else {
            Attributes::of(&source)
        };
        let (_, replaced, context) = self.object(&input.bucket, &input.key).await?;
        let written = data::copy_data(
            &self.cluster,
            &self.layout,
            &source,
            Self::garbage(&input.bucket, &input.key, None),
        )
        .await?;
        let record = self
            .commit(
                &id,
                (&input.bucket, &input.key),
                written,
                attributes,
                (replaced, context),
            )
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag_of(&record)),
                last_modified: Some(last_modified(&record)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let encode = wants_url(&input.encoding_type)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = max_keys(input.max_keys)?;
        let page = listing::list(
            &self.cluster,
            &listing::Query {
                bucket: &input.bucket,
                prefix: &prefix,
                delimiter: input.delimiter.as_deref(),
                after: input.marker.as_deref().filter(|m| !m.is_empty()),
                max_keys: max,
            },
        )
        .await?;
        let next_marker = (page.truncated && input.delimiter.is_some())
            .then(|| page.last.clone())
            .flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(prefix),
            marker: Some(input.marker.unwrap_or_default()),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            contents: Some(
                page.objects
                    .iter()
                    .map(|(n, r)| list_entry(n, r, encode))
                    .collect(),
            ),
            common_prefixes: prefixes(&page, encode),
            delimiter: input.delimiter.filter(|d| !d.is_empty()),
            next_marker,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let encode = wants_url(&input.encoding_type)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = max_keys(input.max_keys)?;
        let token = match &input.continuation_token {
            Some(token) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "the continuation token is not one this gateway gave"
                        )
                    })?,
            ),
            None => None,
        };
        let after = token
            .as_deref()
            .or(input.start_after.as_deref())
            .filter(|m| !m.is_empty());
        let page = listing::list(
            &self.cluster,
            &listing::Query {
                bucket: &input.bucket,
                prefix: &prefix,
                delimiter: input.delimiter.as_deref(),
                after,
                max_keys: max,
            },
        )
        .await?;
        let fetch_owner = input.fetch_owner.unwrap_or(false);
        let contents: Vec<Object> = page
            .objects
            .iter()
            .map(|(n, r)| Object {
                owner: fetch_owner.then(|| owner(&r.owner)),
                ..list_entry(n, r, encode)
            })
            .collect();
        let next = page
            .truncated
            .then(|| {
                page.last
                    .as_ref()
                    .map(|last| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last))
            })
            .flatten();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(prefix),
            max_keys: Some(max as i32),
            key_count: Some((contents.len() + page.prefixes.len()) as i32),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.truncated),
            next_continuation_token: next,
            common_prefixes: prefixes(&page, encode),
            contents: Some(contents),
            delimiter: input.delimiter.filter(|d| !d.is_empty()),
            encoding_type: input.encoding_type,
            start_after: input.start_after,
            ..Default::default()
        }))
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        Ok(S3Response::new(self.bucket_acl(&req.input.bucket).await?))
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        Ok(S3Response::new(
            self.object_acl(&req.input.bucket, &req.input.key).await?,
        ))
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        self.set_bucket_acl(&req.input).await?;
        empty()
    }

    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        self.set_object_acl(&req.input).await?;
        empty()
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.create_upload(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.copy_part(req).await
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        self.put_part(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.complete_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.abort_upload(req).await
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        self.parts(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.uploads(req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let encode = wants_url(&input.encoding_type)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = max_keys(input.max_keys)?;
        let page = listing::list(
            &self.cluster,
            &listing::Query {
                bucket: &input.bucket,
                prefix: &prefix,
                delimiter: input.delimiter.as_deref(),
                after: input.key_marker.as_deref().filter(|m| !m.is_empty()),
                max_keys: max,
            },
        )
        .await?;
        let versions = page
            .objects
            .iter()
            .map(|(name, record)| ObjectVersion {
                key: Some(if encode { url_encode(name) } else { name.clone() }),
                version_id: Some("null".to_string()),
                is_latest: Some(true),
                e_tag: Some(etag_of(record)),
                last_modified: Some(last_modified(record)),
                size: Some(record.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(prefix),
            max_keys: Some(max as i32),
            is_truncated: Some(page.truncated),
            key_marker: input.key_marker,
            next_key_marker: page.truncated.then(|| page.last.clone()).flatten(),
            next_version_id_marker: page.truncated.then(|| "null".to_string()),
            common_prefixes: prefixes(&page, encode),
            versions: Some(versions),
            delimiter: input.delimiter.filter(|d| !d.is_empty()),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}
