//! Intake pacing: a node takes in pushed states (hints replayed or
//! re-homed to it, hints and keys a leaving node hands it, keys a cleanup
//! pushes) at most [`Config::intake_rate`](super::Config) a second, from
//! all senders together.
//!
//! Each holder paces its own replay, but a node that comes back may have
//! many holders: with ten of them, ten times one holder's rate would
//! arrive at once (the hint storm). So the receiving node paces too. It
//! merges each batch at once (so it is durable), and holds back the
//! acknowledgement until the batch's share of the rate has passed. Senders
//! keep only a few batches unacknowledged, so they slow down to the rate
//! between them. An acknowledgement is never held past half the request
//! timeout, so a sender does not take it for lost.

use super::Node;
use super::message::PeerMessage;
use super::store::Store;
use super::types::{NodeId, Time};
use std::collections::BTreeMap;
use std::time::Duration;

/// Acknowledgements held back, and the time the states taken in so far
/// are paid for.
#[derive(Debug, Default)]
pub(super) struct Intake {
    /// The rate allows the next states from this time on.
    paid_until: Time,
    /// Acknowledgements to send, by when and arrival order.
    held: BTreeMap<(Time, u64), (NodeId, PeerMessage)>,
    next: u64,
}

impl Intake {
    /// When the next held acknowledgement is due.
    pub(super) fn poll_timeout(&self) -> Option<Time> {
        self.held.keys().next().map(|&(at, _)| at)
    }
}

impl<S: Store> Node<S> {
    /// Sends `ack`, the answer to `states` states just taken in from `to`,
    /// once the intake rate allows them: now if the node has taken in no
    /// more than the rate lately, later otherwise.
    pub(super) fn acknowledge_intake(&mut self, now: Time, to: NodeId, states: usize, ack: PeerMessage) {
        let intake = &mut self.intake;
        let start = intake.paid_until.max(now);
        intake.paid_until =
            start + Duration::from_secs_f64(states as f64 / f64::from(self.config.intake_rate));
        let at = start.min(now + self.config.request_timeout / 2);
        if at <= now {
            self.send(to, ack);
            return;
        }
        intake.next += 1;
        intake.held.insert((at, intake.next), (to, ack));
    }

    /// Sends the held acknowledgements that are due.
    pub(super) fn release_intake(&mut self, now: Time) {
        while let Some(entry) = self.intake.held.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (to, ack) = entry.remove();
            self.send(to, ack);
        }
    }
}
