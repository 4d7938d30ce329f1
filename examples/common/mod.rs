//! Shared by the examples: a cluster to talk to. Uses the one named by
//! `SHOAL_NODE` and `SHOAL_CLUSTER_DIR` if both are set, otherwise starts a
//! 3-node cluster on loopback in a temporary directory.

use shoal::node::{Durability, NodeHandle, NodeOptions};
use shoal::proto::Config;
use shoal::{Client, Credentials};
use std::net::SocketAddr;
use std::time::Duration;

pub struct Cluster {
    pub client: Client,
    nodes: Vec<NodeHandle>,
    _dir: Option<tempfile::TempDir>,
}

impl Cluster {
    pub async fn connect_or_start() -> anyhow::Result<Cluster> {
        if let (Ok(node), Ok(dir)) = (std::env::var("SHOAL_NODE"), std::env::var("SHOAL_CLUSTER_DIR")) {
            let credentials = Credentials::from_cluster_dir(dir.as_ref())?;
            let client = Client::connect(&[node.parse()?], credentials).await?;
            return Ok(Cluster {
                client,
                nodes: Vec::new(),
                _dir: None,
            });
        }
        let dir = tempfile::tempdir()?;
        let cluster_dir = dir.path().join("cluster");
        shoal::net::tls::init_cluster_dir(&cluster_dir)?;
        let mut nodes: Vec<NodeHandle> = Vec::new();
        for i in 0..3 {
            let options = NodeOptions {
                data_dir: dir.path().join(format!("node{i}")),
                listen: "127.0.0.1:0".parse()?,
                cluster_dir: cluster_dir.clone(),
                seeds: nodes.first().map(|n| n.addr()).into_iter().collect(),
                durability: Durability::Buffer,
                config: Config::default(),
            };
            nodes.push(shoal::node::start(options).await?);
        }
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr()).collect();
        let client = Client::connect(&addrs, Credentials::from_cluster_dir(&cluster_dir)?).await?;
        // Wait until every node sees the other two.
        for _ in 0..100 {
            let mut settled = true;
            for &addr in &addrs {
                settled &= client
                    .status_of(addr)
                    .await?
                    .members
                    .iter()
                    .filter(|m| m.up)
                    .count()
                    == 3;
            }
            if settled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        client.refresh_ring().await?;
        Ok(Cluster {
            client,
            nodes,
            _dir: Some(dir),
        })
    }

    /// Stops the nodes this example started.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.client.close().await;
        for node in self.nodes {
            node.shutdown().await?;
        }
        Ok(())
    }
}
