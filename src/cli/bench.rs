//! `shoal bench`: YCSB-style workloads against a running cluster or one it
//! starts itself, with throughput and latency percentiles.

use super::local::LocalCluster;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use shoal::bench::keys::Distribution;
use shoal::bench::{Bench, Progress, Report, Spec, Stop, Workload};
use shoal::node::Durability;
use shoal::proto::{Config, Fanout};
use shoal::{Client, Consistency, Credentials};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Benchmark a cluster with YCSB-style workloads.
///
/// Workloads: load (insert every record), a (50% read / 50% update),
/// b (95/5), c (read only), d (95% read of recent records, 5% insert),
/// f (50% read / 50% read-modify-write with the context read). They run in
/// the order given against the same records.
///
/// Against a running cluster: `shoal bench --node ADDR --cluster-dir DIR`.
/// On a cluster of its own: `shoal bench --local 3`.
#[derive(Args)]
pub struct BenchArgs {
    /// Start this many nodes on loopback inside this process and benchmark
    /// them (instead of --node).
    #[arg(long, value_name = "NODES", value_parser = clap::value_parser!(u16).range(1..=16))]
    local: Option<u16>,
    /// A node of the cluster to benchmark (the client then talks to every
    /// replica directly).
    #[arg(long, env = "SHOAL_NODE", default_value = "127.0.0.1:7101")]
    node: SocketAddr,
    /// The cluster directory (from `shoal cluster init`); not needed with --local.
    #[arg(long, env = "SHOAL_CLUSTER_DIR")]
    cluster_dir: Option<PathBuf>,
    /// Workloads to run in turn, comma-separated: load, a, b, c, d, f, and
    /// list (pages of 1,000 keys from random records on).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "load,a")]
    workload: Vec<Workload>,
    /// Records to load, and to choose keys among.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    records: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// Requests in flight at once during load (default: --concurrency):
    /// load fast, then measure latency with few in flight.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    load_concurrency: Option<u64>,
    /// Seconds each workload other than load runs.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    duration: u64,
    /// Run each workload other than load for this many operations instead
    /// of --duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    ops: Option<u64>,
    /// How keys are chosen.
    #[arg(long, value_enum, default_value_t = Distribution::Zipfian)]
    distribution: Distribution,
    /// Consistency of reads and writes: one, two, quorum, all, or R,W.
    #[arg(long, default_value = "quorum")]
    consistency: Consistency,
    /// Consistency of reads only (overrides --consistency).
    #[arg(long)]
    read_consistency: Option<Consistency>,
    /// Consistency of writes only (overrides --consistency).
    #[arg(long)]
    write_consistency: Option<Consistency>,
    /// Which replicas a read asks: `all` (every replica that is up; the
    /// first R answers are returned and the others repair stale copies) or
    /// `needed` (only R, the coordinator's own copy first; no read repair).
    #[arg(long, value_enum, default_value_t = ReadFanout::All)]
    fanout: ReadFanout,
    /// Aim at this many operations per second in all (default: as many as
    /// the cluster serves). For latency at a given load.
    #[arg(long)]
    rate: Option<f64>,
    /// Durability of the --local nodes.
    #[arg(long, value_enum, default_value_t = Durability::Buffer)]
    durability: Durability,
    /// Keep the --local nodes' data in memory only (memory-only nodes,
    /// `storage = "memory"`), each holding at most this many MiB.
    #[arg(long, value_name = "MIB")]
    memory: Option<u64>,
    /// Seed of the operation mix and key choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: BenchArgs) -> Result<()> {
    super::init_logging_quiet();
    let max_value = Config::default().max_value_bytes;
    if args.value_size > max_value {
        bail!(
            "--value-size {} exceeds the node's limit of {max_value} bytes",
            args.value_size
        );
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate {rate} must be a positive number of operations per second");
    }
    let (local, client) = match args.local {
        Some(nodes) => {
            let nodes = usize::from(nodes);
            let mut local = LocalCluster::empty(args.durability, Config::default())?;
            if let Some(mib) = args.memory {
                local.storage = shoal::node::Storage::Memory { max_bytes: mib << 20 };
            }
            local
                .start_nodes(nodes, 0)
                .await
                .context("starting the local cluster")?;
            let client = local.ready_client(Duration::from_secs(60)).await?;
            (Some(local), client)
        }
        None => {
            let dir = args
                .cluster_dir
                .as_ref()
                .context("give --cluster-dir (or SHOAL_CLUSTER_DIR), or --local N to start a cluster")?;
            let credentials = Credentials::from_cluster_dir(dir)?;
            (None, Client::connect(&[args.node], credentials).await?)
        }
    };
    let client = Arc::new(client);
    let replication = client
        .admin()
        .status(client_target(&local, args.node))
        .await?
        .replication;
    if !args.json {
        let target = match args.local {
            Some(nodes) if args.memory.is_some() => format!("{nodes} local memory-only nodes"),
            Some(nodes) => format!("{nodes} local nodes ({:?} durability)", args.durability).to_lowercase(),
            None => format!("the cluster at {}", args.node),
        };
        println!(
            "shoal bench: {target}, N={replication}, {} records of {} B, {} in flight, reads at {}, writes at {}",
            args.records,
            args.value_size,
            args.concurrency,
            args.read(),
            args.write()
        );
    }
    let loaded = if args.workload.first() == Some(&Workload::Load) {
        0
    } else {
        args.records
    };
    let bench = Bench::new(client.clone(), loaded);
    let mut reports = Vec::new();
    for &workload in &args.workload {
        let spec = args.spec(workload);
        let progress = Arc::new(Progress::default());
        let bar = progress_bar(&spec, progress.clone(), args.json);
        let report = bench.run(spec, progress).await;
        bar.abort();
        if !args.json {
            print_report(&report);
        }
        reports.push(report);
    }
    if args.json {
        let out = serde_json::json!({
            "target": args.local.map_or(args.node.to_string(), |n| format!("local:{n}")),
            "replication": replication,
            "records": args.records,
            "value_size": args.value_size,
            "concurrency": args.concurrency,
            "distribution": args.distribution,
            "read_consistency": args.read().to_string(),
            "fanout": args.fanout,
            "write_consistency": args.write().to_string(),
            "rate": args.rate,
            "reports": reports,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    client.close().await;
    if let Some(local) = local {
        local.shutdown().await?;
    }
    Ok(())
}

fn client_target(local: &Option<LocalCluster>, node: SocketAddr) -> SocketAddr {
    local.as_ref().map_or(node, |l| l.addrs[0])
}

impl BenchArgs {
    fn read(&self) -> Consistency {
        self.read_consistency.unwrap_or(self.consistency)
    }

    fn write(&self) -> Consistency {
        self.write_consistency.unwrap_or(self.consistency)
    }

    fn spec(&self, workload: Workload) -> Spec {
        Spec {
            workload,
            records: self.records,
            value_size: self.value_size,
            concurrency: match workload {
                Workload::Load => self.load_concurrency.unwrap_or(self.concurrency) as usize,
                _ => self.concurrency as usize,
            },
            stop: match self.ops {
                Some(ops) => Stop::Ops(ops),
                None => Stop::After(Duration::from_secs(self.duration)),
            },
            distribution: self.distribution,
            read: self.read(),
            fanout: match self.fanout {
                ReadFanout::All => Fanout::All,
                ReadFanout::Needed => Fanout::Needed,
            },
            write: self.write(),
            seed: self.seed,
            rate: self.rate,
        }
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal or with
/// --json), updated by a task until the returned handle is aborted.
fn progress_bar(spec: &Spec, progress: Arc<Progress>, json: bool) -> tokio::task::JoinHandle<()> {
    let (length, timed) = match (spec.workload, spec.stop) {
        (Workload::Load, _) => (spec.records, false),
        (_, Stop::Ops(ops)) => (ops, false),
        (_, Stop::After(duration)) => (duration.as_millis() as u64, true),
    };
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(length)
    };
    let template = if timed {
        "{prefix:>8} [{bar:40}] {elapsed}/{duration} {msg}"
    } else {
        "{prefix:>8} [{bar:40}] {pos}/{len} {msg}"
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(spec.workload.name());
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            let done = progress.done.load(Ordering::Relaxed);
            let failed = progress.failed.load(Ordering::Relaxed);
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
            bar.set_position(if timed {
                started.elapsed().as_millis() as u64
            } else {
                done
            });
            bar.set_message(format!("{rate:.0} ops/s, {failed} failed"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

fn print_report(report: &Report) {
    println!(
        "\nworkload {}: {:.1} s, {} ok, {:.0} ops/s, {} failed",
        report.workload.name(),
        report.seconds,
        report.all.count,
        report.throughput,
        report.failed()
    );
    println!(
        "  {:<18} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "operation", "count", "ops/s", "p50", "p90", "p99", "p99.9", "max"
    );
    let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
    let rows = report
        .operations
        .iter()
        .chain(std::iter::once((&"all", &report.all)));
    for (name, latency) in rows {
        println!(
            "  {:<18} {:>9} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>8}",
            name,
            latency.count,
            latency.throughput,
            ms(latency.p50_us),
            ms(latency.p90_us),
            ms(latency.p99_us),
            ms(latency.p999_us),
            ms(latency.max_us)
        );
    }
    println!("  (latencies in ms)");
    for (kind, count) in &report.errors {
        println!("  error {kind}: {count}");
    }
}

/// `--fanout`: which replicas a read asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum ReadFanout {
    /// Every replica that is up, with read repair.
    All,
    /// Only as many as the consistency needs.
    Needed,
}
