//! What every reconcile shares: the Kubernetes client, the event recorder and the metrics.

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::controller::member_api::{GrpcMembers, MemberApi};
use crate::metrics::Metrics;

/// Shared state of the controller.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes Events on KVClusters.
    pub recorder: Recorder,
    /// Reconcile metrics.
    pub metrics: Metrics,
    /// The store's members, over the etcd API.
    pub members: Arc<dyn MemberApi>,
}

impl Context {
    /// A context for `client`, reporting as `instance` (the operator's pod name).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        Self::with_members(client, instance, Arc::new(GrpcMembers))
    }

    /// A context whose member calls go to `members` (tests play the members with it).
    pub fn with_members(
        client: Client,
        instance: Option<String>,
        members: Arc<dyn MemberApi>,
    ) -> Self {
        let reporter = Reporter {
            controller: "kv-operator".into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics: Metrics::default(),
            members,
        }
    }
}
