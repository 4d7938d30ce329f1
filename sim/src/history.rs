//! Every client operation: what was asked, when, and what came back.

use shoal::proto::version::{Dot, VersionVector};
use shoal::proto::{Consistency, Time};
use std::time::Duration;

/// Which phase an operation belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Faults are on.
    Fault,
    /// Faults are healed; every request must complete.
    Heal,
}

/// What the client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A read.
    Get,
    /// A write of a value unique to this operation.
    Put {
        /// The value.
        value: Vec<u8>,
        /// Its time to live in milliseconds, if it expires.
        ttl_ms: Option<u64>,
    },
    /// A delete.
    Delete,
    /// A listing of every key (the op's key is the listed prefix).
    List,
    /// A watch of the key from the op's context, for this long.
    Watch {
        /// Its timeout in milliseconds.
        timeout_ms: u32,
    },
}

/// How it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not finished yet.
    Pending,
    /// A read's values and context.
    Read {
        /// The values returned.
        values: Vec<Vec<u8>>,
        /// The context returned.
        context: VersionVector,
    },
    /// A listing page: each listed key's values and context, and where
    /// the page ended (`None`: it covered the whole range).
    Listed {
        /// The listed keys.
        keys: Vec<Listed>,
        /// The last key the page covers, if not the whole range.
        next: Option<Vec<u8>>,
    },
    /// A write's dot and the coordinator's context after it.
    Written {
        /// Its dot.
        dot: Dot,
    },
    /// The cluster answered with an error (the write may still have been
    /// applied somewhere).
    Failed {
        /// The error.
        error: String,
    },
    /// No answer before the client gave up (the write may have been applied).
    TimedOut,
    /// A watch's timeout passed with no change reported.
    Unchanged,
}

/// A key a listing returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The key.
    pub key: Vec<u8>,
    /// Its values.
    pub values: Vec<Vec<u8>>,
    /// Its context.
    pub context: VersionVector,
}

/// One operation.
#[derive(Clone, Debug)]
pub struct Op {
    /// Which client.
    pub client: usize,
    /// Its key.
    pub key: Vec<u8>,
    /// What it asked.
    pub kind: Kind,
    /// At which level.
    pub consistency: Consistency,
    /// The context a write or watch carried (empty for reads).
    pub context: VersionVector,
    /// Whether a write allowed a sloppy quorum (fallbacks count toward W).
    pub sloppy_quorum: bool,
    /// Which phase.
    pub phase: Phase,
    /// Global simulated time of invocation.
    pub invoked: Time,
    /// Global simulated time of completion.
    pub completed: Option<Time>,
    /// How it ended.
    pub outcome: Outcome,
}

impl Op {
    /// Whether this is a write (put or delete).
    pub fn is_write(&self) -> bool {
        matches!(self.kind, Kind::Put { .. } | Kind::Delete)
    }

    /// The time to live of a put that expires.
    pub fn ttl(&self) -> Option<Duration> {
        match self.kind {
            Kind::Put { ttl_ms, .. } => ttl_ms.map(Duration::from_millis),
            _ => None,
        }
    }

    /// The acknowledged write's dot.
    pub fn written_dot(&self) -> Option<Dot> {
        match self.outcome {
            Outcome::Written { dot } => Some(dot),
            _ => None,
        }
    }
}

/// All operations of a run, in invocation order.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The operations; an operation's index is its id.
    pub ops: Vec<Op>,
}
