//! StatefulSets: pods `<name>-<ordinal>` with stable hostnames under `serviceName`, claims
//! `<template>-<name>-<ordinal>` that outlive pods, `podManagementPolicy` OrderedReady (one pod
//! at a time, lower ordinals Ready first, scale down from the top) or Parallel, updates by
//! RollingUpdate (highest ordinal first, one at a time, only while every pod is Ready, ordinals
//! below `partition` keep the current revision) or OnDelete (only pods that are deleted come
//! back new), `persistentVolumeClaimRetentionPolicy`, ControllerRevisions and status.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec, Volume};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::{benign, controlled_by, owner, pod_available, pod_finished, report, template_hash};
use crate::cache::Informers;

/// Label with the pod's name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Label with the pod's revision.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// Label with the pod's ordinal.
pub const INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The StatefulSet controller.
#[derive(Clone)]
pub struct Controller {
    client: Client,
    informers: Arc<Informers>,
}

/// The ordinal of a pod of `sts`, from its name.
pub fn ordinal(sts: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(sts)?.strip_prefix('-')?.parse().ok()
}

/// The pod of ordinal `i` built from `template` at revision `rev`.
pub fn build_pod(sts: &StatefulSet, i: i32, template: &PodTemplateSpec, rev: &str) -> Pod {
    let name = format!("{}-{i}", sts.name_any());
    let spec = sts.spec.clone().unwrap_or_default();
    let mut meta = template.metadata.clone().unwrap_or_default();
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(REVISION_LABEL.into(), rev.into());
    labels.insert(INDEX_LABEL.into(), i.to_string());
    meta.name = Some(name.clone());
    meta.namespace = sts.namespace();
    meta.owner_references = Some(vec![owner("apps/v1", "StatefulSet", &sts.metadata, true)]);
    let mut pod_spec = template.spec.clone().unwrap_or_default();
    pod_spec.hostname = Some(name.clone());
    pod_spec.subdomain =
        Some(spec.service_name.clone().unwrap_or_default()).filter(|s| !s.is_empty());
    let volumes = pod_spec.volumes.get_or_insert_with(Vec::new);
    for t in spec.volume_claim_templates.iter().flatten() {
        let claim = t.name_any();
        volumes.retain(|v| v.name != claim);
        let v: Volume = serde_json::from_value(json!({"name": claim,
            "persistentVolumeClaim": {"claimName": format!("{claim}-{name}")}}))
        .unwrap_or_default();
        volumes.push(v);
    }
    Pod {
        metadata: meta,
        spec: Some(pod_spec),
        status: None,
    }
}

impl Controller {
    /// A controller.
    pub fn new(client: Client, informers: Arc<Informers>) -> Self {
        Controller { client, informers }
    }

    /// Reconciles every StatefulSet.
    pub async fn reconcile_all(&self) {
        for sts in self.informers.statefulsets.all() {
            if let Err(e) = self.reconcile(&sts).await {
                report(
                    "StatefulSet",
                    &sts.namespace().unwrap_or_default(),
                    &sts.name_any(),
                    &e,
                );
            }
        }
    }

    async fn ensure_revision(
        &self,
        sts: &StatefulSet,
        rev: &str,
        template: &PodTemplateSpec,
    ) -> Result<(), kube::Error> {
        let ns = sts.namespace().unwrap_or_default();
        if self.informers.revisions.get(&ns, rev).is_some() {
            return Ok(());
        }
        let uid = sts.uid().unwrap_or_default();
        let next = self
            .informers
            .revisions
            .in_ns(&ns)
            .iter()
            .filter(|r| controlled_by(&r.metadata, &uid))
            .map(|r| r.revision)
            .max()
            .unwrap_or(0)
            + 1;
        let cr = ControllerRevision {
            metadata: kube::api::ObjectMeta {
                name: Some(rev.into()),
                namespace: Some(ns.clone()),
                labels: sts
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.match_labels.clone()),
                owner_references: Some(vec![owner("apps/v1", "StatefulSet", &sts.metadata, true)]),
                ..Default::default()
            },
            data: Some(RawExtension(json!({"spec": {"template": template}}))),
            revision: next,
        };
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &ns);
        benign(api.create(&PostParams::default(), &cr).await.map(|_| ()))
    }

    fn template_of(&self, ns: &str, rev: &str) -> Option<PodTemplateSpec> {
        let cr = self.informers.revisions.get(ns, rev)?;
        let data = cr.data.as_ref()?.0.get("spec")?.get("template")?.clone();
        serde_json::from_value(data).ok()
    }

    async fn ensure_claims(&self, sts: &StatefulSet, i: i32) -> Result<(), kube::Error> {
        let ns = sts.namespace().unwrap_or_default();
        let spec = sts.spec.clone().unwrap_or_default();
        let delete_with_set = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|p| p.when_deleted.as_deref())
            == Some("Delete");
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        for t in spec.volume_claim_templates.iter().flatten() {
            let name = format!("{}-{}-{i}", t.name_any(), sts.name_any());
            if self.informers.pvcs.get(&ns, &name).is_some() {
                continue;
            }
            let mut pvc = t.clone();
            pvc.metadata.name = Some(name);
            pvc.metadata.namespace = Some(ns.clone());
            let labels = pvc.metadata.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in spec.selector.match_labels.iter().flatten() {
                labels.insert(k.clone(), v.clone());
            }
            if delete_with_set {
                pvc.metadata.owner_references =
                    Some(vec![owner("apps/v1", "StatefulSet", &sts.metadata, false)]);
            }
            pvc.status = None;
            benign(api.create(&PostParams::default(), &pvc).await.map(|_| ()))?;
        }
        Ok(())
    }

    async fn reconcile(&self, sts: &StatefulSet) -> Result<(), kube::Error> {
        if sts.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let ns = sts.namespace().unwrap_or_default();
        let name = sts.name_any();
        let uid = sts.uid().unwrap_or_default();
        let spec = sts.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1);
        let update_rev = format!("{name}-{}", template_hash(&spec.template));
        self.ensure_revision(sts, &update_rev, &spec.template)
            .await?;
        let status = sts.status.clone().unwrap_or_default();
        let current_rev = status
            .current_revision
            .clone()
            .unwrap_or_else(|| update_rev.clone());
        let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
        let strategy = spec.update_strategy.clone().unwrap_or_default();
        let rolling = strategy.type_.as_deref() != Some("OnDelete");
        let partition = strategy
            .rolling_update
            .as_ref()
            .and_then(|r| r.partition)
            .unwrap_or(0);
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let mut pods: BTreeMap<i32, Arc<Pod>> = BTreeMap::new();
        for p in self.informers.pods.in_ns(&ns) {
            if controlled_by(&p.metadata, &uid)
                && let Some(i) = ordinal(&name, &p.name_any())
            {
                pods.insert(i, p);
            }
        }
        let rev_of = |p: &Pod| p.labels().get(REVISION_LABEL).cloned().unwrap_or_default();

        for i in 0..replicas {
            self.ensure_claims(sts, i).await?;
        }
        // Create missing pods, replace finished ones.
        for i in 0..replicas {
            match pods.get(&i) {
                None => {
                    let lower_ok = (0..i).all(|j| pods.get(&j).is_some_and(|p| pod_available(p)));
                    if ordered && !lower_ok {
                        break;
                    }
                    let rev = if rolling && i < partition {
                        &current_rev
                    } else {
                        &update_rev
                    };
                    let template = self
                        .template_of(&ns, rev)
                        .unwrap_or_else(|| spec.template.clone());
                    let pod = build_pod(sts, i, &template, rev);
                    tracing::info!(sts = %name, pod = %pod.name_any(), rev = %rev, "creating pod");
                    benign(
                        pods_api
                            .create(&PostParams::default(), &pod)
                            .await
                            .map(|_| ()),
                    )?;
                    if ordered {
                        break;
                    }
                }
                Some(p) if pod_finished(p) && p.metadata.deletion_timestamp.is_none() => {
                    benign(
                        pods_api
                            .delete(&p.name_any(), &DeleteParams::default())
                            .await
                            .map(|_| ()),
                    )?;
                    if ordered {
                        break;
                    }
                }
                Some(p) if ordered && !pod_available(p) => break,
                Some(_) => {}
            }
        }
        // Scale down from the highest ordinal.
        let condemned: Vec<&Arc<Pod>> = pods.range(replicas..).rev().map(|(_, p)| p).collect();
        let healthy = (0..replicas).all(|j| pods.get(&j).is_some_and(|p| pod_available(p)));
        for p in &condemned {
            if p.metadata.deletion_timestamp.is_some() {
                if ordered {
                    break;
                }
                continue;
            }
            if ordered && !healthy {
                break;
            }
            tracing::info!(sts = %name, pod = %p.name_any(), "scaling down");
            benign(
                pods_api
                    .delete(&p.name_any(), &DeleteParams::default())
                    .await
                    .map(|_| ()),
            )?;
            if ordered {
                break;
            }
        }
        self.delete_scaled_claims(sts, replicas, &pods).await?;
        // Rolling update: the highest outdated ordinal at or above the partition.
        let all_ready = (0..replicas).all(|j| pods.get(&j).is_some_and(|p| pod_available(p)));
        if rolling && all_ready && condemned.is_empty() {
            let outdated = pods
                .range(partition.max(0)..replicas)
                .rev()
                .find(|(_, p)| rev_of(p) != update_rev);
            if let Some((_, p)) = outdated {
                tracing::info!(sts = %name, pod = %p.name_any(), "rolling update");
                benign(
                    pods_api
                        .delete(&p.name_any(), &DeleteParams::default())
                        .await
                        .map(|_| ()),
                )?;
            }
        }
        self.write_status(sts, &pods, replicas, &current_rev, &update_rev)
            .await
    }

    async fn delete_scaled_claims(
        &self,
        sts: &StatefulSet,
        replicas: i32,
        pods: &BTreeMap<i32, Arc<Pod>>,
    ) -> Result<(), kube::Error> {
        let spec = sts.spec.clone().unwrap_or_default();
        let when_scaled = spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|p| p.when_scaled.clone());
        if when_scaled.as_deref() != Some("Delete") {
            return Ok(());
        }
        let ns = sts.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        for t in spec.volume_claim_templates.iter().flatten() {
            let prefix = format!("{}-{}", t.name_any(), sts.name_any());
            for pvc in self.informers.pvcs.in_ns(&ns) {
                let Some(i) = ordinal(&prefix, &pvc.name_any()) else {
                    continue;
                };
                if i >= replicas
                    && !pods.contains_key(&i)
                    && pvc.metadata.deletion_timestamp.is_none()
                {
                    tracing::info!(claim = %pvc.name_any(), "deleting the claim of a removed ordinal");
                    benign(
                        api.delete(&pvc.name_any(), &DeleteParams::default())
                            .await
                            .map(|_| ()),
                    )?;
                }
            }
        }
        Ok(())
    }

    async fn write_status(
        &self,
        sts: &StatefulSet,
        pods: &BTreeMap<i32, Arc<Pod>>,
        replicas: i32,
        current_rev: &str,
        update_rev: &str,
    ) -> Result<(), kube::Error> {
        let rev = |p: &Pod| p.labels().get(REVISION_LABEL).cloned().unwrap_or_default();
        let count = |f: &dyn Fn(&Pod) -> bool| {
            i32::try_from(pods.values().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
        };
        let ready = count(&|p| pod_available(p));
        let updated = count(&|p| rev(p) == update_rev);
        let mut current = count(&|p| rev(p) == current_rev);
        let mut current_rev = current_rev.to_string();
        if updated == replicas && count(&|_| true) == replicas {
            current_rev = update_rev.to_string();
            current = updated;
        }
        let old = sts.status.clone().unwrap_or_default();
        let new = StatefulSetStatus {
            replicas: count(&|_| true),
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            current_replicas: Some(current),
            updated_replicas: Some(updated),
            current_revision: Some(current_rev),
            update_revision: Some(update_rev.to_string()),
            observed_generation: sts.metadata.generation,
            collision_count: Some(0),
            conditions: old.conditions.clone(),
        };
        if new == old {
            return Ok(());
        }
        let api: Api<StatefulSet> =
            Api::namespaced(self.client.clone(), &sts.namespace().unwrap_or_default());
        benign(
            api.patch_status(
                &sts.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": new})),
            )
            .await
            .map(|_| ()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_identity_and_claims() {
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "kv", "namespace": "d", "uid": "u1"},
            "spec": {"serviceName": "kv-peer", "selector": {"matchLabels": {"app": "kv"}},
                "template": {"metadata": {"labels": {"app": "kv"}},
                    "spec": {"containers": [{"name": "c", "image": "sh"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}
        }))
        .unwrap();
        let spec = sts.spec.clone().unwrap();
        let p = build_pod(&sts, 2, &spec.template, "kv-abc");
        assert_eq!(p.name_any(), "kv-2");
        let ps = p.spec.unwrap();
        assert_eq!(ps.hostname.as_deref(), Some("kv-2"));
        assert_eq!(ps.subdomain.as_deref(), Some("kv-peer"));
        let claim = ps.volumes.unwrap()[0]
            .persistent_volume_claim
            .clone()
            .unwrap();
        assert_eq!(claim.claim_name, "data-kv-2");
        assert_eq!(p.metadata.labels.unwrap()[POD_NAME_LABEL], "kv-2");
        assert_eq!(ordinal("kv", "kv-10"), Some(10));
        assert_eq!(ordinal("kv", "kvx-1"), None);
    }
}
