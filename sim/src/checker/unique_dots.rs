//! A dot is never issued twice, across crashes and wipes: every dot the
//! world saw (on the wire, in acknowledgements, on replicas) names one key
//! and one value only. (A node's counter runs across keys.)

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
                "dot {:?} was issued for {} = {:?} and again for {} = {:?}",
                c.dot,
                String::from_utf8_lossy(&c.first_key),
                c.first.as_deref().map(String::from_utf8_lossy),
                String::from_utf8_lossy(&c.key),
                c.second.as_deref().map(String::from_utf8_lossy)
            ),
        })
        .collect()
}
