//! Listing a bucket's objects (ListObjects v1 and v2, ListObjectVersions)
//! on the cluster's listing operation: a page costs O(page), whatever the
//! bucket's size. A common prefix (with a delimiter) is one entry, and the
//! listing jumps past every key under it.

use super::store::{Cluster, ObjectRecord};
use crate::net::s3::object_prefix;
use crate::proto::message::{MAX_LIST_LIMIT, after, prefix_end};
use s3s::S3Result;

/// What a listing asks for.
pub struct Query<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// List after this key (exclusive): a marker, a start-after or a
    /// continuation token's key.
    pub after: Option<&'a str>,
    pub max_keys: usize,
}

/// One page.
#[derive(Default)]
pub struct Page {
    pub objects: Vec<(String, ObjectRecord)>,
    pub prefixes: Vec<String>,
    /// Whether more follow.
    pub truncated: bool,
    /// The last key or common prefix in the page.
    pub last: Option<String>,
}

/// The most keys a page may have.
pub const MAX_KEYS: usize = 1000;

/// The common prefix `name` rolls up into, if any.
fn common_prefix<'a>(name: &'a str, prefix: &str, delimiter: Option<&str>) -> Option<&'a str> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let rest = name.get(prefix.len()..)?;
    let at = rest.find(delimiter)?;
    Some(&name[..prefix.len() + at + delimiter.len()])
}

/// Lists one page.
pub async fn list(cluster: &Cluster, query: &Query<'_>) -> S3Result<Page> {
    let base = object_prefix(query.bucket);
    let range_start = [base.as_slice(), query.prefix.as_bytes()].concat();
    let end = prefix_end(&range_start);
    let mut from = range_start.clone();
    if let Some(marker) = query.after {
        let marker_key = [base.as_slice(), marker.as_bytes()].concat();
        // A marker that is a common prefix: everything under it was that
        // one entry.
        let past = match common_prefix(marker, query.prefix, query.delimiter) {
            Some(group) if group == marker => prefix_end(&marker_key),
            _ => Some(after(&marker_key)),
        };
        match past {
            Some(past) if past > from => from = past,
            Some(_) => {}
            None => return Ok(Page::default()),
        }
    }
    let mut page = Page::default();
    let max_keys = query.max_keys.min(MAX_KEYS);
    if max_keys == 0 {
        return Ok(page);
    }
    'pages: loop {
        if end.as_ref().is_some_and(|end| &from >= end) {
            return Ok(page);
        }
        let wanted = (max_keys - page.objects.len() - page.prefixes.len() + 1).min(MAX_LIST_LIMIT as usize);
        let (keys, next) = cluster
            .list(from.clone(), end.clone(), wanted as u32, true)
            .await?;
        for listed in keys {
            let Ok(name) = std::str::from_utf8(&listed.key[base.len()..]) else {
                from = after(&listed.key);
                continue;
            };
            let name = name.to_string();
            if let Some(group) = common_prefix(&name, query.prefix, query.delimiter) {
                if page.objects.len() + page.prefixes.len() == max_keys {
                    page.truncated = true;
                    return Ok(page);
                }
                let group = group.to_string();
                match prefix_end(&[base.as_slice(), group.as_bytes()].concat()) {
                    Some(past) => from = past,
                    None => {
                        page.prefixes.push(group.clone());
                        page.last = Some(group);
                        return Ok(page);
                    }
                }
                page.prefixes.push(group.clone());
                page.last = Some(group);
                continue 'pages;
            }
            from = after(&listed.key);
            let Some(record) = ObjectRecord::winner(&listed.values) else {
                continue;
            };
            if page.objects.len() + page.prefixes.len() == max_keys {
                page.truncated = true;
                return Ok(page);
            }
            page.last = Some(name.clone());
            page.objects.push((name, record));
        }
        match next {
            Some(next) => from = from.max(after(&next)),
            None => return Ok(page),
        }
    }
}

/// `text` percent-encoded as S3 does for `encoding-type=url`: everything
/// but unreserved characters and `/`.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes_roll_up_at_the_first_delimiter_after_the_prefix() {
        assert_eq!(common_prefix("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", Some("/")), None);
        assert_eq!(common_prefix("a/b", "", None), None);
        assert_eq!(common_prefix("a/b", "", Some("")), None);
        assert_eq!(common_prefix("abcXdef", "ab", Some("X")), Some("abcX"));
        assert_eq!(url_encode("a b/ü+"), "a%20b/%C3%BC%2B");
    }
}
