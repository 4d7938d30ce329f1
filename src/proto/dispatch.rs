//! The one dispatcher: every peer message that passed the boundary's
//! checks ([`validate`](super::validate)) goes to the subsystem that owns
//! it. Nothing here decides; each arm only unpacks a message and calls.

use super::Node;
use super::coordinator::HintedPut;
use super::message::PeerMessage;
use super::store::Store;
use super::types::{NodeId, Time};
use std::sync::Arc;

impl<S: Store> Node<S> {
    /// Routes a checked peer message: the request path here, the rest to
    /// [`Node::on_background_message`].
    pub(super) fn on_peer_message(&mut self, now: Time, from: NodeId, message: PeerMessage) {
        match message {
            // The request path: replica reads and writes, forwards, hints.
            PeerMessage::ReplicaGet {
                request,
                key,
                placement,
            } => self.on_replica_get(from, request, &key, placement.as_ref()),
            PeerMessage::ReplicaPut {
                request,
                key,
                object,
                placement,
            } => {
                // A decoded message holds the only reference: no copy.
                let object = Arc::unwrap_or_clone(object);
                self.on_replica_put(from, request, &key, object, placement.as_ref())
            }
            PeerMessage::ReplicaGetReply { request, result } => {
                self.on_replica_get_reply(now, from, request, result)
            }
            PeerMessage::ReplicaPutReply { request, result } => {
                self.on_replica_put_reply(now, from, request, result)
            }
            PeerMessage::ReplicaList {
                request,
                start,
                end,
                limit,
            } => self.on_replica_list(from, request, &start, end.as_deref(), limit),
            PeerMessage::ReplicaListReply { request, result } => {
                self.on_replica_list_reply(now, from, request, result)
            }
            PeerMessage::Forward { request, client } => self.on_forward(now, from, request, client),
            PeerMessage::ForwardReply { request, response } => {
                self.on_forward_reply(now, from, request, response)
            }
            PeerMessage::HintedPut {
                request,
                key,
                object,
                target,
                placement,
                written_to,
            } => {
                let put = HintedPut {
                    key,
                    object: Arc::unwrap_or_clone(object),
                    target,
                    placement,
                    written_to,
                };
                self.on_hinted_put(now, from, request, put)
            }
            PeerMessage::WatchStart {
                watch,
                key,
                context,
                timeout_ms,
            } => self.on_watch_start(now, from, watch, &key, &context, timeout_ms),
            PeerMessage::WatchReply { watch, result } => self.on_watch_reply(now, from, watch, result),
            PeerMessage::WatchCancel { watch } => self.on_watch_cancel(from, watch),
            other => self.on_background_message(now, from, other),
        }
    }

    /// Routes the messages of background work: pushes, join streams,
    /// tombstone collection, member states and anti-entropy.
    fn on_background_message(&mut self, now: Time, from: NodeId, message: PeerMessage) {
        match message {
            // Pushed states: hints replayed, keys handed off or cleaned up.
            PeerMessage::Push { batch, states } => self.on_push(now, from, batch, states),
            PeerMessage::HandOffHints {
                batch,
                target,
                hints,
                sent_ms,
            } => self.on_hand_off_hints(now, from, batch, target, hints, sent_ms),
            PeerMessage::PushAck { batch, result } => self.on_push_ack(now, from, batch, result),
            // Topology: join streams.
            PeerMessage::StreamRequest {
                stream,
                first,
                last,
                after,
            } => self.on_stream_request(from, stream, first, last, after),
            PeerMessage::StreamBatch { stream, states, next } => {
                self.on_stream_batch(now, from, stream, states, next)
            }
            // Tombstone collection.
            PeerMessage::GcCheck { keys } => self.on_gc_check(now, from, keys),
            PeerMessage::GcConfirm { keys } => self.on_gc_confirm(now, from, keys),
            PeerMessage::GcRemove { keys } => self.on_gc_remove(now, keys),
            // Membership.
            PeerMessage::MemberStates {
                states,
                ready,
                answer,
            } => self.on_member_states(from, &states, ready, answer),
            // Anti-entropy.
            PeerMessage::AeSummaries { intervals } => self.on_ae_summaries(from, intervals),
            PeerMessage::AeKeys { first, last, entries } => self.on_ae_keys(from, first, last, entries),
            PeerMessage::AeStates { states, want } => self.on_ae_states(from, states, want),
            PeerMessage::ReplicaGet { .. }
            | PeerMessage::ReplicaPut { .. }
            | PeerMessage::ReplicaGetReply { .. }
            | PeerMessage::ReplicaPutReply { .. }
            | PeerMessage::ReplicaList { .. }
            | PeerMessage::ReplicaListReply { .. }
            | PeerMessage::Forward { .. }
            | PeerMessage::ForwardReply { .. }
            | PeerMessage::HintedPut { .. }
            | PeerMessage::WatchStart { .. }
            | PeerMessage::WatchReply { .. }
            | PeerMessage::WatchCancel { .. } => unreachable!("routed by on_peer_message"),
        }
    }
}
