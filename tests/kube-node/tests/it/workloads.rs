//! StatefulSets and Deployments of `sh` pods.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Endpoints, PersistentVolumeClaim, Pod, Service};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::common::{Env, can_run};

const STS: &str = r#"
metadata: {name: web}
spec:
  replicas: 3
  serviceName: web
  selector: {matchLabels: {app: web}}
  updateStrategy: {type: OnDelete}
  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete, whenDeleted: Retain}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: sh
        command: [sh, -c, 'hostname >> /data/boots; sleep 1000']
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#;

async fn sts_status(env: &Env) -> Result<k8s_openapi::api::apps::v1::StatefulSetStatus> {
    let api: Api<StatefulSet> = Api::namespaced(env.client.clone(), "default");
    Ok(api.get_status("web").await?.status.unwrap_or_default())
}

fn revision(p: &Pod) -> String {
    p.labels()
        .get("controller-revision-hash")
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_ordinals_claims_updates_and_scale_down() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    let env = Env::start().await?;
    let r = async {
        env.create::<Service>(
            "default",
            "metadata: {name: web}\nspec: {clusterIP: None, selector: {app: web}, ports: [{port: 80}]}\n",
        )
        .await?;
        env.create::<StatefulSet>("default", STS).await?;
        env.until("3 ready replicas", Duration::from_secs(20), || async {
            Ok((sts_status(&env).await?.ready_replicas == Some(3)).then_some(()))
        })
        .await?;
        let pods = env.pods("default");
        let p1 = pods.get("web-1").await?;
        assert_eq!(p1.spec.as_ref().unwrap().hostname.as_deref(), Some("web-1"));
        assert_eq!(p1.labels()["statefulset.kubernetes.io/pod-name"], "web-1");
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), "default");
        for i in 0..3 {
            let c = claims.get(&format!("data-web-{i}")).await?;
            assert_eq!(c.status.unwrap().phase.as_deref(), Some("Bound"));
        }
        let eps: Api<Endpoints> = Api::namespaced(env.client.clone(), "default");
        let n = env
            .until("endpoints", Duration::from_secs(5), || async {
                let e = eps.get_opt("web").await?;
                let n = e
                    .and_then(|e| e.subsets)
                    .and_then(|s| s.first().and_then(|s| s.addresses.clone()))
                    .map_or(0, |a| a.len());
                Ok((n == 3).then_some(n))
            })
            .await?;
        assert_eq!(n, 3);

        // The claim outlives the pod: a deleted pod comes back on the same data.
        let node = env.node();
        node.exec("default", "web-1", &["sh", "-c", "echo marker > /data/m"]).await?;
        let old_uid = p1.uid();
        pods.delete("web-1", &Default::default()).await?;
        let back = env
            .wait_pod("default", "web-1", Duration::from_secs(15), |p| {
                p.uid() != old_uid && crate::common::ready(p)
            })
            .await?;
        let out = node.exec("default", "web-1", &["cat", "/data/m", "/data/boots"]).await?;
        assert_eq!(String::from_utf8_lossy(&out.stdout), "marker\nweb-1\nweb-1\n");
        let first_rev = revision(&back);

        // OnDelete: a template change touches nothing until a pod is deleted.
        let sts: Api<StatefulSet> = Api::namespaced(env.client.clone(), "default");
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}});
        sts.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await?;
        let update_rev = env
            .until("new update revision", Duration::from_secs(5), || async {
                let s = sts_status(&env).await?;
                Ok(s.update_revision.filter(|r| *r != first_rev))
            })
            .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0..3 {
            assert_eq!(revision(&pods.get(&format!("web-{i}")).await?), first_rev);
        }
        pods.delete("web-2", &Default::default()).await?;
        env.wait_pod("default", "web-2", Duration::from_secs(15), |p| {
            revision(p) == update_rev && crate::common::ready(p)
        })
        .await?;
        assert_eq!(revision(&pods.get("web-0").await?), first_rev);

        // RollingUpdate replaces the rest, highest ordinal first.
        let patch = json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}}});
        sts.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await?;
        env.until("rolled out", Duration::from_secs(30), || async {
            let s = sts_status(&env).await?;
            let done = s.updated_replicas == Some(3)
                && s.ready_replicas == Some(3)
                && s.current_revision.as_deref() == Some(update_rev.as_str());
            Ok(done.then_some(()))
        })
        .await?;

        // Scale down with whenScaled=Delete: pods and their claims go, from the top.
        sts.patch("web", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": 1}})))
            .await?;
        env.until("scaled down", Duration::from_secs(20), || async {
            let names: Vec<String> = claims
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .map(|c| c.name_any())
                .collect();
            let pods_left = pods.list(&ListParams::default()).await?.items.len();
            Ok((names == ["data-web-0"] && pods_left == 1).then_some(()))
        })
        .await?;
        Ok(())
    }
    .await;
    env.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_becomes_available_and_rolls() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    let env = Env::start().await?;
    let r = async {
        env.create::<Deployment>(
            "default",
            r#"
metadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: sh, command: [sh, -c, 'sleep 1000']}
"#,
        )
        .await?;
        let api: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
        let available = |want_reason: &'static str| {
            let api = api.clone();
            move || {
                let api = api.clone();
                async move {
                    let d = api.get("api").await?;
                    let s = d.status.clone().unwrap_or_default();
                    let cond = |t: &str| {
                        s.conditions
                            .iter()
                            .flatten()
                            .find(|c| c.type_ == t)
                            .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
                    };
                    let ok = s.available_replicas == Some(2)
                        && s.updated_replicas == Some(2)
                        && s.replicas == Some(2)
                        && s.observed_generation == d.metadata.generation
                        && cond("Available").is_some_and(|c| c.0 == "True")
                        && cond("Progressing").is_some_and(|c| c.1 == want_reason);
                    anyhow::Ok(ok.then_some(()))
                }
            }
        };
        env.until(
            "available",
            Duration::from_secs(20),
            available("NewReplicaSetAvailable"),
        )
        .await?;
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}});
        api.patch("api", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        env.until(
            "rolled",
            Duration::from_secs(30),
            available("NewReplicaSetAvailable"),
        )
        .await?;
        let pods = env
            .pods("default")
            .list(&ListParams::default())
            .await?
            .items;
        let live: Vec<&Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        assert_eq!(live.len(), 2, "old pods are gone");
        assert!(
            live.iter()
                .all(|p| p.annotations().get("v").map(String::as_str) == Some("2"))
        );
        Ok(())
    }
    .await;
    env.stop().await;
    r
}
