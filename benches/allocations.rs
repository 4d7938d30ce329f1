//! Allocations per request on the request path: three real nodes (N=3)
//! and a client in this process, 64 requests in flight, 100-byte values;
//! writes at W=2, then reads at R=1. Counts every allocation of the whole
//! process (client, three nodes, QUIC, storage) and divides by the
//! requests answered.
//!
//! `cargo bench --locked --features count-allocations --bench allocations`

#[allow(dead_code)]
#[path = "../src/cli/local.rs"]
mod local;

use local::LocalCluster;
use shoal::allocations::counted;
use shoal::{Client, Consistency, Context};
use std::sync::Arc;
use std::time::Duration;

const REQUESTS: usize = 50_000;
const CONCURRENCY: usize = 64;
const VALUE: [u8; 100] = [7; 100];

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let cluster = LocalCluster::start(3).await.expect("a cluster");
        let client = Arc::new(cluster.ready_client(Duration::from_secs(20)).await.expect("a client"));
        let write = Consistency::Custom { r: 2, w: 2 };
        let read = Consistency::Custom { r: 1, w: 2 };
        // Warm up: connections, streams and buffers in place.
        run(&client, 5_000, move |client, i| async move {
            client.put(key(i), VALUE, &Context::empty(), write).await.map(drop)
        })
        .await;
        let (writes, write_bytes) = measure(&client, move |client, i| async move {
            client.put(key(i), VALUE, &Context::empty(), write).await.map(drop)
        })
        .await;
        let (reads, read_bytes) = measure(&client, move |client, i| async move {
            client.get(key(i), read).await.map(drop)
        })
        .await;
        println!(
            "allocations per request ({REQUESTS} requests, {CONCURRENCY} in flight, 3 nodes N=3 and the client in one process):"
        );
        println!("  write W=2: {writes:.1} allocations, {write_bytes:.0} bytes");
        println!("  read R=1:  {reads:.1} allocations, {read_bytes:.0} bytes");
    });
}

fn key(i: usize) -> String {
    format!("key{:08}", i % 100_000)
}

/// Allocations and bytes per request over `REQUESTS` requests of `op`.
async fn measure<F, Fut>(client: &Arc<Client>, op: F) -> (f64, f64)
where
    F: Fn(Arc<Client>, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), shoal::ClientError>> + Send,
{
    let before = counted();
    run(client, REQUESTS, op).await;
    let after = counted();
    let n = REQUESTS as f64;
    ((after.0 - before.0) as f64 / n, (after.1 - before.1) as f64 / n)
}

/// `count` requests of `op`, `CONCURRENCY` at a time; every one must succeed.
async fn run<F, Fut>(client: &Arc<Client>, count: usize, op: F)
where
    F: Fn(Arc<Client>, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), shoal::ClientError>> + Send,
{
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let (client, op) = (client.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            for i in (worker..count).step_by(CONCURRENCY) {
                op(client.clone(), i).await.expect("a request failed");
            }
        }));
    }
    for task in tasks {
        task.await.expect("a worker panicked");
    }
}
