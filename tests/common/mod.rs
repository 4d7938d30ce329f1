//! Real shoal nodes on 127.0.0.1 for integration tests: started in-process
//! on ephemeral ports, in temporary directories, stopped at the end.
#![allow(dead_code)]

use shoal::node::{Durability, NodeHandle, NodeOptions};
use shoal::proto::Config;
use shoal::{Client, Credentials};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

pub struct TestCluster {
    pub dir: TempDir,
    pub nodes: Vec<Option<NodeHandle>>,
    pub addrs: Vec<SocketAddr>,
    pub durability: Durability,
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

impl TestCluster {
    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    fn options(&self, i: usize, listen: SocketAddr, seeds: Vec<SocketAddr>) -> NodeOptions {
        NodeOptions {
            data_dir: self.data_dir(i),
            listen,
            cluster_dir: self.cluster_dir(),
            seeds,
            durability: self.durability,
            config: Config::default(),
        }
    }

    /// `size` nodes; all but the first join through the first.
    pub async fn start(size: usize) -> TestCluster {
        TestCluster::start_with(size, Durability::Buffer).await
    }

    /// [`TestCluster::start`] with a durability setting.
    pub async fn start_with(size: usize, durability: Durability) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        shoal::net::tls::init_cluster_dir(&dir.path().join("cluster")).unwrap();
        let mut cluster = TestCluster {
            dir,
            nodes: Vec::new(),
            addrs: Vec::new(),
            durability,
        };
        for i in 0..size {
            let seeds = cluster.addrs.first().copied().into_iter().collect();
            let node = shoal::node::start(cluster.options(i, loopback(), seeds))
                .await
                .unwrap();
            cluster.addrs.push(node.addr());
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    /// Waits until every running node sees `up` members up.
    pub async fn wait_until_members_up(&self, up: usize, within: Duration) {
        let client = self.client().await;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut all = true;
            for (i, node) in self.nodes.iter().enumerate() {
                if node.is_none() {
                    continue;
                }
                match client.status_of(self.addrs[i]).await {
                    Ok(report) => all &= report.members.iter().filter(|m| m.up).count() == up,
                    Err(_) => all = false,
                }
            }
            if all {
                client.close().await;
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "members did not converge to {up} up within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn credentials(&self) -> Credentials {
        Credentials::from_cluster_dir(&self.cluster_dir()).unwrap()
    }

    pub async fn client(&self) -> Client {
        let seeds: Vec<SocketAddr> = self
            .nodes
            .iter()
            .zip(&self.addrs)
            .filter(|(n, _)| n.is_some())
            .map(|(_, a)| *a)
            .collect();
        Client::connect(&seeds, self.credentials()).await.unwrap()
    }

    /// Stops node `i` gracefully.
    pub async fn stop(&mut self, i: usize) {
        self.nodes[i].take().unwrap().shutdown().await.unwrap();
    }

    /// Restarts node `i` on its old address and data directory.
    pub async fn restart(&mut self, i: usize) {
        let seeds = self
            .addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| *a)
            .collect();
        let node = shoal::node::start(self.options(i, self.addrs[i], seeds))
            .await
            .unwrap();
        self.nodes[i] = Some(node);
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.stop(i).await;
            }
        }
    }
}

/// Runs an async test body with a hard time bound.
pub fn run<F: std::future::Future<Output = ()>>(limit: Duration, body: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(limit, body)
            .await
            .expect("test exceeded its time bound");
    });
}
