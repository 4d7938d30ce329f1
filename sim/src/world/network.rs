//! The simulated network and the nodes' I/O: delivery of packets with
//! latency, loss, duplication and blocked links; a node's outputs held
//! until its writes are durable (group commit), then sent.

use super::{CLIENT_LATENCY, EPOCH, Event, INVARIANT_SAMPLE, Packet, RELEAVE_AFTER, World};
use crate::options::Fault;
use rand::RngExt;
use shoal::proto::{AdminResponse, Output, PeerMessage, Store, Versioned};
use std::time::Duration;

impl World {
    pub(super) fn deliver(&mut self, from: usize, to: usize, packet: Packet) {
        self.trace.update(&[from as u8, to as u8]);
        let local = self.local(to);
        let sender = self.nodes[from].id;
        let Some(node) = self.nodes[to].node.as_mut() else {
            return; // Sent to a node that is down.
        };
        match packet {
            Packet::Peer(message) => {
                if let Ok(bytes) = rmp_serde::to_vec(&message) {
                    self.trace.update(&bytes);
                }
                let kind = message.kind();
                if let Err(fault) = node.handle_peer_message(local, sender, message) {
                    self.refused_messages
                        .push(format!("{kind} from {sender} to node {to} at {local:?}: {fault}"));
                }
            }
            Packet::Gossip(data) => {
                self.trace.update(&data);
                node.handle_gossip(local, &data);
            }
        }
        self.after_input(to);
    }

    /// Collects a node's outputs; they leave only once its writes are
    /// durable (the production driver's group commit).
    pub(super) fn after_input(&mut self, i: usize) {
        let sim = &mut self.nodes[i];
        let Some(node) = sim.node.as_mut() else {
            return;
        };
        if self.events.is_multiple_of(INVARIANT_SAMPLE)
            && self.broken_invariants.len() < 10
            && let Err(broken) = node.check_invariants()
        {
            let at = self.now.saturating_since(EPOCH);
            self.broken_invariants
                .push(format!("at {at:?}, node {}: {broken}", node.id()));
        }
        while let Some(output) = node.poll_output() {
            sim.held.push(output);
        }
        if node.store().is_dirty() {
            if !sim.sync_scheduled {
                sim.sync_scheduled = true;
                let latency = Duration::from_micros(self.rng.random_range(50..500));
                self.at(latency, Event::Sync { node: i });
            }
            return;
        }
        let held = std::mem::take(&mut self.nodes[i].held);
        for output in held {
            self.dispatch(i, output);
        }
    }

    pub(super) fn sync(&mut self, i: usize) {
        self.nodes[i].sync_scheduled = false;
        if let Some(node) = self.nodes[i].node.as_mut() {
            node.store_mut().sync().expect("the simulated disk cannot fail");
            self.after_input(i);
        }
    }

    pub(super) fn dispatch(&mut self, from: usize, output: Output) {
        match output {
            Output::Send { to, message } => {
                let states: Vec<(&[u8], &Versioned)> = match &message {
                    PeerMessage::ReplicaPut { key, object, .. }
                    | PeerMessage::HintedPut { key, object, .. } => {
                        vec![(key, object)]
                    }
                    PeerMessage::Push { states, .. }
                    | PeerMessage::AeStates { states, .. }
                    | PeerMessage::StreamBatch { states, .. } => {
                        states.iter().map(|s| (s.key.as_slice(), &s.object)).collect()
                    }
                    PeerMessage::HandOffHints { hints, .. } => {
                        hints.iter().map(|h| (h.key.as_slice(), &h.object)).collect()
                    }
                    _ => Vec::new(),
                };
                for (key, object) in states {
                    for sibling in object.siblings() {
                        self.register_dot(key, sibling.dot, sibling.value.as_deref());
                    }
                }
                let to = self.by_id[&to];
                self.send(from, to, Packet::Peer(message));
            }
            Output::Gossip { to, data } => {
                if let Some(&to) = self.by_addr.get(&to) {
                    self.send(from, to, Packet::Gossip(data));
                }
            }
            Output::Reply { client, response } => {
                self.at(
                    CLIENT_LATENCY,
                    Event::Reply {
                        op: client.0 as usize,
                        response,
                    },
                );
            }
            Output::AdminReply { response, .. } => {
                // Only leaves are asked for; a finished one stops the node.
                // A node still joining is asked again later, as an
                // operator would.
                match response {
                    AdminResponse::Done => self.stop_left(from),
                    AdminResponse::Refused {
                        reason: shoal::proto::message::AdminError::StillJoining,
                    } => self.at(RELEAVE_AFTER, Event::Leave { again: Some(from) }),
                    _ => {}
                }
            }
        }
    }

    /// Puts a packet on the network, through the faults that are on.
    pub(super) fn send(&mut self, from: usize, to: usize, packet: Packet) {
        if self.blocked.contains(&(from, to)) {
            self.counts.blocked += 1;
            return;
        }
        let faults = self.faults_on;
        let rates = self.options.rates.clone();
        let on = |fault| faults && self.options.faults.has(fault);
        let (loss, duplicate) = (on(Fault::Loss), on(Fault::Duplicate));
        if loss && self.rng.random_bool(rates.loss) {
            self.counts.lost += 1;
            return;
        }
        let copies = if duplicate && self.rng.random_bool(rates.duplicate) {
            self.counts.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let latency = self.latency();
            let packet = packet.clone();
            self.at(latency, Event::Deliver { from, to, packet });
        }
    }

    pub(super) fn latency(&mut self) -> Duration {
        let rates = &self.options.rates;
        let mut micros = self.rng.random_range(200..1500);
        if self.faults_on && self.options.faults.has(Fault::Reorder) && self.rng.random_bool(rates.reorder) {
            self.counts.reordered += 1;
            micros += self.rng.random_range(0..20_000);
        }
        if self.faults_on && self.options.faults.has(Fault::Delay) && self.rng.random_bool(rates.delay) {
            self.counts.delayed += 1;
            micros += self.rng.random_range(500_000..3_000_000);
        }
        Duration::from_micros(micros)
    }
}
