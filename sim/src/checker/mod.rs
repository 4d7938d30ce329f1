//! Checkers: each module tests one promise against a finished run and
//! returns what it found broken. They read the history (what clients saw),
//! the replicas' final states and what the world observed on the wire.

pub mod convergence;
pub mod core_invariants;
pub mod fabrication;
pub mod hints_delivered;
pub mod honest_messages;
pub mod lost_writes;
pub mod read_your_writes;
pub mod resurrection;
pub mod unique_dots;

use crate::history::Op;
use crate::world::{RunResult, required};
use shoal::proto::NodeId;
use shoal::proto::Versioned;
use shoal::proto::quorum::Access;

/// A broken promise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The checker that found it.
    pub checker: &'static str,
    /// What happened, with the operations involved.
    pub detail: String,
}

/// A checker: a name and a function.
pub type Checker = (&'static str, fn(&RunResult) -> Vec<Violation>);

/// Every checker, in report order.
pub const CHECKERS: [Checker; 9] = [
    (lost_writes::NAME, lost_writes::check),
    (read_your_writes::NAME, read_your_writes::check),
    (fabrication::NAME, fabrication::check),
    (unique_dots::NAME, unique_dots::check),
    (resurrection::NAME, resurrection::check),
    (convergence::NAME, convergence::check),
    (hints_delivered::NAME, hints_delivered::check),
    (honest_messages::NAME, honest_messages::check),
    (core_invariants::NAME, core_invariants::check),
];

/// The union of the replicas' final states of `key`.
pub fn merged_final(run: &RunResult, key: &[u8]) -> Versioned {
    let mut merged = Versioned::new();
    for (_, state) in run.final_states.get(key).into_iter().flatten() {
        merged.merge_from(state);
    }
    merged
}

/// Replicas of `op`'s key whose disk was wiped between `from` and `until`
/// (global simulated times). When ranges moved during the run (a join or
/// a leave), any node may have been a replica, or the source a new replica
/// streamed from, so every wiped node counts.
pub fn wiped_replicas(run: &RunResult, op: &Op, until: Option<shoal::proto::Time>) -> usize {
    let replicas: &[NodeId] = run.replicas.get(&op.key).map(Vec::as_slice).unwrap_or(&[]);
    let moved = run.faults.joins + run.faults.leaves > 0;
    let mut wiped: Vec<NodeId> = run
        .wipes
        .iter()
        .filter(|(at, node)| {
            *at >= op.invoked && until.is_none_or(|u| *at <= u) && (moved || replicas.contains(node))
        })
        .map(|(_, node)| *node)
        .collect();
    wiped.sort();
    wiped.dedup();
    wiped.len()
}

/// Whether an acknowledged write must survive: fewer of its key's
/// replicas lost their disks after it than acknowledged it. (Losing every
/// disk that held a write loses it; that is not a bug.)
pub fn durable(run: &RunResult, op: &Op) -> bool {
    wiped_replicas(run, op, None) < required(op.consistency, Access::Write, run.replication)
}

/// A short description of an operation for reports.
pub fn describe(index: usize, op: &Op) -> String {
    format!(
        "op {index} (client {}, {:?} {} at {}, invoked {:?}, completed {:?}, {:?})",
        op.client,
        op.kind,
        String::from_utf8_lossy(&op.key),
        op.consistency,
        op.invoked,
        op.completed,
        op.outcome
    )
}
