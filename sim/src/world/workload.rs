//! The workload: clients that start once the cluster formed, pick keys,
//! operations and consistency levels, submit them to a node, and record
//! every invocation and outcome in the history the checkers read.

use super::{CLIENT_LATENCY, DotConflict, Event, World};
use crate::history::{Kind, Listed, Op, Outcome, Phase};
use rand::RngExt;
use shoal::proto::message::{ListRequest, MAX_LIST_LIMIT, prefix_end};
use shoal::proto::version::{Dot, VersionVector};
use shoal::proto::{ClientRequest, ClientResponse, Consistency, Context, Fanout, Request, WatchRequest};

/// What listings list: every key of the workload (`key0`, `key1`, ...).
pub const LISTED_PREFIX: &[u8] = b"key";
use std::time::Duration;

impl World {
    /// Starts the clients once every running node knows the whole ring (an
    /// operator waits for the cluster to form before using it); checks
    /// again every half second until then.
    pub(super) fn check_formed(&mut self) {
        let n = self.options.nodes;
        let formed = self
            .nodes
            .iter()
            .filter_map(|s| s.node.as_ref())
            .all(|node| node.is_ready() && node.ring().nodes().len() == n);
        if !formed && self.faults_on {
            self.at(Duration::from_millis(500), Event::CheckFormed);
            return;
        }
        for client in 0..self.options.clients {
            self.at(
                Duration::from_millis(client as u64 * 7),
                Event::ClientNext { client },
            );
        }
    }

    /// A node for a client request: any member of the cluster, up or down
    /// (not one that left, nor the spare before it joins).
    pub(super) fn pick_node(&mut self) -> usize {
        let members: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].left && (i < self.options.nodes || self.nodes[i].parked.is_none()))
            .collect();
        members[self.rng.random_range(0..members.len())]
    }

    pub(super) fn next_op(&mut self, client: usize) {
        if !self.faults_on
            || self
                .history
                .ops
                .iter()
                .filter(|o| o.phase == Phase::Fault)
                .count()
                >= self.options.ops
        {
            return;
        }
        let mut key = format!("key{}", self.rng.random_range(0..self.options.keys)).into_bytes();
        let op = self.history.ops.len();
        let roll = self.rng.random_range(0..100);
        let kind = match roll {
            0..35 => Kind::Get,
            35..40 => Kind::Watch {
                timeout_ms: self.rng.random_range(1_000..=20_000),
            },
            40..45 => Kind::List,
            45..90 => Kind::Put {
                value: format!("c{client}-op{op}").into_bytes(),
                // Some values expire: a cache's keys.
                ttl_ms: self
                    .rng
                    .random_bool(0.15)
                    .then(|| self.rng.random_range(1_000..=20_000)),
            },
            _ => Kind::Delete,
        };
        if kind == Kind::List {
            key = LISTED_PREFIX.to_vec();
        }
        // A watch reads one replica's state: it claims no quorum.
        let consistency = match kind {
            Kind::Watch { .. } => Consistency::One,
            _ => self.pick_consistency(),
        };
        let context = match (&kind, self.rng.random_bool(0.85)) {
            (Kind::Get | Kind::List, _) | (_, false) => VersionVector::new(),
            (_, true) => self.contexts[client].get(&key).cloned().unwrap_or_default(),
        };
        let node = self.pick_node();
        self.submit(client, node, key, kind, consistency, context, Phase::Fault);
    }

    pub(super) fn pick_consistency(&mut self) -> Consistency {
        if let Some((r, w)) = self.options.forced_rw {
            return Consistency::Custom { r, w };
        }
        match self.rng.random_range(0..10) {
            0 => Consistency::One,
            1 => Consistency::Two,
            2 => Consistency::All,
            3 => Consistency::Custom { r: 1, w: 3 },
            4 => Consistency::Custom { r: 3, w: 1 },
            _ => Consistency::Quorum,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn submit(
        &mut self,
        client: usize,
        node: usize,
        key: Vec<u8>,
        kind: Kind,
        consistency: Consistency,
        context: VersionVector,
        phase: Phase,
    ) {
        let op = self.history.ops.len();
        let wire_context = Context::from(context.clone());
        // Runs that claim strict quorums (--r/--w) write strictly; others
        // mix sloppy and strict writes.
        let sloppy = matches!(kind, Kind::Put { .. } | Kind::Delete)
            && self.options.forced_rw.is_none()
            && self.rng.random_bool(0.5);
        // A quarter of the reads ask only the replicas they need.
        let fanout = match kind {
            Kind::Get if self.rng.random_bool(0.25) => Fanout::Needed,
            _ => Fanout::All,
        };
        let data = |request| Request::Data(request);
        let request = match &kind {
            Kind::Get => data(ClientRequest::Get {
                key: key.clone(),
                consistency,
                timeout_ms: None,
                fanout,
            }),
            // One page covers every key of the workload, unless replicas
            // stop early; the checkers hold the page to what it covers.
            Kind::List => Request::List(ListRequest {
                start: key.clone(),
                end: prefix_end(&key),
                limit: MAX_LIST_LIMIT,
                values: true,
                consistency,
                timeout_ms: None,
            }),
            Kind::Put { value, ttl_ms } => data(ClientRequest::Put {
                key: key.clone(),
                value: value.clone(),
                context: wire_context,
                consistency,
                timeout_ms: None,
                sloppy_quorum: sloppy,
                ttl_ms: *ttl_ms,
            }),
            Kind::Delete => data(ClientRequest::Delete {
                key: key.clone(),
                context: wire_context,
                consistency,
                timeout_ms: None,
                sloppy_quorum: sloppy,
            }),
            Kind::Watch { timeout_ms } => Request::Watch(WatchRequest {
                key: key.clone(),
                context: wire_context,
                timeout_ms: *timeout_ms,
            }),
        };
        let waits = match kind {
            Kind::Watch { timeout_ms } => Duration::from_millis(u64::from(timeout_ms)),
            _ => Duration::ZERO,
        };
        self.history.ops.push(Op {
            client,
            key,
            kind,
            consistency,
            context,
            sloppy_quorum: sloppy,
            phase,
            invoked: self.now,
            completed: None,
            outcome: Outcome::Pending,
        });
        self.at(CLIENT_LATENCY, Event::Request { node, op, request });
        let give_up = waits + self.config.request_timeout + Duration::from_secs(2);
        self.at(give_up, Event::ClientTimeout { op });
    }

    pub(super) fn complete(&mut self, op: usize, response: ClientResponse) {
        if self.history.ops[op].outcome != Outcome::Pending {
            return; // The client gave up already.
        }
        self.trace.update(format!("{response:?}").as_bytes());
        let outcome = match response {
            ClientResponse::Found { values, context } => Outcome::Read {
                values: values.into_iter().map(|v| v.value.to_vec()).collect(),
                context: context.version_vector().clone(),
            },
            ClientResponse::Written { dot, .. } => Outcome::Written { dot },
            ClientResponse::Listed { keys, next } => Outcome::Listed {
                keys: keys
                    .into_iter()
                    .map(|k| Listed {
                        key: k.key,
                        values: k.values.into_iter().map(|v| v.value.to_vec()).collect(),
                        context: k.context.version_vector().clone(),
                    })
                    .collect(),
                next,
            },
            ClientResponse::Failed(error) => Outcome::Failed {
                error: error.to_string(),
            },
            ClientResponse::Unchanged => Outcome::Unchanged,
            other => panic!("a response the simulator does not model: {other:?}"),
        };
        // Carry the causal context like a real client.
        let client = self.history.ops[op].client;
        if let Some(contexts) = self.contexts.get_mut(client) {
            let key = self.history.ops[op].key.clone();
            match &outcome {
                Outcome::Read { context, .. } => {
                    contexts.insert(key, context.clone());
                }
                Outcome::Written { dot } => {
                    let mut seen = self.history.ops[op].context.clone();
                    seen.add(dot);
                    contexts.insert(key, seen);
                }
                _ => {}
            }
        }
        if let Outcome::Written { dot } = &outcome {
            let op = &self.history.ops[op];
            let value = match &op.kind {
                Kind::Put { value, .. } => Some(value.clone()),
                _ => None,
            };
            let (key, dot) = (op.key.clone(), *dot);
            self.register_dot(&key, dot, value.as_deref());
        }
        self.finish_op(op, outcome);
    }

    pub(super) fn finish_op(&mut self, op: usize, outcome: Outcome) {
        self.history.ops[op].outcome = outcome;
        self.history.ops[op].completed = Some(self.now);
        let client = self.history.ops[op].client;
        if self.history.ops[op].phase == Phase::Fault && self.faults_on {
            let mean =
                self.options.duration.as_secs_f64() * self.options.clients as f64 / self.options.ops as f64;
            let think = Duration::from_secs_f64(self.rng.random_range(0.0..2.0 * mean));
            self.at(think, Event::ClientNext { client });
        }
    }

    /// Remembers the value of each dot of each key; a dot seen with two
    /// values was issued twice.
    pub(super) fn register_dot(&mut self, key: &[u8], dot: Dot, value: Option<&[u8]>) {
        match self.dots.get(&dot) {
            Some((known_key, known)) if known_key != key || known.as_deref() != value => {
                self.dot_conflicts.push(DotConflict {
                    key: key.to_vec(),
                    dot,
                    first_key: known_key.clone(),
                    first: known.clone(),
                    second: value.map(<[u8]>::to_vec),
                })
            }
            Some(_) => {}
            None => {
                self.dots.insert(dot, (key.to_vec(), value.map(<[u8]>::to_vec)));
            }
        }
    }

    pub(super) fn heal_read(&mut self, key: usize) {
        let node = self.pick_node();
        let key = format!("key{key}").into_bytes();
        let client = usize::MAX;
        self.submit(
            client,
            node,
            key,
            Kind::Get,
            Consistency::All,
            VersionVector::new(),
            Phase::Heal,
        );
    }
}
