//! Watching a key on real nodes: a watch ends with a write made through
//! any node at any consistency, reports no change at its timeout, and
//! survives the restart of every node one after another (the client
//! re-arms it with its context); `shoal watch` prints each change.

mod common;

use common::{TestCluster, run, shoal_cli};
use shoal::proto::Config;
use shoal::{Client, Consistency, Context, Watched};
use std::time::{Duration, Instant};

async fn cluster(nodes: usize) -> (TestCluster, Client) {
    let cluster = TestCluster::start_on(nodes, 0, shoal::node::Durability::Buffer, Config::default())
        .await
        .unwrap();
    let client = cluster.ready_client(Duration::from_secs(30)).await.unwrap();
    (cluster, client)
}

#[test]
fn a_write_at_one_through_another_client_ends_a_watch_and_a_quiet_watch_times_out() {
    run(Duration::from_secs(90), async {
        let (cluster, watcher) = cluster(4).await;
        let writer = Client::connect(&cluster.running(), cluster.credentials().unwrap())
            .await
            .unwrap();
        let context = writer
            .put("k", "v1", &Context::empty(), Consistency::All)
            .await
            .unwrap();
        let started = Instant::now();
        let quiet = watcher
            .watch("k", &context, Duration::from_millis(800))
            .await
            .unwrap();
        assert_eq!(quiet, Watched::Unchanged);
        assert!(started.elapsed() >= Duration::from_millis(700));
        let watching = {
            let watcher = watcher.clone();
            let context = context.clone();
            tokio::spawn(async move { watcher.watch("k", &context, Duration::from_secs(20)).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let newer = writer.put("k", "v2", &context, Consistency::One).await.unwrap();
        match watching.await.unwrap().unwrap() {
            Watched::Changed(read) => {
                assert_eq!(read.values.len(), 1);
                assert_eq!(read.values[0].value, &b"v2"[..]);
                assert_eq!(read.context, newer);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        writer.close().await;
        watcher.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn a_watch_survives_every_node_restarting_in_turn() {
    run(Duration::from_secs(180), async {
        let (mut cluster, client) = cluster(3).await;
        let context = client
            .put("k", "before", &Context::empty(), Consistency::All)
            .await
            .unwrap();
        let watching = {
            let client = client.clone();
            let context = context.clone();
            tokio::spawn(async move { client.watch("k", &context, Duration::from_secs(90)).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Whichever node holds the watch, and every replica it asked,
        // restarts (forgetting its watches) before the write.
        for i in 0..3 {
            cluster.stop(i).await.unwrap();
            cluster
                .restart(i)
                .await
                .unwrap_or_else(|e| panic!("restarting node {i}: {e:?}"));
            cluster
                .wait_until_members_up(3, Duration::from_secs(30))
                .await
                .unwrap();
        }
        assert!(!watching.is_finished(), "nothing changed yet");
        let writer = Client::connect(&cluster.running(), cluster.credentials().unwrap())
            .await
            .unwrap();
        writer
            .put("k", "after", &context, Consistency::Quorum)
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(30), watching).await {
            Ok(Ok(Ok(Watched::Changed(read)))) => assert_eq!(read.values[0].value, &b"after"[..]),
            other => panic!("{other:?}"),
        }
        writer.close().await;
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn shoal_watch_prints_each_change() {
    run(Duration::from_secs(90), async {
        let (cluster, client) = cluster(3).await;
        let node = cluster.addrs[0].to_string();
        let dir = cluster.cluster_dir().display().to_string();
        let watcher = tokio::task::spawn_blocking(move || {
            shoal_cli(&[
                "watch",
                "k",
                "--count",
                "2",
                "--json",
                "--node",
                &node,
                "--cluster-dir",
                &dir,
            ])
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let first = client
            .put("k", "one", &Context::empty(), Consistency::Quorum)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.put("k", "two", &first, Consistency::Quorum).await.unwrap();
        let output = tokio::time::timeout(Duration::from_secs(30), watcher)
            .await
            .expect("shoal watch ends after two changes")
            .unwrap();
        let stdout = common::succeeded(output);
        let lines: Vec<serde_json::Value> =
            stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        let value = |line: &serde_json::Value| line["values"][0]["value"].as_str().map(str::to_string);
        assert_eq!(value(&lines[0]).as_deref(), Some("one"), "{stdout}");
        assert_eq!(value(&lines[1]).as_deref(), Some("two"), "{stdout}");
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}
