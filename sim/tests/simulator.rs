//! The simulator is deterministic, its checkers catch deliberately wrong
//! settings, and a fixed seed set covering every fault class passes.

use shoal_sim::options::{ALL_FAULTS, FaultSet, Options, Plan};
use std::time::Duration;

fn plan(faults: &str, seconds: u64, ops: usize) -> Plan {
    Plan {
        nodes: 5,
        ops,
        duration: Duration::from_secs(seconds),
        faults: Some(faults.parse::<FaultSet>().unwrap()),
        forced_rw: None,
        skip_epoch_bump: false,
        deaf_watches: false,
        ignore_expiry: false,
        read_repair: true,
    }
}

/// How many of `seeds` run with `plan` break the checker named `checker`.
fn caught(seeds: std::ops::RangeInclusive<u64>, plan: &Plan, checker: &str) -> usize {
    seeds
        .map(|seed| shoal_sim::run(Options::new(seed, plan)))
        .filter(|r| r.violations.iter().any(|v| v.checker == checker))
        .count()
}

/// Runs `seed` with `plan` and checks every checker passed.
fn passing_run(seed: u64, plan: &Plan) -> shoal_sim::Report {
    let report = shoal_sim::run(Options::new(seed, plan));
    assert!(
        report.passed(),
        "seed {seed}: {}{}",
        report.summary(),
        report.failure_details()
    );
    report
}

#[test]
fn the_same_seed_gives_the_same_trace_hash() {
    let plan = plan("all", 60, 200);
    let first = shoal_sim::run(Options::new(7, &plan));
    let second = shoal_sim::run(Options::new(7, &plan));
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.events, second.events);
    let other = shoal_sim::run(Options::new(8, &plan));
    assert_ne!(first.trace_hash, other.trace_hash);
}

#[test]
fn swarm_options_reproduce_from_the_printed_command() {
    let swarm = Options::new(11, &Plan::default());
    let given = Options::new(
        11,
        &Plan {
            faults: Some(swarm.faults.clone()),
            ..Plan::default()
        },
    );
    assert_eq!(swarm.faults, given.faults);
    assert_eq!(swarm.rates, given.rates);
    assert!(swarm.command().contains(&format!("--faults {}", swarm.faults)));
}

#[test]
fn r1_w1_with_partitions_breaks_read_your_writes() {
    let plan = Plan {
        forced_rw: Some((1, 1)),
        ..plan("partition", 120, 300)
    };
    let caught = caught(1..=5, &plan, shoal_sim::checker::read_your_writes::NAME);
    assert!(caught > 0, "R=1,W=1 under partitions must show stale reads");
}

#[test]
fn skipping_epoch_bumps_reissues_dots_after_wipes() {
    let buggy = Plan {
        skip_epoch_bump: true,
        ..plan("wipe", 120, 300)
    };
    let caught = caught(1..=3, &buggy, shoal_sim::checker::unique_dots::NAME);
    assert!(caught > 0, "without epoch bumps a wiped node must reissue dots");
    // The same runs with the bug absent pass.
    let correct = plan("wipe", 120, 300);
    for seed in 1..=3 {
        passing_run(seed, &correct);
    }
}

#[test]
fn replicas_deaf_to_changes_after_a_watch_starts_are_caught() {
    let deaf = Plan {
        deaf_watches: true,
        ..plan("reorder,dup", 120, 400)
    };
    let caught = caught(1..=3, &deaf, shoal_sim::checker::watch::NAME);
    assert!(
        caught > 0,
        "watches that miss writes made while they wait must be caught"
    );
    // The same runs with the bug absent pass, and their watches saw changes.
    let correct = plan("reorder,dup", 120, 400);
    for seed in 1..=3 {
        let report = passing_run(seed, &correct);
        assert!(report.ops.watches_changed > 0, "{}", report.summary());
    }
}

#[test]
fn serving_expired_values_is_caught() {
    let buggy = Plan {
        ignore_expiry: true,
        ..plan("reorder,dup", 120, 400)
    };
    assert!(
        caught(1..=1, &buggy, shoal_sim::checker::expiry::NAME) > 0,
        "reads that ignore expiry must be caught"
    );
}

#[test]
fn every_fault_class_alone_and_all_together_pass_on_fixed_seeds() {
    let mut runs: Vec<(String, u64)> = ALL_FAULTS.iter().map(|f| (f.name().to_string(), 1)).collect();
    runs.extend((1..=4).map(|seed| ("all".to_string(), seed)));
    for (faults, seed) in runs {
        let report = passing_run(seed, &plan(&faults, 120, 300));
        if faults != "all" {
            let f = &report.faults;
            let injected = f.lost
                + f.blocked
                + f.duplicated
                + f.reordered
                + f.delayed
                + f.crashes
                + f.wipes
                + f.joins
                + f.leaves
                + f.disks_full;
            assert!(
                injected > 0 || faults == "skew",
                "{faults}: nothing injected\n{}",
                report.summary()
            );
        }
    }
}

#[test]
fn shrinking_keeps_the_failure_and_drops_what_it_does_not_need() {
    let plan = Plan {
        forced_rw: Some((1, 1)),
        ..plan("partition,skew,dup", 120, 300)
    };
    let failing = (1..=5)
        .map(|seed| Options::new(seed, &plan))
        .find(|o| !shoal_sim::run(o.clone()).passed())
        .expect("a failing seed");
    let smaller = shoal_sim::shrink(&failing, |_| {});
    assert!(
        !shoal_sim::run(smaller.clone()).passed(),
        "the shrunk run still fails"
    );
    assert!(smaller.faults.0.len() <= failing.faults.0.len());
    assert!(smaller.ops <= failing.ops && smaller.duration <= failing.duration);
    assert!(
        smaller.faults.has(shoal_sim::options::Fault::Partition),
        "partitions are what break R=1,W=1"
    );
}

#[test]
fn without_read_repair_anti_entropy_alone_converges_replicas() {
    let plan = Plan {
        read_repair: false,
        ..plan("all", 120, 300)
    };
    for seed in 1..=4 {
        passing_run(seed, &plan);
    }
}

/// Seed 47 once lost an acknowledged write: a sloppy write was held by its
/// coordinator and by a fallback's hint; the hint outlived the hint window
/// and was dropped, then the coordinator's disk was wiped. The fallback now
/// re-homes the old hint to the key's live home replicas instead. Seed 47
/// takes another path since membership changed; seed 4 re-homes hints
/// (checked, so the mechanism stays exercised).
#[test]
fn a_hint_past_its_window_is_re_homed_and_the_write_survives_a_wiped_coordinator() {
    let mut rehomed = 0;
    for seed in [47, 4] {
        rehomed += passing_run(seed, &plan("all", 300, 1000)).repairs.hints_rehomed;
    }
    assert!(rehomed > 0, "no hint was re-homed");
}

/// Seeds 3949 and 4397 once lost acknowledged writes: a node finished
/// joining while a partition kept two replicas of its ranges from hearing
/// of it, and they acknowledged quorum writes on the old replicas that a
/// read on the new ring did not ask. A join now moves no range until the
/// replicas know of it.
#[test]
fn a_join_hidden_from_replicas_by_a_partition_loses_no_write() {
    for (seed, faults) in [
        (3949, "reorder,partition,skew,join,leave"),
        (4397, "dup,reorder,partition,oneway,crash,wipe,join,leave"),
    ] {
        let report = passing_run(seed, &plan(faults, 300, 1000));
        assert!(report.faults.joins > 0, "{}", report.summary());
    }
}

/// Seed 6772 once ended with nodes that saw each other down for good
/// after healing: links failing one way had made members rejoin under new
/// generations, and some nodes held their old identities as live, so SWIM
/// never asked them back. Each node now also announces itself every 5 s
/// to the members it believes down.
#[test]
fn members_that_rejoined_while_links_failed_one_way_are_seen_up_after_healing() {
    passing_run(6772, &plan("loss,dup,partition,oneway,leave", 300, 1000));
}

/// Seed 954 (7 nodes) once ended with a node that had left still in every
/// ring, seen as leaving and down: it went once one member confirmed its
/// departure, and that member crashed before passing the news on. A node
/// that left now waits for a majority of the members.
#[test]
fn a_departure_is_not_forgotten_when_the_member_that_confirmed_it_crashes() {
    let plan = Plan {
        nodes: 7,
        ..plan("all", 600, 3000)
    };
    let report = passing_run(954, &plan);
    assert!(report.faults.leaves > 0, "{}", report.summary());
}

/// Seed 1409 once lost an acknowledged write: a leaving fallback handed its
/// hint to the write's coordinator, a home replica and its only other
/// holder, whose disk was then wiped. A leaving node now hands a hint only
/// to a node that cannot hold the write already.
#[test]
fn a_leaving_node_does_not_hand_a_hint_to_the_other_holder_of_its_write() {
    passing_run(1409, &plan("all", 300, 1000));
}

/// Seed 170 (full disks only) lost an acknowledged write: a replica whose
/// disk was full kept coordinating writes from its state of the key, which
/// lacked a write it had coordinated but could not store, and its next
/// dot covered that write. A node whose storage failed now forwards writes
/// to a replica that can store them.
#[test]
fn a_node_whose_disk_is_full_does_not_supersede_writes_it_could_not_store() {
    let report = passing_run(170, &plan("diskfull", 300, 1000));
    assert!(report.faults.disks_full > 0, "{}", report.summary());
}

/// Seed 308 (partitions, crashes, full disks) lost a write acknowledged at
/// ONE: its coordinator's own copy failed (its disk had just filled), the
/// only other copy was a sloppy stand-in's hint, and the hint was dropped
/// past the hint window. A coordinator whose own copy fails now hands the
/// write to another replica to coordinate, so a write always has a copy on
/// its coordinator.
#[test]
fn a_write_is_never_left_with_hints_as_its_only_copies() {
    let report = passing_run(308, &plan("partition,crash,diskfull", 300, 1000));
    assert!(report.faults.disks_full > 0, "{}", report.summary());
}
