//! The client surface: a builder's settings take effect, clones share one
//! connection pool and ring, and operator calls live on their own type.

mod common;

use common::{TestCluster, run};
use shoal::proto::RequestError;
use shoal::{Client, ClientError, Consistency, Context, ReadOptions, WriteOptions};
use std::time::Duration;

#[test]
fn a_built_client_applies_its_default_consistency_and_clones_share_it() {
    run(Duration::from_secs(90), async {
        let mut cluster = TestCluster::start(3).await.unwrap();
        cluster
            .ready_client(Duration::from_secs(20))
            .await
            .unwrap()
            .close()
            .await;
        let client = Client::builder(cluster.credentials().unwrap())
            .seeds(cluster.addrs.clone())
            .default_consistency(Consistency::All)
            .attempt_timeout(Duration::from_secs(2))
            .connect()
            .await
            .unwrap();
        let context = client
            .put_with("k", "v", &Context::empty(), WriteOptions::default())
            .await
            .unwrap();
        assert!(!context.is_empty());

        // A clone, used from another task, reads what the original wrote.
        let clone = client.clone();
        let read = tokio::spawn(async move { clone.get_with("k", ReadOptions::default()).await })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.values[0].value, &b"v"[..]);

        cluster.stop(2).await.unwrap();
        let running = cluster.running();
        client
            .admin()
            .wait_until_members_up(&running, 2, Duration::from_secs(20))
            .await
            .unwrap();
        // The default (ALL) now needs a stopped node; an explicit level does not.
        let error = client.get_with("k", ReadOptions::default()).await.unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Request(RequestError::QuorumNotMet { required: 3, .. })
            ),
            "{error:?}"
        );
        let read = client
            .get_with(
                "k",
                ReadOptions::new(Consistency::Quorum).timeout(Duration::from_secs(2)),
            )
            .await
            .unwrap();
        assert_eq!(read.values[0].value, &b"v"[..]);

        let report = client.admin().status(running[0]).await.unwrap();
        assert_eq!(report.members.iter().filter(|m| m.up).count(), 2);
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

/// A put with a time to live, on real nodes: read before it passes, absent
/// after, from every node; a time to live under the nodes' minimum is
/// refused with its own error.
#[test]
fn a_put_with_a_time_to_live_expires_on_real_nodes() {
    run(Duration::from_secs(90), async {
        let cluster = TestCluster::start(3).await.unwrap();
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        let options = WriteOptions::new(Consistency::All).ttl(Duration::from_secs(2));
        client
            .put_with("session", "token", &Context::empty(), options)
            .await
            .unwrap();
        let read = client.get("session", Consistency::All).await.unwrap();
        assert_eq!(read.values.len(), 1);
        assert_eq!(read.values[0].value, &b"token"[..]);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        for addr in cluster.running() {
            let read = client.get_via(addr, "session", Consistency::One).await.unwrap();
            assert!(
                read.values.is_empty(),
                "{addr} still serves it: {:?}",
                read.values
            );
        }
        let too_short = WriteOptions::new(Consistency::All).ttl(Duration::from_millis(10));
        let error = client
            .put_with("session", "x", &Context::empty(), too_short)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Request(RequestError::BadTtl { ttl_ms: 10, .. })
            ),
            "{error:?}"
        );
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}
