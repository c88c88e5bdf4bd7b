//! The operator's own metrics: reconcile counts, errors by kind, durations.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// An error-kind label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// What failed.
    pub error: String,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Counter::default(),
            errors: Family::default(),
            duration: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
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
    }
}
