//! Faults: when each fault class strikes (partitions, one-way links,
//! crashes, wipes, full disks, a join and a leave), what it does to a
//! node, and healing them all before the final checks.

use super::{EPOCH, Event, RELEAVE_AFTER, SETTLE, World};
use crate::disk::SimStore;
use crate::options::Fault;
use rand::RngExt;
use shoal::proto::{AdminRequest, ClientId};
use std::time::Duration;

impl World {
    /// Draws the run's partitions and crashes up front.
    pub(super) fn schedule_faults(&mut self) {
        let rates = self.options.rates.clone();
        let n = self.nodes.len();
        let partition_max = rates.partition_max.as_millis() as u64;
        let length =
            move |world: &mut World| Duration::from_millis(world.rng.random_range(500..=partition_max));
        self.schedule_every(Fault::Partition, rates.partition_every, |w| {
            let side: Vec<bool> = (0..n).map(|_| w.rng.random_bool(0.5)).collect();
            let pairs = (0..n)
                .flat_map(|a| (0..n).map(move |b| (a, b)))
                .filter(|&(a, b)| side[a] != side[b])
                .collect();
            Event::Block {
                pairs,
                length: length(w),
            }
        });
        self.schedule_every(Fault::OneWay, rates.partition_every, |w| {
            let a = w.rng.random_range(0..n);
            let b = (a + w.rng.random_range(1..n)) % n;
            Event::Block {
                pairs: vec![(a, b)],
                length: length(w),
            }
        });
        self.schedule_membership_changes();
        self.schedule_every(Fault::DiskFull, rates.crash_every, |w| Event::DiskFull {
            node: w.rng.random_range(0..n),
            length: Duration::from_millis(w.rng.random_range(1_000..=20_000)),
        });
        let downtime = rates.downtime_max;
        for (fault, wipe) in [(Fault::Crash, false), (Fault::Wipe, true)] {
            self.schedule_every(fault, rates.crash_every, |w| Event::Crash {
                node: w.rng.random_range(0..n),
                wipe,
                downtime: Duration::from_millis(w.rng.random_range(200..=downtime.as_millis() as u64)),
            });
        }
    }

    /// Schedules `fault`, if enabled, at random gaps averaging `every`
    /// (at least a second) through the run; `make` draws each event.
    fn schedule_every(&mut self, fault: Fault, every: Duration, mut make: impl FnMut(&mut World) -> Event) {
        if !self.options.faults.has(fault) {
            return;
        }
        let mut at = Duration::ZERO;
        loop {
            let gap = self.rng.random_range(0.0..2.0) * every.as_secs_f64();
            at += Duration::from_secs_f64(gap.max(1.0));
            if at >= self.options.duration {
                break;
            }
            let event = make(self);
            self.sequence += 1;
            self.queue.insert((EPOCH + at, self.sequence), event);
        }
    }

    /// Schedules the run's join and leave, if enabled: one of each.
    fn schedule_membership_changes(&mut self) {
        let duration = self.options.duration;
        if self.options.faults.has(Fault::Join) {
            let at = duration.mul_f64(self.rng.random_range(0.1..0.6));
            let node = self.options.nodes;
            self.sequence += 1;
            self.queue
                .insert((EPOCH + at, self.sequence), Event::Join { node });
        }
        if self.options.faults.has(Fault::Leave) {
            let at = duration.mul_f64(self.rng.random_range(0.3..0.8));
            self.sequence += 1;
            self.queue
                .insert((EPOCH + at, self.sequence), Event::Leave { again: None });
        }
    }

    /// Asks a random running node (or `again` that node) to leave the
    /// cluster.
    pub(super) fn start_leave(&mut self, again: Option<usize>) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].node.is_some())
            .collect();
        if running.len() <= 1 || !self.faults_on {
            return;
        }
        let i = match again {
            Some(i) if running.contains(&i) && self.leave_asked == Some(i) => i,
            Some(_) => return,
            None => running[self.rng.random_range(0..running.len())],
        };
        self.leave_asked = Some(i);
        self.disturbed(self.options.duration);
        self.trace.update(&[0xfe, i as u8]);
        let local = self.local(i);
        if let Some(node) = self.nodes[i].node.as_mut() {
            node.handle_admin_request(local, ClientId(u64::MAX), AdminRequest::Leave);
            self.after_input(i);
        }
        if again.is_none() {
            // An operator whose first request went unanswered asks again
            // while the node may still be leaving.
            self.at(RELEAVE_AFTER, Event::Leave { again: Some(i) });
        }
    }

    /// A node finished leaving: it stops for good.
    pub(super) fn stop_left(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].node.take() {
            self.repairs.add(&node.stats());
            self.nodes[i].parked = Some(node.into_store());
            self.nodes[i].left = true;
            self.counts.leaves += 1;
            self.leave_asked = None;
        }
    }

    pub(super) fn crash(&mut self, i: usize, wipe: bool, downtime: Duration) {
        if !self.faults_on {
            return;
        }
        let Some(node) = self.nodes[i].node.take() else {
            return; // Already down.
        };
        self.repairs.add(&node.stats());
        self.disturbed(downtime);
        let mut store = node.into_store();
        store.crash();
        self.counts.crashes += 1;
        if wipe {
            self.counts.wipes += 1;
            self.wipes.push((self.now, self.nodes[i].id));
            store = SimStore::default();
        }
        self.nodes[i].parked = Some(store);
        self.nodes[i].held.clear();
        self.nodes[i].sync_scheduled = false;
        self.at(downtime, Event::Restart { node: i });
    }

    /// Fills node `i`'s disk, running or parked, or gives it room again.
    pub(super) fn set_disk_full(&mut self, i: usize, full: bool) {
        let slot = &mut self.nodes[i];
        match (slot.node.as_mut(), slot.parked.as_mut()) {
            (Some(node), _) => node.store_mut().set_full(full),
            (None, Some(store)) => store.set_full(full),
            (None, None) => {}
        }
    }

    pub(super) fn heal(&mut self) {
        self.faults_on = false;
        self.blocked.clear();
        for i in 0..self.nodes.len() {
            self.set_disk_full(i, false);
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].node.is_none() && !self.nodes[i].left {
                let seeds = self.seeds_for(i);
                self.boot(i, &seeds);
            }
        }
        for key in 0..self.options.keys {
            self.at(
                SETTLE + Duration::from_millis(key as u64 * 10),
                Event::HealRead { key },
            );
        }
    }
}
