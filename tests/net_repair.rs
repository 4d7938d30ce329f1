//! Repair on real nodes: a node down during writes gets them by hints, a
//! node whose disk was wiped gets its data back by anti-entropy, and a key
//! only one replica holds reaches the others by read repair. Each test
//! turns the other mechanisms off, so only the one under test can repair.

mod common;

use common::{TestCluster, run};
use shoal::node::Durability;
use shoal::proto::{Config, StatusReport};
use shoal::{Client, Consistency, Context, WriteOptions};
use std::time::{Duration, Instant};

const KEYS: u64 = 200;

/// Settings with anti-entropy as good as off (one round an hour).
fn without_anti_entropy() -> Config {
    let mut cfg = Config::default();
    cfg.anti_entropy_interval = Duration::from_secs(3600);
    cfg
}

async fn status(cluster: &TestCluster, client: &Client, i: usize) -> StatusReport {
    client.admin().status(cluster.addrs[i]).await.unwrap()
}

/// Waits until `done` holds for node `i`'s status, or fails after `within`.
async fn wait_for_status(
    cluster: &TestCluster,
    client: &Client,
    i: usize,
    within: Duration,
    what: &str,
    done: impl Fn(&StatusReport) -> bool,
) -> StatusReport {
    let deadline = Instant::now() + within;
    loop {
        let report = status(cluster, client, i).await;
        if done(&report) {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "node {i}: {what} not within {within:?}: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn write_keys(client: &Client, consistency: Consistency) {
    for k in 0..KEYS {
        client
            .put(
                format!("key{k}"),
                format!("value{k}"),
                &Context::empty(),
                consistency,
            )
            .await
            .unwrap();
    }
}

fn hints_held(report: &StatusReport) -> u64 {
    report.hints.iter().map(|h| h.count).sum()
}

#[test]
fn a_node_down_during_writes_gets_them_by_hints() {
    run(Duration::from_secs(120), async {
        let mut cluster = TestCluster::start_on(3, 0, Durability::Buffer, without_anti_entropy())
            .await
            .unwrap();
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        cluster.stop(2).await.unwrap();
        cluster
            .wait_until_members_up(2, Duration::from_secs(20))
            .await
            .unwrap();
        write_keys(&client, Consistency::Quorum).await;
        let mut held = 0;
        for i in 0..2 {
            held += hints_held(&status(&cluster, &client, i).await);
        }
        assert_eq!(held, KEYS, "one hint per write, for the node that is down");

        cluster.restart(2).await.unwrap();
        cluster
            .wait_until_members_up(3, Duration::from_secs(20))
            .await
            .unwrap();
        let mut replayed = 0;
        for i in 0..2 {
            let report = wait_for_status(
                &cluster,
                &client,
                i,
                Duration::from_secs(30),
                "hints delivered",
                |r| hints_held(r) == 0,
            )
            .await;
            replayed += report.stats.hints_replayed;
        }
        assert_eq!(replayed, KEYS);
        let report = status(&cluster, &client, 2).await;
        assert_eq!(report.keys, KEYS, "the restarted node holds every write");
        assert_eq!(report.stats.ae_keys_repaired, 0, "anti-entropy did not do it");
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn a_node_whose_disk_was_wiped_gets_its_data_back_by_anti_entropy() {
    run(Duration::from_secs(150), async {
        let config = {
            let mut cfg = Config::default();
            cfg.anti_entropy_interval = Duration::from_millis(500);
            cfg.hinted_handoff = false;
            cfg.read_repair = false;
            cfg
        };
        let mut cluster = TestCluster::start_on(3, 0, Durability::Buffer, config)
            .await
            .unwrap();
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        write_keys(&client, Consistency::All).await;
        let id = cluster.id(2).unwrap();
        cluster.stop(2).await.unwrap();
        cluster.restart_wiped(2, id).await.unwrap();
        assert_eq!(cluster.id(2), Some(id), "it came back under its old id");
        let report = wait_for_status(&cluster, &client, 2, Duration::from_secs(90), "data back", |r| {
            r.keys == KEYS
        })
        .await;
        assert!(report.stats.ae_keys_repaired >= KEYS, "{report:?}");
        // What came back is the data, not just keys.
        for k in [0, KEYS / 2, KEYS - 1] {
            let read = client.get(format!("key{k}"), Consistency::All).await.unwrap();
            assert_eq!(read.values.len(), 1);
            assert_eq!(read.values[0].value, format!("value{k}").as_bytes());
        }
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn a_key_only_one_replica_holds_reaches_all_three_by_read_repair() {
    run(Duration::from_secs(120), async {
        let config = {
            let mut cfg = without_anti_entropy();
            cfg.hinted_handoff = false;
            cfg
        };
        let mut cluster = TestCluster::start_on(3, 0, Durability::Buffer, config)
            .await
            .unwrap();
        let client = cluster.ready_client(Duration::from_secs(20)).await.unwrap();
        cluster.stop(1).await.unwrap();
        cluster.stop(2).await.unwrap();
        cluster
            .wait_until_members_up(1, Duration::from_secs(20))
            .await
            .unwrap();
        let lone = Client::connect(&cluster.running(), cluster.credentials().unwrap())
            .await
            .unwrap();
        let options = WriteOptions::new(Consistency::One).sloppy_quorum(false);
        lone.put_with("lonely", "only on node 0", &Context::empty(), options)
            .await
            .unwrap();
        lone.close().await;
        cluster.restart(1).await.unwrap();
        cluster.restart(2).await.unwrap();
        cluster
            .wait_until_members_up(3, Duration::from_secs(20))
            .await
            .unwrap();
        for i in 1..3 {
            assert_eq!(
                status(&cluster, &client, i).await.keys,
                0,
                "node {i} missed the write"
            );
        }

        let read = client.get("lonely", Consistency::All).await.unwrap();
        assert_eq!(read.values[0].value, &b"only on node 0"[..]);
        for i in 1..3 {
            wait_for_status(
                &cluster,
                &client,
                i,
                Duration::from_secs(10),
                "read repaired",
                |r| r.keys == 1,
            )
            .await;
        }
        // Node 0 is no longer needed: the others answer at quorum alone.
        cluster.stop(0).await.unwrap();
        let read = client.get("lonely", Consistency::Quorum).await.unwrap();
        assert_eq!(read.values[0].value, &b"only on node 0"[..]);
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}
