//! What a run does: sizes, durations, and which faults at which rates.
//!
//! Everything random about the options is drawn from the seed by its own
//! RNG stream, whether or not `--faults` is given: so `--seed S --faults F`
//! with F the classes a swarm run of seed S enabled reproduces that run.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// A class of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Messages between nodes are lost.
    Loss,
    /// Messages are delivered twice.
    Duplicate,
    /// Messages overtake each other.
    Reorder,
    /// Some messages take seconds.
    Delay,
    /// The nodes split into two groups that cannot talk.
    Partition,
    /// One node cannot send to another (but hears it).
    OneWay,
    /// A node loses power and restarts; unsynced writes are lost.
    Crash,
    /// A node restarts with an empty disk.
    Wipe,
    /// Nodes' clocks disagree by up to hours.
    Skew,
    /// A new node joins during the run (streaming its ranges first).
    Join,
    /// A node leaves during the run (handing its ranges off first).
    Leave,
    /// A node's disk is full for a while: every write to its store fails
    /// (reads still work) until it has room again.
    DiskFull,
}

/// Every fault class.
pub const ALL_FAULTS: [Fault; 12] = [
    Fault::Loss,
    Fault::Duplicate,
    Fault::Reorder,
    Fault::Delay,
    Fault::Partition,
    Fault::OneWay,
    Fault::Crash,
    Fault::Wipe,
    Fault::Skew,
    Fault::Join,
    Fault::Leave,
    Fault::DiskFull,
];

impl Fault {
    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Loss => "loss",
            Fault::Duplicate => "dup",
            Fault::Reorder => "reorder",
            Fault::Delay => "delay",
            Fault::Partition => "partition",
            Fault::OneWay => "oneway",
            Fault::Crash => "crash",
            Fault::Wipe => "wipe",
            Fault::Skew => "skew",
            Fault::Join => "join",
            Fault::Leave => "leave",
            Fault::DiskFull => "diskfull",
        }
    }
}

/// A set of fault classes, printed and parsed as `loss,partition,...`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultSet(pub BTreeSet<Fault>);

impl FaultSet {
    /// Whether `fault` is on.
    pub fn has(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|f| f.name()).collect();
        f.write_str(&names.join(","))
    }
}

impl std::str::FromStr for FaultSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => return Ok(FaultSet(ALL_FAULTS.into_iter().collect())),
            "none" | "" => return Ok(FaultSet::default()),
            _ => {}
        }
        s.split(',')
            .map(|name| {
                ALL_FAULTS
                    .into_iter()
                    .find(|f| f.name() == name.trim())
                    .ok_or_else(|| {
                        let known: Vec<&str> = ALL_FAULTS.iter().map(|f| f.name()).collect();
                        format!("unknown fault `{name}`; known: {}, all, none", known.join(", "))
                    })
            })
            .collect::<Result<BTreeSet<Fault>, String>>()
            .map(FaultSet)
    }
}

/// How often each fault strikes, drawn from the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Rates {
    /// Chance a message is lost.
    pub loss: f64,
    /// Chance a message is delivered twice.
    pub duplicate: f64,
    /// Chance a message is held back up to 20 ms.
    pub reorder: f64,
    /// Chance a message is held back 0.5 to 3 s.
    pub delay: f64,
    /// Mean time between partitions (two-way or one-way).
    pub partition_every: Duration,
    /// Longest partition.
    pub partition_max: Duration,
    /// Mean time between crashes (or wipes).
    pub crash_every: Duration,
    /// Longest a crashed node stays down.
    pub downtime_max: Duration,
    /// Largest clock offset of a node, either way.
    pub skew_max: Duration,
}

/// Everything that defines a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The seed: same seed and options, same run.
    pub seed: u64,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Client operations in the fault phase.
    pub ops: usize,
    /// Simulated seconds of the fault phase.
    pub duration: Duration,
    /// Fault classes on.
    pub faults: FaultSet,
    /// Whether `faults` was drawn from the seed rather than given.
    pub swarm: bool,
    /// Their rates.
    pub rates: Rates,
    /// Every request uses this R,W (the "strict" setting checkers trust).
    pub forced_rw: Option<(u8, u8)>,
    /// Bug injection: never bump dot epochs.
    pub skip_epoch_bump: bool,
    /// Bug injection: replicas answer watches only when they start.
    pub deaf_watches: bool,
    /// Bug injection: expired values are served.
    pub ignore_expiry: bool,
    /// Whether reads repair stale replicas (off: convergence must come
    /// from anti-entropy alone).
    pub read_repair: bool,
    /// Concurrent clients.
    pub clients: usize,
    /// Distinct keys (a small key space makes conflicts likely).
    pub keys: usize,
}

/// Settings shared by runs of many seeds.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Nodes.
    pub nodes: usize,
    /// Client operations.
    pub ops: usize,
    /// Fault phase length.
    pub duration: Duration,
    /// Given fault classes, or `None` for swarm.
    pub faults: Option<FaultSet>,
    /// `--r`, `--w`.
    pub forced_rw: Option<(u8, u8)>,
    /// `--debug-skip-epoch-bump`.
    pub skip_epoch_bump: bool,
    /// `--debug-deaf-watches`.
    pub deaf_watches: bool,
    /// `--debug-ignore-expiry`.
    pub ignore_expiry: bool,
    /// `--no-read-repair` clears it.
    pub read_repair: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            nodes: 5,
            ops: 1000,
            duration: Duration::from_secs(300),
            faults: None,
            forced_rw: None,
            skip_epoch_bump: false,
            deaf_watches: false,
            ignore_expiry: false,
            read_repair: true,
        }
    }
}

impl Options {
    /// The options of `plan` for `seed`.
    pub fn new(seed: u64, plan: &Plan) -> Options {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0971_0A5E_ED0F_F5E7);
        let drawn: BTreeSet<Fault> = ALL_FAULTS.into_iter().filter(|_| rng.random_bool(0.5)).collect();
        let secs = |rng: &mut StdRng, lo: u64, hi: u64| Duration::from_secs(rng.random_range(lo..=hi));
        let rates = Rates {
            loss: rng.random_range(0.001..0.10),
            duplicate: rng.random_range(0.001..0.05),
            reorder: rng.random_range(0.01..0.30),
            delay: rng.random_range(0.001..0.02),
            partition_every: secs(&mut rng, 10, 60),
            partition_max: secs(&mut rng, 2, 30),
            crash_every: secs(&mut rng, 15, 90),
            downtime_max: secs(&mut rng, 1, 30),
            skew_max: secs(&mut rng, 1, 3 * 3600),
        };
        Options {
            seed,
            nodes: plan.nodes,
            ops: plan.ops,
            duration: plan.duration,
            swarm: plan.faults.is_none(),
            faults: plan.faults.clone().unwrap_or(FaultSet(drawn)),
            rates,
            forced_rw: plan.forced_rw,
            skip_epoch_bump: plan.skip_epoch_bump,
            deaf_watches: plan.deaf_watches,
            ignore_expiry: plan.ignore_expiry,
            read_repair: plan.read_repair,
            clients: 4,
            keys: 8,
        }
    }

    /// The command that reproduces this run exactly.
    pub fn command(&self) -> String {
        let mut command = format!(
            "cargo run -p shoal-sim --release -- --seed {} --nodes {} --ops {} --duration {} --faults {}",
            self.seed,
            self.nodes,
            self.ops,
            self.duration.as_secs(),
            self.faults
        );
        if let Some((r, w)) = self.forced_rw {
            command.push_str(&format!(" --r {r} --w {w}"));
        }
        if self.skip_epoch_bump {
            command.push_str(" --debug-skip-epoch-bump");
        }
        if self.deaf_watches {
            command.push_str(" --debug-deaf-watches");
        }
        if self.ignore_expiry {
            command.push_str(" --debug-ignore-expiry");
        }
        if !self.read_repair {
            command.push_str(" --no-read-repair");
        }
        command
    }
}
