//! `shoal demo`: a real 3-node cluster on loopback, a short workload that
//! shows quorums at work, and the commands to use it by hand.

use super::local::LocalCluster;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use shoal::node::Durability;
use shoal::proto::Config;
use shoal::{Client, ClientError, Consistency, Context};
use std::net::SocketAddr;
use std::path::Path;
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
const SETTLE: Duration = Duration::from_secs(30);

pub async fn run(args: DemoArgs) -> Result<()> {
    super::init_logging_quiet();
    let mut cluster = LocalCluster::empty(Durability::Buffer, Config::default())?;
    // Each node serves the HTTP API too (HTTPS, on a free port).
    cluster.http = Some(false);
    // And the S3 gateway (HTTPS too).
    cluster.s3 = Some(shoal::node::S3Options::new(SocketAddr::from(([127, 0, 0, 1], 0))));
    cluster
        .start_nodes(NODES, args.base_port)
        .await
        .context("starting the demo cluster")?;
    println!(
        "shoal demo: {NODES} nodes on loopback, N=3, data in {}",
        cluster.dir.path().display()
    );
    let client = cluster.ready_client(SETTLE).await?;
    for (i, node) in cluster.nodes.iter().enumerate() {
        let node = node.as_ref().expect("started");
        println!("  node {} = {} at {}", i + 1, node.id(), node.addr());
    }
    // The commands below get a client certificate (role admin: they may
    // ask for status), not the CA key the nodes were issued from.
    let client_dir = cluster.dir.path().join("client");
    shoal::net::tls::issue_to_dir(
        &cluster.cluster_dir(),
        &client_dir,
        shoal::net::tls::Role::Admin,
        "demo",
        Duration::from_secs(86_400),
    )
    .context("issuing the demo's client certificate")?;
    print_commands(&client_dir, cluster.addrs[0], cluster.http_addr(0));
    if let Some(http) = cluster.http_addr(0) {
        let (_, token) = client
            .admin()
            .create_token("demo page", shoal::net::tls::Role::ReadOnly)
            .await
            .context("making the status page's token")?;
        println!("The live status page (the browser will ask you to accept the demo's own CA):");
        println!("  https://{http}/#token={token}");
    }
    if let Some(s3) = cluster.s3_addr(0) {
        let admin = client.admin();
        let (id, secret) = admin
            .s3_create_key("demo", true)
            .await
            .context("making the demo's S3 key")?;
        admin
            .s3_create_bucket("demo")
            .await
            .context("making the demo bucket")?;
        let rights = shoal::net::s3::Rights {
            read: true,
            write: true,
            owner: true,
        };
        admin
            .s3_allow(&id, "demo", rights)
            .await
            .context("opening the demo bucket")?;
        let ca = cluster.cluster_dir().join("ca.pem");
        println!("Or with any S3 client (bucket `demo`; e.g. pip install awscli):");
        println!(
            "  export AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION=us-east-1 AWS_CA_BUNDLE={}",
            ca.display()
        );
        println!("  aws --endpoint-url https://{s3} s3 cp README.md s3://demo/");
        println!("  aws --endpoint-url https://{s3} s3 ls s3://demo/");
    }

    workload(&mut cluster, &client).await?;

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
    let dir = cluster.dir.path().display().to_string();
    cluster.shutdown().await?;
    println!("demo stopped; {dir} removed");
    Ok(())
}

fn print_commands(cluster_dir: &Path, node: SocketAddr, http: Option<SocketAddr>) {
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
    println!("  {exe} list --values");
    if let Some(http) = http {
        let dir = cluster_dir.display();
        println!("Or over HTTP, from any language:");
        println!(
            "  curl --cacert {dir}/ca.pem --cert {dir}/cert.pem --key {dir}/key.pem https://{http}/v1/kv/user:1"
        );
        println!(
            "  curl --cacert {dir}/ca.pem --cert {dir}/cert.pem --key {dir}/key.pem 'https://{http}/v1/kv?prefix=user:'"
        );
    }
}

async fn workload(cluster: &mut LocalCluster, client: &Client) -> Result<()> {
    println!("\n1. writing {KEYS} keys at QUORUM");
    for i in 1..=KEYS {
        let (key, value) = (format!("user:{i}"), format!("profile-{i}"));
        client
            .put(&key, &value, &Context::empty(), Consistency::Quorum)
            .await?;
    }
    println!("   {KEYS} writes acknowledged by at least 2 of 3 replicas each");

    println!("2. stopping node 3");
    cluster.stop(2).await?;
    client
        .admin()
        .wait_until_members_up(&cluster.running(), NODES - 1, SETTLE)
        .await?;
    println!("   the others see it down");

    println!("3. reading every key at QUORUM with node 3 down");
    for i in 1..=KEYS {
        let read = client.get(format!("user:{i}"), Consistency::Quorum).await?;
        if read.values.first().map(|v| &v.value[..]) != Some(format!("profile-{i}").as_bytes()) {
            bail!("user:{i} read back wrong: {read:?}");
        }
    }
    println!("   all {KEYS} served");
    match client.get("user:1", Consistency::All).await {
        Err(ClientError::Request(error)) => println!("   a read at ALL is refused: {error}"),
        other => bail!("a read at ALL with a node down should fail, got {other:?}"),
    }

    println!("4. restarting node 3");
    cluster.restart(2).await?;
    client
        .admin()
        .wait_until_members_up(&cluster.running(), NODES, SETTLE)
        .await?;
    let read = client.get("user:1", Consistency::All).await?;
    println!(
        "   back; user:1 at ALL = {:?}",
        String::from_utf8_lossy(&read.values.first().context("user:1 has a value")?.value)
    );
    Ok(())
}
