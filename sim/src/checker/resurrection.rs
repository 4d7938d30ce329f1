//! A deleted key never comes back: what an acknowledged delete superseded
//! (the siblings its context covered) is never read again by a strict read
//! that starts after a strict delete (nor listed by a strict listing), and
//! is on no replica after healing. The same holds for what a put with a
//! time to live superseded: its expiry must not bring it back.

use super::{Violation, describe, durable, key_reads, merged_final, wiped_replicas};
use crate::history::{Kind, Outcome};
use crate::world::{RunResult, required};
use shoal::proto::quorum::Access;
use shoal::proto::version::Dot;
use std::collections::BTreeMap;

/// This checker's name.
pub const NAME: &str = "deleted values stay deleted";

/// Runs the check.
pub fn check(run: &RunResult) -> Vec<Violation> {
    let n = run.replication;
    let ops = &run.history.ops;
    // The dot of each value an acknowledged put wrote.
    let dot_of: BTreeMap<&[u8], Dot> = ops
        .iter()
        .filter_map(|op| match (&op.kind, &op.outcome) {
            (Kind::Put { value, .. }, Outcome::Written { dot }) => Some((value.as_slice(), *dot)),
            _ => None,
        })
        .collect();
    let mut violations = Vec::new();
    let reads = key_reads(run);
    for (di, delete) in ops.iter().enumerate() {
        let (Kind::Delete | Kind::Put { ttl_ms: Some(_), .. }, Outcome::Written { .. }, Some(acked)) =
            (&delete.kind, &delete.outcome, delete.completed)
        else {
            continue;
        };
        if !durable(run, delete) {
            continue;
        }
        for sibling in merged_final(run, &delete.key).siblings() {
            if delete.context.covers(&sibling.dot) {
                violations.push(Violation {
                    checker: NAME,
                    detail: format!(
                        "{} superseded {:?}, which is back after healing",
                        describe(di, delete),
                        sibling.dot
                    ),
                });
            }
        }
        let w = required(delete.consistency, Access::Write, n);
        for key_read in &reads {
            let (read, values) = (key_read.op, key_read.values);
            let r = required(read.consistency, Access::Read, n);
            // A sloppy delete may sit on fallbacks, which reads do not ask,
            // until its hints are delivered; the final states still must
            // not hold what it superseded.
            let strict = (run.options.forced_rw.is_some() || r + w > n) && !delete.sloppy_quorum;
            // A watch answers with one replica's state: no quorum read.
            if key_read.key != delete.key
                || matches!(read.kind, crate::history::Kind::Watch { .. })
                || read.invoked <= acked
                || !strict
                || wiped_replicas(run, delete, read.completed) > 0
            {
                continue;
            }
            for value in values {
                if dot_of
                    .get(value.as_slice())
                    .is_some_and(|dot| delete.context.covers(dot))
                {
                    violations.push(Violation {
                        checker: NAME,
                        detail: format!(
                            "{} returned {:?} (acked dot {:?}, delete context {:?}), deleted by {}",
                            key_read.describe(),
                            String::from_utf8_lossy(value),
                            dot_of.get(value.as_slice()),
                            delete.context,
                            describe(di, delete)
                        ),
                    });
                }
            }
        }
    }
    violations
}
