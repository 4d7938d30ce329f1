//! The core's boundary: every peer message and client request is checked
//! here before it touches state.
//!
//! A frame that decodes is only well-typed; its contents are still the
//! peer's word. [`peer_message`] checks what the code behind it relies on:
//! keys of 1..=`max_key_bytes` bytes (the store refuses others, and the
//! storage engine asserts on them), intervals with `first <= last`, states
//! that keep [`Versioned`]'s invariants (or merging them breaks the merge
//! laws), counters that cannot overflow, and lists no longer than an
//! honest peer ever sends. An invalid message is dropped whole; the node
//! counts it by kind (`Node::invalid_messages`) and hands the reason to its
//! driver, which logs it with the peer. Once a message passed, nothing
//! behind it may panic on its contents: what is left are asserts on the
//! core's own invariants.
//!
//! Client requests (and forwarded ones) are checked on admission by the
//! coordinator, which answers the fault: key and value size, consistency,
//! and the causal context's counters.
//!
//! Honest peers never send an invalid message (the simulator fails a run
//! in which one is refused), so the checks change nothing for them.

use super::anti_entropy::{KEYS_THRESHOLD, MAX_INTERVALS};
use super::config::{Config, MAX_REPLICATION};
use super::coordinator::list::SCAN_FACTOR;
use super::membership::MemberState;
use super::message::{AeInterval, MAX_LIST_LIMIT, PeerMessage};
use super::message::{KeyDigest, KeyState, Placement, StreamCursor};
use super::store::Hint;
use super::types::NodeId;
use super::version::{MAX_COUNTER, MalformedState, Versioned};

/// Most states, keys or hints in one batch message: what the largest
/// batch settings (`anti_entropy_max_states`, `hint_batch`, both at most
/// 65,536) let an honest peer send.
pub const MAX_BATCH_ITEMS: usize = 65_536;

/// Most member states in one message.
pub const MAX_MEMBERS: usize = 65_536;

/// Most nodes a hint records as written to: every current and future
/// replica of its key and their stand-ins.
pub const MAX_WRITTEN_TO: usize = 4 * MAX_REPLICATION;

/// What is wrong with a message. Nothing changed; the sender sent junk.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// A key is empty or longer than `max_key_bytes`.
    #[error("a key of {size} bytes is outside 1..={max}")]
    KeySize {
        /// The key's length.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An interval of ring positions ends before it starts.
    #[error("the interval {first}..={last} ends before it starts")]
    ReversedInterval {
        /// First position.
        first: u64,
        /// Last position.
        last: u64,
    },
    /// A list is longer than any honest peer sends.
    #[error("{count} {what} in one message, more than the {max} allowed")]
    TooMany {
        /// What the list holds.
        what: &'static str,
        /// Its length.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A key's state breaks the invariants states keep.
    #[error("malformed state: {0}")]
    State(#[from] MalformedState),
    /// A list that must be in strictly ascending key order is not.
    #[error("{what} out of key order")]
    Unordered {
        /// What the list holds.
        what: &'static str,
    },
    /// A member state's generation or version could overflow.
    #[error("a member state's generation or version of {value} is above {MAX_COUNTER}")]
    MemberCounter {
        /// The value found.
        value: u64,
    },
}

/// Checks a decoded peer message; see the module doc.
pub fn peer_message(message: &PeerMessage, config: &Config) -> Result<(), Invalid> {
    let keys = KeyCheck(config.max_key_bytes);
    match message {
        PeerMessage::ReplicaGet { key, placement, .. } => {
            keys.key(key)?;
            check_placement(placement.as_ref())
        }
        PeerMessage::ReplicaGetReply { result, .. } => match result {
            Ok(object) => Ok(object.check()?),
            Err(_) => Ok(()),
        },
        PeerMessage::ReplicaList {
            start, end, limit, ..
        } => {
            // A bound may be one byte longer than a key (the key after one).
            let bounds = KeyCheck(config.max_key_bytes + 1);
            bounds.bound(start)?;
            if let Some(end) = end {
                bounds.bound(end)?;
            }
            at_most("listed keys", *limit as usize, MAX_LIST_LIMIT as usize)
        }
        PeerMessage::ReplicaListReply { result, .. } => match result {
            Ok(listed) => {
                let most = SCAN_FACTOR * MAX_LIST_LIMIT as usize;
                at_most("listed states", listed.states.len(), most)?;
                keys.states(&listed.states)?;
                let ascending = listed.states.windows(2).all(|w| w[0].key < w[1].key);
                if ascending {
                    Ok(())
                } else {
                    Err(Invalid::Unordered {
                        what: "listed states",
                    })
                }
            }
            Err(_) => Ok(()),
        },
        PeerMessage::ReplicaPut {
            key,
            object,
            placement,
            ..
        } => keys.placed_state(key, object, placement.as_ref(), &[]),
        PeerMessage::HintedPut {
            key,
            object,
            placement,
            written_to,
            ..
        } => keys.placed_state(key, object, placement.as_ref(), written_to),
        // A forwarded request is checked as any client request is, on
        // admission, and the forwarder is answered with the fault.
        PeerMessage::WatchStart { key, context, .. } => {
            keys.key(key)?;
            Ok(context.version_vector().check()?)
        }
        PeerMessage::WatchReply { result, .. } => match result {
            Ok(object) => Ok(object.check()?),
            Err(_) => Ok(()),
        },
        PeerMessage::WatchCancel { .. }
        | PeerMessage::Forward { .. }
        | PeerMessage::ForwardReply { .. }
        | PeerMessage::ReplicaPutReply { .. }
        | PeerMessage::PushAck { .. } => Ok(()),
        PeerMessage::AeSummaries { intervals } => check_intervals(intervals),
        PeerMessage::AeKeys { first, last, entries } => {
            interval(*first, *last)?;
            at_most("keys", entries.len(), 4 * KEYS_THRESHOLD as usize)?;
            keys.entries(entries)
        }
        PeerMessage::AeStates { states, want } => {
            keys.states(states)?;
            at_most("wanted keys", want.len(), MAX_BATCH_ITEMS)?;
            want.iter().try_for_each(|k| keys.key(k))
        }
        PeerMessage::Push { states, .. } => keys.states(states),
        PeerMessage::HandOffHints { hints, .. } => keys.hints(hints),
        PeerMessage::StreamRequest {
            first, last, after, ..
        } => {
            interval(*first, *last)?;
            keys.cursor(after.as_ref())
        }
        PeerMessage::StreamBatch { states, next, .. } => {
            keys.states(states)?;
            keys.cursor(next.as_ref())
        }
        PeerMessage::GcCheck { keys: entries } | PeerMessage::GcRemove { keys: entries } => {
            at_most("keys", entries.len(), MAX_BATCH_ITEMS)?;
            keys.entries(entries)
        }
        PeerMessage::GcConfirm { keys: confirmed } => {
            at_most("keys", confirmed.len(), MAX_BATCH_ITEMS)?;
            confirmed.iter().try_for_each(|k| keys.key(k))
        }
        PeerMessage::MemberStates { states, .. } => member_states(states),
    }
}

/// The key bound of the checking node.
struct KeyCheck(usize);

impl KeyCheck {
    /// A replica write's key, state, the nodes it says the write went to
    /// (hinted writes) and its placement.
    fn placed_state(
        &self,
        key: &[u8],
        object: &Versioned,
        placement: Option<&Placement>,
        written_to: &[NodeId],
    ) -> Result<(), Invalid> {
        self.key(key)?;
        object.check()?;
        at_most("written_to nodes", written_to.len(), MAX_WRITTEN_TO)?;
        check_placement(placement)
    }

    fn key(&self, key: &[u8]) -> Result<(), Invalid> {
        if key.is_empty() || key.len() > self.0 {
            return Err(Invalid::KeySize {
                size: key.len(),
                max: self.0,
            });
        }
        Ok(())
    }

    /// A listing's bound: may be empty (the start of the keyspace).
    fn bound(&self, bound: &[u8]) -> Result<(), Invalid> {
        if bound.len() > self.0 {
            return Err(Invalid::KeySize {
                size: bound.len(),
                max: self.0,
            });
        }
        Ok(())
    }

    fn states(&self, states: &[KeyState]) -> Result<(), Invalid> {
        at_most("states", states.len(), MAX_BATCH_ITEMS)?;
        states.iter().try_for_each(|s| {
            self.key(&s.key)?;
            Ok(s.object.check()?)
        })
    }

    fn entries(&self, entries: &[KeyDigest]) -> Result<(), Invalid> {
        entries.iter().try_for_each(|e| self.key(&e.key))
    }

    fn hints(&self, hints: &[Hint]) -> Result<(), Invalid> {
        at_most("hints", hints.len(), MAX_BATCH_ITEMS)?;
        hints.iter().try_for_each(|h| {
            self.key(&h.key)?;
            h.object.check()?;
            at_most("written_to nodes", h.written_to.len(), MAX_WRITTEN_TO)
        })
    }

    fn cursor(&self, cursor: Option<&StreamCursor>) -> Result<(), Invalid> {
        cursor.map_or(Ok(()), |c| self.key(&c.key))
    }
}

fn interval(first: u64, last: u64) -> Result<(), Invalid> {
    if first > last {
        return Err(Invalid::ReversedInterval { first, last });
    }
    Ok(())
}

fn check_intervals(intervals: &[AeInterval]) -> Result<(), Invalid> {
    at_most("intervals", intervals.len(), MAX_INTERVALS)?;
    intervals.iter().try_for_each(|i| interval(i.first, i.last))
}

/// A placement names at most N current and N future replicas (N is at
/// most [`MAX_REPLICATION`]); comparing longer lists would cost quadratic
/// time.
fn check_placement(placement: Option<&Placement>) -> Result<(), Invalid> {
    let Some(placement) = placement else {
        return Ok(());
    };
    at_most("current replicas", placement.current.len(), MAX_REPLICATION)?;
    at_most(
        "future replicas",
        placement.future.as_ref().map_or(0, Vec::len),
        MAX_REPLICATION,
    )
}

fn member_states(states: &[MemberState]) -> Result<(), Invalid> {
    at_most("member states", states.len(), MAX_MEMBERS)?;
    match states
        .iter()
        .flat_map(|s| [s.generation, s.version])
        .find(|&v| v > MAX_COUNTER)
    {
        Some(value) => Err(Invalid::MemberCounter { value }),
        None => Ok(()),
    }
}

fn at_most(what: &'static str, count: usize, max: usize) -> Result<(), Invalid> {
    if count > max {
        return Err(Invalid::TooMany { what, count, max });
    }
    Ok(())
}
