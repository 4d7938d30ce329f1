//! The core's invariants across subsystems, checked as a whole: by the
//! behaviour fuzzer after every step and by tests. Each subsystem keeps
//! its own with asserts where it changes state; these are the ones that
//! tie two pieces of state together, which a bug elsewhere could break.

use super::Node;
use super::digest_tree::{Summary, each_indexed};
use super::store::Store;

impl<S: Store> Node<S> {
    /// Checks the invariants that span the node's subsystems; the first
    /// one broken is described. Costs a walk of the digest index: for
    /// tests, the simulator and fuzzing, not for production.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.requests.check()?;
        self.local.check()?;
        self.check_batch_tags()?;
        Ok(())
    }

    /// Every batch a subsystem waits for is tagged with that subsystem,
    /// so that its acknowledgement reaches it.
    fn check_batch_tags(&self) -> Result<(), String> {
        for batch in self.hints.batches_held() {
            self.expect_tag(batch, super::batches::BatchOwner::Hints)?;
        }
        for batch in self.cleanup.batches_held() {
            self.expect_tag(batch, super::batches::BatchOwner::Cleanup)?;
        }
        for batch in self.topology.leave_batches_held() {
            self.expect_tag(batch, super::batches::BatchOwner::Leave)?;
        }
        Ok(())
    }

    fn expect_tag(&self, batch: u64, owner: super::batches::BatchOwner) -> Result<(), String> {
        match self.batches.owner(batch) {
            Some(tagged) if tagged == owner => Ok(()),
            other => Err(format!("batch {batch} of {owner:?} is tagged {other:?}")),
        }
    }
}

impl<S: Store> super::local::LocalStore<S> {
    /// The digest tree's root (the XOR of every key's digest, and the key
    /// count) is the digest index's.
    pub(super) fn check(&self) -> Result<(), String> {
        let mut index = Summary::default();
        each_indexed(self.store(), |entry| {
            index.digest ^= entry.digest;
            index.count += 1;
        })
        .map_err(|e| format!("the digest index: {e}"))?;
        let tree = self
            .summary(0, u64::MAX)
            .map_err(|e| format!("the digest tree: {e}"))?;
        if tree != index {
            return Err(format!(
                "the digest tree's root {tree:?} is not the digest index's {index:?}"
            ));
        }
        Ok(())
    }
}
