//! Hinted handoff finishes: once the cluster has healed and settled, no
//! node still holds a hint (every one was delivered, or dropped by its
//! bounds, which no run reaches).

use super::Violation;
use crate::world::RunResult;

/// This checker's name.
pub const NAME: &str = "no hints pending after healing";

/// Runs the check.
pub fn check(run: &RunResult) -> Vec<Violation> {
    run.hints_left
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(node, count)| Violation {
            checker: NAME,
            detail: format!("node {node} still holds {count} hints"),
        })
        .collect()
}
