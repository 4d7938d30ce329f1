//! `shoal demo`: a real 3-node cluster on loopback, a short workload that
//! shows quorums at work, and the commands to use it by hand.

use anyhow::{Context as _, Result, bail};
use clap::Args;
use shoal::node::{Durability, NodeHandle, NodeOptions};
use shoal::proto::Config;
use shoal::{Client, ClientError, Consistency, Context, Credentials};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args)]
pub struct DemoArgs {
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long)]
    duration: Option<u64>,
    /// First of three consecutive UDP ports on 127.0.0.1 (0: any free ports).
    #[arg(long, default_value_t = 7101)]
    base_port: u16,
}

const NODES: usize = 3;
const KEYS: usize = 10;

struct Demo {
    dir: PathBuf,
    nodes: Vec<Option<NodeHandle>>,
    addrs: Vec<SocketAddr>,
}

impl Demo {
    fn cluster_dir(&self) -> PathBuf {
        self.dir.join("cluster")
    }

    fn options(&self, i: usize, listen: SocketAddr) -> NodeOptions {
        let seeds = self
            .addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| *a)
            .collect();
        NodeOptions {
            data_dir: self.dir.join(format!("node{}", i + 1)),
            listen,
            cluster_dir: self.cluster_dir(),
            seeds,
            durability: Durability::Buffer,
            config: Config::default(),
        }
    }

    async fn start_node(&mut self, i: usize, listen: SocketAddr) -> Result<()> {
        let node = shoal::node::start(self.options(i, listen))
            .await
            .with_context(|| format!("starting node {} on {listen}", i + 1))?;
        if self.addrs.len() <= i {
            self.addrs.push(node.addr());
        }
        self.nodes[i] = Some(node);
        Ok(())
    }

    async fn wait_for_members(&self, client: &Client, up: usize) -> Result<()> {
        for _ in 0..150 {
            let mut ok = true;
            for (i, node) in self.nodes.iter().enumerate() {
                if node.is_some() {
                    let report = client.status_of(self.addrs[i]).await;
                    ok &= report.is_ok_and(|r| r.members.iter().filter(|m| m.up).count() == up);
                }
            }
            if ok {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("the cluster did not settle on {up} live members within 30 s")
    }
}

pub async fn run(args: DemoArgs) -> Result<()> {
    super::init_logging_quiet();
    let temp = tempfile::Builder::new().prefix("shoal-demo-").tempdir()?;
    let mut demo = Demo {
        dir: temp.path().to_path_buf(),
        nodes: (0..NODES).map(|_| None).collect(),
        addrs: Vec::new(),
    };
    shoal::net::tls::init_cluster_dir(&demo.cluster_dir())?;
    for i in 0..NODES {
        let port = if args.base_port == 0 {
            0
        } else {
            args.base_port + i as u16
        };
        demo.start_node(i, SocketAddr::from(([127, 0, 0, 1], port)))
            .await?;
    }
    println!(
        "shoal demo: {NODES} nodes on loopback, N=3, data in {}",
        demo.dir.display()
    );
    let credentials = Credentials::from_cluster_dir(&demo.cluster_dir())?;
    let client = Client::connect(&demo.addrs, credentials).await?;
    demo.wait_for_members(&client, NODES).await?;
    for (i, node) in demo.nodes.iter().enumerate() {
        let node = node.as_ref().expect("started");
        println!("  node {} = {} at {}", i + 1, node.id(), node.addr());
    }
    print_commands(&demo.cluster_dir(), demo.addrs[0]);

    workload(&mut demo, &client).await?;

    match args.duration {
        Some(seconds) => {
            println!("\nrunning for {seconds} s (--duration)...");
            tokio::time::sleep(Duration::from_secs(seconds)).await;
        }
        None => {
            println!("\nthe cluster keeps running; press Ctrl-C to stop it.");
            super::wait_for_signal().await;
        }
    }
    client.close().await;
    for node in demo.nodes.iter_mut().filter_map(Option::take) {
        node.shutdown().await?;
    }
    println!("demo stopped; {} removed", demo.dir.display());
    Ok(())
}

fn print_commands(cluster_dir: &Path, node: SocketAddr) {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "shoal".into());
    println!("\nIn another terminal, try:");
    println!(
        "  export SHOAL_CLUSTER_DIR={} SHOAL_NODE={node}",
        cluster_dir.display()
    );
    println!("  {exe} put greeting hello");
    println!("  {exe} get greeting");
    println!("  {exe} get user:1 --consistency all");
    println!("  {exe} status");
}

async fn workload(demo: &mut Demo, client: &Client) -> Result<()> {
    println!("\n1. writing {KEYS} keys at QUORUM");
    for i in 1..=KEYS {
        let (key, value) = (format!("user:{i}"), format!("profile-{i}"));
        client
            .put(&key, &value, &Context::empty(), Consistency::Quorum)
            .await?;
    }
    println!("   {KEYS} writes acknowledged by at least 2 of 3 replicas each");

    println!("2. stopping node 3");
    let stopped = demo.nodes[2].take().expect("running");
    let listen = stopped.addr();
    stopped.shutdown().await?;
    demo.wait_for_members(client, NODES - 1).await?;
    println!("   the others see it down");

    println!("3. reading every key at QUORUM with node 3 down");
    for i in 1..=KEYS {
        let read = client.get(format!("user:{i}"), Consistency::Quorum).await?;
        if read.values.first().map(|v| v.value.as_slice()) != Some(format!("profile-{i}").as_bytes()) {
            bail!("user:{i} read back wrong: {read:?}");
        }
    }
    println!("   all {KEYS} served");
    match client.get("user:1", Consistency::All).await {
        Err(ClientError::Request(error)) => println!("   a read at ALL is refused: {error}"),
        other => bail!("a read at ALL with a node down should fail, got {other:?}"),
    }

    println!("4. restarting node 3");
    demo.start_node(2, listen).await?;
    demo.wait_for_members(client, NODES).await?;
    let read = client.get("user:1", Consistency::All).await?;
    println!(
        "   back; user:1 at ALL = {:?}",
        String::from_utf8_lossy(&read.values.first().context("user:1 has a value")?.value)
    );
    Ok(())
}
