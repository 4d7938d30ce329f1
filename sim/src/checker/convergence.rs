//! After healing: every request issued in the heal phase completed
//! successfully (liveness), every ring member runs (a node that left is
//! out of the ring), and within the stated time all replicas of every key
//! hold identical state (convergence).

use super::{Violation, describe};
use crate::history::{Outcome, Phase};
use crate::world::{CONVERGE, RunResult, SETTLE};

/// This checker's name.
pub const NAME: &str = "replicas converge after healing";

/// Runs the check.
pub fn check(run: &RunResult) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (index, op) in run.history.ops.iter().enumerate() {
        if op.phase == Phase::Heal && !matches!(op.outcome, Outcome::Read { .. }) {
            violations.push(Violation {
                checker: NAME,
                detail: format!(
                    "liveness: {} did not succeed {SETTLE:?} after healing",
                    describe(index, op)
                ),
            });
        }
    }
    for node in &run.stopped_replicas {
        violations.push(Violation {
            checker: NAME,
            detail: format!("{node} is a ring member after healing but is not running (it left or stopped)"),
        });
    }
    for (key, states) in &run.final_states {
        let Some((first_node, first)) = states.first() else {
            continue;
        };
        for (node, state) in &states[1..] {
            if state != first {
                violations.push(Violation {
                    checker: NAME,
                    detail: format!(
                        "{} differs {CONVERGE:?} after the heal-phase reads: {first_node} has {:?}, {node} has {:?}",
                        String::from_utf8_lossy(key),
                        first.siblings(),
                        state.siblings()
                    ),
                });
            }
        }
    }
    violations
}
