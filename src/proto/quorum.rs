//! Consistency levels and a pure tracker of replica answers.

use super::types::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// How many replicas must answer a request, chosen per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Consistency {
    /// One replica.
    One,
    /// Two replicas.
    Two,
    /// A majority of the N replicas: N/2 + 1.
    Quorum,
    /// All N replicas.
    All,
    /// Explicit read (`r`) and write (`w`) quorums.
    Custom {
        /// Replicas that must answer a read.
        r: u8,
        /// Replicas that must acknowledge a write.
        w: u8,
    },
    /// The coordinating node's `default_consistency` setting (QUORUM
    /// unless the operator set another).
    Default,
}

/// Whether a request reads or writes; picks `r` or `w` of a consistency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Access {
    /// A get.
    Read,
    /// A put or delete.
    Write,
}

/// A consistency level asks for more replicas than a key has, or for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("consistency {consistency} needs {required} replicas but keys have {replication}")]
pub struct ImpossibleConsistency {
    /// What the request asked for.
    pub consistency: Consistency,
    /// Replicas it needs.
    pub required: usize,
    /// N.
    pub replication: usize,
}

impl Consistency {
    /// The number of replicas that must answer `access` when keys live on
    /// `replication` nodes.
    pub fn required(self, access: Access, replication: usize) -> Result<usize, ImpossibleConsistency> {
        let required = match (self, access) {
            (Consistency::One, _) => 1,
            (Consistency::Two, _) => 2,
            (Consistency::Quorum, _) => replication / 2 + 1,
            (Consistency::All, _) => replication,
            (Consistency::Custom { r, .. }, Access::Read) => usize::from(r),
            (Consistency::Custom { w, .. }, Access::Write) => usize::from(w),
            // Resolved by the coordinator first ([`Consistency::or`]);
            // unresolved, it means QUORUM.
            (Consistency::Default, _) => replication / 2 + 1,
        };
        if required == 0 || required > replication {
            return Err(ImpossibleConsistency {
                consistency: self,
                required,
                replication,
            });
        }
        Ok(required)
    }
}

impl Consistency {
    /// This level, or `default` if this is [`Consistency::Default`].
    pub fn or(self, default: Consistency) -> Consistency {
        match self {
            Consistency::Default => default,
            level => level,
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment, as in `{:>6}`.
        match self {
            Consistency::One => f.pad("one"),
            Consistency::Two => f.pad("two"),
            Consistency::Quorum => f.pad("quorum"),
            Consistency::All => f.pad("all"),
            Consistency::Custom { r, w } => f.pad(&format!("{r},{w}")),
            Consistency::Default => f.pad("default"),
        }
    }
}

/// Parses `one`, `two`, `quorum`, `all`, `R,W` (e.g. `2,1`) or `default`.
impl std::str::FromStr for Consistency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "one" => Ok(Consistency::One),
            "two" => Ok(Consistency::Two),
            "quorum" => Ok(Consistency::Quorum),
            "all" => Ok(Consistency::All),
            "default" => Ok(Consistency::Default),
            other => {
                let parse = |p: &str| p.trim().parse::<u8>().ok();
                match other.split_once(',').map(|(r, w)| (parse(r), parse(w))) {
                    Some((Some(r), Some(w))) => Ok(Consistency::Custom { r, w }),
                    _ => Err(format!(
                        "unknown consistency `{s}`: use one, two, quorum, all, R,W such as 2,1, or default"
                    )),
                }
            }
        }
    }
}

/// Tracks which of a request's replicas answered, well or badly.
///
/// While a join or leave moves ranges, a key has two replica sets: its
/// current one and the one it will have. A [joint](QuorumTracker::joint)
/// tracker needs the quorum in each, so that a read or write agrees with
/// every coordinator whichever of the two rings it still uses.
#[derive(Clone, Debug)]
pub struct QuorumTracker {
    required: usize,
    /// Every node asked: the current replicas, then the future ones that
    /// are not current.
    replicas: Vec<NodeId>,
    /// Sets that must each reach their count of successes.
    groups: Vec<(Vec<NodeId>, usize)>,
    succeeded: BTreeSet<NodeId>,
    failed: BTreeSet<NodeId>,
}

impl QuorumTracker {
    /// A tracker needing `required` successes among `replicas`.
    pub fn new(required: usize, replicas: Vec<NodeId>) -> QuorumTracker {
        QuorumTracker {
            required,
            groups: vec![(replicas.clone(), required)],
            replicas,
            succeeded: BTreeSet::new(),
            failed: BTreeSet::new(),
        }
    }

    /// A tracker needing `required` successes among `current` and as many
    /// among `future` (or all of `future`, if it has fewer nodes: the ring
    /// will be smaller than N).
    pub fn joint(required: usize, current: Vec<NodeId>, future: Vec<NodeId>) -> QuorumTracker {
        let mut replicas = current.clone();
        replicas.extend(future.iter().filter(|n| !current.contains(n)));
        let future_required = required.min(future.len());
        QuorumTracker {
            required,
            replicas,
            groups: vec![(current, required), (future, future_required)],
            succeeded: BTreeSet::new(),
            failed: BTreeSet::new(),
        }
    }

    /// Records a success; answers from non-replicas and repeats are ignored.
    pub fn succeed(&mut self, node: NodeId) {
        if self.replicas.contains(&node) && !self.failed.contains(&node) {
            self.succeeded.insert(node);
        }
    }

    /// Records a failure; a replica that already succeeded stays succeeded.
    pub fn fail(&mut self, node: NodeId) {
        if self.replicas.contains(&node) && !self.succeeded.contains(&node) {
            self.failed.insert(node);
        }
    }

    /// Whether enough replicas succeeded (in every set).
    pub fn is_met(&self) -> bool {
        self.groups.iter().all(|(members, required)| {
            members.iter().filter(|n| self.succeeded.contains(n)).count() >= *required
        })
    }

    /// Whether so many failed that the quorum can no longer be met (in
    /// some set).
    pub fn is_lost(&self) -> bool {
        self.groups.iter().any(|(members, required)| {
            members.len() - members.iter().filter(|n| self.failed.contains(n)).count() < *required
        })
    }

    /// Whether every replica answered.
    pub fn is_complete(&self) -> bool {
        self.succeeded.len() + self.failed.len() == self.replicas.len()
    }

    /// Whether `node` answered, well or badly (a replica known to be down
    /// counts as failed).
    pub fn has_answered(&self, node: NodeId) -> bool {
        self.succeeded.contains(&node) || self.failed.contains(&node)
    }

    /// Whether `node` succeeded.
    pub fn has_succeeded(&self, node: NodeId) -> bool {
        self.succeeded.contains(&node)
    }

    /// Successes so far.
    pub fn succeeded(&self) -> usize {
        self.succeeded.len()
    }

    /// Successes needed.
    pub fn required(&self) -> usize {
        self.required
    }

    /// The replicas asked.
    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_replica_counts() {
        let n = 3;
        assert_eq!(Consistency::One.required(Access::Read, n), Ok(1));
        assert_eq!(Consistency::Two.required(Access::Write, n), Ok(2));
        assert_eq!(Consistency::Quorum.required(Access::Read, 5), Ok(3));
        assert_eq!(Consistency::All.required(Access::Write, n), Ok(3));
        let custom = Consistency::Custom { r: 1, w: 3 };
        assert_eq!(custom.required(Access::Read, n), Ok(1));
        assert_eq!(custom.required(Access::Write, n), Ok(3));
    }

    #[test]
    fn impossible_levels_are_refused() {
        assert!(Consistency::Two.required(Access::Read, 1).is_err());
        assert!(
            Consistency::Custom { r: 0, w: 1 }
                .required(Access::Read, 3)
                .is_err()
        );
        assert!(
            Consistency::Custom { r: 1, w: 4 }
                .required(Access::Write, 3)
                .is_err()
        );
    }

    #[test]
    fn consistency_parses_names_and_pairs() {
        assert_eq!("QUORUM".parse(), Ok(Consistency::Quorum));
        assert_eq!("2,1".parse(), Ok(Consistency::Custom { r: 2, w: 1 }));
        assert!("most".parse::<Consistency>().is_err());
        for c in [
            Consistency::One,
            Consistency::All,
            Consistency::Custom { r: 3, w: 2 },
        ] {
            assert_eq!(c.to_string().parse(), Ok(c));
        }
    }

    #[test]
    fn consistency_display_honours_width() {
        let shown = format!(
            "{:>6}|{:<4}|",
            Consistency::All,
            Consistency::Custom { r: 2, w: 1 }
        );
        assert_eq!(shown, "   all|2,1 |");
    }

    #[test]
    fn tracker_counts_distinct_replicas_only() {
        let (a, b, c, x) = (NodeId(1), NodeId(2), NodeId(3), NodeId(9));
        let mut t = QuorumTracker::new(2, vec![a, b, c]);
        t.succeed(a);
        t.succeed(a);
        t.succeed(x);
        assert!(!t.is_met());
        t.fail(b);
        assert!(!t.is_lost());
        t.fail(c);
        assert!(t.is_lost() && t.is_complete());
        let mut t = QuorumTracker::new(2, vec![a, b, c]);
        t.succeed(a);
        t.succeed(c);
        assert!(t.is_met() && !t.is_complete());
    }

    #[test]
    fn a_joint_tracker_needs_the_quorum_in_the_current_and_the_future_set() {
        // Range moves from c to d: current {a, b, c}, future {d, a, b}.
        let (a, b, c, d) = (NodeId(1), NodeId(2), NodeId(3), NodeId(4));
        let mut t = QuorumTracker::joint(2, vec![a, b, c], vec![d, a, b]);
        assert_eq!(t.replicas(), &[a, b, c, d]);
        t.succeed(c);
        t.succeed(a);
        assert!(!t.is_met(), "two current replicas, but one future one");
        t.succeed(d);
        assert!(t.is_met());
        // Losing b and d leaves the future set one short.
        let mut t = QuorumTracker::joint(2, vec![a, b, c], vec![d, a, b]);
        t.fail(b);
        assert!(!t.is_lost());
        t.fail(d);
        assert!(t.is_lost() && !t.is_complete());
        // A future ring smaller than N needs all of its nodes, no more.
        let mut t = QuorumTracker::joint(3, vec![a, b, c], vec![a, b]);
        for n in [a, b, c] {
            t.succeed(n);
        }
        assert!(t.is_met());
    }
}
