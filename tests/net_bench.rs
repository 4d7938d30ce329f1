//! `shoal bench` drives real nodes: the load writes every record, the mixes
//! run the operations they name, and updates replace values instead of
//! piling up siblings.

mod common;

use common::{TestCluster, run};
use shoal::Consistency;
use shoal::bench::keys::{Distribution, record_key};
use shoal::bench::{Bench, Progress, Spec, Stop, Workload};
use std::sync::Arc;
use std::time::Duration;

fn spec(workload: Workload, ops: u64) -> Spec {
    Spec {
        workload,
        records: 100,
        value_size: 64,
        concurrency: 8,
        stop: Stop::Ops(ops),
        distribution: Distribution::Zipfian,
        read: Consistency::Quorum,
        fanout: shoal::proto::Fanout::All,
        write: Consistency::Quorum,
        seed: 9,
        rate: None,
    }
}

#[test]
fn workloads_run_against_a_real_cluster() {
    run(Duration::from_secs(120), async {
        let cluster = TestCluster::start(3).await.unwrap();
        let client = Arc::new(cluster.ready_client(Duration::from_secs(20)).await.unwrap());
        let bench = Bench::new(client.clone(), 0);

        let progress = Arc::new(Progress::default());
        let load = bench.run(spec(Workload::Load, 0), progress.clone()).await;
        assert_eq!(load.all.count, 100, "{load:?}");
        assert_eq!(load.failed(), 0);
        assert_eq!(progress.done.load(std::sync::atomic::Ordering::Relaxed), 100);
        for record in 0..100 {
            let read = client.get(record_key(record), Consistency::All).await.unwrap();
            assert_eq!(read.values.len(), 1, "record {record}");
            assert_eq!(read.values[0].value.len(), 64);
        }

        let a = bench
            .run(spec(Workload::A, 400), Arc::new(Progress::default()))
            .await;
        assert_eq!(a.all.count, 400, "{a:?}");
        assert!(a.operations["read"].count > 100 && a.operations["update"].count > 100);
        assert!(a.all.p50_us > 0 && a.all.p50_us <= a.all.p99_us && a.all.p99_us <= a.all.max_us);

        // Reads that ask only the replicas they need (`--fanout needed`).
        let needed = Spec {
            fanout: shoal::proto::Fanout::Needed,
            ..spec(Workload::C, 300)
        };
        let c = bench.run(needed, Arc::new(Progress::default())).await;
        assert_eq!((c.all.count, c.failed()), (300, 0), "{c:?}");

        let f = bench
            .run(spec(Workload::F, 300), Arc::new(Progress::default()))
            .await;
        assert_eq!(f.failed(), 0, "{f:?}");
        assert!(f.operations["read_modify_write"].count > 50);

        let d = bench
            .run(spec(Workload::D, 400), Arc::new(Progress::default()))
            .await;
        assert_eq!(d.failed(), 0, "{d:?}");
        let inserts = d.operations["insert"].count;
        assert!(inserts > 0);
        // The inserted records exist after the loaded ones.
        let newest = client
            .get(record_key(100 + inserts - 1), Consistency::All)
            .await
            .unwrap();
        assert_eq!(newest.values.len(), 1);

        // A paced run holds its rate: 100 operations at 200/s take 0.5 s.
        let paced = Spec {
            rate: Some(200.0),
            ..spec(Workload::C, 100)
        };
        let c = bench.run(paced, Arc::new(Progress::default())).await;
        assert_eq!(c.all.count, 100);
        assert!(c.seconds >= 0.4, "100 ops at 200/s took {} s", c.seconds);

        // Updates and read-modify-writes wrote with the newest context each
        // worker knew, so the hottest records did not grow a sibling per
        // write: at most one per concurrent writer.
        for record in 0..100 {
            let read = client.get(record_key(record), Consistency::All).await.unwrap();
            assert!(
                read.values.len() <= 8,
                "record {record}: {} siblings",
                read.values.len()
            );
        }
        client.close().await;
        cluster.shutdown().await.unwrap();
    });
}

#[test]
fn the_cli_benchmarks_a_local_cluster_and_prints_json() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["bench", "--local", "3", "--records", "50", "--ops", "100"])
        .args(["--workload", "load,b", "--concurrency", "4", "--json"])
        .args(["--read-consistency", "one", "--write-consistency", "2,2"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["read_consistency"], "one");
    assert_eq!(json["write_consistency"], "2,2");
    let reports = json["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["workload"], "load");
    assert_eq!(reports[0]["all"]["count"], 50);
    assert_eq!(reports[1]["workload"], "b");
    assert_eq!(reports[1]["all"]["count"], 100);
    assert!(reports[1]["all"]["p99_us"].as_u64().unwrap() > 0);
    assert!(reports[1]["errors"].as_object().unwrap().is_empty());
}

#[test]
fn the_cli_refuses_a_bench_without_a_cluster() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["bench", "--records", "10"])
        .env_remove("SHOAL_CLUSTER_DIR")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--cluster-dir") && stderr.contains("--local"),
        "{stderr}"
    );
}
