//! The controllers of kube-controller-manager that our workloads need: StatefulSets
//! ([`statefulset`]), Deployments ([`deployment`]) and ReplicaSets ([`replicaset`]), claim
//! binding ([`claims`]) and Endpoints/EndpointSlices ([`endpoints`]). Garbage collection of
//! dependents is the API server's (kube-sim collects by owner references). Each loop
//! reconciles everything it owns on every change, reading from the shared caches.

pub mod claims;
pub mod deployment;
pub mod endpoints;
pub mod replicaset;
pub mod statefulset;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::cache::{Informers, next_round};
use crate::kubelet::Shared;

/// Starts every controller.
pub fn start(
    client: &Client,
    informers: &Arc<Informers>,
    pv_root: &Path,
    kubelet: Arc<Shared>,
) -> Vec<JoinHandle<()>> {
    let sts = statefulset::Controller::new(client.clone(), informers.clone());
    let rs = replicaset::Controller::new(client.clone(), informers.clone());
    let deploy = deployment::Controller::new(client.clone(), informers.clone());
    let claims = claims::Controller::new(client.clone(), informers.clone(), pv_root, kubelet);
    let eps = endpoints::Controller::new(client.clone(), informers.clone());
    vec![
        spawn_loop(informers, sts, |c| async move { c.reconcile_all().await }),
        spawn_loop(informers, rs, |c| async move { c.reconcile_all().await }),
        spawn_loop(
            informers,
            deploy,
            |c| async move { c.reconcile_all().await },
        ),
        spawn_loop(
            informers,
            claims,
            |c| async move { c.reconcile_all().await },
        ),
        spawn_loop(informers, eps, |c| async move { c.reconcile_all().await }),
    ]
}

fn spawn_loop<C, F, Fut>(informers: &Arc<Informers>, c: C, f: F) -> JoinHandle<()>
where
    C: Clone + Send + Sync + 'static,
    F: Fn(C) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut rx = informers.subscribe();
    tokio::spawn(async move {
        loop {
            f(c.clone()).await;
            next_round(&mut rx, Duration::from_secs(1)).await;
        }
    })
}

/// Whether `meta` names `uid` as its controller.
pub fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
}

/// A controller owner reference to an object.
pub fn owner(api_version: &str, kind: &str, meta: &ObjectMeta, controller: bool) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(controller),
        block_owner_deletion: Some(true),
    }
}

/// A short stable hash of a pod template (revision names, `pod-template-hash`).
pub fn template_hash(t: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(t).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..5])
}

/// Ready, not terminating, not finished.
pub fn pod_available(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none() && crate::net::hosts::pod_ready(p)
}

/// Whether the pod ended (Succeeded or Failed).
pub fn pod_finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Logs a reconcile error.
pub fn report(kind: &str, ns: &str, name: &str, e: &kube::Error) {
    tracing::warn!(kind, ns, name, error = %e, "reconcile failed");
}

/// Ignores "already exists" and "not found" (the caches lag the writes).
pub fn benign(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        other => other,
    }
}
