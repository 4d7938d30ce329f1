//! Ring metadata on real nodes: a node that leaves is marked left
//! everywhere and stops (once, however often asked); a dead node can be
//! removed by an operator.

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
        client
            .admin()
            .request(cluster.addrs[3], AdminRequest::Leave)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), leaving.wait())
            .await
            .expect("the node stops after leaving")
            .unwrap();
        for &addr in &cluster.addrs[..3] {
            let report = client.admin().status(addr).await.unwrap();
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

/// An operator who asks a leaving node to leave again (the first
/// `shoal node leave` gave up, say) must not make it stop mid-leave: both
/// requests are answered once it has left, and only then does it stop.
#[test]
fn a_node_asked_to_leave_twice_stops_only_once_it_has_left() {
    run(Duration::from_secs(90), async {
        let mut cluster = TestCluster::start(4).await.unwrap();
        let client = std::sync::Arc::new(cluster.ready_client(Duration::from_secs(20)).await.unwrap());
        // Node 2 takes over ranges of node 3 (with 3 nodes left, each holds
        // every key): while it is down the leave waits.
        cluster.stop(2).await.unwrap();
        cluster
            .wait_until_members_up(3, Duration::from_secs(20))
            .await
            .unwrap();
        let leaving = cluster.nodes[3].take().unwrap();
        let addr = cluster.addrs[3];
        let ask = || {
            let client = client.clone();
            tokio::spawn(async move { client.admin().request(addr, AdminRequest::Leave).await })
        };
        let first = ask();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second = ask();
        let mut stopped = tokio::spawn(leaving.wait());
        tokio::select! {
            _ = &mut stopped => panic!("the node stopped while its leave waited"),
            _ = tokio::time::sleep(Duration::from_secs(4)) => {}
        }
        assert!(
            !first.is_finished() && !second.is_finished(),
            "told done mid-leave"
        );
        let report = client.admin().status(addr).await.unwrap();
        let me = report.members.iter().find(|m| m.node == report.node).unwrap();
        assert_eq!(me.status, NodeStatus::Leaving);

        cluster.restart(2).await.unwrap();
        for request in [first, second] {
            let answer = tokio::time::timeout(Duration::from_secs(30), request)
                .await
                .expect("answered once the leave is done");
            answer.unwrap().unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), stopped)
            .await
            .expect("the node stops after leaving")
            .unwrap()
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
            .admin()
            .request(cluster.addrs[0], AdminRequest::RemoveNode { node: alive })
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
            .admin()
            .request(cluster.addrs[0], AdminRequest::RemoveNode { node: dead })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        for &addr in &cluster.addrs[..2] {
            let report = client.admin().status(addr).await.unwrap();
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
