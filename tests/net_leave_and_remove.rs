//! Ring metadata on real nodes: a node that leaves is marked left
//! everywhere and stops; a dead node can be removed by an operator.

mod common;

use common::{TestCluster, run};
use shoal::proto::AdminRequest;
use shoal::proto::membership::NodeStatus;
use shoal::proto::message::AdminError;
use shoal::{ClientError, Consistency, Context};
use std::time::Duration;

#[test]
fn a_node_that_leaves_is_marked_left_and_stops() {
    run(Duration::from_secs(60), async {
        let mut cluster = TestCluster::start(4).await.unwrap();
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        let leaving = cluster.nodes[3].take().unwrap();
        let leaving_id = leaving.id();
        client.admin(cluster.addrs[3], AdminRequest::Leave).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), leaving.wait())
            .await
            .expect("the node stops after leaving")
            .unwrap();
        for &addr in &cluster.addrs[..3] {
            let report = client.status_of(addr).await.unwrap();
            let member = report.members.iter().find(|m| m.node == leaving_id).unwrap();
            assert_eq!(member.status, NodeStatus::Left);
            assert_eq!(member.ownership, 0.0, "a left node owns nothing");
        }
        client
            .put("k", "v", &Context::empty(), Consistency::All)
            .await
            .unwrap();
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn a_dead_node_can_be_removed_but_a_live_one_cannot() {
    run(Duration::from_secs(60), async {
        let mut cluster = TestCluster::start(3).await.unwrap();
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        let alive = cluster.nodes[1].as_ref().unwrap().id();
        let error = client
            .admin(cluster.addrs[0], AdminRequest::RemoveNode { node: alive })
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Admin {
                    reason: AdminError::NodeAlive { .. }
                }
            ),
            "{error}"
        );

        let dead = cluster.nodes[2].as_ref().unwrap().id();
        cluster.stop(2).await.unwrap();
        cluster
            .wait_until_members_up(2, Duration::from_secs(20))
            .await
            .unwrap();
        client
            .admin(cluster.addrs[0], AdminRequest::RemoveNode { node: dead })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        for &addr in &cluster.addrs[..2] {
            let report = client.status_of(addr).await.unwrap();
            let member = report.members.iter().find(|m| m.node == dead).unwrap();
            assert_eq!(member.status, NodeStatus::Left, "removal reached {addr}");
        }
        // With the dead node out of the ring, ALL means the two left.
        client.refresh_ring().await.unwrap();
        client
            .put("k", "v", &Context::empty(), Consistency::Quorum)
            .await
            .unwrap();
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}
