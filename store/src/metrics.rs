//! Prometheus metrics with etcd's names, types and labels (so the stock etcd dashboards and
//! alerts work), plus kvstore's own Raft metrics. One registry per process; gauges that mirror
//! state are refreshed when scraped.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::node::Node;

/// Labels of the `grpc_server_*` families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// unary, client_stream, server_stream, bidi_stream.
    pub grpc_type: &'static str,
    /// e.g. `etcdserverpb.KV`.
    pub grpc_service: String,
    /// e.g. `Range`.
    pub grpc_method: String,
}

/// Labels of `grpc_server_handled_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcHandledLabels {
    /// unary, client_stream, server_stream, bidi_stream.
    pub grpc_type: &'static str,
    /// e.g. `etcdserverpb.KV`.
    pub grpc_service: String,
    /// e.g. `Range`.
    pub grpc_method: String,
    /// e.g. `OK`, `Unavailable`.
    pub grpc_code: &'static str,
}

/// A peer label: `To="<member id in hex>"`, capitalized as etcd's.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct ToLabel(pub String);

impl EncodeLabelSet for ToLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        ("To", self.0.as_str()).encode(encoder.encode_label())
    }
}

/// A version label set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    /// The version.
    pub server_version: String,
}

/// A member-id label set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IdLabel {
    /// The member id in hex.
    pub server_id: String,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// etcd_server_has_leader.
    pub has_leader: Gauge,
    /// etcd_server_is_leader.
    pub is_leader: Gauge,
    /// etcd_server_is_learner.
    pub is_learner: Gauge,
    /// etcd_server_leader_changes_seen_total.
    pub leader_changes: Counter,
    /// etcd_server_proposals_committed_total (a gauge, as etcd).
    pub proposals_committed: Gauge,
    /// etcd_server_proposals_applied_total (a gauge, as etcd).
    pub proposals_applied: Gauge,
    /// etcd_server_proposals_pending.
    pub proposals_pending: Gauge,
    /// etcd_server_proposals_failed_total.
    pub proposals_failed: Counter,
    /// etcd_server_quota_backend_bytes.
    pub quota_backend_bytes: Gauge,
    /// etcd_server_version.
    pub server_version: Family<VersionLabel, Gauge>,
    /// etcd_server_id.
    pub server_id: Family<IdLabel, Gauge>,
    /// etcd_disk_wal_fsync_duration_seconds.
    pub wal_fsync: Histogram,
    /// etcd_disk_backend_commit_duration_seconds.
    pub backend_commit: Histogram,
    /// etcd_mvcc_db_total_size_in_bytes.
    pub db_total_size: Gauge,
    /// etcd_mvcc_db_total_size_in_use_in_bytes.
    pub db_in_use: Gauge,
    /// etcd_debugging_mvcc_keys_total.
    pub keys_total: Gauge,
    /// etcd_debugging_mvcc_current_revision.
    pub current_revision: Gauge,
    /// etcd_debugging_mvcc_compact_revision.
    pub compact_revision: Gauge,
    /// etcd_debugging_mvcc_watch_stream_total.
    pub watch_streams: Gauge,
    /// etcd_debugging_mvcc_watcher_total.
    pub watchers: Gauge,
    /// etcd_mvcc_put_total.
    pub puts: Counter,
    /// etcd_mvcc_delete_total.
    pub deletes: Counter,
    /// etcd_mvcc_range_total.
    pub ranges: Counter,
    /// etcd_mvcc_txn_total.
    pub txns: Counter,
    /// etcd_network_peer_round_trip_time_seconds.
    pub peer_rtt: Family<ToLabel, Histogram>,
    /// etcd_network_peer_sent_bytes_total.
    pub peer_sent_bytes: Family<ToLabel, Counter>,
    /// etcd_network_peer_sent_failures_total.
    pub peer_sent_failures: Family<ToLabel, Counter>,
    /// kvstore_network_peer_append_streams_opened_total.
    pub peer_append_streams: Family<ToLabel, Counter>,
    /// grpc_server_started_total.
    pub grpc_started: Family<GrpcLabels, Counter>,
    /// grpc_server_handled_total.
    pub grpc_handled: Family<GrpcHandledLabels, Counter>,
    /// grpc_server_msg_received_total.
    pub grpc_received: Family<GrpcLabels, Counter>,
    /// grpc_server_msg_sent_total.
    pub grpc_sent: Family<GrpcLabels, Counter>,
    /// grpc_server_handling_seconds.
    pub grpc_handling: Family<GrpcLabels, Histogram>,
    /// kvstore_raft_term.
    pub raft_term: Gauge,
    /// kvstore_raft_last_log_index.
    pub raft_last_log_index: Gauge,
    /// kvstore_raft_applied_index.
    pub raft_applied_index: Gauge,
    /// kvstore_raft_snapshot_index.
    pub raft_snapshot_index: Gauge,
    /// kvstore_raft_purged_index.
    pub raft_purged_index: Gauge,
    /// process_resident_memory_bytes.
    pub resident_memory: Gauge,
}

fn hist(start: f64, count: u16) -> Histogram {
    Histogram::new(exponential_buckets(start, 2.0, count))
}

impl Metrics {
    fn new() -> Self {
        let mut r = Registry::default();
        let m = Metrics {
            has_leader: Gauge::default(),
            is_leader: Gauge::default(),
            is_learner: Gauge::default(),
            leader_changes: Counter::default(),
            proposals_committed: Gauge::default(),
            proposals_applied: Gauge::default(),
            proposals_pending: Gauge::default(),
            proposals_failed: Counter::default(),
            quota_backend_bytes: Gauge::default(),
            server_version: Family::default(),
            server_id: Family::default(),
            wal_fsync: hist(0.001, 14),
            backend_commit: hist(0.001, 14),
            db_total_size: Gauge::default(),
            db_in_use: Gauge::default(),
            keys_total: Gauge::default(),
            current_revision: Gauge::default(),
            compact_revision: Gauge::default(),
            watch_streams: Gauge::default(),
            watchers: Gauge::default(),
            puts: Counter::default(),
            deletes: Counter::default(),
            ranges: Counter::default(),
            txns: Counter::default(),
            peer_rtt: Family::new_with_constructor(|| hist(0.0001, 16)),
            peer_sent_bytes: Family::default(),
            peer_sent_failures: Family::default(),
            peer_append_streams: Family::default(),
            grpc_started: Family::default(),
            grpc_handled: Family::default(),
            grpc_received: Family::default(),
            grpc_sent: Family::default(),
            grpc_handling: Family::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }),
            raft_term: Gauge::default(),
            raft_last_log_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_snapshot_index: Gauge::default(),
            raft_purged_index: Gauge::default(),
            resident_memory: Gauge::default(),
            registry: Registry::default(),
        };
        r.register(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not",
            m.has_leader.clone(),
        );
        r.register(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise",
            m.is_leader.clone(),
        );
        r.register(
            "etcd_server_is_learner",
            "Whether or not this member is a learner. 1 if is, 0 otherwise",
            m.is_learner.clone(),
        );
        r.register(
            "etcd_server_leader_changes_seen",
            "The number of leader changes seen",
            m.leader_changes.clone(),
        );
        r.register(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed",
            m.proposals_committed.clone(),
        );
        r.register(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied",
            m.proposals_applied.clone(),
        );
        r.register(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit",
            m.proposals_pending.clone(),
        );
        r.register(
            "etcd_server_proposals_failed",
            "The total number of failed proposals seen",
            m.proposals_failed.clone(),
        );
        r.register(
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes",
            m.quota_backend_bytes.clone(),
        );
        r.register(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version",
            m.server_version.clone(),
        );
        r.register(
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID",
            m.server_id.clone(),
        );
        r.register(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL",
            m.wal_fsync.clone(),
        );
        r.register(
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend",
            m.backend_commit.clone(),
        );
        r.register(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes",
            m.db_total_size.clone(),
        );
        r.register(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes",
            m.db_in_use.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_keys_total",
            "Total number of keys",
            m.keys_total.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store",
            m.current_revision.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_compact_revision",
            "The revision of the last compaction in store",
            m.compact_revision.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_watch_stream_total",
            "Total number of watch streams",
            m.watch_streams.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_watcher_total",
            "Total number of watchers",
            m.watchers.clone(),
        );
        r.register(
            "etcd_mvcc_put",
            "Total number of puts seen by this member",
            m.puts.clone(),
        );
        r.register(
            "etcd_mvcc_delete",
            "Total number of deletes seen by this member",
            m.deletes.clone(),
        );
        r.register(
            "etcd_mvcc_range",
            "Total number of ranges seen by this member",
            m.ranges.clone(),
        );
        r.register(
            "etcd_mvcc_txn",
            "Total number of txns seen by this member",
            m.txns.clone(),
        );
        r.register(
            "etcd_network_peer_round_trip_time_seconds",
            "Round-Trip-Time histogram between peers",
            m.peer_rtt.clone(),
        );
        r.register(
            "etcd_network_peer_sent_bytes",
            "The total number of bytes sent to peers",
            m.peer_sent_bytes.clone(),
        );
        r.register(
            "etcd_network_peer_sent_failures",
            "The total number of send failures from peers",
            m.peer_sent_failures.clone(),
        );
        r.register(
            "kvstore_network_peer_append_streams_opened",
            "AppendEntries streams opened to each peer (one lasts until it fails)",
            m.peer_append_streams.clone(),
        );
        r.register(
            "grpc_server_started",
            "Total number of RPCs started on the server",
            m.grpc_started.clone(),
        );
        r.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure",
            m.grpc_handled.clone(),
        );
        r.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server",
            m.grpc_received.clone(),
        );
        r.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server",
            m.grpc_sent.clone(),
        );
        r.register("grpc_server_handling_seconds", "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server", m.grpc_handling.clone());
        r.register(
            "kvstore_raft_term",
            "Current Raft term",
            m.raft_term.clone(),
        );
        r.register(
            "kvstore_raft_last_log_index",
            "Index of the last Raft log entry",
            m.raft_last_log_index.clone(),
        );
        r.register(
            "kvstore_raft_applied_index",
            "Index of the last applied Raft log entry",
            m.raft_applied_index.clone(),
        );
        r.register(
            "kvstore_raft_snapshot_index",
            "Last log index included in the latest Raft snapshot",
            m.raft_snapshot_index.clone(),
        );
        r.register(
            "kvstore_raft_purged_index",
            "Last purged Raft log index",
            m.raft_purged_index.clone(),
        );
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            m.resident_memory.clone(),
        );
        Metrics { registry: r, ..m }
    }
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Observe the seconds since `start` into `h`.
pub fn observe_since(h: &Histogram, start: Instant) {
    h.observe(start.elapsed().as_secs_f64());
}

fn resident_memory() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Refresh state-mirroring gauges and render the registry in the Prometheus text format.
pub fn render(node: &Node) -> String {
    let m = &*METRICS;
    let rm = node.metrics();
    m.has_leader.set(i64::from(rm.current_leader.is_some()));
    m.is_leader
        .set(i64::from(rm.current_leader == Some(node.id)));
    let voter = rm
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == node.id);
    m.is_learner.set(i64::from(!voter));
    m.proposals_committed
        .set(rm.last_log_index.unwrap_or(0) as i64);
    m.proposals_applied
        .set(rm.last_applied.map_or(0, |l| l.index) as i64);
    m.raft_term.set(rm.current_term as i64);
    m.raft_last_log_index
        .set(rm.last_log_index.unwrap_or(0) as i64);
    m.raft_applied_index
        .set(rm.last_applied.map_or(0, |l| l.index) as i64);
    m.raft_snapshot_index
        .set(rm.snapshot.map_or(0, |l| l.index) as i64);
    m.raft_purged_index
        .set(rm.purged.map_or(0, |l| l.index) as i64);
    let revs = node.sm.revs();
    m.current_revision.set(revs.current);
    m.compact_revision.set(revs.compact);
    m.db_total_size.set(node.sm.db_size());
    m.db_in_use.set(node.sm.db_size_in_use());
    m.keys_total.set(node.sm.key_count().unwrap_or(0) as i64);
    m.server_version
        .get_or_create(&VersionLabel {
            server_version: crate::ETCD_VERSION.into(),
        })
        .set(1);
    m.server_id
        .get_or_create(&IdLabel {
            server_id: format!("{:x}", node.id),
        })
        .set(1);
    m.resident_memory.set(resident_memory());
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &m.registry)
        .expect("encoding to a string cannot fail");
    out
}
