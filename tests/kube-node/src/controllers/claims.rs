//! Claim binding, as a dynamic provisioner would do it: every pending PersistentVolumeClaim is
//! bound at once (`spec.volumeName`, `status.phase: Bound`, capacity = request). The directory
//! of a claim that no longer exists is removed once no pod uses it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::{benign, report};
use crate::cache::Informers;
use crate::kubelet::{Shared, volumes};
use crate::net::lock;

/// The claim controller.
#[derive(Clone)]
pub struct Controller {
    client: Client,
    informers: Arc<Informers>,
    pv_root: PathBuf,
    kubelet: Arc<Shared>,
}

impl Controller {
    /// A controller over `pv_root`.
    pub fn new(
        client: Client,
        informers: Arc<Informers>,
        pv_root: &Path,
        kubelet: Arc<Shared>,
    ) -> Self {
        Controller {
            client,
            informers,
            pv_root: pv_root.to_path_buf(),
            kubelet,
        }
    }

    /// Binds pending claims and removes directories of deleted ones.
    pub async fn reconcile_all(&self) {
        let claims = self.informers.pvcs.all();
        for c in &claims {
            if let Err(e) = self.bind(c).await {
                report(
                    "PersistentVolumeClaim",
                    &c.namespace().unwrap_or_default(),
                    &c.name_any(),
                    &e,
                );
            }
        }
        let live: HashSet<PathBuf> = claims
            .iter()
            .map(|c| {
                volumes::claim_dir(
                    &self.pv_root,
                    &c.namespace().unwrap_or_default(),
                    &c.name_any(),
                    &c.uid().unwrap_or_default(),
                )
            })
            .collect();
        let in_use = lock(&self.kubelet.claims_in_use).clone();
        let dirs = std::fs::read_dir(&self.pv_root)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|ns| std::fs::read_dir(ns.path()).into_iter().flatten().flatten());
        for d in dirs {
            let p = d.path();
            if !live.contains(&p) && !in_use.contains_key(&p) {
                tracing::info!(dir = %p.display(), "removing the volume of a deleted claim");
                let _ = std::fs::remove_dir_all(&p);
            }
        }
    }

    async fn bind(&self, c: &PersistentVolumeClaim) -> Result<(), kube::Error> {
        let phase = c.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Bound") || c.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let api: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &c.namespace().unwrap_or_default());
        let spec = c.spec.clone().unwrap_or_default();
        let volume = format!("pvc-{}", c.uid().unwrap_or_default());
        if spec.volume_name.is_none() {
            let patch = json!({
                "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes",
                    "pv.kubernetes.io/bound-by-controller": "yes"}},
                "spec": {"volumeName": volume}});
            benign(
                api.patch(
                    &c.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map(|_| ()),
            )?;
        }
        let capacity = spec
            .resources
            .and_then(|r| r.requests)
            .and_then(|r| r.get("storage").cloned())
            .map(|q| q.0)
            .unwrap_or_else(|| "1Gi".into());
        let status = json!({"status": {"phase": "Bound",
            "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            "capacity": {"storage": capacity}}});
        benign(
            api.patch_status(
                &c.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await
            .map(|_| ()),
        )?;
        tracing::debug!(claim = %c.name_any(), volume, "claim bound");
        Ok(())
    }
}
