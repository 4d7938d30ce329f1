//! ACLs, as far as shoal has them: rights are given per access key by
//! `shoal s3 allow`, and nothing is public. GetBucketAcl and GetObjectAcl
//! show those rights as grants; PutBucketAcl and PutObjectAcl accept the
//! canned ACL `private` (what every bucket and object already is) and
//! refuse anything else as not implemented.

use super::Gateway;
use super::buckets::owner;
use crate::net::s3::BucketRecord;
use s3s::dto::*;
use s3s::{S3Result, s3_error};

/// The grants a bucket's record gives, and its owner (the first key that
/// owns it).
fn grants(record: &BucketRecord) -> (Option<Owner>, Vec<Grant>) {
    let mut grants = Vec::new();
    let grant = |id: &str, permission: &'static str| Grant {
        grantee: Some(Grantee {
            display_name: Some(id.to_string()),
            email_address: None,
            id: Some(id.to_string()),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(permission)),
    };
    for (id, rights) in &record.rights {
        if rights.owner {
            grants.push(grant(id, Permission::FULL_CONTROL));
            continue;
        }
        if rights.read {
            grants.push(grant(id, Permission::READ));
        }
        if rights.write {
            grants.push(grant(id, Permission::WRITE));
        }
    }
    let first_owner = record
        .rights
        .iter()
        .find(|(_, r)| r.owner)
        .map(|(id, _)| owner(id));
    (first_owner, grants)
}

/// Refuses an ACL change other than the canned `private`.
fn only_private(canned: Option<&str>, explicit: bool) -> S3Result<()> {
    match canned {
        Some("private") if !explicit => Ok(()),
        _ => Err(s3_error!(
            NotImplemented,
            "only the canned ACL `private` is supported; give keys rights with `shoal s3 allow`"
        )),
    }
}

impl Gateway {
    pub(super) async fn bucket_acl(&self, bucket: &str) -> S3Result<GetBucketAclOutput> {
        let record = self
            .bucket(bucket)
            .await?
            .ok_or_else(|| s3_error!(NoSuchBucket, "no such bucket"))?;
        let (owner, grants) = grants(&record);
        Ok(GetBucketAclOutput {
            grants: Some(grants),
            owner,
        })
    }

    pub(super) async fn object_acl(&self, bucket: &str, key: &str) -> S3Result<GetObjectAclOutput> {
        if self.object(bucket, key).await?.0.is_none() {
            return Err(s3_error!(NoSuchKey, "no such key"));
        }
        let acl = self.bucket_acl(bucket).await?;
        Ok(GetObjectAclOutput {
            grants: acl.grants,
            owner: acl.owner,
            ..Default::default()
        })
    }

    pub(super) async fn set_bucket_acl(&self, input: &PutBucketAclInput) -> S3Result<()> {
        let explicit = input.access_control_policy.is_some()
            || input.grant_full_control.is_some()
            || input.grant_read.is_some()
            || input.grant_read_acp.is_some()
            || input.grant_write.is_some()
            || input.grant_write_acp.is_some();
        only_private(input.acl.as_ref().map(|a| a.as_str()), explicit)
    }

    pub(super) async fn set_object_acl(&self, input: &PutObjectAclInput) -> S3Result<()> {
        if self.object(&input.bucket, &input.key).await?.0.is_none() {
            return Err(s3_error!(NoSuchKey, "no such key"));
        }
        let explicit = input.access_control_policy.is_some()
            || input.grant_full_control.is_some()
            || input.grant_read.is_some()
            || input.grant_read_acp.is_some()
            || input.grant_write_acp.is_some();
        only_private(input.acl.as_ref().map(|a| a.as_str()), explicit)
    }
}
