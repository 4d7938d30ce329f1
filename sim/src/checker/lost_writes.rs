//! No acknowledged write is lost: after healing, each one is still a
//! sibling of its key (with its own value) or was superseded by a write
//! whose context covered it. Concurrent acknowledged writes therefore both
//! survive, as siblings.

use super::{Violation, describe, durable, merged_final};
use crate::history::{Kind, Outcome};
use crate::world::RunResult;

/// This checker's name.
pub const NAME: &str = "no acknowledged write lost";

/// Runs the check.
pub fn check(run: &RunResult) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (index, op) in run.history.ops.iter().enumerate() {
        let Outcome::Written { dot } = op.outcome else {
            continue;
        };
        // An expiring value may be collected once it expired.
        if !durable(run, op) || op.ttl().is_some() {
            continue;
        }
        let merged = merged_final(run, &op.key);
        let expected = match &op.kind {
            Kind::Put { value, .. } => Some(value.clone()),
            _ => None,
        };
        match merged.siblings().iter().find(|s| s.dot == dot) {
            Some(sibling) if sibling.value.as_deref() == expected.as_deref() => {}
            Some(sibling) => violations.push(Violation {
                checker: NAME,
                detail: format!(
                    "{}: its dot {dot:?} now holds another value {:?}",
                    describe(index, op),
                    sibling.value.as_deref().map(String::from_utf8_lossy)
                ),
            }),
            // A delete's tombstone may be collected once every replica
            // held it; whether it still hides what it deleted is the
            // resurrection checker's question.
            None if matches!(op.kind, Kind::Delete) => {}
            None => {
                let superseded = run
                    .history
                    .ops
                    .iter()
                    .any(|w| w.is_write() && w.key == op.key && w.context.covers(&dot));
                if !superseded {
                    violations.push(Violation {
                        checker: NAME,
                        detail: format!("{} is gone and no write superseded it", describe(index, op)),
                    });
                }
            }
        }
    }
    violations
}
