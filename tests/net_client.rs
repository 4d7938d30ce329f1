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
        assert_eq!(read.values[0].value, b"v");

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
        assert_eq!(read.values[0].value, b"v");

        let report = client.admin().status(running[0]).await.unwrap();
        assert_eq!(report.members.iter().filter(|m| m.up).count(), 2);
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}
