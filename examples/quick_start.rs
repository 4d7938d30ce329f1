//! Connect, write, read, overwrite with the read's context, delete.
//!
//! `cargo run --example quick_start` (starts its own 3-node cluster unless
//! `SHOAL_NODE` and `SHOAL_CLUSTER_DIR` name one).

#[path = "common/mod.rs"]
mod common;

use shoal::{Consistency, Context};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cluster = common::Cluster::connect_or_start().await?;
    let client = &cluster.client;

    // A blind write: no context, it supersedes nothing.
    client
        .put("user:ada", "Ada", &Context::empty(), Consistency::Quorum)
        .await?;

    // A read returns every sibling and a context.
    let read = client.get("user:ada", Consistency::Quorum).await?;
    println!("user:ada = {:?}", String::from_utf8_lossy(&read.values[0].value));

    // Writing with the read's context replaces exactly what was read.
    client
        .put("user:ada", "Ada Lovelace", &read.context, Consistency::Quorum)
        .await?;
    let read = client.get("user:ada", Consistency::Quorum).await?;
    assert_eq!(read.values.len(), 1);
    println!("user:ada = {:?}", String::from_utf8_lossy(&read.values[0].value));

    // Deleting also takes the context; a deleted key reads as no values.
    client
        .delete("user:ada", &read.context, Consistency::Quorum)
        .await?;
    let read = client.get("user:ada", Consistency::Quorum).await?;
    println!("after delete: {} values", read.values.len());
    assert!(read.values.is_empty());

    cluster.stop().await
}
