//! Command definitions and their implementations.

mod bench;
mod demo;
// Shared with the tests, examples and benches, which use parts the
// binary does not.
#[allow(dead_code)]
pub(crate) mod local;
mod output;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use shoal::net::tls::Role;
use shoal::node::Durability;
use shoal::node::settings::{LogFormat, Settings, StorageKind};
use shoal::proto::{AdminRequest, NodeId};
use shoal::{Client, Consistency, Context, Credentials};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// shoal: a leaderless, Dynamo-style replicated key-value store.
///
/// Every key lives on N nodes; every request picks its own consistency.
/// Start with `shoal demo`, or `shoal cluster init` and `shoal node start`.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a 3-node cluster on loopback with a demo workload, print the
    /// commands to use it, and keep it running until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Benchmark a cluster (or a local one it starts) with YCSB-style workloads.
    Bench(Box<bench::BenchArgs>),
    /// Manage the cluster's certificate authority.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Start, leave or remove nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Bearer tokens for the HTTP API (kept in the cluster; admin only).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The object gateway's access keys, buckets and rights (kept in the
    /// cluster; admin only).
    #[command(subcommand)]
    S3(S3Command),
    /// Show a node's view of the cluster: members, state, ring share, counters.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a value. Pass the context of a previous get to replace what it saw.
    Put {
        /// The key.
        key: String,
        /// The value, as text (or give --file).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value's bytes from this file, or from standard input
        /// with `-` (any bytes, up to the node's max_value_bytes).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Time to live: the value reads as absent once this has passed on
        /// the coordinating node's clock (for example 30s, 10m, 1h 30m;
        /// within the nodes' min_ttl and max_ttl, by default 1s to 365
        /// days).
        #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Read every sibling of a key and the context to write it back with.
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
        /// How many replicas must answer: one, two, quorum, all, R,W, or
        /// default (the node's `default_consistency`, QUORUM unless set).
        #[arg(long, default_value = "default")]
        consistency: Consistency,
        /// Print JSON instead of lines.
        #[arg(long, conflicts_with = "output")]
        json: bool,
        /// Write the value's raw bytes to this file, or to standard output
        /// with `-` (the context then goes to standard error). Fails if the
        /// key is absent or has siblings.
        #[arg(long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// List keys in byte order: all, a prefix, or a range. Follows pages
    /// until the range is done or --limit keys were printed. Deleted keys
    /// are left out. Each page needs R replicas of every range of the ring.
    List {
        /// Keys that begin with this.
        #[arg(long, conflicts_with_all = ["start", "end"])]
        prefix: Option<String>,
        /// The first key (inclusive).
        #[arg(long)]
        start: Option<String>,
        /// The key to stop before (exclusive).
        #[arg(long)]
        end: Option<String>,
        /// Most keys to print in all (default: every key in the range).
        #[arg(long)]
        limit: Option<u64>,
        /// Keys per page asked of the cluster, 1..=1000.
        #[arg(long, default_value_t = 1000)]
        page_size: u32,
        /// Print each key's values too.
        #[arg(long)]
        values: bool,
        /// How many replicas of every range must answer: one, two, quorum,
        /// all, R,W, or default.
        #[arg(long, default_value = "default")]
        consistency: Consistency,
        /// Print JSON (an array of keys, with values and contexts).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a key (a tombstone replacing what the context saw).
    Delete {
        /// The key.
        key: String,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Print every change of a key until Ctrl-C: any write acknowledged
    /// through any node, at any consistency, while the key's replicas are
    /// up. Starts from the key's state now (read at the node's default
    /// consistency) or from --context, so a change made meanwhile is
    /// printed at once. Each change prints the values (or "(not found)"
    /// once deleted) and the context, as `get` does.
    Watch {
        /// The key.
        key: String,
        #[command(flatten)]
        target: Target,
        /// Watch from this context (as printed by get, put or a previous
        /// watch); empty: any state of the key is a change.
        #[arg(long)]
        context: Option<Context>,
        /// Stop after this many changes (default: run until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
        /// Print each change as one line of JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Create a cluster CA in DIR. Nodes and clients given DIR trust each
    /// other and nobody else. Refuses to overwrite an existing CA.
    Init {
        /// The cluster directory to create.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a node's certificate into OUT: the CA certificate, the node's
    /// certificate (role `node`) and its key, without the CA key. Start the
    /// node with `--cluster-dir OUT`; keep DIR (with `ca.key`) on the
    /// operator's machine.
    IssueNode {
        /// The cluster directory holding the CA and its key.
        #[arg(long, env = "SHOAL_CLUSTER_DIR")]
        dir: PathBuf,
        /// The directory to write (created; refused if it holds a certificate).
        #[arg(long)]
        out: PathBuf,
        /// How long the certificate is valid (e.g. 365d, 90d).
        #[arg(long, default_value = "365d", value_parser = humantime_serde::re::humantime::parse_duration)]
        valid_for: std::time::Duration,
    },
    /// Issue a client's certificate with a role into OUT (the CA
    /// certificate, the client's certificate and key; no CA key). Give OUT
    /// to the application as its cluster directory.
    IssueClient {
        /// The client's name, written into its certificate.
        name: String,
        /// What it may do: admin, readwrite or readonly.
        #[arg(long)]
        role: Role,
        /// The cluster directory holding the CA and its key.
        #[arg(long, env = "SHOAL_CLUSTER_DIR")]
        dir: PathBuf,
        /// The directory to write (created; refused if it holds a certificate).
        #[arg(long)]
        out: PathBuf,
        /// How long the certificate is valid.
        #[arg(long, default_value = "90d", value_parser = humantime_serde::re::humantime::parse_duration)]
        valid_for: std::time::Duration,
    },
    /// Revoke a certificate: add its serial to the cluster's deny list (a
    /// record replicated in the cluster, written at QUORUM). Every node
    /// refuses it within seconds, on new connections and on open ones,
    /// until it expires and beyond. Needs an admin client certificate.
    #[command(group = clap::ArgGroup::new("which").required(true))]
    Revoke {
        /// The certificate's serial, in hex (as `issue-node` / `issue-client`
        /// printed it; `:` separators are fine).
        #[arg(group = "which")]
        serial: Option<String>,
        /// Or the certificate file to revoke (`cert.pem` of an issued directory).
        #[arg(long, value_name = "PATH", group = "which")]
        cert: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// List the revoked certificates (serial and when), from the cluster's
    /// deny list read at QUORUM. Needs an admin client certificate.
    Revoked {
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum S3Command {
    /// Access keys.
    #[command(subcommand)]
    Key(S3KeyCommand),
    /// Buckets.
    #[command(subcommand)]
    Bucket(S3BucketCommand),
    /// Give an access key rights on a bucket (added to those it has).
    Allow {
        /// The access key id.
        key: String,
        /// The bucket.
        bucket: String,
        /// List and get objects.
        #[arg(long)]
        read: bool,
        /// Put and delete objects.
        #[arg(long)]
        write: bool,
        /// Delete the bucket and manage its rights.
        #[arg(long)]
        owner: bool,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum S3KeyCommand {
    /// Make an access key; prints its id and secret (the secret only now).
    Create {
        /// Who it is for.
        name: String,
        /// It may make buckets through the S3 gateway (CreateBucket); it
        /// then owns them.
        #[arg(long)]
        create_bucket: bool,
        #[command(flatten)]
        target: Target,
    },
    /// List access keys (ids and names; never secrets).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete an access key.
    Delete {
        /// The access key id.
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum S3BucketCommand {
    /// Make a bucket (3-63 lowercase letters, digits, hyphens and dots).
    Create {
        /// The bucket's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// List buckets and the rights each key has on them.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Delete an empty bucket.
    Delete {
        /// The bucket's name.
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token with a role and print it (only now: the cluster keeps
    /// only its hash). Use it as `Authorization: Bearer TOKEN`.
    Create {
        /// Who it is for.
        name: String,
        /// What it may do: admin, readwrite or readonly.
        #[arg(long)]
        role: Role,
        #[command(flatten)]
        target: Target,
    },
    /// List tokens: id, role, name, created.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a token by id: every node refuses it within seconds.
    Revoke {
        /// The token's id (the part after `shoal.`, as `token list` shows it).
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Run a node in the foreground until Ctrl-C, SIGTERM or `node leave`.
    Start(Box<StartArgs>),
    /// Ask a node to leave the cluster: it hands every key it holds to the
    /// nodes that take over its ranges, waits until they have them, then
    /// leaves and stops. Waits for that (up to an hour).
    Leave {
        #[command(flatten)]
        target: Target,
    },
    /// Forget a dead node: it no longer owns any range, and the remaining
    /// replicas re-replicate its ranges by anti-entropy.
    Remove {
        #[command(flatten)]
        target: Target,
        /// The dead node's id (hex, as `shoal status` shows it).
        node_id: String,
    },
}

/// Which node to talk to and with which credentials.
#[derive(Args)]
struct Target {
    /// A node's address.
    #[arg(long, env = "SHOAL_NODE", default_value = "127.0.0.1:7101")]
    node: SocketAddr,
    /// The cluster directory (from `shoal cluster init`).
    #[arg(long, env = "SHOAL_CLUSTER_DIR")]
    cluster_dir: PathBuf,
}

#[derive(Args)]
struct WriteArgs {
    #[command(flatten)]
    target: Target,
    /// How many replicas must acknowledge: one, two, quorum, all, R,W, or
    /// default (the node's `default_consistency`, QUORUM unless set).
    #[arg(long, default_value = "default")]
    consistency: Consistency,
    /// The context printed by a previous get; empty for a blind write.
    #[arg(long, default_value = "")]
    context: Context,
}

/// `shoal node start`. Settings come from built-in defaults, then the
/// config file, then `SHOAL_*` environment variables, then these flags.
#[derive(Args)]
#[command(
    after_help = "Every setting (N, vnodes, timeouts, hint window, anti-entropy pace, limits, ...) \
can be given in the config file, as SHOAL_<NAME> (e.g. SHOAL_HINT_WINDOW=1h) or as --set NAME=VALUE. \
`--print-config` prints them all with their effective values. Invalid values are refused at start, \
naming the setting."
)]
struct StartArgs {
    /// A TOML config file (flat: `name = value` per setting).
    #[arg(long, env = "SHOAL_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective settings as a config file, then exit.
    #[arg(long)]
    print_config: bool,
    /// The data directory (created if missing). Setting `data`.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The UDP address to listen on, for peers and clients [default: 127.0.0.1:7101].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The cluster directory (from `shoal cluster init`); also SHOAL_CLUSTER_DIR.
    #[arg(long)]
    cluster_dir: Option<PathBuf>,
    /// A node of the cluster to join through (repeatable). None: start a new
    /// cluster. A new node joins: it streams the ranges it will own from
    /// their current replicas, then owns them (`shoal status` shows it
    /// `joining` meanwhile; an interrupted join resumes on restart).
    #[arg(long = "seed")]
    seeds: Vec<SocketAddr>,
    /// When writes are acknowledged: buffer (reached the OS) or fsync (on disk, batched) [default: buffer].
    #[arg(long, value_enum)]
    durability: Option<Durability>,
    /// Where the data lives: disk (default) or memory (a cache node: only
    /// its identity is kept in the data directory; a restart comes back
    /// empty and is refilled from the replicas). See max_memory_bytes
    /// (default 1 GiB).
    #[arg(long, value_enum)]
    storage: Option<StorageKind>,
    /// N: replicas per key. Must be the same on every node [default: 3].
    #[arg(long)]
    replication: Option<usize>,
    /// Default request deadline in milliseconds [default: 2000].
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    /// Start an empty data directory under this node id (hex, as `shoal
    /// status` shows it): brings back a node whose disk was lost under its
    /// old identity, so it keeps its ranges and anti-entropy, hints and read
    /// repair refill it. Ignored when the directory already holds an id.
    #[arg(long, value_parser = parse_node_id)]
    node_id: Option<NodeId>,
    /// Serve Prometheus metrics over HTTP at this address (off by default).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Serve the HTTP API (HTTPS with the node's certificate) at this TCP
    /// address (off by default). Clients authenticate with a certificate
    /// of the cluster CA or a bearer token (`shoal token create`).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Serve the HTTP API as plain HTTP (loopback addresses only; tokens
    /// only).
    #[arg(long)]
    http_plain: bool,
    /// Serve the S3 gateway (HTTPS with the node's certificate) at this
    /// TCP address (off by default). Clients sign with an access key
    /// (`shoal s3 key create`); see also the settings s3_region,
    /// s3_domain and s3_grace.
    #[arg(long, value_name = "ADDR")]
    s3: Option<SocketAddr>,
    /// Serve the S3 gateway as plain HTTP (loopback addresses only).
    #[arg(long)]
    s3_plain: bool,
    /// Log format: human (default) or json. `RUST_LOG` filters (default info).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Any setting as NAME=VALUE (repeatable), e.g. --set hint_window=1h.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    set: Vec<(String, String)>,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

impl StartArgs {
    /// The flags given, as settings overrides (the named flags win over
    /// `--set`).
    fn overrides(&self) -> Vec<(String, String)> {
        let mut o = self.set.clone();
        let mut add = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                o.push((name.to_string(), value));
            }
        };
        add("data", self.data.as_ref().map(|p| p.display().to_string()));
        add("listen", self.listen.map(|a| a.to_string()));
        add(
            "cluster_dir",
            self.cluster_dir.as_ref().map(|p| p.display().to_string()),
        );
        let seeds: Vec<String> = self.seeds.iter().map(ToString::to_string).collect();
        add("seeds", (!seeds.is_empty()).then(|| seeds.join(",")));
        add(
            "durability",
            self.durability.map(|d| format!("{d:?}").to_lowercase()),
        );
        add("storage", self.storage.map(|s| format!("{s:?}").to_lowercase()));
        add("replication", self.replication.map(|r| r.to_string()));
        add(
            "request_timeout",
            self.request_timeout_ms.map(|ms| format!("{ms}ms")),
        );
        add("node_id", self.node_id.map(|id| id.to_string()));
        add("metrics", self.metrics.map(|a| a.to_string()));
        add("http", self.http.map(|a| a.to_string()));
        add("http_plain", self.http_plain.then(|| "true".to_string()));
        add("s3", self.s3.map(|a| a.to_string()));
        add("s3_plain", self.s3_plain.then(|| "true".to_string()));
        add(
            "log_format",
            self.log_format.map(|f| format!("{f:?}").to_lowercase()),
        );
        o
    }
}

fn parse_node_id(text: &str) -> Result<NodeId, String> {
    text.parse::<NodeId>()
        .map_err(|_| format!("`{text}` is not a node id: expected up to 16 hex digits"))
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(args) => bench::run(*args).await,
        Command::Cluster(ClusterCommand::Init { dir }) => {
            shoal::net::tls::init_cluster_dir(&dir)?;
            println!("cluster CA written to {}", dir.display());
            Ok(())
        }
        Command::Cluster(ClusterCommand::IssueNode { dir, out, valid_for }) => {
            let issued = shoal::net::tls::issue_to_dir(&dir, &out, Role::Node, "shoal node", valid_for)?;
            println!(
                "node certificate written to {} (no CA key); serial {}, expires {}",
                out.display(),
                issued.serial,
                issued.expiry_date()
            );
            Ok(())
        }
        Command::Cluster(ClusterCommand::IssueClient {
            name,
            role,
            dir,
            out,
            valid_for,
        }) => {
            if role == Role::Node {
                anyhow::bail!("a client cannot have the node role: use `cluster issue-node`");
            }
            let issued = shoal::net::tls::issue_to_dir(&dir, &out, role, &name, valid_for)?;
            println!(
                "client certificate for {name} ({role}) written to {} (no CA key); serial {}, expires {}",
                out.display(),
                issued.serial,
                issued.expiry_date()
            );
            Ok(())
        }
        Command::Cluster(ClusterCommand::Revoke { serial, cert, target }) => {
            let serial = match (serial, cert) {
                (Some(text), _) => shoal::net::tls::normalize_serial(&text)
                    .with_context(|| format!("`{text}` is not a certificate serial (hex)"))?,
                (None, Some(path)) => shoal::net::tls::PeerCertificate::of_pem_file(&path)?.serial,
                (None, None) => unreachable!("clap requires a serial or --cert"),
            };
            let client = connect(&target).await?;
            let list = client.admin().revoke(&serial).await?;
            client.close().await;
            println!(
                "revoked {serial}; every node refuses it within seconds ({} revoked in all)",
                list.revoked.len()
            );
            Ok(())
        }
        Command::Cluster(ClusterCommand::Revoked { target, json }) => {
            let client = connect(&target).await?;
            let list = client.admin().revoked().await?;
            client.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&list.revoked)?);
            } else {
                for (serial, at) in &list.revoked {
                    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*at);
                    let when = humantime_serde::re::humantime::format_rfc3339_seconds(when);
                    println!("{serial}  revoked {when}");
                }
            }
            Ok(())
        }
        Command::Node(NodeCommand::Start(args)) => start_node(*args).await,
        Command::Token(command) => token(command).await,
        Command::S3(command) => s3(command).await,
        Command::Node(NodeCommand::Leave { target }) => {
            let client = connect(&target).await?;
            eprintln!(
                "node at {} is handing its ranges to the nodes that take them over; \
                 waiting until it has left (progress: `shoal status`, column MOVING)",
                target.node
            );
            client.admin().request(target.node, AdminRequest::Leave).await?;
            println!("node at {} left the cluster", target.node);
            Ok(())
        }
        Command::Node(NodeCommand::Remove { target, node_id }) => {
            let node: NodeId = node_id
                .parse()
                .with_context(|| format!("`{node_id}` is not a node id (16 hex digits)"))?;
            let client = connect(&target).await?;
            client
                .admin()
                .request(target.node, AdminRequest::RemoveNode { node })
                .await?;
            println!("node {node} removed");
            Ok(())
        }
        Command::Status { target, json } => {
            let client = connect(&target).await?;
            let report = client.admin().status(target.node).await?;
            let mut counters = Vec::new();
            for member in report.members.iter().filter(|m| m.up) {
                counters.push((member.node, client.admin().status(member.addr).await.ok()));
            }
            output::status(&report, &counters, json)
        }
        Command::Put {
            key,
            value,
            file,
            ttl,
            write,
        } => {
            let value = match (value, file) {
                (Some(text), _) => text.into_bytes(),
                (None, Some(path)) => read_value(&path)?,
                (None, None) => unreachable!("clap requires a value or --file"),
            };
            let client = connect(&write.target).await?;
            let mut options = shoal::WriteOptions::new(write.consistency);
            options.ttl = ttl;
            let context = client.put_with(&key, &value, &write.context, options).await?;
            println!("ok");
            println!("context: {context}");
            Ok(())
        }
        Command::Get {
            key,
            target,
            consistency,
            json,
            output,
        } => {
            let client = connect(&target).await?;
            let read = client.get(&key, consistency).await?;
            match output {
                Some(path) => output::raw(&read, &path),
                None => output::read(&read, json),
            }
        }
        Command::List {
            prefix,
            start,
            end,
            limit,
            page_size,
            values,
            consistency,
            json,
            target,
        } => {
            let options = match prefix {
                Some(prefix) => shoal::ListOptions::prefix(prefix),
                None => shoal::ListOptions::range(start.unwrap_or_default(), end.map(String::into_bytes)),
            };
            let options = options.limit(page_size).values(values).consistency(consistency);
            let client = connect(&target).await?;
            let result = output::listing(&client, options, limit.unwrap_or(u64::MAX), json).await;
            client.close().await;
            result
        }
        Command::Watch {
            key,
            target,
            context,
            count,
            json,
        } => {
            let client = connect(&target).await?;
            let mut context = match context {
                Some(context) => context,
                None => client.get(&key, shoal::Consistency::Default).await?.context,
            };
            let mut changes = 0;
            while count.is_none_or(|count| changes < count) {
                if let shoal::Watched::Changed(read) = client.watch(&key, &context, WATCH_ROUND).await? {
                    output::change(&read, json)?;
                    context = read.context;
                    changes += 1;
                }
            }
            client.close().await;
            Ok(())
        }
        Command::Delete { key, write } => {
            let client = connect(&write.target).await?;
            client.delete(&key, &write.context, write.consistency).await?;
            println!("ok");
            Ok(())
        }
    }
}

/// How long `shoal watch` waits in one watch before it re-arms.
const WATCH_ROUND: std::time::Duration = std::time::Duration::from_secs(60);

/// A value's bytes from a file, or from standard input for `-`.
fn read_value(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).context("reading standard input")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

impl S3Command {
    fn target(&self) -> &Target {
        match self {
            S3Command::Key(S3KeyCommand::Create { target, .. })
            | S3Command::Key(S3KeyCommand::List { target })
            | S3Command::Key(S3KeyCommand::Delete { target, .. })
            | S3Command::Bucket(S3BucketCommand::Create { target, .. })
            | S3Command::Bucket(S3BucketCommand::List { target })
            | S3Command::Bucket(S3BucketCommand::Delete { target, .. })
            | S3Command::Allow { target, .. } => target,
        }
    }
}

async fn s3(command: S3Command) -> Result<()> {
    let client = connect(command.target()).await?;
    let result = s3_on(&client.admin(), &command).await;
    client.close().await;
    result
}

async fn s3_on(admin: &shoal::Admin, command: &S3Command) -> Result<()> {
    match command {
        S3Command::Key(S3KeyCommand::Create {
            name, create_bucket, ..
        }) => {
            let (id, secret) = admin.s3_create_key(name, *create_bucket).await?;
            eprintln!("access key for {name}; the secret is shown only now:");
            println!("access key id:     {id}\nsecret access key: {secret}");
        }
        S3Command::Key(S3KeyCommand::List { .. }) => {
            for (id, key) in admin.s3_keys().await? {
                println!("{id}  {}", key.name);
            }
        }
        S3Command::Key(S3KeyCommand::Delete { id, .. }) => {
            if !admin.s3_delete_key(id).await? {
                anyhow::bail!("no access key {id}");
            }
            println!("deleted access key {id}");
        }
        S3Command::Bucket(S3BucketCommand::Create { name, .. }) => {
            admin.s3_create_bucket(name).await?;
            println!("created bucket {name}");
        }
        S3Command::Bucket(S3BucketCommand::List { .. }) => {
            for (name, bucket) in admin.s3_buckets().await? {
                let rights: Vec<String> = bucket
                    .rights
                    .iter()
                    .map(|(key, r)| format!("{key}:{}", rights_names(*r).join("+")))
                    .collect();
                println!("{name}  {}", rights.join(" "));
            }
        }
        S3Command::Bucket(S3BucketCommand::Delete { name, .. }) => {
            if !admin.s3_delete_bucket(name).await? {
                anyhow::bail!("no bucket {name}");
            }
            println!("deleted bucket {name}");
        }
        S3Command::Allow {
            key,
            bucket,
            read,
            write,
            owner,
            ..
        } => {
            let rights = shoal::net::s3::Rights {
                read: *read,
                write: *write,
                owner: *owner,
            };
            if rights_names(rights).is_empty() {
                anyhow::bail!("give at least one of --read, --write, --owner");
            }
            admin.s3_allow(key, bucket, rights).await?;
            println!("{key} may now {} on {bucket}", rights_names(rights).join(" and "));
        }
    }
    Ok(())
}

fn rights_names(rights: shoal::net::s3::Rights) -> Vec<&'static str> {
    [
        (rights.read, "read"),
        (rights.write, "write"),
        (rights.owner, "owner"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| name)
    .collect()
}

async fn token(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create { name, role, target } => {
            if role == Role::Node {
                anyhow::bail!("a token cannot have the node role");
            }
            let client = connect(&target).await?;
            let (id, token) = client.admin().create_token(&name, role).await?;
            client.close().await;
            eprintln!("token {id} for {name} ({role}); shown only now:");
            println!("{token}");
        }
        TokenCommand::List { target } => {
            let client = connect(&target).await?;
            let tokens = client.admin().tokens().await?;
            client.close().await;
            for (id, record) in tokens {
                let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(record.created);
                let when = humantime_serde::re::humantime::format_rfc3339_seconds(when);
                println!("{id}  {:<9}  {}  created {when}", record.role, record.name);
            }
        }
        TokenCommand::Revoke { id, target } => {
            let client = connect(&target).await?;
            let existed = client.admin().revoke_token(&id).await?;
            client.close().await;
            if !existed {
                anyhow::bail!("no token with id {id}");
            }
            println!("revoked token {id}; every node refuses it within seconds");
        }
    }
    Ok(())
}

async fn connect(target: &Target) -> Result<Client> {
    let credentials = Credentials::from_cluster_dir(&target.cluster_dir)?;
    Ok(Client::connect(&[target.node], credentials).await?)
}

async fn start_node(args: StartArgs) -> Result<()> {
    let settings = Settings::load(args.config.as_deref(), std::env::vars(), &args.overrides())?;
    if args.print_config {
        print!("{}", settings.to_toml());
        return Ok(());
    }
    settings.require_paths()?;
    init_logging_as(settings.process.log_format);
    let options = settings.node_options();
    let node = shoal::node::start(options).await?;
    if let Some(addr) = settings.process.metrics {
        shoal::node::metrics::serve(addr, node.id())?;
        tracing::info!(%addr, "metrics served (Prometheus text format)");
    }
    println!("node {} listening on {}", node.id(), node.addr());
    if let Some(http) = node.http_addr() {
        let scheme = if settings.process.http_plain {
            "http"
        } else {
            "https"
        };
        println!("HTTP API at {scheme}://{http}/");
    }
    if let Some(s3) = node.s3_addr() {
        let scheme = if settings.process.s3_plain {
            "http"
        } else {
            "https"
        };
        println!(
            "S3 gateway at {scheme}://{s3}/ (region {})",
            settings.process.s3_region
        );
    }
    let stopper = node.stopper();
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stopper.send(true);
    });
    node.wait().await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs warnings only (the demo prints its own story).
pub(crate) fn init_logging_quiet() {
    init_logging_at("warn,s3s=off");
}

/// Logs at info (the storage engine's own logs at warn) unless
/// `RUST_LOG` says otherwise, in `format`.
fn init_logging_as(format: LogFormat) {
    init_logging_with("info,fjall=warn,lsm_tree=warn,s3s=off", format);
}

fn init_logging_at(default: &str) {
    init_logging_with(default, LogFormat::Human);
}

fn init_logging_with(default: &str, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}
