//! Memory-only nodes (`storage = "memory"`) on real nodes: past their
//! limit writes get `OutOfMemory` and deletes are still taken, and a
//! restarted memory node comes back empty under its old id and is refilled
//! from the other replicas.

mod common;

use common::{TestCluster, run};
use shoal::node::{Durability, Storage};
use shoal::proto::{Config, RequestError};
use shoal::{ClientError, Consistency, Context};
use std::time::{Duration, Instant};

async fn memory_cluster(max_bytes: u64, config: Config) -> TestCluster {
    let mut cluster = TestCluster::empty(Durability::Buffer, config).unwrap();
    cluster.storage = Storage::Memory { max_bytes };
    cluster.start_nodes(3, 0).await.unwrap();
    cluster
}

#[test]
fn past_its_limit_a_memory_node_refuses_writes_with_out_of_memory_and_takes_deletes() {
    run(Duration::from_secs(60), async {
        let cluster = memory_cluster(256 << 10, Config::default()).await;
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        let value = vec![b'v'; 1000];
        let mut stored = Vec::new();
        let error = loop {
            let key = format!("key{}", stored.len());
            match client
                .put(key.clone(), value.clone(), &Context::empty(), Consistency::All)
                .await
            {
                Ok(_) => stored.push(key),
                Err(error) => break error,
            }
            assert!(
                stored.len() < 1000,
                "256 KiB held {} values of 1000 bytes",
                stored.len()
            );
        };
        assert!(
            matches!(
                error,
                ClientError::Request(RequestError::OutOfMemory { max: 262_144, .. })
            ),
            "{error}"
        );
        assert!(
            stored.len() >= 150,
            "only {} values of 1000 bytes fit in 256 KiB",
            stored.len()
        );
        // Every acknowledged value is still there, whole.
        for key in [&stored[0], &stored[stored.len() - 1]] {
            let read = client.get(key.clone(), Consistency::All).await.unwrap();
            assert_eq!(read.values.len(), 1);
            assert_eq!(read.values[0].value, value);
        }
        // A delete frees memory: it is taken at the limit, and then a
        // small write fits again.
        for key in &stored[..20] {
            let read = client.get(key.clone(), Consistency::All).await.unwrap();
            client
                .delete(key.clone(), &read.context, Consistency::All)
                .await
                .unwrap();
        }
        client
            .put("after", "fits again", &Context::empty(), Consistency::All)
            .await
            .unwrap();
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn a_restarted_memory_node_comes_back_empty_under_its_id_and_is_refilled() {
    const KEYS: u64 = 200;
    run(Duration::from_secs(120), async {
        let mut config = Config::default();
        config.anti_entropy_interval = Duration::from_millis(500);
        config.hinted_handoff = false;
        config.read_repair = false;
        let mut cluster = memory_cluster(64 << 20, config).await;
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        for k in 0..KEYS {
            client
                .put(
                    format!("key{k}"),
                    format!("value{k}"),
                    &Context::empty(),
                    Consistency::All,
                )
                .await
                .unwrap();
        }
        let id = cluster.id(2).unwrap();
        let before = client.admin().status(cluster.addrs[2]).await.unwrap();
        assert_eq!(before.keys, KEYS);
        cluster.stop(2).await.unwrap();
        cluster.restart(2).await.unwrap();
        assert_eq!(cluster.id(2), Some(id), "it came back under its old id");
        let deadline = Instant::now() + Duration::from_secs(90);
        let report = loop {
            let report = client.admin().status(cluster.addrs[2]).await.unwrap();
            if report.keys == KEYS {
                break report;
            }
            assert!(Instant::now() < deadline, "not refilled: {report:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(
            report.generation > before.generation,
            "a new generation: {} then {}",
            before.generation,
            report.generation
        );
        // It lost everything, so anti-entropy brought every key back.
        assert!(report.stats.ae_keys_repaired >= KEYS, "{report:?}");
        for k in [0, KEYS / 2, KEYS - 1] {
            let read = client.get(format!("key{k}"), Consistency::All).await.unwrap();
            assert_eq!(read.values.len(), 1);
            assert_eq!(read.values[0].value, format!("value{k}").as_bytes());
        }
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}
