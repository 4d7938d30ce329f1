//! The core's boundary refuses only junk: no message an honest node sent
//! during the run was dropped as invalid. (A check that refused an honest
//! message would silently stall repair, or fail requests, for good.)

use super::Violation;
use crate::world::RunResult;

/// This checker's name.
pub const NAME: &str = "no honest peer message refused as invalid";

/// Runs the check.
pub fn check(run: &RunResult) -> Vec<Violation> {
    run.refused_messages
        .iter()
        .map(|refused| Violation {
            checker: NAME,
            detail: refused.clone(),
        })
        .collect()
}
