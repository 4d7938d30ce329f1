//! Topology changes on real nodes under a running workload: a 4th node
//! joins and then a node leaves, and every acknowledged write is still
//! there, with its value.

mod common;

use common::{TestCluster, run};
use shoal::proto::AdminRequest;
use shoal::proto::membership::NodeStatus;
use shoal::{Client, Consistency, Context};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Writes `key{i}` = `value{i}` for i = 0, 1, ... at QUORUM until told to
/// stop; returns the keys acknowledged.
async fn workload(client: Arc<Client>, stop: Arc<AtomicBool>) -> Vec<u64> {
    let mut acked = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) && i < 200_000 {
        let put = client
            .put(
                format!("key{i}"),
                format!("value{i}"),
                &Context::empty(),
                Consistency::Quorum,
            )
            .await;
        if put.is_ok() {
            acked.push(i);
        }
        i += 1;
    }
    acked
}

#[test]
fn a_node_joins_and_another_leaves_under_load_and_nothing_is_lost() {
    run(Duration::from_secs(240), async {
        let mut cluster = TestCluster::start(3).await.unwrap();
        let client = Arc::new(cluster.ready_client(Duration::from_secs(20)).await.unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(workload(client.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;

        let new = cluster.add_node().await.unwrap();
        cluster
            .wait_until_members_up(4, Duration::from_secs(60))
            .await
            .unwrap();
        let report = client.admin().status(cluster.addrs[new]).await.unwrap();
        assert!(
            report.stats.keys_streamed_in > 0,
            "the new node streamed its ranges"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;

        let leaving = cluster.nodes[0].take().unwrap();
        let leaving_id = leaving.id();
        client
            .admin()
            .request(cluster.addrs[0], AdminRequest::Leave)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(60), leaving.wait())
            .await
            .expect("the node stops once it has left")
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let acked = writer.await.unwrap();
        assert!(
            acked.len() > 500,
            "the workload ran: {} writes acknowledged",
            acked.len()
        );

        let report = client.admin().status(cluster.addrs[1]).await.unwrap();
        let member = report.members.iter().find(|m| m.node == leaving_id).unwrap();
        assert_eq!(member.status, NodeStatus::Left);
        client.refresh_ring().await.unwrap();
        let mut missing = Vec::new();
        for &i in &acked {
            let read = client.get(format!("key{i}"), Consistency::All).await.unwrap();
            if read
                .values
                .iter()
                .all(|v| v.value != format!("value{i}").as_bytes())
            {
                missing.push(i);
            }
        }
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged writes lost: {:?}",
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(20)]
        );
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}
