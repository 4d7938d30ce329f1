//! Every value read, and every value left on a replica, was written by a
//! client: nothing is fabricated or corrupted.

use super::{Violation, describe};
use crate::history::{Kind, Outcome};
use crate::world::RunResult;
use std::collections::BTreeMap;

/// This checker's name.
pub const NAME: &str = "no fabricated values";

/// Runs the check.
pub fn check(run: &RunResult) -> Vec<Violation> {
    let written: BTreeMap<&[u8], usize> = run
        .history
        .ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match &op.kind {
            Kind::Put { value } => Some((value.as_slice(), i)),
            _ => None,
        })
        .collect();
    let mut violations = Vec::new();
    for (index, op) in run.history.ops.iter().enumerate() {
        let Outcome::Read { values, .. } = &op.outcome else {
            continue;
        };
        for value in values {
            let source = written.get(value.as_slice()).map(|&w| &run.history.ops[w]);
            let ok =
                source.is_some_and(|w| w.key == op.key && w.invoked <= op.completed.unwrap_or(w.invoked));
            if !ok {
                violations.push(Violation {
                    checker: NAME,
                    detail: format!(
                        "{} returned {:?}, which no client wrote to this key",
                        describe(index, op),
                        String::from_utf8_lossy(value)
                    ),
                });
            }
        }
    }
    for (key, states) in &run.final_states {
        for (node, state) in states {
            for value in state.values().filter_map(|s| s.value.as_deref()) {
                let ok = written
                    .get(value)
                    .is_some_and(|&w| run.history.ops[w].key == *key);
                if !ok {
                    violations.push(Violation {
                        checker: NAME,
                        detail: format!(
                            "replica {node} holds {:?} under {}, never written there",
                            String::from_utf8_lossy(value),
                            String::from_utf8_lossy(key)
                        ),
                    });
                }
            }
        }
    }
    violations
}
