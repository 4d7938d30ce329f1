//! `shoal bench`: YCSB-style workloads against a cluster through the client
//! library, with HDR latency histograms per operation.
//!
//! | workload | mix                                             | keys      |
//! |----------|-------------------------------------------------|-----------|
//! | load     | insert every record once                        | in order  |
//! | a        | 50% read, 50% update                            | chosen    |
//! | b        | 95% read, 5% update                             | chosen    |
//! | c        | 100% read                                       | chosen    |
//! | d        | 95% read, 5% insert; reads favour new records   | latest    |
//! | f        | 50% read, 50% read-modify-write                 | chosen    |
//!
//! An update writes with the newest context this benchmark has seen for the
//! key (from its last read or write), as an application replacing a value
//! would; a read-modify-write reads the key and writes with the context it
//! read.

pub mod keys;

use crate::client::{Client, ClientError};
use crate::proto::{Consistency, Context};
use hdrhistogram::Histogram;
use keys::{Distribution, KeyChooser, record_key};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A YCSB-style workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Workload {
    /// Insert every record once.
    Load,
    /// 50% read, 50% update.
    A,
    /// 95% read, 5% update.
    B,
    /// Read only.
    C,
    /// 95% read (of recent records), 5% insert.
    D,
    /// 50% read, 50% read-modify-write.
    F,
    /// Listings only: a page of 1,000 keys from a random record on (at
    /// the read consistency).
    List,
}

/// One kind of operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// A get.
    Read,
    /// A put of an existing record.
    Update,
    /// A put of a new record.
    Insert,
    /// A get, then a put with the context read.
    ReadModifyWrite,
    /// A listing page of 1,000 keys.
    List,
}

impl OpKind {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Insert => "insert",
            OpKind::ReadModifyWrite => "read_modify_write",
            OpKind::List => "list",
        }
    }
}

impl Workload {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Load => "load",
            Workload::A => "a",
            Workload::B => "b",
            Workload::C => "c",
            Workload::D => "d",
            Workload::F => "f",
            Workload::List => "list",
        }
    }

    /// Picks the next operation by the workload's mix.
    fn pick(self, rng: &mut StdRng) -> OpKind {
        let roll = rng.random_range(0..100u32);
        match self {
            Workload::Load => OpKind::Insert,
            Workload::A if roll < 50 => OpKind::Read,
            Workload::A => OpKind::Update,
            Workload::B if roll < 95 => OpKind::Read,
            Workload::B => OpKind::Update,
            Workload::C => OpKind::Read,
            Workload::D if roll < 95 => OpKind::Read,
            Workload::D => OpKind::Insert,
            Workload::F if roll < 50 => OpKind::Read,
            Workload::F => OpKind::ReadModifyWrite,
            Workload::List => OpKind::List,
        }
    }
}

/// When a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many operations (the load ends after every record).
    Ops(u64),
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The workload.
    pub workload: Workload,
    /// Records loaded (and chosen among).
    pub records: u64,
    /// Bytes per value.
    pub value_size: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// When to stop (ignored by the load).
    pub stop: Stop,
    /// How keys are chosen.
    pub distribution: Distribution,
    /// Consistency of reads.
    pub read: Consistency,
    /// Which replicas a read asks (every one, or only as many as `read`
    /// needs).
    pub fanout: crate::proto::Fanout,
    /// Consistency of writes.
    pub write: Consistency,
    /// Seed of the operation mix and key choice.
    pub seed: u64,
    /// Operations per second to aim at, all workers together (None: as
    /// fast as the cluster answers). Each worker starts its operations on a
    /// fixed schedule; latency is measured from the actual start.
    pub rate: Option<f64>,
}

/// Counters a progress display can read while a run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    /// Operations finished (successful or not).
    pub done: AtomicU64,
    /// Operations failed.
    pub failed: AtomicU64,
}

/// Latency figures of one operation kind, in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Successful operations.
    pub count: u64,
    /// Successful operations per second.
    pub throughput: f64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest.
    pub max_us: u64,
}

/// A run's result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The workload.
    pub workload: Workload,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Successful operations per second, all kinds together.
    pub throughput: f64,
    /// All successful operations.
    pub all: Latency,
    /// Per operation kind (`read`, `update`, `insert`, `read_modify_write`).
    pub operations: BTreeMap<&'static str, Latency>,
    /// Failed operations by error kind.
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    /// Failed operations in all.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The newest context seen per record, sharded to keep workers apart.
struct Contexts {
    shards: Vec<Mutex<HashMap<u64, Context>>>,
}

impl Contexts {
    fn new() -> Contexts {
        Contexts {
            shards: (0..64).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, record: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Context>> {
        let shard = &self.shards[(record % self.shards.len() as u64) as usize];
        shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, record: u64) -> Context {
        self.shard(record).get(&record).cloned().unwrap_or_default()
    }

    fn set(&self, record: u64, context: Context) {
        self.shard(record).insert(record, context);
    }
}

/// State shared by the workers of one run.
struct Shared {
    spec: Spec,
    client: Arc<Client>,
    chooser: KeyChooser,
    contexts: Arc<Contexts>,
    /// Random bytes that values are sliced from.
    values: Vec<u8>,
    /// Operations handed out (for [`Stop::Ops`] and the load).
    issued: AtomicU64,
    /// The next record number to insert; records below it exist.
    next_record: Arc<AtomicU64>,
    deadline: Option<Instant>,
    progress: Arc<Progress>,
}

/// A benchmark session against one cluster: runs workloads in turn, sharing
/// what they learn (record count, contexts).
pub struct Bench {
    client: Arc<Client>,
    contexts: Arc<Contexts>,
    next_record: Arc<AtomicU64>,
}

struct WorkerResult {
    histograms: BTreeMap<OpKind, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

impl Bench {
    /// A session through `client`. `loaded` records are assumed to exist
    /// already (0 if the workloads start with a load).
    pub fn new(client: Arc<Client>, loaded: u64) -> Bench {
        Bench {
            client,
            contexts: Arc::new(Contexts::new()),
            next_record: Arc::new(AtomicU64::new(loaded)),
        }
    }

    /// Runs one workload to its end and reports.
    pub async fn run(&self, spec: Spec, progress: Arc<Progress>) -> Report {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let values = (0..spec.value_size * 2 + 1).map(|_| rng.random()).collect();
        let deadline = match (spec.workload, spec.stop) {
            (Workload::Load, _) | (_, Stop::Ops(_)) => None,
            (_, Stop::After(duration)) => Some(Instant::now() + duration),
        };
        if spec.workload == Workload::Load {
            self.next_record.store(0, Ordering::SeqCst);
        }
        let shared = Arc::new(Shared {
            chooser: KeyChooser::new(spec.distribution, spec.records),
            spec,
            client: self.client.clone(),
            contexts: self.contexts.clone(),
            values,
            issued: AtomicU64::new(0),
            next_record: self.next_record.clone(),
            deadline,
            progress,
        });
        let started = Instant::now();
        let workers: Vec<_> = (0..shared.spec.concurrency.max(1))
            .map(|i| tokio::spawn(worker(shared.clone(), i)))
            .collect();
        let mut histograms: BTreeMap<OpKind, Histogram<u64>> = BTreeMap::new();
        let mut errors = BTreeMap::new();
        for worker in workers {
            let result = match worker.await {
                Ok(result) => result,
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            };
            for (kind, histogram) in result.histograms {
                let merged = histograms.entry(kind).or_insert_with(new_histogram);
                merged.add(&histogram).expect("histograms share their bounds");
            }
            for (kind, count) in result.errors {
                *errors.entry(kind).or_default() += count;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let mut all = new_histogram();
        for histogram in histograms.values() {
            all.add(histogram).expect("histograms share their bounds");
        }
        let all = latency(&all, seconds);
        Report {
            workload: shared.spec.workload,
            seconds,
            throughput: all.throughput,
            all,
            operations: histograms
                .iter()
                .map(|(kind, histogram)| (kind.name(), latency(histogram, seconds)))
                .collect(),
            errors,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes at 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn latency(histogram: &Histogram<u64>, seconds: f64) -> Latency {
    Latency {
        count: histogram.len(),
        throughput: histogram.len() as f64 / seconds.max(1e-9),
        mean_us: histogram.mean(),
        p50_us: histogram.value_at_quantile(0.5),
        p90_us: histogram.value_at_quantile(0.9),
        p99_us: histogram.value_at_quantile(0.99),
        p999_us: histogram.value_at_quantile(0.999),
        max_us: histogram.max(),
    }
}

impl Shared {
    /// Whether another operation may start.
    fn next_op(&self) -> bool {
        if let Some(deadline) = self.deadline {
            return Instant::now() < deadline;
        }
        let limit = match (self.spec.workload, self.spec.stop) {
            (Workload::Load, _) => self.spec.records,
            (_, Stop::Ops(ops)) => ops,
            (_, Stop::After(_)) => unreachable!("a timed run has a deadline"),
        };
        self.issued.fetch_add(1, Ordering::Relaxed) < limit
    }

    fn value(&self, rng: &mut StdRng) -> &[u8] {
        let start = rng.random_range(0..=self.spec.value_size);
        &self.values[start..start + self.spec.value_size]
    }

    /// A record that exists, by the workload's key choice.
    fn existing(&self, rng: &mut StdRng) -> u64 {
        let inserted = self.next_record.load(Ordering::Relaxed).max(1);
        if self.spec.workload == Workload::D {
            return self.chooser.next_latest(inserted - 1, rng);
        }
        self.chooser.next(rng) % inserted
    }

    async fn read(&self, record: u64) -> Result<Context, ClientError> {
        let options = crate::client::ReadOptions::new(self.spec.read).fanout(self.spec.fanout);
        let read = self.client.get_with(record_key(record), options).await?;
        self.contexts.set(record, read.context.clone());
        Ok(read.context)
    }

    async fn write(&self, record: u64, context: &Context, rng: &mut StdRng) -> Result<(), ClientError> {
        let value = self.value(rng);
        let written = self
            .client
            .put(record_key(record), value, context, self.spec.write)
            .await?;
        self.contexts.set(record, written);
        Ok(())
    }

    async fn op(&self, kind: OpKind, rng: &mut StdRng) -> Result<(), ClientError> {
        match kind {
            OpKind::Read => self.read(self.existing(rng)).await.map(drop),
            OpKind::Update => {
                let record = self.existing(rng);
                self.write(record, &self.contexts.get(record), rng).await
            }
            OpKind::Insert => {
                let record = self.next_record.fetch_add(1, Ordering::Relaxed);
                self.write(record, &Context::empty(), rng).await
            }
            OpKind::ReadModifyWrite => {
                let record = self.existing(rng);
                let context = self.read(record).await?;
                self.write(record, &context, rng).await
            }
            OpKind::List => {
                let start = record_key(self.existing(rng));
                let options = crate::client::ListOptions::range(start, None)
                    .limit(crate::proto::message::MAX_LIST_LIMIT)
                    .consistency(self.spec.read);
                self.client.list(&options).await.map(drop)
            }
        }
    }
}

async fn worker(shared: Arc<Shared>, index: usize) -> WorkerResult {
    let mut rng = StdRng::seed_from_u64(shared.spec.seed.wrapping_add(index as u64 + 1));
    let mut result = WorkerResult {
        histograms: BTreeMap::new(),
        errors: BTreeMap::new(),
    };
    let interval = shared
        .spec
        .rate
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64(shared.spec.concurrency.max(1) as f64 / rate));
    // Workers take turns within each interval rather than firing together.
    let mut next_start = tokio::time::Instant::now()
        + interval
            .unwrap_or_default()
            .mul_f64(index as f64 / shared.spec.concurrency.max(1) as f64);
    while shared.next_op() {
        if let Some(interval) = interval {
            tokio::time::sleep_until(next_start).await;
            next_start += interval;
        }
        let kind = shared.spec.workload.pick(&mut rng);
        let started = Instant::now();
        let outcome = shared.op(kind, &mut rng).await;
        let micros = (started.elapsed().as_micros() as u64).max(1);
        match outcome {
            Ok(()) => {
                let histogram = result.histograms.entry(kind).or_insert_with(new_histogram);
                histogram.saturating_record(micros);
            }
            Err(error) => {
                *result.errors.entry(error_kind(&error)).or_default() += 1;
                shared.progress.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        shared.progress.done.fetch_add(1, Ordering::Relaxed);
    }
    result
}

/// A short name for an error's kind: its variant name.
pub fn error_kind(error: &ClientError) -> String {
    let debug = match error {
        ClientError::Request(request) => format!("{request:?}"),
        other => format!("{other:?}"),
    };
    debug.chars().take_while(|c| c.is_ascii_alphanumeric()).collect()
}
