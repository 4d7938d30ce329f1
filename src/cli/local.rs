//! A cluster of real nodes inside one process, on loopback, in a temporary
//! directory: what `shoal demo`, `shoal bench --local`, the examples and the
//! integration tests run against.
//!
//! It is not part of the library (users of the library do not compile it):
//! it is a module of the `shoal` binary, and the tests, examples and
//! benches include this same file (`#[path]`). So it uses only shoal's
//! public API.

use shoal::net::tls::TlsError;
use shoal::node::{
    DiskFailurePolicy, Durability, HttpOptions, Limits, NodeError, NodeHandle, NodeOptions, S3Options,
    Storage,
};
use shoal::proto::{Config, NodeId};
use shoal::{Client, ClientError, Credentials};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A fresh directory under the system's temporary directory, removed
/// with everything in it when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<temp>/<prefix><pid>-<nanos>-<n>`; never an existing one.
    pub fn new(prefix: &str) -> std::io::Result<ScratchDir> {
        static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}{}-{nanos}-{n}", std::process::id()));
        std::fs::create_dir(&path)?;
        Ok(ScratchDir { path })
    }

    /// Where it is.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Nodes started in this process. Node `i` keeps its address and data
/// directory across [`LocalCluster::stop`] and [`LocalCluster::restart`].
pub struct LocalCluster {
    /// Holds the cluster CA (`cluster/`) and each node's data (`node{i}/`);
    /// removed when the cluster is dropped.
    pub dir: ScratchDir,
    /// The nodes; `None` while stopped.
    pub nodes: Vec<Option<NodeHandle>>,
    /// Node `i`'s address.
    pub addrs: Vec<SocketAddr>,
    /// Durability of every node.
    pub durability: Durability,
    /// Settings of every node.
    pub config: Config,
    /// Network limits of every node (taken at each start).
    pub limits: Limits,
    /// What a node started from now on does when its storage fails.
    pub disk_failure_policy: DiskFailurePolicy,
    /// Where nodes started from now on keep their data.
    pub storage: Storage,
    /// Run each node started from now on on its own tokio runtime with
    /// this many worker threads, as if it were its own process (its tasks
    /// then do not queue behind other nodes' tasks). `None` (the default):
    /// every node shares the caller's runtime.
    pub own_runtime: Option<usize>,
    /// The runtimes of nodes started with `own_runtime`.
    runtimes: Vec<Option<tokio::runtime::Runtime>>,
    /// Serve the HTTP API on every node started from now on (on
    /// 127.0.0.1, an ephemeral port): `Some(true)` plain HTTP, `Some(false)`
    /// HTTPS.
    pub http: Option<bool>,
    /// Serve the S3 gateway on every node started from now on, with these
    /// options, each on an ephemeral port of 127.0.0.1.
    pub s3: Option<S3Options>,
}

impl LocalCluster {
    /// `size` nodes on ephemeral loopback ports, buffered durability,
    /// default settings.
    pub async fn start(size: usize) -> Result<LocalCluster, NodeError> {
        LocalCluster::start_with(size, Durability::Buffer).await
    }

    /// [`LocalCluster::start`] with a durability setting.
    pub async fn start_with(size: usize, durability: Durability) -> Result<LocalCluster, NodeError> {
        LocalCluster::start_on(size, 0, durability, Config::default()).await
    }

    /// `size` nodes on 127.0.0.1 ports `base_port`, `base_port + 1`, ...
    /// (all ephemeral if `base_port` is 0). Each node joins through the
    /// ones started before it.
    pub async fn start_on(
        size: usize,
        base_port: u16,
        durability: Durability,
        config: Config,
    ) -> Result<LocalCluster, NodeError> {
        let mut cluster = LocalCluster::empty(durability, config)?;
        cluster.start_nodes(size, base_port).await?;
        Ok(cluster)
    }

    /// `size` nodes on ephemeral ports, each serving the HTTP API (plain
    /// HTTP if `plain`, else HTTPS) on 127.0.0.1.
    pub async fn start_with_http(size: usize, plain: bool) -> Result<LocalCluster, NodeError> {
        let mut cluster = LocalCluster::empty(Durability::Buffer, Config::default())?;
        cluster.http = Some(plain);
        cluster.start_nodes(size, 0).await?;
        Ok(cluster)
    }

    /// No nodes yet: a directory with a new cluster CA.
    pub fn empty(durability: Durability, config: Config) -> Result<LocalCluster, NodeError> {
        let dir = ScratchDir::new("shoal-local-").map_err(|source| {
            NodeError::Tls(TlsError::Io {
                path: std::env::temp_dir(),
                source,
            })
        })?;
        shoal::net::tls::init_cluster_dir(&dir.path().join("cluster"))?;
        let cluster = LocalCluster {
            dir,
            nodes: Vec::new(),
            addrs: Vec::new(),
            durability,
            config,
            limits: Limits::default(),
            disk_failure_policy: DiskFailurePolicy::default(),
            storage: Storage::Disk,
            own_runtime: None,
            runtimes: Vec::new(),
            http: None,
            s3: None,
        };
        Ok(cluster)
    }

    /// Starts `size` nodes on ports from `base_port` (0: ephemeral), each
    /// joining through the ones started before it.
    pub async fn start_nodes(&mut self, size: usize, base_port: u16) -> Result<(), NodeError> {
        for i in 0..size {
            let port = if base_port == 0 { 0 } else { base_port + i as u16 };
            let node = self
                .launch(i, self.options(i, SocketAddr::from(([127, 0, 0, 1], port))))
                .await?;
            self.addrs.push(node.addr());
            self.nodes.push(Some(node));
        }
        Ok(())
    }

    /// Starts node `i`: on the caller's runtime, or on a runtime of its own.
    async fn launch(&mut self, i: usize, options: NodeOptions) -> Result<NodeHandle, NodeError> {
        if self.runtimes.len() <= i {
            self.runtimes.resize_with(i + 1, || None);
        }
        let Some(threads) = self.own_runtime else {
            return shoal::node::start(options).await;
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(format!("shoal-node{i}"))
            .enable_all()
            .build()
            .map_err(|source| NodeError::Runtime { source })?;
        let started = runtime.spawn(shoal::node::start(options)).await;
        self.runtimes[i] = Some(runtime);
        match started {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// The cluster directory (CA certificate and key).
    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    /// Node `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    /// Credentials for a client of this cluster.
    pub fn credentials(&self) -> Result<Credentials, TlsError> {
        Credentials::from_cluster_dir(&self.cluster_dir())
    }

    /// Addresses of the running nodes.
    pub fn running(&self) -> Vec<SocketAddr> {
        self.nodes
            .iter()
            .zip(&self.addrs)
            .filter(|(node, _)| node.is_some())
            .map(|(_, addr)| *addr)
            .collect()
    }

    /// A client seeded with every running node.
    pub async fn client(&self) -> Result<Client, ClientError> {
        Client::connect(&self.running(), self.credentials()?).await
    }

    fn options(&self, i: usize, listen: SocketAddr) -> NodeOptions {
        let mut options = NodeOptions::new(self.data_dir(i), listen, self.cluster_dir());
        options.seeds = self
            .addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, addr)| *addr)
            .collect();
        options.durability = self.durability;
        options.disk_failure_policy = self.disk_failure_policy;
        options.storage = self.storage;
        options.config = self.config.clone();
        options.limits = self.limits;
        options.http = self.http.map(|plain| {
            let mut http = HttpOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)));
            http.plain = plain;
            http
        });
        options.s3 = self.s3.clone().map(|mut s3| {
            s3.listen = SocketAddr::from(([127, 0, 0, 1], 0));
            s3
        });
        options
    }

    /// Where node `i` serves S3, if it runs and does.
    pub fn s3_addr(&self, i: usize) -> Option<SocketAddr> {
        self.nodes[i].as_ref().and_then(NodeHandle::s3_addr)
    }

    /// Where node `i` serves HTTP, if it runs and does.
    pub fn http_addr(&self, i: usize) -> Option<SocketAddr> {
        self.nodes[i].as_ref().and_then(NodeHandle::http_addr)
    }

    /// A client seeded with every running node, returned once each of them
    /// sees all the running nodes up (and the client knows the ring).
    pub async fn ready_client(&self, within: Duration) -> Result<Client, ClientError> {
        let client = self.client().await?;
        let running = self.running();
        match client
            .admin()
            .wait_until_members_up(&running, running.len(), within)
            .await
        {
            Ok(()) => Ok(client),
            Err(error) => {
                client.close().await;
                Err(error)
            }
        }
    }

    /// Waits until every running node sees exactly `up` members up.
    pub async fn wait_until_members_up(&self, up: usize, within: Duration) -> Result<(), ClientError> {
        let client = self.client().await?;
        let result = client
            .admin()
            .wait_until_members_up(&self.running(), up, within)
            .await;
        client.close().await;
        result
    }

    /// Stops node `i` gracefully.
    ///
    /// # Panics
    /// If node `i` is not running.
    pub async fn stop(&mut self, i: usize) -> Result<(), NodeError> {
        let node = self.nodes[i].take().expect("stop: node is running");
        let result = node.shutdown().await;
        if let Some(runtime) = self.runtimes.get_mut(i).and_then(Option::take) {
            // Its tasks have ended; the runtime's threads go in the background.
            runtime.shutdown_background();
        }
        Ok(result?)
    }

    /// Restarts node `i` on its old address and data directory. The old
    /// endpoint's socket may close a moment after the node stopped: a busy
    /// address is tried again for up to 5 s.
    pub async fn restart(&mut self, i: usize) -> Result<(), NodeError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match self.launch(i, self.options(i, self.addrs[i])).await {
                Ok(node) => {
                    self.nodes[i] = Some(node);
                    return Ok(());
                }
                Err(NodeError::Bind { source, .. })
                    if source.kind() == std::io::ErrorKind::AddrInUse
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Restarts stopped node `i` on an emptied data directory under its old
    /// id `node`: a node whose disk was lost and replaced.
    pub async fn restart_wiped(&mut self, i: usize, node: NodeId) -> Result<(), NodeError> {
        assert!(self.nodes[i].is_none(), "restart_wiped: node {i} is running");
        std::fs::remove_dir_all(self.data_dir(i)).map_err(|source| {
            NodeError::Store(shoal::proto::StoreError::Engine {
                source: Box::new(source),
            })
        })?;
        let mut options = self.options(i, self.addrs[i]);
        options.config.node_id = Some(node);
        self.nodes[i] = Some(self.launch(i, options).await?);
        Ok(())
    }

    /// Starts one more node, on an ephemeral port, that joins through the
    /// running ones (it streams its ranges before it owns them). Returns
    /// its index.
    pub async fn add_node(&mut self) -> Result<usize, NodeError> {
        let i = self.nodes.len();
        let mut options = self.options(i, SocketAddr::from(([127, 0, 0, 1], 0)));
        options.seeds = self.running();
        let node = self.launch(i, options).await?;
        self.addrs.push(node.addr());
        self.nodes.push(Some(node));
        Ok(i)
    }

    /// Node `i`'s id, if it runs.
    pub fn id(&self, i: usize) -> Option<NodeId> {
        self.nodes[i].as_ref().map(NodeHandle::id)
    }

    /// Stops every running node.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.stop(i).await?;
            }
        }
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // A runtime may not be dropped (which blocks) inside another one.
        for runtime in self.runtimes.drain(..).flatten() {
            runtime.shutdown_background();
        }
    }
}
