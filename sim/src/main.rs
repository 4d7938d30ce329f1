//! `shoal-sim`: run seeds of the deterministic simulator.

use clap::Parser;
use shoal_sim::options::{FaultSet, Options, Plan};
use std::ops::Range;
use std::time::{Duration, Instant};

/// Runs whole shoal clusters deterministically from a seed, with faults,
/// and checks the promises shoal makes. Same seed, same run.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Run this seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a range of seeds, e.g. 1..1000 (end exclusive).
    #[arg(long, value_parser = parse_range)]
    seeds: Option<Range<u64>>,
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Client operations in the fault phase.
    #[arg(long, default_value_t = 1000)]
    ops: usize,
    /// Simulated seconds of the fault phase (healing adds 30 s).
    #[arg(long, default_value_t = 300)]
    duration: u64,
    /// Fault classes: loss,dup,reorder,delay,partition,oneway,crash,wipe,skew,join,leave,diskfull, all or none.
    /// Default: each class on or off, and its rate, drawn from the seed (swarm).
    #[arg(long)]
    faults: Option<FaultSet>,
    /// Force every request's read quorum (with --w): the checkers then hold
    /// the run to R+W>N guarantees, so a weak setting shows as violations.
    #[arg(long, requires = "w")]
    r: Option<u8>,
    /// Force every request's write quorum (with --r).
    #[arg(long, requires = "r")]
    w: Option<u8>,
    /// Bug injection: never bump dot epochs (the unique-dot checker must fail).
    #[arg(long)]
    debug_skip_epoch_bump: bool,
    /// Bug injection: replicas answer watches only when they start, never
    /// on a later change (the watch checker must fail).
    #[arg(long)]
    debug_deaf_watches: bool,
    /// Bug injection: reads, listings and watches serve expired values
    /// (the expiry checker must fail).
    #[arg(long)]
    debug_ignore_expiry: bool,
    /// Turn read repair off: replicas must converge by anti-entropy alone.
    #[arg(long)]
    no_read_repair: bool,
    /// On failure, cut the run down to a smaller failing one.
    #[arg(long)]
    shrink: bool,
    /// Print only failures and the final tally (for many seeds).
    #[arg(long)]
    quiet: bool,
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or("expected START..END, e.g. 1..1000")?;
    let a: u64 = a.parse().map_err(|_| format!("bad start `{a}`"))?;
    let b: u64 = b.parse().map_err(|_| format!("bad end `{b}`"))?;
    if a >= b {
        return Err(format!("empty range {s}"));
    }
    Ok(a..b)
}

fn main() {
    let cli = Cli::parse();
    let plan = Plan {
        nodes: cli.nodes,
        ops: cli.ops,
        duration: Duration::from_secs(cli.duration),
        faults: cli.faults.clone(),
        forced_rw: cli.r.zip(cli.w),
        skip_epoch_bump: cli.debug_skip_epoch_bump,
        deaf_watches: cli.debug_deaf_watches,
        ignore_expiry: cli.debug_ignore_expiry,
        read_repair: !cli.no_read_repair,
    };
    if plan.nodes < 3 || plan.ops == 0 || plan.duration.is_zero() {
        eprintln!("error: need --nodes >= 3, --ops >= 1 and --duration >= 1");
        std::process::exit(2);
    }
    let seeds = match (cli.seed, cli.seeds.clone()) {
        (Some(seed), _) => seed..seed + 1,
        (None, Some(range)) => range,
        (None, None) => 42..43,
    };
    let started = Instant::now();
    let (mut passed, mut failed, mut simulated) = (0u64, Vec::new(), 0.0);
    for seed in seeds.clone() {
        let options = Options::new(seed, &plan);
        let report = shoal_sim::run(options.clone());
        simulated += report.simulated.as_secs_f64();
        if report.passed() {
            passed += 1;
            if !cli.quiet {
                print!("{}", report.summary());
            }
            continue;
        }
        print!("{}", report.summary());
        print!("{}", report.failure_details());
        if cli.shrink {
            println!("shrinking...");
            let smaller = shoal_sim::shrink(&options, |line| println!("{line}"));
            println!("smallest failing run: {}", smaller.command());
        }
        failed.push(seed);
    }
    let wall = started.elapsed().as_secs_f64();
    if seeds.end - seeds.start > 1 || cli.quiet {
        println!(
            "{} seeds: {} passed, {} failed{}; {:.0} simulated s in {:.1} s wall ({:.0}x)",
            seeds.end - seeds.start,
            passed,
            failed.len(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(" (seeds {failed:?})")
            },
            simulated,
            wall,
            simulated / wall.max(1e-9)
        );
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
