//! Metrics in Prometheus text format (`--metrics ADDR`), and the log lines
//! an operator follows: membership changes and repair activity.
//!
//! Request counts and latencies are recorded as each reply leaves, by
//! operation, consistency level and outcome. The core's counters, hints
//! held, members and storage size are exported once a second. Without an
//! installed exporter the recording calls do nothing.

use crate::proto::membership::NodeStatus;
use crate::proto::message::Operation;
use crate::proto::{ClientResponse, Consistency, Node, NodeId, RequestError, Stats};
use crate::storage::NodeStore;
use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Latency histogram buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
/// How often the core's counters are exported.
const EXPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The metrics endpoint could not be started.
#[derive(Debug, thiserror::Error)]
#[error("metrics endpoint at {addr}: {message}")]
pub struct MetricsError {
    addr: SocketAddr,
    message: String,
}

/// This process's metrics recorder, installed on first use and labelled
/// with the node id given then (one node per process in production).
pub fn handle(node: NodeId) -> &'static PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .add_global_label("node", node.to_string())
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), &LATENCY_BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder installed first (a test harness) keeps its place.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Serves this process's metrics over HTTP at `addr` (`GET /metrics`, or
/// any path), labelled with the node's id. Call once, inside the runtime.
pub fn serve(addr: SocketAddr, node: NodeId) -> Result<(), MetricsError> {
    let error = |message: String| MetricsError { addr, message };
    let handle = handle(node);
    let listener = std::net::TcpListener::bind(addr).map_err(|e| error(e.to_string()))?;
    listener.set_nonblocking(true).map_err(|e| error(e.to_string()))?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| error(e.to_string()))?;
    let app = axum::Router::new().fallback(move || async move { handle.render() });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "metrics endpoint stopped");
        }
    });
    Ok(())
}

/// What a client request was, for its metrics once answered.
pub(super) struct RequestLabels {
    op: Operation,
    consistency: Consistency,
    started: Instant,
}

impl RequestLabels {
    /// Labels for `request`; a request asking for the default is labelled
    /// with the level it gets (`default`).
    pub(super) fn new(request: &crate::proto::ClientRequest, default: Consistency) -> RequestLabels {
        RequestLabels::of(request.operation(), request.consistency().or(default))
    }

    /// Labels for an operation at a consistency level.
    pub(super) fn of(op: Operation, consistency: Consistency) -> RequestLabels {
        RequestLabels {
            op,
            consistency,
            started: Instant::now(),
        }
    }
}

/// The request counters and latency histograms, one pair per operation,
/// consistency and outcome, registered once each: recording a request
/// then costs no label strings and no registry lookup.
#[derive(Default)]
pub(super) struct RequestMetrics {
    handles: HashMap<(Operation, Consistency, &'static str), (Counter, Histogram)>,
}

impl RequestMetrics {
    /// Records a request's outcome and latency.
    pub(super) fn done(&mut self, labels: RequestLabels, response: &ClientResponse) {
        let outcome = outcome(response);
        let (counter, histogram) = self
            .handles
            .entry((labels.op, labels.consistency, outcome))
            .or_insert_with(|| {
                let labels = [
                    ("op", labels.op.to_string()),
                    ("consistency", labels.consistency.to_string()),
                    ("outcome", outcome.to_string()),
                ];
                (
                    counter!("shoal_requests_total", &labels),
                    histogram!("shoal_request_duration_seconds", &labels),
                )
            });
        counter.increment(1);
        histogram.record(labels.started.elapsed().as_secs_f64());
    }
}

fn outcome(response: &ClientResponse) -> &'static str {
    match response {
        ClientResponse::Found { values, .. } if values.is_empty() => "not_found",
        ClientResponse::Found { .. } | ClientResponse::Written { .. } | ClientResponse::Listed { .. } => "ok",
        ClientResponse::Unchanged => "unchanged",
        ClientResponse::Failed(error) => match error {
            RequestError::QuorumNotMet { .. } => "quorum_not_met",
            RequestError::ImpossibleConsistency { .. } => "impossible_consistency",
            RequestError::BadKeySize { .. } => "bad_key_size",
            RequestError::ValueTooLarge { .. } => "value_too_large",
            RequestError::TooManySiblings { .. } => "too_many_siblings",
            RequestError::StateTooLarge { .. } => "state_too_large",
            RequestError::Busy { .. } => "busy",
            RequestError::NoReplicas => "no_replicas",
            RequestError::NotReplica { .. } => "not_replica",
            RequestError::NotReady { .. } => "not_ready",
            RequestError::InvalidListing { .. } => "invalid_listing",
            RequestError::BadTtl { .. } => "bad_ttl",
            RequestError::BadWatchTimeout { .. } => "bad_watch_timeout",
            RequestError::OutOfMemory { .. } => "out_of_memory",
            #[allow(unreachable_patterns)]
            _ => "error",
        },
    }
}

/// Exports the core's state once a second and logs what changed.
#[derive(Default)]
pub(super) struct Exporter {
    next: Option<Instant>,
    stats: Stats,
    /// Members as last seen: ring status and whether up.
    members: BTreeMap<NodeId, (NodeStatus, bool)>,
    /// Members seen to change status or liveness (first sightings included).
    membership_changes: u64,
}

impl Exporter {
    /// Exports and logs if a second has passed since the last time.
    pub(super) fn tick(&mut self, node: &Node<NodeStore>) {
        let now = Instant::now();
        if self.next.is_some_and(|at| at > now) {
            return;
        }
        self.next = Some(now + EXPORT_INTERVAL);
        let report = node.status_report();
        let me = report.node;
        self.log_members(me, &report.members);
        // Absolute values: whatever was counted before an exporter was
        // installed is not lost.
        counter!("shoal_membership_changes_total").absolute(self.membership_changes);
        self.log_repairs(me, &report.stats);
        export_stats(&report.stats);
        for (&kind, &count) in node.invalid_messages() {
            counter!("shoal_invalid_messages_total", "kind" => kind).absolute(count);
        }
        gauge!("shoal_hints_held").set(report.hints.iter().map(|h| h.count).sum::<u64>() as f64);
        gauge!("shoal_hint_bytes_held").set(report.hints.iter().map(|h| h.bytes).sum::<u64>() as f64);
        gauge!("shoal_keys").set(report.keys as f64);
        gauge!("shoal_storage_failed").set(if report.storage_failure.is_some() {
            1.0
        } else {
            0.0
        });
        gauge!("shoal_requests_in_flight").set(report.in_flight as f64);
        if let Some(disk) = node.store().disk() {
            gauge!("shoal_storage_bytes").set(disk.disk_space() as f64);
            gauge!("shoal_storage_memtable_bytes").set(disk.memtable_bytes() as f64);
            if let Some((total, available)) = disk.disk_usage() {
                gauge!("shoal_disk_total_bytes").set(total as f64);
                gauge!("shoal_disk_available_bytes").set(available as f64);
            }
        }
        if let Some(bytes) = node.store().memory_bytes() {
            gauge!("shoal_memory_store_bytes").set(bytes as f64);
        }
        let mut by_state: BTreeMap<(String, bool), u64> = BTreeMap::new();
        for m in &report.members {
            *by_state.entry((m.status.to_string(), m.up)).or_default() += 1;
        }
        for status in ["joining", "normal", "leaving", "left"] {
            for up in [true, false] {
                let count = by_state.get(&(status.to_string(), up)).copied().unwrap_or(0);
                let labels = [("status", status.to_string()), ("up", up.to_string())];
                gauge!("shoal_members", &labels).set(count as f64);
            }
        }
    }

    fn log_members(&mut self, me: NodeId, members: &[crate::proto::message::MemberReport]) {
        for m in members {
            let now = (m.status, m.up);
            let before = self.members.insert(m.node, now);
            if before == Some(now) {
                continue;
            }
            self.membership_changes += 1;
            let liveness = if m.up { "up" } else { "down" };
            match before {
                None => {
                    tracing::info!(node = %me, peer = %m.node, addr = %m.addr, status = %m.status, liveness, "member seen")
                }
                Some((_, true)) if !m.up => {
                    tracing::warn!(node = %me, peer = %m.node, addr = %m.addr, status = %m.status, "member down")
                }
                Some(_) => {
                    tracing::info!(node = %me, peer = %m.node, status = %m.status, liveness, "member changed")
                }
            }
        }
    }

    fn log_repairs(&mut self, me: NodeId, stats: &Stats) {
        let before = std::mem::replace(&mut self.stats, *stats);
        let delta = |now: u64, then: u64| now.saturating_sub(then);
        let hints_replayed = delta(stats.hints_replayed, before.hints_replayed);
        let hints_dropped = delta(stats.hints_dropped, before.hints_dropped);
        let hints_rehomed = delta(stats.hints_rehomed, before.hints_rehomed);
        let ae_keys = delta(stats.ae_keys_repaired, before.ae_keys_repaired);
        let read_repairs = delta(stats.read_repairs, before.read_repairs);
        let streamed = delta(stats.keys_streamed_in, before.keys_streamed_in);
        let handed_off = delta(stats.keys_handed_off, before.keys_handed_off);
        let cleaned = delta(stats.keys_cleaned_up, before.keys_cleaned_up);
        let digests = delta(stats.digests_repaired, before.digests_repaired);
        if hints_replayed + hints_rehomed + ae_keys + read_repairs + streamed + handed_off + cleaned + digests
            > 0
        {
            tracing::info!(
                node = %me,
                hints_replayed,
                hints_rehomed,
                ae_keys,
                read_repairs,
                streamed,
                handed_off,
                cleaned,
                digests,
                "repairs in the last second"
            );
        }
        if hints_dropped > 0 {
            tracing::warn!(node = %me, hints_dropped, "hints dropped (over the hint window or byte limit); anti-entropy repairs instead");
        }
        let corrupt = delta(stats.corrupt_records_dropped, before.corrupt_records_dropped);
        if corrupt > 0 {
            tracing::warn!(node = %me, corrupt, "corrupt records found on disk: dropped, not served; replicas repair them");
        }
        let refusals = delta(stats.placement_refusals, before.placement_refusals);
        if refusals > 0 {
            tracing::info!(node = %me, refusals, "replica requests refused from coordinators behind on a join or leave; sent them the ring");
        }
        let quorum_failures = delta(stats.quorum_failures, before.quorum_failures);
        if quorum_failures > 0 {
            tracing::warn!(node = %me, quorum_failures, "requests failed for lack of replicas' answers");
        }
    }
}

fn export_stats(stats: &Stats) {
    let counters: [(&'static str, u64); 20] = [
        ("shoal_coordinated_requests_total", stats.requests),
        ("shoal_quorum_failures_total", stats.quorum_failures),
        ("shoal_forwards_total", stats.forwards),
        ("shoal_replica_ops_total", stats.replica_ops),
        ("shoal_read_repairs_total", stats.read_repairs),
        ("shoal_anti_entropy_exchanges_total", stats.ae_exchanges),
        ("shoal_anti_entropy_keys_repaired_total", stats.ae_keys_repaired),
        ("shoal_anti_entropy_bytes_sent_total", stats.ae_bytes_sent),
        ("shoal_hints_stored_total", stats.hints_stored),
        ("shoal_hints_replayed_total", stats.hints_replayed),
        ("shoal_hints_dropped_total", stats.hints_dropped),
        ("shoal_hints_rehomed_total", stats.hints_rehomed),
        ("shoal_keys_streamed_in_total", stats.keys_streamed_in),
        ("shoal_bytes_streamed_in_total", stats.bytes_streamed_in),
        ("shoal_keys_handed_off_total", stats.keys_handed_off),
        ("shoal_keys_cleaned_up_total", stats.keys_cleaned_up),
        ("shoal_tombstones_removed_total", stats.tombstones_removed),
        ("shoal_digests_repaired_total", stats.digests_repaired),
        ("shoal_placement_refusals_total", stats.placement_refusals),
        (
            "shoal_corrupt_records_dropped_total",
            stats.corrupt_records_dropped,
        ),
    ];
    for (name, value) in counters {
        counter!(name).absolute(value);
    }
}
