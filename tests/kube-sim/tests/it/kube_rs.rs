//! kube-rs against the server: CRUD, patches, server-side apply, status and scale
//! subresources, and `kube::runtime::watcher` including its recovery after 410 Gone.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::common::Env;

fn cm(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_and_patches() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");

    let created = api
        .create(&PostParams::default(), &cm("c", json!({"a": "1"})))
        .await
        .unwrap();
    let md = &created.metadata;
    assert!(md.uid.is_some() && md.creation_timestamp.is_some() && md.resource_version.is_some());

    let got = api.get("c").await.unwrap();
    assert_eq!(got.data.unwrap()["a"], "1");
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    let mut repl = api.get("c").await.unwrap();
    repl.data = Some([("b".to_string(), "2".to_string())].into());
    let replaced = api
        .replace("c", &PostParams::default(), &repl)
        .await
        .unwrap();
    assert_eq!(replaced.data.clone().unwrap().len(), 1);
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );

    let pp = PatchParams::default();
    api.patch("c", &pp, &Patch::Merge(json!({"data": {"m": "3"}})))
        .await
        .unwrap();
    let ops: json_patch_ops::Ops = serde_json::from_value(
        json!([{"op": "add", "path": "/data/j", "value": "4"}, {"op": "remove", "path": "/data/b"}]),
    )
    .unwrap();
    api.patch("c", &pp, &Patch::Json::<()>(ops)).await.unwrap();
    let data = api.get("c").await.unwrap().data.unwrap();
    assert_eq!(data.keys().cloned().collect::<Vec<_>>(), ["j", "m"]);

    // Server-side apply: create, then a second apply drops what the manager no longer applies.
    let ssa = PatchParams::apply("it-test").force();
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"},
        "data": {"x": "1", "y": "2"}});
    api.patch("s", &ssa, &Patch::Apply(&applied)).await.unwrap();
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"},
        "data": {"x": "9"}});
    let s = api.patch("s", &ssa, &Patch::Apply(&applied)).await.unwrap();
    assert_eq!(s.data.unwrap(), [("x".to_string(), "9".to_string())].into());
    let managers: Vec<_> = s
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| m.manager)
        .collect();
    assert!(managers.contains(&Some("it-test".to_string())));

    api.delete("c", &DeleteParams::default()).await.unwrap();
    let err = api.get("c").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"),
        "{err:?}"
    );
}

mod json_patch_ops {
    pub type Ops = json_patch::Patch;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_scale_and_generation() {
    let env = Env::start().await;
    let api: Api<StatefulSet> = Api::namespaced(env.client.clone(), "default");
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}},
        "status": {"replicas": 42}}))
    .unwrap();
    let created = api.create(&PostParams::default(), &sts).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created.status.unwrap().replicas,
        0,
        "status is dropped on create"
    );

    let pp = PatchParams::default();
    let s = api
        .patch_status(
            "web",
            &pp,
            &Patch::Merge(json!({"status": {"replicas": 1, "readyReplicas": 1},
            "spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(s.status.as_ref().unwrap().ready_replicas, Some(1));
    assert_eq!(
        s.spec.as_ref().unwrap().replicas,
        Some(1),
        "status patch leaves spec alone"
    );
    // Server-side apply of status with no metadata.name (what controllers send) keeps the name.
    let s = api
        .patch_status(
            "web",
            &PatchParams::apply("ctl").force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.name.as_deref(), Some("web"));
    assert_eq!(s.status.as_ref().unwrap().available_replicas, Some(1));
    assert_eq!(
        s.metadata.generation,
        Some(1),
        "status changes keep the generation"
    );

    let s = api
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"status": {"replicas": 5}, "metadata": {"labels": {"l": "v"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        s.status.as_ref().unwrap().replicas,
        1,
        "main endpoint ignores status"
    );
    assert_eq!(
        s.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );

    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    api.patch_scale("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    let s = api.get("web").await.unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(3));
    assert_eq!(
        s.metadata.generation,
        Some(2),
        "spec changes bump the generation"
    );

    // Status by server-side apply, as the operator does it.
    let status = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "status": {"replicas": 3, "availableReplicas": 2}});
    let s = api
        .patch_status(
            "web",
            &PatchParams::apply("it-status").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    assert_eq!(s.status.unwrap().available_replicas, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_changes_and_recovers_from_gone() {
    let env = Env::start().await;
    let ns: Api<Namespace> = Api::all(env.client.clone());
    let nsobj: Namespace = serde_json::from_value(json!({"metadata": {"name": "w"}})).unwrap();
    ns.create(&PostParams::default(), &nsobj).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "w");
    api.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = watcher(api.clone(), watcher::Config::default()).default_backoff();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let summary = match ev {
                Ok(watcher::Event::Init) => "init".to_string(),
                Ok(watcher::Event::InitApply(o)) => {
                    format!("init-apply {}", o.metadata.name.unwrap())
                }
                Ok(watcher::Event::InitDone) => "init-done".to_string(),
                Ok(watcher::Event::Apply(o)) => format!("apply {}", o.metadata.name.unwrap()),
                Ok(watcher::Event::Delete(o)) => format!("delete {}", o.metadata.name.unwrap()),
                Err(e) => format!("error {e}"),
            };
            if tx.send(summary).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = async |want: &str, seen: &mut Vec<String>| {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !seen.iter().any(|s| s == want) {
            let ev = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {want:?} in {seen:?}"))
                .unwrap();
            seen.push(ev);
        }
    };
    wait_for("init-done", &mut seen).await;
    assert!(seen.contains(&"init-apply before".to_string()), "{seen:?}");

    api.create(&PostParams::default(), &cm("live", json!({})))
        .await
        .unwrap();
    wait_for("apply live", &mut seen).await;
    api.delete("live", &DeleteParams::default()).await.unwrap();
    wait_for("delete live", &mut seen).await;

    // Expire the history: the watcher's next watch gets 410 Gone, it relists and goes on.
    seen.clear();
    env.server.compact();
    api.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .unwrap();
    wait_for("init-apply after", &mut seen).await;
    wait_for("init-done", &mut seen).await;
    api.create(&PostParams::default(), &cm("later", json!({})))
        .await
        .unwrap();
    wait_for("apply later", &mut seen).await;
    task.abort();

    // A raw watch from an expired resourceVersion gets the ERROR event kube-runtime expects.
    let old = "1".to_string();
    let wp = kube::api::WatchParams::default();
    let mut raw = std::pin::pin!(api.watch(&wp, &old).await.unwrap());
    match raw.next().await {
        Some(Ok(kube::core::WatchEvent::Error(e))) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"))
        }
        Some(Err(kube::Error::Api(e))) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_pattern_binding_selector_watch_and_graceful_delete() {
    use k8s_openapi::api::core::v1::Pod;
    let env = Env::start().await;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let cfg = watcher::Config::default().fields("spec.nodeName=n1");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = watcher(pods.clone(), cfg)
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(p)) = stream.next().await {
            let _ = tx.send((
                p.metadata.name.unwrap(),
                p.metadata.deletion_timestamp.is_some(),
            ));
        }
    });
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "x"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    pods.create_subresource::<_, serde_json::Value>(
        "binding",
        "p",
        &PostParams::default(),
        &binding,
    )
    .await
    .unwrap();
    let ten = std::time::Duration::from_secs(10);
    assert_eq!(
        tokio::time::timeout(ten, rx.recv()).await.unwrap().unwrap(),
        ("p".to_string(), false),
        "bound pod enters the watch"
    );

    // A bound pod is deleted gracefully: marked, then removed by its kubelet with grace 0.
    pods.delete("p", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        tokio::time::timeout(ten, rx.recv()).await.unwrap().unwrap(),
        ("p".to_string(), true)
    );
    let marked = pods.get("p").await.unwrap();
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    pods.delete("p", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert!(pods.get_opt("p").await.unwrap().is_none());
    task.abort();
}
