//! The operator's own metrics: reconcile counts, errors by kind, durations, and backups.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// An error-kind label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// What failed.
    pub error: String,
}

/// A cluster label set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// Namespace.
    pub namespace: String,
    /// KVCluster name.
    pub name: String,
}

/// Reconcile metrics.
#[derive(Clone)]
pub struct Metrics {
    /// kv_operator_reconciles_total.
    pub reconciles: Counter,
    /// kv_operator_reconcile_errors_total{error}.
    pub errors: Family<ErrorLabels, Counter>,
    /// kv_operator_reconcile_duration_seconds.
    pub duration: Histogram,
    /// kv_operator_backup_last_success_timestamp_seconds{namespace,name}.
    pub backup_last_success: Family<ClusterLabels, Gauge>,
    /// kv_operator_backup_last_duration_seconds{namespace,name}.
    pub backup_duration: Family<ClusterLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// kv_operator_backup_last_size_bytes{namespace,name}.
    pub backup_size: Family<ClusterLabels, Gauge>,
    /// kv_operator_backup_failures_total{namespace,name}.
    pub backup_failures: Family<ClusterLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Counter::default(),
            errors: Family::default(),
            duration: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            backup_last_success: Family::default(),
            backup_duration: Family::default(),
            backup_size: Family::default(),
            backup_failures: Family::default(),
        }
    }
}

impl Metrics {
    /// Register into `r` under the `kv_operator` prefix.
    pub fn register(&self, r: &mut Registry) {
        let r = r.sub_registry_with_prefix("kv_operator");
        r.register("reconciles", "Reconciliations run", self.reconciles.clone());
        r.register(
            "reconcile_errors",
            "Reconciliations that failed, by error",
            self.errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Reconciliation duration",
            self.duration.clone(),
        );
        r.register(
            "backup_last_success_timestamp_seconds",
            "When the last successful backup was taken (Unix time)",
            self.backup_last_success.clone(),
        );
        r.register(
            "backup_last_duration_seconds",
            "How long the last successful backup took",
            self.backup_duration.clone(),
        );
        r.register(
            "backup_last_size_bytes",
            "Stored size of the last successful backup",
            self.backup_size.clone(),
        );
        r.register(
            "backup_failures",
            "Backups that failed",
            self.backup_failures.clone(),
        );
    }

    /// Record a successful backup of cluster `namespace/name`.
    pub fn backup_succeeded(
        &self,
        namespace: &str,
        name: &str,
        rec: &kv_crds::v1alpha1::BackupRecord,
    ) {
        let l = ClusterLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        let when = rec
            .time
            .parse::<chrono::DateTime<chrono::Utc>>()
            .map_or(0, |t| t.timestamp());
        self.backup_last_success.get_or_create(&l).set(when);
        self.backup_duration
            .get_or_create(&l)
            .set(rec.duration_seconds);
        self.backup_size.get_or_create(&l).set(rec.size as i64);
    }

    /// Count a failed backup of cluster `namespace/name`.
    pub fn backup_failed(&self, namespace: &str, name: &str) {
        let l = ClusterLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.backup_failures.get_or_create(&l).inc();
    }
}
