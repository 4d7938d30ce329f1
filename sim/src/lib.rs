//! shoal's deterministic simulator: whole clusters of the production core
//! on one thread, one virtual clock and one seeded RNG, with faults and
//! checkers. Same seed and options, same run (the trace hash proves it).

pub mod checker;
pub mod disk;
pub mod history;
pub mod options;
pub mod world;

use checker::{CHECKERS, Violation};
use history::{Kind, Outcome, Phase};
use options::{Fault, Options};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use world::{FaultCounts, RepairCounts, World};

/// The outcome of one run.
pub struct Report {
    /// What was run.
    pub options: Options,
    /// Broken promises, by checker.
    pub violations: Vec<Violation>,
    /// Hash of every event, in order.
    pub trace_hash: u64,
    /// Events processed.
    pub events: u64,
    /// Simulated time.
    pub simulated: Duration,
    /// Wall time.
    pub wall: Duration,
    /// Operations by kind and outcome.
    pub ops: OpCounts,
    /// Faults injected.
    pub faults: FaultCounts,
    /// Repairs made.
    pub repairs: RepairCounts,
}

/// Operations by outcome.
#[derive(Clone, Debug, Default)]
pub struct OpCounts {
    /// Fault-phase operations.
    pub total: usize,
    /// Succeeded.
    pub ok: usize,
    /// Refused by the cluster.
    pub failed: usize,
    /// Unanswered.
    pub timed_out: usize,
    /// Heal-phase reads that succeeded, of all.
    pub heal_ok: (usize, usize),
    /// Gets, puts, deletes, listings and watches.
    pub by_kind: [usize; 5],
    /// Watches that reported a change (the rest reported none, failed or
    /// were not answered).
    pub watches_changed: usize,
}

/// Runs one seed and checks it.
pub fn run(options: Options) -> Report {
    let started = Instant::now();
    let result = World::new(options.clone()).run();
    let violations = CHECKERS.iter().flat_map(|(_, check)| check(&result)).collect();
    let mut ops = OpCounts::default();
    for op in &result.history.ops {
        let ok = matches!(
            op.outcome,
            Outcome::Read { .. } | Outcome::Written { .. } | Outcome::Listed { .. } | Outcome::Unchanged
        );
        if op.phase == Phase::Heal {
            ops.heal_ok.1 += 1;
            ops.heal_ok.0 += usize::from(ok);
            continue;
        }
        ops.total += 1;
        ops.by_kind[match op.kind {
            Kind::Get => 0,
            Kind::Put { .. } => 1,
            Kind::Delete => 2,
            Kind::List => 3,
            Kind::Watch { .. } => 4,
        }] += 1;
        if matches!(
            (&op.kind, &op.outcome),
            (Kind::Watch { .. }, Outcome::Read { .. })
        ) {
            ops.watches_changed += 1;
        }
        match op.outcome {
            Outcome::Failed { .. } => ops.failed += 1,
            Outcome::TimedOut | Outcome::Pending => ops.timed_out += 1,
            _ => ops.ok += 1,
        }
    }
    Report {
        options,
        violations,
        trace_hash: result.trace_hash,
        events: result.events,
        simulated: result.simulated,
        wall: started.elapsed(),
        ops,
        faults: result.faults,
        repairs: result.repairs,
    }
}

impl Report {
    /// Whether every checker passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The one-screen summary.
    pub fn summary(&self) -> String {
        let o = &self.options;
        let mut out = String::new();
        let mode = if o.swarm { " (swarm)" } else { "" };
        let _ = writeln!(
            out,
            "seed {}  nodes {}  ops {}  duration {}s  faults {}{mode}",
            o.seed,
            o.nodes,
            o.ops,
            o.duration.as_secs(),
            o.faults
        );
        if let Some((r, w)) = o.forced_rw {
            let _ = writeln!(out, "forced consistency: R={r} W={w}");
        }
        if o.skip_epoch_bump {
            let _ = writeln!(out, "BUG INJECTED: dot epochs are not bumped");
        }
        if !o.read_repair {
            let _ = writeln!(out, "read repair off: convergence by anti-entropy alone");
        } else if o.seed % 2 == 1 {
            let _ = writeln!(
                out,
                "read repair blocking: reads answer once their repairs are acknowledged"
            );
        }
        let p = &self.ops;
        let _ = writeln!(
            out,
            "ops: {} done ({} get, {} put, {} delete, {} list, {} watch of which {} saw a change): {} ok, {} refused, {} unanswered; heal reads {}/{} ok",
            p.total,
            p.by_kind[0],
            p.by_kind[1],
            p.by_kind[2],
            p.by_kind[3],
            p.by_kind[4],
            p.watches_changed,
            p.ok,
            p.failed,
            p.timed_out,
            p.heal_ok.0,
            p.heal_ok.1
        );
        let f = &self.faults;
        let _ = writeln!(
            out,
            "faults: {} lost, {} blocked, {} duplicated, {} reordered, {} delayed; {} partitions, {} crashes, {} wipes, {} full disks; {} joins, {} leaves",
            f.lost,
            f.blocked,
            f.duplicated,
            f.reordered,
            f.delayed,
            f.partitions,
            f.crashes,
            f.wipes,
            f.disks_full,
            f.joins,
            f.leaves
        );
        let r = &self.repairs;
        let _ = writeln!(
            out,
            "repairs: {} hints stored, {} replayed, {} re-homed, {} dropped; {} read repairs; {} keys by anti-entropy; {} keys streamed in by joins, {} handed off by leaves, {} cleaned up by old owners; {} tombstones collected; {} replica requests refused for a stale ring",
            r.hints_stored,
            r.hints_replayed,
            r.hints_rehomed,
            r.hints_dropped,
            r.read_repairs,
            r.ae_keys_repaired,
            r.keys_streamed_in,
            r.keys_handed_off,
            r.keys_cleaned_up,
            r.tombstones_removed,
            r.placement_refusals
        );
        for (name, _) in CHECKERS {
            let found = self.violations.iter().filter(|v| v.checker == name).count();
            let mark = if found == 0 {
                "ok  ".to_string()
            } else {
                format!("FAIL ({found})")
            };
            let _ = writeln!(out, "  {mark:<10} {name}");
        }
        let wall = self.wall.as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "simulated {:.0} s in {:.2} s wall ({:.0} simulated s per wall s), {} events, trace {:016x}",
            self.simulated.as_secs_f64(),
            wall,
            self.simulated.as_secs_f64() / wall,
            self.events,
            self.trace_hash
        );
        out
    }

    /// The violations, a few per checker, and the command to reproduce.
    pub fn failure_details(&self) -> String {
        let mut out = String::new();
        for (name, _) in CHECKERS {
            for v in self.violations.iter().filter(|v| v.checker == name).take(5) {
                let _ = writeln!(out, "  [{}] {}", v.checker, v.detail);
            }
        }
        let _ = writeln!(out, "reproduce: {}", self.options.command());
        out
    }
}

/// Cuts a failing run down: drops fault classes that are not needed to
/// fail, then halves operations and duration while it still fails.
pub fn shrink(options: &Options, mut log: impl FnMut(&str)) -> Options {
    let fails = |o: &Options| !run(o.clone()).passed();
    let mut best = options.clone();
    best.swarm = false;
    let faults: Vec<Fault> = best.faults.0.iter().copied().collect();
    for fault in faults {
        let mut candidate = best.clone();
        candidate.faults.0.remove(&fault);
        if fails(&candidate) {
            log(&format!("  still fails without {}", fault.name()));
            best = candidate;
        }
    }
    while best.ops > 10 {
        let candidate = Options {
            ops: best.ops / 2,
            ..best.clone()
        };
        if !fails(&candidate) {
            break;
        }
        log(&format!("  still fails with {} ops", candidate.ops));
        best = candidate;
    }
    while best.duration > Duration::from_secs(20) {
        let candidate = Options {
            duration: best.duration / 2,
            ..best.clone()
        };
        if !fails(&candidate) {
            break;
        }
        log(&format!("  still fails in {} s", candidate.duration.as_secs()));
        best = candidate;
    }
    best
}
