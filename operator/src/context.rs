//! What every reconcile shares: the Kubernetes client, the event recorder and the metrics.

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::metrics::Metrics;

/// Shared state of the controller.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes Events on KVClusters.
    pub recorder: Recorder,
    /// Reconcile metrics.
    pub metrics: Metrics,
}

impl Context {
    /// A context for `client`, reporting as `instance` (the operator's pod name).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "kv-operator".into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics: Metrics::default(),
        }
    }
}
