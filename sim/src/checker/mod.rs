//! Checkers: each module tests one promise against a finished run and
//! returns what it found broken. They read the history (what clients saw),
//! the replicas' final states and what the world observed on the wire.

pub mod convergence;
pub mod core_invariants;
pub mod expiry;
pub mod fabrication;
pub mod hints_delivered;
pub mod honest_messages;
pub mod lost_writes;
pub mod read_your_writes;
pub mod resurrection;
pub mod unique_dots;
pub mod watch;

use crate::history::{Kind, Op, Outcome};
use crate::world::{RunResult, required};
use shoal::proto::NodeId;
use shoal::proto::Versioned;
use shoal::proto::quorum::Access;
use shoal::proto::version::VersionVector;
use std::collections::BTreeSet;

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
pub const CHECKERS: [Checker; 11] = [
    (lost_writes::NAME, lost_writes::check),
    (read_your_writes::NAME, read_your_writes::check),
    (fabrication::NAME, fabrication::check),
    (unique_dots::NAME, unique_dots::check),
    (resurrection::NAME, resurrection::check),
    (convergence::NAME, convergence::check),
    (hints_delivered::NAME, hints_delivered::check),
    (honest_messages::NAME, honest_messages::check),
    (core_invariants::NAME, core_invariants::check),
    (expiry::NAME, expiry::check),
    (watch::NAME, watch::check),
];

/// How far two nodes' clocks may disagree in this run: twice the largest
/// skew of one node (none without the skew fault).
pub fn clock_bound(run: &RunResult) -> std::time::Duration {
    if run.options.faults.has(crate::options::Fault::Skew) {
        2 * run.options.rates.skew_max
    } else {
        std::time::Duration::ZERO
    }
}

/// What a client read of one key: a get's result, or what a listing said
/// of one key in the range it covered (a key it did not list, it read as
/// absent). Reads and listings keep the same promises.
pub struct KeyRead<'a> {
    /// The operation's index.
    pub index: usize,
    /// The get or listing.
    pub op: &'a Op,
    /// The key.
    pub key: &'a [u8],
    /// The values returned.
    pub values: &'a [Vec<u8>],
    /// The context returned (empty for a key a listing left out).
    pub context: std::borrow::Cow<'a, VersionVector>,
}

impl KeyRead<'_> {
    /// For reports.
    pub fn describe(&self) -> String {
        match self.op.kind {
            Kind::List => format!(
                "{} (of key {})",
                describe(self.index, self.op),
                String::from_utf8_lossy(self.key)
            ),
            _ => describe(self.index, self.op),
        }
    }
}

/// Every read of a key: gets, and each listing once per key of the run
/// (every key a get, put or delete named) in the range its page covered.
pub fn key_reads(run: &RunResult) -> Vec<KeyRead<'_>> {
    let ops = &run.history.ops;
    let keys: BTreeSet<&[u8]> = ops
        .iter()
        .filter(|op| op.kind != Kind::List)
        .map(|op| op.key.as_slice())
        .collect();
    let mut reads = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        match &op.outcome {
            Outcome::Read { values, context } => reads.push(KeyRead {
                index,
                op,
                key: &op.key,
                values,
                context: std::borrow::Cow::Borrowed(context),
            }),
            Outcome::Listed { keys: listed, next } => {
                let covered = keys
                    .iter()
                    .filter(|k| k.starts_with(&op.key) && next.as_ref().is_none_or(|n| **k <= n.as_slice()));
                for &key in covered {
                    let (values, context) = match listed.iter().find(|l| l.key == key) {
                        Some(l) => (l.values.as_slice(), std::borrow::Cow::Borrowed(&l.context)),
                        None => (&[][..], std::borrow::Cow::Owned(VersionVector::new())),
                    };
                    reads.push(KeyRead {
                        index,
                        op,
                        key,
                        values,
                        context,
                    });
                }
            }
            _ => {}
        }
    }
    reads
}

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
/// disk that held a write loses it; that is not a bug.) A sloppy write may
/// have been acknowledged by stand-ins that keep only a hint, which is
/// dropped past the hint window because the coordinator's copy repairs
/// what it held: the loss of any replica's disk may lose it.
pub fn durable(run: &RunResult, op: &Op) -> bool {
    let wiped = wiped_replicas(run, op, None);
    if op.sloppy_quorum {
        return wiped == 0;
    }
    wiped < required(op.consistency, Access::Write, run.replication)
}

/// A short description of an operation for reports.
pub fn describe(index: usize, op: &Op) -> String {
    let outcome = match &op.outcome {
        Outcome::Listed { keys, next } => format!(
            "Listed {} keys [{}], next {:?}",
            keys.len(),
            keys.iter()
                .map(|l| String::from_utf8_lossy(&l.key).into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            next.as_ref().map(|n| String::from_utf8_lossy(n).into_owned())
        ),
        other => format!("{other:?}"),
    };
    format!(
        "op {index} (client {}, {:?} {} at {}, invoked {:?}, completed {:?}, {outcome})",
        op.client,
        op.kind,
        String::from_utf8_lossy(&op.key),
        op.consistency,
        op.invoked,
        op.completed,
    )
}
