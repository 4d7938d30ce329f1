//! Each checker fails on a run that breaks its promise (synthetic runs).

use shoal::proto::version::{Actor, VersionVector};
use shoal::proto::{Consistency, NodeId, Time, Versioned};
use shoal_sim::checker::{self, Violation};
use shoal_sim::history::{History, Kind, Listed, Op, Outcome, Phase};
use shoal_sim::options::{Fault, FaultSet, Options, Plan};
use shoal_sim::world::{FaultCounts, RunResult};
use std::collections::BTreeMap;
use std::time::Duration;

const KEY: &[u8] = b"key0";

fn run_with(ops: Vec<Op>, states: Vec<Versioned>) -> RunResult {
    let nodes = [NodeId(1), NodeId(2), NodeId(3)];
    RunResult {
        options: Options::new(1, &Plan::default()),
        history: History { ops },
        final_states: BTreeMap::from([(KEY.to_vec(), nodes.iter().copied().zip(states).collect())]),
        dot_conflicts: Vec::new(),
        wipes: Vec::new(),
        disturbances: Vec::new(),
        faults: FaultCounts::default(),
        trace_hash: 0,
        events: 0,
        simulated: Duration::ZERO,
        replication: 3,
        replicas: BTreeMap::from([(KEY.to_vec(), nodes.to_vec())]),
        hints_left: BTreeMap::new(),
        stopped_replicas: Vec::new(),
        refused_messages: Vec::new(),
        broken_invariants: Vec::new(),
        repairs: Default::default(),
    }
}

fn op(kind: Kind, at: u64, outcome: Outcome) -> Op {
    Op {
        client: 0,
        key: KEY.to_vec(),
        kind,
        consistency: Consistency::Quorum,
        context: VersionVector::new(),
        sloppy_quorum: false,
        phase: Phase::Fault,
        invoked: Time::from_micros(at),
        completed: Some(Time::from_micros(at + 10)),
        outcome,
    }
}

fn written(value: &[u8]) -> (Versioned, Op) {
    let mut state = Versioned::new();
    let actor = Actor {
        node: NodeId(1),
        epoch: 1,
    };
    let dot = state
        .write(actor, &VersionVector::new(), Some(value.to_vec()), 1, 8)
        .unwrap();
    let op = op(
        Kind::Put {
            value: value.to_vec(),
            ttl_ms: None,
        },
        100,
        Outcome::Written { dot },
    );
    (state, op)
}

fn names(violations: &[Violation]) -> Vec<&'static str> {
    violations.iter().map(|v| v.checker).collect()
}

#[test]
fn a_correct_run_passes_every_checker() {
    let (state, put) = written(b"v");
    let run = run_with(vec![put], vec![state.clone(), state.clone(), state]);
    for (name, check) in checker::CHECKERS {
        assert!(check(&run).is_empty(), "{name}");
    }
}

#[test]
fn a_lost_acknowledged_write_is_caught() {
    let (_, put) = written(b"v");
    let run = run_with(vec![put], vec![Versioned::new(); 3]);
    assert_eq!(
        names(&checker::lost_writes::check(&run)),
        vec![checker::lost_writes::NAME]
    );
}

#[test]
fn a_fabricated_value_is_caught() {
    let (state, put) = written(b"v");
    let read = op(
        Kind::Get,
        200,
        Outcome::Read {
            values: vec![b"never written".to_vec()],
            context: state.clock().clone(),
        },
    );
    let run = run_with(vec![put, read], vec![state.clone(), state.clone(), state]);
    assert_eq!(
        names(&checker::fabrication::check(&run)),
        vec![checker::fabrication::NAME]
    );
}

#[test]
fn a_stale_strict_read_is_caught() {
    let (state, put) = written(b"v");
    let read = op(
        Kind::Get,
        200,
        Outcome::Read {
            values: vec![],
            context: VersionVector::new(),
        },
    );
    let run = run_with(vec![put, read], vec![state.clone(), state.clone(), state]);
    assert_eq!(
        names(&checker::read_your_writes::check(&run)),
        vec![checker::read_your_writes::NAME]
    );
}

#[test]
fn diverged_replicas_and_a_failed_heal_read_are_caught() {
    let (state, put) = written(b"v");
    let mut heal = op(Kind::Get, 300, Outcome::TimedOut);
    heal.phase = Phase::Heal;
    let run = run_with(vec![put, heal], vec![state.clone(), state, Versioned::new()]);
    assert_eq!(
        checker::convergence::check(&run).len(),
        2,
        "one liveness, one divergence"
    );
}

#[test]
fn a_ring_member_not_running_after_healing_is_caught() {
    let (state, put) = written(b"v");
    let mut run = run_with(vec![put], vec![state.clone(), state.clone(), state]);
    assert!(checker::convergence::check(&run).is_empty());
    run.stopped_replicas.push(NodeId(3));
    let found = checker::convergence::check(&run);
    assert_eq!(names(&found), vec![checker::convergence::NAME]);
    assert!(found[0].detail.contains(&NodeId(3).to_string()), "{found:?}");
}

#[test]
fn an_honest_message_refused_as_invalid_is_caught() {
    let (state, put) = written(b"v");
    let mut run = run_with(vec![put], vec![state.clone(), state.clone(), state]);
    assert!(checker::honest_messages::check(&run).is_empty());
    run.refused_messages
        .push("AeKeys from 2 to node 1: a key of 0 bytes".into());
    let found = checker::honest_messages::check(&run);
    assert_eq!(names(&found), vec![checker::honest_messages::NAME]);
}

#[test]
fn a_broken_core_invariant_is_caught() {
    let (state, put) = written(b"v");
    let mut run = run_with(vec![put], vec![state.clone(), state.clone(), state]);
    assert!(checker::core_invariants::check(&run).is_empty());
    run.broken_invariants
        .push("at 3s, node 1: the digest tree differs from the digest index".into());
    let found = checker::core_invariants::check(&run);
    assert_eq!(names(&found), vec![checker::core_invariants::NAME]);
}

#[test]
fn a_value_back_after_its_delete_is_caught() {
    let (state, put) = written(b"v");
    let mut delete = op(Kind::Delete, 200, Outcome::Pending);
    delete.context = state.clock().clone();
    let mut after = state.clone();
    let actor = Actor {
        node: NodeId(2),
        epoch: 1,
    };
    let dot = after.write(actor, &delete.context, None, 2, 8).unwrap();
    delete.outcome = Outcome::Written { dot };
    // Every replica still holds the deleted value: it came back.
    let run = run_with(vec![put, delete], vec![state.clone(), state.clone(), state]);
    assert!(names(&checker::resurrection::check(&run)).contains(&checker::resurrection::NAME));
}

#[test]
fn hints_left_after_healing_are_caught() {
    let (state, put) = written(b"v");
    let mut run = run_with(vec![put], vec![state.clone(), state.clone(), state]);
    assert!(checker::hints_delivered::check(&run).is_empty());
    run.hints_left.insert(NodeId(1), 3);
    run.hints_left.insert(NodeId(2), 0);
    assert_eq!(
        names(&checker::hints_delivered::check(&run)),
        vec![checker::hints_delivered::NAME]
    );
}

/// A write replaced by a later one, which a delete then covered: once the
/// tombstone is collected and the key written anew, a strict read sees
/// only the new write. That is no stale read; without the delete it is.
#[test]
fn a_read_after_a_replaced_write_was_deleted_and_collected_is_not_stale() {
    use shoal::proto::version::Dot;
    // Each write by another node, so no clock covers another's dot by
    // its counter alone.
    let dot = |counter| Dot {
        node: NodeId(counter),
        epoch: 1,
        counter,
    };
    let put = |at, counter, context: &[u64]| {
        let mut op = op(
            Kind::Put {
                value: b"v".to_vec(),
                ttl_ms: None,
            },
            at,
            Outcome::Written { dot: dot(counter) },
        );
        for &c in context {
            op.context.add(&dot(c));
        }
        op
    };
    let first = put(100, 1, &[]);
    let replacing = put(200, 2, &[1]);
    let mut delete = op(Kind::Delete, 300, Outcome::Written { dot: dot(3) });
    delete.context.add(&dot(2));
    let again = put(400, 4, &[]);
    let mut context = VersionVector::new();
    context.add(&dot(4));
    let read = op(
        Kind::Get,
        500,
        Outcome::Read {
            values: vec![b"v".to_vec()],
            context,
        },
    );
    let states = vec![Versioned::new(); 3];
    let run = run_with(
        vec![
            first.clone(),
            replacing.clone(),
            delete,
            again.clone(),
            read.clone(),
        ],
        states.clone(),
    );
    assert!(checker::read_your_writes::check(&run).is_empty());

    let run = run_with(vec![first, replacing, again, read], states);
    assert_eq!(
        names(&checker::read_your_writes::check(&run)),
        vec![checker::read_your_writes::NAME; 2]
    );
}

fn listing(at: u64, keys: Vec<Listed>, next: Option<Vec<u8>>) -> Op {
    let mut list = op(Kind::List, at, Outcome::Listed { keys, next });
    list.key = b"key".to_vec();
    list
}

#[test]
fn a_listing_that_misses_an_acknowledged_write_is_caught() {
    let (state, put) = written(b"v");
    // It left the key out of a range its page covered.
    let run = run_with(
        vec![put.clone(), listing(200, Vec::new(), None)],
        vec![state.clone(), state.clone(), state.clone()],
    );
    assert_eq!(
        names(&checker::read_your_writes::check(&run)),
        vec![checker::read_your_writes::NAME]
    );
    // A page that ended before the key says nothing of it.
    let run = run_with(
        vec![put.clone(), listing(200, Vec::new(), Some(b"jey".to_vec()))],
        vec![state.clone(), state.clone(), state.clone()],
    );
    assert!(checker::read_your_writes::check(&run).is_empty());
    // Listed with a context that covers the write: fine.
    let seen = Listed {
        key: KEY.to_vec(),
        values: vec![b"v".to_vec()],
        context: state.clock().clone(),
    };
    let run = run_with(
        vec![put, listing(200, vec![seen], None)],
        vec![state.clone(), state.clone(), state],
    );
    for (name, check) in checker::CHECKERS {
        assert!(check(&run).is_empty(), "{name}");
    }
}

#[test]
fn a_listing_that_shows_a_deleted_value_or_an_unwritten_key_is_caught() {
    let (state, put) = written(b"v");
    let mut delete = op(Kind::Delete, 200, Outcome::Pending);
    delete.context = state.clock().clone();
    let mut after = state.clone();
    let actor = Actor {
        node: NodeId(2),
        epoch: 1,
    };
    let dot = after.write(actor, &delete.context, None, 2, 8).unwrap();
    delete.outcome = Outcome::Written { dot };
    let shown = Listed {
        key: KEY.to_vec(),
        values: vec![b"v".to_vec()],
        context: state.clock().clone(),
    };
    let run = run_with(
        vec![put.clone(), delete, listing(300, vec![shown], None)],
        vec![after.clone(), after.clone(), after],
    );
    assert!(names(&checker::resurrection::check(&run)).contains(&checker::resurrection::NAME));
    let stranger = Listed {
        key: b"key9".to_vec(),
        values: Vec::new(),
        context: VersionVector::new(),
    };
    let run = run_with(
        vec![put, listing(300, vec![stranger], None)],
        vec![state.clone(), state.clone(), state],
    );
    assert!(names(&checker::fabrication::check(&run)).contains(&checker::fabrication::NAME));
}

/// A put of `value` expiring after `ttl_ms`, acknowledged at 110 µs.
fn expiring(value: &[u8], ttl_ms: u64) -> (Versioned, Op) {
    let (state, mut put) = written(value);
    put.kind = Kind::Put {
        value: value.to_vec(),
        ttl_ms: Some(ttl_ms),
    };
    (state, put)
}

fn read_of(values: Vec<Vec<u8>>, context: VersionVector, at: u64) -> Op {
    op(Kind::Get, at, Outcome::Read { values, context })
}

#[test]
fn a_value_served_after_it_expired_is_caught() {
    let (state, put) = expiring(b"v", 1_000);
    let context = state.clock().clone();
    // Before its expiry (acknowledged at 110 us, 1 s to live): fine.
    let early = read_of(vec![b"v".to_vec()], context.clone(), 1_000_000);
    let run = run_with(
        vec![put.clone(), early],
        vec![state.clone(), state.clone(), state.clone()],
    );
    assert!(checker::expiry::check(&run).is_empty());
    // After it: caught, with clocks that agree (no skew fault)...
    let late = read_of(vec![b"v".to_vec()], context, 1_000_110);
    let mut run = run_with(vec![put, late], vec![state.clone(), state.clone(), state]);
    run.options.faults = FaultSet(Default::default());
    assert_eq!(names(&checker::expiry::check(&run)), vec![checker::expiry::NAME]);
    // ...but not while skewed clocks may still disagree on it.
    run.options.faults = FaultSet([Fault::Skew].into());
    run.options.rates.skew_max = Duration::from_secs(1);
    assert!(checker::expiry::check(&run).is_empty());
}

#[test]
fn a_value_back_after_the_put_that_replaced_it_expired_is_caught() {
    let (state, first) = written(b"v1");
    // v2 replaces v1 and expires after 1 s.
    let mut after = state.clone();
    let actor = Actor {
        node: NodeId(2),
        epoch: 1,
    };
    let dot = after
        .write(actor, state.clock(), Some(b"v2".to_vec()), 2, 8)
        .unwrap();
    let mut second = op(
        Kind::Put {
            value: b"v2".to_vec(),
            ttl_ms: Some(1_000),
        },
        200,
        Outcome::Written { dot },
    );
    second.context = state.clock().clone();
    // A strict read long after the expiry returns v1 again.
    let read = read_of(vec![b"v1".to_vec()], state.clock().clone(), 5_000_000);
    let run = run_with(
        vec![first, second, read],
        vec![after.clone(), after.clone(), after],
    );
    assert_eq!(
        names(&checker::resurrection::check(&run)),
        vec![checker::resurrection::NAME]
    );
    // And the expiry alone, with v1 not read, breaks nothing.
    let (state, put) = expiring(b"v", 1_000);
    let read = read_of(vec![], state.clock().clone(), 5_000_000);
    let run = run_with(vec![put, read], vec![state.clone(), state.clone(), state]);
    for (name, check) in checker::CHECKERS {
        assert!(check(&run).is_empty(), "{name}");
    }
}

#[test]
fn a_watch_that_reports_no_change_past_a_write_it_had_not_seen_is_caught() {
    let (state, mut put) = written(b"v");
    // The watch waits from 100 µs to 5 s; the put comes at 1 s.
    put.invoked = Time::from_micros(1_000_000);
    put.completed = Some(Time::from_micros(1_000_100));
    let mut watch = op(Kind::Watch { timeout_ms: 5_000 }, 100, Outcome::Unchanged);
    watch.completed = Some(Time::from_micros(5_000_100));
    let quiet = |ops: Vec<Op>| {
        let mut run = run_with(ops, vec![state.clone(), state.clone(), state.clone()]);
        run.options.faults = FaultSet(Default::default());
        run
    };
    let run = quiet(vec![watch.clone(), put.clone()]);
    assert_eq!(names(&checker::watch::check(&run)), vec![checker::watch::NAME]);
    // A watch that had seen the write (its context covers it) may wait on.
    let mut seen = watch.clone();
    seen.context = state.clock().clone();
    assert!(checker::watch::check(&quiet(vec![seen, put.clone()])).is_empty());
    // Nor is a watch held to it while a replica was cut off or down.
    let mut run = quiet(vec![watch.clone(), put.clone()]);
    run.disturbances = vec![(Time::from_micros(2_000_000), Time::from_micros(3_000_000))];
    assert!(checker::watch::check(&run).is_empty());
    // Nor in a run that loses messages.
    let mut run = quiet(vec![watch, put]);
    run.options.faults = FaultSet([Fault::Loss].into());
    assert!(checker::watch::check(&run).is_empty());
}
