//! Concurrent writes are kept as siblings, never silently dropped. Read
//! them all, merge them your way, and write the result with the read's
//! context: it replaces exactly the siblings you saw.
//!
//! `cargo run --example resolving_siblings`

#[path = "common/mod.rs"]
mod common;

use shoal::{Consistency, Context};
use std::collections::BTreeSet;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = common::Cluster::connect_or_start().await?;
    let client = &cluster.client;

    // Two clients add to a shopping cart without seeing each other's write.
    client
        .put("cart:42", "apples", &Context::empty(), Consistency::Quorum)
        .await?;
    client
        .put("cart:42", "bread", &Context::empty(), Consistency::Quorum)
        .await?;

    let read = client.get("cart:42", Consistency::Quorum).await?;
    println!("{} siblings:", read.values.len());
    for sibling in &read.values {
        println!(
            "  {:?} (written at {} ms)",
            String::from_utf8_lossy(&sibling.value),
            sibling.timestamp_ms
        );
    }
    assert_eq!(read.values.len(), 2);

    // Resolve: for a cart, the union of items.
    let items: BTreeSet<String> = read
        .values
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(&v.value)
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let merged = items.into_iter().collect::<Vec<_>>().join(",");
    client
        .put("cart:42", &merged, &read.context, Consistency::Quorum)
        .await?;

    let read = client.get("cart:42", Consistency::Quorum).await?;
    println!("resolved: {:?}", String::from_utf8_lossy(&read.values[0].value));
    assert_eq!(read.values.len(), 1);

    // (Another common policy: keep the sibling with the newest timestamp_ms.)
    cluster.stop().await
}
