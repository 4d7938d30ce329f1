//! Bucket operations: list, create, head, locate, delete.

use super::Gateway;
use super::store::{Cluster, now_ms};
use crate::net::s3::{BUCKET_PREFIX, BucketRecord, Rights, bucket_record, check_bucket_name, object_prefix};
use crate::proto::Consistency;
use crate::proto::message::{MAX_LIST_LIMIT, after, prefix_end};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::time::{Duration, UNIX_EPOCH};

/// The signer of a request (the access check refuses anonymous ones
/// before any operation runs).
pub fn signer<T>(request: &S3Request<T>) -> S3Result<&str> {
    request
        .credentials
        .as_ref()
        .map(|c| c.access_key.as_str())
        .ok_or_else(|| s3_error!(AccessDenied, "anonymous requests are refused"))
}

/// A time in seconds since the Unix epoch, as S3 shows it.
pub fn timestamp_secs(secs: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The owner shown in listings: the access key.
pub fn owner(id: &str) -> Owner {
    Owner {
        display_name: Some(id.to_string()),
        id: Some(id.to_string()),
    }
}

impl Gateway {
    /// The buckets key `id` has rights on, in name order, after `token`
    /// (a name), at most `max`; and the token for more.
    pub(super) async fn list_buckets_of(
        &self,
        id: &str,
        token: Option<&str>,
        max: usize,
    ) -> S3Result<ListBucketsOutput> {
        let mut buckets = Vec::new();
        let end = prefix_end(BUCKET_PREFIX);
        let mut start = BUCKET_PREFIX.to_vec();
        loop {
            let (keys, next) = self
                .cluster
                .list(start, end.clone(), MAX_LIST_LIMIT, true)
                .await?;
            for listed in keys {
                let Ok(name) = std::str::from_utf8(&listed.key[BUCKET_PREFIX.len()..]) else {
                    continue;
                };
                let Some(record) = BucketRecord::from_values(&listed.values) else {
                    continue;
                };
                if record
                    .rights
                    .get(id)
                    .is_some_and(|r| r.read || r.write || r.owner)
                {
                    buckets.push(Bucket {
                        name: Some(name.to_string()),
                        creation_date: Some(timestamp_secs(record.created)),
                        bucket_region: None,
                    });
                }
            }
            match next {
                Some(next) => start = after(&next),
                None => break,
            }
        }
        let mut buckets: Vec<Bucket> = buckets
            .into_iter()
            .filter(|b| token.is_none_or(|t| b.name.as_deref().is_some_and(|n| n > t)))
            .collect();
        let more = buckets.len() > max;
        buckets.truncate(max);
        let continuation_token = more
            .then(|| buckets.last().and_then(|b| b.name.clone()))
            .flatten();
        Ok(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner(id)),
            continuation_token,
            ..Default::default()
        })
    }

    pub(super) async fn create_bucket_for(
        &self,
        id: &str,
        name: &str,
        location: Option<String>,
    ) -> S3Result<CreateBucketOutput> {
        let key = self
            .key(id)
            .await?
            .ok_or_else(|| s3_error!(InvalidAccessKeyId, "no such access key"))?;
        if !key.create_buckets {
            return Err(s3_error!(
                AccessDenied,
                "this access key may not create buckets (shoal s3 key create --create-bucket)"
            ));
        }
        check_bucket_name(name).map_err(|reason| s3_error!(InvalidBucketName, "{reason}"))?;
        let (values, context) = self.cluster.get(bucket_record(name), Consistency::Quorum).await?;
        if let Some(existing) = BucketRecord::from_values(&values) {
            let owned = existing.rights.get(id).is_some_and(|r| r.owner);
            // As S3 in us-east-1: making a bucket one owns again succeeds
            // and changes nothing.
            if owned && self.region == "us-east-1" {
                return Ok(CreateBucketOutput {
                    location: Some(format!("/{name}")),
                });
            }
            return Err(if owned {
                s3_error!(BucketAlreadyOwnedByYou, "you own this bucket already")
            } else {
                s3_error!(BucketAlreadyExists, "the bucket exists")
            });
        }
        let record = BucketRecord {
            location,
            created: now_ms() / 1000,
            rights: [(
                id.to_string(),
                Rights {
                    read: true,
                    write: true,
                    owner: true,
                },
            )]
            .into(),
        };
        self.cluster
            .put(bucket_record(name), record.encode(), context)
            .await?;
        self.buckets.put(name, record);
        Ok(CreateBucketOutput {
            location: Some(format!("/{name}")),
        })
    }

    pub(super) async fn delete_bucket_named(&self, name: &str) -> S3Result<()> {
        if !is_empty(&self.cluster, &object_prefix(name)).await? {
            return Err(s3_error!(BucketNotEmpty, "the bucket holds objects"));
        }
        // Uploads under way do not keep a bucket (as on S3): they are
        // aborted, their parts garbage.
        self.abort_all_uploads(name).await?;
        let (values, context) = self.cluster.get(bucket_record(name), Consistency::Quorum).await?;
        if values.is_empty() {
            return Err(s3_error!(NoSuchBucket, "no such bucket"));
        }
        self.cluster.delete(bucket_record(name), context).await?;
        self.buckets.forget(name);
        Ok(())
    }

    /// Where bucket `name` is: the location it was made with, else this
    /// gateway's region (none for us-east-1, as S3 says).
    pub(super) async fn location(&self, name: &str) -> S3Result<GetBucketLocationOutput> {
        let record = self
            .bucket(name)
            .await?
            .ok_or_else(|| s3_error!(NoSuchBucket, "no such bucket"))?;
        let location = record
            .location
            .or_else(|| (self.region != "us-east-1").then(|| self.region.clone()));
        Ok(GetBucketLocationOutput {
            location_constraint: location.map(BucketLocationConstraint::from),
        })
    }
}

/// Whether no live key starts with `prefix`.
async fn is_empty(cluster: &Cluster, prefix: &[u8]) -> S3Result<bool> {
    let (keys, _) = cluster
        .list(prefix.to_vec(), prefix_end(prefix), 1, false)
        .await?;
    Ok(keys.is_empty())
}

/// The response for an operation with nothing to say.
pub fn empty<T: Default>() -> S3Result<S3Response<T>> {
    Ok(S3Response::new(T::default()))
}
