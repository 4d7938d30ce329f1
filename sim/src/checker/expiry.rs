//! No value is served after it expired: a read (or listing) that starts
//! once a put's time to live has passed, plus how far the nodes' clocks may
//! disagree, does not return the put's value. (That an expiry never
//! brings back what the put replaced is the resurrection checker's.)

use super::{Violation, clock_bound, describe, key_reads};
use crate::history::{Kind, Outcome};
use crate::world::RunResult;
use std::collections::BTreeMap;

/// This checker's name.
pub const NAME: &str = "expired values are not served";

/// Runs the check.
pub fn check(run: &RunResult) -> Vec<Violation> {
    let ops = &run.history.ops;
    let bound = clock_bound(run);
    // Each expiring value, by its put: the value is unique to the put.
    let expiring: BTreeMap<&[u8], usize> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match (&op.kind, &op.outcome) {
            (
                Kind::Put {
                    value,
                    ttl_ms: Some(_),
                },
                Outcome::Written { .. },
            ) => Some((value.as_slice(), i)),
            _ => None,
        })
        .collect();
    let mut violations = Vec::new();
    for key_read in key_reads(run) {
        for value in key_read.values {
            let Some(&pi) = expiring.get(value.as_slice()) else {
                continue;
            };
            let put = &ops[pi];
            // The coordinator took the write before it answered, so the
            // value expired by then plus its time to live, on its clock.
            let (Some(acked), Some(ttl)) = (put.completed, put.ttl()) else {
                continue;
            };
            if key_read.op.invoked >= acked + ttl + bound {
                violations.push(Violation {
                    checker: NAME,
                    detail: format!(
                        "{} returned {:?} of {}, expired by {:?} (time to live {ttl:?}, clocks within {bound:?})",
                        key_read.describe(),
                        String::from_utf8_lossy(value),
                        describe(pi, put),
                        acked + ttl + bound,
                    ),
                });
            }
        }
    }
    violations
}
