//! Virtual-host-style buckets (`<bucket>.<domain>`) beside path style.
//!
//! With a root domain set, a request whose `Host` is `<bucket>.<domain>`
//! (any port, any letter case) addresses that bucket; every other host
//! (the domain itself, an IP address, `localhost`, another name) is read
//! as path style, so path style always works. A bare host is never taken
//! as a bucket name.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The `S3Host` of a gateway with a root domain.
#[derive(Debug)]
pub(super) struct RootDomain {
    /// Lowercase, without a port.
    domain: String,
}

impl RootDomain {
    /// `domain` is a DNS name: dot-separated labels of letters, digits and
    /// hyphens.
    pub(super) fn new(domain: &str) -> Result<Self, String> {
        let valid = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return Err(format!(
                "`{domain}` is not a domain name (labels of letters, digits and hyphens, without a port)"
            ));
        }
        Ok(RootDomain {
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// The bucket `host` addresses, if any.
    fn bucket_of(&self, host: &str) -> Option<String> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let name = name.to_ascii_lowercase();
        let bucket = name.strip_suffix(self.domain.as_str())?.strip_suffix('.')?;
        (!bucket.is_empty()).then(|| bucket.to_string())
    }
}

impl S3Host for RootDomain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let virtual_host = VirtualHost::new(self.domain.as_str());
        Ok(match self.bucket_of(host) {
            Some(bucket) => virtual_host.with_bucket(bucket),
            None => virtual_host,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(domain: &str, host: &str) -> Option<String> {
        let root = RootDomain::new(domain).unwrap();
        let parsed = root.parse_host_header(host).unwrap();
        parsed.bucket().map(str::to_string)
    }

    #[test]
    fn a_subdomain_of_the_root_is_a_bucket_whatever_the_port_and_case() {
        assert_eq!(bucket("s3.test", "photos.s3.test"), Some("photos".into()));
        assert_eq!(bucket("s3.test", "photos.s3.test:9000"), Some("photos".into()));
        assert_eq!(bucket("S3.Test", "Photos.S3.TEST:443"), Some("photos".into()));
        assert_eq!(
            bucket("s3.test", "my.dotted.bucket.s3.test"),
            Some("my.dotted.bucket".into())
        );
    }

    #[test]
    fn every_other_host_is_path_style() {
        for host in [
            "s3.test",
            "s3.test:9000",
            "localhost",
            "localhost:9000",
            "node1.example.com:9000",
            "xs3.test",
            ".s3.test",
        ] {
            assert_eq!(bucket("s3.test", host), None, "{host}");
        }
    }

    #[test]
    fn a_root_that_is_not_a_domain_name_is_refused() {
        for domain in ["", "s3.test:9000", "a..b", "-s3.test", "s3_test", "s3.test."] {
            assert!(RootDomain::new(domain).is_err(), "{domain}");
        }
        assert!(RootDomain::new("s3.example-1.com").is_ok());
    }
}
