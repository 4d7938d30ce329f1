//! Repair and topology figures against the targets of BENCH.md:
//!
//! * `ae`: anti-entropy between two replicas of 1,000,000 keys of which
//!   100 differ (the core on virtual time): keys repaired and bytes sent,
//!   against the bytes of a full key exchange.
//! * `hints`: 100,000 hints replayed to a node that comes back (3 real
//!   nodes on loopback, each on its own runtime): hints per second, and
//!   the p99 of gets during replay against before and after: gets at ONE
//!   coordinated by that node (its own latency), and gets at ALL (which
//!   wait for every replica, that node among them).
//! * `join`: a 4th real node joining 3 that hold 100,000 keys of 1 KiB:
//!   megabytes per second streamed.
//!
//! * `restart`: how long a node holding 1,000,000 keys on disk takes to
//!   open after a clean close (the digest tree rebuilt from the persisted
//!   digest index), after a clean stop (the saved tree loaded) and after a
//!   crash (the digest index rebuilt from the records first).
//!
//! `cargo bench --bench repair` runs them all; `-- ae`, `-- hints`,
//! `-- join` or `-- restart` one.

use hdrhistogram::Histogram;
use shoal::node::Durability;
#[allow(dead_code)]
#[path = "../src/cli/local.rs"]
mod local;

use local::LocalCluster;
use shoal::proto::harness::Cluster;
use shoal::proto::membership::NodeStatus;
use shoal::proto::version::{Actor, VersionVector};
use shoal::proto::{Config, MemStore, NodeId, Store, Versioned};
use shoal::{Client, Consistency, Context};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    if wants("ae") {
        anti_entropy();
    }
    if wants("restart") {
        restart();
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    if wants("hints") {
        runtime.block_on(hint_replay());
    }
    if wants("join") {
        runtime.block_on(join_streaming());
    }
}

/// A state written by node `writer`.
fn object(writer: u64, value: &[u8]) -> Versioned {
    let mut v = Versioned::new();
    let actor = Actor {
        node: NodeId(writer),
        epoch: 1,
    };
    v.write(actor, &VersionVector::new(), Some(value.to_vec()), 1, 8)
        .expect("one sibling");
    v
}

fn anti_entropy() {
    const KEYS: u64 = 1_000_000;
    const DIVERGENT: u64 = 100;
    let started = Instant::now();
    let (mut a, mut b) = (MemStore::new(), MemStore::new());
    let mut full_exchange = 0u64;
    for i in 0..KEYS {
        let key = format!("user{i:012}").into_bytes();
        let state = object(1, &i.to_le_bytes());
        a.put(&key, &state).unwrap();
        // Every 10,000th key differs: missing on b, or a concurrent value.
        if i % (KEYS / DIVERGENT) == 0 {
            if i % (2 * KEYS / DIVERGENT) == 0 {
                b.put(&key, &object(2, b"other")).unwrap();
            }
        } else {
            b.put(&key, &state).unwrap();
        }
        full_exchange += key.len() as u64 + 8;
    }
    println!(
        "ae: {KEYS} keys per replica, {DIVERGENT} divergent, loaded in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let config = {
        let mut cfg = Config::default();
        cfg.replication = 2;
        cfg
    };
    let mut c = Cluster::with_stores(config, 7, vec![a, b]);
    c.enable_anti_entropy();
    let ids = c.node_ids();
    let mut rounds = 0;
    while c.node(ids[0]).summary(0, u64::MAX).unwrap() != c.node(ids[1]).summary(0, u64::MAX).unwrap() {
        c.run_for(Duration::from_secs(10));
        rounds += 1;
        assert!(rounds < 100, "anti-entropy did not converge");
    }
    let sent: u64 = c.nodes().map(|n| n.stats().ae_bytes_sent).sum();
    let repaired: u64 = c.nodes().map(|n| n.stats().ae_keys_repaired).sum();
    println!(
        "ae: converged after {rounds} rounds of 10 s; {repaired} keys repaired; {sent} bytes sent; \
         a full key exchange is {full_exchange} bytes; ratio {:.3}% (target < 1%)",
        100.0 * sent as f64 / full_exchange as f64
    );
}

fn restart() {
    const KEYS: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let started = Instant::now();
    {
        let mut store = shoal::storage::FjallStore::open(dir.path()).unwrap();
        for i in 0..KEYS {
            let key = format!("user{i:012}").into_bytes();
            store.put(&key, &object(1, &[7u8; 100])).unwrap();
        }
        store.sync().unwrap();
        // The directory as a crash would leave it: everything synced, the
        // digest index incomplete and not marked complete.
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", dir.path().display()))
            .arg(crashed.path())
            .status()
            .unwrap();
        assert!(copied.success());
    }
    println!(
        "restart: {KEYS} keys of 100 bytes written in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let ready = |path: &std::path::Path| {
        let opened = Instant::now();
        let store = shoal::storage::FjallStore::open(path).unwrap();
        let (open, rebuilt) = (opened.elapsed(), store.index_rebuilt());
        let node = shoal::proto::Node::new(Config::default(), store, 1).unwrap();
        assert_eq!(node.summary(0, u64::MAX).unwrap().count, KEYS);
        (node, open.as_secs_f64(), opened.elapsed().as_secs_f64(), rebuilt)
    };
    let (mut node, open, total, rebuilt) = ready(dir.path());
    assert!(!rebuilt);
    println!(
        "restart: after a clean close, store opened in {open:.2}s; node ready (digest tree rebuilt from the index, hints counted) in {total:.2}s"
    );
    // A clean stop saves the tree; the next start loads it instead.
    node.save_digest_tree().unwrap();
    node.store_mut().sync().unwrap();
    drop(node);
    let (node, _, total, _) = ready(dir.path());
    assert!(node.digest_tree_restored());
    println!("restart: after a clean stop, node ready with the saved digest tree in {total:.2}s");
    let (_, open, total, rebuilt) = ready(crashed.path());
    assert!(rebuilt);
    println!(
        "restart: after a crash, store opened (digest index rebuilt from the records) in {open:.2}s; node ready in {total:.2}s"
    );
}

/// When a read load counts its gets, and when it stops.
#[derive(Default)]
struct Window {
    /// Gets that start while this is set are counted.
    record: AtomicBool,
    stop: AtomicBool,
}

/// Gets of random preloaded keys from `tasks` tasks until the window
/// stops: at ALL through any coordinator, or (`via`) at ONE coordinated by
/// one node, which answers from its own store.
async fn read_load(
    client: Arc<Client>,
    keys: u64,
    tasks: u64,
    via: Option<std::net::SocketAddr>,
    window: Arc<Window>,
) -> Histogram<u64> {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (client, window) = (client.clone(), window.clone());
        handles.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new(3).unwrap();
            let mut i = t * 7919;
            while !window.stop.load(Ordering::Relaxed) {
                i = (i + 104_729) % keys;
                let key = format!("pre{i}");
                let counted = window.record.load(Ordering::Relaxed);
                let started = Instant::now();
                let read = match via {
                    Some(addr) => client.get_via(addr, key, Consistency::One).await,
                    None => client.get(key, Consistency::All).await,
                };
                if read.is_ok() && counted {
                    let _ = histogram.record(started.elapsed().as_micros() as u64);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            histogram
        }));
    }
    let mut all = Histogram::<u64>::new(3).unwrap();
    for handle in handles {
        all.add(handle.await.unwrap()).unwrap();
    }
    all
}

async fn write_keys(client: &Arc<Client>, prefix: &str, count: u64, value: &[u8], tasks: u64) {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (client, prefix, value) = (client.clone(), prefix.to_string(), value.to_vec());
        handles.push(tokio::spawn(async move {
            let mut i = t;
            while i < count {
                let key = format!("{prefix}{i}");
                // Retried until written: every key must be there.
                while client
                    .put(&key, &value, &Context::empty(), Consistency::Quorum)
                    .await
                    .is_err()
                {}
                i += tasks;
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

async fn hints_held(cluster: &LocalCluster, client: &Client) -> u64 {
    let mut total = 0;
    for addr in cluster.running() {
        let report = client.admin().status(addr).await.unwrap();
        total += report.hints.iter().map(|h| h.count).sum::<u64>();
    }
    total
}

/// The environment variable `name` if set and valid, else `default`.
fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn hint_replay() {
    const HINTS: u64 = 100_000;
    const PRELOAD: u64 = 10_000;
    // Settings to explore, from the environment; the defaults otherwise.
    let defaults = Config::default();
    let rate = setting("SHOAL_HINT_RATE", defaults.hint_replay_rate);
    let batch = setting("SHOAL_HINT_BATCH", defaults.hint_batch);
    let window = setting("SHOAL_HINT_WINDOW", defaults.hint_batches_in_flight);
    let intake = setting("SHOAL_INTAKE_RATE", defaults.intake_rate);
    let config = {
        let mut cfg = defaults;
        cfg.anti_entropy_interval = Duration::from_secs(3600);
        cfg.hint_replay_rate = rate;
        cfg.hint_batch = batch;
        cfg.hint_batches_in_flight = window;
        cfg.intake_rate = intake;
        cfg
    };
    // Each node on a runtime of its own (2 worker threads, as a node process
    // on this 2-core machine has), like three processes: a node's tasks do
    // not queue behind another node's. SHOAL_SHARED_RUNTIME=1 puts all
    // three on the benchmark's runtime instead.
    let shared = std::env::var_os("SHOAL_SHARED_RUNTIME").is_some();
    println!(
        "hints: replay limited to {rate} hints/s per holder and replica, {batch} per batch, \
         {window} batches in flight, at most {intake}/s taken in; {}",
        if shared {
            "nodes share one runtime"
        } else {
            "a runtime per node"
        }
    );
    let mut cluster = LocalCluster::start_on(0, 0, Durability::Buffer, config)
        .await
        .unwrap();
    cluster.own_runtime = (!shared).then_some(2);
    for _ in 0..3 {
        cluster.add_node().await.unwrap();
    }
    let client = Arc::new(cluster.ready_client(Duration::from_secs(20)).await.unwrap());
    write_keys(&client, "pre", PRELOAD, b"preloaded value", 32).await;

    // Two loads at once: gets at ALL (they wait for every replica, the
    // target among them) and gets at ONE coordinated by the target, which
    // answer from its store: the target's own latency.
    let target = cluster.addrs[2];
    let loads = |window: &Arc<Window>| {
        (
            tokio::spawn(read_load(client.clone(), PRELOAD, 8, None, window.clone())),
            tokio::spawn(read_load(
                client.clone(),
                PRELOAD,
                4,
                Some(target),
                window.clone(),
            )),
        )
    };
    let measure = |seconds: u64| {
        let window = Arc::new(Window::default());
        window.record.store(true, Ordering::Relaxed);
        let (all, one) = loads(&window);
        async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            window.stop.store(true, Ordering::Relaxed);
            (all.await.unwrap(), one.await.unwrap())
        }
    };
    let before = measure(5).await;

    cluster.stop(2).await.unwrap();
    cluster
        .wait_until_members_up(2, Duration::from_secs(20))
        .await
        .unwrap();
    let started = Instant::now();
    write_keys(&client, "hinted", HINTS, &[7u8; 100], 64).await;
    let held = hints_held(&cluster, &client).await;
    println!(
        "hints: {HINTS} writes with a node down in {:.1}s; {held} hints held",
        started.elapsed().as_secs_f64()
    );

    cluster.restart(2).await.unwrap();
    let restarted = Instant::now();
    cluster
        .wait_until_members_up(3, Duration::from_secs(30))
        .await
        .unwrap();
    // The loads run from now, but count only the gets that start during
    // replay: from the first poll that sees hints delivered to the end.
    let window = Arc::new(Window::default());
    let (load_all, load_one) = loads(&window);
    let mut first_replayed = None;
    loop {
        let left = hints_held(&cluster, &client).await;
        // The rate counts from the first poll that saw hints delivered,
        // and only the hints still held then (replay may have begun
        // before the first poll).
        if left < held && first_replayed.is_none() {
            window.record.store(true, Ordering::Relaxed);
            first_replayed = Some((Instant::now(), left));
        }
        if left == 0 {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(300),
            "replay stalled at {left}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (since, counted) = first_replayed.unwrap_or((restarted, held));
    let replay = since.elapsed();
    window.stop.store(true, Ordering::Relaxed);
    let during = (load_all.await.unwrap(), load_one.await.unwrap());
    // The restarted node once replay is over: same data, warm again.
    let after = measure(5).await;
    println!(
        "hints: the last {counted} of {held} replayed in {:.2}s from the first delivery seen: \
         {:.0} hints/s (target >= 20,000)",
        replay.as_secs_f64(),
        counted as f64 / replay.as_secs_f64()
    );
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
    for (what, b, d, a) in [
        ("at ONE via the target", &before.1, &during.1, &after.1),
        ("at ALL", &before.0, &during.0, &after.0),
    ] {
        println!(
            "hints: p99 get {what}: before {:.2} ms ({} gets), during replay {:.2} ms ({} gets), \
             after {:.2} ms ({} gets); during / before {:.2}x (target <= 2x), during / after {:.2}x",
            p99(b),
            b.len(),
            p99(d),
            d.len(),
            p99(a),
            a.len(),
            p99(d) / p99(b).max(0.001),
            p99(d) / p99(a).max(0.001),
        );
    }
    client.close().await;
    cluster.shutdown().await.unwrap();
}

async fn join_streaming() {
    const KEYS: u64 = 100_000;
    let mut cluster = LocalCluster::start(3).await.unwrap();
    let client = Arc::new(cluster.ready_client(Duration::from_secs(20)).await.unwrap());
    let started = Instant::now();
    write_keys(&client, "big", KEYS, &[42u8; 1024], 64).await;
    println!(
        "join: {KEYS} keys of 1 KiB loaded in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let joined = Instant::now();
    let new = cluster.add_node().await.unwrap();
    let mut first_bytes = None;
    loop {
        if let Ok(report) = client.admin().status(cluster.addrs[new]).await {
            if report.stats.bytes_streamed_in > 0 && first_bytes.is_none() {
                first_bytes = Some(Instant::now());
            }
            let me = report.members.iter().find(|m| m.node == report.node);
            if me.is_some_and(|m| m.status == NodeStatus::Normal) {
                let elapsed = joined.elapsed().as_secs_f64();
                let streaming = first_bytes.map_or(elapsed, |t| t.elapsed().as_secs_f64());
                let mb = report.stats.bytes_streamed_in as f64 / 1e6;
                println!(
                    "join: {} keys, {mb:.1} MB in {elapsed:.2}s from start to normal ({:.1} MB/s), \
                     {streaming:.2}s from the first batch ({:.1} MB/s; target >= 50)",
                    report.stats.keys_streamed_in,
                    mb / elapsed,
                    mb / streaming
                );
                break;
            }
        }
        assert!(joined.elapsed() < Duration::from_secs(600), "join did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.close().await;
    cluster.shutdown().await.unwrap();
}
