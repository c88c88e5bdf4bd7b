//! ReplicaSets: keep `replicas` active pods (`generateName` `<rs>-`), remove extra ones (not
//! ready first, then the newest), replace finished ones, and report replicas, ready and
//! available counts. Creations and deletions are remembered until the cache shows them, so a
//! lagging cache never doubles them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::{benign, controlled_by, owner, pod_available, pod_finished, report};
use crate::cache::Informers;
use crate::net::lock;

const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes the cache has not shown yet, per ReplicaSet uid.
#[derive(Debug, Default)]
struct Expectations {
    created: HashSet<String>,
    deleted: HashSet<String>,
    since: Option<Instant>,
}

/// The ReplicaSet controller.
#[derive(Clone)]
pub struct Controller {
    client: Client,
    informers: Arc<Informers>,
    pending: Arc<Mutex<HashMap<String, Expectations>>>,
}

impl Controller {
    /// A controller.
    pub fn new(client: Client, informers: Arc<Informers>) -> Self {
        Controller {
            client,
            informers,
            pending: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Reconciles every ReplicaSet.
    pub async fn reconcile_all(&self) {
        for rs in self.informers.replicasets.all() {
            if let Err(e) = self.reconcile(&rs).await {
                report(
                    "ReplicaSet",
                    &rs.namespace().unwrap_or_default(),
                    &rs.name_any(),
                    &e,
                );
            }
        }
    }

    async fn reconcile(&self, rs: &ReplicaSet) -> Result<(), kube::Error> {
        if rs.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let ns = rs.namespace().unwrap_or_default();
        let uid = rs.uid().unwrap_or_default();
        let owned: Vec<Arc<Pod>> = self
            .informers
            .pods
            .in_ns(&ns)
            .into_iter()
            .filter(|p| controlled_by(&p.metadata, &uid))
            .collect();
        let active: Vec<&Arc<Pod>> = owned
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && !pod_finished(p))
            .collect();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let settled = {
            let mut pending = lock(&self.pending);
            let e = pending.entry(uid.clone()).or_default();
            e.deleted
                .retain(|n| active.iter().any(|p| p.name_any() == *n));
            e.created
                .retain(|n| !owned.iter().any(|p| p.name_any() == *n));
            let expired = e.since.is_some_and(|s| s.elapsed() > EXPECTATION_TIMEOUT);
            if expired {
                *e = Expectations::default();
            }
            e.created.is_empty() && e.deleted.is_empty()
        };
        if settled {
            let want = usize::try_from(
                rs.spec
                    .as_ref()
                    .and_then(|s| s.replicas)
                    .unwrap_or(1)
                    .max(0),
            )
            .unwrap_or(0);
            for p in owned
                .iter()
                .filter(|p| pod_finished(p) && p.metadata.deletion_timestamp.is_none())
            {
                benign(
                    api.delete(&p.name_any(), &DeleteParams::default())
                        .await
                        .map(|_| ()),
                )?;
            }
            if active.len() < want {
                self.create(rs, want - active.len()).await?;
            } else if active.len() > want {
                let mut victims = active.clone();
                victims
                    .sort_by_key(|p| (pod_available(p), std::cmp::Reverse(p.creation_timestamp())));
                let names: Vec<String> = victims[..active.len() - want]
                    .iter()
                    .map(|p| p.name_any())
                    .collect();
                {
                    let mut pending = lock(&self.pending);
                    let e = pending.entry(uid.clone()).or_default();
                    e.deleted.extend(names.iter().cloned());
                    e.since = Some(Instant::now());
                }
                for n in names {
                    benign(api.delete(&n, &DeleteParams::default()).await.map(|_| ()))?;
                }
            }
        }
        self.write_status(rs, &active).await
    }

    async fn create(&self, rs: &ReplicaSet, n: usize) -> Result<(), kube::Error> {
        let ns = rs.namespace().unwrap_or_default();
        let uid = rs.uid().unwrap_or_default();
        let template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        let mut meta = template.metadata.clone().unwrap_or_default();
        meta.generate_name = Some(format!("{}-", rs.name_any()));
        meta.namespace = Some(ns.clone());
        meta.owner_references = Some(vec![owner("apps/v1", "ReplicaSet", &rs.metadata, true)]);
        let pod = Pod {
            metadata: meta,
            spec: template.spec.clone(),
            status: None,
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        for _ in 0..n {
            let made = api.create(&PostParams::default(), &pod).await?;
            let mut pending = lock(&self.pending);
            let e = pending.entry(uid.clone()).or_default();
            e.created.insert(made.name_any());
            e.since = Some(Instant::now());
        }
        Ok(())
    }

    async fn write_status(&self, rs: &ReplicaSet, active: &[&Arc<Pod>]) -> Result<(), kube::Error> {
        let count = |f: &dyn Fn(&Pod) -> bool| {
            i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
        };
        let old = rs.status.clone().unwrap_or_default();
        let ready = count(&|p| pod_available(p));
        let new = ReplicaSetStatus {
            replicas: count(&|_| true),
            fully_labeled_replicas: Some(count(&|_| true)),
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            observed_generation: rs.metadata.generation,
            conditions: old.conditions.clone(),
            terminating_replicas: None,
        };
        if new == old {
            return Ok(());
        }
        let api: Api<ReplicaSet> =
            Api::namespaced(self.client.clone(), &rs.namespace().unwrap_or_default());
        benign(
            api.patch_status(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": new})),
            )
            .await
            .map(|_| ()),
        )
    }
}
