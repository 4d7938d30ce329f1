//! Only holders of a certificate from this cluster's CA get in.

mod common;

use common::{TestCluster, run};
use shoal::node::NodeOptions;
use shoal::{Client, ClientError, Consistency, Context, Credentials};
use std::time::Duration;

#[test]
fn a_client_with_a_foreign_certificate_cannot_read_or_write() {
    run(Duration::from_secs(60), async {
        let cluster = TestCluster::start(3).await.unwrap();
        let owner = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        owner
            .put("secret", "v", &Context::empty(), Consistency::All)
            .await
            .unwrap();

        let other = tempfile::tempdir().unwrap();
        shoal::net::tls::init_cluster_dir(other.path()).unwrap();
        let foreign = Credentials::from_cluster_dir(other.path()).unwrap();
        let error = Client::connect(&cluster.addrs, foreign)
            .await
            .err()
            .expect("foreign client refused");
        assert!(matches!(error, ClientError::Unreachable { .. }), "{error}");

        // Nothing changed: the value is still the owner's.
        let read = owner.get("secret", Consistency::All).await.unwrap();
        assert_eq!(read.values.len(), 1);
        assert_eq!(read.values[0].value, &b"v"[..]);
        owner.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn a_node_from_another_cluster_cannot_join() {
    run(Duration::from_secs(60), async {
        let cluster = TestCluster::start(2).await.unwrap();
        cluster
            .wait_until_members_up(2, Duration::from_secs(20))
            .await
            .unwrap();

        let other = tempfile::tempdir().unwrap();
        let other_cluster = other.path().join("cluster");
        shoal::net::tls::init_cluster_dir(&other_cluster).unwrap();
        let mut options = NodeOptions::new(
            other.path().join("data"),
            "127.0.0.1:0".parse().unwrap(),
            other_cluster.clone(),
        );
        options.seeds = cluster.addrs.clone();
        let intruder = shoal::node::start(options).await.unwrap();

        // Give gossip ample time: the members must still be exactly two.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let client = cluster.client().await.unwrap();
        for &addr in &cluster.addrs {
            let report = client.admin().status(addr).await.unwrap();
            assert_eq!(
                report.members.len(),
                2,
                "the intruder got in: {:?}",
                report.members
            );
            assert!(report.members.iter().all(|m| m.node != intruder.id()));
        }
        // And the intruder sees nobody either.
        let own = Client::connect(
            &[intruder.addr()],
            Credentials::from_cluster_dir(&other_cluster).unwrap(),
        )
        .await
        .unwrap();
        let report = own.admin().status(intruder.addr()).await.unwrap();
        assert_eq!(report.members.len(), 1);
        own.close().await;
        intruder.shutdown().await.unwrap();
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}
