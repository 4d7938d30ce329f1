//! A put or get load against etcd with a fixed number of requests in
//! flight, printing throughput and latency percentiles as one JSON line.
//!
//! etcd-load ENDPOINTS put|get CONCURRENCY SECONDS VALUE_SIZE KEYS
//! (ENDPOINTS comma-separated, e.g. 127.0.0.1:12379,127.0.0.1:22379)

use etcd_client::{Client, GetOptions};
use hdrhistogram::Histogram;
use rand::{RngExt, SeedableRng};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 8;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: etcd-load ENDPOINTS put|get CONCURRENCY SECONDS VALUE_SIZE KEYS");
        std::process::exit(2);
    }
    let endpoints: Vec<String> = args[1].split(',').map(|e| format!("http://{e}")).collect();
    let op = args[2].clone();
    let concurrency: usize = args[3].parse().expect("CONCURRENCY");
    let seconds: u64 = args[4].parse().expect("SECONDS");
    let value_size: usize = args[5].parse().expect("VALUE_SIZE");
    let keys: u64 = args[6].parse().expect("KEYS");
    let mut clients = Vec::new();
    for i in 0..CONNECTIONS {
        // Spread connections over the members, as the etcd benchmark does.
        let endpoint = endpoints[i % endpoints.len()].clone();
        clients.push(Client::connect([endpoint], None).await.expect("connect to etcd"));
    }
    let value = vec![b'x'; value_size];
    if op == "get" {
        let mut kv = clients[0].kv_client();
        for key in 0..keys {
            kv.put(format!("key{key:012}"), value.clone(), None).await.expect("preload");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let mut kv = clients[i % CONNECTIONS].kv_client();
        let value = value.clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap();
            let mut errors = 0u64;
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            while Instant::now() < deadline {
                let key = format!("key{:012}", rng.random_range(0..keys));
                let start = Instant::now();
                let result = if op == "put" {
                    kv.put(key, value.clone(), None).await.map(drop)
                } else {
                    kv.get(key, None::<GetOptions>).await.map(drop)
                };
                match result {
                    Ok(()) => histogram.saturating_record(start.elapsed().as_micros() as u64),
                    Err(_) => errors += 1,
                }
            }
            (histogram, errors)
        }));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap();
    let mut errors = 0;
    for task in tasks {
        let (histogram, failed) = task.await.unwrap();
        all.add(&histogram).unwrap();
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"op\":\"{op}\",\"ops\":{},\"errors\":{errors},\"seconds\":{elapsed:.2},\"throughput\":{:.1},\"p50_us\":{},\"p99_us\":{}}}",
        all.len(),
        all.len() as f64 / elapsed,
        all.value_at_quantile(0.5),
        all.value_at_quantile(0.99)
    );
}
