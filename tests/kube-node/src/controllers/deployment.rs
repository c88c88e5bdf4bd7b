//! Deployments: one ReplicaSet per pod template (`<name>-<pod-template-hash>`, the hash also a
//! label of its pods and selector), scaled by the strategy — RollingUpdate within `maxSurge`
//! and `maxUnavailable`, or Recreate — and a status with replicas, updated, ready and
//! available counts and the Available and Progressing conditions that `kubectl rollout status`
//! and `helm --wait` read.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::{benign, controlled_by, owner, report, template_hash};
use crate::cache::Informers;
use crate::kubelet::status::now;

/// The label carrying the template hash.
pub const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// The Deployment controller.
#[derive(Clone)]
pub struct Controller {
    client: Client,
    informers: Arc<Informers>,
}

/// `maxSurge`/`maxUnavailable` against `replicas` (percentages round up for surge, down for
/// unavailable, as Kubernetes does).
pub fn resolve(v: Option<&IntOrString>, replicas: i32, default_pct: i32, up: bool) -> i32 {
    let pct = |p: i32| {
        let scaled = i64::from(p) * i64::from(replicas);
        let r = if up {
            (scaled + 99) / 100
        } else {
            scaled / 100
        };
        i32::try_from(r).unwrap_or(0)
    };
    match v {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => pct(s.trim_end_matches('%').parse().unwrap_or(default_pct)),
        None => pct(default_pct),
    }
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

impl Controller {
    /// A controller.
    pub fn new(client: Client, informers: Arc<Informers>) -> Self {
        Controller { client, informers }
    }

    /// Reconciles every Deployment.
    pub async fn reconcile_all(&self) {
        for d in self.informers.deployments.all() {
            if let Err(e) = self.reconcile(&d).await {
                report(
                    "Deployment",
                    &d.namespace().unwrap_or_default(),
                    &d.name_any(),
                    &e,
                );
            }
        }
    }

    async fn scale(&self, rs: &ReplicaSet, to: i32) -> Result<(), kube::Error> {
        if spec_replicas(rs) == to {
            return Ok(());
        }
        tracing::info!(rs = %rs.name_any(), from = spec_replicas(rs), to, "scaling replicaset");
        let api: Api<ReplicaSet> =
            Api::namespaced(self.client.clone(), &rs.namespace().unwrap_or_default());
        benign(
            api.patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"replicas": to}})),
            )
            .await
            .map(|_| ()),
        )
    }

    async fn reconcile(&self, d: &Deployment) -> Result<(), kube::Error> {
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let ns = d.namespace().unwrap_or_default();
        let uid = d.uid().unwrap_or_default();
        let spec = d.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1);
        let hash = template_hash(&spec.template);
        let rs_name = format!("{}-{hash}", d.name_any());
        let mut owned: Vec<Arc<ReplicaSet>> = self
            .informers
            .replicasets
            .in_ns(&ns)
            .into_iter()
            .filter(|r| controlled_by(&r.metadata, &uid))
            .collect();
        owned.sort_by_key(|r| r.creation_timestamp());
        let Some(new) = owned.iter().find(|r| r.name_any() == rs_name).cloned() else {
            return self.create_rs(d, &rs_name, &hash, &owned).await;
        };
        let old: Vec<&Arc<ReplicaSet>> = owned.iter().filter(|r| r.name_any() != rs_name).collect();
        let strategy = spec.strategy.clone().unwrap_or_default();
        let mut max_unavailable = 0;
        if strategy.type_.as_deref() == Some("Recreate") {
            for o in &old {
                self.scale(o, 0).await?;
            }
            let old_pods = old
                .iter()
                .any(|o| o.status.as_ref().is_some_and(|s| s.replicas > 0));
            if !old_pods {
                self.scale(&new, replicas).await?;
            }
        } else {
            let ru = strategy.rolling_update.clone().unwrap_or_default();
            let surge = resolve(ru.max_surge.as_ref(), replicas, 25, true);
            max_unavailable = resolve(ru.max_unavailable.as_ref(), replicas, 25, false);
            if surge == 0 && max_unavailable == 0 {
                max_unavailable = 1;
            }
            let total: i32 = owned.iter().map(|r| spec_replicas(r)).sum();
            let cur = spec_replicas(&new);
            let target = if cur > replicas {
                replicas
            } else {
                (cur + (replicas + surge - total).max(0)).min(replicas)
            };
            self.scale(&new, target).await?;
            let mut budget = (owned.iter().map(|r| available(r)).sum::<i32>()
                - (replicas - max_unavailable))
                .max(0);
            for o in &old {
                let n = spec_replicas(o);
                if n == 0 {
                    continue;
                }
                let unhealthy = (n - available(o)).max(0);
                let remove = n.min(unhealthy + budget);
                budget -= (remove - unhealthy).max(0);
                self.scale(o, n - remove).await?;
            }
        }
        self.write_status(d, &new, &owned, replicas, max_unavailable)
            .await
    }

    async fn create_rs(
        &self,
        d: &Deployment,
        name: &str,
        hash: &str,
        owned: &[Arc<ReplicaSet>],
    ) -> Result<(), kube::Error> {
        let spec = d.spec.clone().unwrap_or_default();
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.into());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), hash.into());
        let revision = owned
            .iter()
            .filter_map(|r| {
                r.annotations()
                    .get(REVISION)
                    .and_then(|v| v.parse::<i64>().ok())
            })
            .max()
            .unwrap_or(0)
            + 1;
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(HASH_LABEL.into(), hash.into());
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": d.namespace(), "labels": labels,
                "annotations": {REVISION: revision.to_string(),
                    "deployment.kubernetes.io/desired-replicas": spec.replicas.unwrap_or(1).to_string()},
                "ownerReferences": [owner("apps/v1", "Deployment", &d.metadata, true)]},
            "spec": {"replicas": 0, "selector": selector, "template": template,
                "minReadySeconds": spec.min_ready_seconds}
        }))
        .map_err(kube::Error::SerdeError)?;
        tracing::info!(deployment = %d.name_any(), rs = name, "creating replicaset");
        let api: Api<ReplicaSet> =
            Api::namespaced(self.client.clone(), &d.namespace().unwrap_or_default());
        benign(api.create(&PostParams::default(), &rs).await.map(|_| ()))
    }

    async fn write_status(
        &self,
        d: &Deployment,
        new: &ReplicaSet,
        owned: &[Arc<ReplicaSet>],
        replicas: i32,
        max_unavailable: i32,
    ) -> Result<(), kube::Error> {
        let st = |r: &ReplicaSet| r.status.clone().unwrap_or_default();
        let total: i32 = owned.iter().map(|r| st(r).replicas).sum();
        let ready: i32 = owned
            .iter()
            .map(|r| st(r).ready_replicas.unwrap_or(0))
            .sum();
        let avail: i32 = owned.iter().map(|r| available(r)).sum();
        let updated = st(new).replicas;
        let complete = updated == replicas && total == replicas && available(new) == replicas;
        let old = d.status.clone().unwrap_or_default();
        let cond = |kind: &str, ok: bool, reason: &str, message: String| {
            let status = if ok { "True" } else { "False" };
            let prev = old.conditions.iter().flatten().find(|c| {
                c.type_ == kind && c.status == status && c.reason.as_deref() == Some(reason)
            });
            prev.cloned().unwrap_or_else(|| DeploymentCondition {
                type_: kind.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_transition_time: Some(now()),
                last_update_time: Some(now()),
            })
        };
        let is_available = avail >= replicas - max_unavailable;
        let conditions = vec![
            cond(
                "Available",
                is_available,
                if is_available {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                if is_available {
                    "Deployment has minimum availability.".into()
                } else {
                    "Deployment does not have minimum availability.".into()
                },
            ),
            cond(
                "Progressing",
                true,
                if complete {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                },
                if complete {
                    format!(
                        "ReplicaSet \"{}\" has successfully progressed.",
                        new.name_any()
                    )
                } else {
                    format!("ReplicaSet \"{}\" is progressing.", new.name_any())
                },
            ),
        ];
        let status = DeploymentStatus {
            replicas: Some(total),
            updated_replicas: Some(updated),
            ready_replicas: Some(ready),
            available_replicas: Some(avail),
            unavailable_replicas: Some((replicas - avail).max(0)),
            observed_generation: d.metadata.generation,
            conditions: Some(conditions),
            collision_count: None,
            terminating_replicas: None,
        };
        if status == old {
            return Ok(());
        }
        let api: Api<Deployment> =
            Api::namespaced(self.client.clone(), &d.namespace().unwrap_or_default());
        benign(
            api.patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
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
    fn surge_rounds_up_unavailable_down() {
        let pct = IntOrString::String("25%".into());
        assert_eq!(resolve(Some(&pct), 2, 25, true), 1);
        assert_eq!(resolve(Some(&pct), 2, 25, false), 0);
        assert_eq!(resolve(Some(&IntOrString::Int(3)), 2, 25, false), 3);
        assert_eq!(resolve(None, 4, 25, false), 1);
    }
}
