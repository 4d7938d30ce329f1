//! With strict quorums and R + W > N, a read that starts after a write was
//! acknowledged sees it or a descendant: the read's context covers the
//! write's dot. A listing at R is held to the same for every key in the
//! range its page covered (a key it left out, it read as absent). Runs with `--r/--w` claim their setting is strict, so the
//! check holds them to it (that is how a wrong setting is caught).

use super::{Violation, clock_bound, describe, key_reads, wiped_replicas};
use crate::history::{Kind, Op, Outcome, Phase};
use crate::world::{RunResult, required};
use shoal::proto::Time;
use shoal::proto::quorum::Access;
use shoal::proto::version::Dot;
use std::time::Duration;

/// This checker's name.
pub const NAME: &str = "reads and listings see acknowledged writes (R+W>N)";

/// Runs the check.
pub fn check(run: &RunResult) -> Vec<Violation> {
    let n = run.replication;
    let mut violations = Vec::new();
    let ops = &run.history.ops;
    let reads = key_reads(run);
    let bound = clock_bound(run);
    for (wi, write) in ops.iter().enumerate() {
        let (Outcome::Written { dot }, Some(acked)) = (&write.outcome, write.completed) else {
            continue;
        };
        let w = required(write.consistency, Access::Write, n);
        for key_read in &reads {
            let (read, context) = (key_read.op, key_read.context.as_ref());
            // A watch answers with one replica's state: no quorum read.
            if key_read.key != write.key || read.invoked <= acked || matches!(read.kind, Kind::Watch { .. }) {
                continue;
            }
            let r = required(read.consistency, Access::Read, n);
            let claimed_strict = run.options.forced_rw.is_some() || r + w > n || read.phase == Phase::Heal;
            // A wiped replica forgets what it acknowledged; until a wiped
            // node rebuilds before serving, quorums cannot intersect on it.
            // A sloppy write may have been acknowledged by fallbacks that
            // no read asks until their hints are delivered.
            if !claimed_strict || write.sloppy_quorum || wiped_replicas(run, write, read.completed) > 0 {
                continue;
            }
            // A tombstone is collected once every replica holds it, and the
            // clock that covered the write goes with it: a read that finds
            // the key absent after a delete made since the write (or that
            // is the write) is not stale. The resurrection checker holds
            // deletes to account instead.
            // A put whose value expired acts as a delete of it (the write
            // itself among them): a key whose values all expired reads as
            // absent and may be collected.
            let collected = context.is_empty()
                && ops.iter().any(|d| {
                    removes(d, read.completed, bound)
                        && d.key == write.key
                        && d.invoked >= write.invoked
                        && read.completed.is_none_or(|c| d.invoked < c)
                });
            let deleted = collected
                || ops.iter().any(|d| {
                    removes(d, read.completed, bound)
                        && d.key == write.key
                        && read.completed.is_none_or(|c| d.invoked < c)
                        && (std::ptr::eq(d, write) || d.context.covers(dot))
                });
            if !context.covers(dot)
                && !deleted
                && !deleted_after_replacement(ops, &write.key, *dot, read.completed, bound)
            {
                violations.push(Violation {
                    checker: NAME,
                    detail: format!("{} did not see {}", key_read.describe(), describe(wi, write)),
                });
            }
        }
    }
    violations
}

/// Whether a delete invoked before `before` removed the write of `dot`
/// through writes that replaced it: each one's context covers the dot
/// of the one before, and the delete's covers the last. Its tombstone may
/// then have been collected, and a write since made the key anew: a read
/// of that new state rightly lacks `dot`.
fn deleted_after_replacement(
    ops: &[Op],
    key: &[u8],
    dot: Dot,
    before: Option<Time>,
    bound: Duration,
) -> bool {
    let mut dots = vec![dot];
    let mut next = 0;
    while let Some(&replaced) = dots.get(next) {
        next += 1;
        for op in ops {
            if !op.is_write()
                || op.key != key
                || before.is_some_and(|c| op.invoked >= c)
                || !op.context.covers(&replaced)
            {
                continue;
            }
            if removes(op, before, bound) {
                return true;
            }
            if let Some(dot) = op.written_dot()
                && !dots.contains(&dot)
            {
                dots.push(dot);
            }
        }
    }
    false
}

/// Whether `op` is a delete, or a put whose value may have expired before
/// `before` (clocks within `bound`): either may leave its key absent.
fn removes(op: &Op, before: Option<Time>, bound: Duration) -> bool {
    matches!(op.kind, Kind::Delete)
        || op
            .ttl()
            .is_some_and(|ttl| before.is_none_or(|c| c + bound >= op.invoked + ttl))
}
