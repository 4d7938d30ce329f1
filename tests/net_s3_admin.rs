//! The object gateway's access keys, buckets and rights live in the
//! cluster as system records: `shoal s3 key|bucket|allow` on real nodes.

mod common;

use common::{TestCluster, run, shoal_cli};
use shoal::{Consistency, Context};
use std::time::Duration;

#[test]
fn keys_buckets_and_rights_are_managed_in_the_cluster() {
    run(Duration::from_secs(90), async {
        let cluster = TestCluster::start(3).await.unwrap();
        let admin = cluster.ready_client(Duration::from_secs(30)).await.unwrap();
        let node = cluster.addrs[1].to_string();
        let dir = cluster.cluster_dir().display().to_string();
        let s3 = |args: &[&str]| {
            let mut all = vec!["s3"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["--node", &node, "--cluster-dir", &dir]);
            let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
            async move {
                tokio::task::spawn_blocking(move || {
                    let args: Vec<&str> = all.iter().map(String::as_str).collect();
                    let output = shoal_cli(&args);
                    (
                        output.status.success(),
                        String::from_utf8_lossy(&output.stdout).into_owned(),
                        String::from_utf8_lossy(&output.stderr).into_owned(),
                    )
                })
                .await
                .unwrap()
            }
        };

        // A key: its id and secret are printed once; listing never shows
        // the secret.
        let (ok, out, _) = s3(&["key", "create", "photo-app"]).await;
        assert!(ok, "{out}");
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap()
        };
        let (id, secret) = (field("access key id:"), field("secret access key:"));
        assert_eq!((id.len(), secret.len()), (20, 40));
        let (_, listed, _) = s3(&["key", "list"]).await;
        assert!(listed.contains(&id) && listed.contains("photo-app"), "{listed}");
        assert!(!listed.contains(&secret), "the secret is never listed");

        // Buckets: S3's naming rules, no duplicates.
        assert!(s3(&["bucket", "create", "photos"]).await.0);
        let (ok, _, err) = s3(&["bucket", "create", "photos"]).await;
        assert!(!ok && err.contains("exists"), "{err}");
        let (ok, _, err) = s3(&["bucket", "create", "Bad_Name"]).await;
        assert!(!ok && err.contains("lowercase"), "{err}");

        // Rights, added up; unknown keys and buckets refused.
        assert!(s3(&["allow", &id, "photos", "--read"]).await.0);
        assert!(s3(&["allow", &id, "photos", "--write"]).await.0);
        let (_, buckets, _) = s3(&["bucket", "list"]).await;
        assert!(buckets.contains(&format!("photos  {id}:read+write")), "{buckets}");
        let (ok, _, err) = s3(&["allow", "SH000000000000000000", "photos", "--read"]).await;
        assert!(!ok && err.contains("no S3 key"), "{err}");
        let (ok, _, err) = s3(&["allow", &id, "nosuch", "--read"]).await;
        assert!(!ok && err.contains("no bucket"), "{err}");
        let (ok, _, err) = s3(&["allow", &id, "photos"]).await;
        assert!(!ok && err.contains("at least one"), "{err}");

        // A bucket that holds an object is not deleted; an empty one is.
        let object = [shoal::net::s3::object_prefix("photos"), b"cat.jpg".to_vec()].concat();
        admin
            .put(&object, "meta", &Context::empty(), Consistency::Quorum)
            .await
            .unwrap();
        let (ok, _, err) = s3(&["bucket", "delete", "photos"]).await;
        assert!(!ok && err.contains("not empty"), "{err}");
        let read = admin.get(&object, Consistency::Quorum).await.unwrap();
        admin
            .delete(&object, &read.context, Consistency::Quorum)
            .await
            .unwrap();
        assert!(s3(&["bucket", "delete", "photos"]).await.0);
        let (_, buckets, _) = s3(&["bucket", "list"]).await;
        assert!(!buckets.contains("photos"), "{buckets}");

        // Keys are deleted once.
        assert!(s3(&["key", "delete", &id]).await.0);
        let (ok, _, err) = s3(&["key", "delete", &id]).await;
        assert!(!ok && err.contains("no access key"), "{err}");
        admin.close().await;
        cluster.shutdown().await.unwrap();
    });
}
