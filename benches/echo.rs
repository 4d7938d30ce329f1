//! The physical limit of a request and its answer over QUIC on this
//! machine: a bare echo with shoal's transport and TLS settings, nothing
//! else. A client keeps `CONCURRENCY` requests of `SIZE` bytes in flight,
//! each on one of four long-lived streams per connection as shoal's client
//! does, and the server sends each frame straight back.
//!
//! A replicated write at W=2 is three such exchanges (client to
//! coordinator, coordinator to two replicas, in parallel) plus storage; a
//! read at R=1 is one. BENCH.md gives shoal's figures as ratios of this.
//!
//! `cargo bench --bench echo` (`-- SECONDS` for another duration).

use serde_bytes::{ByteBuf, Bytes};
use shoal::net::frame::encode;
use shoal::net::stream::FrameReader;
use shoal::net::tls::{Credentials, SERVER_NAME, init_cluster_dir, transport_config};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 64;
const LANES: usize = 4;
/// About a put of a 100-byte value with its key and options.
const SIZE: usize = 160;

fn main() {
    let seconds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<u64>().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(echo(Duration::from_secs(seconds)));
}

async fn echo(duration: Duration) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    init_cluster_dir(dir.path()).expect("a cluster CA");
    let credentials = Credentials::from_cluster_dir(dir.path()).expect("credentials");
    let server = credentials
        .server_config(transport_config(1024))
        .expect("server config");
    let endpoint = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).expect("a server");
    let addr = endpoint.local_addr().unwrap();
    let accepting = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else { return };
                while let Ok((mut send, recv)) = connection.accept_bi().await {
                    tokio::spawn(async move {
                        let mut reader = FrameReader::new(recv, 1 << 20);
                        while let Ok(Some(frame)) = reader.next::<(u64, ByteBuf)>().await {
                            if send.write_all(&encode(&frame)).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
        }
    });

    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("a client");
    client.set_default_client_config(
        credentials
            .client_config(transport_config(1024))
            .expect("client config"),
    );
    let connection = client
        .connect(addr, SERVER_NAME)
        .unwrap()
        .await
        .expect("connected");
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut lanes = Vec::new();
    const _: () = assert!(CONCURRENCY % LANES == 0);
    let share = CONCURRENCY / LANES;
    for _ in 0..LANES {
        let (send, recv) = connection.open_bi().await.expect("a stream");
        lanes.push(tokio::spawn(run_lane(
            send,
            recv,
            share,
            done.clone(),
            stop.clone(),
        )));
    }
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let answered = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let mut latency = hdrhistogram::Histogram::<u64>::new(3).expect("a histogram");
    for lane in lanes {
        // A lane stops at its next answer; one that gets none is cut off.
        if let Ok(Ok(lane)) = tokio::time::timeout(Duration::from_secs(5), lane).await {
            latency.add(lane).expect("same bounds");
        }
    }
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "quinn echo: {CONCURRENCY} requests in flight on {LANES} streams, {SIZE}-byte frames, {elapsed:.1} s: \
         {answered} answered, {:.0} round trips/s; round trip p50 {:.3} ms, p99 {:.3} ms",
        answered as f64 / elapsed,
        ms(0.5),
        ms(0.99)
    );
    connection.close(0u32.into(), b"done");
    endpoint.close(0u32.into(), b"done");
}

/// Keeps `share` requests in flight on one stream: one written for each
/// answer read (answers come back in order here, so no ids are needed to
/// match them, but each carries one as shoal's do). Returns the round
/// trips' times in microseconds.
async fn run_lane(
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
    share: usize,
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> hdrhistogram::Histogram<u64> {
    let data = vec![7u8; SIZE];
    let payload = Bytes::new(&data);
    let mut reader = FrameReader::new(recv, 1 << 20);
    let mut latency = hdrhistogram::Histogram::<u64>::new(3).expect("a histogram");
    let mut sent = std::collections::VecDeque::with_capacity(share);
    let mut id = 0u64;
    for _ in 0..share {
        send.write_all(&encode(&(id, payload))).await.expect("written");
        sent.push_back(Instant::now());
        id += 1;
    }
    while !stop.load(Ordering::Relaxed) {
        match reader.next::<(u64, ByteBuf)>().await {
            Ok(Some(_)) => {
                done.fetch_add(1, Ordering::Relaxed);
                if let Some(at) = sent.pop_front() {
                    latency.saturating_record(at.elapsed().as_micros() as u64);
                }
                send.write_all(&encode(&(id, payload))).await.expect("written");
                sent.push_back(Instant::now());
                id += 1;
            }
            _ => break,
        }
    }
    latency
}
