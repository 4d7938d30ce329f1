//! Shared by the examples: a cluster to talk to. Uses the one named by
//! `SHOAL_NODE` and `SHOAL_CLUSTER_DIR` if both are set, otherwise starts a
//! 3-node cluster on loopback in a temporary directory.

#[allow(dead_code)]
#[path = "../../src/cli/local.rs"]
mod local;

use local::LocalCluster;
use shoal::{Client, Credentials};
use std::time::Duration;

pub struct Cluster {
    pub client: Client,
    local: Option<LocalCluster>,
}

impl Cluster {
    pub async fn connect_or_start() -> anyhow::Result<Cluster> {
        if let (Ok(node), Ok(dir)) = (std::env::var("SHOAL_NODE"), std::env::var("SHOAL_CLUSTER_DIR")) {
            let credentials = Credentials::from_cluster_dir(dir.as_ref())?;
            let client = Client::connect(&[node.parse()?], credentials).await?;
            return Ok(Cluster { client, local: None });
        }
        let local = LocalCluster::start(3).await?;
        let client = local.ready_client(Duration::from_secs(30)).await?;
        Ok(Cluster {
            client,
            local: Some(local),
        })
    }

    /// Stops the nodes this example started.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.client.close().await;
        if let Some(local) = self.local {
            local.shutdown().await?;
        }
        Ok(())
    }
}
