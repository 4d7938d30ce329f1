//! A 3-node cluster on real sockets: forms from one seed, serves every
//! consistency level, and copes with a node down.

mod common;

use common::{TestCluster, run};
use shoal::proto::RequestError;
use shoal::{ClientError, Consistency, Context};
use std::time::Duration;

#[test]
fn three_nodes_form_from_one_seed_and_serve_every_consistency_level() {
    run(Duration::from_secs(60), async {
        let cluster = TestCluster::start(3).await.unwrap();
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        let levels = [
            Consistency::One,
            Consistency::Two,
            Consistency::Quorum,
            Consistency::All,
            Consistency::Custom { r: 1, w: 3 },
            Consistency::Custom { r: 3, w: 1 },
        ];
        for (i, level) in levels.into_iter().enumerate() {
            let key = format!("key-{i}");
            let value = format!("value-{i}");
            client.put(&key, &value, &Context::empty(), level).await.unwrap();
            // Read at ALL so the check does not depend on which replicas the write reached.
            let read = client.get(&key, Consistency::All).await.unwrap();
            assert_eq!(read.values.len(), 1, "{level}");
            assert_eq!(read.values[0].value, value.as_bytes());
            let read = client.get(&key, level).await.unwrap();
            assert_eq!(read.values[0].value, value.as_bytes(), "{level}");
            client.delete(&key, &read.context, level).await.unwrap();
            let read = client.get(&key, Consistency::All).await.unwrap();
            assert!(read.values.is_empty(), "{level}: deleted key still readable");
        }
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn with_one_node_of_three_down_quorum_works_and_all_fails_clearly() {
    run(Duration::from_secs(90), async {
        let mut cluster = TestCluster::start(3).await.unwrap();
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        client
            .put("before", "v0", &Context::empty(), Consistency::All)
            .await
            .unwrap();
        cluster.stop(2).await.unwrap();
        cluster
            .wait_until_members_up(2, Duration::from_secs(20))
            .await
            .unwrap();

        client
            .put("during", "v1", &Context::empty(), Consistency::Quorum)
            .await
            .unwrap();
        let read = client.get("during", Consistency::Quorum).await.unwrap();
        assert_eq!(read.values[0].value, &b"v1"[..]);
        let read = client.get("before", Consistency::Quorum).await.unwrap();
        assert_eq!(read.values[0].value, &b"v0"[..]);

        let error = client.get("before", Consistency::All).await.unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Request(RequestError::QuorumNotMet {
                    succeeded: 2,
                    required: 3,
                    ..
                })
            ),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "get failed: 2 of 3 replicas answered, 3 needed (all)"
        );
        let error = client
            .put("x", "y", &Context::empty(), Consistency::All)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ClientError::Request(RequestError::QuorumNotMet { .. })),
            "{error}"
        );

        // The node comes back, rejoins, and ALL works again.
        cluster.restart(2).await.unwrap();
        cluster
            .wait_until_members_up(3, Duration::from_secs(30))
            .await
            .unwrap();
        let read = client.get("before", Consistency::All).await.unwrap();
        assert_eq!(read.values[0].value, &b"v0"[..]);
        client
            .put("after", "v2", &Context::empty(), Consistency::All)
            .await
            .unwrap();
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

/// Nodes on runtimes of their own (as the hint benchmark runs them, like
/// separate processes) serve, stop, restart and shut down like the others,
/// and starting a node turns transparent huge pages off for the process.
#[test]
fn nodes_on_their_own_runtimes_serve_stop_and_restart() {
    run(Duration::from_secs(60), async {
        let mut cluster = TestCluster::start(0).await.unwrap();
        cluster.own_runtime = Some(1);
        for _ in 0..3 {
            cluster.add_node().await.unwrap();
        }
        // A started node turned transparent huge pages off for its process
        // (their first touch stalls the node for milliseconds).
        #[cfg(target_os = "linux")]
        assert!(nix::sys::prctl::get_thp_disable().unwrap());
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        client
            .put("own", "v1", &Context::empty(), Consistency::All)
            .await
            .unwrap();
        // Each node, asked directly, answers from its own replica.
        for &addr in &cluster.addrs {
            let read = client.get_via(addr, "own", Consistency::One).await.unwrap();
            assert_eq!(read.values[0].value, &b"v1"[..]);
        }
        cluster.stop(2).await.unwrap();
        cluster
            .wait_until_members_up(2, Duration::from_secs(20))
            .await
            .unwrap();
        let read = client.get("own", Consistency::Quorum).await.unwrap();
        assert_eq!(read.values[0].value, &b"v1"[..]);
        // A stopped node is not replaced by another when asked directly.
        let stopped = client.get_via(cluster.addrs[2], "own", Consistency::One).await;
        assert!(
            matches!(stopped, Err(ClientError::Unreachable { tried: 1, .. })),
            "{stopped:?}"
        );
        cluster.restart(2).await.unwrap();
        cluster
            .wait_until_members_up(3, Duration::from_secs(30))
            .await
            .unwrap();
        let read = client.get("own", Consistency::All).await.unwrap();
        assert_eq!(read.values[0].value, &b"v1"[..]);
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}
