//! Data written under either durability survives a full restart of every
//! node on its data directory.

mod common;

use common::{TestCluster, run};
use shoal::node::Durability;
use shoal::{Consistency, Context};
use std::time::Duration;

fn survives_a_full_restart(durability: Durability) {
    run(Duration::from_secs(90), async move {
        let mut cluster = TestCluster::start_with(3, durability).await.unwrap();
        let client = std::sync::Arc::new(cluster.ready_client(Duration::from_secs(20)).await.unwrap());
        // Concurrent writes share fsyncs under `fsync` (group commit).
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..64 {
            let client = client.clone();
            writes.spawn(async move {
                client
                    .put(
                        format!("k{i}"),
                        format!("v{i}"),
                        &Context::empty(),
                        Consistency::All,
                    )
                    .await
            });
        }
        while let Some(result) = writes.join_next().await {
            result.unwrap().unwrap();
        }
        client.close().await;
        for i in 0..3 {
            cluster.stop(i).await.unwrap();
        }
        for i in 0..3 {
            cluster.restart(i).await.unwrap();
        }
        let client = cluster.ready_client(Duration::from_secs(30)).await.unwrap();
        for i in 0..64 {
            let read = client.get(format!("k{i}"), Consistency::All).await.unwrap();
            assert_eq!(read.values.len(), 1, "k{i} after restart");
            assert_eq!(read.values[0].value, format!("v{i}").as_bytes());
        }
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn buffered_writes_survive_a_full_restart() {
    survives_a_full_restart(Durability::Buffer);
}

#[test]
fn fsynced_writes_survive_a_full_restart() {
    survives_a_full_restart(Durability::Fsync);
}
