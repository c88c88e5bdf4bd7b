//! The operator in a pod: `deploy/install.yaml` applied as is (the operator Deployment runs the
//! `kv-operator` binary with in-cluster configuration, reaching the API server through the
//! node's proxy), then a `KVCluster` of 3 members that the operator builds and the node runs.
//! Opt-in with `KUBE_NODE_E2E=1` (needs `target/debug/kv-operator` and `kvstore`, or
//! `KV_OPERATOR_BIN` / `KVSTORE_BIN`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::Deserialize;
use serde_json::Value;

use crate::common::{Env, can_run, kvstore_bin};

fn operator_bin() -> PathBuf {
    std::env::var_os("KV_OPERATOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| kvstore_bin().with_file_name("kv-operator"))
}

/// Server-side applies every document of a multi-document YAML file.
async fn apply_all(env: &Env, yaml: &str) -> Result<()> {
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let v = Value::deserialize(doc)?;
        if v.is_null() {
            continue;
        }
        let (group, version) = match v["apiVersion"]
            .as_str()
            .context("apiVersion")?
            .split_once('/')
        {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (
                String::new(),
                v["apiVersion"].as_str().unwrap_or_default().to_string(),
            ),
        };
        let kind = v["kind"].as_str().context("kind")?;
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, kind));
        let name = v["metadata"]["name"].as_str().context("name")?.to_string();
        let api: Api<DynamicObject> = match v["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(env.client.clone(), ns, &ar),
            None => Api::all_with(env.client.clone(), &ar),
        };
        api.patch(
            &name,
            &PatchParams::apply("kube-node-test").force(),
            &Patch::Apply(&v),
        )
        .await
        .with_context(|| format!("apply {kind} {name}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_a_kvcluster() -> Result<()> {
    if !can_run() {
        return Ok(());
    }
    if std::env::var_os("KUBE_NODE_E2E").is_none() {
        eprintln!("skipped: opt-in (KUBE_NODE_E2E=1): depends on the operator build of the day");
        return Ok(());
    }
    if !kvstore_bin().exists() || !operator_bin().exists() {
        eprintln!(
            "skipped: build kvstore and kv-operator first (cargo build -p kvstore -p operator --bins)"
        );
        return Ok(());
    }
    let env = Env::start_with(|images| {
        images.insert(
            "kv-operator",
            kube_node::ImageBinary::new(operator_bin()).with_args(["run"]),
        );
    })
    .await?;
    let r = async {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let install = std::fs::read_to_string(root.join("deploy/install.yaml"))?;
        apply_all(&env, &install).await?;
        let deploys: Api<Deployment> = Api::namespaced(env.client.clone(), "kv-system");
        env.until("operator available", Duration::from_secs(40), || async {
            let d = deploys.get_opt("kv-operator").await?;
            let ok = d
                .and_then(|d| d.status)
                .and_then(|s| s.conditions)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.type_ == "Available" && c.status == "True")
                });
            Ok(ok.then_some(()))
        })
        .await?;
        let example = std::fs::read_to_string(root.join("deploy/examples/kvcluster-minimal.yaml"))?;
        let mut kvc: Value = serde_yaml::from_str(&example)?;
        kvc["metadata"]["namespace"] = "default".into();
        apply_all(&env, &serde_yaml::to_string(&kvc)?).await?;
        let sts: Api<StatefulSet> = Api::namespaced(env.client.clone(), "default");
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "kvstore.io",
            "v1alpha1",
            "KVCluster",
        ));
        let kvcs: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), "default", &ar);
        let waited = env
            .until("3 members ready", Duration::from_secs(60), || async {
                let ready = sts
                    .get_opt("demo")
                    .await?
                    .and_then(|s| s.status)
                    .and_then(|s| s.ready_replicas);
                let k = kvcs.get("demo").await?;
                let k_ready = k.data["status"]["readyReplicas"].as_i64();
                Ok((ready == Some(3) && k_ready == Some(3)).then_some(()))
            })
            .await;
        if waited.is_err() {
            let k = kvcs.get("demo").await?;
            eprintln!("kvc status: {:#}", k.data["status"]);
        }
        waited?;
        Ok(())
    }
    .await;
    if r.is_err() {
        env.dump(&["kv-system", "default"]).await;
    }
    env.stop().await;
    r
}
