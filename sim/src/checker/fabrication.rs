//! Every value read (or listed), every key listed, and every value left on
//! a replica, was written by a client: nothing is fabricated or corrupted.

use super::{Violation, describe, key_reads};
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
            Kind::Put { value, .. } => Some((value.as_slice(), i)),
            _ => None,
        })
        .collect();
    let mut violations = Vec::new();
    for read in key_reads(run) {
        let op = read.op;
        for value in read.values {
            let source = written.get(value.as_slice()).map(|&w| &run.history.ops[w]);
            let ok =
                source.is_some_and(|w| w.key == read.key && w.invoked <= op.completed.unwrap_or(w.invoked));
            if !ok {
                violations.push(Violation {
                    checker: NAME,
                    detail: format!(
                        "{} returned {:?}, which no client wrote to this key",
                        read.describe(),
                        String::from_utf8_lossy(value)
                    ),
                });
            }
        }
    }
    // A listing lists only keys some client wrote, in its range and order.
    for (index, op) in run.history.ops.iter().enumerate() {
        let Outcome::Listed { keys, .. } = &op.outcome else {
            continue;
        };
        let ordered = keys.windows(2).all(|w| w[0].key < w[1].key);
        let unknown = keys.iter().find(|l| {
            !l.key.starts_with(&op.key) || !written.values().any(|&w| run.history.ops[w].key == l.key)
        });
        if !ordered || unknown.is_some() {
            violations.push(Violation {
                checker: NAME,
                detail: format!(
                    "{} listed keys out of order ({}) or never written ({:?})",
                    describe(index, op),
                    !ordered,
                    unknown.map(|l| String::from_utf8_lossy(&l.key).into_owned())
                ),
            });
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
