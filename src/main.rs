//! The `shoal` command line.

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use shoal::proto::harness::Cluster;
use shoal::proto::{ClientResponse, Config, Consistency, Context};

/// shoal: a leaderless, Dynamo-style replicated key-value store.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a 3-node cluster with a short demo workload: writes at QUORUM,
    /// a replica cut off, reads still served, ALL refused, the replica back.
    Demo {
        /// Seed of the demo cluster's randomness.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { seed } => demo(seed),
    }
}

fn show(response: &ClientResponse) -> String {
    match response {
        ClientResponse::Found { values, .. } if values.is_empty() => "not found".into(),
        ClientResponse::Found { values, .. } => values
            .iter()
            .map(|v| format!("{:?}", String::from_utf8_lossy(&v.value)))
            .collect::<Vec<_>>()
            .join(" | "),
        ClientResponse::Written { .. } => "ok".into(),
        ClientResponse::Failed(error) => format!("error: {error}"),
    }
}

/// The demo on the core's virtual-time cluster (in one process).
fn demo(seed: u64) -> Result<()> {
    let mut cluster = Cluster::new(3, Config::default(), seed);
    let nodes = cluster.node_ids();
    println!("shoal demo: 3 nodes (N=3) on virtual time, seed {seed}");
    for node in &nodes {
        println!("  node {node}");
    }
    let keys: Vec<String> = (1..=5).map(|i| format!("user:{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let at = nodes[i % nodes.len()];
        let value = format!("profile-{i}");
        let response = cluster.put(
            at,
            key.as_bytes(),
            value.as_bytes(),
            Context::empty(),
            Consistency::Quorum,
        );
        println!("put {key} = {value:?} at QUORUM via {at}: {}", show(&response));
        if !matches!(response, ClientResponse::Written { .. }) {
            bail!("demo write failed: {}", show(&response));
        }
    }
    let down = nodes[2];
    cluster.cut_off(down);
    println!("-- node {down} cut off from the others");
    for key in &keys {
        let response = cluster.get(nodes[0], key.as_bytes(), Consistency::Quorum);
        println!("get {key} at QUORUM: {}", show(&response));
        if !matches!(&response, ClientResponse::Found { values, .. } if !values.is_empty()) {
            bail!("demo read failed with one node down: {}", show(&response));
        }
    }
    let response = cluster.get(nodes[0], keys[0].as_bytes(), Consistency::All);
    println!("get {} at ALL: {}", keys[0], show(&response));
    cluster.reconnect(down);
    println!("-- node {down} back");
    let response = cluster.get(down, keys[0].as_bytes(), Consistency::All);
    println!("get {} at ALL via {down}: {}", keys[0], show(&response));
    println!("done: {} messages delivered", cluster.delivered());
    Ok(())
}
