//! A tour of per-request consistency: ONE, TWO, QUORUM, ALL and explicit
//! R,W; what R + W > N buys; and what an impossible level looks like.
//!
//! `cargo run --example consistency_levels`

#[path = "common/mod.rs"]
mod common;

use shoal::{ClientError, Consistency, Context};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = common::Cluster::connect_or_start().await?;
    let client = &cluster.client;

    // Each request picks how many of the key's N=3 replicas must answer.
    for level in [
        Consistency::One,
        Consistency::Two,
        Consistency::Quorum,
        Consistency::All,
    ] {
        let key = format!("tour:{level}");
        client.put(&key, "v", &Context::empty(), level).await?;
        let read = client.get(&key, level).await?;
        println!("{level:>6}: wrote and read back {} value(s)", read.values.len());
    }

    // R + W > N: W=2 and R=2 overlap in at least one replica, so this read
    // sees the acknowledged write even if one replica missed it.
    let strict = Consistency::Custom { r: 2, w: 2 };
    client
        .put("tour:strict", "seen", &Context::empty(), strict)
        .await?;
    let read = client.get("tour:strict", strict).await?;
    println!(
        "   2,2: read {:?}",
        String::from_utf8_lossy(&read.values[0].value)
    );

    // Fast writes, thorough reads: W=1, R=3.
    let lopsided = Consistency::Custom { r: 3, w: 1 };
    client
        .put("tour:lopsided", "v", &Context::empty(), lopsided)
        .await?;
    println!(
        "   3,1: read {} value(s)",
        client.get("tour:lopsided", lopsided).await?.values.len()
    );

    // Asking for more replicas than a key has is refused before anything is written.
    match client.get("tour:x", Consistency::Custom { r: 4, w: 4 }).await {
        Err(ClientError::Request(error)) => println!("   4,4: refused: {error}"),
        other => anyhow::bail!("expected a refusal, got {other:?}"),
    }

    cluster.stop().await
}
