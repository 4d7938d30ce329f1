//! A dot is never issued twice, across crashes and wipes: every dot the
//! world saw for a key (on the wire, in acknowledgements, on replicas)
//! names one value only. (A dot's counter counts per key.)

use super::Violation;
use crate::world::RunResult;

/// This checker's name.
pub const NAME: &str = "dots are unique";

/// Runs the check.
pub fn check(run: &RunResult) -> Vec<Violation> {
    run.dot_conflicts
        .iter()
        .map(|c| Violation {
            checker: NAME,
            detail: format!(
                "dot {:?} of {} was issued for {:?} and again for {:?}",
                c.dot,
                String::from_utf8_lossy(&c.key),
                c.first.as_deref().map(String::from_utf8_lossy),
                c.second.as_deref().map(String::from_utf8_lossy)
            ),
        })
        .collect()
}
