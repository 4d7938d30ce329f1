//! Watches see acknowledged writes: a watch started with context C that
//! reports no change by its timeout must not have missed a write to its
//! key that was invoked after the watch, acknowledged well before the
//! watch ended, and not covered by C, while the key's replicas were up.
//!
//! "Up" is judged conservatively: only watches that ran while no fault
//! struck (no partition, crash, full disk, join or leave; see
//! `RunResult::disturbances`) are held to it, and none in runs that lose
//! messages (shoal's links are QUIC streams, which do not lose a message
//! without the connection failing; the simulator's loss has no such
//! signal). A message held back by the delay fault may hold back the watch
//! and its answer: the write must then have been acknowledged that much
//! earlier.

use super::{Violation, describe};
use crate::history::{Kind, Outcome, Phase};
use crate::options::Fault;
use crate::world::RunResult;
use std::time::Duration;

/// This checker's name.
pub const NAME: &str = "watches see acknowledged writes";

/// How long before a watch's end a write must have been acknowledged for
/// the watch to have to report it: the client's and nodes' hops.
const SLACK: Duration = Duration::from_secs(1);
/// The longest the delay fault holds a message back.
const DELAY_MAX: Duration = Duration::from_secs(3);

/// Runs the check.
pub fn check(run: &RunResult) -> Vec<Violation> {
    if run.options.faults.has(Fault::Loss) {
        return Vec::new();
    }
    let slack = if run.options.faults.has(Fault::Delay) {
        SLACK + 2 * DELAY_MAX
    } else {
        SLACK
    };
    let ops = &run.history.ops;
    let mut violations = Vec::new();
    for (wi, watch) in ops.iter().enumerate() {
        let (Kind::Watch { .. }, Outcome::Unchanged, Some(ended), Phase::Fault) =
            (&watch.kind, &watch.outcome, watch.completed, watch.phase)
        else {
            continue;
        };
        let quiet = run
            .disturbances
            .iter()
            .all(|&(from, until)| until < watch.invoked || from > ended);
        if !quiet {
            continue;
        }
        for (pi, write) in ops.iter().enumerate() {
            let (Outcome::Written { dot }, Some(acked)) = (&write.outcome, write.completed) else {
                continue;
            };
            if write.key == watch.key
                && write.invoked >= watch.invoked
                && acked + slack <= ended
                && !watch.context.covers(dot)
            {
                violations.push(Violation {
                    checker: NAME,
                    detail: format!(
                        "{} reported no change, missing {}",
                        describe(wi, watch),
                        describe(pi, write)
                    ),
                });
            }
        }
    }
    violations
}
