//! The core's invariants that span subsystems (`Node::check_invariants`:
//! the digest tree matches the digest index, every request has its
//! deadline, every batch in flight is tagged with its sender) hold at
//! every sampled point of the run.

use super::Violation;
use crate::world::RunResult;

/// This checker's name.
pub const NAME: &str = "core invariants hold";

/// Runs the check.
pub fn check(run: &RunResult) -> Vec<Violation> {
    run.broken_invariants
        .iter()
        .map(|broken| Violation {
            checker: NAME,
            detail: broken.clone(),
        })
        .collect()
}
